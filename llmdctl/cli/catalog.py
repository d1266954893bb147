"""Discovery: profiles, gateways, guides (list and show), versions, rules."""

from __future__ import annotations

import argparse

from ..base.errors import InputError, suggest
from ..catalog.catalog import default_catalog
from ..compose.rules import describe
from .common import emit_rows, out

KINDS = {"profiles": ("hardware profile or overlay", ("hardware", "overlay")),
         "gateways": ("gateway", ("gateway",)),
         "guides": ("guide", ("guide",))}


def list_layers(args: argparse.Namespace) -> int:
    _, kinds = KINDS[args.group]
    rows = [{"name": l.name, "kind": l.kind, "extends": l.chain[-2] if len(l.chain) > 1 else None, "summary": l.summary}
            for l in default_catalog().layers(*kinds)]
    emit_rows(rows, args.output, ("name", "kind", "summary"))
    return 0


def show_layer(args: argparse.Namespace) -> int:
    singular, kinds = KINDS[args.group]
    catalog = default_catalog()
    names = catalog.names(*kinds)
    if args.name not in names:
        raise InputError(f"unknown {singular} '{args.name}'" + suggest(args.name, names), hint=f"known: {', '.join(names)}")
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
            "infra": r.charts["infra"]["version"], "inferencepool": r.charts["gaie"]["version"],
            "modelservice": r.charts["ms"]["version"], "scheduler": r.images["scheduler"].rsplit(":", 1)[-1],
            "sidecar": r.images["routingSidecar"].rsplit(":", 1)[-1], "summary": r.summary,
        })
    emit_rows(rows, args.output, ("version", "infra", "inferencepool", "modelservice", "scheduler", "sidecar"))
    return 0


def rules(args: argparse.Namespace) -> int:
    emit_rows(describe(default_catalog().rules), args.output, ("id", "severity", "title", "source"))
    return 0
