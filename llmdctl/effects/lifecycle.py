"""apply, diff, destroy and status: the commands they run, built as data, then run in order.

The step builders are pure (a plan or a stack's names in, ``Command`` lists out), so tests and
``--dry-run`` see exactly what would run. ``run_steps`` is the only place that executes them; it stops
at the first failure and says what is already done and how to resume or clean up.

Isolation: every command names the stack's own releases (``--selector name=<release>`` on the
kept helmfile, which lists only this stack's three releases), its own HTTPRoute by name, or reads.
Nothing is ever selected by a pattern that another postfix could match.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ..base.errors import LlmdctlError
from ..compose.names import ALL_RELEASE_KEYS, GENERATED_CHARTS, RELEASE_KEYS, ROUTER_RELEASE_KEYS, hf_secret_command, release_names, stack_names
from ..compose.modelserver import ROLE_LABEL
from ..compose.router import router_pin
from ..compose.shared_gateway import route_models, route_parents
from ..inputs.charts import chart_name
from ..inputs.spec import RoleLayout
from ..plan.stack import Plan
from .bundle import HISTORY, bundle_files_in, remove_bundle, write_bundle
from .diagnosis import missing_pods, workload_refusals
from .doctor import preflight, rendered_workloads
from .health import observe_stack
from .kube import KubeError, kube_for
from .tools import INSTALL_HINTS, MINIMUMS, Command, Interrupted, StepFailed, Toolbox, ToolMissing, context_dir_name, fmt_version, helm_diff_version, require_tools

# The charts each llmdctl release can be made from, as `helm list` spells them (<chart>-<version>):
# helmfile generation (llm-d <= v0.6.0), then the router generation (>= v0.8) and its generated charts.
RELEASE_CHARTS = {
    "infra": ("llm-d-infra",), "gaie": ("inferencepool",),
    # llm-d >= v0.8: llm-d's router charts; v0.7: GAIE's standalone / inferencepool
    "router": ("llm-d-router-standalone", "llm-d-router-gateway", "standalone", "inferencepool"),
    "gateway": (GENERATED_CHARTS["gateway"],), "ms": ("llm-d-modelservice", GENERATED_CHARTS["ms"]),
}
_ROUTE_NAME = re.compile(r"(?:router|llm-d)-([a-z0-9]([-a-z0-9]*[a-z0-9])?)")  # a stack's HTTPRoute: router-<postfix> (llm-d-<postfix> before v0.8)
_RELEASE_NAME = re.compile(r"^(" + "|".join(ALL_RELEASE_KEYS) + r")-([a-z0-9]([-a-z0-9]*[a-z0-9])?)$")


def bundle_dir(base: Path, context: str, namespace: str, postfix: str) -> Path:
    """Where apply keeps a stack's bundle: one folder per context, namespace and postfix."""
    return Path(base) / context_dir_name(context) / namespace / postfix


# --- step builders (pure) ---------------------------------------------------------------------


def helmfile(verb: str, namespace: str, cwd: Path, release: str | None, label: str, *extra: str, ok_codes=(0,)) -> Command:
    args = ["--file", "helmfile.yaml", "--namespace", namespace]
    if release:
        args += ["--selector", f"name={release}"]
    return Command("helmfile", (*args, verb, *extra), label, cwd=str(cwd), ok_codes=ok_codes)


def apply_steps(plan: Plan, folder: Path, *, sync: bool, create_namespace: bool, resync: frozenset[str] = frozenset()) -> list[Command]:
    """Namespace (when asked), the three releases one by one in needs order, then the route.

    ``resync`` names releases that must be synced even under ``helmfile apply``: a failed release
    whose values did not change looks unchanged to helm-diff, which compares with that release."""
    steps: list[Command] = []
    ns = plan.namespace
    if create_namespace:
        steps.append(Command("kubectl", ("create", "namespace", ns), f"namespace {ns}"))
    for rel in plan.releases:  # infra -> gaie -> ms, the helmfile's needs order
        verb = "sync" if sync or rel.name in resync else "apply"
        chart = GENERATED_CHARTS[rel.key] if rel.generated else rel.chart.rsplit('/', 1)[-1]
        steps.append(helmfile(verb, ns, folder, rel.name, f"{rel.name} ({chart} {rel.version})", "--skip-needs"))
    if plan.generation == "helmfile":  # the router chart renders its own HTTPRoute
        steps.append(Command("kubectl", ("apply", "--namespace", ns, "--filename", "httproute.yaml"), f"HTTPRoute {plan.names['route']}", cwd=str(folder)))
    return steps


def diff_steps(plan: Plan, folder: Path) -> list[Command]:
    ns = plan.namespace
    steps = [
        # --detailed-exitcode: 0 no changes, 2 changes, 1 error
        helmfile("diff", ns, folder, None, f"releases of {plan.postfix}", "--skip-needs", "--detailed-exitcode", "--context", "3", ok_codes=(0, 2)),
    ]
    if plan.generation == "helmfile":
        # kubectl diff: 0 no differences, 1 differences, >1 error
        steps.append(Command("kubectl", ("diff", "--namespace", ns, "--filename", "httproute.yaml"), f"HTTPRoute {plan.names['route']}", cwd=str(folder), ok_codes=(0, 1)))
    return steps


def destroy_steps(namespace: str, postfix: str, present: "StackState", folder: Path | None) -> list[Command]:
    """Route first (it points at the Gateway and pool), then helmfile destroy of the kept bundle
    (ms, gaie, infra: reverse needs order). Releases it leaves behind are uninstalled afterwards."""
    names = stack_names(namespace, postfix)
    steps: list[Command] = []
    if present.route:
        steps.append(Command("kubectl", ("delete", "httproute", names["route"], "--namespace", namespace, "--ignore-not-found"), f"HTTPRoute {names['route']}"))
    if present.releases and folder is not None:
        steps.append(helmfile("destroy", namespace, folder, None, f"helmfile destroy {postfix}", "--skip-deps", "--skip-charts"))
    return steps


