"""Commands that talk to a cluster: each builds its inputs, calls one effect, prints its result."""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from datetime import datetime, timezone
from pathlib import Path

from rich.console import Console
from rich.table import Table

from ..base.errors import InputError, LlmdctlError
from ..catalog.catalog import default_catalog
from ..compose.compose import stack_target
from ..effects.bundle import bundle_files, command_args
from ..effects.bluegreen import describe, green_plan, parse_steps, read_blue
from ..effects.bluegreen import migrate as run_migration
from ..effects.health import FAIL
from ..effects.history import keep_revision, replay_mismatch, revisions, rollback_target
from ..effects.lifecycle import UI, apply_dry_run, apply_stack, destroy_dry_run, destroy_stack, diff_stack, kept_bundle, refused_after_apply
from ..effects.stacks import attach_layouts, list_routes, list_stacks, list_workloads, stack_gateways, stack_rows
from ..effects.kube import kube_for
from ..effects.tools import Toolbox, ToolMissing, cluster_flags, open_toolbox
from ..effects.doctor import doctor_stack
from ..effects.rollout import read_rollout, settle_rollout
from ..effects.verify import VerifyReport, verify_stack
from ..inputs.spec import parse_duration
from ..plan.stack import Plan
from .common import emit, emit_rows, err, out, plan_from, report
from .parser import build_parser


def _toolbox(args: argparse.Namespace, *, dry_run: bool = False) -> Toolbox:
    bins = {tool: getattr(args, f"{tool}_bin") for tool in ("helmfile", "helm", "kubectl")}
    return open_toolbox(kube_context=args.kube_context, kubeconfig=args.kubeconfig, bins=bins, dry_run=dry_run)


def _ui() -> UI:
    def confirm(question: str) -> bool:
        if not sys.stdin or not sys.stdin.isatty():
            raise InputError("confirmation needed but stdin is not a terminal", hint="pass -y/--yes to go ahead without asking")
        sys.stderr.write(f"{question} [y/N]: ")
        sys.stderr.flush()
        return sys.stdin.readline().strip().lower() in ("y", "yes")

    return UI(say=err, confirm=confirm)


def _llmdctl(verb: str, *args: str) -> str:
    return shlex.join(["llmdctl", verb, *args])


def _destroy_command(namespace: str, postfix: str, box: Toolbox) -> str:
    """The destroy that removes this stack from this cluster (apply's clean-up, destroy's resume)."""
    return _llmdctl("destroy", "-n", namespace, "--postfix", postfix, *cluster_flags(box), "-y")


def apply(args: argparse.Namespace) -> int:
    plan = plan_from(args)
    report(plan)
    return _apply_plan(plan, args, _toolbox(args, dry_run=args.dry_run), source="apply")


def _apply_plan(plan: Plan, args: argparse.Namespace, box: Toolbox, *, source: str) -> int:
    """apply's run, from a plan (apply's inputs, or a kept revision's for rollback)."""
    if not args.dry_run:
        plan = _rollout(plan, box)
    files = bundle_files(plan)
    folder = kept_bundle(Path(args.bundle_dir) if args.bundle_dir else None, box, plan.namespace, plan.postfix)
    again = command_args(plan) + cluster_flags(box)
    if args.dry_run:
        verify_command = _llmdctl("verify", *again, "--wait", "--timeout", args.timeout) if args.wait else None
        out(apply_dry_run(plan, files, box, folder, sync=args.sync, create_namespace=args.create_namespace, verify_command=verify_command))
        return 0
    reports = apply_stack(plan, files, box, folder, ui=_ui(), yes=args.yes, sync=args.sync, create_namespace=args.create_namespace,
                          resume=_llmdctl("apply", *again, "-y"), recover=args.recover,
                          recover_command=_llmdctl("apply", *again, "--recover", "-y"),
                          cleanup=_destroy_command(plan.namespace, plan.postfix, box), force=args.force)
    kept = keep_revision(plan, files, box, folder, cwd=os.getcwd(), applied=_now(), source=source)
    refused = refused_after_apply(plan, box)
    if refused:
        return _print_refused(plan, box, folder, refused, _llmdctl("apply", *again, "-y"))
    err(f"applied stack {plan.postfix} to {box.context}/{plan.namespace} in {sum(r.seconds for r in reports):.1f} s ({len(reports)} steps); "
        f"revision {kept.number}, bundle kept in {folder}/")
    if args.wait:
        err(f"waiting up to {args.timeout} for the stack to become healthy (llmdctl verify --wait)")
        result = verify_stack(plan, box, wait=True, timeout=parse_duration(args.timeout), say=err)
        return _print_verify(plan, box, result, "text", wait=True)
    err(f"next: {_llmdctl('verify', *again, '--wait')}")
    return 0


