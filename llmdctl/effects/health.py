"""verify, doctor and the smoke test: what a healthy stack looks like, read from the plan.

Split in two on purpose: ``observe_*`` make a small, fixed number of API calls and return plain
dicts; ``evaluate_*`` / ``diagnose`` are pure functions from (plan, observations) to checks, so
every verdict and hint is testable from fixtures. No name is hard-coded here: Deployments, pool,
Gateway, route, labels, images and resources all come from the plan ``render`` builds.
"""

from __future__ import annotations

import json
import re
import secrets
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field

from ..base.errors import LlmdctlError
from ..compose.autoscaling import served_metrics
from ..compose.modelserver import ROLE_LABEL
from ..compose.names import hf_secret_command
from ..compose.router import ENVOY_LISTENER as ENVOY_TARGET
from ..compose.shared_gateway import bbr_install_command, route_models, route_parents
from ..plan.stack import Plan
from .tools import version_tuple
from .kube import (
    APISERVICES, CRDS, DEPLOYMENTS, EVENTS, GATEWAYCLASSES, GATEWAYS, HPAS, HTTPROUTES, LEADERWORKERSETS, NAMESPACES, NODES, PODS, SECRETS, SERVICES,
    Kube, KubeError, inference_pools,
)

PASS, FAIL, PENDING, WARN = "pass", "fail", "pending", "warn"
NATIVE_SIDECAR_MIN = (1, 33)
DRA_V1_MIN = (1, 34)  # resource.k8s.io/v1 (ResourceClaimTemplates of the DRA profiles)
SIDECAR = "routing-proxy"
LWS_GROUP = "leaderworkerset.sigs.k8s.io/group-index"  # set by the LWS controller on every pod of a group
# kinds of the generated charts that need a CRD (and a controller) beyond the core API
GENERATED_KIND_CRDS = {"LeaderWorkerSet": "leaderworkersets.leaderworkerset.x-k8s.io",
                       "ComputeDomain": "computedomains.resource.nvidia.com"}


@dataclass
class Check:
    name: str
    status: str  # pass | fail | pending | warn
    observed: str
    expected: str = ""
    hint: str = ""
    details: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"name": self.name, "status": self.status, "observed": self.observed, "expected": self.expected,
                "hint": self.hint, "details": self.details}


def pool_api_version(plan: Plan) -> str:
    pool = plan.pool_values
    dialect = plan.release_info.dialect["poolApiVersion"]
    return pool.get("apiVersion") or dialect.get(plan.gateway, dialect["default"])


def selector_text(labels: dict) -> str:
    return ",".join(f"{k}={v}" for k, v in labels.items())


def _cond(obj: dict | None, kind: str, conditions_at=("status", "conditions")) -> dict | None:
    node = obj or {}
    for key in conditions_at:
        node = (node or {}).get(key) or {}
    for c in node or []:
        if c.get("type") == kind:
            return c
    return None


def pod_ready(pod: dict) -> bool:
    c = _cond(pod, "Ready")
    return bool(c and c.get("status") == "True")


def _role(pod: dict) -> str | None:
    return ((pod.get("metadata") or {}).get("labels") or {}).get(ROLE_LABEL)


# --- verify: observe -------------------------------------------------------------------------


@dataclass
class Observed:
    releases: list[dict]
    deployments: dict[str, dict]
    pods: list[dict]
    pool: dict | None
    gateway: dict | None
    route: dict | None
    errors: dict[str, str] = field(default_factory=dict)  # what could not be read, and why
    service: dict | None = None  # standalone mode: the router's EPP Service (Envoy on port 80)
    groups: dict = field(default_factory=dict)  # LeaderWorkerSets by name (roles whose instances span nodes)
    hpas: dict = field(default_factory=dict)  # HorizontalPodAutoscalers by name (roles with --autoscale)


def observe_stack(kube: Kube, plan: Plan) -> Observed:
    """Six API calls, whatever the stack's size: lists by label selector, gets by name."""
    ns, n = plan.namespace, plan.names
    errors: dict[str, str] = {}

    def read(what: str, fn, default):
        try:
            return fn()
        except KubeError as exc:
            if exc.status == 0:
                raise
            errors[what] = exc.message
            return default

    release_list = ",".join(r.name for r in plan.releases)
    releases = read("releases", lambda: kube.list(SECRETS, ns, labels=f"owner=helm,name in ({release_list})"), [])
    deployments = read("deployments", lambda: {d["metadata"]["name"]: d for d in kube.list(DEPLOYMENTS, ns)}, {})
    pods = read("pods", lambda: kube.list(PODS, ns, labels=selector_text(plan.pool_selector)), [])
    pool = read("pool", lambda: kube.get(inference_pools(pool_api_version(plan)), n["pool"], ns), None)
    groups = {}
    if any(r.workers > 1 for r in plan.roles.values()):
        groups = read("leaderworkersets", lambda: {g["metadata"]["name"]: g for g in kube.list(LEADERWORKERSETS, ns)}, {})
    hpas = {}
    if any(r.autoscale for r in plan.roles.values()):
        hpas = read("hpas", lambda: {h["metadata"]["name"]: h for h in kube.list(HPAS, ns)}, {})
    if plan.standalone:  # no Gateway and no route: clients come in through the EPP Service
        service = read("service", lambda: kube.get(SERVICES, n["epp"], ns), None)
        return Observed(releases, deployments, pods, pool, None, None, errors, service, groups, hpas)
    gateway = read("gateway", lambda: kube.get(GATEWAYS, n["gateway"], plan.gateway_namespace), None)
    route = read("route", lambda: kube.get(HTTPROUTES, n["route"], ns), None)
    return Observed(releases, deployments, pods, pool, gateway, route, errors, groups=groups, hpas=hpas)


# --- verify: evaluate (pure) -------------------------------------------------------------------


def evaluate_stack(plan: Plan, obs: Observed) -> list[Check]:
    checks = _release_checks(plan, obs)
    for role in plan.roles.values():
        if role.workers > 1:
            checks.append(_group_set_check(role, obs))
            checks.append(_pods_check(plan, role, obs))
            checks.append(_ranks_check(role, obs))
        else:
            checks.append(_deployment_check(role.deployment, role.replicas, obs, what=f"{role.role} Deployment", scaled=role.autoscale))
            checks.append(_pods_check(plan, role, obs))
        if role.autoscale:
            checks.append(_hpa_check(role, obs))
    checks.append(_deployment_check(plan.names["epp"], 1, obs, what="scheduler (EPP) Deployment", at_least=True))
    if plan.generation == "router" and plan.mode == "disaggregated":
        checks.append(_sidecar_check(plan, obs))
    checks.append(_pool_check(plan, obs))
    if plan.standalone:
        checks.append(_service_check(plan, obs))
    else:
        checks.append(_gateway_check(plan, obs))
        checks.append(_route_check(plan, obs))
    return checks


def _sidecar_check(plan: Plan, obs: Observed) -> Check:
    """decode's routing sidecar must be a native sidecar in front of vLLM, or prefill is never called."""
    decode = plan.roles["decode"]
    label = f"decode sidecar {SIDECAR}"
    if "deployments" in obs.errors:
        return _unreadable(label, obs.errors["deployments"])
    dep = obs.deployments.get(decode.deployment)
    expected = f"native sidecar (restartPolicy Always) on :{plan.release_info.contract['servicePort']} -> vLLM :{decode.vllm_port}"
    if dep is None:
        return Check(label, PENDING, "no decode Deployment yet", expected)
    pod = ((dep.get("spec") or {}).get("template") or {}).get("spec") or {}
    sidecar = next((c for c in pod.get("initContainers") or [] if c.get("name") == SIDECAR), None)
    if sidecar is None:
        return Check(label, FAIL, "missing from the decode pods", expected, hint="re-render and apply: the decode pods would serve without prefill")
    if sidecar.get("restartPolicy") != "Always":
        return Check(label, FAIL, "an init container that exits (no restartPolicy: Always)", expected, hint="Kubernetes >= 1.29 is needed for native sidecars")
    # the template is right, but the check is about decode pods: with none (a webhook or quota
    # refused them, or they are not created yet) nothing has been shown to run the sidecar
    running = [p for p in obs.pods if _role(p) == "decode"
               and any(c.get("name") == SIDECAR for c in (p.get("spec") or {}).get("initContainers") or [])]
    if not running:
        return Check(label, PENDING, f"in the decode pod template (image {sidecar.get('image')}), but there are no decode pods", expected)
    return Check(label, PASS, f"native sidecar, image {sidecar.get('image')}, in {len(running)} decode pod{'s' if len(running) != 1 else ''}", expected)