def uninstall_steps(namespace: str, postfix: str, present: "StackState") -> list[Command]:
    """helm uninstall for each of the stack's releases still present (either generation), dependents first."""
    names = release_names(postfix)
    return [
        Command("helm", ("uninstall", names[key], "--namespace", namespace), f"release {names[key]}")
        for key in reversed(ALL_RELEASE_KEYS) if names[key] in present.releases
    ]


def helm_list_command(namespace: str | None) -> Command:
    """All llmdctl-shaped releases (any status) in one namespace, or in all of them."""
    scope = ("--all-namespaces",) if namespace is None else ("--namespace", namespace)
    return Command("helm", ("list", *scope, "--all", "--output", "json", "--filter", "^(" + "|".join(ALL_RELEASE_KEYS) + ")-"), "list releases")


def route_query(namespace: str, postfix: str) -> Command:
    route = stack_names(namespace, postfix)["route"]
    return Command("kubectl", ("get", "httproute", route, "--namespace", namespace, "--ignore-not-found", "--output", "name"), f"HTTPRoute {route}")


def _unknown_kind(exc: StepFailed) -> bool:
    """kubectl's answer when a queried kind's CRD is not installed."""
    return any("doesn't have a resource type" in line for line in exc.stderr_tail)


def list_routes(box: Toolbox, namespace: str | None) -> list[dict] | None:
    """HTTPRoutes across the cluster (a shared Gateway takes routes from any namespace), or only
    ``namespace``'s when the user may not list them all; none when the cluster has no Gateway API,
    None when they cannot be read."""
    for scope in ((("--all-namespaces",),) if namespace is None else (("--all-namespaces",), ("--namespace", namespace))):
        try:
            text = box.query(Command("kubectl", ("get", "httproutes", *scope, "--output", "json"), "list HTTPRoutes"))
        except StepFailed as exc:
            if _unknown_kind(exc):
                return []  # no Gateway API CRDs: no routes (standalone stacks only)
            continue
        return list(json.loads(text or "{}").get("items") or [])
    return None


def gateway_models(routes: list[dict], header: str = "X-Gateway-Model-Name") -> list[dict]:
    """Which models each Gateway serves, and through which route: one entry per Gateway, its routes
    sorted, a route matching no model header listed as serving any model ("*")."""
    by_gateway: dict[tuple[str, str], list[dict]] = {}
    for r in routes:
        meta = r.get("metadata") or {}
        backends = [b for rule in (r.get("spec") or {}).get("rules") or [] for b in rule.get("backendRefs") or []]
        if not any(b.get("kind") == "InferencePool" for b in backends):
            continue  # not an inference route
        m = _ROUTE_NAME.fullmatch(str(meta.get("name", "")))
        for parent in route_parents(r):
            for model in route_models(r, header) or ["*"]:
                by_gateway.setdefault(parent, []).append({
                    "model": model, "route": f"{meta.get('namespace')}/{meta.get('name')}",
                    "pool": next((b.get("name") for b in backends if b.get("kind") == "InferencePool"), None),
                    "postfix": m.group(1) if m else None,
                })
    return [{"gateway": f"{ns}/{name}", "routes": sorted(rows, key=lambda e: (e["model"] == "*", e["model"], e["route"]))}
            for (ns, name), rows in sorted(by_gateway.items())]


def stack_gateways(routes: list[dict], stacks: list[dict], header: str) -> list[dict]:
    """The Gateways the listed stacks' routes hang off, with every model each one serves (other
    stacks' and anyone's inference routes included: that is what a request meets)."""
    ours = {(s["namespace"], s["postfix"]) for s in stacks}
    return [g for g in gateway_models(routes, header)
            if any(r["postfix"] and (r["route"].split("/", 1)[0], r["postfix"]) in ours for r in g["routes"])]


def attached_stacks(routes: list[dict]) -> set[tuple[str, str]]:
    """(namespace, postfix) of the router-generation stacks whose route hangs off a Gateway that is
    not their own gateway-<postfix> (--attach-gateway): they have no gateway release to miss."""
    out = set()
    for r in routes:
        meta = r.get("metadata") or {}
        m = re.fullmatch(r"router-(.+)", str(meta.get("name", "")))
        if m and route_parents(r) and (meta.get("namespace"), f"gateway-{m.group(1)}") not in route_parents(r):
            out.add((meta.get("namespace"), m.group(1)))
    return out


def attached_routes(routes: list[dict], namespace: str, postfix: str, generation: str = "router") -> list[str]:
    """Routes of other stacks (or anyone's) hanging off this stack's own Gateway (gateway-<postfix>;
    the helmfile era's infra-<postfix>-inference-gateway, which a blue/green move leaves to the new stack)."""
    names = stack_names(namespace, postfix, generation=generation)
    own = (namespace, names["route"])
    return sorted(f"{(r.get('metadata') or {}).get('namespace')}/{(r.get('metadata') or {}).get('name')}" for r in routes
                  if (namespace, names["gateway"]) in route_parents(r)
                  and ((r.get("metadata") or {}).get("namespace"), (r.get("metadata") or {}).get("name")) != own)


# --- what the stacks run: their model-server workloads, read back into layouts ----------------

HELM_RELEASE = "meta.helm.sh/release-name"  # helm writes it (and -namespace) on every object it installs
_ROLE_ORDER = ("prefill", "decode", "both")
_FLAG = {  # vLLM's long flags and their short aliases, as the charts and guides write them
    "tensor": r"(?:--tensor-parallel-size|-tp)", "data": r"(?:--data-parallel-size|-dp)",
    "dataLocal": r"(?:--data-parallel-size-local|-dpl)",
}
_EXPERT = re.compile(r"(?<!\S)(?:--enable-expert-parallel|-ep)(?=[\s'\"]|$)")