def rollback(args: argparse.Namespace) -> int:
    ns, pf = stack_target(args.namespace, args.postfix)
    box = _toolbox(args, dry_run=args.dry_run)
    folder = kept_bundle(Path(args.bundle_dir) if args.bundle_dir else None, box, ns, pf)
    current, target = rollback_target(folder, ns, pf, args.to)
    plan = _replan(target)
    report(plan)
    changed = replay_mismatch(plan, target)
    if changed:
        raise LlmdctlError(f"revision {target.number}'s inputs no longer render what was applied then ({', '.join(changed[:4])} differ; "
                           "a values or spec file changed since, or llmdctl did); nothing was applied",
                           hint=f"restore those files, or roll back one release by hand: helm rollback RELEASE REVISION -n {ns} "
                                f"(revision {target.number} had {', '.join(f'{k} {v}' for k, v in target.releases.items())})")
    err(f"rollback: stack {pf} from revision {current.number} ({current.applied}) to revision {target.number} ({target.applied})")
    return _apply_plan(plan, args, box, source=f"rollback to {target.number}")


def migrate(args: argparse.Namespace) -> int:
    steps, pause = parse_steps(args.steps), parse_duration(args.pause, "--pause")  # bad input is told before the cluster is asked
    green = plan_from(args)
    box = _toolbox(args, dry_run=args.dry_run)
    blue = read_blue(box, kube_for(box), green.namespace, args.from_postfix)
    plan = green_plan(green, blue)
    report(plan)
    files = bundle_files(plan)
    folder = kept_bundle(Path(args.bundle_dir) if args.bundle_dir else None, box, plan.namespace, plan.postfix)
    if args.dry_run:
        out("\n".join(describe(plan, blue, steps, pause)) + "\n")
        return 0
    removed = run_migration(plan, files, box, folder, blue, steps=steps, pause=pause, timeout=parse_duration(args.timeout), ui=_ui(),
                            yes=args.yes, resume=_llmdctl("apply", *command_args(plan), *cluster_flags(box), "-y"),
                            cleanup=_destroy_command(plan.namespace, plan.postfix, box))
    keep_revision(plan, files, box, folder, cwd=os.getcwd(), applied=_now(), source=f"migrate from {blue.postfix}")
    err(f"migrated: every request to {plan.postfix} in {box.context}/{plan.namespace}; removed from {blue.postfix}: {', '.join(removed)}")
    err(f"next: {_llmdctl('verify', *command_args(plan), *cluster_flags(box))}")
    return 0


def _replan(target) -> Plan:
    """The plan of a kept revision, from apply's flags as they were typed, in the folder they were typed in."""
    if not os.path.isdir(target.cwd):
        raise LlmdctlError(f"revision {target.number} was applied from {target.cwd}, which is gone: its relative paths cannot be read")
    here = os.getcwd()
    os.chdir(target.cwd)
    try:
        return plan_from(build_parser(["apply"]).parse_args(["apply", *target.command]))
    finally:
        os.chdir(here)


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _rollout(plan: Plan, box: Toolbox) -> Plan:
    """A running stack: how the change rolls out (chosen from the free GPUs, or refused)."""
    plan, rollout = settle_rollout(plan, box)
    for r in rollout.roles:
        err(f"rollout: {r.line()}")
    for note in rollout.notes:
        err(f"note: {note}")
    return plan