def _service_check(plan: Plan, obs: Observed) -> Check:
    name = plan.names["epp"]
    label = f"Service {name}"
    port = plan.release_info.contract["proxyServicePort"]
    expected = f"port {port} -> Envoy {ENVOY_TARGET}"
    if "service" in obs.errors:
        return _unreadable(label, obs.errors["service"])
    if obs.service is None:
        return Check(label, FAIL, "missing", expected, hint="the router release should create it; llmdctl status")
    ports = {p.get("port"): p.get("targetPort") for p in (obs.service.get("spec") or {}).get("ports") or []}
    if ports.get(port) not in (ENVOY_TARGET, str(ENVOY_TARGET)):
        return Check(label, FAIL, f"ports {ports}", expected, hint="the router values lost extraServicePorts: re-render and apply")
    return Check(label, PASS, f"port {port} -> {ports[port]}", expected)


def _unreadable(name: str, why: str) -> Check:
    hint = "the current user may not read this; `kubectl auth can-i` shows what is allowed" if "403" in why else ""
    return Check(name, FAIL, f"could not read: {why}", hint=hint)


def _release_checks(plan: Plan, obs: Observed) -> list[Check]:
    if "releases" in obs.errors:
        return [_unreadable("helm releases", obs.errors["releases"])]
    latest: dict[str, dict] = {}
    for secret in obs.releases:
        labels = secret["metadata"].get("labels") or {}
        name, rev = labels.get("name"), int(labels.get("version", "0") or 0)
        if name and (name not in latest or rev > int(latest[name]["version"])):
            latest[name] = labels
    checks = []
    for rel in plan.releases:
        rec = latest.get(rel.name)
        if rec is None:
            checks.append(Check(f"release {rel.name}", FAIL, "not installed", "deployed", hint="llmdctl apply (same inputs) installs it"))
            continue
        status = rec.get("status", "unknown")
        state = PASS if status == "deployed" else PENDING if status.startswith("pending") else FAIL
        if state == FAIL:
            hint = f"helm history {rel.name} -n {plan.namespace} shows why; llmdctl apply syncs a failed release again"
        elif status == "pending-install":
            hint = f"a cut-off install holds the release lock: helm uninstall {rel.name} -n {plan.namespace}, then llmdctl apply"
        elif state == PENDING:
            hint = f"a cut-off helm run holds the release lock: helm rollback {rel.name} -n {plan.namespace}, then llmdctl apply"
        else:
            hint = ""
        checks.append(Check(f"release {rel.name}", state, f"{status}, revision {rec.get('version')}", "deployed", hint=hint))
    return checks


def _deployment_check(name: str, replicas: int, obs: Observed, *, what: str, at_least: bool = False,
                      scaled: tuple[int, int] | None = None) -> Check:
    label = f"{what} {name}"
    if "deployments" in obs.errors:
        return _unreadable(label, obs.errors["deployments"])
    dep = obs.deployments.get(name)
    expected = f"{replicas}{'+' if at_least else ''} ready" if not scaled else f"{scaled[0]}-{scaled[1]} replicas (HPA), all ready"
    if dep is None:
        return Check(label, FAIL, "missing", expected, hint="the release did not create it: check `llmdctl status` and the values")
    spec = int((dep.get("spec") or {}).get("replicas", 1))
    ready = int((dep.get("status") or {}).get("readyReplicas") or 0)
    if scaled:
        if not scaled[0] <= spec <= scaled[1]:
            return Check(label, FAIL, f"spec.replicas {spec}", expected,
                         hint=f"outside the HPA's range: kubectl describe hpa {name} -n <namespace> says who set it")
        return Check(label, PASS if ready >= spec else PENDING, f"{ready}/{spec} ready", expected)
    if not at_least and spec != replicas:
        return Check(label, FAIL, f"spec.replicas {spec}", f"{replicas} (planned)", hint="someone scaled it or the values differ: llmdctl apply restores the plan (it syncs a release whose live Deployments drifted)")
    if ready >= (replicas if not at_least else 1) and ready >= spec:
        return Check(label, PASS, f"{ready}/{spec} ready", expected)
    return Check(label, PENDING, f"{ready}/{spec} ready", expected)


def _hpa_check(role, obs: Observed) -> Check:
    """The role's HPA exists and can read its metrics (ScalingActive): without them it never scales."""
    label = f"{role.role} HPA {role.deployment}"
    if "hpas" in obs.errors:
        return _unreadable(label, obs.errors["hpas"])
    low, high = role.autoscale
    expected = f"{low}-{high} replicas, metrics readable (ScalingActive)"
    hpa = obs.hpas.get(role.deployment)
    if hpa is None:
        return Check(label, FAIL, "missing", expected, hint="the model-server release did not create it: llmdctl apply (same inputs)")
    spec = hpa.get("spec") or {}
    if (spec.get("minReplicas"), spec.get("maxReplicas")) != (low, high):
        return Check(label, FAIL, f"{spec.get('minReplicas')}-{spec.get('maxReplicas')} replicas", expected,
                     hint="it differs from the plan: llmdctl apply restores it")
    active = _cond(hpa, "ScalingActive")
    status = hpa.get("status") or {}
    seen = f"{status.get('currentReplicas', '?')} -> {status.get('desiredReplicas', '?')} replicas"
    if active is None:
        return Check(label, PENDING, f"{seen}, no ScalingActive condition yet", expected)
    if active.get("status") != "True":
        return Check(label, FAIL, f"ScalingActive {active.get('status')}: {active.get('reason', '')} {active.get('message', '')}".strip()[:300], expected,
                     hint="the HPA cannot read its metrics: `llmdctl doctor` checks the metrics adapter and the names it serves "
                          "(the bundle README's Autoscaling section has the Prometheus Adapter rules)")
    return Check(label, PASS, seen, expected)


def _group_set_check(role, obs: Observed) -> Check:
    """A role whose instances span nodes: its LeaderWorkerSet, one group per instance."""
    label = f"{role.role} LeaderWorkerSet {role.deployment}"
    if "leaderworkersets" in obs.errors:
        return _unreadable(label, obs.errors["leaderworkersets"])
    expected = f"{role.replicas} group{'s' if role.replicas != 1 else ''} of {role.workers} pods ready"
    lws = obs.groups.get(role.deployment)
    if lws is None:
        return Check(label, FAIL, "missing", expected, hint="the release did not create it: is the LeaderWorkerSet controller installed? (llmdctl doctor checks its CRD)")
    spec = lws.get("spec") or {}
    replicas, size = int(spec.get("replicas", 1)), int((spec.get("leaderWorkerTemplate") or {}).get("size", 1))
    low, high = role.replica_range
    if not low <= replicas <= high or size != role.workers:
        planned = f"{low}-{high} (HPA)" if role.autoscale else str(role.replicas)
        return Check(label, FAIL, f"spec.replicas {replicas}, size {size}", f"{planned} groups of {role.workers} (planned)",
                     hint="someone scaled it or the values differ: llmdctl apply restores the plan")
    ready = int((lws.get("status") or {}).get("readyReplicas") or 0)
    return Check(label, PASS if ready >= replicas else PENDING, f"{ready}/{replicas} groups ready", expected)


def _ranks_check(role, obs: Observed) -> Check:
    """Every group holds all the ranks of one DP instance: its pods times their local ranks."""
    label = f"{role.role} DP ranks"
    expected = f"DP{role.data}{' EP' if role.expert else ''} in each group: {role.workers} pods x {role.data_local} ranks"
    if "pods" in obs.errors:
        return _unreadable(label, obs.errors["pods"])
    by_group: dict[str, list[dict]] = {}
    for pod in obs.pods:
        if _role(pod) == role.role:
            group = ((pod.get("metadata") or {}).get("labels") or {}).get(LWS_GROUP)
            by_group.setdefault(f"group {group}" if group is not None else "no group label", []).append(pod)
    if not by_group:
        return Check(label, PENDING, "no pods yet", expected)
    counts, problems = [], []
    for group, pods in sorted(by_group.items()):
        ranks = sum(_local_ranks(p) for p in pods)
        counts.append(f"{group}: {len(pods)} pods, {ranks} ranks")
        if ranks > role.data or (len(pods) == role.workers and ranks != role.data):
            problems.append(f"{group} has {ranks} ranks")
    observed = "; ".join(counts)
    if problems:
        return Check(label, FAIL, observed, expected, hint="a pod's DP_SIZE_LOCAL differs from the plan: llmdctl diff shows how, llmdctl apply converges")
    complete = sum(len(p) == role.workers for p in by_group.values())
    return Check(label, PASS if complete >= role.replicas else PENDING, observed, expected)