def workloads_query(namespace: str | None, lws: bool = True) -> Command:
    """Every Deployment (and LeaderWorkerSet) in scope: the model-server ones are told apart
    afterwards, by the helm release that owns them and their pods' role label, because the
    modelservice chart labels the objects themselves with chart labels only."""
    scope = ("--all-namespaces",) if namespace is None else ("--namespace", namespace)
    kinds = "deployments,leaderworkersets.leaderworkerset.x-k8s.io" if lws else "deployments"
    return Command("kubectl", ("get", kinds, *scope, "--output", "json"), "list model-server workloads")


def list_workloads(box: Toolbox, namespace: str | None) -> tuple[list[dict], str | None]:
    """(workloads, None), or ([], why) when they cannot be read. A cluster without the LWS CRD
    fails a query that names it, so that one is asked again for Deployments alone."""
    try:
        try:
            text = box.query(workloads_query(namespace, lws=True))
        except StepFailed as exc:
            if not _unknown_kind(exc):
                raise
            text = box.query(workloads_query(namespace, lws=False))
    except StepFailed as exc:
        return [], (exc.stderr_tail[-1] if exc.stderr_tail else str(exc))
    try:
        return [i for i in json.loads(text or "{}").get("items") or [] if isinstance(i, dict)], None
    except (ValueError, AttributeError):
        return [], "kubectl get -o json returned something that is not a JSON list"


def _vllm_flag(text: str, key: str) -> int | None | str:
    """The flag's value: an int, None when absent, "?" when not a number (a shell expression)."""
    m = re.search(r"(?<!\S)" + _FLAG[key] + r"(?:=|\s+)['\"]?([^\s'\"]+)", text)
    if not m:
        return None
    return int(m.group(1)) if m.group(1).isdigit() else "?"


def role_shape(obj: dict) -> dict | None:
    """A model-server Deployment or LeaderWorkerSet -> its role and layout, from what the pods run:
    replicas (instances), pods per instance (the LWS group size), and vLLM's TP/DP/EP flags (in the
    container args, or in the launch script of an instance over nodes). None when it is not one."""
    spec = obj.get("spec") or {}
    lwt = spec.get("leaderWorkerTemplate") or {}
    template = spec.get("template") or lwt.get("workerTemplate") or lwt.get("leaderTemplate") or {}
    role = ((template.get("metadata") or {}).get("labels") or {}).get(ROLE_LABEL)
    if not role:
        return None
    containers = [c for c in (template.get("spec") or {}).get("containers") or [] if isinstance(c, dict)]
    words = [" ".join(str(w) for w in (c.get("command") or []) + (c.get("args") or [])) for c in containers]
    text = " ".join(w for w in words if "vllm" in w.lower()) or " ".join(words)
    pods = int(lwt.get("size") or 1)
    tensor, data, local = (_vllm_flag(text, k) for k in ("tensor", "data", "dataLocal"))
    if data == "?" and isinstance(local, int):
        data = local * pods  # upstream's wide-EP script computes it: $((LWS_GROUP_SIZE * DP_SIZE_LOCAL))
    tensor, data = (1 if tensor is None else tensor), (1 if data is None else data)
    expert = bool(_EXPERT.search(text))
    replicas = spec.get("replicas")
    replicas = replicas if isinstance(replicas, int) else 1  # unset: the API server defaults it to 1
    known = isinstance(tensor, int) and isinstance(data, int)
    return {
        "role": role, "kind": obj.get("kind"), "name": (obj.get("metadata") or {}).get("name"),
        "replicas": replicas, "readyReplicas": int((obj.get("status") or {}).get("readyReplicas") or 0),
        "podsPerInstance": pods, "tensor": tensor, "data": data, "expert": expert,
        "layout": str(RoleLayout(replicas, tensor, data, expert)) if known else f"{replicas}x?",
    }


def attach_layouts(stacks: list[dict], workloads: list[dict] | None) -> None:
    """Give each stack its ``roles``: the shape of every model-server workload its ms-<postfix>
    release installed (None when the workloads could not be read)."""
    owned: dict[tuple[str, str], list[dict]] = {}
    for obj in workloads or []:
        meta = obj.get("metadata") or {}
        release = str((meta.get("annotations") or {}).get(HELM_RELEASE, ""))
        shape = role_shape(obj) if release.startswith("ms-") else None
        if shape:
            owned.setdefault((str(meta.get("namespace", "")), release[len("ms-"):]), []).append(shape)
    order = {r: i for i, r in enumerate(_ROLE_ORDER)}
    for s in stacks:
        roles = owned.get((s["namespace"], s["postfix"]), [])
        s["roles"] = None if workloads is None else sorted(roles, key=lambda r: (order.get(r["role"], len(order)), r["role"], r["name"] or ""))


def layout_text(roles: list[dict] | None) -> str:
    """``prefill 2xDP8EP (2 pods each), decode 1xDP8EP (2 pods each)``: what status shows."""
    if roles is None:
        return "?"
    return ", ".join(f"{r['role']} {r['layout']}" + (f" ({r['podsPerInstance']} pods each)" if r["podsPerInstance"] > 1 else "")
                     for r in roles) or "-"


# --- reading helm's release records ----------------------------------------------------------


def chart_version(chart: str, key: str) -> str | None:
    """'llm-d-infra-v1.4.0' -> 'v1.4.0' when the chart is one llmdctl uses for ``key``."""
    name = chart_name_of(chart, key)
    return chart[len(name) + 1:] if name else None