def _print_refused(plan: Plan, box: Toolbox, folder: Path, refused: list, again: str) -> int:
    err(f"the releases of stack {plan.postfix} are installed, but the cluster refuses their pods (bundle kept in {folder}/):")
    for d in refused:
        err(f"  {d.pod}: {d.summary}\n    {d.events[0]}" + "".join(f"\n    fix: {h}" for h in d.hints))
    err(f"next: fix the cause, then {again}; or remove the stack: {_destroy_command(plan.namespace, plan.postfix, box)}")
    return 1


def verify(args: argparse.Namespace) -> int:
    timeout = parse_duration(args.timeout)
    plan = plan_from(args)
    box = _toolbox(args)
    result = verify_stack(plan, box, wait=args.wait, timeout=timeout, smoke_test=args.smoke, endpoint=args.endpoint,
                          port_forward=args.port_forward, say=err)
    return _print_verify(plan, box, result, args.output, wait=args.wait)


def _print_verify(plan: Plan, box: Toolbox, result: VerifyReport, output: str, *, wait: bool) -> int:
    if output == "json":
        emit({"stack": {"context": box.context, "namespace": plan.namespace, "postfix": plan.postfix},
              "healthy": result.healthy, "seconds": round(result.seconds, 3), "apiCalls": result.api_calls,
              "checks": [c.as_dict() for c in result.checks], "smoke": [c.as_dict() for c in result.smoke],
              "diagnostics": [d.as_dict() for d in result.diagnostics]}, "json")
    else:
        _print_checks(f"stack {plan.postfix} in {box.context}/{plan.namespace}", result.everything)
        for d in result.diagnostics:
            out(f"\n{d.pod} ({d.role or '?'}): {d.summary}\n")
            out("".join(f"  event: {e}\n" for e in d.events) + "".join(f"  log: {line}\n" for line in d.logs)
                + "".join(f"  hint: {h}\n" for h in d.hints))
        verdict = "healthy" if result.healthy else f"{result.failed} failing, {result.pending} pending"
        err(f"{verdict} ({len(result.everything)} checks, {result.api_calls} API calls, {result.seconds:.2f} s"
            + (f", waited {result.waited:.1f} s" if wait else "") + ")")
    return 0 if result.healthy else 1


def doctor(args: argparse.Namespace) -> int:
    plan = plan_from(args)
    box = _toolbox(args)
    checks = doctor_stack(plan, box)
    failed = [c for c in checks if c.status == FAIL]
    if args.output == "json":
        emit({"ok": not failed, "context": box.context, "checks": [c.as_dict() for c in checks]}, "json")
    else:
        _print_checks(f"doctor: {plan.hardware} + {plan.gateway} in {box.context}/{plan.namespace}", checks)
        err("ready to apply" if not failed else f"{len(failed)} check(s) failed: fix them before llmdctl apply")
    return 1 if failed else 0


def diff(args: argparse.Namespace) -> int:
    plan = plan_from(args)
    report(plan)
    box = _toolbox(args)
    rollout = read_rollout(plan, box)
    if args.output == "json":
        emit({"stack": {"context": box.context, "namespace": plan.namespace, "postfix": plan.postfix}, "rollout": rollout.as_dict()}, "json")
        return 0
    for line in [f"rollout: {r.line()}" for r in rollout.roles] or ["rollout: the stack does not run; apply installs it"]:
        out(line)
    changed = diff_stack(plan, bundle_files(plan), box, ui=_ui())
    if changed is not None:
        err(f"stack {plan.postfix} in {box.context}/{plan.namespace}: " + ("apply would change the items above" if changed else "no changes"))
    return 0