def _local_ranks(pod: dict) -> int:
    env = {e.get("name"): e.get("value") for e in _container(pod).get("env") or [] if isinstance(e, dict)}
    try:
        return int(env.get("DP_SIZE_LOCAL") or 1)
    except ValueError:
        return 0


def _container(pod_or_template: dict, name: str = "vllm") -> dict:
    containers = (pod_or_template.get("spec") or {}).get("containers") or []
    return next((c for c in containers if c.get("name") == name), containers[0] if containers else {})


def _pods_check(plan: Plan, role, obs: Observed) -> Check:
    label = f"{role.role} pods"
    if "pods" in obs.errors:
        return _unreadable(label, obs.errors["pods"])
    pods = [p for p in obs.pods if _role(p) == role.role]
    want = role.replica_range[0] * role.workers  # an HPA may have scaled the role down to its minimum
    expected_parts = [f"{want}{'+' if role.autoscale else ''} pod{'s' if want != 1 else ''} with the pool's labels", f"image {role.image}"]
    if plan.claims:
        expected_parts.append(f"{role.gpus_per_pod} DRA claims ({' + '.join(d['deviceClass'] for d in plan.claims['devices'])} each)")
    elif role.accelerator_resource:
        expected_parts.append(f"{role.accelerator_resource}: {role.gpus_per_pod}")
    if role.rdma:
        expected_parts.append(f"{role.rdma['resource']}: {role.rdma.get('count', 1)}")
    expected = ", ".join(expected_parts)
    if not pods:
        dep = obs.deployments.get(role.deployment)
        if dep is not None:
            template = ((dep.get("spec") or {}).get("template") or {}).get("metadata", {}).get("labels") or {}
            missing = {k: v for k, v in plan.pool_selector.items() if template.get(k) != v}
            if missing:
                return Check(label, FAIL, f"the pod template lacks the pool's labels {selector_text(missing)}", expected,
                             hint="the InferencePool will never route to these pods: re-render and apply so labels and selector agree")
        return Check(label, PENDING, "no pods yet", expected)
    problems = []
    for pod in pods:
        c = _container(pod)
        limits = (c.get("resources") or {}).get("limits") or {}
        pname = pod["metadata"]["name"]
        if role.image and c.get("image") != role.image:
            problems.append(f"{pname}: image {c.get('image')}")
        claims = [cl for cl in (pod.get("spec") or {}).get("resourceClaims") or []]
        if plan.claims:
            if len(claims) != role.gpus_per_pod:
                problems.append(f"{pname}: {len(claims)} resource claims (one per GPU)")
        elif role.accelerator_resource and str(limits.get(role.accelerator_resource)) != str(role.gpus_per_pod):
            problems.append(f"{pname}: {role.accelerator_resource} {limits.get(role.accelerator_resource, 'not requested')}")
        if role.rdma and str(limits.get(role.rdma["resource"])) != str(role.rdma.get("count", 1)):
            problems.append(f"{pname}: {role.rdma['resource']} {limits.get(role.rdma['resource'], 'not requested')}")
    if problems:
        return Check(label, FAIL, "; ".join(problems[:4]) + (f" (+{len(problems) - 4} more)" if len(problems) > 4 else ""), expected,
                     hint="the running pods differ from the plan: llmdctl diff shows how, llmdctl apply converges")
    ready = sum(pod_ready(p) for p in pods)
    observed = f"{ready}/{len(pods)} ready, resources and image as planned"
    return Check(label, PASS if ready >= want and (not role.autoscale or ready == len(pods)) else PENDING, observed, expected)


def _pool_check(plan: Plan, obs: Observed) -> Check:
    label = f"InferencePool {plan.names['pool']}"
    if "pool" in obs.errors:
        return _unreadable(label, obs.errors["pool"])
    if obs.pool is None:
        return Check(label, FAIL, "missing", f"{pool_api_version(plan)} InferencePool",
                     hint="the InferencePool CRD version may not be installed (llmdctl doctor checks it)")
    spec = obs.pool.get("spec") or {}
    selector = spec.get("selector") or {}
    match = selector.get("matchLabels", selector) if isinstance(selector, dict) else {}
    expected = "selects >= 1 ready pod of " + " and ".join(plan.roles)
    counts = {}
    for role in plan.roles:
        counts[role] = sum(1 for p in obs.pods if _role(p) == role and pod_ready(p)
                           and all(((p["metadata"].get("labels") or {}).get(k) == v) for k, v in match.items()))
    observed = ", ".join(f"{r} {c} ready" for r, c in counts.items()) + f" (selector {selector_text(match)})"
    if match != plan.pool_selector:
        return Check(label, FAIL, f"selector {selector_text(match)}", f"selector {selector_text(plan.pool_selector)}",
                     hint=f"the pool selects other pods than this stack's: re-apply the {'router' if plan.generation == 'router' else 'gaie'} release")
    if all(counts.values()):
        return Check(label, PASS, observed, expected)
    return Check(label, PENDING, observed, expected)


def _gateway_check(plan: Plan, obs: Observed) -> Check:
    label = f"Gateway {plan.names['gateway']}"
    if "gateway" in obs.errors:
        return _unreadable(label, obs.errors["gateway"])
    if obs.gateway is None:
        return Check(label, FAIL, "missing", "Programmed with an address", hint="the infra release should create it; llmdctl status")
    programmed = _cond(obs.gateway, "Programmed")
    addresses = [a.get("value") for a in (obs.gateway.get("status") or {}).get("addresses") or [] if a.get("value")]
    if programmed and programmed.get("status") == "True" and addresses:
        return Check(label, PASS, f"Programmed, address {addresses[0]}", "Programmed with an address")
    if programmed and programmed.get("status") == "False":
        return Check(label, FAIL, f"Programmed=False: {programmed.get('reason')}: {programmed.get('message', '')}".rstrip(": "),
                     "Programmed with an address", hint=f"is the {plan.gateway_facts['provider']} gateway controller installed and the GatewayClass {plan.gateway_facts.get('className')} accepted? llmdctl doctor")
    controller_hint = (f"no gateway controller has answered: is the {plan.gateway_facts['provider']} controller running, "
                       f"and does it own GatewayClass {plan.gateway_facts.get('className')}? llmdctl doctor")
    if programmed and programmed.get("status") == "Unknown":
        # the API server's default ("Waiting for controller"): nothing has looked at this Gateway
        return Check(label, PENDING, f"Programmed=Unknown: {programmed.get('reason', '')}: {programmed.get('message', '')}".rstrip(": "),
                     "Programmed with an address", hint=controller_hint)
    if programmed is None:
        return Check(label, PENDING, "Programmed not reported yet", "Programmed with an address", hint=controller_hint)
    return Check(label, PENDING, "Programmed, no address yet", "Programmed with an address",
                 hint=f"the {plan.gateway_facts['provider']} controller accepted the Gateway but has not assigned an address (LoadBalancer pending?)")


def _route_check(plan: Plan, obs: Observed) -> Check:
    label = f"HTTPRoute {plan.names['route']}"
    if "route" in obs.errors:
        return _unreadable(label, obs.errors["route"])
    expected = f"Accepted and ResolvedRefs by {plan.names['gateway']}"
    if obs.route is None:
        return Check(label, FAIL, "missing", expected, hint=f"kubectl apply -n {plan.namespace} -f httproute.yaml from the bundle, or llmdctl apply")
    if plan.model_match:
        header, model = plan.model_match
        models = route_models(obs.route, header)
        if models is None or model not in models:
            return Check(label, FAIL, f"matches {header}: {', '.join(models)}" if models else f"matches no {header} header", f"{header}: {model}",
                         hint="on a shared Gateway the route must match this stack's model: re-apply (llmdctl apply)")
    parents = (obs.route.get("status") or {}).get("parents") or []
    ours = [p for p in parents if (p.get("parentRef") or {}).get("name") == plan.names["gateway"]
            and ((p.get("parentRef") or {}).get("namespace") or plan.namespace) == plan.gateway_namespace]
    if not ours:
        others = sorted({(p.get("parentRef") or {}).get("name", "?") for p in parents})
        refs = [r.get("name") for r in (obs.route.get("spec") or {}).get("parentRefs") or []]
        if refs and plan.names["gateway"] not in refs:
            return Check(label, FAIL, f"points at Gateway {', '.join(refs)}", expected, hint="the route names another stack's Gateway: re-apply this stack's httproute.yaml")
        return Check(label, PENDING if not others else FAIL, "no status from the Gateway yet" if not others else f"status only from {', '.join(others)}", expected)
    conds = {c.get("type"): c for c in ours[0].get("conditions") or []}
    bad = [c for t, c in conds.items() if t in ("Accepted", "ResolvedRefs") and c.get("status") == "False"]
    if bad:
        return Check(label, FAIL, "; ".join(f"{c['type']}=False ({c.get('reason')}: {c.get('message', '')})" for c in bad), expected,
                     hint="ResolvedRefs=False usually means the InferencePool backend is missing or of an API version the gateway does not support")
    if all(conds.get(t, {}).get("status") == "True" for t in ("Accepted", "ResolvedRefs")):
        return Check(label, PASS, "Accepted, ResolvedRefs", expected)
    return Check(label, PENDING, ", ".join(f"{t}={conds[t].get('status')}" for t in ("Accepted", "ResolvedRefs") if t in conds) or "no conditions yet", expected)


