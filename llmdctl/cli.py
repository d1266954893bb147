"""The command line: a thin skin that parses flags, calls the core and maps errors to exit codes.

Exit codes: 0 success; 2 usage or validation error (the input is wrong); 1 runtime failure.
Data (YAML, JSON, bundles) goes to stdout; messages, warnings and progress go to stderr.
"""

from __future__ import annotations

import functools
import inspect
import json
import shlex
import sys
from enum import Enum
from pathlib import Path
from typing import List, Optional

import typer

from .errors import InputError, LlmdctlError, ValidationError

app = typer.Typer(
    name="llmdctl",
    help=(
        "Compose llm-d prefill/decode (P/D) disaggregated serving stacks into Helmfile bundles.\n\n"
        "Pick hardware, gateway and layout; llmdctl merges catalog layers into values for the three\n"
        "charts (llm-d-infra, inferencepool, llm-d-modelservice), a helmfile and an HTTPRoute, and\n"
        "checks them before anything touches a cluster.\n\n"
        "Example:  llmdctl render -e amd -o amd-bundle"
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


class OutputFormat(str, Enum):
    text = "text"
    json = "json"
    yaml = "yaml"


def _err(text: str) -> None:
    sys.stderr.write(text + "\n")


# --- shared stack inputs --------------------------------------------------------------------

SpecFileOpt = typer.Option(None, "-f", "--file", help="Spec file (YAML, schema in schemas/spec.schema.json); flags override it.", metavar="FILE")
EnvOpt = typer.Option(
    None, "-e", "--environment", metavar="NAME",
    help="Hardware profile, overlay, gateway or alias; repeatable (-e amd -e host-network). Default: nvidia-ib + istio.",
)
NamespaceOpt = typer.Option(None, "-n", "--namespace", help="Target namespace. Default: $NAMESPACE, else the guide's (llm-d-pd).")
PostfixOpt = typer.Option(None, "--postfix", help="Release postfix that tells stacks apart: infra-<postfix>, gaie-<postfix>, ms-<postfix>. Default: $RELEASE_NAME_POSTFIX, else pd.")
GuideOpt = typer.Option(None, "--guide", help="pd-disaggregation (default) or inference-scheduling (aggregated).")
VersionOpt = typer.Option(None, "--llmd-version", help="llm-d release whose charts and images are pinned (see `llmdctl versions`). Default: v0.6.0.")
ModelOpt = typer.Option(None, "--model", help="Hugging Face model id (or hf://, pvc://, oci:// URI). Default: the hardware profile's.")
ModelSizeOpt = typer.Option(None, "--model-size", help="Model volume size, e.g. 100Gi. Default: estimated from the model name.")
PrefillOpt = typer.Option(None, "--prefill", help="Prefill layout REPLICASxTPn, e.g. 4xTP1; 0 for aggregated serving.", metavar="NxTPm")
DecodeOpt = typer.Option(None, "--decode", help="Decode layout REPLICASxTPn, e.g. 1xTP4.", metavar="NxTPm")
ThresholdOpt = typer.Option(None, "--pd-threshold", help="Selective P/D: only prompts with more than this many uncached tokens go through prefill (0 = always).", metavar="TOKENS")
HfSecretOpt = typer.Option(None, "--hf-secret", help="Name of the Secret holding HF_TOKEN (never the token itself). Default: llm-d-hf-token.")
RdmaOpt = typer.Option(None, "--rdma-resource", help="RDMA resource name[=count] your cluster advertises (rdma/ib, rdma/roce_gdr=2, ...), or none.", metavar="NAME[=N]")
SetOpt = typer.Option(None, "--set", help="Override one value, applied last: RELEASE.PATH=VALUE (ms.decode.replicas=2; ms.roles.* means both roles).", metavar="R.PATH=V")
ValuesOpt = typer.Option(None, "--values", help="Merge a values file into one release, applied last: RELEASE=FILE (ms=extra.yaml).", metavar="R=FILE")


# The inputs every stack command takes (render, validate; later apply): declared once here and
# added to each command's signature by @stack_inputs, which hands them over as one dict.
_STACK_OPTIONS = [
    ("file", Optional[str], SpecFileOpt),
    ("environment", Optional[List[str]], EnvOpt),
    ("namespace", Optional[str], NamespaceOpt),
    ("postfix", Optional[str], PostfixOpt),
    ("guide", Optional[str], GuideOpt),
    ("llmd_version", Optional[str], VersionOpt),
    ("model", Optional[str], ModelOpt),
    ("model_size", Optional[str], ModelSizeOpt),
    ("prefill", Optional[str], PrefillOpt),
    ("decode", Optional[str], DecodeOpt),
    ("pd_threshold", Optional[int], ThresholdOpt),
    ("hf_secret", Optional[str], HfSecretOpt),
    ("rdma_resource", Optional[str], RdmaOpt),
    ("set_", Optional[List[str]], SetOpt),
    ("values", Optional[List[str]], ValuesOpt),
]


def _option_group(options: list, key: str):
    """Decorator factory: add ``options`` to a command's signature and hand them over as one dict
    named ``key``, so each group of options is declared once and shared by every command using it."""

    def decorate(fn):
        own = [p for p in inspect.signature(fn).parameters.values() if p.name != key]
        shared = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=opt, annotation=ann) for name, ann, opt in options]

        @functools.wraps(fn)
        def command(**kwargs):
            kwargs[key] = {name: kwargs.pop(name) for name, _, _ in options}
            return fn(**kwargs)

        command.__signature__ = inspect.Signature(shared + [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own])
        del command.__wrapped__  # typer must read the combined signature, not fn's
        return command

    return decorate


