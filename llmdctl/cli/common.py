"""What every command handler shares: inputs to a plan, and the output contract."""

from __future__ import annotations

import argparse
import sys

from ..base.yamlio import dump
from ..compose.compose import plan_stack
from ..inputs.spec import Spec, build_spec
from ..plan.stack import Plan


def err(text: str) -> None:
    sys.stderr.write(text + "\n")


def out(text: str) -> None:
    sys.stdout.write(text)


def spec_from(args: argparse.Namespace) -> Spec:
    """The one place where stack options become a Spec."""
    return build_spec(
        spec_file=args.file, environments=args.environment, namespace=args.namespace, postfix=args.postfix,
        guide=args.guide, llmd_version=args.llmd_version, model=args.model, model_size=args.model_size,
        prefill=args.prefill, decode=args.decode, pd_threshold=args.pd_threshold, prefix_cache=args.prefix_cache, autoscale=args.autoscale,
        attach_gateway=args.attach_gateway, route_by_model=args.route_by_model, hf_secret=args.hf_secret,
        rdma_resource=args.rdma_resource, tolerations=args.tolerations, rollout=args.rollout,
        network_policy=args.network_policy, metrics_namespace=args.metrics_namespace, sets=args.set_, values=args.values,
        charts=args.charts, chart_repo=args.chart_repo, scorers=args.scorer, scheduler_params=args.scheduler_param,
    )


def plan_from(args: argparse.Namespace) -> Plan:
    return plan_stack(spec_from(args))


def report(plan: Plan) -> None:
    """Notes, warnings and fixes to stderr (errors never reach here: they refuse)."""
    for note in plan.notes:
        err(f"note: {note}")
    for f in plan.findings:
        if f.severity == "warning":
            err(f"warning {f.rule}: {f.message}")
        elif f.severity == "fix":
            err(f"fixed {f.rule}: {f.message}")


def emit(doc, output: str) -> None:
    """A document as JSON or YAML on stdout."""
    import json  # not needed by render, which prints no JSON

    out(json.dumps(doc, indent=2) + "\n" if output == "json" else dump(doc))


def emit_rows(rows: list[dict], output: str, columns: tuple[str, ...]) -> None:
    if output in ("json", "yaml"):
        emit(rows, output)
        return
    widths = [max(len(c), *(len(str(r.get(c) or "")) for r in rows)) for c in columns]
    out("  ".join(c.upper().ljust(w) for c, w in zip(columns, widths)).rstrip() + "\n")
    for r in rows:
        out("  ".join(str(r.get(c) or "").ljust(w) for c, w in zip(columns, widths)).rstrip() + "\n")
