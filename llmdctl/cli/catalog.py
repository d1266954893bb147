"""Discovery: profiles, gateways, guides (list and show), versions, rules."""

from __future__ import annotations

import argparse

from ..base.errors import InputError, suggest
from ..catalog.catalog import default_catalog
from ..compose.rules import describe
from .common import emit_rows, out
from ..compose.eppconfig import parameter_types, plugin_schema

KINDS = {"profiles": ("hardware profile or overlay", ("hardware", "overlay")),
         "gateways": ("gateway", ("gateway",)),
         "guides": ("guide", ("guide",))}


def list_layers(args: argparse.Namespace) -> int:
    _, kinds = KINDS[args.group]
    catalog = default_catalog()
    rows = [{"name": l.name, "kind": l.kind, "extends": l.chain[-2] if len(l.chain) > 1 else None, "summary": l.summary}
            for l in catalog.layers(*kinds)]
    if args.group != "guides":  # -e aliases are listed with what they stand for
        layer_names = {r["name"] for r in rows}
        env = catalog.environments
        router = env.get("router", {"aliases": {}, "default": {}})
        for alias, members in env["aliases"].items():
            if any(m in layer_names for m in members):
                summary = "-e " + " + ".join(members)
                newer = router["aliases"].get(alias)
                if newer:  # the router generation (llm-d >= v0.8) reads some aliases its own way
                    summary = f"-e {' + '.join(newer)} (llm-d >= v0.8); -e {' + '.join(members)} (<= v0.6.0)"
                rows.append({"name": alias, "kind": "alias", "extends": None, "summary": summary})
        defaults = [env["default"].get(k) for k in ("hardware", "gateway")]
        newer = [router["default"].get(k) for k in ("hardware", "gateway")]
        if all(newer) and newer != defaults:
            for row in rows:
                if row["name"] == "default" and row["kind"] == "alias":
                    row["summary"] += f"; without -e: {' + '.join(newer)} from llm-d v0.8, {' + '.join(defaults)} before"
    emit_rows(rows, args.output, ("name", "kind", "summary"))
    return 0


def show_layer(args: argparse.Namespace) -> int:
    singular, kinds = KINDS[args.group]
    catalog = default_catalog()
    names = catalog.names(*kinds)
    aliases = {a: m for a, m in catalog.environments["aliases"].items() if any(x in names for x in m)}
    if args.name in aliases:  # an alias shows each layer it stands for
        members = [m for m in aliases[args.name] if m in names]
        newer = (catalog.environments.get("router") or {}).get("aliases", {}).get(args.name)
        out(f"# {args.name} is an alias for -e {' -e '.join(aliases[args.name])}"
            + (f" (llm-d <= v0.6.0); from v0.8 for -e {' -e '.join(newer)}" if newer else "") + "\n")
        out("".join(f"# --- {m} ---\n{catalog.layer_text(m)}" for m in members))
        return 0
    if args.name not in names:
        raise InputError(f"unknown {singular} '{args.name}'" + suggest(args.name, names + list(aliases)),
                         hint=f"known: {', '.join(names + list(aliases))}")
    out(catalog.layer_text(args.name))
    return 0


def versions(args: argparse.Namespace) -> int:
    catalog = default_catalog()
    default = catalog.versions["default"]
    rows = []
    for name in catalog.versions["releases"]:
        r = catalog.release(name)
        rows.append({
            "version": name + (" (default)" if name == default else ""),
            "generation": r.generation,
            "router": (r.charts.get("router") or {}).get("version"),
            "infra": (r.charts.get("infra") or {}).get("version"), "inferencepool": (r.charts.get("gaie") or {}).get("version"),
            "modelservice": (r.charts.get("ms") or {}).get("version"), "scheduler": r.images["scheduler"].rsplit(":", 1)[-1],
            "sidecar": r.images["routingSidecar"].rsplit(":", 1)[-1], "summary": r.summary,
            "scorers": list(r.epp["scorers"]), "schedulerParameters": _scheduler_parameters(r),
        })
    emit_rows(rows, args.output, ("version", "generation", "router", "infra", "inferencepool", "modelservice", "scheduler", "sidecar"))
    return 0


def _scheduler_parameters(release) -> dict:
    """What --scheduler-param may set: from the pinned EPP's plugin table where llmdctl has one."""
    table = plugin_schema(release)
    if table is None:
        return {k: dict(v) for k, v in (release.epp.get("parameters") or {}).items()}
    return parameter_types(table)


def rules(args: argparse.Namespace) -> int:
    emit_rows(describe(default_catalog().rules), args.output, ("id", "severity", "title", "source"))
    return 0