stack_inputs = _option_group(_STACK_OPTIONS, "stack")
"""Give a command the shared stack options; it receives them as ``stack: dict``."""


def _plan(stack: dict):
    from .compose import compose
    from .rules import evaluate
    from .spec import build_spec

    spec = build_spec(
        spec_file=stack["file"], environments=stack["environment"], namespace=stack["namespace"],
        postfix=stack["postfix"], guide=stack["guide"], llmd_version=stack["llmd_version"], model=stack["model"],
        model_size=stack["model_size"], prefill=stack["prefill"], decode=stack["decode"],
        pd_threshold=stack["pd_threshold"], hf_secret=stack["hf_secret"], rdma_resource=stack["rdma_resource"],
        sets=stack["set_"], values=stack["values"],
    )
    plan = compose(spec)
    evaluate(plan)
    return plan


def _report(plan) -> None:
    for note in plan.notes:
        _err(f"note: {note}")
    for f in plan.findings:
        if f.severity == "warning":
            _err(f"warning {f.rule}: {f.message}")
        elif f.severity == "fix":
            _err(f"fixed {f.rule}: {f.message}")


@app.command(
    epilog=(
        "Examples:\n\n"
        "  llmdctl render -e amd -o amd-bundle\n\n"
        "  RELEASE_NAME_POSTFIX=pd-2 llmdctl render --prefill 2xTP2 --decode 1xTP4\n\n"
        "  llmdctl render -e gke --print | less\n\n"
        "  llmdctl render -f llmd.yaml --set ms.decode.replicas=2"
    )
)
@stack_inputs
def render(
    stack: dict,
    output: Optional[Path] = typer.Option(None, "-o", "--output", help="Bundle folder. Default: ./llmd-<namespace>-<postfix>/", metavar="DIR"),
    print_: bool = typer.Option(False, "--print", help="Write the bundle to stdout instead of a folder."),
    force: bool = typer.Option(False, "--force", help="Replace a non-empty -o folder that holds no llmdctl bundle."),
) -> None:
    """Compose and validate a stack, then write its helmfile bundle.

    The bundle holds helmfile.yaml (releases infra-, gaie-, ms-<postfix> with pinned charts),
    one values file per release, httproute.yaml and a README with the commands to apply,
    verify and clean up. Same inputs, byte-identical files.
    """
    from .bundle import bundle_files, default_output_dir, print_bundle, write_bundle

    plan = _plan(stack)
    _report(plan)
    files = bundle_files(plan)
    if print_:
        sys.stdout.write(print_bundle(files))
        return
    out = output or default_output_dir(plan)
    write_bundle(files, out, force=force)
    _err(f"wrote {len(files)} files to {out}/ ({', '.join(files)})")
    _err(f"next: cd {out} && helmfile apply && kubectl apply -n {plan.namespace} -f httproute.yaml")


@app.command(
    epilog="Examples:\n\n  llmdctl validate -e gh200-timeslice\n\n  llmdctl validate -f llmd.yaml -o json | jq '.findings[]'"
)
@stack_inputs
def validate(
    stack: dict,
    output: OutputFormat = typer.Option(OutputFormat.text, "-o", "--output", help="text or json."),
) -> None:
    """Run inputs through composition, schemas and rules without writing anything.

    Exit 0 when the stack can be rendered (warnings allowed), 2 when it is refused.
    """
    try:
        plan = _plan(stack)
    except ValidationError as exc:
        if output == OutputFormat.json:
            sys.stdout.write(json.dumps({"valid": False, "findings": [_finding_dict(f) for f in exc.findings]}, indent=2) + "\n")
            raise typer.Exit(2)
        raise
    if output == OutputFormat.json:
        doc = {
            "valid": True,
            "stack": {"namespace": plan.namespace, "postfix": plan.postfix, "guide": plan.guide, "llmdVersion": plan.llmd_version,
                      "hardware": plan.hardware, "overlays": list(plan.overlays), "gateway": plan.gateway, "mode": plan.mode},
            "notes": plan.notes,
            "findings": [_finding_dict(f) for f in plan.findings],
        }
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
        return
    _report(plan)
    roles = ", ".join(f"{r.role} {r.replicas}xTP{r.tensor}" for r in plan.roles.values())
    sys.stdout.write(f"ok: {plan.names['ms']} in {plan.namespace}: {plan.hardware} + {plan.gateway}, {roles}\n")