def chart_name_of(chart: str, key: str) -> str | None:
    """'llm-d-router-gateway-v0.10.0' -> 'llm-d-router-gateway' (the longest of the key's charts that fits)."""
    hits = [n for n in RELEASE_CHARTS[key] if chart.startswith(n + "-") and chart[len(n) + 1:len(n) + 2] in "v0123456789"]
    return max(hits, key=len) if hits else None


def parse_helm_list(text: str) -> list[dict]:
    try:
        rows = json.loads(text or "[]")
    except ValueError:
        raise LlmdctlError("helm list -o json returned something that is not JSON", hint="run it yourself to see why") from None
    if not isinstance(rows, list):
        raise LlmdctlError("helm list -o json did not return a list")
    # a record with a map where a name or status belongs is not one llmdctl could have written;
    # dropping it here keeps every reader (status, apply, destroy) from tripping over it
    fields = ("name", "chart", "namespace", "status", "revision")
    return [r for r in rows if isinstance(r, dict) and all(isinstance(r.get(k, ""), (str, int)) for k in fields)]


def group_stacks(rows: list[dict], attached: set[tuple[str, str]] = frozenset()) -> list[dict]:
    """Helm release records -> llmdctl stacks (namespace + postfix), sorted.

    A release counts only when its name is <infra|gaie|ms>-<postfix> and its chart is the matching
    llm-d chart, so unrelated releases that happen to be called ms-something are left out.
    """
    stacks: dict[tuple[str, str], dict] = {}
    for row in rows:
        m = _RELEASE_NAME.fullmatch(str(row.get("name", "")))
        if not m:
            continue
        key, postfix = m.group(1), m.group(2)
        version = chart_version(str(row.get("chart", "")), key)
        if version is None:
            continue
        ns = str(row.get("namespace", ""))
        stack = stacks.setdefault((ns, postfix), {"namespace": ns, "postfix": postfix, "releases": {}})
        stack["releases"][key] = {
            "name": row.get("name"), "chart": chart_name_of(str(row.get("chart", "")), key), "version": version,
            "revision": int(row["revision"]) if str(row.get("revision", "")).isdigit() else row.get("revision"),
            "status": row.get("status"), "updated": row.get("updated"), "appVersion": row.get("app_version"),
        }
    out = []
    for (_, _), stack in sorted(stacks.items()):
        rels = stack["releases"]
        statuses = {r["status"] for r in rels.values()}
        wanted = _expected_keys(rels, attached=(stack["namespace"], stack["postfix"]) in attached)
        if set(wanted) <= set(rels) and statuses == {"deployed"}:
            overall = "deployed"
        elif "failed" in statuses:
            overall = "failed"
        elif any(str(s).startswith("pending") for s in statuses):
            overall = "pending"
        else:
            overall = "incomplete"
        stack["status"] = overall
        stack["generation"] = "helmfile" if wanted == RELEASE_KEYS else "router"
        stack["missing"] = [release_names(stack["postfix"])[k] for k in wanted if k not in rels]
        stack["releases"] = [rels[k] for k in ALL_RELEASE_KEYS if k in rels]
        out.append(stack)
    return out


def _expected_keys(rels: dict, attached: bool = False) -> tuple[str, ...]:
    """The releases a complete stack has, told from the ones present: a router release, or a
    model-server release from llmdctl's own chart, makes it a router-generation stack (whose
    gateway release exists only in gateway mode)."""
    router = "router" in rels or "gateway" in rels or (rels.get("ms") or {}).get("chart") == GENERATED_CHARTS["ms"]
    if not router:
        return RELEASE_KEYS
    gateway_mode = "gateway" in rels or (rels.get("router") or {}).get("chart") in ("llm-d-router-gateway", "inferencepool")
    return ROUTER_RELEASE_KEYS if gateway_mode and not attached else ROUTER_RELEASE_KEYS[1:]


@dataclass
class StackState:
    """What of one stack exists in the cluster right now."""

    releases: dict[str, dict] = field(default_factory=dict)  # release name -> helm record
    route: str = ""  # the HTTPRoute's name when it exists

    @property
    def empty(self) -> bool:
        return not self.releases and not self.route

    def describe(self) -> list[str]:
        items = [f"release {n} ({r.get('chart')}, revision {r.get('revision')}, {r.get('status')})" for n, r in self.releases.items()]
        return items + ([f"HTTPRoute {self.route}"] if self.route else [])


def observe(box: Toolbox, namespace: str, postfix: str) -> StackState:
    """Read one stack's releases and route (two calls)."""
    names = release_names(postfix)
    route = stack_names(namespace, postfix)["route"]
    wanted = {names[k]: k for k in ALL_RELEASE_KEYS}
    rows = parse_helm_list(box.query(helm_list_command(namespace)))
    state = StackState()
    for row in rows:
        # a release of another chart that happens to be called gateway-<postfix> is not this stack's
        if row.get("name") in wanted and row.get("namespace", namespace) == namespace \
                and chart_version(str(row.get("chart", "")), wanted[row["name"]]) is not None:
            state.releases[row["name"]] = {"chart": row.get("chart"), "revision": row.get("revision"), "status": row.get("status")}
    state.releases = {n: state.releases[n] for n in names.values() if n in state.releases}  # needs order
    if box.query(route_query(namespace, postfix)).strip():
        state.route = route
    return state


# --- running steps ---------------------------------------------------------------------------


@dataclass
class StepReport:
    label: str
    command: str
    returncode: int
    seconds: float


