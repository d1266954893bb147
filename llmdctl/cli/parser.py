"""Every command, option and help text of the command line, declared once.

Shared option groups (stack inputs, cluster access, output format) are added by one function
each, so render, validate, apply, diff, verify and doctor take exactly the same stack inputs.
Each sub-command names the handler that runs it as ``module:function`` under ``llmdctl.cli``;
``main`` imports only the module of the command being run, so ``render`` never loads the cluster
code and ``--help`` loads none.
"""

from __future__ import annotations

import argparse
import re

from ..base.errors import InputError, mask_tokens

DESCRIPTION = (
    "Compose llm-d prefill/decode (P/D) disaggregated serving stacks into Helmfile bundles.\n\n"
    "Pick hardware, gateway and layout; llmdctl merges catalog layers into values for llm-d's router\n"
    "chart and a model-server chart it generates, pins them in a helmfile, and checks them before\n"
    "anything touches a cluster. Older llm-d releases (--llmd-version v0.6.0 and before) get their\n"
    "helmfile-era charts instead; `llmdctl versions` lists what each release deploys."
)


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the line breaks of descriptions and examples; says "Usage:" like most CLIs."""

    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=32, width=100)

    def add_usage(self, usage, actions, groups, prefix=None):
        super().add_usage(usage, actions, groups, prefix="Usage: " if prefix is None else prefix)


class UsageError(InputError):
    """A command line argparse rejects: shown with the command's usage line, exit 2."""

    def __init__(self, message: str, usage: str):
        super().__init__(message, hint=f"see: {usage.split(' [', 1)[0].replace('Usage: ', '')} --help")
        self.usage = usage


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):
        # raised, not printed: main() reports it like every other error (masked, JSON with -o json)
        raise UsageError(f"{self.prog}: {mask_tokens(message)}", self.format_usage().strip())

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", _Formatter)
        kwargs.setdefault("allow_abbrev", False)  # --pre must not silently mean --prefill
        super().__init__(*args, **kwargs)


def whole_number(text: str) -> int:
    """An argparse type: ASCII digits only (int() also takes '٣' and ' 3_0'; a flag should not)."""
    if not re.fullmatch(r"[0-9]+", text):
        raise argparse.ArgumentTypeError(f"expected a whole number (digits 0-9), got {text!r}")
    return int(text)


def decimal_number(text: str) -> float:
    """An argparse type: a non-negative decimal in ASCII (float() also takes 'nan', 'inf' and '٣')."""
    if not re.fullmatch(r"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?", text):
        raise argparse.ArgumentTypeError(f"expected a number such as 45 or 0.5 (digits 0-9), got {text!r}")
    return float(text)


def _examples(*lines: str) -> str:
    return "Examples:\n" + "".join(f"  {line}\n" for line in lines)


