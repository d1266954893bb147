"""How a change reaches a running stack: what each workload changes, whether its pods are replaced,
and the rollout that can finish on this cluster's free GPUs.

A GPU cluster is usually full, so the strategy is chosen from a simulation of the rollout on the
nodes' free accelerators and NICs (doctor's placement, taints and selectors included):

- **surge** (maxSurge 1, maxUnavailable 0): a new pod first, then an old one goes; zero downtime,
  needs room for one more pod;
- **in-place** (maxSurge 0, maxUnavailable 1): an old pod goes first, its GPUs take the new one;
  one pod's serving capacity is lost while it restarts;
- **recreate**: every old pod goes, then the new ones start; the role is down meanwhile;
- **refused**: not even in place can every new pod find a node (TP4 -> TP8 with no 8-GPU node).

The live stack is read through the API (no helm-diff needed), and the choice goes into the
generated Deployments' strategy (``Spec.rollout``), so the bundle's own `helmfile apply` rolls the same way.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from ..base.errors import LlmdctlError
from ..compose.compose import plan_stack
from ..plan.stack import Plan
from .admission import Workload, quantity
from .kube import DEPLOYMENTS, LEADERWORKERSETS, NODES, PODS, Kube, KubeError, kube_for
from .doctor import rendered_workloads
from .placement import _qty, node_refusal, spec_request
from .tools import Toolbox

STRATEGIES = ("surge", "in-place", "recreate")


@dataclass(frozen=True)
class RoleRollout:
    role: str
    workload: str
    kind: str
    changes: tuple[str, ...]
    replaced: bool  # the pod template changes: every pod is replaced
    pods_before: int
    pods_after: int
    strategy: str  # surge | in-place | recreate | refused | new | unchanged | scale
    why: str = ""

    def as_dict(self) -> dict:
        return {"role": self.role, "workload": f"{self.kind}/{self.workload}", "changes": list(self.changes), "podsReplaced": self.replaced,
                "pods": {"before": self.pods_before, "after": self.pods_after}, "strategy": self.strategy, "why": self.why}

    def line(self) -> str:
        what = "; ".join(self.changes) if self.changes else "no change"
        return f"{self.role} {self.kind} {self.workload}: {what} -> {self.strategy}" + (f" ({self.why})" if self.why else "")


@dataclass(frozen=True)
class RolloutPlan:
    roles: tuple[RoleRollout, ...] = ()
    live: bool = False  # the stack runs already
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def refused(self) -> list[RoleRollout]:
        return [r for r in self.roles if r.strategy == "refused"]

    @property
    def chosen(self) -> tuple[tuple[str, str], ...]:
        return tuple((r.role, r.strategy) for r in self.roles if r.strategy in STRATEGIES)

    def as_dict(self) -> dict:
        return {"live": self.live, "roles": [r.as_dict() for r in self.roles], "notes": list(self.notes)}


# --- what changes ---------------------------------------------------------------------------------


def _env(entries) -> dict[str, str]:
    out = {}
    for e in entries or []:
        if "value" in e or "valueFrom" not in e:
            out[e.get("name")] = str(e.get("value", ""))
        else:  # the API server adds apiVersion to a fieldRef: compare what the user wrote
            ref = json.loads(json.dumps(e["valueFrom"]))
            (ref.get("fieldRef") or {}).pop("apiVersion", None)
            out[e.get("name")] = json.dumps(ref, sort_keys=True)
    return out


def _resources(res) -> dict[str, str]:
    res = res or {}
    return {f"{kind}.{name}": str(quantity(v)) for kind in ("requests", "limits") for name, v in (res.get(kind) or {}).items()}


def template_changes(live: dict, rendered: dict) -> list[str]:
    """What differs between the live pod template and the rendered one, in the fields a user
    changes (images, commands and arguments, env, resources, labels); server defaults are ignored."""
    changes = []
    live_spec, new_spec = live.get("spec") or {}, rendered.get("spec") or {}
    for part in ("initContainers", "containers"):
        old = {c.get("name"): c for c in live_spec.get(part) or []}
        new = {c.get("name"): c for c in new_spec.get(part) or []}
        for name in sorted(set(old) | set(new)):
            a, b = old.get(name), new.get(name)
            if a is None or b is None:
                changes.append(f"container {name} {'added' if a is None else 'removed'}")
                continue
            if a.get("image") != b.get("image"):
                changes.append(f"{name} image {a.get('image')} -> {b.get('image')}")
            if (a.get("command") or []) != (b.get("command") or []) or [str(x) for x in a.get("args") or []] != [str(x) for x in b.get("args") or []]:
                gone = [x for x in a.get("args") or [] if x not in (b.get("args") or [])]
                came = [x for x in b.get("args") or [] if x not in (a.get("args") or [])]
                parts = ([f"without {' '.join(map(str, gone))}"] if gone else []) + ([f"with {' '.join(map(str, came))}"] if came else [])
                changes.append(f"{name} args {', '.join(parts)}" if parts else f"{name} command/args")
            ea, eb = _env(a.get("env")), _env(b.get("env"))
            if ea != eb:
                changes.append(f"{name} env {', '.join(sorted(k for k in set(ea) | set(eb) if ea.get(k) != eb.get(k)))}")
            ra, rb = _resources(a.get("resources")), _resources(b.get("resources"))
            if ra != rb:
                changes.append(f"{name} resources " + ", ".join(f"{k} {ra.get(k, '-')} -> {rb.get(k, '-')}" for k in sorted(set(ra) | set(rb)) if ra.get(k) != rb.get(k)))
    if ((live.get("metadata") or {}).get("labels") or {}) != ((rendered.get("metadata") or {}).get("labels") or {}):
        changes.append("pod labels")
    for key in ("tolerations", "nodeSelector", "affinity", "hostNetwork", "hostIPC", "hostPID"):
        if (live_spec.get(key) or None) != (new_spec.get(key) or None):
            changes.append(f"pod {key}")
    return changes


def _live_template(obj: dict) -> tuple[dict, int]:
    """(pod template, pods) of a live Deployment or LeaderWorkerSet."""
    spec = obj.get("spec") or {}
    if obj.get("kind") == "LeaderWorkerSet" or "leaderWorkerTemplate" in spec:
        lwt = spec.get("leaderWorkerTemplate") or {}
        return lwt.get("workerTemplate") or {}, int(spec.get("replicas", 1)) * int(lwt.get("size", 1))
    return spec.get("template") or {}, int(spec.get("replicas", 1))


# --- can the rollout finish on these nodes? ----------------------------------------------------------


class _Nodes:
    """Free accelerators and NICs per node, changed as a simulated rollout removes and adds pods."""

    def __init__(self, nodes: list[dict], running: list[dict], accel: str, rdma: str | None):
        self.accel, self.rdma = accel, rdma
        self.nodes = [n for n in nodes if not (n.get("spec") or {}).get("unschedulable")]
        self.free = {}
        for n in self.nodes:
            alloc = (n.get("status") or {}).get("allocatable") or {}
            self.free[n["metadata"]["name"]] = [_qty(alloc.get(accel)), _qty(alloc.get(rdma)) if rdma else 0]
        for pod in running:
            node = (pod.get("spec") or {}).get("nodeName")
            if node in self.free and (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed"):
                g, k = self.usage(pod.get("spec") or {})
                self.free[node][0] -= g
                self.free[node][1] -= k

    def usage(self, spec: dict) -> tuple[int, int]:
        return spec_request(spec, self.accel), spec_request(spec, self.rdma) if self.rdma else 0

    def place(self, spec: dict) -> str | None:
        g, k = self.usage(spec)
        for n in self.nodes:
            name = n["metadata"]["name"]
            free = self.free[name]
            if free[0] >= g and (not self.rdma or free[1] >= k) and node_refusal(n, spec) is None:
                free[0] -= g
                free[1] -= k
                return name
        return None

    def remove(self, pod: dict) -> None:
        node = (pod.get("spec") or {}).get("nodeName")
        if node in self.free:
            g, k = self.usage(pod.get("spec") or {})
            self.free[node][0] += g
            self.free[node][1] += k


def simulate(strategy: str, nodes: _Nodes, old_pods: list[dict], new_spec: dict, count: int) -> bool:
    """Replay a Deployment controller's rollout of one role on the nodes' free room: True when every
    new pod finds a node (``nodes`` is changed as the rollout would change it)."""
    old = list(old_pods)
    if strategy == "recreate":
        for pod in old:
            nodes.remove(pod)
        return all(nodes.place(new_spec) for _ in range(count))
    for _ in range(count):
        if strategy == "in-place" and old:
            nodes.remove(old.pop())
        if nodes.place(new_spec) is None:
            return False
        if strategy == "surge" and old:
            nodes.remove(old.pop())
    for pod in old:  # scaled down at the end
        nodes.remove(pod)
    return True


def choose(plan: Plan, live: dict[str, dict], workloads: list[Workload], nodes: list[dict], running: list[dict],
           forced: dict[str, str] | None = None) -> RolloutPlan:
    """Per role: the changes, whether its pods are replaced, and the strategy (``forced`` from
    --rollout, else the least disruptive one the simulation finishes)."""
    rendered: dict[str, Workload] = {}
    for w in workloads:  # a LeaderWorkerSet is compared by its worker template, as it is read live
        if w.role and (w.role not in rendered or w.part == "worker"):
            rendered[w.role] = w
    own = {role: [p for p in running if ((p.get("metadata") or {}).get("labels") or {}).get("llm-d.ai/role") == role
                  and all(((p.get("metadata") or {}).get("labels") or {}).get(k) == v for k, v in plan.pool_selector.items())]
           for role in plan.roles}
    accel = next((r.accelerator_resource for r in plan.roles.values() if r.accelerator_resource), None)
    rdma = next((r.rdma["resource"] for r in plan.roles.values() if r.rdma), None)
    room = _Nodes(nodes, running, accel, rdma) if accel and not plan.claims else None
    out, notes = [], []
    if plan.claims:
        notes.append("DRA devices are not counted here (ResourceSlices): the strategy is in place unless --rollout says otherwise")
    for role, rp in plan.roles.items():
        w = rendered.get(role)
        obj = live.get(rp.deployment)
        kind = "LeaderWorkerSet" if rp.workers > 1 else "Deployment"
        if w is None:
            continue
        if obj is None:
            out.append(RoleRollout(role, rp.deployment, kind, (), False, 0, rp.pods, "new"))
            continue
        template, before = _live_template(obj)
        changes = template_changes(template, w.template)
        if before != rp.pods and not rp.autoscale:  # an HPA owns the count of an autoscaled role
            changes.append(f"pods {before} -> {rp.pods}")
        replaced = any(not c.startswith("pods ") for c in changes)
        if not replaced:
            out.append(RoleRollout(role, rp.deployment, kind, tuple(changes), False, before, rp.pods, "scale" if changes else "unchanged"))
            continue
        wanted = (forced or {}).get(role)
        # the helmfile era's modelservice chart has no strategy key: Kubernetes' default rolls it
        # (25% surge: a new pod first), so that is the only rollout to check there
        chart_default = plan.generation != "router"
        tries = [wanted] if wanted else (["surge"] if chart_default else ["surge", "in-place"])
        picked, why = None, ""
        for how in tries:
            if room is None:
                picked = how if wanted else "in-place"
                break
            trial = _copy(room)
            if simulate(how, trial, own.get(role, []), w.spec, rp.pods):
                picked, room = how, trial
                break
        if picked is None:
            per_pod = rp.gpus_per_pod
            why = (f"no node can take a new {role} pod with {per_pod} {accel} even with the old pods removed one at a time"
                   if not wanted else f"--rollout {wanted} cannot finish: a new {role} pod ({per_pod} {accel}) finds no node")
            if chart_default and not wanted:
                why = (f"Kubernetes' default rollout starts a new {role} pod ({per_pod} {accel}) beside the old ones, and no node has room; "
                       "llm-d v0.6.0's modelservice chart cannot roll in place: free GPUs, or move the stack to llm-d v0.8+")
            if not wanted and room is not None and simulate("recreate", _copy(room), own.get(role, []), w.spec, rp.pods):
                why += "; --rollout recreate would fit once every old pod is gone (the role is down meanwhile)"
            out.append(RoleRollout(role, rp.deployment, kind, tuple(changes), True, before, rp.pods, "refused", why))
            continue
        why = {"surge": "zero downtime: a new pod first, then an old one goes" + (" (Kubernetes' default: the v0.6.0 chart has no strategy key)" if chart_default else ""),
               "in-place": f"no spare {accel} for a new pod beside the old: one {role} pod at a time is replaced, "
                           f"{1}/{before} of the {role} capacity is down while it restarts" if not wanted else "as --rollout asks",
               "recreate": f"every {role} pod goes first: {role} is down until the new pods are ready"}[picked]
        out.append(RoleRollout(role, rp.deployment, kind, tuple(changes), True, before, rp.pods, picked, why))
    return RolloutPlan(tuple(out), live=bool(live), notes=tuple(notes))


def _copy(nodes: _Nodes) -> _Nodes:
    clone = object.__new__(_Nodes)
    clone.accel, clone.rdma, clone.nodes = nodes.accel, nodes.rdma, nodes.nodes
    clone.free = {k: list(v) for k, v in nodes.free.items()}
    return clone


# --- reading the cluster --------------------------------------------------------------------------


def read_live(kube: Kube, plan: Plan) -> dict[str, dict]:
    """The stack's role workloads as they run (by name), Deployments and LeaderWorkerSets."""
    names = {rp.deployment for rp in plan.roles.values()}
    live = {d["metadata"]["name"]: d for d in kube.list(DEPLOYMENTS, plan.namespace) if d["metadata"]["name"] in names}
    if any(rp.workers > 1 for rp in plan.roles.values()):
        try:
            live.update({g["metadata"]["name"]: {**g, "kind": "LeaderWorkerSet"} for g in kube.list(LEADERWORKERSETS, plan.namespace)
                         if g["metadata"]["name"] in names})
        except KubeError as exc:
            if exc.status != 404:
                raise
    return live


