"""--autoscale ROLE=MIN-MAX: one HorizontalPodAutoscaler (autoscaling/v2) per role.

An aggregated stack scales on the InferencePool as its EPP reports it (average queue depth and
KV-cache use, External metrics). A P/D stack scales each role on its own vLLM pods (Pods metrics):
the pool's averages mix prefill and decode pods, so they cannot tell which role is short. The
metrics reach the HPA through the API server's metrics APIs, served by an adapter from Prometheus;
which names it must serve comes from here, and ``doctor`` checks that it does.

The workload leaves ``replicas`` to the HPA: a chart that set it would undo every scaling decision
on the next ``helm upgrade``.
"""

from __future__ import annotations

from typing import Any

from ..base.errors import InputError
from ..catalog.catalog import Release


def check_autoscale(wanted: tuple, release: Release, *, roles: dict) -> dict[str, tuple[int, int]]:
    """role -> (min, max) for the planned roles (after every override), or a refusal that says why
    and what to do instead."""
    if not wanted:
        return {}
    if not release.autoscaling:
        raise InputError(f"--autoscale: llmdctl renders HPAs for the router generation (llm-d v0.8.0 and newer), not for llm-d {release.name}",
                         hint="use --llmd-version v0.9.0 (modelservice's own autoscaling.enabled needs the Workload Variant Autoscaler)")
    out: dict[str, tuple[int, int]] = {}
    for role, low, high in wanted:
        if role not in roles:
            raise InputError(f"--autoscale {role}={low}-{high}: this stack has no {role} pods (aggregated serving)",
                             hint="scale the decode pods (--autoscale decode=MIN-MAX), or give prefill pods with --prefill NxTPm")
        start = roles[role].replicas
        if not low <= start <= high:
            raise InputError(f"--autoscale {role}={low}-{high}: --{role} {roles[role].layout} starts {start} replica(s), outside that range",
                             hint=f"give --{role} a replica count between {low} and {high}")
        out[role] = (low, high)
    return out


def metrics_for(plan, role: str) -> tuple[str, list[dict]]:
    """(metrics API, [{name, series, target}]) the role's HPA reads."""
    facts = plan.release_info.autoscaling
    if plan.mode == "aggregated":
        return facts["pool"]["api"], list(facts["pool"]["metrics"])
    return facts["role"]["api"], list(facts["role"]["metrics"][role])


def hpa_objects(plan, labels: dict) -> list[dict]:
    """The stack's HPAs: each targets its role's Deployment (or LeaderWorkerSet, which has a scale subresource)."""
    out = []
    facts = plan.release_info.autoscaling
    for role in plan.roles.values():
        if role.autoscale is None:
            continue
        low, high = role.autoscale
        api, metrics = metrics_for(plan, role.role)
        specs: list[dict[str, Any]] = []
        for m in metrics:
            if api.startswith("external."):
                specs.append({"type": "External", "external": {
                    "metric": {"name": m["name"], "selector": {"matchLabels": {facts["pool"]["poolLabel"]: plan.names["pool"]}}},
                    "target": {"type": "Value", "value": m["target"]}}})
            else:
                specs.append({"type": "Pods", "pods": {"metric": {"name": m["name"]}, "target": {"type": "AverageValue", "averageValue": m["target"]}}})
        target_api = "apps/v1" if role.workload == "Deployment" else "leaderworkerset.x-k8s.io/v1"
        out.append({
            "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": role.deployment, "labels": {**labels, "llm-d.ai/role": role.role}},
            "spec": {
                "scaleTargetRef": {"apiVersion": target_api, "kind": role.workload, "name": role.deployment},
                "minReplicas": low, "maxReplicas": high, "metrics": specs,
                "behavior": {"scaleDown": {"stabilizationWindowSeconds": facts["scaleDownStabilizationSeconds"]}},
            },
        })
    return out


def adapter_rules(plan) -> dict:
    """Prometheus Adapter rules that serve exactly the metric names the stack's HPAs read."""
    custom, external, seen = [], [], set()
    for role in plan.roles.values():
        if role.autoscale is None:
            continue
        api, metrics = metrics_for(plan, role.role)
        for m in metrics:
            if (api, m["name"]) in seen:
                continue
            seen.add((api, m["name"]))
            if api.startswith("external."):
                label = plan.release_info.autoscaling["pool"]["poolLabel"]
                external.append({"seriesQuery": f'{m["series"]}{{{label}!=""}}',
                                 "resources": {"overrides": {"namespace": {"resource": "namespace"}}},
                                 "name": {"as": m["name"]},
                                 "metricsQuery": f"max(<<.Series>>{{<<.LabelMatchers>>}}) by ({label})"})
            else:
                custom.append({"seriesQuery": f'{{__name__="{m["series"]}",namespace!="",pod!=""}}',
                               "resources": {"overrides": {"namespace": {"resource": "namespace"}, "pod": {"resource": "pod"}}},
                               "name": {"as": m["name"]},
                               "metricsQuery": "sum(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)"})
    rules: dict[str, Any] = {}
    if custom:
        rules["custom"] = custom
    if external:
        rules["external"] = external
    return {"rules": rules}


def served_metrics(plan) -> dict[str, list[str]]:
    """metrics API (group/version) -> the metric names the stack's HPAs need from it."""
    out: dict[str, list[str]] = {}
    for role in plan.roles.values():
        if role.autoscale is None:
            continue
        api, metrics = metrics_for(plan, role.role)
        for m in metrics:
            if m["name"] not in out.setdefault(api, []):
                out[api].append(m["name"])
    return out