def run_steps(
    box: Toolbox,
    steps: list[Command],
    *,
    say: Callable[[str], None],
    resume: str,
    cleanup: str | None,
) -> list[StepReport]:
    """Run steps in order with a status line each; the first failure stops the run.

    The error names the step, the command, the tail of its stderr, what is already done, and the
    commands to resume (steps are idempotent, so re-running converges) and to clean up.
    """
    done: list[StepReport] = []
    total = len(steps)
    for i, step in enumerate(steps, 1):
        say(f"[{i}/{total}] {step.label}: {step.display(box)}")
        started = time.monotonic()
        try:
            res = box.stream(step)
        except Interrupted as exc:
            raise Interrupted(
                _failure_text(f"step {i}/{total} {step.label} was interrupted", step, box, exc.stderr_tail, done),
                returncode=130, stderr_tail=exc.stderr_tail, hint=_next(resume, cleanup),
            ) from None
        seconds = time.monotonic() - started
        if res.returncode not in step.ok_codes:
            tail = res.stderr.strip().splitlines()[-20:]
            raise StepFailed(
                _failure_text(f"step {i}/{total} {step.label} failed (exit {res.returncode})", step, box, tail, done),
                returncode=res.returncode, stderr_tail=tail, hint=_next(resume, cleanup),
            )
        done.append(StepReport(step.label, step.display(box), res.returncode, seconds))
        say(f"      done: {step.label} ({seconds:.1f} s)")
    return done


def _failure_text(head: str, step: Command, box: Toolbox, tail: list[str], done: list[StepReport]) -> str:
    lines = [head, f"  command: {step.display(box)}"]
    if tail:
        lines.append("  stderr (last lines):")
        lines += [f"    {t}" for t in tail]
    lines.append("  already done: " + (", ".join(d.label for d in done) if done else "nothing"))
    return "\n".join(lines)


def _next(resume: str, cleanup: str | None) -> str:
    text = f"fix the cause, then resume with: {resume}"
    if cleanup:
        text += f"\n  or clean up with: {cleanup}"
    return text


# --- the commands ----------------------------------------------------------------------------


@dataclass
class UI:
    """How a command talks to the user; the CLI passes stderr writers and a prompt."""

    say: Callable[[str], None]
    confirm: Callable[[str], bool]


def namespace_exists(box: Toolbox, namespace: str) -> bool:
    out = box.query(Command("kubectl", ("get", "namespace", namespace, "--ignore-not-found", "--output", "name"), f"namespace {namespace}"))
    return bool(out.strip())


def secret_exists(box: Toolbox, namespace: str, secret: str) -> bool:
    # -o name prints only kind/name: the token never crosses this boundary
    out = box.query(Command("kubectl", ("get", "secret", secret, "--namespace", namespace, "--ignore-not-found", "--output", "name"), f"Secret {secret}"))
    return bool(out.strip())


def stuck_releases(state: StackState) -> dict[str, str]:
    """Releases a cut-off helm run left pending-*: they hold Helm's lock, and every helm run on them
    fails with "another operation is in progress" until they are rolled back or uninstalled."""
    return {name: str(rel.get("status")) for name, rel in state.releases.items() if str(rel.get("status", "")).startswith("pending-")}


def recover_steps(namespace: str, stuck: dict[str, str]) -> list[Command]:
    """A pending-install never finished, so uninstalling it loses nothing; a pending-upgrade or
    pending-rollback goes back to the revision before it, which helm kept."""
    return [Command("helm", ("uninstall", name, "--namespace", namespace, "--wait") if status == "pending-install"
                    else ("rollback", name, "--namespace", namespace, "--wait"), f"recover {name} ({status})")
            for name, status in stuck.items()]


def refuse_stuck_releases(state: StackState, namespace: str, recover: str | None = None) -> None:
    """Say so before running anything: a plain apply must not take over a lock another helm run
    may still hold. ``--recover`` (the user's word that none is running) clears it."""
    stuck = stuck_releases(state)
    if not stuck:
        return
    fixes = "; ".join(" ".join(("helm",) + c.args[:2]) + f" --namespace {namespace}" for c in recover_steps(namespace, stuck))
    raise LlmdctlError(
        "nothing was applied: " + ", ".join(f"{n} is {s}" for n, s in stuck.items())
        + " (a helm run was cut off and still holds the release lock)",
        hint=(f"if no other helm or llmdctl run is working on this stack, run: {recover}  (it does: {fixes})" if recover
              else f"clear it with: {fixes}") + "; a pending-install never finished, so uninstalling it loses nothing",
    )


WORKLOAD_KINDS = ("Deployment", "LeaderWorkerSet")


def deployments_query(plan: Plan) -> Command:
    """The roles' workloads: Deployments, and LeaderWorkerSets for instances over nodes (asked for
    only then: a cluster without the LWS CRD would fail the whole query)."""
    roles = [plan.roles[r] for r in sorted(plan.roles)]
    if all(r.workers == 1 for r in roles):
        return Command("kubectl", ("get", "deployment", *[r.deployment for r in roles], "--namespace", plan.namespace,
                                   "--ignore-not-found", "--output", "json"), "live Deployments")
    kinds = [f"{'deployment' if r.workers == 1 else 'leaderworkerset.leaderworkerset.x-k8s.io'}/{r.deployment}" for r in roles]
    return Command("kubectl", ("get", *kinds, "--namespace", plan.namespace, "--ignore-not-found", "--output", "json"),
                   "live Deployments and LeaderWorkerSets")


