"""The layers a stack's layout and pod lifecycle add: replicas and parallelism per role (a
LeaderWorkerSet when ranks span nodes), how a change replaces the pods (rollout), how a pod
drains before it exits, and least privilege for the vLLM containers."""

from __future__ import annotations

import copy
import math
from typing import Any

from ..base.errors import InputError
from ..catalog.catalog import Release
from ..inputs.spec import RoleLayout, Spec
from .layer import ValuesLayer

def layout_layer(prefill: RoleLayout, decode: RoleLayout, mode: str, hw: dict, release: Release) -> tuple[ValuesLayer, list[str]]:
    notes: list[str] = []
    layouts = {"decode": decode, **({"prefill": prefill} if mode == "disaggregated" else {})}
    ms: dict[str, Any] = {}
    for role, lay in layouts.items():
        ms[role] = {**({"create": True} if role == "prefill" else {}), "replicas": lay.replicas, "parallelism": _parallelism(role, lay, hw, release)}
        flags = (["--enable-expert-parallel"] if lay.expert else []) + _dp_balancer_flags(ms[role]["parallelism"], hw)
        vllm: dict[str, Any] = {"name": "vllm", **({"args": flags} if flags else {})}
        rdma = role_rdma(hw.get("rdma"), role)
        if rdma and mode != "disaggregated" and ms[role]["parallelism"].get("workers", 1) > 1:
            # the stack layer asks for NICs where the KV cache crosses between roles; an instance
            # over nodes needs them without prefill pods too, for its own EP all-to-all and DP collectives
            n = rdma.get("count", 1)
            vllm["resources"] = {"limits": {rdma["resource"]: n}, "requests": {rdma["resource"]: n}}
        if len(vllm) > 1:
            ms[role]["containers"] = [vllm]
    ports = _rank_ports(ms, hw, release)
    router: dict[str, Any] = {}
    if ports:
        # every DP rank answers on its own port: the pool must list them all, or only rank 0 serves
        router = {"router": {"modelServers": {"targetPorts": [{"number": p} for p in ports]}}}
        notes.append(f"multi-port data parallelism: the InferencePool targets ports {ports[0]}-{ports[-1]} (one per local DP rank)")
    ts = hw.get("timeSlicing")
    if ts:
        pods = decode.replicas + (prefill.replicas if mode == "disaggregated" else 0)
        cap = math.floor(ts.get("memoryBudget", 0.8) / pods * 100) / 100
        if cap < 0.05:
            raise InputError(
                f"{pods} vLLM pods cannot share one time-sliced GPU: each would get {cap:.2f} of its memory",
                hint="use fewer replicas, e.g. --prefill 1xTP1 --decode 1xTP1",
            )
        for role in ms:
            vllm = (ms[role].get("containers") or [{"name": "vllm"}])[0]
            ms[role]["containers"] = [{**vllm, "args": [*vllm.get("args", []), f"--gpu-memory-utilization={cap:.2f}"]}]
        notes.append(f"time-slicing: --gpu-memory-utilization={cap:.2f} on each of {pods} pods (sum {cap * pods:.2f} <= 1.0)")
    return ValuesLayer("layout", f"--prefill {prefill} --decode {decode}", {"ms": ms, **({"router": router} if router and release.generation == "router" else {})}), notes


# A GPU cluster is usually full: Kubernetes' default rollout (25% surge, 25% unavailable: one new
# pod first, none old gone) needs spare GPUs that are not there, and the change stalls Pending.
ROLLOUT_STRATEGIES = {
    "surge": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
    "in-place": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}},
    "recreate": {"type": "Recreate"},
}


def rollout_layer(spec: Spec, mode: str) -> ValuesLayer:
    """Each role's Deployment strategy (a LeaderWorkerSet's rolloutStrategy follows it): what apply
    chose from the live stack, --rollout, or in place when nothing is known (a bundle rendered
    without a cluster must not stall on a full one)."""
    chosen = dict(spec.rollout)
    roles = ("prefill", "decode") if mode == "disaggregated" else ("decode",)
    ms = {role: {"strategy": copy.deepcopy(ROLLOUT_STRATEGIES[chosen.get(role, "in-place")])} for role in roles}
    what = ", ".join(f"{role} {chosen.get(role, 'in-place')}" for role in roles)
    return ValuesLayer("rollout", f"how a change replaces the pods: {what}", {"ms": ms})


# what every container of a pod may keep when the hardware needs nothing more (Pod Security's
# restricted profile, less runAsNonRoot: the vLLM images run as root)
LEAST_PRIVILEGE = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"}}