def destroy(args: argparse.Namespace) -> int:
    ns, pf = stack_target(args.namespace, args.postfix)
    box = _toolbox(args, dry_run=args.dry_run)
    folder = kept_bundle(Path(args.bundle_dir) if args.bundle_dir else None, box, ns, pf)
    if args.dry_run:
        out(destroy_dry_run(box, ns, pf, folder))
        return 0
    removed = destroy_stack(box, ns, pf, folder, ui=_ui(), yes=args.yes, force=args.force,
                            resume=_destroy_command(ns, pf, box))
    # a stack under another postfix (an aggregated guide's default, a spec's) is named, not silently missed
    others = [] if removed else [s["postfix"] for s in list_stacks(box, ns) if s["postfix"] != pf]
    if args.output == "json":
        emit({"context": box.context, "namespace": ns, "postfix": pf, "removed": removed, "otherStacks": others}, "json")
    if removed:
        err(f"removed from {box.context}/{ns}: " + "; ".join(removed))
    else:
        err(f"nothing to remove: no release infra-{pf}, gaie-{pf}, ms-{pf} and no HTTPRoute llm-d-{pf} in {box.context}/{ns}")
        if others:
            err(f"note: {ns} holds llmdctl stacks under other postfixes: {', '.join(others)}; "
                f"destroy one with: {_destroy_command(ns, others[0], box)}")
    return 0


def status(args: argparse.Namespace) -> int:
    ns = None if args.all_namespaces else stack_target(args.namespace, "pd")[0]
    box = _toolbox(args)
    no_kubectl = None
    try:
        routes = list_routes(box, ns) or []
    except ToolMissing:
        # status reads Helm's records; without kubectl there is no gateway table and no layouts
        routes, no_kubectl = [], "kubectl is not installed"
    stacks = list_stacks(box, ns, args.postfix, routes)
    workloads, unread = ([], no_kubectl) if no_kubectl or not stacks else list_workloads(box, ns)
    attach_layouts(stacks, None if unread else workloads)
    served = stack_gateways(routes, stacks, default_catalog().release(None).dialect["modelRoute"]["header"]) if stacks else []
    kept = _revisions(args, box, ns)
    if args.output in ("json", "yaml"):
        emit({"context": box.context, "namespace": ns, "stacks": stacks, "gateways": served,
              **({"revisions": [r.as_dict() for r in kept]} if args.postfix else {})}, args.output)
    elif not stacks:
        err(f"no llmdctl stacks in {box.context}/" + ("all namespaces" if ns is None else ns))
    else:
        emit_rows(stack_rows(stacks), "text", ("namespace", "postfix", "status", "layout", "releases", "updated"))
        if unread:
            err(f"note: the layouts are not shown: the model-server workloads could not be read ({unread})")
        if served:
            out("\n")
            emit_rows([{"gateway": g["gateway"], "model": r["model"] if r["model"] != "*" else "* (any other)", "route": r["route"],
                        "pool": r["pool"], "postfix": r["postfix"] or "-"} for g in served for r in g["routes"]],
                      "text", ("gateway", "model", "route", "pool", "postfix"))
    if kept and args.output == "text":
        _print_revisions(kept)
    return 0


def _print_revisions(kept: list) -> None:
    out("\n")
    emit_rows([{"revision": str(r.number), "applied": r.applied, "source": r.source,
                "releases": ", ".join(f"{k} {v}" for k, v in r.releases.items()),
                "rollout": ", ".join(f"{role} {how}" for role, how in r.rollout) or "-"} for r in kept],
              "text", ("revision", "applied", "source", "releases", "rollout"))


def _revisions(args: argparse.Namespace, box: Toolbox, ns: str | None) -> list:
    """The kept revisions of the one stack status was asked about (none for a listing)."""
    if not args.postfix or ns is None:
        return []
    return revisions(kept_bundle(Path(args.bundle_dir) if args.bundle_dir else None, box, ns, args.postfix))


def _print_checks(title: str, checks) -> None:
    marks = {"pass": "[green]pass[/]", "fail": "[red]FAIL[/]", "pending": "[yellow]pending[/]", "warn": "[yellow]warn[/]"}
    table = Table(title=title, title_justify="left", show_lines=False)
    table.add_column("check", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("observed", overflow="fold", ratio=3)
    table.add_column("expected", overflow="fold", ratio=2)
    for c in checks:
        table.add_row(c.name, marks.get(c.status, c.status), c.observed, c.expected)
    console = Console(file=sys.stdout, width=200 if not sys.stdout.isatty() else None, highlight=False)
    console.print(table)
    for c in checks:
        if c.status != "pass" and c.hint:
            console.print(f"[bold]{c.name}[/]: {c.hint}", highlight=False, markup=True)
