"""``llmdctl charts pull DIR``: fetch the charts an llm-d release pins into a folder that
``--charts DIR`` then reads, for clusters that cannot reach the chart registries.

Each chart is fetched with ``helm pull`` (HTTP repositories and OCI registries alike). A package
that declares a subchart it does not carry is unpacked and completed with ``helm dependency build``
here, where the registries are reachable, so an apply from the folder never needs the network.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from typing import Callable, NamedTuple

from ..base.errors import LlmdctlError
from ..base.yamlio import load_text
from ..inputs.charts import ChartSource, LocalChart, chart_name, find_chart, resolve_charts, scan_charts
from .tools import Command, Toolbox


class PulledChart(NamedTuple):
    release: str  # infra | gaie | ms
    name: str
    version: str
    path: str
    action: str  # present | pulled | pulled+dependencies

    def as_dict(self) -> dict:
        return self._asdict()


def pull_command(src: ChartSource, dest: str) -> Command:
    """``helm pull`` of one pinned chart into ``dest`` (never untarred: the package is the artefact)."""
    if src.repository:
        args = ("pull", chart_name(src.chart), "--repo", src.repository["url"])
    else:
        args = ("pull", src.chart)
    return Command("helm", (*args, "--version", src.version, "--destination", dest), f"pull {chart_name(src.chart)} {src.version}")


def missing_dependencies(package: str) -> list[str]:
    """Subcharts the package's Chart.yaml declares but its charts/ folder does not carry."""
    import tarfile

    with tarfile.open(package, "r:gz") as tar:
        names = tar.getnames()
        top = names[0].split("/")[0] if names else ""
        member = tar.extractfile(f"{top}/Chart.yaml")
        meta = load_text(member.read().decode("utf-8", "replace"), f"{package}:Chart.yaml").data if member else {}
    carried = {n.split("/")[2] for n in names if n.startswith(f"{top}/charts/") and len(n.split("/")) > 2}
    missing = []
    for dep in (meta or {}).get("dependencies") or []:
        name = dep.get("name", "")
        if not any(c == name or c.startswith(f"{name}-") for c in carried):
            missing.append(name)
    return missing


def _complete(box: Toolbox, package: str, folder: str, name: str, version: str) -> str:
    """Unpack a package that lacks subcharts into ``folder/<name>-<version>`` and build its dependencies."""
    import tarfile

    target = os.path.join(folder, f"{name}-{version}")
    if os.path.exists(target):
        raise LlmdctlError(f"{target} exists and is not the pinned chart; move it away so llmdctl can unpack {os.path.basename(package)} there")
    tmp = tempfile.mkdtemp(prefix=".unpack-", dir=folder)
    try:
        with tarfile.open(package, "r:gz") as tar:
            if hasattr(tarfile, "data_filter"):
                tar.extractall(tmp, filter="data")  # no absolute paths or links out of the folder
            else:  # pragma: no cover - Python without PEP 706
                tar.extractall(tmp)
        top = os.listdir(tmp)[0]
        box.query(Command("helm", ("dependency", "build", os.path.join(tmp, top)), f"dependencies of {name}"), timeout=600)
        os.rename(os.path.join(tmp, top), target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    os.remove(package)  # the folder replaces it; two copies of one version would be ambiguous
    return target


def pull_charts(pinned: dict[str, dict], folder: str, box: Toolbox, *, repository: str | None, llmd_version: str,
                say: Callable[[str], None]) -> list[PulledChart]:
    """Make ``folder`` hold every chart ``pinned`` names; what is already there is kept."""
    box.path("helm")  # a missing helm is said before anything is pulled
    os.makedirs(folder, exist_ok=True)
    sources = resolve_charts(pinned, folder=None, repository=repository, llmd_version=llmd_version)
    done = []
    for key, src in sources.items():
        name = chart_name(src.chart)
        there = scan_charts(folder)
        have = find_chart(there, name, src.version)
        if have:
            done.append(PulledChart(key, name, src.version, have.path, "present"))
            continue
        before = {c.path for c in there}
        # helm pull overwrites <name>-<version>.tgz without asking: a file of that name that is not
        # the pinned chart (a partial download, someone else's file) is not llmdctl's to replace
        for version in dict.fromkeys((src.version, src.version.lstrip("v"))):
            target = os.path.join(folder, f"{name}-{version}.tgz")
            if os.path.lexists(target):
                raise LlmdctlError(f"{target} exists and is not the pinned chart {name} {src.version}; helm pull would overwrite it",
                                   hint="move it away (or delete it if it is a broken download), then pull again")
        cmd = pull_command(src, folder)
        say(f"pulling {name} {src.version}: {cmd.display(box)}")
        box.query(cmd, timeout=600)
        new = [c for c in scan_charts(folder) if c.path not in before]
        got = find_chart(new, name, src.version)
        if got is None:
            raise LlmdctlError(f"helm pull of {name} {src.version} wrote no chart of that name and version into {folder}"
                               + (f" (it wrote {', '.join(_label(c) for c in new)})" if new else ""))
        action = "pulled"
        if got.path.endswith(".tgz") and missing_dependencies(got.path):
            say(f"{name} {src.version} does not carry its subcharts: unpacking it and running helm dependency build")
            got = got._replace(path=_complete(box, got.path, folder, name, src.version))
            action = "pulled+dependencies"
        done.append(PulledChart(key, name, src.version, got.path, action))
    return done


def _label(c: LocalChart) -> str:
    return f"{c.name} {c.version}"