def live_drift(plan: Plan, listing: str) -> list[str]:
    """How the live prefill/decode Deployments differ from the plan (replicas, vLLM image): what a
    ``kubectl scale`` or ``kubectl set image`` leaves behind, which helm-diff cannot see because it
    compares with the last release, not with the cluster."""
    try:
        doc = json.loads(listing) if listing.strip() else {}
    except json.JSONDecodeError:
        return []
    items = doc.get("items", [doc] if doc.get("kind") in WORKLOAD_KINDS else []) if isinstance(doc, dict) else []
    live = {(d.get("metadata") or {}).get("name"): d for d in items if isinstance(d, dict)}
    drift = []
    for role in sorted(plan.roles):
        rp = plan.roles[role]
        dep = live.get(rp.deployment)
        if dep is None:
            continue  # not installed yet, or deleted: helm-diff sees a missing object itself
        spec = dep.get("spec") or {}
        low, high = rp.replica_range
        if not (isinstance(spec.get("replicas"), int) and low <= spec["replicas"] <= high):
            planned = f"{low}-{high} (HPA)" if rp.autoscale else str(rp.replicas)
            drift.append(f"{rp.deployment} has {spec.get('replicas')} replicas, the plan {planned}")
        # a LeaderWorkerSet's pods come from its worker template (the leader's is the same here)
        template = spec.get("template") or ((spec.get("leaderWorkerTemplate") or {}).get("workerTemplate")) or {}
        images = [c.get("image") for c in (template.get("spec") or {}).get("containers") or []]
        if rp.image not in images:
            drift.append(f"{rp.deployment} runs {', '.join(map(str, images)) or 'no container'}, the plan {rp.image}")
    return drift


def observed_drift(box: Toolbox, plan: Plan, ui: "UI") -> list[str]:
    """live_drift of the cluster; a context that may not read Deployments only loses the check."""
    try:
        return live_drift(plan, box.query(deployments_query(plan)))
    except StepFailed as exc:
        ui.say(f"note: could not read the live Deployments ({exc.stderr_tail[-1] if exc.stderr_tail else exc}); "
               "drift from the plan is not checked, so pass --sync if someone scaled or edited them")
        return []


def change_summary(plan: Plan, state: StackState, verb: str) -> list[str]:
    """One line per release and the route: install, upgrade (revision n -> n+1) or unchanged chart."""
    lines = []
    for rel in plan.releases:
        # not the path: with --charts (or a generated chart) the chart is a folder on disk
        pin = router_pin(plan.standalone) if rel.key == "router" else rel.key
        chart = GENERATED_CHARTS[rel.key] if rel.generated else chart_name(plan.release_info.charts[pin]["chart"])
        now = state.releases.get(rel.name)
        if not now:
            lines.append(f"install  {rel.name}: {chart} {rel.version}")
        else:
            current = str(now.get("chart") or "")
            move = f"{current} -> {chart}-{rel.version}" if current != f"{chart}-{rel.version}" else f"{chart}-{rel.version}"
            lines.append(f"{verb:<8} {rel.name}: {move} (revision {now.get('revision')}, {now.get('status')})")
    if plan.generation == "helmfile":
        route = plan.names["route"]
        lines.append(f"{'update' if state.route else 'create':<8} HTTPRoute {route} -> Gateway {plan.names['gateway']}, InferencePool {plan.names['pool']}")
    return lines


def apply_stack(
    plan: Plan,
    files: dict[str, str],
    box: Toolbox,
    folder: Path,
    *,
    ui: UI,
    yes: bool,
    sync: bool,
    create_namespace: bool,
    resume: str,
    cleanup: str,
    recover: bool = False,
    recover_command: str | None = None,
    force: bool = False,
) -> list[StepReport]:
    """Preflight (tools, namespace, Secret, current releases; the admission dry-run, quotas and
    placement doctor runs), summary and confirmation, then the bundle is written to ``folder`` and
    the steps run. Nothing is written or run before the yes, nor when the cluster would refuse the
    pods (unless ``force``)."""

    require_tools(box, ("helmfile", "helm", "kubectl"))
    if not sync and helm_diff_version(box) is None:
        ui.say("note: the helm-diff plugin is not installed, so llmdctl runs `helmfile sync` instead of `helmfile apply` "
               "(every release gets a new revision); install it with: helm plugin install https://github.com/databus23/helm-diff")
        sync = True
    ns = plan.namespace
    exists = namespace_exists(box, ns)
    if not exists and not create_namespace:
        raise LlmdctlError(
            f"namespace {ns} does not exist in context {box.context}; nothing was applied",
            hint=f"pass --create-namespace, or: kubectl create namespace {ns} && {hf_secret_command(ns, plan.hf_secret)}",
        )
    state = observe(box, ns, plan.postfix)
    stuck = stuck_releases(state) if recover else {}
    if not recover:
        refuse_stuck_releases(state, ns, recover=recover_command)
    resync = set(name for name, rel in state.releases.items() if rel.get("status") == "failed")
    drift = [] if sync or plan.names["ms"] not in state.releases else observed_drift(box, plan, ui)
    if drift:
        resync.add(plan.names["ms"])
    refuse_what_cannot_start(plan, box, ui, force=force)
    ui.say(f"target: context {box.context}, namespace {ns}{'' if exists else ' (will be created)'}, postfix {plan.postfix}")
    ui.say(f"bundle: {folder}/")
    for line in change_summary(plan, state, "sync" if sync else "upgrade"):
        ui.say("  " + line)
    if not exists or not secret_exists(box, ns, plan.hf_secret):
        ui.say(f"warning: Secret {plan.hf_secret} (key HF_TOKEN) is not in namespace {ns}; the vLLM pods will wait in "
               f"CreateContainerConfigError until it exists. Create it with:\n  {hf_secret_command(ns, plan.hf_secret)}")
    if not yes and not ui.confirm(f"Apply stack {plan.postfix} to {box.context}/{ns}?"):
        raise LlmdctlError("not applied (declined)", hint="nothing was written or run")
    write_bundle(files, folder)
    if stuck:
        ui.say("recovering: " + ", ".join(f"{n} is {st}" for n, st in stuck.items()))
        run_steps(box, recover_steps(ns, stuck), say=ui.say, resume=resume, cleanup=cleanup)
        state = observe(box, ns, plan.postfix)
        refuse_stuck_releases(state, ns)
        resync = {name for name, rel in state.releases.items() if rel.get("status") == "failed"} | (resync & set(state.releases))
    for name in sorted(resync):
        if state.releases[name].get("status") == "failed":
            ui.say(f"note: {name} is failed (revision {state.releases[name].get('revision')}): it is synced, because helmfile apply "
                   "compares with that failed release and would see no change")
    if drift:
        ui.say(f"note: the live objects of {plan.names['ms']} drifted from the plan ({'; '.join(drift)}): it is synced, because "
               "helmfile apply compares with the last release and would see no change")
    steps = apply_steps(plan, folder, sync=sync, create_namespace=create_namespace and not exists, resync=frozenset(resync))
    return run_steps(box, steps, say=ui.say, resume=resume, cleanup=cleanup)