# --- diagnostics ---------------------------------------------------------------------------


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


# --- verify --wait ---------------------------------------------------------------------------


def progress_line(plan: Plan, checks: list[Check], obs: Observed) -> str:
    parts = []
    for role in plan.roles.values():
        pods = [p for p in obs.pods if _role(p) == role.role]
        parts.append(f"{role.role} {sum(pod_ready(p) for p in pods)}/{role.pods} ready")
    waiting = [c.name for c in checks if c.status != PASS and not c.name.endswith((" pods", " ranks")) and "Deployment" not in c.name and "LeaderWorkerSet" not in c.name]
    return ", ".join(parts) + (f"; waiting for: {', '.join(waiting)}" if waiting else "")


class Watcher:
    """Background watches on what verify reads; ``changed`` is set on every event."""

    def __init__(self, kube: Kube, plan: Plan):
        self.kube, self.plan = kube, plan
        self.changed = threading.Event()
        self.stop = threading.Event()
        n, ns = plan.names, plan.namespace
        releases = ",".join(r.name for r in plan.releases)
        self.targets = [
            (PODS, ns, selector_text(plan.pool_selector), None),
            (DEPLOYMENTS, ns, None, None),
            (SECRETS, ns, f"owner=helm,name in ({releases})", None),
        ]
        if not plan.standalone:
            self.targets += [(GATEWAYS, plan.gateway_namespace, None, f"metadata.name={n['gateway']}"), (HTTPROUTES, ns, None, f"metadata.name={n['route']}")]
        self.threads = [threading.Thread(target=self._run, args=t, daemon=True) for t in self.targets]

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()

    def _run(self, res, ns, labels, fields) -> None:
        while not self.stop.is_set():
            try:
                for _type, _obj in self.kube.watch(res, ns, labels=labels, fields=fields, timeout_seconds=30, stop=self.stop):
                    self.changed.set()
                    if self.stop.is_set():
                        return
            except Exception:  # a watch that fails (403, dropped connection) falls back to the periodic re-check
                if self.stop.wait(2.0):
                    return


def verify(kube: Kube, plan: Plan, *, wait: bool, timeout: float, say, recheck: float = 5.0) -> tuple[list[Check], Observed, float]:
    """Evaluate once, or (wait) re-evaluate on every watch event until all pass or time runs out.

    Returns the checks, the last observations and the seconds spent waiting."""
    started = time.monotonic()
    obs = observe_stack(kube, plan)
    checks = evaluate_stack(plan, obs)
    if not wait or all(c.status == PASS for c in checks):
        return checks, obs, time.monotonic() - started
    last_line, told = "", set()
    with Watcher(kube, plan) as watcher:
        while True:
            line = progress_line(plan, checks, obs)
            if line != last_line:
                say(f"[{time.monotonic() - started:5.0f}s] {line}")
                last_line = line
            for diag in _new_trouble(kube, plan, obs, told):
                say(f"  {diag.pod}: {diag.summary}" + "".join(f"\n    hint: {h}" for h in diag.hints))
            remaining = timeout - (time.monotonic() - started)
            if remaining <= 0:
                return checks, obs, time.monotonic() - started
            watcher.changed.wait(min(recheck, remaining))
            watcher.changed.clear()
            try:
                obs = observe_stack(kube, plan)
            except KubeError as exc:  # a blip during a long wait is retried until the timeout
                say(f"API server not answering ({exc.message}); retrying")
                continue
            checks = evaluate_stack(plan, obs)
            if all(c.status == PASS for c in checks):
                return checks, obs, time.monotonic() - started


def _new_trouble(kube: Kube, plan: Plan, obs: Observed, told: set) -> list[Diagnosis]:
    """Diagnose pods with a (new) waiting reason once, so --wait explains a stall while it waits."""
    fresh = []
    for pod in obs.pods:
        summary, reasons, _ = pod_summary(pod)
        key = (pod["metadata"]["name"], tuple(r for _, r, _ in reasons))
        if reasons and key not in told:
            told.add(key)
            fresh.append(pod)
    if not fresh:
        return []
    sub = Observed(obs.releases, obs.deployments, fresh, obs.pool, obs.gateway, obs.route)
    return collect_diagnostics(kube, plan, sub)


# --- doctor ----------------------------------------------------------------------------------


def _qty(value) -> int:
    try:
        return int(str(value))
    except (TypeError, ValueError):
        return 0


