"""verify's checks: what a healthy stack looks like, read from the plan.

Split in two on purpose: ``observe_stack`` makes a small, fixed number of API calls and returns
plain dicts; ``evaluate_stack`` is a pure function from (plan, observations) to checks, so every
verdict is testable from fixtures. Why a pod or workload is unhealthy is ``diagnosis.py``; doctor's
pre-apply checks are ``doctor.py`` (placement in ``placement.py``, admission in ``admission.py``);
the smoke test is ``smoke.py``. No name is hard-coded here: Deployments, pool,
Gateway, route, labels, images and resources all come from the plan ``render`` builds.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..compose.modelserver import ROLE_LABEL
from ..compose.router import ENVOY_LISTENER as ENVOY_TARGET
from ..compose.shared_gateway import route_models
from ..plan.pods import pod_drain
from ..plan.stack import Plan
from .kube import DEPLOYMENTS, GATEWAYS, HPAS, HTTPROUTES, LEADERWORKERSETS, PODS, SECRETS, SERVICES, Kube, KubeError, inference_pools

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
    stalled: bool = False  # waiting cannot help (a rollout that can never finish): verify --wait stops

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
    if (plan.release_info.engine or {}).get("drain"):
        checks += [_drain_check(role, obs) for role in plan.roles.values()]
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
    rolling = _rolling(dep, spec)
    if rolling:
        return Check(label, PENDING, f"{ready}/{spec} ready; {rolling}", expected)
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
    rolling = _rolling(lws, replicas, unit="groups")
    return Check(label, PASS if ready >= replicas and not rolling else PENDING,
                 f"{ready}/{replicas} groups ready" + (f"; {rolling}" if rolling else ""), expected)


def _rolling(obj: dict, replicas: int, unit: str = "pods") -> str:
    """Why a workload's rollout is not over yet ('' when it is): its controller has not seen the
    last change (observedGeneration), or not every replica runs the new template (updatedReplicas),
    or old ones are still there (status.replicas above spec while they drain)."""
    meta, status = obj.get("metadata") or {}, obj.get("status") or {}
    if "observedGeneration" in status and int(status["observedGeneration"]) < int(meta.get("generation", 0)):
        return f"the controller has not seen generation {meta.get('generation')} yet"
    if "updatedReplicas" in status and int(status.get("updatedReplicas") or 0) < replicas:
        return f"rolling out: {status.get('updatedReplicas') or 0} of {replicas} {unit} on the new template"
    if unit == "pods" and int(status.get("replicas") or 0) > replicas:
        extra = int(status["replicas"]) - replicas
        return f"rolling out: {extra} old pod{'s' if extra != 1 else ''} still draining"
    return ""


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
        rolling = _rollout_check(label, role, pods, obs.deployments.get(role.deployment), expected)
        if rolling is not None:
            return rolling
        return Check(label, FAIL, "; ".join(problems[:4]) + (f" (+{len(problems) - 4} more)" if len(problems) > 4 else ""), expected,
                     hint="the running pods differ from the plan: llmdctl diff shows how, llmdctl apply converges")
    ready = sum(pod_ready(p) for p in pods)
    observed = f"{ready}/{len(pods)} ready, resources and image as planned"
    return Check(label, PASS if ready >= want and (not role.autoscale or ready == len(pods)) else PENDING, observed, expected)


def _drain_check(role, obs: Observed) -> Check:
    """A pod that is replaced or scaled down stops getting new requests (preStop) and finishes the
    ones it has (vLLM's --shutdown-timeout) before the kubelet's grace period ends."""
    label = f"{role.role} drain"
    expected = "vLLM --shutdown-timeout > 0, preStop sleep, grace period > both"
    if role.workers > 1:
        group = obs.groups.get(role.deployment)
        template = ((((group or {}).get("spec") or {}).get("leaderWorkerTemplate") or {}).get("workerTemplate")) if group else None
    else:
        template = ((obs.deployments.get(role.deployment) or {}).get("spec") or {}).get("template")
    if not template:
        return Check(label, PENDING, f"no {role.workload} yet", expected)
    timeout, sleep, grace = pod_drain(template.get("spec") or {})
    observed = f"preStop {sleep} s, --shutdown-timeout {f'{timeout} s' if timeout is not None else 'unset'}, grace {grace} s"
    if not timeout:
        return Check(label, WARN, observed, expected, hint="vLLM aborts its in-flight requests on SIGTERM: every rollout or scale-down cuts "
                     "answers off; llmdctl apply (same inputs) restores the release's drain settings, or check what your --set changed")
    if grace <= sleep + timeout:
        return Check(label, WARN, observed, expected, hint=f"the kubelet kills vLLM {sleep + timeout - grace} s or more before its drain ends: "
                     f"terminationGracePeriodSeconds must exceed {sleep + timeout}; llmdctl apply (same inputs) restores it")
    if not sleep:
        return Check(label, WARN, observed, expected, hint="without a preStop sleep the router may still pick the pod after vLLM stopped "
                     "accepting requests: those requests fail; llmdctl apply (same inputs) restores it")
    return Check(label, PASS, observed, expected)


def _unschedulable(pod: dict) -> str | None:
    cond = next((c for c in (pod.get("status") or {}).get("conditions") or [] if c.get("type") == "PodScheduled"), None)
    return (cond.get("message") or "unschedulable") if cond and cond.get("status") == "False" and cond.get("reason") == "Unschedulable" else None


def _rollout_check(label: str, role, pods: list[dict], dep: dict | None, expected: str) -> Check | None:
    """Pods that differ from the plan while the Deployment's template already is the plan: a
    rollout in progress (pending), or one that cannot finish (failing, and verify --wait stops),
    never "drift" that another apply would fix. None when the template itself differs."""
    if dep is None or not role.image:
        return None
    template = (dep.get("spec") or {}).get("template") or {}
    limits = (_container(template).get("resources") or {}).get("limits") or {}
    if _container(template).get("image") != role.image or (role.accelerator_resource and str(limits.get(role.accelerator_resource)) != str(role.gpus_per_pod)):
        return None
    new = [p for p in pods if _container(p).get("image") == role.image
           and str(((_container(p).get("resources") or {}).get("limits") or {}).get(role.accelerator_resource)) == str(limits.get(role.accelerator_resource))]
    progressing = _cond(dep, "Progressing")
    stuck = [(p["metadata"]["name"], _unschedulable(p)) for p in new if _unschedulable(p)]
    observed = f"rolling out: {len(new)} of {len(pods)} pods on the new template"
    if stuck or (progressing and progressing.get("reason") == "ProgressDeadlineExceeded"):
        why = f"{stuck[0][0]} cannot be scheduled ({stuck[0][1]})" if stuck else progressing.get("message", "ProgressDeadlineExceeded")
        strategy = ((dep.get("spec") or {}).get("strategy") or {}).get("rollingUpdate") or {}
        fix = ("the new pod waits for GPUs the old pods still hold: apply again with the same inputs (llmdctl picks a rollout that fits, "
               "in place when the GPUs are full), or free GPUs") if str(strategy.get("maxSurge", "25%")) not in ("0", "0%") else \
              "not even in place does the new pod find a node: free GPUs (llmdctl doctor shows who holds them) or choose a layout that fits"
        return Check(label, FAIL, f"{observed}; stalled: {why}", expected, hint=fix, stalled=True)
    return Check(label, PENDING, observed, expected)


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