def _finding_dict(f) -> dict:
    return f if isinstance(f, dict) else f.as_dict()


# --- cluster commands ----------------------------------------------------------------------

# How every cluster command finds its tools and which cluster it is pinned to.
_CLUSTER_OPTIONS = [
    ("kube_context", Optional[str], typer.Option(None, "--kube-context", help="kubeconfig context to use; every command is pinned to it. Default: the current context (refused when none is set).", metavar="NAME")),
    ("kubeconfig", Optional[str], typer.Option(None, "--kubeconfig", help="kubeconfig file. Default: $KUBECONFIG, else ~/.kube/config.", metavar="FILE")),
    ("helmfile_bin", Optional[str], typer.Option(None, "--helmfile-bin", help="helmfile executable. Default: helmfile on PATH.", metavar="PATH")),
    ("helm_bin", Optional[str], typer.Option(None, "--helm-bin", help="helm executable. Default: helm on PATH.", metavar="PATH")),
    ("kubectl_bin", Optional[str], typer.Option(None, "--kubectl-bin", help="kubectl executable. Default: kubectl on PATH.", metavar="PATH")),
]
cluster_inputs = _option_group(_CLUSTER_OPTIONS, "cluster")

BundleDirOpt = typer.Option(None, "--bundle-dir", help="Folder that keeps this stack's applied bundle. Default: ./.llmdctl/<context>/<namespace>/<postfix>/", metavar="DIR")
YesOpt = typer.Option(False, "-y", "--yes", help="Do not ask for confirmation.")


def _toolbox(cluster: dict, *, dry_run: bool = False):
    """Tools pinned to one context. A dry run shows the context it would use but refuses nothing."""
    from .tools import Toolbox, read_kubeconfig, resolve_context

    bins = {t: cluster[f"{t}_bin"] for t in ("helmfile", "helm", "kubectl") if cluster.get(f"{t}_bin")}
    if dry_run:
        context = cluster["kube_context"] or read_kubeconfig(cluster["kubeconfig"])[0]
    else:
        context = resolve_context(cluster["kube_context"], cluster["kubeconfig"])
    return Toolbox(context=context, kubeconfig=cluster["kubeconfig"], bins=bins)


def _cluster_args(cluster: dict, box) -> list[str]:
    args = ["--kube-context", box.context] if box.context else []
    if cluster["kubeconfig"]:
        args += ["--kubeconfig", cluster["kubeconfig"]]
    for t in ("helmfile", "helm", "kubectl"):
        if cluster.get(f"{t}_bin"):
            args += [f"--{t}-bin", cluster[f"{t}_bin"]]
    return args


def _stack_folder(bundle_dir: Optional[Path], box, namespace: str, postfix: str) -> Path:
    from .lifecycle import bundle_dir as kept

    return bundle_dir if bundle_dir else kept(Path(".llmdctl"), box.context or "current-context", namespace, postfix)


def _ui():
    from .lifecycle import UI

    def confirm(question: str) -> bool:
        if not sys.stdin or not sys.stdin.isatty():
            raise InputError("confirmation needed but stdin is not a terminal", hint="pass -y/--yes to go ahead without asking")
        return typer.confirm(question, default=False, err=True)

    return UI(say=_err, confirm=confirm)


def _target(namespace: Optional[str], postfix: Optional[str]) -> tuple[str, str]:
    """-n/--postfix for commands that take no stack inputs: flags, then the guides' env vars, then the defaults."""
    import os

    from .catalog import default_catalog
    from .compose import check_names

    defaults = default_catalog().guide("pd-disaggregation").defaults
    ns = namespace or os.environ.get("NAMESPACE") or defaults.get("namespace", "llm-d-pd")
    pf = postfix or os.environ.get("RELEASE_NAME_POSTFIX") or defaults.get("postfix", "pd")
    check_names(ns, pf)
    return ns, pf