def refuse_what_cannot_start(plan: Plan, box: Toolbox, ui: UI, *, force: bool) -> None:
    """doctor's fast checks (admission dry-run, quotas, placement: one pass, no waiting) before
    anything changes: a stack whose pods the cluster would refuse or cannot place is not applied."""
    workloads, note = rendered_workloads(plan, box)
    if note:
        ui.say(f"note: {note}")
    try:
        checks = preflight(kube_for(box), plan, workloads)
    except KubeError as exc:
        raise LlmdctlError(f"the pre-apply checks could not ask the API server: {exc.message}; nothing was applied",
                           hint=exc.hint or "llmdctl doctor shows what is reachable") from None
    failed = [c for c in checks if c.status == "fail"]
    if not failed:
        return
    lines = "".join(f"\n  {c.name}: {c.observed}" + (f"\n    fix: {c.hint}" if c.hint else "") for c in failed)
    if force:
        ui.say(f"warning: applying with --force although the cluster will not start the pods:{lines}")
        return
    raise LlmdctlError(f"the cluster would not start this stack's pods; nothing was applied:{lines}",
                       hint="fix the above and apply again (llmdctl doctor shows every check), or --force to install the releases anyway")


def refused_after_apply(plan: Plan, box: Toolbox, *, settle: float = 5.0) -> list:
    """After the releases are in: the stack's workloads whose pods the API server refused
    (FailedCreate), read until every workload has its pods or ``settle`` seconds pass."""
    kube = kube_for(box)
    deadline = time.monotonic() + settle
    while True:
        try:
            obs = observe_stack(kube, plan)
            # only workloads that exist can be short of pods for a reason the API server gives
            short = {name for name in missing_pods(plan, obs) if name in obs.deployments or name in obs.groups}
            refused = workload_refusals(kube, plan, short, obs.deployments) if short else []
        except KubeError:
            return []
        if refused or not short or time.monotonic() >= deadline:
            return refused
        time.sleep(0.5)


def destroy_stack(
    box: Toolbox,
    namespace: str,
    postfix: str,
    folder: Path,
    *,
    ui: UI,
    yes: bool,
    resume: str,
    force: bool = False,
) -> list[str]:
    """Remove one stack; returns what was removed (empty when there was nothing to remove). A
    stack whose Gateway other stacks route through is kept unless ``force``."""

    use_folder = folder if bundle_files_in(folder) is not None else None
    require_tools(box, ("helm", "kubectl") + (("helmfile",) if use_folder else ()))
    state = observe(box, namespace, postfix)
    if state.empty:
        _forget(folder)
        return []
    holder = next((k for k in ("gateway", "infra") if release_names(postfix)[k] in state.releases), None)
    if holder and not force:
        generation = "router" if holder == "gateway" else "helmfile"
        gateway = stack_names(namespace, postfix, generation=generation)["gateway"]
        routes = list_routes(box, namespace)
        users = attached_routes(routes or [], namespace, postfix, generation)
        if routes is None:
            ui.say(f"warning: cannot list HTTPRoutes, so whether other stacks route through Gateway {gateway} is not checked")
        if users:
            others = sorted({m.group(1) for u in users if (m := _ROUTE_NAME.fullmatch(u.split("/", 1)[1]))})
            raise LlmdctlError(
                f"not destroyed: Gateway {gateway} also carries HTTPRoute {', '.join(users)}; "
                "removing it would stop serving those models",
                hint=(f"destroy the stacks attached to it first (llmdctl destroy -n {namespace} --postfix {others[0]}), " if others else "detach those routes first, ")
                     + "or pass --force to remove the Gateway anyway")
    ui.say(f"target: context {box.context}, namespace {namespace}, postfix {postfix}; will remove:")
    for item in state.describe():
        ui.say(f"  {item}")
    ui.say("  (kept: the namespace, Secrets such as the HF token, and everything llmdctl did not create)")
    if not yes and not ui.confirm(f"Destroy stack {postfix} in {box.context}/{namespace}?"):
        raise LlmdctlError("not destroyed (declined)", hint="nothing was removed")
    run_steps(box, destroy_steps(namespace, postfix, state, use_folder), say=ui.say, resume=resume, cleanup=None)
    left = observe(box, namespace, postfix)
    if left.releases:  # not in the kept bundle, or helmfile left them: uninstall by exact name
        run_steps(box, uninstall_steps(namespace, postfix, left), say=ui.say, resume=resume, cleanup=None)
        left = observe(box, namespace, postfix)
    if not left.empty:
        raise LlmdctlError(
            "destroy ran but these are still present: " + "; ".join(left.describe()),
            hint=f"look at `helm status` and `kubectl get httproute -n {namespace}`, then run again: {resume}",
        )
    _forget(folder)
    return state.describe()


def _forget(folder: Path) -> None:
    """Drop the kept bundle of a stack that no longer exists, and its revisions: only what llmdctl wrote."""
    shutil.rmtree(folder / HISTORY, ignore_errors=True)
    remove_bundle(folder)


