"""Charts from a local folder or a mirror (air-gapped clusters): --charts, --chart-repo, charts list/pull."""

from __future__ import annotations

import io
import os
import stat
import tarfile
from pathlib import Path

import pytest

from conftest import parse
from llmdctl.effects.charts import missing_dependencies
from llmdctl.inputs.charts import find_chart, resolve_charts, scan_charts

PINNED_V06 = {"infra": ("llm-d-infra", "v1.4.0"), "gaie": ("inferencepool", "v1.4.0"), "ms": ("llm-d-modelservice", "v0.4.9")}


def package(folder: Path, name: str, version: str, *, file_name: str | None = None, deps: tuple[str, ...] = (), carried: tuple[str, ...] = ()) -> Path:
    """A chart package as `helm package` writes it: <name>/Chart.yaml (+ charts/<dep>-x.tgz)."""
    chart_yaml = f"apiVersion: v2\nname: {name}\nversion: {version}\n"
    if deps:
        chart_yaml += "dependencies:\n" + "".join(f"  - name: {d}\n    version: 1.0.0\n    repository: https://example.invalid\n" for d in deps)
    path = folder / (file_name or f"{name}-{version}.tgz")
    with tarfile.open(path, "w:gz") as tar:
        for member, text in [(f"{name}/Chart.yaml", chart_yaml), (f"{name}/values.yaml", "{}\n")] + [
                (f"{name}/charts/{c}-1.0.0.tgz", "x") for c in carried]:
            info = tarfile.TarInfo(member)
            info.size = len(text.encode())
            tar.addfile(info, io.BytesIO(text.encode()))
    return path


def chart_folder(folder: Path, dirname: str, name: str, version: str) -> Path:
    d = folder / dirname
    d.mkdir(parents=True)
    (d / "Chart.yaml").write_text(f"apiVersion: v2\nname: {name}\nversion: {version}\n")
    return d


@pytest.fixture
def mirror(tmp_path):
    d = tmp_path / "charts"
    d.mkdir()
    package(d, "llm-d-infra", "v1.4.0")
    package(d, "inferencepool", "v1.4.0", file_name="renamed.tgz")  # recognised by Chart.yaml, not by file name
    chart_folder(d, "modelservice-src", "llm-d-modelservice", "0.4.9")  # helm accepts versions without the v
    package(d, "llm-d-modelservice", "v0.4.8")  # another version beside it is never picked
    (d / "notes.txt").write_text("not a chart")
    (d / "broken.tgz").write_bytes(b"not a tarball")
    return d


def test_scan_recognises_packages_and_folders_by_chart_yaml(mirror):
    found = {(c.name, c.version, os.path.basename(c.path)) for c in scan_charts(str(mirror))}
    assert found == {("llm-d-infra", "v1.4.0", "llm-d-infra-v1.4.0.tgz"), ("inferencepool", "v1.4.0", "renamed.tgz"),
                     ("llm-d-modelservice", "0.4.9", "modelservice-src"), ("llm-d-modelservice", "v0.4.8", "llm-d-modelservice-v0.4.8.tgz")}
    assert all(os.path.isabs(c.path) for c in scan_charts(str(mirror)))


def test_find_prefers_an_unpacked_folder_over_a_package_of_the_same_version(tmp_path):
    package(tmp_path, "inferencepool", "v1.4.0")
    chart_folder(tmp_path, "inferencepool", "inferencepool", "v1.4.0")
    hit = find_chart(scan_charts(str(tmp_path)), "inferencepool", "v1.4.0")
    assert hit.path == str(tmp_path / "inferencepool")


def test_render_with_charts_points_every_release_at_the_folder(cli, mirror, tmp_path):
    out = tmp_path / "b"
    r = cli("render", "--charts", str(mirror), "-o", str(out))
    assert r.code == 0, r
    hf = parse((out / "helmfile.yaml").read_text())
    assert "repositories" not in hf  # nothing to fetch at apply time
    charts = {rel["name"]: rel for rel in hf["releases"]}
    assert charts["infra-pd"]["chart"] == str(mirror / "llm-d-infra-v1.4.0.tgz")
    assert charts["gaie-pd"]["chart"] == str(mirror / "renamed.tgz")
    assert charts["ms-pd"]["chart"] == str(mirror / "modelservice-src")
    assert all(rel["skipDeps"] is True and "version" not in rel for rel in hf["releases"])
    readme = (out / "README.md").read_text()
    assert f"charts from the local folder `{mirror}`" in readme
    assert f"--charts {mirror}" in readme  # the command that reproduces the bundle keeps the folder


