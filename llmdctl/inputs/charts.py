"""Where the pinned charts come from: upstream (default), a local folder (``--charts DIR``) or a
mirror repository (``--chart-repo URL``), for clusters that cannot reach the internet.

A local folder holds packaged charts (``helm pull`` / ``helm package`` output, ``NAME-VERSION.tgz``)
or unpacked chart folders; each is recognised by the ``name`` and ``version`` in its Chart.yaml,
not by its file name, so a renamed file still matches and a wrong version never does.
"""

from __future__ import annotations

import os
from typing import NamedTuple

from ..base.errors import InputError
from ..base.yamlio import load_text

MIRROR_REPO_NAME = "llmdctl-mirror"  # the helmfile repository name an http(s) --chart-repo gets


class LocalChart(NamedTuple):
    name: str
    version: str
    path: str  # absolute: the bundle may live anywhere (the state folder, -o DIR)


class ChartSource(NamedTuple):
    """Resolved chart reference of one release, as the bundle's helmfile.yaml spells it."""

    chart: str
    version: str
    repository: dict | None = None
    local: bool = False


def chart_name(ref: str) -> str:
    """``llm-d-infra/llm-d-infra`` or ``oci://registry.k8s.io/.../inferencepool`` -> the chart's name."""
    return ref.rstrip("/").rsplit("/", 1)[-1]


def same_version(a: str, b: str) -> bool:
    """Chart versions compare without a leading ``v`` (helm accepts both spellings)."""
    return a.lstrip("v") == b.lstrip("v")


def _chart_yaml(text: str, where: str) -> tuple[str, str] | None:
    try:
        data = load_text(text, where).data
    except InputError:
        return None
    if not isinstance(data, dict) or not data.get("name") or data.get("version") is None:
        return None
    return str(data["name"]), str(data["version"])


def _packaged(path: str) -> tuple[str, str] | None:
    import tarfile  # only a --charts folder with packages needs it

    try:
        with tarfile.open(path, "r:gz") as tar:
            for member in tar:
                parts = member.name.split("/")
                if len(parts) == 2 and parts[1] == "Chart.yaml" and member.isfile():
                    f = tar.extractfile(member)
                    return _chart_yaml(f.read().decode("utf-8", "replace"), f"{path}:{member.name}") if f else None
    except (OSError, tarfile.TarError, EOFError):
        return None
    return None


def scan_charts(folder: str, flag: str = "--charts") -> list[LocalChart]:
    """Every chart in ``folder`` (packages and unpacked folders, one level deep), sorted."""
    if not os.path.isdir(folder):
        raise InputError(f"{flag} {folder}: no such folder",
                         hint="fill one with `llmdctl charts pull DIR` on a machine that reaches the chart registries")
    found = []
    for entry in sorted(os.listdir(folder)):
        path = os.path.abspath(os.path.join(folder, entry))
        meta = None
        if entry.endswith(".tgz") and os.path.isfile(path):
            meta = _packaged(path)
        elif os.path.isfile(os.path.join(path, "Chart.yaml")):
            with open(os.path.join(path, "Chart.yaml"), encoding="utf-8", errors="replace") as fh:
                meta = _chart_yaml(fh.read(), os.path.join(path, "Chart.yaml"))
        if meta:
            found.append(LocalChart(meta[0], meta[1], path))
    return found


def find_chart(charts: list[LocalChart], name: str, version: str) -> LocalChart | None:
    # an unpacked folder wins over a package of the same version: it is what someone is editing
    matches = [c for c in charts if c.name == name and same_version(c.version, version)]
    return sorted(matches, key=lambda c: c.path.endswith(".tgz"))[0] if matches else None


def check_repository(url: str, flag: str = "--chart-repo") -> str:
    if not url.startswith(("oci://", "https://", "http://")):
        raise InputError(f"{flag} {url}: expected an oci://, https:// or http:// chart repository",
                         hint="e.g. --chart-repo oci://harbor.example.com/llm-d or --chart-repo https://charts.example.com/llm-d")
    return url.rstrip("/")


def resolve_charts(pinned: dict[str, dict], *, folder: str | None, repository: str | None,
                   llmd_version: str, flag: str = "--charts") -> dict[str, ChartSource]:
    """Release key -> where its pinned chart comes from. A pinned chart missing from ``folder`` is
    refused with the list of what is there: installing another version would be silently wrong."""
    if folder is None:
        out = {}
        for key, c in pinned.items():
            if repository is None:
                out[key] = ChartSource(c["chart"], c["version"], c.get("repository"))
            elif repository.startswith("oci://"):
                out[key] = ChartSource(f"{repository}/{chart_name(c['chart'])}", c["version"])
            else:
                out[key] = ChartSource(f"{MIRROR_REPO_NAME}/{chart_name(c['chart'])}", c["version"],
                                       {"name": MIRROR_REPO_NAME, "url": repository})
        return out
    charts = scan_charts(folder, flag)
    out, missing = {}, []
    for key, c in pinned.items():
        name = chart_name(c["chart"])
        hit = find_chart(charts, name, c["version"])
        if hit is None:
            missing.append(f"{name} {c['version']}")
        else:
            out[key] = ChartSource(hit.path, c["version"], local=True)
    if missing:
        there = ", ".join(f"{c.name} {c.version} ({os.path.basename(c.path)})" for c in charts) or "no charts"
        raise InputError(
            f"{flag} {folder}: llm-d {llmd_version} pins {', '.join(missing)}, which the folder does not hold (it has: {there})",
            hint=f"llmdctl charts pull {folder} --llmd-version {llmd_version}   (where the registries are reachable)",
        )
    return out