@app.command(
    epilog=(
        "Examples:\n\n"
        "  llmdctl apply -e amd -n llm-d-pd -y\n\n"
        "  RELEASE_NAME_POSTFIX=pd-2 llmdctl apply --prefill 2xTP2 --decode 1xTP4 -y\n\n"
        "  llmdctl apply -e gke --kube-context gke-prod --dry-run\n\n"
        "  llmdctl apply -f llmd.yaml --create-namespace --wait -y"
    )
)
@stack_inputs
@cluster_inputs
def apply(
    stack: dict,
    cluster: dict,
    bundle_dir: Optional[Path] = BundleDirOpt,
    create_namespace: bool = typer.Option(False, "--create-namespace", help="Create the namespace when it does not exist (the HF token Secret still has to be created)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the files and every command, run nothing, write nothing."),
    sync: bool = typer.Option(False, "--sync", help="Use `helmfile sync` (always a new revision) instead of `helmfile apply` (only what changed; needs helm-diff)."),
    wait: bool = typer.Option(False, "--wait", help="After applying, wait until `llmdctl verify` passes."),
    timeout: str = typer.Option("20m", "--timeout", help="With --wait: how long to wait, e.g. 90s, 20m, 1h.", metavar="DURATION"),
    yes: bool = YesOpt,
) -> None:
    """Render, then install or upgrade the stack: infra-, gaie-, ms-<postfix>, then its HTTPRoute.

    Validates and renders like `render`, keeps the bundle in ./.llmdctl/<context>/<namespace>/<postfix>/,
    then runs `helmfile apply` (or `sync` without the helm-diff plugin) for one release at a time in
    needs order and `kubectl apply` for the route. Before that it shows the context, namespace,
    postfix and what will be installed or upgraded, and asks. A failed step stops the run and says
    how to resume; running apply again converges.
    """
    from .bundle import bundle_files, command_args
    from .lifecycle import apply_stack, apply_steps

    plan = _plan(stack)
    _report(plan)
    files = bundle_files(plan)
    box = _toolbox(cluster, dry_run=dry_run)
    folder = _stack_folder(bundle_dir, box, plan.namespace, plan.postfix)
    args = command_args(plan) + _cluster_args(cluster, box)
    if dry_run:
        out = sys.stdout
        out.write(f"# dry run: nothing is written or run\n# context {box.context or '(none selected: apply would refuse)'}, namespace {plan.namespace}, postfix {plan.postfix}\n")
        out.write(f"# would write {folder}/: {', '.join(files)}\n")
        out.write("# would check: helmfile, helm, kubectl versions; helm-diff plugin; namespace; Secret "
                  f"{plan.hf_secret}; current releases\n")
        for step in apply_steps(plan, folder, sync=sync, create_namespace=create_namespace):
            out.write(step.display(box) + "\n")
        if wait:
            out.write(shlex.join(["llmdctl", "verify", *args, "--wait", "--timeout", timeout]) + "\n")
        return
    resume = shlex.join(["llmdctl", "apply", *args, "-y"])
    cleanup = shlex.join(["llmdctl", "destroy", "-n", plan.namespace, "--postfix", plan.postfix, *_cluster_args(cluster, box), "-y"])
    reports = apply_stack(plan, files, box, folder, ui=_ui(), yes=yes, sync=sync, create_namespace=create_namespace, resume=resume, cleanup=cleanup)
    total = sum(r.seconds for r in reports)
    _err(f"applied stack {plan.postfix} to {box.context}/{plan.namespace} in {total:.1f} s ({len(reports)} steps); bundle kept in {folder}/")
    if wait:
        return _verify_after_apply(plan, box, timeout)
    _err(f"next: {shlex.join(['llmdctl', 'verify', *args, '--wait'])}")


def _verify_after_apply(plan, box, timeout: str):
    _err(f"waiting up to {timeout} for the stack to become healthy (llmdctl verify --wait)")
    code = _run_verify(plan, box, wait=True, timeout=_duration(timeout), smoke=False, endpoint=None, port_forward=False, output=OutputFormat.text)
    if code:
        raise typer.Exit(code)


def _duration(text: str) -> float:
    import re

    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*", text or "")
    if not m:
        raise InputError(f"--timeout {text}: not a duration", hint="use e.g. 90s, 20m or 1h")
    return float(m.group(1)) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600, None: 1}[m.group(2)]


def _kube(box):
    from .kube import Kube

    return Kube(context=box.context, kubeconfig=box.kubeconfig)