def test_a_relative_charts_folder_is_made_absolute(cli, mirror, monkeypatch):
    monkeypatch.chdir(mirror.parent)
    r = cli("render", "--charts", "charts", "--print")
    assert r.code == 0, r
    assert f"chart: {mirror}/llm-d-infra-v1.4.0.tgz" in r.out


def test_a_missing_pinned_version_is_refused_with_what_is_there(cli, mirror):
    r = cli("render", "--charts", str(mirror), "--llmd-version", "v0.4.0", "--print")
    assert r.code == 2
    assert "llm-d v0.4.0 pins llm-d-infra v1.3.4, inferencepool v1.2.0-rc.1, llm-d-modelservice v0.3.8" in r.err
    assert "llm-d-modelservice v0.4.8" in r.err and "renamed.tgz" in r.err  # the folder's content is listed
    assert f"llmdctl charts pull {mirror} --llmd-version v0.4.0" in r.err
    assert "Traceback" not in r.err


def test_a_missing_folder_is_a_clear_error(cli, tmp_path):
    r = cli("render", "--charts", str(tmp_path / "nope"), "--print")
    assert r.code == 2 and "no such folder" in r.err and "charts pull" in r.err


def test_spec_file_charts_are_relative_to_the_spec_file(cli, mirror, tmp_path, monkeypatch):
    spec = mirror.parent / "llmd.yaml"
    spec.write_text("charts: charts\n")
    monkeypatch.chdir(tmp_path.parent)
    r = cli("render", "-f", str(spec), "--print")
    assert r.code == 0, r
    assert f"chart: {mirror}/llm-d-infra-v1.4.0.tgz" in r.out


@pytest.mark.parametrize("repo, chart, repositories", [
    ("oci://harbor.example.com/llm-d/", "oci://harbor.example.com/llm-d/llm-d-infra", None),
    ("https://charts.example.com/llm-d", "llmdctl-mirror/llm-d-infra", [{"name": "llmdctl-mirror", "url": "https://charts.example.com/llm-d"}]),
])
def test_chart_repo_mirror_keeps_the_pinned_versions(cli, repo, chart, repositories):
    r = cli("render", "--chart-repo", repo, "--print")
    assert r.code == 0, r
    hf = parse(r.out.split("# --- helmfile.yaml ---\n", 1)[1].split("# --- ", 1)[0])
    assert hf.get("repositories") == repositories
    assert [(x["chart"].rsplit("/", 1)[-1], x["version"]) for x in hf["releases"]] == list(PINNED_V06.values())
    assert hf["releases"][0]["chart"] == chart


def test_chart_repo_must_be_a_repository_url_and_excludes_charts(cli, mirror):
    r = cli("render", "--chart-repo", "harbor.example.com/llm-d", "--print")
    assert r.code == 2 and "expected an oci://, https:// or http://" in r.err
    r = cli("render", "--chart-repo", "oci://x/y", "--charts", str(mirror), "--print")
    assert r.code == 2 and "give one" in r.err


def test_resolve_without_overrides_is_the_catalog_pin():
    pinned = {"infra": {"chart": "llm-d-infra/llm-d-infra", "version": "v1.4.0", "repository": {"name": "llm-d-infra", "url": "https://u"}}}
    src = resolve_charts(pinned, folder=None, repository=None, llmd_version="v0.6.0")["infra"]
    assert (src.chart, src.version, src.repository, src.local) == ("llm-d-infra/llm-d-infra", "v1.4.0", {"name": "llm-d-infra", "url": "https://u"}, False)


def test_missing_dependencies_compares_chart_yaml_with_the_charts_folder(tmp_path):
    assert missing_dependencies(str(package(tmp_path, "a", "1.0.0", deps=("common", "epplib"), carried=("common",)))) == ["epplib"]
    assert missing_dependencies(str(package(tmp_path, "b", "1.0.0", deps=("common",), carried=("common",)))) == []