def in_use(pods: list[dict], resources: tuple[str, ...], skip_labels: dict) -> dict[str, dict[str, int]]:
    """Node -> resource -> amount requested by the pods bound there (not finished, not this stack's
    own: an update frees them first)."""
    used: dict[str, dict[str, int]] = {}
    for pod in pods:
        spec, labels = pod.get("spec") or {}, (pod.get("metadata") or {}).get("labels") or {}
        node = spec.get("nodeName")
        if not node or (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
            continue
        if skip_labels and all(labels.get(k) == v for k, v in skip_labels.items()):
            continue
        for c in spec.get("containers") or []:
            res = c.get("resources") or {}
            for name in resources:
                amount = _qty((res.get("requests") or {}).get(name, (res.get("limits") or {}).get(name)))
                if amount:
                    used.setdefault(node, {}).setdefault(name, 0)
                    used[node][name] += amount
    return used


def _unplaced(pods: list[tuple[str, int, int]], free: dict[str, list[int]], rdma: bool) -> list[str]:
    """First fit, biggest pods first, of (role, GPUs, NICs) onto the nodes' free [GPUs, NICs]
    (left as they were): the roles of the pods that find no node."""
    left = {k: list(v) for k, v in free.items()}
    unplaced = []
    for role, gpus, nics in sorted(pods, key=lambda p: -p[1]):
        node = next((k for k, v in left.items() if v[0] >= gpus and (not rdma or v[1] >= nics)), None)
        if node is None:
            unplaced.append(role)
        else:
            left[node][0] -= gpus
            left[node][1] -= nics
    return unplaced


def evaluate_capacity(plan: Plan, nodes: list[dict], running: list[dict] | None = None) -> list[Check]:
    """Do the planned pods fit on the nodes' free accelerators (and RDMA), one pod per node slot?

    Free is allocatable minus what pods already bound there request (``running``; this stack's own
    pods excluded): beside a running stack a second one must not "fit" and then stay Pending."""
    checks = []
    pods = []
    if plan.claims:
        # DRA devices are published in ResourceSlices, not in node allocatable: nothing to count here
        classes = " + ".join(d["deviceClass"] for d in plan.claims["devices"])
        need = sum(r.gpus_per_pod * r.pods for r in plan.roles.values())
        return [Check("accelerators (DRA)", WARN, f"{need} claims of {classes} (not counted: DRA devices are in ResourceSlices)",
                      "a DRA driver publishing those device classes",
                      hint=f"kubectl get deviceclasses; kubectl get resourceslices  (the {plan.hardware} profile claims one {classes} per GPU)")]
    def slots(role, count: int) -> list[tuple[str, int, int]]:  # (role, GPUs, NICs) per pod
        return [(role.role, role.gpus_per_pod, role.rdma.get("count", 1) if role.rdma else 0)] * count

    for role in plan.roles.values():
        pods += slots(role, role.pods)
    accel = next((r.accelerator_resource for r in plan.roles.values() if r.accelerator_resource), None)
    if not accel:
        return [Check("accelerators", PASS, "no accelerator requested")]
    rdma = next((r.rdma["resource"] for r in plan.roles.values() if r.rdma), None)
    usable = [n for n in nodes if not (n.get("spec") or {}).get("unschedulable")]
    used = in_use(running or [], (accel,) + ((rdma,) if rdma else ()), plan.pool_selector)
    free = {n["metadata"]["name"]: [_qty((n.get("status") or {}).get("allocatable", {}).get(accel)) - used.get(n["metadata"]["name"], {}).get(accel, 0),
                                    _qty((n.get("status") or {}).get("allocatable", {}).get(rdma)) - used.get(n["metadata"]["name"], {}).get(rdma, 0) if rdma else 0]
            for n in usable}
    total = sum(_qty((n.get("status") or {}).get("allocatable", {}).get(accel)) for n in usable)
    busy = sum(u.get(accel, 0) for u in used.values())
    need = sum(p[1] for p in pods)
    layout = " + ".join(f"{r.pods} {r.role} x {r.gpus_per_pod}" for r in plan.roles.values())
    unplaced = _unplaced(pods, free, bool(rdma))
    observed = (f"{total} allocatable {accel} on {sum(1 for n in usable if _qty((n.get('status') or {}).get('allocatable', {}).get(accel)))} "
                f"of {len(usable)} schedulable nodes" + (f", {busy} in use by other pods" if busy else ""))
    if not unplaced:
        checks.append(Check(f"capacity {accel}", PASS, observed, f"{layout} = {need} {accel}"))
    else:
        fix = (f"no node offers {accel}: pick the profile for your GPUs (llmdctl profiles; e.g. -e nvidia-ib for nvidia.com/gpu, -e amd for amd.com/gpu) "
               "or install the device plugin") if total == 0 else \
              f"shrink the layout (--prefill/--decode NxTPm) or free {accel}: {len(unplaced)} pod(s) do not fit ({', '.join(sorted(set(unplaced)))})"
        checks.append(Check(f"capacity {accel}", FAIL, observed, f"{layout} = {need} {accel}", hint=fix))
    peak = {r.role: r.autoscale[1] * r.workers for r in plan.roles.values() if r.autoscale and r.autoscale[1] > r.replicas}
    if peak and not unplaced:
        # the HPA may grow a role to its maximum: pods past what the nodes hold would stay Pending then
        at_max = [slot for r in plan.roles.values() for slot in slots(r, peak.get(r.role, r.pods))]
        short = _unplaced(at_max, free, bool(rdma))
        wanted = " + ".join(f"{peak.get(r.role, r.pods)} {r.role} x {r.gpus_per_pod}" for r in plan.roles.values())
        label, expected = f"capacity {accel} at the HPA maximum", f"{wanted} = {sum(p[1] for p in at_max)} {accel}"
        checks.append(Check(label, PASS, observed, expected) if not short else Check(
            label, WARN, observed + f"; {len(short)} pod(s) would not fit", expected,
            hint=f"the HPA can scale {', '.join(sorted(peak))} past what the nodes hold ({', '.join(sorted(set(short)))} would stay Pending): "
                 "lower the maximum of --autoscale ROLE=MIN-MAX, or add GPU nodes"))
    if rdma:
        with_rdma = [n["metadata"]["name"] for n in usable if _qty((n.get("status") or {}).get("allocatable", {}).get(rdma))]
        if with_rdma:
            checks.append(Check(f"RDMA {rdma}", PASS, f"advertised by {len(with_rdma)} node(s)", f"{rdma} on GPU nodes"))
        else:
            checks.append(Check(f"RDMA {rdma}", FAIL, "no node advertises it", f"{rdma} on GPU nodes",
                                hint="pass --rdma-resource NAME[=N] with what your RDMA device plugin advertises, -e host-network, or --rdma-resource none (TCP)"))
    ts = plan.hardware_facts.get("timeSlicing")
    if ts:
        want = ts.get("replicas", 2)
        sliced = [n for n in usable if (n["metadata"].get("labels") or {}).get("nvidia.com/gpu.replicas")]
        best = max((_qty((n["metadata"].get("labels") or {}).get("nvidia.com/gpu.replicas")) for n in sliced), default=0)
        if best >= want:
            checks.append(Check("GPU time-slicing", PASS, f"nvidia.com/gpu.replicas={best}", f">= {want} replicas per GPU"))
        else:
            checks.append(Check("GPU time-slicing", FAIL if not sliced else WARN, f"nvidia.com/gpu.replicas={best or 'not set'}", f">= {want} replicas per GPU",
                                hint=f"configure the NVIDIA device plugin with sharing.timeSlicing.resources [{{name: nvidia.com/gpu, replicas: {want}}}]"))
    return checks


def provider_crds(plan: Plan) -> list[str]:
    """CRDs of the kinds the rendered charts will create, beyond Gateway API and InferencePool:
    read from the plan's values the way the charts' templates decide."""
    if plan.generation == "router":
        return _router_crds(plan)
    crds = []
    if plan.gateway_facts.get("destinationRule"):
        crds.append("destinationrules.networking.istio.io")
    gaie = plan.release("gaie").values
    provider = str(((gaie.get("provider") or {}).get("name")) or "none").lower()
    prometheus = (((gaie.get("inferenceExtension") or {}).get("monitoring") or {}).get("prometheus") or {})
    if prometheus.get("enabled") and provider != "gke":  # inferencepool: the EPP ServiceMonitor
        crds.append(MONITORING_CRDS[0])
    if any((((plan.ms_values.get(role) or {}).get("monitoring") or {}).get("podmonitor") or {}).get("enabled") for role in plan.roles):
        crds.append(MONITORING_CRDS[1])  # modelservice: a PodMonitor per role
    if provider == "gke":  # inferencepool templates/gke.yaml
        crds += ["healthcheckpolicies.networking.gke.io", "gcpbackendpolicies.networking.gke.io"]
        if prometheus.get("enabled") and (prometheus.get("auth") or {}).get("enabled", True):
            crds.append("podmonitorings.monitoring.googleapis.com")  # Google Managed Prometheus scrapes the EPP
    infra_gateway = plan.release("infra").values.get("gateway") or {}
    if plan.release_info.dialect["infraProviderKey"] and infra_gateway.get("provider") in ("kgateway", "agentgateway"):
        crds.append("agentgatewayparameters.agentgateway.dev")  # llm-d-infra v1.4.0 renders AgentgatewayParameters
    elif not plan.release_info.dialect["infraProviderKey"] and infra_gateway.get("gatewayClassName") == "kgateway":
        crds.append("gatewayparameters.gateway.kgateway.dev")  # llm-d-infra v1.3.x renders GatewayParameters
    return crds


MONITORING_CRDS = ("servicemonitors.monitoring.coreos.com", "podmonitors.monitoring.coreos.com")


def _router_crds(plan: Plan) -> list[str]:
    """The router chart's extra kinds (routerlib templates) and the generated charts' PodMonitors."""
    crds = []
    values = plan.release("router").values
    provider = str((values.get("provider") or {}).get("name") or "none").lower()
    if not plan.standalone and provider == "istio":
        crds.append("destinationrules.networking.istio.io")
    if plan.epp_monitoring.get("enabled"):
        crds.append(MONITORING_CRDS[0])
    if any(o.get("kind") == "PodMonitor" for o in plan.manifests.get("ms", ())):
        crds.append(MONITORING_CRDS[1])
    if not plan.standalone and provider == "gke":
        crds += ["healthcheckpolicies.networking.gke.io", "gcpbackendpolicies.networking.gke.io"]
    kinds = {o.get("kind") for objs in plan.manifests.values() for o in objs}
    crds += [crd for kind, crd in GENERATED_KIND_CRDS.items() if kind in kinds]
    return crds


def doctor(kube: Kube, plan: Plan, tool_checks: list) -> list[Check]:
    checks = [Check(f"tool {t.tool}", t.status, t.message, f">= v{'.'.join(map(str, t.minimum))}", hint=t.fix) for t in tool_checks]
    try:
        version = kube.version()
    except KubeError as exc:
        checks.append(Check("cluster", FAIL, exc.message, "reachable", hint=exc.hint or "check --kube-context / --kubeconfig"))
        return checks

    v = version_tuple(version.get("gitVersion", ""))
    ok = v is not None and (v[0], v[1]) >= NATIVE_SIDECAR_MIN
    checks.append(Check("cluster version", PASS if ok else WARN, version.get("gitVersion", "unknown"), f">= {NATIVE_SIDECAR_MIN[0]}.{NATIVE_SIDECAR_MIN[1]}",
                        hint="" if ok else "V-31: the routing sidecar is a native sidecar; decode pods may stay in Init:0/1"))
    if plan.claims:
        dra = v is not None and (v[0], v[1]) >= DRA_V1_MIN
        checks.append(Check("DRA (resource.k8s.io/v1)", PASS if dra else FAIL, version.get("gitVersion", "unknown"), f">= {DRA_V1_MIN[0]}.{DRA_V1_MIN[1]}",
                            hint="" if dra else f"{plan.hardware} claims GPUs and NICs through resource.k8s.io/v1 ResourceClaimTemplates, GA in Kubernetes 1.34"))

    def guarded(name: str, fn):
        try:
            checks.extend(fn())
        except KubeError as exc:
            checks.append(Check(name, FAIL if exc.status != 403 else WARN, exc.message,
                                hint="the current user may not read this (kubectl auth can-i)" if exc.status == 403 else ""))

    def crd_checks():
        present = {c["metadata"]["name"]: c for c in kube.list(CRDS)}
        pool_group, pool_version = pool_api_version(plan).split("/")
        gateway_api = [] if plan.standalone else [("gateways.gateway.networking.k8s.io", "v1"), ("httproutes.gateway.networking.k8s.io", "v1")]
        wanted = gateway_api + [(f"inferencepools.{pool_group}", pool_version)] + [(n, None) for n in provider_crds(plan)]
        out = []
        for name, version_needed in wanted:
            crd = present.get(name)
            served = [v["name"] for v in (crd or {}).get("spec", {}).get("versions", []) if v.get("served")]
            if crd is None:
                out.append(Check(f"CRD {name}", FAIL, "not installed", version_needed or "installed", hint=_crd_fix(name, plan)))
            elif version_needed and version_needed not in served:
                out.append(Check(f"CRD {name}", FAIL, f"serves {', '.join(served)}", version_needed, hint=_crd_fix(name, plan)))
            else:
                out.append(_bundle_version_check(name, crd, served, version_needed, plan))
        return out

    def class_checks():
        name = plan.gateway_facts.get("className")
        gc = kube.get(GATEWAYCLASSES, name)
        if gc is None:
            return [Check(f"GatewayClass {name}", FAIL, "missing", "Accepted", hint=f"install the {plan.gateway_facts['provider']} gateway control plane (see the bundle README prerequisites)")]
        acc = _cond(gc, "Accepted")
        ok = acc is not None and acc.get("status") == "True"
        return [Check(f"GatewayClass {name}", PASS if ok else WARN, "Accepted" if ok else f"Accepted={acc.get('status') if acc else 'not reported'}", "Accepted")]

    def namespace_checks():
        ns = kube.get(NAMESPACES, plan.namespace)
        if ns is None:
            return [Check(f"namespace {plan.namespace}", WARN, "missing", "exists", hint=f"llmdctl apply --create-namespace, or kubectl create namespace {plan.namespace}"),
                    Check(f"Secret {plan.hf_secret}", FAIL, "missing (no namespace)", "key HF_TOKEN", hint=hf_secret_command(plan.namespace, plan.hf_secret))]
        has_key = hf_secret_ready(kube, plan)
        out = [Check(f"namespace {plan.namespace}", PASS, "exists", "exists")]
        if has_key:
            out.append(Check(f"Secret {plan.hf_secret}", PASS, "has key HF_TOKEN", "key HF_TOKEN"))
        else:
            out.append(Check(f"Secret {plan.hf_secret}", FAIL, "missing or without key HF_TOKEN", "key HF_TOKEN", hint=hf_secret_command(plan.namespace, plan.hf_secret)))
        return out

    guarded("CRDs", crd_checks)
    if not plan.standalone:
        guarded("GatewayClass", class_checks)
    # one list across namespaces: what other pods already hold on each node
    guarded("nodes", lambda: evaluate_capacity(plan, kube.list(NODES), kube.list(PODS, fields="status.phase!=Succeeded,status.phase!=Failed")))
    guarded("namespace", namespace_checks)
    if any(r.autoscale for r in plan.roles.values()):
        guarded("metrics APIs", lambda: metrics_api_checks(kube, plan))
    if plan.model_match:
        guarded("shared Gateway", lambda: shared_gateway_checks(kube, plan))
    return checks


def shared_gateway_checks(kube: Kube, plan: Plan) -> list[Check]:
    """A stack that routes by model name on a shared Gateway: the attached Gateway exists, is of the
    class the stack was rendered for and admits its route; no other route on it claims the model;
    body-based routing runs beside it (without it the model header is never set and nothing matches)."""
    n, gw_ns = plan.names, plan.gateway_namespace
    header, model = plan.model_match
    facts = plan.release_info.dialect["modelRoute"]
    out: list[Check] = []
    if plan.attached:
        label = f"Gateway {gw_ns}/{n['gateway']}"
        gw = kube.get(GATEWAYS, n["gateway"], gw_ns)
        if gw is None:
            return [Check(label, FAIL, "missing", "exists (this stack attaches to it)",
                          hint="apply the stack that owns it first (its Gateway is gateway-<postfix>), or name an existing one: kubectl get gateways -A")]
        cls = (gw.get("spec") or {}).get("gatewayClassName")
        want = plan.gateway_facts.get("className")
        admits = [lst.get("name", "?") for lst in (gw.get("spec") or {}).get("listeners") or [] if _admits(lst, gw_ns, plan.namespace)]
        if cls != want:
            out.append(Check(label, FAIL, f"class {cls}", f"class {want}",
                             hint=f"this stack is rendered for -e {plan.gateway}; render it for the Gateway's implementation instead"))
        elif not admits:
            out.append(Check(label, FAIL, f"no listener admits routes from namespace {plan.namespace}", f"class {want}, a listener admitting {plan.namespace}",
                             hint="the Gateway's listeners allow routes from their own namespace only (allowedRoutes.namespaces.from: Same): "
                                  "set from: All (or a Selector matching this namespace) on the Gateway, or deploy this stack in its namespace"))
        else:
            out.append(Check(label, PASS, f"class {cls}, listener {', '.join(admits)} admits {plan.namespace}", f"class {want}, a listener admitting {plan.namespace}"))
    try:
        routes = kube.list(HTTPROUTES)
    except KubeError as exc:
        if exc.status != 403:
            raise
        routes = kube.list(HTTPROUTES, plan.namespace)  # may not list cluster-wide: at least this namespace's
    others, catch_all, taken = [], [], []
    for r in routes:
        meta = r.get("metadata") or {}
        ref = f"{meta.get('namespace')}/{meta.get('name')}"
        if (meta.get("namespace"), meta.get("name")) == (plan.namespace, n["route"]) or (gw_ns, n["gateway"]) not in route_parents(r):
            continue
        models = route_models(r, header)
        if models is None:
            catch_all.append(ref)
        elif model in models:
            taken.append(ref)
        else:
            others.append(f"{', '.join(models)} ({ref})")
    label = f"model {model} on Gateway {n['gateway']}"
    if taken:
        out.append(Check(label, FAIL, f"already routed by HTTPRoute {', '.join(taken)}", "no other route matches it",
                         hint="two pools for one model name split its requests at random: destroy the other stack, or serve this one under another --model name"))
    else:
        seen = others + [f"any other model ({c})" for c in catch_all]
        out.append(Check(label, PASS, "free" + (f"; the Gateway also serves {'; '.join(seen)}" if seen else ""), "no other route matches it"))
    label = f"body-based routing on Gateway {n['gateway']}"
    image = facts["bbrImage"]
    found = [d["metadata"]["name"] for d in kube.list(DEPLOYMENTS, gw_ns)
             if any(str(c.get("image", "")).split("@")[0].rsplit(":", 1)[0] == image
                    for c in ((d.get("spec") or {}).get("template") or {}).get("spec", {}).get("containers") or [])]
    if found:
        out.append(Check(label, PASS, f"Deployment {', '.join(sorted(found))}", f"a Deployment of {image} in {gw_ns}"))
    else:
        out.append(Check(label, FAIL, f"no Deployment of {image} in {gw_ns}", f"a Deployment of {image} in {gw_ns}",
                         hint=f"without it no request carries {header} and no model route matches: {bbr_install_command(plan)}"))
    return out


def _admits(listener: dict, gateway_ns: str, route_ns: str) -> bool:
    """Whether a Gateway listener accepts HTTPRoutes from ``route_ns`` (a Selector is taken as yes:
    only the controller evaluates it, and verify reports the route's Accepted condition)."""
    allowed = (listener.get("allowedRoutes") or {}).get("namespaces") or {}
    frm = allowed.get("from", "Same")
    kinds = (listener.get("allowedRoutes") or {}).get("kinds")
    if kinds and not any(k.get("kind") == "HTTPRoute" for k in kinds):
        return False
    return frm in ("All", "Selector") or (frm == "Same" and gateway_ns == route_ns)


def metrics_api_checks(kube: Kube, plan: Plan) -> list[Check]:
    """Each metrics API the stack's HPAs read: registered, available, served by an adapter that
    answers hand-written HPAs, and listing every metric name they ask for."""
    out = []
    for api, names in served_metrics(plan).items():
        group, version = api.split("/")
        label = f"APIService {version}.{group}"
        expected = "Available, serving " + ", ".join(names)
        svc = kube.get(APISERVICES, f"{version}.{group}")
        if svc is None:
            out.append(Check(label, FAIL, "not registered", expected,
                             hint="install a metrics adapter that serves it from Prometheus (the Prometheus Adapter with the rules in the bundle README's "
                                  "Autoscaling section); without it the HPAs never scale"))
            continue
        backend = ((svc.get("spec") or {}).get("service") or {})
        owner = f"{backend.get('namespace', '?')}/{backend.get('name', '?')}"
        available = _cond(svc, "Available")
        if available is None or available.get("status") != "True":
            why = f"{available.get('reason', '')}: {available.get('message', '')}" if available else "no Available condition"
            out.append(Check(label, FAIL, f"served by {owner}, not available ({why.strip()[:200]})", expected,
                             hint=f"the adapter behind it is down or unreachable: kubectl get pods -n {backend.get('namespace', '<its namespace>')}"))
            continue
        if group.startswith("external.") and "keda" in str(backend.get("name", "")):
            out.append(Check(label, FAIL, f"served by {owner} (KEDA)", expected,
                             hint="KEDA answers external metrics only for its own ScaledObjects, so these HPAs would read nothing; "
                                  "KEDA and the Prometheus Adapter cannot both serve this API (drop --autoscale and write a ScaledObject, "
                                  "or serve the API with the Prometheus Adapter)"))
            continue
        try:
            listed = {str(r.get("name", "")).rsplit("/", 1)[-1] for r in kube.discovery(api).get("resources") or []}
        except KubeError as exc:
            out.append(Check(label, FAIL, f"served by {owner}, discovery failed: {exc.message}", expected))
            continue
        missing = [n for n in names if n not in listed]
        if missing:
            out.append(Check(label, FAIL, f"served by {owner}, without {', '.join(missing)}", expected,
                             hint="add the Prometheus Adapter rules from the bundle README's Autoscaling section (and check that Prometheus scrapes "
                                  + ("the EPP" if group.startswith("external.") else "the vLLM pods") + ")"))
        else:
            out.append(Check(label, PASS, f"served by {owner}, with {', '.join(names)}", expected))
    return out


def _bundle_version_check(name: str, crd: dict, served: list[str], version_needed: str | None, plan: Plan) -> Check:
    """The InferencePool CRD serves v1 from GAIE v1.0 on; its bundle-version annotation says which
    release's schema the API server validates with, which the pinned charts were written against."""
    label, expected = f"CRD {name}", version_needed or "installed"
    want = plan.release_info.prerequisites.get("inferenceExtensionCrds")
    have = ((crd.get("metadata") or {}).get("annotations") or {}).get("inference.networking.k8s.io/bundle-version")
    if name.startswith("inferencepools.inference.networking.k8s.io") and want and have:
        older = version_tuple(have) is not None and version_tuple(want) is not None and version_tuple(have) < version_tuple(want)
        if older:
            return Check(label, WARN, f"serves {', '.join(served)}, bundle {have}", f"bundle >= {want} (llm-d {plan.llmd_version})", hint=_crd_fix(name, plan))
        return Check(label, PASS, f"serves {', '.join(served)}, bundle {have}", f"{expected}, bundle >= {want}")
    return Check(label, PASS, f"serves {', '.join(served)}", expected)


def _crd_fix(name: str, plan: Plan) -> str:
    pre = plan.release_info.prerequisites
    if name.endswith("gateway.networking.k8s.io"):
        return f"install the Gateway API CRDs {pre.get('gatewayApiCrds', '')}: kubectl apply -f https://github.com/kubernetes-sigs/gateway-api/releases/download/{pre.get('gatewayApiCrds', 'v1.5.1')}/standard-install.yaml"
    if name.startswith("inferencepools."):
        v = pre.get("inferenceExtensionCrds", "v1.4.0")
        asset = pre.get("inferenceExtensionManifest", "manifests.yaml")
        return f"install the Inference Extension CRDs {v}: kubectl apply -f https://github.com/kubernetes-sigs/gateway-api-inference-extension/releases/download/{v}/{asset}"
    if name in MONITORING_CRDS:
        return ("install the Prometheus operator CRDs (kube-prometheus-stack or prometheus-operator-crds), "
                "or render without monitoring objects: -e no-monitoring")
    if name == GENERATED_KIND_CRDS["LeaderWorkerSet"]:
        return ("instances over several nodes are LeaderWorkerSets: install the LeaderWorkerSet controller "
                "(https://lws.sigs.k8s.io/docs/installation/), or give the roles single-node layouts")
    if name == GENERATED_KIND_CRDS["ComputeDomain"]:
        return ("the pods join a ComputeDomain (multi-node NVLink): install NVIDIA's DRA driver for GPUs with ComputeDomains "
                "enabled (https://github.com/NVIDIA/k8s-dra-driver-gpu)")
    if name.endswith("networking.gke.io"):
        return "these come with GKE's Gateway controller: enable the Gateway API on the cluster (gcloud container clusters update --gateway-api=standard)"
    return f"install the {plan.gateway_facts['provider']} control plane (its CRDs include {name})"


# --- smoke ---------------------------------------------------------------------------------

PREFILL_COUNTER = "vllm:prompt_tokens_total"


def metric_sum(text: str, name: str) -> float:
    """Sum of every series of one counter in Prometheus text format."""
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and (len(line) == len(name) or line[len(name)] in " {"):
            try:
                total += float(line.rsplit(" ", 1)[-1])
            except ValueError:
                continue
    return total


def prompt_tokens(kube: Kube, plan: Plan, role: str, pods: list[dict]) -> tuple[dict[str, float], list[str]]:
    """Prompt tokens each pod of a role has processed so far (read through the API server's pod proxy)."""
    port = plan.roles[role].vllm_port
    by_pod, errors = {}, []
    for pod in pods:
        name = pod["metadata"]["name"]
        try:
            by_pod[name] = metric_sum(kube.pod_proxy(plan.namespace, name, port, "metrics"), PREFILL_COUNTER)
        except KubeError as exc:
            errors.append(f"{name}: {exc.message}")
    return by_pod, errors


def prefill_tokens(kube: Kube, plan: Plan, pods: list[dict]) -> tuple[float, list[str]]:
    """Prompt tokens the prefill pods have processed so far."""
    by_pod, errors = prompt_tokens(kube, plan, "prefill", pods)
    return sum(by_pod.values()), errors


def series_by_label(text: str, name: str, label: str) -> dict[str, float]:
    """label value -> sum of the counter's series with it, from Prometheus text format."""
    out: dict[str, float] = {}
    pattern = re.compile(re.escape(label) + r'="((?:[^"\\]|\\.)*)"')
    for line in text.splitlines():
        if not line.startswith(name + "{"):
            continue
        labels, _, value = line[len(name):].rpartition("}")
        m = pattern.search(labels)
        if not m:
            continue
        try:
            out[m.group(1)] = out.get(m.group(1), 0.0) + float(value.split()[0])
        except (ValueError, IndexError):
            continue
    return out


def _of_pod(counts: dict[str, float], namespace: str, pod: str) -> float:
    """A pod's share of a per-endpoint EPP series (endpoints are <namespace>/<pod>-rank-<n>)."""
    prefix = f"{namespace}/{pod}-rank-"
    return sum(v for k, v in counts.items() if k.startswith(prefix))


def kv_events_check(plan: Plan, served: dict[str, float], before: str, after: str) -> Check:
    """Did the EPP receive KV events from the pods that just prefilled the smoke prompt? (The GH200
    report's failure: events never arrived, and the precise scorer gave every endpoint 0.)"""
    kv = plan.kv_events or {}
    metric, errors_metric = kv["receivedMetric"], kv["errorsMetric"]
    expected = f"{metric} rises for the pod that prefilled the prompt"
    was, now = series_by_label(before, metric, "pod_identifier"), series_by_label(after, metric, "pod_identifier")
    errors = series_by_label(after, errors_metric, "pod_identifier")
    silent, heard = [], []
    for pod, tokens in sorted(served.items()):
        delta = _of_pod(now, plan.namespace, pod) - _of_pod(was, plan.namespace, pod)
        if delta > 0:
            heard.append(f"{pod}: {delta:.0f} messages")
        else:
            failed = _of_pod(errors, plan.namespace, pod)
            silent.append(f"{pod} prefilled {tokens:.0f} prompt tokens, but the EPP received no KV events from it"
                          + (f" ({failed:.0f} ZMQ errors for it)" if failed else "")
                          + ("" if any(k.startswith(f"{plan.namespace}/{pod}-rank-") for k in now) else " (no subscriber series for it)"))
    if silent:
        port = kv["eventsPort"]
        return Check("KV events reached the EPP", FAIL, "; ".join(silent), expected,
                     hint=f"the EPP dials each pod on port {port}: check the pod's --kv-events-config (endpoint tcp://*:{port}, "
                          "topic kv@$(POD_IP):<pool port>@<served model>), a NetworkPolicy between the EPP and the pods, "
                          f"and the EPP's log (kubectl logs deploy/{plan.names['epp']} | grep -i zmq)")
    return Check("KV events reached the EPP", PASS, "; ".join(heard), expected)


def _http(url: str, body: dict | None = None, timeout: float = 60.0):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json", "Accept": "application/json, text/event-stream"},
                                 method="POST" if data else "GET")
    return urllib.request.urlopen(req, timeout=timeout)  # noqa: S310 - the user's own endpoint