def _run_verify(plan, box, *, wait: bool, timeout: float, smoke: bool, endpoint: Optional[str], port_forward: bool, output: OutputFormat) -> int:
    import time

    from .health import FAIL, PASS, collect_diagnostics, verify as verify_stack

    started = time.monotonic()
    kube = _kube(box)
    checks, obs, waited = verify_stack(kube, plan, wait=wait, timeout=timeout, say=_err)
    diagnostics = [] if all(c.status == PASS for c in checks) else collect_diagnostics(kube, plan, obs)
    smoke_checks = []
    if smoke and all(c.status == PASS for c in checks):
        smoke_checks = _smoke(kube, plan, box, endpoint, port_forward)
    elif smoke:
        _err("smoke test skipped: the stack is not healthy yet")
    elapsed = time.monotonic() - started
    everything = checks + smoke_checks
    ok = all(c.status == PASS for c in everything)
    if output == OutputFormat.json:
        doc = {"stack": {"context": box.context, "namespace": plan.namespace, "postfix": plan.postfix},
               "healthy": ok, "seconds": round(elapsed, 3), "apiCalls": kube.calls,
               "checks": [c.as_dict() for c in checks], "smoke": [c.as_dict() for c in smoke_checks],
               "diagnostics": [d.as_dict() for d in diagnostics]}
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
    else:
        _print_checks(f"stack {plan.postfix} in {box.context}/{plan.namespace}", everything)
        for d in diagnostics:
            sys.stdout.write(f"\n{d.pod} ({d.role or '?'}): {d.summary}\n")
            for e in d.events:
                sys.stdout.write(f"  event: {e}\n")
            for line in d.logs:
                sys.stdout.write(f"  log: {line}\n")
            for h in d.hints:
                sys.stdout.write(f"  hint: {h}\n")
        failed = sum(c.status == FAIL for c in everything)
        pending = sum(c.status not in (PASS, FAIL) for c in everything)
        verdict = "healthy" if ok else f"{failed} failing, {pending} pending"
        _err(f"{verdict} ({len(everything)} checks, {kube.calls} API calls, {elapsed:.2f} s" + (f", waited {waited:.1f} s" if wait else "") + ")")
    return 0 if ok else 1


def _smoke(kube, plan, box, endpoint: Optional[str], port_forward: bool):
    from .health import smoke
    from .tools import PortForward

    if endpoint:
        return smoke(kube, plan, endpoint)
    if port_forward:
        with PortForward(box, plan.namespace, plan.names["gatewayService"], 80) as pf:
            _err(f"port-forward: {pf.url} -> service/{plan.names['gatewayService']}:80")
            return smoke(kube, plan, pf.url)
    from .kube import GATEWAYS

    gw = kube.get(GATEWAYS, plan.names["gateway"], plan.namespace) or {}
    addresses = [a.get("value") for a in (gw.get("status") or {}).get("addresses") or [] if a.get("value")]
    if not addresses:
        raise LlmdctlError(f"Gateway {plan.names['gateway']} has no address to send the smoke request to",
                           hint="pass --endpoint URL or --port-forward")
    return smoke(kube, plan, f"http://{addresses[0]}")


def _print_checks(title: str, checks) -> None:
    from rich.console import Console
    from rich.table import Table

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


@app.command(
    epilog=(
        "Examples:\n\n"
        "  llmdctl verify -e amd\n\n"
        "  llmdctl verify --wait --timeout 30m\n\n"
        "  llmdctl verify --smoke --port-forward\n\n"
        "  llmdctl verify -o json | jq '.checks[] | select(.status != \"pass\")'"
    )
)
@stack_inputs
@cluster_inputs
def verify(
    stack: dict,
    cluster: dict,
    wait: bool = typer.Option(False, "--wait", help="Watch until every check passes (or --timeout), reporting pods ready per role."),
    timeout: str = typer.Option("20m", "--timeout", help="With --wait: how long, e.g. 90s, 20m, 1h.", metavar="DURATION"),
    smoke: bool = typer.Option(False, "--smoke", help="Also send GET /v1/models and one completion through the gateway, and check a prefill pod served it."),
    endpoint: Optional[str] = typer.Option(None, "--endpoint", help="With --smoke: base URL of the gateway. Default: the Gateway's address.", metavar="URL"),
    port_forward: bool = typer.Option(False, "--port-forward", help="With --smoke: reach the gateway Service through kubectl port-forward."),
    output: OutputFormat = typer.Option(OutputFormat.text, "-o", "--output", help="text or json."),
) -> None:
    """Check that a stack is deployed, ready and routed, from the same plan `render` builds.

    Checks the three Helm releases, the prefill/decode Deployments (planned replicas ready; pods
    with the planned image, GPU and RDMA resources and the pool's labels), the scheduler (EPP),
    the InferencePool selecting ready pods of each role, the Gateway (Programmed, with an address)
    and the HTTPRoute (Accepted, ResolvedRefs). Unhealthy pods come with events, log lines and a
    fix. Exit 0 only when every check passes.
    """
    plan = _plan(stack)
    box = _toolbox(cluster)
    code = _run_verify(plan, box, wait=wait, timeout=_duration(timeout), smoke=smoke, endpoint=endpoint, port_forward=port_forward, output=output)
    if code:
        raise typer.Exit(code)


