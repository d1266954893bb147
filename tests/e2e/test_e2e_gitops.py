"""Issue 29 against the real thing: the Argo CD and Flux objects `render --gitops` writes are accepted
by those projects' unmodified CRDs (Argo CD v3.5.1; Flux helm-controller v1.6.3, source-controller
v1.9.1) on the session's kube-apiserver with server-side dry-run (nothing is stored, no controller
runs), and the charts they point at render to the objects `helmfile template` renders for the bundle.

The charts: a controller would fetch the router chart (and the helmfile era's charts) from their
registries, which no test may dial. Each chart reference (OCI URL + tag, or repository URL + chart +
version) is resolved to the chart with that name and version in the suite's chart folder (the
stand-ins, or the upstream charts with $LLMDCTL_E2E_CHARTS): the same folder the bundle's helmfile is
pointed at with --charts, so both sides render the same chart. The generated charts come from the
bundle folder at the path the objects name in the repository. Then `helm template` with each object's
release name, namespace and values must give exactly what `helmfile template` gives for the bundle.
"""

from __future__ import annotations

import copy
import json
import subprocess
from pathlib import Path

import pytest

from gitops_cases import REPO, STACKS
from llmdctl.base.yamlio import load_text

from .controlplane import crd_dir
from .harness import CHARTS

pytestmark = pytest.mark.e2e

REPO_PATH = "stacks/pd"
NS = "llm-d-gitops"
GITOPS_CRDS = (("argo-cd", "v3.5.1"), ("flux", "helm-controller-v1.6.3"), ("flux", "source-controller-v1.9.1"))


@pytest.fixture(scope="module")
def gitops(e2e):
    """The Argo CD and Flux CRDs, installed unmodified as the suite installs the others."""
    for project, version in GITOPS_CRDS:
        e2e.cp.kubectl("apply", "--server-side", "-f", str(crd_dir() / project / version), timeout=120)
    e2e.cp.wait_established()
    for ns in ("argocd", NS):
        e2e.cp.namespace(ns, hf_secret=None)
    return e2e


def _render(e2e, out: Path, stack: str, *extra: str, charts: bool = False) -> None:
    r = e2e.llmdctl("render", *STACKS[stack], "-n", NS, "-o", str(out), *extra, charts=charts)
    assert r.code == 0, r


def _docs(text: str) -> list[dict]:
    docs = []
    for part in ("\n" + text).split("\n---"):
        data = load_text(part, "test").data if part.strip() else None
        if isinstance(data, dict) and data:
            docs.append(json.loads(json.dumps(data)))  # plain dicts and lists
    return docs


def _gitops_docs(folder: Path) -> list[dict]:
    return [d for p in sorted((folder / "gitops").rglob("*.yaml")) for d in _docs(p.read_text())]


def _kept(sent, got) -> bool:
    """Every field sent came back unchanged (defaults may be added): the schema pruned nothing."""
    if isinstance(sent, dict):
        return isinstance(got, dict) and all(k in got and _kept(v, got[k]) for k, v in sent.items())
    if isinstance(sent, list):
        return isinstance(got, list) and len(sent) == len(got) and all(_kept(a, b) for a, b in zip(sent, got))
    return sent == got


def _dry_run(e2e, docs: list[dict]) -> subprocess.CompletedProcess:
    return e2e.cp.kubectl("apply", "--server-side", "--dry-run=server", "--field-manager=llmdctl-e2e", "-o", "json", "-f", "-",
                          input=json.dumps({"apiVersion": "v1", "kind": "List", "items": docs}), check=False, timeout=120)


@pytest.mark.parametrize("controller", ["argocd", "flux"])
@pytest.mark.parametrize("stack", list(STACKS))
def test_the_real_crds_accept_every_object_and_keep_every_field(gitops, tmp_path, stack, controller):
    e2e = gitops
    out = tmp_path / "bundle"
    _render(e2e, out, stack, "--gitops", controller, "--repo-url", REPO, "--path", REPO_PATH)
    docs = _gitops_docs(out)
    kinds = {d["kind"] for d in docs}
    assert kinds >= ({"Application", "ConfigMap"} if controller == "argocd" else {"GitRepository", "HelmRelease", "OCIRepository"}), kinds
    res = _dry_run(e2e, docs)
    assert res.returncode == 0, res.stderr
    got = json.loads(res.stdout)
    items = got["items"] if got.get("kind") == "List" else [got]
    assert len(items) == len(docs)
    for sent, back in zip(docs, items):
        assert (back["kind"], back["metadata"]["name"]) == (sent["kind"], sent["metadata"]["name"])
        # the values (valuesObject, HelmRelease values), sources and order fields survive the real schema
        assert _kept(sent.get("spec", sent.get("data")), back.get("spec", back.get("data"))), (sent["kind"], sent["metadata"]["name"])
    # nothing was stored: it was a dry-run
    assert "No resources found" in e2e.cp.kubectl("get", "applications.argoproj.io,helmreleases.helm.toolkit.fluxcd.io",
                                                   "-A", check=False).stderr


def test_the_crds_do_judge_a_broken_object(gitops, tmp_path):
    """The dry-run above would prove nothing if the schemas let anything through."""
    e2e = gitops
    out = tmp_path / "bundle"
    _render(e2e, out, "default", "--gitops", "flux", "--repo-url", REPO)
    git = next(d for d in _gitops_docs(out) if d["kind"] == "GitRepository")
    bad = copy.deepcopy(git)
    bad["spec"]["url"] = "git@github.com:me/llm-d.git"  # scp-like: Flux's pattern refuses it
    res = _dry_run(e2e, [bad])
    assert res.returncode != 0 and "spec.url" in res.stderr, res
    out = tmp_path / "argo"
    _render(e2e, out, "default", "--gitops", "argocd", "--repo-url", REPO)
    app = copy.deepcopy(next(d for d in _gitops_docs(out) if d["kind"] == "Application"))
    del app["spec"]["destination"]  # required by the Application CRD
    res = _dry_run(e2e, [app])
    assert res.returncode != 0 and "destination" in res.stderr, res