def test_charts_list_exits_1_and_names_the_pull_when_something_is_missing(cli, mirror):
    r = cli("charts", "list", str(mirror), "-o", "json")
    assert r.code == 0, r
    rows = {x["name"]: x for x in parse(r.out)}
    assert {n: x["status"] for n, x in rows.items()} == {"llm-d-infra": "present", "inferencepool": "present", "llm-d-modelservice": "present"}
    r = cli("charts", "list", str(mirror), "--llmd-version", "v0.4.0")
    assert r.code == 1 and "3 of the charts llm-d v0.4.0 pins are missing" in r.err


FAKE_HELM = """#!{python}
import io, sys, tarfile, os
args = sys.argv[1:]
open(os.environ["FAKE_HELM_LOG"], "a").write(" ".join(args) + "\\n")
if args[0] != "pull":
    sys.exit("fake helm: only pull")
name = args[1].rsplit("/", 1)[-1]
version = args[args.index("--version") + 1]
if name == "inferencepool" and os.environ.get("FAKE_HELM_WRONG"):
    version = "v9.9.9"
dest = args[args.index("--destination") + 1]
with tarfile.open(os.path.join(dest, name + "-" + version + ".tgz"), "w:gz") as tar:
    text = ("apiVersion: v2\\nname: " + name + "\\nversion: " + version + "\\n").encode()
    info = tarfile.TarInfo(name + "/Chart.yaml"); info.size = len(text)
    tar.addfile(info, io.BytesIO(text))
"""


@pytest.fixture
def fake_helm(tmp_path, monkeypatch):
    import sys
    helm = tmp_path / "bin" / "helm"
    helm.parent.mkdir()
    helm.write_text(FAKE_HELM.format(python=sys.executable))
    helm.chmod(helm.stat().st_mode | stat.S_IEXEC)
    log = tmp_path / "helm.log"
    monkeypatch.setenv("FAKE_HELM_LOG", str(log))
    return helm, log


def test_charts_pull_fetches_each_pin_once_and_keeps_what_is_there(cli, fake_helm, tmp_path):
    helm, log = fake_helm
    dest = tmp_path / "pulled"
    r = cli("charts", "pull", str(dest), "--helm-bin", str(helm), "-o", "json")
    assert r.code == 0, r
    assert [x["action"] for x in parse(r.out)] == ["pulled", "pulled", "pulled"]
    assert log.read_text().splitlines() == [
        f"pull llm-d-infra --repo https://llm-d-incubation.github.io/llm-d-infra/ --version v1.4.0 --destination {dest}",
        f"pull oci://registry.k8s.io/gateway-api-inference-extension/charts/inferencepool --version v1.4.0 --destination {dest}",
        f"pull llm-d-modelservice --repo https://llm-d-incubation.github.io/llm-d-modelservice/ --version v0.4.9 --destination {dest}",
    ]
    r = cli("charts", "pull", str(dest), "--helm-bin", str(helm), "-o", "json")
    assert [x["action"] for x in parse(r.out)] == ["present"] * 3
    assert len(log.read_text().splitlines()) == 3  # nothing pulled twice
    assert cli("render", "--charts", str(dest), "--print").code == 0


def test_charts_pull_from_a_mirror_and_a_pull_that_brings_the_wrong_version(cli, fake_helm, tmp_path, monkeypatch):
    helm, log = fake_helm
    monkeypatch.setenv("FAKE_HELM_WRONG", "1")
    r = cli("charts", "pull", str(tmp_path / "p"), "--helm-bin", str(helm), "--chart-repo", "oci://harbor.example.com/llm-d")
    assert r.code != 0
    assert "helm pull of inferencepool v1.4.0 wrote no chart of that name and version" in r.err and "inferencepool v9.9.9" in r.err
    assert log.read_text().splitlines()[0] == f"pull oci://harbor.example.com/llm-d/llm-d-infra --version v1.4.0 --destination {tmp_path / 'p'}"
    assert "Traceback" not in r.err