@app.command(epilog="Examples:\n\n  llmdctl doctor -e amd\n\n  llmdctl doctor -e gh200 --kube-context edge -o json")
@stack_inputs
@cluster_inputs
def doctor(
    stack: dict,
    cluster: dict,
    output: OutputFormat = typer.Option(OutputFormat.text, "-o", "--output", help="text or json."),
) -> None:
    """Check a cluster before apply: tools, API server, CRDs, GatewayClass, GPU/RDMA capacity, HF Secret.

    Reads only. Capacity is checked for the layout you ask for (same inputs as render): every
    prefill and decode pod must fit on one node's allocatable accelerators (and RDMA resource).
    Exit 1 when anything fails; warnings alone exit 0.
    """
    from .health import FAIL, doctor as run_doctor
    from .tools import check_tools

    plan = _plan(stack)
    box = _toolbox(cluster)
    tool_checks = check_tools(box, ("helmfile", "helm", "kubectl", "helm-diff"))
    checks = run_doctor(_kube(box), plan, tool_checks)
    failed = [c for c in checks if c.status == FAIL]
    if output == OutputFormat.json:
        sys.stdout.write(json.dumps({"ok": not failed, "context": box.context, "checks": [c.as_dict() for c in checks]}, indent=2) + "\n")
    else:
        _print_checks(f"doctor: {plan.hardware} + {plan.gateway} in {box.context}/{plan.namespace}", checks)
        _err("ready to apply" if not failed else f"{len(failed)} check(s) failed: fix them before llmdctl apply")
    if failed:
        raise typer.Exit(1)


@app.command(epilog="Examples:\n\n  llmdctl diff -e amd\n\n  RELEASE_NAME_POSTFIX=pd-2 llmdctl diff --decode 2xTP4 | less")
@stack_inputs
@cluster_inputs
def diff(stack: dict, cluster: dict) -> None:
    """Show what `apply` would change: `helmfile diff` of the releases and `kubectl diff` of the route.

    Needs the helm-diff plugin. The diff goes to stdout; exit 0 whether or not anything differs
    (the last stderr line says which).
    """
    from .bundle import bundle_files
    from .lifecycle import diff_stack

    plan = _plan(stack)
    _report(plan)
    box = _toolbox(cluster)
    changed = diff_stack(plan, bundle_files(plan), box, ui=_ui())
    _err(f"stack {plan.postfix} in {box.context}/{plan.namespace}: " + ("apply would change the items above" if changed else "no changes"))


@app.command(
    epilog="Examples:\n\n  llmdctl destroy -n llm-d-pd --postfix pd-2 -y\n\n  RELEASE_NAME_POSTFIX=pd-2 llmdctl destroy --dry-run"
)
@cluster_inputs
def destroy(
    cluster: dict,
    namespace: Optional[str] = NamespaceOpt,
    postfix: Optional[str] = PostfixOpt,
    bundle_dir: Optional[Path] = BundleDirOpt,
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the commands destroy would run (assuming everything exists), run nothing."),
    yes: bool = YesOpt,
    output: OutputFormat = typer.Option(OutputFormat.text, "-o", "--output", help="text or json (what was removed)."),
) -> None:
    """Remove one stack: its HTTPRoute, then helmfile destroy, then any of infra-, gaie-, ms-<postfix> left.

    Only the named postfix in the named namespace is touched; the namespace, the HF token Secret,
    other stacks and anything llmdctl did not create stay. Running it again says "nothing to
    remove" and exits 0.
    """
    from .compose import stack_names
    from .lifecycle import RELEASE_KEYS, StackState, destroy_stack, destroy_steps, uninstall_steps

    ns, pf = _target(namespace, postfix)
    box = _toolbox(cluster, dry_run=dry_run)
    folder = _stack_folder(bundle_dir, box, ns, pf)
    if dry_run:
        names = stack_names(ns, pf)
        everything = StackState(releases={names[k]: {} for k in RELEASE_KEYS}, route=names["route"])
        sys.stdout.write(f"# dry run: nothing is run; commands for context {box.context or '(none selected: destroy would refuse)'}, namespace {ns}, postfix {pf}\n")
        kept = folder if (folder / "helmfile.yaml").is_file() else None
        for step in destroy_steps(ns, pf, everything, kept) + uninstall_steps(ns, pf, everything):
            sys.stdout.write(step.display(box) + "\n")
        return
    resume = shlex.join(["llmdctl", "destroy", "-n", ns, "--postfix", pf, *_cluster_args(cluster, box), "-y"])
    removed = destroy_stack(box, ns, pf, folder, ui=_ui(), yes=yes, resume=resume)
    if output == OutputFormat.json:
        sys.stdout.write(json.dumps({"context": box.context, "namespace": ns, "postfix": pf, "removed": removed}, indent=2) + "\n")
    if removed:
        _err(f"removed from {box.context}/{ns}: " + "; ".join(removed))
    else:
        _err(f"nothing to remove: no release infra-{pf}, gaie-{pf}, ms-{pf} and no HTTPRoute llm-d-{pf} in {box.context}/{ns}")