def rollout_plan(kube: Kube, plan: Plan, live: dict[str, dict], workloads: list[Workload]) -> RolloutPlan:
    """The plan against ``live`` (read_live's answer) and the free GPUs the API reports now."""
    if not live:
        return RolloutPlan()
    # --rollout (or the spec file's rollout) is the user's choice; otherwise the plan's is only the default
    forced = dict(plan.spec.rollout) if plan.spec is not None and plan.spec.origin.get("rollout") else None
    running = kube.list(PODS, fields="status.phase!=Succeeded,status.phase!=Failed")
    return choose(plan, live, workloads, kube.list(NODES), running, forced)


def with_rollout(plan: Plan, rollout: RolloutPlan) -> Plan:
    """The plan re-made with the chosen strategies in its Deployments (the same inputs otherwise)."""
    if plan.spec is None or plan.generation != "router":
        return plan
    chosen = dict(plan.spec.rollout)
    chosen.update(dict(rollout.chosen))
    wanted = tuple(sorted(chosen.items()))
    if wanted == tuple(sorted(plan.spec.rollout)):
        return plan
    return plan_stack(plan.spec._replace(rollout=wanted))



def read_rollout(plan: Plan, box: Toolbox, *, doing: str = "") -> RolloutPlan:
    """The rollout plan of this plan against the live stack (empty when the stack does not run)."""
    try:
        kube = kube_for(box)
        live = read_live(kube, plan)
        if not live:
            return RolloutPlan()
        workloads, _ = rendered_workloads(plan, box)
        return rollout_plan(kube, plan, live, workloads)
    except KubeError as exc:
        raise LlmdctlError(f"the rollout plan could not read the live stack: {exc.message}{doing}",
                           hint=exc.hint or "llmdctl doctor shows what is reachable") from None


def settle_rollout(plan: Plan, box: Toolbox) -> tuple[Plan, RolloutPlan]:
    """Before apply changes a running stack: the rollout plan from the live stack and the free
    GPUs, refused when a role cannot finish, and the plan re-made with the chosen strategies."""
    rollout = read_rollout(plan, box, doing="; nothing was applied")
    if rollout.refused:
        lines = "".join(f"\n  {r.line()}" for r in rollout.refused)
        raise LlmdctlError(f"the change cannot roll out on this cluster; nothing was applied:{lines}",
                           hint="free GPUs (llmdctl doctor shows who holds them), choose a layout that fits, or --rollout recreate "
                                "if the role may go down while it restarts")
    return with_rollout(plan, rollout), rollout