def add_stack_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("stack inputs (flags override the spec file)")
    g.add_argument("-f", "--file", metavar="FILE", help="Spec file (YAML, schema in schemas/spec.schema.json); flags override it.")
    g.add_argument("-e", "--environment", action="append", metavar="NAME",
                   help="Hardware profile, overlay, gateway or alias; repeatable (-e amd -e host-network). Default: nvidia-ib + standalone (nvidia-ib + istio before llm-d v0.8).")
    g.add_argument("-n", "--namespace", help="Target namespace. Default: $NAMESPACE, else the guide's (llm-d-pd).")
    g.add_argument("--postfix", help="Release postfix that tells stacks apart: router-<postfix>, ms-<postfix> (and gateway-<postfix> in gateway mode). Default: $RELEASE_NAME_POSTFIX, else pd.")
    g.add_argument("--guide", help="pd-disaggregation (default) or inference-scheduling (aggregated).")
    g.add_argument("--llmd-version", metavar="VERSION", help="llm-d release whose charts and images are pinned: v0.8.0 and newer deploy llm-d's router chart and a generated model-server chart, v0.6.0 and older the helmfile-era charts. Default: $LLMD_VERSION, else the release `llmdctl versions` marks default.")
    g.add_argument("--model", help="Hugging Face model id (or hf://, pvc://, oci:// URI). Default: the hardware profile's.")
    g.add_argument("--model-size", metavar="SIZE", help="Model volume size, e.g. 100Gi. Default: estimated from the model (guides/models.yaml).")
    g.add_argument("--prefill", metavar="NxTPm", help="Prefill layout REPLICASxTPn, e.g. 4xTP1; 0 for aggregated serving.")
    g.add_argument("--decode", metavar="NxTPm", help="Decode layout REPLICASxTPn, e.g. 1xTP4.")
    g.add_argument("--pd-threshold", type=whole_number, metavar="TOKENS",
                   help="Selective P/D: only prompts with more than this many uncached tokens go through prefill (0 = always).")
    g.add_argument("--prefix-cache", choices=("approx", "precise"),
                   help="How the EPP knows what each vLLM pod has cached: approx (default) infers it from its own routing; "
                        "precise reads vLLM's KV events (ZMQ, one socket per pod) and tokenizes through the decode pods (llm-d v0.9.0).")
    g.add_argument("--autoscale", action="append", metavar="ROLE=MIN-MAX",
                   help="An HPA per role between MIN and MAX replicas (llm-d v0.8.0+): decode=1-4, prefill=2-8. Aggregated stacks scale on the "
                        "EPP's pool queue and KV-cache averages, P/D roles on their own vLLM queue (and decode KV-cache use); "
                        "`llmdctl doctor` checks that a metrics adapter serves them.")
    g.add_argument("--attach-gateway", metavar="[NS/]GATEWAY",
                   help="Route through an existing Gateway (another stack's gateway-<postfix>, or a shared one) instead of deploying one; "
                        "the route then matches the request's model name, so several models share the Gateway (llm-d v0.8.0+, gateway mode; "
                        "needs body-based routing on that Gateway, which `llmdctl doctor` checks).")
    g.add_argument("--route-by-model", action=argparse.BooleanOptionalAction, default=None,
                   help="Match this stack's route on the request's model name (X-Gateway-Model-Name), so other stacks can --attach-gateway to its Gateway. "
                        "--no-route-by-model with --attach-gateway matches every request on the path instead (the shape `llmdctl migrate` leaves).")
    g.add_argument("--hf-secret", metavar="NAME", help="Name of the Secret holding HF_TOKEN (never the token itself). Default: llm-d-hf-token.")
    g.add_argument("--rdma-resource", metavar="NAME[=N]", help="RDMA resource name[=count] your cluster advertises (rdma/ib, rdma/roce_gdr=2, ...), or none.")
    g.add_argument("--toleration", dest="tolerations", action="append", metavar="KEY[=VALUE][:EFFECT]",
                   help="Let the vLLM pods onto nodes with this taint, beside the profile's own GPU tolerations "
                        "(repeatable): dedicated=llm:NoSchedule; without =VALUE any value, without :EFFECT every effect.")
    g.add_argument("--rollout", choices=("surge", "in-place", "recreate"),
                   help="How a change replaces the vLLM pods: surge (new pods first, zero downtime, needs spare GPUs), in-place "
                        "(one pod at a time, old one first), recreate (all at once, the stack goes down). Default: apply picks per "
                        "role from the free GPUs; a bundle rendered without a cluster rolls in place.")
    g.add_argument("--network-policy", choices=("on", "off"),
                   help="NetworkPolicies in the bundle (default on): model-server ports open only to the stack's EPP, its Gateway, its "
                        "own model servers and the metrics scraper; the EPP only to the Gateway (standalone: Envoy's listener). off for "
                        "clusters whose network plugin does not enforce them (`llmdctl doctor` tells where it can).")
    g.add_argument("--metrics-namespace", metavar="NS",
                   help="Namespace of the Prometheus that scrapes the stack: the NetworkPolicies admit vLLM's and the EPP's metrics ports "
                        "from it. Default: llm-d-monitoring (where llm-d's quickstart installs Prometheus).")
    g.add_argument("--set", dest="set_", action="append", metavar="R.PATH=V",
                   help="Override one value, applied last: RELEASE.PATH=VALUE (ms.decode.replicas=2; ms.roles.* means both roles).")
    g.add_argument("--values", action="append", metavar="R=FILE", help="Merge a values file into one release, applied last: RELEASE=FILE (ms=extra.yaml).")
    g.add_argument("--scorer", action="append", metavar="[PROFILE:]NAME=W",
                   help="EPP scorer weight in every scheduling profile (or one): prefix-cache=2, kv-cache-utilization=2, decode:queue=3; 0 removes it.")
    g.add_argument("--scheduler-param", action="append", metavar="PLUGIN.P=V",
                   help="EPP plugin parameter, checked against the plugins and parameter types of the pinned EPP "
                        "(`llmdctl versions -o json` lists them): approx-prefix-cache-producer.maxPrefixTokensToMatch=65536.")
    g.add_argument("--charts", metavar="DIR",
                   help="Take the pinned charts from this folder (packages or chart folders; fill it with `llmdctl charts pull DIR`): no registry is contacted.")
    g.add_argument("--chart-repo", metavar="URL", help="Take every pinned chart from this mirror: oci://host/path or https://host/path.")


def add_cluster_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("cluster and tools")
    g.add_argument("--kube-context", metavar="NAME",
                   help="kubeconfig context; every command is pinned to it. Default: the current context (refused when none is set).")
    g.add_argument("--kubeconfig", metavar="FILE", help="kubeconfig file. Default: $KUBECONFIG, else ~/.kube/config.")
    g.add_argument("--helmfile-bin", metavar="PATH", help="helmfile executable. Default: helmfile on PATH.")
    g.add_argument("--helm-bin", metavar="PATH", help="helm executable. Default: helm on PATH.")
    g.add_argument("--kubectl-bin", metavar="PATH", help="kubectl executable. Default: kubectl on PATH.")


def add_output(p: argparse.ArgumentParser, *choices: str) -> None:
    p.add_argument("-o", "--output", choices=choices, default="text", help=f"{', '.join(choices[:-1])} or {choices[-1]}.")