def _stacks(cluster: dict, namespace: Optional[str], all_namespaces: bool, postfix: Optional[str], output: OutputFormat) -> None:
    from .lifecycle import group_stacks, helm_list_command, parse_helm_list
    from .tools import require_tools

    ns = None if all_namespaces else _target(namespace, "pd")[0]
    box = _toolbox(cluster)
    require_tools(box, ("helm",))
    stacks = group_stacks(parse_helm_list(box.query(helm_list_command(ns))))
    if postfix:
        stacks = [s for s in stacks if s["postfix"] == postfix]
    if output == OutputFormat.json:
        sys.stdout.write(json.dumps({"context": box.context, "namespace": ns, "stacks": stacks}, indent=2) + "\n")
        return
    if output == OutputFormat.yaml:
        from .yamlio import dump

        sys.stdout.write(dump({"context": box.context, "namespace": ns, "stacks": stacks}))
        return
    if not stacks:
        _err(f"no llmdctl stacks in {box.context}/" + ("all namespaces" if ns is None else ns))
        return
    rows = []
    for s in stacks:
        rows.append({
            "namespace": s["namespace"], "postfix": s["postfix"], "status": s["status"],
            "releases": ", ".join(f"{r['name']} {r['version']} r{r['revision']} {r['status']}" for r in s["releases"])
                        + "".join(f", {m} missing" for m in s["missing"]),
            "updated": max((str(r.get("updated") or "") for r in s["releases"]), default="")[:19],
        })
    _emit_rows(rows, OutputFormat.text, ("namespace", "postfix", "status", "releases", "updated"))


_STATUS_EPILOG = "Examples:\n\n  llmdctl status\n\n  llmdctl status -A -o json | jq '.stacks[].postfix'"


@app.command(epilog=_STATUS_EPILOG)
@cluster_inputs
def status(
    cluster: dict,
    namespace: Optional[str] = NamespaceOpt,
    all_namespaces: bool = typer.Option(False, "-A", "--all-namespaces", help="Every namespace."),
    postfix: Optional[str] = typer.Option(None, "--postfix", help="Only this stack."),
    output: OutputFormat = typer.Option(OutputFormat.text, "-o", "--output", help="text, json or yaml."),
) -> None:
    """List the llmdctl stacks in a namespace from Helm's release records.

    One row per postfix: its releases with chart version, revision and status, and when it was
    last deployed. A stack is `deployed` when all three releases are; `incomplete`, `pending` or
    `failed` otherwise. For pods, gateway and route health use `llmdctl verify`.
    """
    _stacks(cluster, namespace, all_namespaces, postfix, output)


# `list` is the same command under the name people reach for first (as in `helm list`).
app.command("list", help="Same as `status`: the llmdctl stacks in a namespace (or all, with -A).",
            epilog=_STATUS_EPILOG.replace("status", "list"))(status)


# --- discovery ----------------------------------------------------------------------------


def _catalog_group(kind_label: str, singular: str, kinds: tuple[str, ...], example: str) -> typer.Typer:
    group = typer.Typer(
        help=f"List {kind_label}, or show one with `show NAME`.\n\nExample:  {example}",
        no_args_is_help=False, invoke_without_command=True, add_completion=False, rich_markup_mode=None,
        context_settings={"help_option_names": ["-h", "--help"]},
    )

    @group.callback()
    def _list(ctx: typer.Context, output: OutputFormat = typer.Option(OutputFormat.text, "-o", "--output", help="text, json or yaml.")) -> None:
        if ctx.invoked_subcommand:
            return
        from .catalog import default_catalog

        layers = default_catalog().layers(*kinds)
        rows = [{"name": l.name, "kind": l.kind, "extends": l.chain[-2] if len(l.chain) > 1 else None, "summary": l.summary} for l in layers]
        _emit_rows(rows, output, ("name", "kind", "summary"))

    @group.command("show", epilog=f"Example:  {example}")
    def _show(name: str = typer.Argument(..., help="Layer name.")) -> None:
        """Print one layer file as shipped."""
        from .catalog import default_catalog, suggest

        cat = default_catalog()
        names = cat.names(*kinds)
        if name not in names:
            raise InputError(f"unknown {singular} '{name}'" + suggest(name, names), hint=f"known: {', '.join(names)}")
        sys.stdout.write(cat.layer_text(name))

    return group