# -- the charts the objects point at render what helmfile renders ------------------------------------

def _chart_index() -> dict[tuple[str, str], Path]:
    index = {}
    for chart_yaml in sorted(CHARTS.glob("*/Chart.yaml")):
        meta = load_text(chart_yaml.read_text(), str(chart_yaml)).data
        index.setdefault((meta["name"], str(meta["version"])), chart_yaml.parent)
    return index


def _in_bundle(out: Path, repo_path: str) -> Path:
    """A path the objects name in the Git repository, as a folder of the bundle committed at REPO_PATH."""
    assert repo_path.lstrip("./").startswith(REPO_PATH), repo_path
    return out / repo_path.lstrip("./")[len(REPO_PATH):].lstrip("/")


def _helm_template(e2e, tmp: Path, release: str, namespace: str, chart: Path, values) -> list[dict]:
    args = ["template", release, str(chart), "--namespace", namespace]
    if values is not None:
        f = tmp / f"{release}.values.json"
        f.write_text(json.dumps(values))
        args += ["--values", str(f)]
    res = e2e.helm(*args)
    assert res.returncode == 0, res.stderr
    return _docs(res.stdout)


def _argocd_render(e2e, out: Path, tmp: Path) -> list[dict]:
    index, objects = _chart_index(), []
    apps = [d for d in _gitops_docs(out) if d["kind"] == "Application" and "argocd.argoproj.io/sync-wave" in d["metadata"].get("annotations", {})]
    for app in sorted(apps, key=lambda a: int(a["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"])):
        src, ns = app["spec"]["source"], app["spec"]["destination"]["namespace"]
        if "directory" in src:  # the helmfile era's HTTPRoute, applied as the file is
            objects += _docs((_in_bundle(out, src["path"]) / src["directory"]["include"]).read_text())
            continue
        if "chart" in src:  # a chart repository
            chart = index[(src["chart"], src["targetRevision"])]
        elif src["repoURL"].startswith("oci://"):
            chart = index[(src["repoURL"].rsplit("/", 1)[-1], src["targetRevision"])]
        else:
            assert (src["repoURL"], src["targetRevision"]) == (REPO, "main")
            chart = _in_bundle(out, src["path"])
        objects += _helm_template(e2e, tmp, src["helm"]["releaseName"], ns, chart, src["helm"].get("valuesObject"))
    return objects


def _flux_render(e2e, out: Path, tmp: Path) -> list[dict]:
    index, docs = _chart_index(), _gitops_docs(out)
    sources = {(d["kind"], d["metadata"]["name"]): d for d in docs if d["apiVersion"].startswith("source.toolkit.fluxcd.io/")}
    objects = []
    for hr in (d for d in docs if d["kind"] == "HelmRelease"):
        spec = hr["spec"]
        if "chartRef" in spec:
            oci = sources[(spec["chartRef"]["kind"], spec["chartRef"]["name"])]["spec"]
            chart = index[(oci["url"].rsplit("/", 1)[-1], oci["ref"]["tag"])]
        else:
            cs = spec["chart"]["spec"]
            source = sources[(cs["sourceRef"]["kind"], cs["sourceRef"]["name"])]
            if source["kind"] == "GitRepository":
                assert source["spec"]["url"] == REPO
                chart = _in_bundle(out, cs["chart"])
            else:
                chart = index[(cs["chart"], cs["version"])]
        objects += _helm_template(e2e, tmp, spec["releaseName"], hr["metadata"]["namespace"], chart, spec.get("values"))
    objects += [d for d in docs if d["kind"] == "HTTPRoute"]
    return objects


def _normal(objects: list[dict]) -> list[str]:
    out = []
    for obj in objects:
        obj = copy.deepcopy(obj)
        obj.setdefault("metadata", {}).setdefault("namespace", NS)  # where an object without one lands
        out.append(json.dumps(obj, sort_keys=True))
    return sorted(out)


@pytest.mark.parametrize("controller", ["argocd", "flux"])
@pytest.mark.parametrize("stack", list(STACKS))
def test_the_charts_the_objects_point_at_render_what_helmfile_renders(gitops, tmp_path, stack, controller):
    e2e = gitops
    gitops_bundle, local_bundle = tmp_path / "gitops-bundle", tmp_path / "local-bundle"
    _render(e2e, gitops_bundle, stack, "--gitops", controller, "--repo-url", REPO, "--path", REPO_PATH)
    _render(e2e, local_bundle, stack, charts=True)  # the same stack, its helmfile pointed at the suite's charts
    res = subprocess.run([str(e2e.cp.bin / "helmfile"), "--file", "helmfile.yaml", "--namespace", NS, "template", "--skip-deps"],
                         cwd=local_bundle, env=e2e.cp.env(), capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    expected = _docs(res.stdout)
    if (local_bundle / "httproute.yaml").exists():  # the helmfile era: the route is applied beside the releases
        expected += _docs((local_bundle / "httproute.yaml").read_text())
    got = (_argocd_render if controller == "argocd" else _flux_render)(e2e, gitops_bundle, tmp_path)
    kinds = {o["kind"] for o in expected}
    assert {"Deployment"} <= kinds or {"LeaderWorkerSet"} <= kinds, kinds  # the comparison covers the model servers
    assert _normal(got) == _normal(expected)
