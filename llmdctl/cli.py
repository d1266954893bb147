"""The command line: a thin skin that parses flags, calls the core and maps errors to exit codes.

Exit codes: 0 success; 2 usage or validation error (the input is wrong); 1 runtime failure.
Data (YAML, JSON, bundles) goes to stdout; messages, warnings and progress go to stderr.
"""

from __future__ import annotations

import functools
import inspect
import json
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


def stack_inputs(fn):
    """Give a command the shared stack options; it receives them as ``stack: dict``."""
    own = [p for p in inspect.signature(fn).parameters.values() if p.name != "stack"]
    shared = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=opt, annotation=ann) for name, ann, opt in _STACK_OPTIONS]

    @functools.wraps(fn)
    def command(**kwargs):
        stack = {name: kwargs.pop(name) for name, _, _ in _STACK_OPTIONS}
        return fn(stack=stack, **kwargs)

    command.__signature__ = inspect.Signature(shared + [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own])
    del command.__wrapped__  # typer must read the combined signature, not fn's
    return command


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