def _emit_rows(rows: list[dict], output: OutputFormat, columns: tuple[str, ...]) -> None:
    if output == OutputFormat.json:
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
    elif output == OutputFormat.yaml:
        from .yamlio import dump

        sys.stdout.write(dump(rows))
    else:
        widths = [max(len(c), *(len(str(r.get(c) or "")) for r in rows)) for c in columns]
        sys.stdout.write("  ".join(c.upper().ljust(w) for c, w in zip(columns, widths)).rstrip() + "\n")
        for r in rows:
            sys.stdout.write("  ".join(str(r.get(c) or "").ljust(w) for c, w in zip(columns, widths)).rstrip() + "\n")


app.add_typer(_catalog_group("hardware profiles and overlays", "profile or overlay", ("hardware", "overlay"), "llmdctl profiles show gh200-timeslice"), name="profiles")
app.add_typer(_catalog_group("gateway providers", "gateway", ("gateway",), "llmdctl gateways show gke"), name="gateways")
app.add_typer(_catalog_group("guides", "guide", ("guide",), "llmdctl guides show inference-scheduling"), name="guides")


@app.command(epilog="Example:  llmdctl versions -o json")
def versions(output: OutputFormat = typer.Option(OutputFormat.text, "-o", "--output", help="text, json or yaml.")) -> None:
    """List the llm-d releases llmdctl can pin, with their chart versions and images."""
    from .catalog import default_catalog

    cat = default_catalog()
    default = cat.versions["default"]
    rows = []
    for name in cat.versions["releases"]:
        r = cat.release(name)
        rows.append({
            "version": name + (" (default)" if name == default else ""),
            "infra": r.charts["infra"]["version"], "inferencepool": r.charts["gaie"]["version"],
            "modelservice": r.charts["ms"]["version"], "scheduler": r.images["scheduler"].rsplit(":", 1)[-1],
            "sidecar": r.images["routingSidecar"].rsplit(":", 1)[-1], "summary": r.summary,
        })
    _emit_rows(rows, output, ("version", "infra", "inferencepool", "modelservice", "scheduler", "sidecar"))


@app.command(epilog="Example:  llmdctl rules -o json")
def rules(output: OutputFormat = typer.Option(OutputFormat.text, "-o", "--output", help="text, json or yaml.")) -> None:
    """List the validation rules llmdctl runs on every plan."""
    from .rules import RULES

    rows = [{"id": r.id, "severity": r.severity, "title": r.title, "why": r.why, "source": r.source} for r in RULES]
    _emit_rows(rows, output, ("id", "severity", "title"))


def _print_version(value: bool) -> None:
    if value:
        from . import __version__

        sys.stdout.write(f"llmdctl {__version__}\n")
        raise typer.Exit(0)


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show a Python traceback for errors (for bug reports)."),
    version: bool = typer.Option(False, "--version", help="Print the llmdctl version and exit.", is_eager=True, callback=_print_version),
) -> None:
    """Global options (read by main())."""


def main(argv: list[str] | None = None) -> int:
    """Entry point: the one place that turns errors into messages and exit codes."""
    try:  # typer >= 0.20 vendors click as typer._click
        from typer._click.exceptions import ClickException, NoArgsIsHelpError  # type: ignore
    except ImportError:  # pragma: no cover - older typer uses click itself
        from click.exceptions import ClickException, NoArgsIsHelpError  # type: ignore

    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args
    try:
        result = app(args=args, prog_name="llmdctl", standalone_mode=False)
        code = result if isinstance(result, int) else 0
    except typer.Exit as exc:
        code = exc.exit_code
    except NoArgsIsHelpError as exc:
        exc.show(file=sys.stderr)
        code = 2
    except ClickException as exc:  # usage errors: unknown command or option, bad option value
        exc.show(file=sys.stderr)
        code = 2
    except typer.Abort:
        _err("aborted")
        code = 130
    except LlmdctlError as exc:
        if debug:
            raise
        _err(f"error: {exc.message}")
        if exc.hint:
            _err(f"hint: {exc.hint}")
        code = exc.exit_code
    except KeyboardInterrupt:
        _err("interrupted")
        code = 130
    except BrokenPipeError:
        code = 0
    except Exception as exc:  # a bug: say so plainly, point at --debug
        if debug:
            raise
        _err(f"internal error: {type(exc).__name__}: {exc}")
        _err("this is a bug in llmdctl; rerun with --debug for a traceback and report it")
        code = 1
    if argv is None:
        sys.exit(code)
    return code


if __name__ == "__main__":
    main()
