"""Why a pod is unhealthy: its phase, waiting reasons, last events and log tail, with a hint for
each cause the evidence supports (pure ``diagnose_pod``; ``collect_diagnostics`` reads)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..compose.names import hf_secret_command
from ..plan.stack import Plan
from .admission import explain_refusal
from .health import NATIVE_SIDECAR_MIN, Observed, _role, pod_ready
from .kube import EVENTS, NODES, SECRETS, Kube, KubeError
from .placement import _qty, node_refusal
from .tools import version_tuple


@dataclass
class Diagnosis:
    pod: str
    role: str | None
    summary: str
    events: list[str]
    logs: list[str]
    hints: list[str]

    def as_dict(self) -> dict:
        return {"pod": self.pod, "role": self.role, "summary": self.summary, "events": self.events, "logs": self.logs, "hints": self.hints}


def pod_summary(pod: dict) -> tuple[str, list[tuple[str, str, str]], str | None]:
    """('Pending, Init:0/1, routing-proxy: ...', [(container, reason, message)], container whose logs matter)."""
    status = pod.get("status") or {}
    phase = status.get("phase", "Unknown")
    reasons, log_container = [], None
    inits = status.get("initContainerStatuses") or []
    parts = [phase]
    if inits and phase == "Pending":
        done = sum(1 for c in inits if c.get("ready") or ((c.get("state") or {}).get("terminated") or {}).get("exitCode") == 0)
        if done < len(inits):
            parts.append(f"Init:{done}/{len(inits)}")
    for c in inits + (status.get("containerStatuses") or []):
        state, last = c.get("state") or {}, c.get("lastState") or {}
        waiting, terminated = state.get("waiting"), (last.get("terminated") or state.get("terminated"))
        if waiting and waiting.get("reason") not in (None, "PodInitializing", "ContainerCreating"):
            reasons.append((c["name"], waiting["reason"], waiting.get("message", "")))
            if waiting["reason"] in ("CrashLoopBackOff", "Error", "RunContainerError"):
                log_container = c["name"]
        if terminated and terminated.get("reason") in ("OOMKilled", "Error"):
            reasons.append((c["name"], terminated["reason"], f"exit code {terminated.get('exitCode')}"))
            log_container = log_container or c["name"]
    parts += [f"{name}: {reason}" for name, reason, _ in reasons]
    return ", ".join(parts), reasons, log_container


def diagnose_pod(plan: Plan, pod: dict, events: list[dict], logs: list[str], *, hf_secret_present: bool | None,
                 server_version: tuple[int, int] | None, nodes: list[dict] | None = None) -> Diagnosis:
    """Phase, waiting reasons, last events and log lines of one unhealthy pod, with hints for known causes."""
    name = pod["metadata"]["name"]
    summary, reasons, _ = pod_summary(pod)
    ev = [e for e in events if (e.get("involvedObject") or {}).get("name") == name]
    ev.sort(key=lambda e: e.get("lastTimestamp") or e.get("eventTime") or "")
    event_lines = [f"{e.get('type', '')} {e.get('reason', '')}: {e.get('message', '')}".strip() for e in ev[-5:]]
    hints: list[str] = []
    ns, secret = plan.namespace, plan.hf_secret
    text = " ".join(m for _, _, m in reasons) + " " + " ".join(event_lines)
    reason_set = {r for _, r, _ in reasons}
    if "CreateContainerConfigError" in reason_set and (secret in text or hf_secret_present is False):
        hints.append(f"the Secret {secret} (key HF_TOKEN) is missing in {ns}; create it with:\n  {hf_secret_command(ns, secret)}")
    role = plan.roles.get(_role(pod) or "")
    hints += _scheduling_hints(role, pod, event_lines, nodes)
    if reason_set & {"ImagePullBackOff", "ErrImagePull", "InvalidImageName"}:
        images = ", ".join(sorted({c.get("image", "?") for c in (pod.get("spec") or {}).get("containers") or []}))
        hints.append(f"the image cannot be pulled ({images}): check the tag exists for this --llmd-version and that the "
                     "nodes can reach the registry (imagePullSecrets for private mirrors)")
    if "OOMKilled" in reason_set:
        hints.append("a container ran out of memory: raise its memory limit (--set ms.<role>.containers[0].resources.limits.memory=...) "
                     "or lower --max-model-len / gpu memory utilisation")
    if "Init:" in summary and server_version and server_version < NATIVE_SIDECAR_MIN:
        hints.append(f"the routing sidecar is a native sidecar (an init container with restartPolicy: Always); this cluster runs "
                     f"Kubernetes {server_version[0]}.{server_version[1]}, and llm-d needs {NATIVE_SIDECAR_MIN[0]}.{NATIVE_SIDECAR_MIN[1]}+ for it")
    return Diagnosis(name, _role(pod), summary, event_lines, logs, hints)


_INSUFFICIENT = re.compile(r"(\d+) Insufficient ([\w./-]*\w)")
_UNTOLERATED = re.compile(r"(\d+) node\(s\) had untolerated taint")
_AFFINITY = re.compile(r"(\d+) node\(s\) didn't match Pod's node affinity/selector")


def _scheduling_hints(role, pod: dict, event_lines: list[str], nodes: list[dict] | None) -> list[str]:
    """Hints from the scheduler's FailedScheduling message, each only where the node counts in it
    support it: 'Insufficient nvidia.com/gpu' on as many nodes as have no GPU at all says nothing
    about GPUs (the tainted GPU nodes are counted under the taint)."""
    line = next((x for x in reversed(event_lines) if "FailedScheduling" in x or "nodes are available" in x), None)
    if line is None:
        return []
    hints = []
    spec = pod.get("spec") or {}
    accel = role.accelerator_resource if role else None
    insufficient = {name: int(n) for n, name in _INSUFFICIENT.findall(line)}
    def lacking(resource: str) -> int | None:  # nodes without the resource at all
        if nodes is None:
            return None
        return sum(1 for n in nodes if not _qty(((n.get("status") or {}).get("allocatable") or {}).get(resource)))
    if _UNTOLERATED.search(line):
        taints = sorted({x for n in (nodes or []) for x in _untolerated(n, spec)})
        gpu_taints = sorted({x for n in (nodes or []) if accel and _qty(((n.get("status") or {}).get("allocatable") or {}).get(accel))
                             for x in _untolerated(n, spec)})
        if gpu_taints:
            hints.append(f"the GPU nodes carry taints this pod does not tolerate ({', '.join(gpu_taints)}): if the stack may run there, "
                         "apply again with " + " ".join(f"--toleration {x}" for x in gpu_taints))
        elif taints:
            hints.append(f"some nodes carry taints this pod does not tolerate ({', '.join(taints)}); they are not GPU nodes")
    if _AFFINITY.search(line):
        hints.append("no node matches the pod's nodeSelector / required node affinity: check the node labels (kubectl get nodes --show-labels)")
    if accel and accel in insufficient:
        none = lacking(accel)
        if none is None or insufficient[accel] > none:
            hints.append(f"no node has {role.gpus_per_pod} free {accel} for a {role.role} pod: shrink the layout "
                         f"(--{role.role} NxTPm), free GPUs, or pick the profile for your hardware (llmdctl profiles); llmdctl doctor shows capacity")
    rdma = role.rdma["resource"] if role and role.rdma else next((r for r in insufficient if r.startswith("rdma/")), None)
    if rdma and rdma in insufficient:
        none = lacking(rdma)
        if nodes is not None and none < len(nodes):
            # "Insufficient" also counts nodes without the resource at all (a CPU-only node): the
            # resource exists, it is only not free next to the GPUs this pod needs
            if insufficient[rdma] > none:
                hints.append(f"nodes do advertise {rdma}, but none has it free together with the GPUs this pod needs: "
                             "other pods hold them; free them or shrink the layout (llmdctl doctor shows capacity)")
        else:
            hints.append(f"no node advertises {rdma}: pass --rdma-resource NAME[=N] with the resource your RDMA device plugin "
                         "advertises (kubectl get nodes -o json | jq '.items[].status.allocatable'), -e host-network, or --rdma-resource none for TCP")
    return hints


def _untolerated(node: dict, spec: dict) -> list[str]:
    why = node_refusal(node, {"tolerations": spec.get("tolerations")})
    return [x.strip() for x in why[len("untolerated taint "):].split(",")] if why else []


def hf_secret_ready(kube: Kube, plan: Plan) -> bool:
    """Whether the token Secret exists with key HF_TOKEN; its value is never kept or shown."""
    secret = kube.get(SECRETS, plan.hf_secret, plan.namespace)
    return bool(secret and "HF_TOKEN" in (secret.get("data") or {}))


def stack_workloads(plan: Plan) -> dict[str, tuple[str | None, bool]]:
    """The stack's workload names -> (role, whether it is a LeaderWorkerSet)."""
    out: dict[str, tuple[str | None, bool]] = {r.deployment: (r.role, r.workers > 1) for r in plan.roles.values()}
    out.setdefault(plan.names["epp"], (None, False))
    return out