def smoke(kube: Kube, plan: Plan, endpoint: str, *, timeout: float = 120.0, epp_metrics=None, settle: float = 15.0) -> list[Check]:
    """GET /v1/models and one streamed completion through the gateway; for P/D, prove a prefill pod
    took part; with precise prefix-cache routing, that the EPP heard that pod's KV events.

    ``epp_metrics`` reads the EPP's /metrics text (a callable: it needs a port-forward and a token);
    KV events arrive shortly after the blocks are stored, so the EPP is re-read for up to ``settle`` s."""
    base = endpoint.rstrip("/")
    model = plan.model["name"]
    checks: list[Check] = []
    try:
        t0 = time.monotonic()
        with _http(base + "/v1/models", timeout=timeout) as resp:
            ids = [m.get("id") for m in json.loads(resp.read()).get("data", [])]
        ms = (time.monotonic() - t0) * 1000
        ok = model in ids
        checks.append(Check("GET /v1/models", PASS if ok else FAIL, f"{', '.join(map(str, ids)) or 'no models'} ({ms:.0f} ms)", model,
                            hint="" if ok else "the gateway answers but not with this stack's model: is the route on the right Gateway?"))
    except (urllib.error.URLError, OSError, ValueError) as exc:
        checks.append(Check("GET /v1/models", FAIL, f"{base}: {getattr(exc, 'reason', exc)}", model,
                            hint="use --endpoint URL, or --port-forward to reach a ClusterIP gateway"))
        return checks
    prefill_pods: list[dict] = []
    role = "prefill" if plan.mode == "disaggregated" else "decode"  # the pods that compute the prompt's KV cache
    precise = plan.kv_events is not None and epp_metrics is not None
    if plan.mode == "disaggregated" or precise:
        prefill_pods = [p for p in kube.list(PODS, plan.namespace, labels=selector_text({**plan.pool_selector, ROLE_LABEL: role})) if pod_ready(p)]
        tokens_before, errors = prompt_tokens(kube, plan, role, prefill_pods)
    epp_before, epp_error = "", ""
    if precise:
        try:
            epp_before = epp_metrics()
        except LlmdctlError as exc:
            epp_error = exc.message
    # A fresh nonce keeps the prompt out of every prefix cache, and enough words clear the
    # selective-P/D threshold (and fill several KV blocks), so the scheduler has every reason to
    # send it through prefill and vLLM stores blocks it reports.
    threshold = (plan.spec.pd_threshold if plan.spec and plan.spec.pd_threshold else 0) or 0
    blocks = 4 * (plan.kv_events or {}).get("blockSize", 0)
    prompt = f"[llmdctl smoke {secrets.token_hex(8)}] " + " ".join(["Describe prefill and decode disaggregation."] * (max(threshold, blocks) // 5 + 8))
    body = {"model": model, "prompt": prompt, "max_tokens": 8, "stream": True, "temperature": 0}
    try:
        t0 = time.monotonic()
        ttft, chunks = None, 0
        with _http(base + "/v1/completions", body, timeout=timeout) as resp:
            for raw in resp:
                line = raw.decode("utf-8", "replace").strip()
                if not line.startswith("data:") or line == "data: [DONE]":
                    continue
                chunks += 1
                if ttft is None:
                    ttft = time.monotonic() - t0
        latency = time.monotonic() - t0
        if chunks == 0:
            checks.append(Check("completion", FAIL, "the stream carried no tokens", "a streamed completion"))
        else:
            checks.append(Check("completion", PASS, f"{chunks} chunks, time to first token {ttft * 1000:.0f} ms, total {latency * 1000:.0f} ms", "a streamed completion"))
    except (urllib.error.URLError, OSError) as exc:
        detail = exc.read().decode("utf-8", "replace")[:300] if isinstance(exc, urllib.error.HTTPError) else ""
        checks.append(Check("completion", FAIL, f"{getattr(exc, 'reason', exc)} {detail}".strip(), "a streamed completion"))
        return checks
    tokens_after: dict[str, float] = {}
    if plan.mode == "disaggregated" or precise:
        tokens_after, errors2 = prompt_tokens(kube, plan, role, prefill_pods)
        errors += errors2
    if plan.mode == "disaggregated":
        before, after = sum(tokens_before.values()), sum(tokens_after.values())
        if errors or not prefill_pods:
            checks.append(Check("request went through prefill", FAIL, "; ".join(errors) or "no ready prefill pod", f"{PREFILL_COUNTER} rises on a prefill pod",
                                hint="the prefill pods' /metrics could not be read through the API server's pod proxy"))
        elif after > before:
            checks.append(Check("request went through prefill", PASS, f"prefill pods processed {after - before:.0f} prompt tokens", f"{PREFILL_COUNTER} rises on a prefill pod"))
        else:
            checks.append(Check("request went through prefill", FAIL, f"{PREFILL_COUNTER} unchanged on {len(prefill_pods)} prefill pod(s)", f"{PREFILL_COUNTER} rises on a prefill pod",
                                hint="decode served the request alone: check the EPP's P/D profile (llmdctl render --print | grep -A20 pluginsCustomConfig), "
                                     "the routing sidecar's logs on the decode pod, and --pd-threshold"))
    if precise:
        checks.append(_kv_events_after(plan, role, epp_metrics, epp_before, epp_error, tokens_before, tokens_after, settle))
    return checks


def _kv_events_after(plan: Plan, role: str, epp_metrics, before: str, error: str, tokens_before: dict, tokens_after: dict,
                     settle: float) -> Check:
    """Re-read the EPP until it has heard from every pod that prefilled the prompt, or ``settle`` s pass."""
    expected = "the EPP receives KV events from the pod that prefilled the prompt"
    served = {pod: tokens_after[pod] - tokens_before.get(pod, 0.0) for pod in tokens_after if tokens_after[pod] > tokens_before.get(pod, 0.0)}
    if not error and not served:
        return Check("KV events reached the EPP", FAIL, f"no {role} pod's {PREFILL_COUNTER} rose, so there is no pod whose events to look for",
                     expected,
                     hint="the pods' /metrics could not show which pod served the request")
    deadline = time.monotonic() + settle
    while not error:
        try:
            after = epp_metrics()
        except LlmdctlError as exc:
            error = exc.message
            break
        check = kv_events_check(plan, served, before, after)
        if check.status == PASS or time.monotonic() >= deadline:
            return check
        time.sleep(0.5)
    return Check("KV events reached the EPP", FAIL, f"the EPP's /metrics could not be read: {error}", expected,
                 hint=f"verify reads them through a port-forward to service/{plan.names['epp']} with a short-lived token of its "
                      "ServiceAccount (the router chart grants it /metrics when monitoring.prometheus.enabled is true)")
