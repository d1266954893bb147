"""Issue 29: `render --gitops argocd|flux` writes the objects that make Argo CD or Flux deploy the
bundle's releases in helmfile's order. The properties that matter are checked against the bundle's
own helmfile.yaml (what `helmfile apply` would do), not against copies of the catalog's facts:
every release has one controller object with the same chart, repository, version, release name,
namespace and values; the order (sync waves, dependsOn) is helmfile's `needs`; nothing secret is
written; the output is byte-identical for equal inputs; bad flags fail with a message.
The real CRDs and the charts' rendered objects are checked in tests/e2e/test_e2e_gitops.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import parse
from gitops_cases import REPO, STACKS
from llmdctl.base.yamlio import load_text


def _docs(text: str) -> list[dict]:
    return [d for d in (load_text(part, "test").data for part in text.split("\n---\n")) if d]


def _render(cli, out: Path, stack: str, controller: str, *extra: str):
    r = cli("render", *STACKS[stack], "--gitops", controller, "--repo-url", REPO, "--path", "stacks/pd", "-o", str(out), *extra)
    assert r.code == 0, r
    return r


def _objects(folder: Path, sub: str) -> dict[str, list[dict]]:
    return {str(p.relative_to(folder)): _docs(p.read_text()) for p in sorted((folder / "gitops" / sub).rglob("*.yaml"))}


def _helmfile(folder: Path) -> dict:
    return parse((folder / "helmfile.yaml").read_text())


def _expected_source(release: dict, helmfile: dict) -> tuple[str, str | None, str | None]:
    """(kind, url, version) of a helmfile release's chart, read from helmfile.yaml itself."""
    chart = release["chart"]
    if chart.startswith("./"):
        return "git", f"stacks/pd/{chart[2:]}", None
    if chart.startswith("oci://"):
        return "oci", chart, release["version"]
    repo, name = chart.split("/", 1)
    url = next(r["url"] for r in helmfile["repositories"] if r["name"] == repo)
    return "helm", f"{url}#{name}", release["version"]


def _values(folder: Path, release: dict):
    files = release.get("values") or []
    return parse((folder / files[0]).read_text()) if files else None


def _wave_order_ok(waves: dict[str, int], releases: list[dict]) -> None:
    for rel in releases:
        for need in rel.get("needs") or []:
            assert waves[rel["name"]] > waves[need], (rel["name"], need, waves)


@pytest.mark.parametrize("stack", list(STACKS))
def test_argocd_one_application_per_release_with_helmfiles_chart_values_and_order(cli, tmp_path, stack):
    out = tmp_path / "b"
    _render(cli, out, stack, "argocd")
    helmfile = _helmfile(out)
    objects = _objects(out, "argocd")
    apps = {docs[0]["spec"]["source"]["helm"]["releaseName"]: docs[0] for name, docs in objects.items()
            if name.startswith("gitops/argocd/apps/") and "helm" in docs[0]["spec"]["source"]}
    assert set(apps) == {r["name"] for r in helmfile["releases"]}
    waves = {}
    for rel in helmfile["releases"]:
        app = apps[rel["name"]]
        assert (app["apiVersion"], app["kind"], app["metadata"]["namespace"]) == ("argoproj.io/v1alpha1", "Application", "argocd")
        assert app["spec"]["destination"] == {"server": "https://kubernetes.default.svc", "namespace": rel["namespace"]}
        src = app["spec"]["source"]
        kind, url, version = _expected_source(rel, helmfile)
        if kind == "git":
            assert (src["repoURL"], src["path"], src["targetRevision"]) == (REPO, url, "main")
            assert (out / rel["chart"] / "Chart.yaml").is_file()  # the path points at a chart the bundle holds
        elif kind == "oci":
            assert (src["repoURL"], src["path"], src["targetRevision"]) == (url, ".", version)
        else:
            assert (f"{src['repoURL']}#{src['chart']}", src["targetRevision"]) == (url, version)
        # the values are exactly the bundle's values file (nothing dropped, nothing added)
        assert src["helm"].get("valuesObject") == _values(out, rel)
        waves[rel["name"]] = int(app["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"])
    _wave_order_ok(waves, helmfile["releases"])
    assert min(waves.values()) == 0
    root = objects["gitops/argocd/root.yaml"][0]
    assert root["spec"]["source"] == {"repoURL": REPO, "path": "stacks/pd/gitops/argocd/apps", "targetRevision": "main"}
    assert "annotations" not in root["metadata"]  # the parent is not part of a wave
    if stack == "v0.6.0":  # the HTTPRoute the helmfile era applies after the releases: last wave
        route = objects["gitops/argocd/apps/httproute.yaml"][0]
        assert route["spec"]["source"]["directory"] == {"include": "httproute.yaml"}
        assert route["spec"]["source"]["path"] == "stacks/pd"
        assert int(route["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"]) > max(waves.values())
    cm = objects["gitops/argocd/argocd-cm.patch.yaml"][0]
    assert {"resource.customizations.health.argoproj.io_Application", "resource.customizations.health.inference.networking.k8s.io_InferencePool",
            "resource.customizations.health.leaderworkerset.x-k8s.io_LeaderWorkerSet"} <= set(cm["data"])