def _owner_of(involved: dict, workloads: dict[str, tuple[str | None, bool]]) -> str | None:
    """The stack workload a controller object belongs to: a Deployment's ReplicaSet is NAME-HASH,
    a LeaderWorkerSet's StatefulSets NAME and NAME-GROUP."""
    kind, name = involved.get("kind"), involved.get("name") or ""
    for workload, (_, lws) in workloads.items():
        if kind == "ReplicaSet" and not lws and re.fullmatch(re.escape(workload) + r"-[a-z0-9]+", name):
            return workload
        if kind in ("StatefulSet", "LeaderWorkerSet") and lws and re.fullmatch(re.escape(workload) + r"(-[0-9]+)?", name):
            return workload
    return None


def workload_refusals(kube: Kube, plan: Plan, only: set[str] | None = None, deployments: dict | None = None) -> list[Diagnosis]:
    """Pods that were never created: the controllers' FailedCreate events (the API server refused
    the pod: PodSecurity, a quota, a LimitRange, a webhook), the newest per workload, each with
    the cause and fix its message shows. Events expire (an hour by default); a Deployment keeps the
    same message in its ReplicaFailure condition, read from ``deployments`` when no event is left."""
    workloads = stack_workloads(plan)
    if only is not None:
        workloads = {k: v for k, v in workloads.items() if k in only}
    latest: dict[str, dict] = {}
    for event in kube.list(EVENTS, plan.namespace, fields="reason=FailedCreate"):
        owner = _owner_of(event.get("involvedObject") or {}, workloads)
        stamp = event.get("lastTimestamp") or event.get("eventTime") or ""
        if owner and stamp >= (latest.get(owner, {}).get("lastTimestamp") or latest.get(owner, {}).get("eventTime") or ""):
            latest[owner] = event
    for name, dep in (deployments or {}).items():
        if name in workloads and name not in latest:
            failure = next((c for c in (dep.get("status") or {}).get("conditions") or []
                            if c.get("type") == "ReplicaFailure" and c.get("status") == "True"), None)
            if failure:
                latest[name] = {"message": failure.get("message", ""), "involvedObject": {"kind": "Deployment", "name": name}}
    out = []
    for owner, event in sorted(latest.items()):
        message = str(event.get("message", ""))
        refusal = explain_refusal(message.split("Error creating: ", 1)[-1], plan)
        involved = event.get("involvedObject") or {}
        out.append(Diagnosis(f"{involved.get('kind')} {involved.get('name')}", workloads[owner][0],
                             f"no pods: the API server refuses them ({refusal.cause})",
                             [f"Warning FailedCreate: {message}"], [], [refusal.fix] if refusal.fix else []))
    return out