def diff_stack(plan: Plan, files: dict[str, str], box: Toolbox, *, ui: UI) -> bool | None:
    """helmfile diff of the releases and kubectl diff of the route, from a throw-away bundle (the
    kept one records what was applied). True when anything would change; None without the
    helm-diff plugin (the rollout plan, read through the API, is the diff then)."""
    require_tools(box, ("helmfile", "helm", "kubectl"))
    if helm_diff_version(box) is None:
        ui.say(f"note: the release-level diff needs the helm-diff plugin ({fmt_version(MINIMUMS['helm-diff'])}+), which is not installed "
               f"({INSTALL_HINTS['helm-diff']}); the rollout plan above was read from the cluster without it")
        return None
    tmp = Path(tempfile.mkdtemp(prefix="llmdctl-diff-"))
    try:
        folder = tmp / "bundle"
        write_bundle(files, folder)
        changed = False
        for step in diff_steps(plan, folder):
            ui.say(f"{step.label}: {step.display(box).replace(str(folder), '<bundle>')}")
            res = box.stream(step, prefix="", to_stdout=True)
            if res.returncode not in step.ok_codes:
                tail = res.stderr.strip().splitlines()[-20:]
                raise StepFailed(_failure_text(f"diff of {step.label} failed (exit {res.returncode})", step, box, tail, []),
                                 returncode=res.returncode, stderr_tail=tail)
            changed = changed or res.returncode != 0
        return changed
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# --- orchestration the CLI calls -------------------------------------------------------------


def state_dir(env: dict | None = None) -> Path:
    """Where applied bundles are kept, the same from every folder: ``$LLMDCTL_STATE_DIR``, else
    ``$XDG_STATE_HOME/llmdctl``, else ``~/.local/state/llmdctl`` (a bundle under the current
    folder was lost by an apply from elsewhere and left stale by a destroy from elsewhere)."""
    env = os.environ if env is None else env
    if env.get("LLMDCTL_STATE_DIR"):
        return Path(env["LLMDCTL_STATE_DIR"])
    base = env.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return Path(base) / "llmdctl"


def kept_bundle(explicit: Path | None, box: Toolbox, namespace: str, postfix: str) -> Path:
    """The folder apply keeps a stack's bundle in (``--bundle-dir`` wins)."""
    return explicit if explicit else bundle_dir(state_dir() / "bundles", box.context or "current-context", namespace, postfix)


def apply_dry_run(plan: Plan, files: dict[str, str], box: Toolbox, folder: Path, *, sync: bool, create_namespace: bool,
                  verify_command: str | None) -> str:
    """What apply would write and run, as text; nothing is written or run."""
    lines = [
        "# dry run: nothing is written or run",
        f"# context {box.context or '(none selected: apply would refuse)'}, namespace {plan.namespace}, postfix {plan.postfix}",
        f"# would write {folder}/: {', '.join(files)}",
        f"# would check: helmfile, helm, kubectl versions; helm-diff plugin; namespace; Secret {plan.hf_secret}; current releases",
    ]
    if not sync:
        # the run uses sync without helm-diff: show the commands it will run (asking helm which
        # plugins it has is local; no cluster is contacted)
        try:
            has_diff = helm_diff_version(box) is not None
        except (ToolMissing, OSError):
            has_diff = None
        if has_diff is False:
            lines.append("# the helm-diff plugin is not installed, so apply runs `helmfile sync` (install it for `helmfile apply`: "
                         "helm plugin install https://github.com/databus23/helm-diff)")
            sync = True
        elif has_diff is None:
            lines.append("# helm is not found here; with the helm-diff plugin apply runs these, without it `helmfile sync`")
    lines += [step.display(box) for step in apply_steps(plan, folder, sync=sync, create_namespace=create_namespace)]
    if verify_command:
        lines.append(verify_command)
    return "\n".join(lines) + "\n"


def destroy_dry_run(box: Toolbox, namespace: str, postfix: str, folder: Path) -> str:
    """The commands destroy would run if every object of the stack existed; nothing is run."""
    names = release_names(postfix)
    everything = StackState(releases={names[k]: {} for k in ALL_RELEASE_KEYS}, route=stack_names(namespace, postfix)["route"])
    kept = folder if bundle_files_in(folder) is not None else None
    lines = [f"# dry run: nothing is run; commands for context {box.context or '(none selected: destroy would refuse)'}, namespace {namespace}, postfix {postfix}"]
    lines += [step.display(box) for step in destroy_steps(namespace, postfix, everything, kept) + uninstall_steps(namespace, postfix, everything)]
    return "\n".join(lines) + "\n"


def list_stacks(box: Toolbox, namespace: str | None, postfix: str | None = None,
                routes: list[dict] | None = None) -> list[dict]:
    """The llmdctl stacks in one namespace (or all, with None), from Helm's release records (and
    the HTTPRoutes, which tell a stack attached to another's Gateway from one missing its own)."""
    require_tools(box, ("helm",))
    stacks = group_stacks(parse_helm_list(box.query(helm_list_command(namespace))), attached_stacks(routes or []))
    return [s for s in stacks if not postfix or s["postfix"] == postfix]


def stack_rows(stacks: list[dict]) -> list[dict]:
    """One display row per stack: its releases with version, revision and status, and when it last changed."""
    rows = []
    for s in stacks:
        rows.append({
            "namespace": s["namespace"], "postfix": s["postfix"], "status": s["status"],
            "releases": ", ".join(f"{r['name']} {r['version']} r{r['revision']} {r['status']}" for r in s["releases"])
                        + "".join(f", {m} missing" for m in s["missing"]),
            "updated": max((str(r.get("updated") or "") for r in s["releases"]), default="")[:19],
            "layout": layout_text(s.get("roles")),
        })
    return rows
