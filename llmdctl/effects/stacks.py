"""The stacks in a cluster, read back: Helm's release records grouped into stacks, their HTTPRoutes
(which Gateway each stack routes through, and which model), the model-server workloads read back
into layouts, and one stack's releases and route (``observe``). Read-only: apply, destroy, status
and migrate build on it (``lifecycle.py`` runs the changes).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from ..base.errors import LlmdctlError
from ..compose.names import ALL_RELEASE_KEYS, GENERATED_CHARTS, RELEASE_KEYS, ROUTER_RELEASE_KEYS, release_names, stack_names
from ..compose.modelserver import ROLE_LABEL
from ..compose.shared_gateway import route_models, route_parents
from ..inputs.spec import RoleLayout
from .tools import Command, StepFailed, Toolbox, require_tools

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