def missing_pods(plan: Plan, obs: Observed) -> set[str]:
    """The stack's workloads with fewer pods than planned (whatever the reason)."""
    short = set()
    for role in plan.roles.values():
        have = sum(1 for p in obs.pods if _role(p) == role.role)
        if have < role.pods:
            short.add(role.deployment)
    return short


def collect_diagnostics(kube: Kube, plan: Plan, obs: Observed, limit: int = 6) -> list[Diagnosis]:
    """For each unhealthy pod (at most ``limit``): events, log tail and hints; for each workload
    short of pods, why the API server refused them. A few extra calls."""
    sick = [p for p in obs.pods if not pod_ready(p)]
    refused: list[Diagnosis] = []
    short = missing_pods(plan, obs)
    if short:
        try:
            refused = workload_refusals(kube, plan, short, obs.deployments)
        except KubeError:
            refused = []
    if not sick:
        return refused
    try:
        events = kube.list(EVENTS, plan.namespace, fields="involvedObject.kind=Pod")
    except KubeError:
        events = []
    try:
        hf_present = hf_secret_ready(kube, plan)
    except KubeError:
        hf_present = None
    nodes: list[dict] | None = None
    if any("nodes are available" in str(e.get("message", "")) for e in events):  # one more call, only to explain scheduling
        try:
            nodes = kube.list(NODES)
        except KubeError:
            nodes = None
    try:
        v = version_tuple(kube.version().get("gitVersion", ""))
        server = (v[0], v[1]) if v else None
    except KubeError:
        server = None
    out = []
    for pod in sick[:limit]:
        _, reasons, container = pod_summary(pod)
        logs: list[str] = []
        if container:
            try:
                previous = any(r in ("CrashLoopBackOff", "OOMKilled", "Error") for _, r, _ in reasons)
                logs = kube.pod_log(plan.namespace, pod["metadata"]["name"], container, tail=15, previous=previous).splitlines()[-15:]
            except KubeError as exc:
                logs = [f"(logs unavailable: {exc.message})"]
        out.append(diagnose_pod(plan, pod, events, logs, hf_secret_present=hf_present, server_version=server, nodes=nodes))
    return refused + out


