"""The pods a plan runs, read from it as the kubelet will run them: each role's pod spec, and how
its vLLM container drains. Pure readers shared by the rules, verify and the Pod Security level."""

from __future__ import annotations

import re

from .stack import Plan

_SHUTDOWN_TIMEOUT = re.compile(r"--shutdown-timeout[= ](\d+)")


def pod_specs(plan: Plan) -> dict[str, dict]:
    """role -> the pod spec its pods run: the generated chart's template (router generation), or
    the modelservice values read as that chart renders them (helmfile era: containers, the pod
    fields of extraConfig, volumes; its sidecar is non-root without privilege escalation)."""
    out = {}
    for obj in plan.manifests.get("ms") or []:
        tpl = None
        if obj.get("kind") == "Deployment":
            tpl = obj["spec"]["template"]
        elif obj.get("kind") == "LeaderWorkerSet":
            tpl = obj["spec"]["leaderWorkerTemplate"]["workerTemplate"]
        if tpl is not None:
            out[(tpl.get("metadata") or {}).get("labels", {}).get("llm-d.ai/role", "")] = tpl.get("spec") or {}
    if out:
        return out
    for role in plan.roles:
        block = plan.ms_values.get(role) or {}
        spec = {k: v for k, v in (block.get("extraConfig") or {}).items()}
        spec["containers"] = [c for c in block.get("containers") or [] if isinstance(c, dict)]
        spec["volumes"] = list(block.get("volumes") or [])
        out[role] = spec
    return out


def vllm_of(spec: dict) -> dict:
    """The pod's vLLM container (the first container when none is called vllm)."""
    containers = [c for c in spec.get("containers") or [] if isinstance(c, dict)]
    return next((c for c in containers if c.get("name") == "vllm"), containers[0] if containers else {})


def pod_drain(spec: dict) -> tuple[int | None, int, int]:
    """(vLLM's --shutdown-timeout or None, the preStop sleep, the grace period) of a pod spec as
    the kubelet runs it: the grace period counts the preStop, and is 30 s when unset."""
    c = vllm_of(spec)
    found = _SHUTDOWN_TIMEOUT.findall(" ".join(str(a) for a in [*(c.get("command") or []), *(c.get("args") or [])]))
    lifecycle = c.get("lifecycle") if isinstance(c.get("lifecycle"), dict) else {}
    pre = lifecycle.get("preStop") if isinstance(lifecycle.get("preStop"), dict) else {}
    sleep = (pre.get("sleep") or {}).get("seconds") if isinstance(pre.get("sleep"), dict) else None
    if sleep is None:  # an exec preStop of the form sleep N
        cmd = " ".join(map(str, ((pre.get("exec") or {}) if isinstance(pre.get("exec"), dict) else {}).get("command") or []))
        sleep = next((int(w) for w in reversed(cmd.split()) if w.isdigit()), 0) if "sleep" in cmd else 0
    grace = spec.get("terminationGracePeriodSeconds", 30)
    return (int(found[-1]) if found else None), _whole(sleep), _whole(grace, 30)


def _whole(value, default: int = 0) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default
