"""Why a pod is unhealthy: its phase, waiting reasons, last events and log tail, with a hint for
each cause the evidence supports (pure ``diagnose_pod``; ``collect_diagnostics`` reads)."""

from __future__ import annotations

from dataclasses import dataclass

from ..compose.names import hf_secret_command
from ..plan.stack import Plan
from .health import NATIVE_SIDECAR_MIN, Observed, _role, pod_ready
from .kube import EVENTS, NODES, SECRETS, Kube, KubeError
from .placement import _qty
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
                 server_version: tuple[int, int] | None, advertised: set[str] | None = None) -> Diagnosis:
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
    for line in event_lines:
        if "Insufficient" not in line and "untolerated" not in line:
            continue
        accel = role.accelerator_resource if role else None
        if accel and f"Insufficient {accel}" in line:
            hints.append(f"no node has {role.gpus_per_pod} free {accel} for a {role.role} pod: shrink the layout "
                         f"(--{role.role} NxTPm), free GPUs, or pick the profile for your hardware (llmdctl profiles); llmdctl doctor shows capacity")
        if "Insufficient rdma/" in line or (role and role.rdma and f"Insufficient {role.rdma['resource']}" in line):
            res = role.rdma["resource"] if role and role.rdma else "rdma/*"
            if advertised is not None and res in advertised:
                # "Insufficient" also counts nodes without the resource at all (a CPU-only node): the
                # resource exists, it is only not free next to the GPUs this pod needs
                hints.append(f"nodes do advertise {res}, but none has it free together with the GPUs this pod needs: "
                             "other pods hold them; free them or shrink the layout (llmdctl doctor shows capacity)")
            else:
                hints.append(f"no node advertises {res}: pass --rdma-resource NAME[=N] with the resource your RDMA device plugin "
                             "advertises (kubectl get nodes -o json | jq '.items[].status.allocatable'), -e host-network, or --rdma-resource none for TCP")
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


def hf_secret_ready(kube: Kube, plan: Plan) -> bool:
    """Whether the token Secret exists with key HF_TOKEN; its value is never kept or shown."""
    secret = kube.get(SECRETS, plan.hf_secret, plan.namespace)
    return bool(secret and "HF_TOKEN" in (secret.get("data") or {}))


def collect_diagnostics(kube: Kube, plan: Plan, obs: Observed, limit: int = 6) -> list[Diagnosis]:
    """For each unhealthy pod (at most ``limit``): events, log tail and hints; a few extra calls."""
    sick = [p for p in obs.pods if not pod_ready(p)]
    if not sick:
        return []
    try:
        events = kube.list(EVENTS, plan.namespace, fields="involvedObject.kind=Pod")
    except KubeError:
        events = []
    try:
        hf_present = hf_secret_ready(kube, plan)
    except KubeError:
        hf_present = None
    advertised: set[str] | None = None
    if any("Insufficient" in str(e.get("message", "")) for e in events):  # one more call, only to explain scheduling
        try:
            advertised = {k for n in kube.list(NODES) for k, v in ((n.get("status") or {}).get("allocatable") or {}).items() if _qty(v) > 0}
        except KubeError:
            advertised = None
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
        out.append(diagnose_pod(plan, pod, events, logs, hf_secret_present=hf_present, server_version=server, advertised=advertised))
    return out