def _target_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("-n", "--namespace", help="Namespace. Default: $NAMESPACE, else llm-d-pd.")
    p.add_argument("--postfix", help="Release postfix of the stack. Default: $RELEASE_NAME_POSTFIX, else pd.")


def _timeout(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--timeout", default="20m", metavar="DURATION", help=f"{what}: how long to wait, e.g. 90s, 20m, 1h. Default: 20m.")


def _render(p):
    add_stack_options(p)
    p.add_argument("-o", "--output", metavar="DIR", help="Bundle folder. Default: ./llmd-<namespace>-<postfix>/")
    p.add_argument("--print", dest="print_", action="store_true", help="Write the bundle to stdout instead of a folder.")
    p.add_argument("--force", action="store_true", help="Write into a -o folder that holds files llmdctl did not write: the bundle's files replace any of the "
                        "same name (each is named); nothing else in the folder is touched.")
    g = p.add_argument_group("GitOps (the bundle deployed by Argo CD or Flux from a Git repository)")
    g.add_argument("--gitops", choices=("argocd", "flux"),
                   help="Also write gitops/: argocd: an Application per release, ordered by sync waves as helmfile's needs orders them, an "
                        "app-of-apps and the argocd-cm health checks; flux: OCIRepository/HelmRepository + HelmRelease per release with "
                        "dependsOn, and a GitRepository for the generated charts.")
    g.add_argument("--repo-url", metavar="URL", help="With --gitops: the Git repository the bundle is committed to (https://... or ssh://...).")
    g.add_argument("--path", metavar="PATH", help="With --gitops: the bundle's folder inside that repository, e.g. stacks/pd. Default: its root.")
    g.add_argument("--revision", metavar="BRANCH", help="With --gitops: the branch (or commit SHA) the controller follows. Default: main.")


def _validate(p):
    add_stack_options(p)
    add_output(p, "text", "json")


def _apply(p):
    add_stack_options(p)
    add_cluster_options(p)
    _bundle_dir(p)
    p.add_argument("--create-namespace", action="store_true", help="Create the namespace when it does not exist (the HF token Secret still has to be created).")
    p.add_argument("--dry-run", action="store_true", help="Print the files and every command, run nothing, write nothing.")
    p.add_argument("--sync", action="store_true", help="Use `helmfile sync` (always a new revision) instead of `helmfile apply` (only what changed; needs helm-diff).")
    p.add_argument("--recover", action="store_true",
                   help="Clear releases a cut-off helm run left pending-* (uninstall a never-finished install, roll back an upgrade), then apply. Only when no other helm run works on the stack.")
    p.add_argument("--wait", action="store_true", help="After applying, wait until `llmdctl verify` passes.")
    p.add_argument("--force", action="store_true",
                   help="Apply even when the pre-apply checks (admission dry-run, quotas, placement; as `llmdctl doctor`) say the pods "
                        "will be refused or cannot be placed: the releases install, the pods do not start.")
    _timeout(p, "With --wait")
    _yes(p)


def _verify(p):
    add_stack_options(p)
    add_cluster_options(p)
    p.add_argument("--wait", action="store_true", help="Watch until every check passes (or --timeout), reporting pods ready per role.")
    _timeout(p, "With --wait")
    p.add_argument("--smoke", action="store_true", help="Also send GET /v1/models and one completion through the gateway, and check a prefill pod served it.")
    p.add_argument("--endpoint", metavar="URL", help="With --smoke: base URL of the gateway. Default: the Gateway's address.")
    p.add_argument("--port-forward", action="store_true", help="With --smoke: reach the gateway Service through kubectl port-forward.")
    add_output(p, "text", "json")


def _doctor(p):
    add_stack_options(p)
    add_cluster_options(p)
    add_output(p, "text", "json")


def _diff(p):
    add_stack_options(p)
    add_cluster_options(p)
    add_output(p, "text", "json")


def _destroy(p):
    _target_options(p)
    add_cluster_options(p)
    _bundle_dir(p)
    p.add_argument("--dry-run", action="store_true", help="Print the commands destroy would run (assuming everything exists), run nothing.")
    p.add_argument("--force", action="store_true",
                   help="Remove the stack's Gateway even while other stacks' routes attach to it (--attach-gateway); their models stop being served.")
    _yes(p)
    add_output(p, "text", "json")


def _rollback(p):
    _target_options(p)
    add_cluster_options(p)
    _bundle_dir(p)
    p.add_argument("--to", type=whole_number, metavar="REVISION", help="The revision to return to (`llmdctl status --postfix P` lists them). Default: the one before the current.")
    p.add_argument("--dry-run", action="store_true", help="Print the files and every command the rollback would run, run nothing, write nothing.")
    p.add_argument("--wait", action="store_true", help="After rolling back, wait until `llmdctl verify` passes.")
    p.add_argument("--force", action="store_true", help="Roll back even when the pre-apply checks say the pods will be refused or cannot be placed.")
    p.set_defaults(sync=False, create_namespace=False, recover=False)
    _timeout(p, "With --wait")
    _yes(p)


def _migrate(p):
    add_stack_options(p)
    add_cluster_options(p)
    _bundle_dir(p)
    p.add_argument("--from", dest="from_postfix", required=True, metavar="POSTFIX",
                   help="The running stack to replace (same namespace, gateway mode); the new stack takes --postfix.")
    p.add_argument("--steps", default="25,50,100", metavar="PERCENT,...",
                   help="Shares of requests moved to the new stack, rising to 100. Default: 25,50,100.")
    p.add_argument("--pause", default="60s", metavar="DURATION", help="How long each step is held and watched before the next. Default: 60s.")
    p.add_argument("--dry-run", action="store_true", help="Print the steps and the new stack's files and commands; run nothing.")
    p.set_defaults(sync=True, create_namespace=False, recover=False, force=False)
    _timeout(p, "For the new stack to become healthy")
    _yes(p)


def _status(p):
    p.add_argument("-n", "--namespace", help="Namespace. Default: $NAMESPACE, else llm-d-pd.")
    p.add_argument("-A", "--all-namespaces", action="store_true", help="Every namespace.")
    p.add_argument("--postfix", help="Only this stack, with the revisions apply kept of it (what `llmdctl rollback` can return to).")
    add_cluster_options(p)
    _bundle_dir(p)
    add_output(p, "text", "json", "yaml")


def _charts(p):
    actions = p.add_subparsers(dest="action", metavar="ACTION", parser_class=_Parser, required=True)
    for name, handler, summary, examples in (
        ("pull", "charts:pull", "Fetch the charts an llm-d release pins into DIR (with their subcharts); what is there is kept.",
         ("llmdctl charts pull ./llmd-charts", "llmdctl charts pull ./llmd-charts --llmd-version v0.4.0 -o json",
          "llmdctl charts pull ./llmd-charts --chart-repo oci://harbor.example.com/llm-d")),
        ("list", "charts:list_charts", "Show which of the pinned charts DIR holds (exit 1 when one is missing).",
         ("llmdctl charts list ./llmd-charts",)),
    ):
        a = actions.add_parser(name, help=summary, description=summary, epilog=_examples(*examples))
        a.add_argument("dir", metavar="DIR", help="Chart folder (created by pull).")
        a.add_argument("--llmd-version", metavar="VERSION", help="llm-d release whose charts are pinned. Default: the catalog's default.")
        if name == "pull":
            a.add_argument("--chart-repo", metavar="URL", help="Pull from this mirror instead of upstream (oci://... or https://...).")
            a.add_argument("--helm-bin", metavar="PATH", help="helm executable. Default: helm on PATH.")
        add_output(a, "text", "json", "yaml")
        a.set_defaults(handler=handler, parser=a)


def _plan(p):
    p.add_argument("action", nargs="?", choices=("calibrate",), metavar="calibrate",
                   help="`plan calibrate`: store measured figures (--peak-prefill, --decode-point, --link-gbps) in --calibration FILE.")
    g = p.add_argument_group("hardware (from the -e profile unless given)")
    g.add_argument("-e", "--environment", action="append", metavar="NAME", help="Hardware profile (llmdctl profiles). Default: nvidia-ib.")
    g.add_argument("--gpu", help="Accelerator: H100, H200, B200, GB200, GH200, MI300X, MI355X. Default: the profile's.")
    g.add_argument("--network", help="KV path between prefill and decode: ib, roce, tcp, cuda-ipc, mnnvl. Default: the profile's.")
    g.add_argument("--gpus", type=whole_number, metavar="N", help="GPU budget. Default: one node without a load target, else eight nodes.")
    g.add_argument("--fill", action="store_true", default=None,
                   help="Spend the whole --gpus budget (more headroom, lower latency) instead of the fewest GPUs that meet the target.")
    g.add_argument("--gpus-per-node", type=whole_number, metavar="N", help="GPUs per node (the largest TP). Default: the profile's.")
    m = p.add_argument_group("model (a known name, or its architecture; flags override a known model's facts)")
    m.add_argument("--model", help="Hugging Face id. Default: the profile's model.")
    for flag, kind, what in (("--params", decimal_number, "total parameters, billions"), ("--active-params", decimal_number, "active parameters per token (MoE), billions"),
                             ("--layers", whole_number, "transformer layers"), ("--hidden", whole_number, "hidden size"), ("--heads", whole_number, "attention heads"),
                             ("--kv-heads", whole_number, "KV heads"), ("--head-dim", whole_number, "head dimension"), ("--experts", whole_number, "routed experts (MoE)"),
                             ("--top-k", whole_number, "experts per token (MoE)")):
        m.add_argument(flag, type=kind, metavar="N", help=what.capitalize() + ".")
    m.add_argument("--dtype", choices=("bf16", "fp16", "fp8", "int8", "fp4", "int4"), help="Weight dtype as served.")
    m.add_argument("--kv-dtype", choices=("bf16", "fp16", "fp8"), help="KV cache dtype. Default: bf16 (or the model's).")
    w = p.add_argument_group("workload and targets")
    w.add_argument("--isl", type=whole_number, metavar="TOKENS", help="Mean input tokens per request (required to plan).")
    w.add_argument("--osl", type=whole_number, metavar="TOKENS", help="Mean output tokens per request (required to plan).")
    w.add_argument("--prefix-hit", type=decimal_number, metavar="FRACTION", help="Share of each prompt already in the prefix cache (0-1).")
    w.add_argument("--rate", type=decimal_number, metavar="REQ/S", help="Target request rate (or --concurrency; neither: the most requests/s the budget serves).")
    w.add_argument("--concurrency", type=whole_number, metavar="N",
                   help="Closed loop: N users, each sending its next request when the previous finishes (vllm bench serve --max-concurrency).")
    w.add_argument("--ttft", metavar="DURATION", help="Mean time-to-first-token SLA, e.g. 2s or 800ms.")
    w.add_argument("--tpot", metavar="DURATION", help="Mean time-per-output-token SLA, e.g. 50ms.")
    w.add_argument("--engine", choices=("vllm", "sglang"), default="vllm", help="Serving engine (SGLang pairs equal TPs). Default: vllm.")
    c = p.add_argument_group("calibration (measured figures replace the priors; ranges shrink to +-10%)")
    c.add_argument("--calibration", metavar="FILE", help="Calibration file: read by plan, written by plan calibrate.")
    c.add_argument("--tp", type=whole_number, choices=(1, 2, 4, 8),
                   help="plan: search only layouts whose workers use this TP; plan calibrate: the TP the figures were measured at.")
    c.add_argument("--peak-prefill", type=decimal_number, metavar="TOKENS/S", help="plan calibrate: peak prefill throughput of one worker (llm-d calibrate.sh).")
    c.add_argument("--chunk", type=whole_number, metavar="TOKENS", help="plan calibrate: the prefill chunk it was measured at. Default: 8192.")
    c.add_argument("--decode-point", action="append", metavar="B:CTX:MS", help="plan calibrate: one decode step, batch:context:milliseconds; give two.")
    c.add_argument("--link-gbps", type=decimal_number, metavar="GB/S", help="plan calibrate: measured NIXL/UCX bandwidth between a prefill and a decode pod.")
    c.add_argument("--engine-version", metavar="VERSION", help="The engine version: recorded by plan calibrate; plan doubles the band of a calibration from another version.")
    w.add_argument("--plot", metavar="FILE.svg", help="Write the Pareto frontier of the searched layouts (requests/s per GPU vs TPOT) as SVG.")
    lw = p.add_argument_group("what-if (evaluate this layout instead of searching; render's grammar)")
    lw.add_argument("--prefill", metavar="NxSHAPE", help="Prefill workers, e.g. 8xTP1, or MoE instances 2xDP8EP; 0 for aggregated serving.")
    lw.add_argument("--decode", metavar="NxSHAPE", help="Decode (or, with --prefill 0, aggregated) workers, e.g. 2xTP4.")
    w.add_argument("--from-aic", metavar="CSV", help="Take the layout from AIConfigurator's best_config_topn.csv and add the KV-transfer, network and rule checks it lacks.")
    p.add_argument("-o", "--output", choices=("text", "json", "spec"), default="text",
                   help="text, json, or spec: a spec file that `llmdctl render|apply -f` take unchanged.")


def _completion(p):
    p.add_argument("shell", choices=("bash", "zsh", "fish"), help="The shell to write the script for.")


def _listing(p):
    add_output(p, "text", "json", "yaml")


def _layers(group: str, example: str):
    def options(p):
        add_output(p, "text", "json", "yaml")
        p.set_defaults(group=group)
        actions = p.add_subparsers(dest="action", metavar="ACTION", parser_class=_Parser)
        show = actions.add_parser("show", help="Print one layer file as shipped.", description="Print one layer file as shipped.",
                                  epilog=_examples(example))
        show.add_argument("name", metavar="NAME", help="Layer name.")
        show.set_defaults(handler="catalog:show_layer", group=group, parser=show)

    return options


_STATUS_WHAT = ("One row per postfix: its releases with chart version, revision and status, and when it was last\n"
                "deployed. A stack is `deployed` when all its releases are (router and ms, plus gateway in\n"
                "gateway mode; infra, gaie and ms for the helmfile era); `incomplete`, `pending` or `failed`\n"
                "otherwise. LAYOUT is what the model servers run, read from their Deployments and\n"
                "LeaderWorkerSets (replicas, group size, vLLM's TP/DP/EP flags) and spelled as --prefill and\n"
                "--decode take it: `prefill 2xDP8EP (2 pods each)` (`roles` in -o json). Below it, one row per\n"
                "model each of those stacks' Gateways serves (from the HTTPRoutes' X-Gateway-Model-Name\n"
                "matches; `*` is a route that takes any other model), with the route, pool and postfix\n"
                "(`gateways` in -o json). With --postfix, the stack's revisions as apply kept them on this\n"
                "machine (`revisions` in -o json; `llmdctl rollback --to N` returns to one). For pods,\n"
                "gateway and route health use `llmdctl verify`.")

# name, handler (module:function under llmdctl.cli), summary, description, examples, options
COMMANDS = [
    ("render", "stack:render", "Compose and validate a stack, then write its helmfile bundle.",
     "The bundle holds helmfile.yaml with pinned charts: router-<postfix> from llm-d's router chart\n"
     "(standalone, or gateway mode with -e istio|kgateway|agentgateway|gke, which also renders the\n"
     "HTTPRoute), ms-<postfix> from a model-server chart llmdctl writes under charts/ms, and in gateway\n"
     "mode gateway-<postfix>, the stack's Gateway; router.values.yaml; and a README with the commands\n"
     "to apply, verify and clean up. --llmd-version v0.6.0 and older write that release's helmfile-era\n"
     "bundle instead (`llmdctl versions`). Same inputs, byte-identical files.",
     ("llmdctl render -e amd -o amd-bundle", "RELEASE_NAME_POSTFIX=pd-2 llmdctl render --prefill 2xTP2 --decode 1xTP4",
      "llmdctl render -e gke --print | less", "llmdctl render -f llmd.yaml --set ms.decode.replicas=2",
      "llmdctl render --llmd-version v0.9.0 -e amd"), _render),
    ("validate", "stack:validate", "Run inputs through composition, schemas and rules without writing anything.",
     "Exit 0 when the stack can be rendered (warnings allowed), 2 when it is refused.",
     ("llmdctl validate -e gh200-timeslice", "llmdctl validate -f llmd.yaml -o json | jq '.findings[]'"), _validate),
    ("apply", "cluster:apply", "Render, then install or upgrade the stack's releases in needs order: gateway-, router-, ms-<postfix>.",
     "Validates and renders like `render`, keeps the bundle in ~/.local/state/llmdctl/bundles/<context>/<namespace>/<postfix>/\n"
     "($LLMDCTL_STATE_DIR or $XDG_STATE_HOME move it), then\n"
     "runs `helmfile apply` (or `sync` without the helm-diff plugin) for one release at a time in needs\n"
     "order (gateway-<postfix> only in gateway mode; a helmfile-era bundle also gets its HTTPRoute with\n"
     "`kubectl apply`). It first runs doctor's admission, quota and placement checks and refuses a stack\n"
     "whose pods the cluster would not start (--force to apply anyway), shows the context, namespace,\n"
     "postfix and what will be installed or upgraded, and asks. A failed step stops the run and says how\n"
     "to resume; pods the API server refuses after the install make it exit 1 with the cause.",
     ("llmdctl apply -e amd -n llm-d-pd -y", "RELEASE_NAME_POSTFIX=pd-2 llmdctl apply --prefill 2xTP2 --decode 1xTP4 -y",
      "llmdctl apply -e gke --kube-context gke-prod --dry-run", "llmdctl apply -f llmd.yaml --create-namespace --wait -y"), _apply),
    ("verify", "cluster:verify", "Check that a stack is deployed, ready and routed, from the same plan `render` builds.",
     "Checks the stack's Helm releases, the prefill/decode workloads (planned replicas ready; pods with the\n"
     "planned image, GPU and RDMA resources and the pool's labels), the scheduler (EPP), the InferencePool\n"
     "selecting ready pods of each role, the Gateway (Programmed, with an address) and the HTTPRoute\n"
     "(Accepted, ResolvedRefs), and with --autoscale each HPA (range, ScalingActive). Unhealthy pods come\n"
     "with events, log lines and a fix. --smoke sends one completion and proves a prefill pod served it;\n"
     "with --prefix-cache precise it also checks that the EPP received that pod's KV events (its /metrics,\n"
     "through a port-forward). Exit 0 only when every check passes.",
     ("llmdctl verify -e amd", "llmdctl verify --wait --timeout 30m", "llmdctl verify --smoke --port-forward",
      "llmdctl verify -o json | jq '.checks[] | select(.status != \"pass\")'"), _verify),
    ("doctor", "cluster:doctor",
     "Check a cluster before apply: tools, API server, CRDs, GatewayClass, admission, quotas, GPU/RDMA placement, HF Secret.",
     "Stores nothing. Every pod template of the bundle (rendered by helmfile as apply renders it) is sent\n"
     "to the API server as a Pod with server-side dry-run, so PodSecurity, ResourceQuota, LimitRange and\n"
     "validating webhooks judge it; each refusal is quoted with its fix. Quotas are also summed over all\n"
     "the stack's pods. Placement is checked for the layout you ask for (same inputs as render): every\n"
     "prefill and decode pod must fit on one node's free accelerators and RDMA (allocatable minus what\n"
     "other pods request) among the nodes whose taints it tolerates and whose labels match its\n"
     "nodeSelector and affinity (excluded nodes are named; --toleration adds tolerations). CRDs are those\n"
     "the rendered charts use (Prometheus operator kinds unless -e no-monitoring); with --autoscale, the\n"
     "metrics APIService and the metric names the HPAs read. Exit 1 when anything fails; warnings alone exit 0.",
     ("llmdctl doctor -e amd", "llmdctl doctor --toleration dedicated=llm:NoSchedule",
      "llmdctl doctor -e gh200 --kube-context edge -o json"), _doctor),
    ("diff", "cluster:diff", "Show what `apply` would change: the rollout plan, then `helmfile diff` of the stack's releases.",
     "The rollout plan is read from the cluster (no plugin needed): per role, what changes in the pods\n"
     "(image, args, env, resources, count), whether they are replaced, and how: surge when a new pod fits\n"
     "beside the old ones, in place (one at a time) when the GPUs are full, refused when even that cannot\n"
     "finish. -o json prints that plan alone. The release-level diff needs the helm-diff plugin and goes\n"
     "to stdout after it; exit 0 whether or not anything differs (the last stderr line says which).",
     ("llmdctl diff -e amd", "RELEASE_NAME_POSTFIX=pd-2 llmdctl diff --decode 2xTP4 | less"), _diff),
    ("destroy", "cluster:destroy", "Remove one stack: helmfile destroy, then any of its releases left (ms-, router-, gateway-<postfix>).",
     "Only the named postfix in the named namespace is touched; the namespace, the HF token Secret, other\n"
     "stacks and anything llmdctl did not create stay. Running it again says \"nothing to remove\" and exits 0.",
     ("llmdctl destroy -n llm-d-pd --postfix pd-2 -y", "RELEASE_NAME_POSTFIX=pd-2 llmdctl destroy --dry-run"), _destroy),
    ("rollback", "cluster:rollback", "Return a stack to an earlier revision: all its releases together, through apply's checks and rollout rules.",
     "Every apply keeps its bundle, the flags that made it and each release's Helm revision as a revision\n"
     "of the stack (the last 10, beside the kept bundle). rollback re-plans the chosen revision from\n"
     "those flags, refuses when that no longer gives byte-identical files (a values file changed since),\n"
     "then applies it as apply does: the admission, quota and placement checks, a rollout chosen from the\n"
     "free GPUs (refused when it cannot finish), all releases in needs order. The rollback is itself a\n"
     "new revision. `llmdctl status --postfix P` lists the revisions.",
     ("llmdctl rollback --postfix pd -y", "llmdctl rollback -n llm-d-pd --postfix pd --to 3 --wait -y", "llmdctl rollback --dry-run"), _rollback),
    ("migrate", "cluster:migrate", "Replace a running stack blue/green: install the new one beside it, move requests at the Gateway in steps, then remove the old.",
     "For what cannot roll in place: another llm-d generation (v0.6.0 -> v0.9.0), another model, a layout\n"
     "the GPUs cannot hold twice over. The new stack (your stack options, under its own --postfix) is\n"
     "installed through apply's checks, attached to the old stack's Gateway, and must pass verify. The old\n"
     "stack's HTTPRoute then sends --steps of the requests to the new InferencePool (weighted backends),\n"
     "each held --pause while verify's checks watch the new stack; any failure puts every request back on\n"
     "the old stack and exits 1. At 100% the old route and releases go, except the release that holds\n"
     "the Gateway: it is the clients' address, and the new stack routes through it.",
     ("llmdctl migrate --from pd --postfix pd-v09 -e istio --llmd-version v0.9.0 -y",
      "llmdctl migrate --from pd --postfix pd-2 -e istio --model Qwen/Qwen3-32B --steps 10,50,100 --pause 5m -y",
      "llmdctl migrate --from pd --postfix pd-v09 -e istio --dry-run"), _migrate),
    ("status", "cluster:status", "List the llmdctl stacks in a namespace from Helm's release records.", _STATUS_WHAT,
     ("llmdctl status", "llmdctl status -A -o json | jq '.stacks[].postfix'"), _status),
    ("list", "cluster:status", "Same as `status`: the llmdctl stacks in a namespace (or all, with -A).", _STATUS_WHAT,
     ("llmdctl list", "llmdctl list -A -o json | jq '.stacks[].postfix'"), _status),
    ("charts", "charts:list_charts", "Keep the pinned charts in a folder for clusters without internet: `pull DIR`, `list DIR`.",
     "`charts pull DIR` runs `helm pull` for each chart the llm-d release pins (and `helm dependency build`\n"
     "for a package that lacks its subcharts) where the registries are reachable. Then\n"
     "`llmdctl render|apply --charts DIR` writes a bundle whose helmfile.yaml points at those files:\n"
     "nothing is fetched at apply time, and plain `helmfile apply` works in the bundle too. A pinned\n"
     "version the folder lacks is refused, never replaced by another.",
     ("llmdctl charts pull ./llmd-charts", "llmdctl apply --charts ./llmd-charts -y", "llmdctl charts list ./llmd-charts -o json"), _charts),
    ("plan", "sizing:plan", "Choose the xPyD layout (or aggregated) from model, hardware, ISL/OSL and SLAs, with ranges.",
     "A roofline model of prefill and decode per TP (MoE also per expert-parallel DPxEP group, with its\n"
     "all-to-all over NVLink or the NICs), under pessimistic, middle and optimistic priors, sizes\n"
     "prefill and decode pools the way AIConfigurator rate-matches them and compares them with aggregated\n"
     "serving on the same budget. P/D is recommended only when it still wins at the pessimistic end, the\n"
     "KV path is RDMA and prompts are long; otherwise aggregated, with the reason. Every figure is a\n"
     "low - mid - high range; SLAs are means. --rate is open-loop arrivals, --concurrency N closed-loop\n"
     "users. --prefill/--decode evaluate a given layout instead of searching (what-if). Without SLAs it\n"
     "also shows the latency each layout buys: the best aggregated and P/D side by side and the Pareto\n"
     "frontier of the searched layouts (--plot FILE.svg). Nothing touches a cluster.",
     ("llmdctl plan -e nvidia-ib --model openai/gpt-oss-120b --gpus 16 --isl 5000 --osl 250 --rate 45",
      "llmdctl plan --model openai/gpt-oss-120b --prefill 8xTP1 --decode 2xTP4 --isl 5000 --osl 250 --concurrency 64",
      "llmdctl plan --model meta-llama/Llama-3.1-8B-Instruct --isl 1000 --osl 200 --rate 20 -o json",
      "llmdctl plan --isl 8000 --osl 500 --rate 10 --ttft 2s --tpot 40ms -o spec > plan.yaml && llmdctl apply -f plan.yaml"), _plan),
    ("profiles", "catalog:list_layers", "List hardware profiles and overlays, or show one with `show NAME`.", "",
     ("llmdctl profiles -o json", "llmdctl profiles show gh200-timeslice"), _layers("profiles", "llmdctl profiles show gh200-timeslice")),
    ("gateways", "catalog:list_layers", "List gateway providers, or show one with `show NAME`.", "",
     ("llmdctl gateways -o json", "llmdctl gateways show gke"), _layers("gateways", "llmdctl gateways show gke")),
    ("guides", "catalog:list_layers", "List guides, or show one with `show NAME`.", "",
     ("llmdctl guides -o json", "llmdctl guides show inference-scheduling"), _layers("guides", "llmdctl guides show inference-scheduling")),
    ("versions", "catalog:versions", "List the llm-d releases llmdctl can pin, with their chart versions and images.", "",
     ("llmdctl versions -o json",), _listing),
    ("rules", "catalog:rules", "List the validation rules llmdctl runs on every plan, with why and source.", "",
     ("llmdctl rules -o json", "llmdctl rules | grep V-15"), _listing),
    ("completion", "completion:completion", "Print a shell completion script: commands, flags, choices and catalog names.",
     "The script is static (generated from this parser by shtab): pressing TAB never starts llmdctl. It\n"
     "completes -e with the profiles, overlays, gateways and aliases, --guide, --llmd-version and the\n"
     "`show NAME` of profiles, gateways and guides from the catalog as it is now (LLMDCTL_CATALOG\n"
     "included): generate it again after adding site profiles. --postfix asks the cluster (kubectl,\n"
     "at most a second) for the stacks' ms-<postfix> Helm releases in the namespace.",
     ("source <(llmdctl completion bash)", "llmdctl completion zsh > \"${fpath[1]}/_llmdctl\"",
      "llmdctl completion fish > ~/.config/fish/completions/llmdctl.fish"), _completion),
]


def build_parser(argv: list[str] | None = None, *, every_command: bool = False) -> argparse.ArgumentParser:
    """The whole parser, with options only for the command ``argv`` names (building every
    command's options would cost more than parsing them), or for every command when
    ``every_command`` (what `llmdctl completion` describes)."""
    wanted = next((a for a in argv or () if not a.startswith("-")), None)
    root = _Parser(prog="llmdctl", description=DESCRIPTION, epilog=_examples(
        "llmdctl render -e amd -o amd-bundle", "llmdctl apply -e amd -y && llmdctl verify -e amd --wait"))
    root.add_argument("--version", action="store_true", help="Print the llmdctl version and exit.")
    root.add_argument("--debug", action="store_true", help="Show a Python traceback for errors (for bug reports); accepted anywhere.")
    sub = root.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    known = [c[0] for c in COMMANDS]
    # each parser costs a locale lookup per help string: build only the one that runs, unless
    # the root help (or a "did you mean" for an unknown command) needs them all
    only = None if every_command else wanted if wanted in known and not any(a in ("-h", "--help") for a in (argv or ())[: (argv or []).index(wanted)]) else None
    for name, handler, summary, description, examples, options in COMMANDS:
        if only and name != only:
            continue
        p = sub.add_parser(name, help=summary, description=f"{summary}\n\n{description}".rstrip(), epilog=_examples(*examples))
        p.set_defaults(handler=handler, parser=p)
        if name == wanted or every_command:
            options(p)
    return root


def _bundle_dir(p: argparse.ArgumentParser) -> None:
    p.add_argument("--bundle-dir", metavar="DIR", help="Folder that keeps this stack's applied bundle. Default: ~/.local/state/llmdctl/bundles/<context>/<namespace>/<postfix>/ (the same from every folder)")


def _yes(p: argparse.ArgumentParser) -> None:
    p.add_argument("-y", "--yes", action="store_true", help="Do not ask for confirmation.")