def test_sync_waves_follow_needs_exactly(cli, tmp_path):
    """gateway -> router -> ms in gateway mode; infra -> gaie -> ms in the helmfile era (ms needs both)."""
    expected = {"istio": {"gateway-pd": 0, "router-pd": 1, "ms-pd": 2}, "default": {"router-pd": 0, "ms-pd": 1},
                "v0.6.0": {"infra-pd": 0, "gaie-pd": 1, "ms-pd": 2}}
    for stack, want in expected.items():
        out = tmp_path / stack
        _render(cli, out, stack, "argocd")
        got = {}
        for name, docs in _objects(out, "argocd").items():
            if not name.startswith("gitops/argocd/apps/"):
                continue
            source = docs[0]["spec"]["source"]
            if "helm" in source:
                got[source["helm"]["releaseName"]] = int(docs[0]["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"])
        assert got == want, stack


@pytest.mark.parametrize("stack", list(STACKS))
def test_flux_sources_and_helmreleases_mirror_the_helmfile(cli, tmp_path, stack):
    out = tmp_path / "b"
    _render(cli, out, stack, "flux")
    helmfile = _helmfile(out)
    docs = [d for ds in _objects(out, "flux").values() for d in ds]
    by_kind: dict[str, dict[str, dict]] = {}
    for d in docs:
        by_kind.setdefault(d["kind"], {})[d["metadata"]["name"]] = d
    releases = by_kind["HelmRelease"]
    assert set(releases) == {r["name"] for r in helmfile["releases"]}
    git = by_kind["GitRepository"]["llmd-pd"]
    assert git["spec"]["url"] == REPO and git["spec"]["ref"] == {"branch": "main"}
    for rel in helmfile["releases"]:
        hr = releases[rel["name"]]["spec"]
        assert releases[rel["name"]]["metadata"]["namespace"] == rel["namespace"]
        assert hr["releaseName"] == rel["name"]  # Helm's records look as after helmfile apply
        assert [d["name"] for d in hr.get("dependsOn", [])] == list(rel.get("needs") or [])
        assert hr.get("values") == _values(out, rel)
        kind, url, version = _expected_source(rel, helmfile)
        if kind == "oci":
            oci = by_kind["OCIRepository"][hr["chartRef"]["name"]]["spec"]
            assert hr["chartRef"]["kind"] == "OCIRepository"
            assert (oci["url"], oci["ref"], oci["layerSelector"]["operation"]) == (url, {"tag": version}, "copy")
        elif kind == "helm":
            spec = hr["chart"]["spec"]
            repo = by_kind["HelmRepository"][spec["sourceRef"]["name"]]["spec"]
            assert (f"{repo['url']}#{spec['chart']}", spec["version"]) == (url, version)
        else:
            spec = hr["chart"]["spec"]
            assert spec["sourceRef"] == {"kind": "GitRepository", "name": "llmd-pd"}
            assert spec["chart"] == f"./{url}" and spec["reconcileStrategy"] == "Revision"
    if stack == "v0.6.0":
        route = by_kind["HTTPRoute"]
        assert list(route) == [parse((out / "httproute.yaml").read_text())["metadata"]["name"]]


def test_nothing_secret_is_written_the_hf_secret_is_referenced_by_name(cli, tmp_path):
    for controller in ("argocd", "flux"):
        out = tmp_path / controller
        _render(cli, out, "default", controller, "--hf-secret", "my-hf-secret")
        text = "".join(p.read_text() for p in (out / "gitops").rglob("*.yaml"))
        assert "kind: Secret" not in text and "HF_TOKEN=" not in text and "hf_" not in text
        assert "password" not in text.lower() and "token:" not in text.lower()
        assert "my-hf-secret" in (out / "README.md").read_text()  # referenced, with the command to create it


def test_output_is_byte_identical_and_listed_in_the_marker(cli, tmp_path):
    for controller in ("argocd", "flux"):
        a, b = tmp_path / f"a-{controller}", tmp_path / f"b-{controller}"
        _render(cli, a, "istio", controller)
        _render(cli, b, "istio", controller)
        files = sorted(str(p.relative_to(a)) for p in a.rglob("*") if p.is_file())
        assert files == sorted(str(p.relative_to(b)) for p in b.rglob("*") if p.is_file())
        assert all((a / f).read_bytes() == (b / f).read_bytes() for f in files)
        marker = (a / ".llmdctl-bundle").read_text().splitlines()
        assert {f for f in files if f.startswith("gitops/")} <= set(marker)
        # the recorded render command reproduces the GitOps output too
        assert f"--gitops {controller} --repo-url {REPO} --path stacks/pd" in (a / "helmfile.yaml").read_text()


