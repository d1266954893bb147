"""``llmdctl charts pull|list DIR``: the pinned charts on disk, for air-gapped clusters."""

from __future__ import annotations

import argparse
import os

from ..catalog.catalog import default_catalog
from ..effects.charts import pull_charts
from ..effects.tools import Toolbox
from ..inputs.charts import check_repository, chart_name, find_chart, scan_charts
from .common import emit_rows, err


def _pinned(args: argparse.Namespace):
    release = default_catalog().release(args.llmd_version or os.environ.get("LLMD_VERSION") or None)
    # every pinned chart: the router generation pins both router charts (standalone and gateway mode)
    return release, dict(release.charts)


def pull(args: argparse.Namespace) -> int:
    release, pinned = _pinned(args)
    repository = check_repository(args.chart_repo) if args.chart_repo else None
    box = Toolbox(bins={"helm": args.helm_bin} if args.helm_bin else {})
    rows = [c.as_dict() for c in pull_charts(pinned, args.dir, box, repository=repository, llmd_version=release.name, say=err)]
    emit_rows(rows, args.output, ("release", "name", "version", "action", "path"))
    err(f"next: llmdctl apply --charts {args.dir} --llmd-version {release.name} ...   (no registry is contacted)")
    return 0


def list_charts(args: argparse.Namespace) -> int:
    release, pinned = _pinned(args)
    charts = scan_charts(args.dir)
    rows = []
    for key, c in pinned.items():
        hit = find_chart(charts, chart_name(c["chart"]), c["version"])
        rows.append({"release": key, "name": chart_name(c["chart"]), "version": c["version"],
                     "status": "present" if hit else "missing", "path": hit.path if hit else None})
    emit_rows(rows, args.output, ("release", "name", "version", "status", "path"))
    missing = [r for r in rows if r["status"] == "missing"]
    if missing:
        err(f"{len(missing)} of the charts llm-d {release.name} pins are missing: llmdctl charts pull {args.dir} --llmd-version {release.name}")
    return 1 if missing else 0