def least_privilege_layer(hw: dict) -> list[ValuesLayer]:
    """The vLLM containers drop every capability but the ones the profile adds (IPC_LOCK where UCX
    pins memory for RDMA), never escalate, and run under the runtime's default seccomp profile.
    Not for hardware whose pods share the host's namespaces (host-network runs privileged; GB200's
    cross-pod CUDA IPC needs the host's IPC and PID): those keep what their guides run with."""
    if hw.get("hostNetwork") or hw.get("hostAccess"):
        return []
    return [ValuesLayer("least privilege", "vLLM drops all capabilities but the profile's, no privilege escalation, seccomp RuntimeDefault",
                   {"ms": {"roles": {"containers": [{"name": "vllm", "securityContext": copy.deepcopy(LEAST_PRIVILEGE)}]}}})]


def drain_layer(release: Release, layout: ValuesLayer) -> list[ValuesLayer]:
    """What lets a pod that is replaced or scaled down finish its requests (the release's
    engine.drain): a preStop sleep while the router stops picking it, vLLM's drain on SIGTERM, and
    a grace period longer than both. An instance over nodes drains longer (long MoE requests)."""
    drain = release.engine.get("drain")
    if not drain:
        return []
    ms: dict[str, Any] = {}
    seen = []
    for role, block in layout.values["ms"].items():
        wide = block["parallelism"].get("workers", 1) > 1
        timeout = drain["multiNodeShutdownTimeoutSeconds" if wide else "shutdownTimeoutSeconds"]
        grace = drain["preStopSeconds"] + timeout + drain["teardownSeconds"]
        ms[role] = {
            "terminationGracePeriodSeconds": grace,
            "containers": [{"name": "vllm", "args": [f"--shutdown-timeout={timeout}"],
                            "extraConfig": {"lifecycle": {"preStop": {"sleep": {"seconds": drain["preStopSeconds"]}}}}}],
        }
        seen.append(f"{role} {drain['preStopSeconds']} s + {timeout} s of {grace} s")
    return [ValuesLayer("drain", "in-flight requests finish before a pod exits (preStop, --shutdown-timeout, grace): " + ", ".join(seen), {"ms": ms})]


def _parallelism(role: str, lay: RoleLayout, hw: dict, release: Release) -> dict:
    """modelservice's parallelism block for a role: ranks per pod (dataLocal) and pods per instance
    (workers) follow from the profile's GPUs per node; a shape nodes cannot hold is refused here."""
    par: dict[str, Any] = {"tensor": lay.tensor}
    if lay.data == 1:
        return par
    flag = f"--{role} {lay}"
    per_node = int(hw.get("gpusPerNode") or 8)
    if lay.tensor > per_node:
        raise InputError(f"{flag}: TP{lay.tensor} is more than the {per_node} GPUs of one node; tensor parallelism does not span nodes",
                         hint=f"use TP{per_node} or less, with more DP ranks")
    local = min(lay.data, per_node // lay.tensor)
    if lay.data % local:
        fit = [n * local for n in (lay.data // local, lay.data // local + 1) if n]
        raise InputError(f"{flag}: DP{lay.data} x TP{lay.tensor} does not fill whole nodes of {per_node} GPUs "
                         f"({local} ranks per node, so the last node would be part-used and the DP group uneven)",
                         hint="use DP" + " or DP".join(str(n) for n in fit) + f" (a multiple of {local})")
    workers = lay.data // local
    if workers > 1 and release.generation != "router":
        raise InputError(f"{flag}: an instance over {workers} nodes needs a LeaderWorkerSet, which llmdctl generates for llm-d v0.7.0 and later",
                         hint=f"use --llmd-version v0.9.0, or DP{local} (one node) on llm-d {release.name}")
    par.update(data=lay.data, dataLocal=local, workers=workers)
    return par


def _dp_balancer_flags(par: dict, hw: dict) -> list[str]:
    """How the ranks of an instance over several nodes take requests: hybrid (one API server per
    node spreads over its local ranks; vLLM's GB200 guide) or multi-port (one port per rank behind a
    per-node supervisor; llm-d's wide-EP guide), as the hardware profile says."""
    if par.get("workers", 1) <= 1:
        return []
    return ["--data-parallel-hybrid-lb"] if _dp_load_balancing(hw) == "hybrid" else ["--data-parallel-multi-port-external-lb"]


def _dp_load_balancing(hw: dict) -> str:
    return (hw.get("dataParallel") or {}).get("loadBalancing", "hybrid")


def _rank_ports(ms: dict, hw: dict, release: Release) -> list[int]:
    if _dp_load_balancing(hw) != "multi-port":
        return []
    local = max((block["parallelism"].get("dataLocal", 1) for block in ms.values() if block["parallelism"].get("workers", 1) > 1), default=0)
    port = release.contract["servicePort"]
    return [port + i for i in range(local)] if local else []


# --- dialects ------------------------------------------------------------------------------


def role_rdma(rdma: dict | None, role: str) -> dict | None:
    """The profile's RDMA request for one role (a profile may give prefill and decode different NIC counts)."""
    if not rdma:
        return None
    by_role = rdma.get("countByRole") or {}
    return {**rdma, "count": by_role.get(role, rdma.get("count", 1))} if role in by_role else rdma