def test_rerendering_without_gitops_removes_only_llmdctls_gitops_files(cli, tmp_path):
    out = tmp_path / "b"
    _render(cli, out, "default", "argocd")
    mine = out / "gitops" / "argocd" / "apps" / "my-extra-app.yaml"
    mine.write_text("kind: Application\n")
    r = cli("render", *STACKS["default"], "-o", str(out))
    assert r.code == 0, r
    assert not (out / "gitops" / "argocd" / "root.yaml").exists()
    assert mine.read_text() == "kind: Application\n"  # not written by llmdctl: it stays
    assert "removed" in r.err and "gitops/argocd/root.yaml" in r.err


def test_gitops_files_print_with_the_bundle(cli):
    r = cli("render", *STACKS["default"], "--gitops", "flux", "--repo-url", REPO, "--print")
    assert r.code == 0, r
    assert "# --- gitops/flux/router-pd.yaml ---" in r.out and "kind: HelmRelease" in r.out


def test_a_commit_sha_revision_pins_flux_to_the_commit_and_a_branch_follows_it(cli, tmp_path):
    sha = "0123456789abcdef0123456789abcdef01234567"
    out = tmp_path / "b"
    _render(cli, out, "default", "flux", "--revision", sha)
    git = _docs((out / "gitops/flux/gitrepository.yaml").read_text())[0]
    assert git["spec"]["ref"] == {"commit": sha}
    out = tmp_path / "c"
    _render(cli, out, "default", "argocd", "--revision", "release-1")
    app = _docs((out / "gitops/argocd/apps/ms-pd.yaml").read_text())[0]
    assert app["spec"]["source"]["targetRevision"] == "release-1"


@pytest.mark.parametrize("args, message", [
    (("--gitops", "argocd"), "--gitops argocd needs --repo-url"),
    (("--gitops", "flux"), "--gitops flux needs --repo-url"),
    (("--repo-url", REPO), "--repo-url only apply with --gitops"),
    (("--gitops", "flux", "--repo-url", "git@github.com:me/llm-d.git"), "expected https://host/path"),
    (("--gitops", "argocd", "--repo-url", "https://me:ghp_abcdefabcdefabcdefabcdefabcdefabcdef@github.com/me/x.git"), "carries credentials"),
    (("--gitops", "argocd", "--repo-url", REPO, "--path", "../elsewhere"), "relative to the repository's root"),
    (("--gitops", "argocd", "--repo-url", REPO, "--path", "/abs"), "relative to the repository's root"),
    (("--gitops", "flux", "--repo-url", REPO, "--revision", "a b"), "--revision"),
    (("--gitops", "helm", "--repo-url", REPO), "invalid choice"),
])
def test_bad_gitops_flags_fail_with_a_message_and_write_nothing(cli, tmp_path, args, message):
    out = tmp_path / "b"
    r = cli("render", *STACKS["default"], *args, "-o", str(out))
    assert r.code == 2, r
    assert message in r.err
    assert not out.exists()
    assert "ghp_abcdef" not in r.err + r.out  # a token in the URL is never echoed


def test_local_charts_are_refused_a_controller_cannot_read_this_machine(cli, tmp_path):
    charts = tmp_path / "charts"
    charts.mkdir()
    r = cli("render", *STACKS["default"], "--gitops", "argocd", "--repo-url", REPO, "--charts", str(charts), "-o", str(tmp_path / "b"))
    assert r.code == 2 and "--gitops with --charts" in r.err, r


def test_a_chart_mirror_is_what_the_controllers_fetch(cli, tmp_path):
    out = tmp_path / "b"
    _render(cli, out, "default", "flux", "--chart-repo", "oci://harbor.example.com/llm-d")
    helmfile = _helmfile(out)
    router = next(r for r in helmfile["releases"] if r["name"] == "router-pd")
    oci = _docs((out / "gitops/flux/router-pd.yaml").read_text())[0]
    assert oci["kind"] == "OCIRepository" and oci["spec"]["url"] == router["chart"]
    assert router["chart"].startswith("oci://harbor.example.com/llm-d/")


def test_bundle_readme_says_how_to_commit_and_point_the_controller(cli, tmp_path):
    out = tmp_path / "a"
    _render(cli, out, "istio", "argocd")
    readme = (out / "README.md").read_text()
    assert "## GitOps: Argo CD" in readme and "kubectl apply -n argocd -f gitops/argocd/root.yaml" in readme
    assert "--patch-file gitops/argocd/argocd-cm.patch.yaml" in readme and f"`stacks/pd/` of `{REPO}`" in readme
    assert "`gateway-pd` (wave 0) -> `router-pd` (wave 1) -> `ms-pd` (wave 2)" in readme
    out = tmp_path / "f"
    _render(cli, out, "default", "flux")
    readme = (out / "README.md").read_text()
    assert "## GitOps: Flux" in readme and "--path=./stacks/pd/gitops/flux" in readme
