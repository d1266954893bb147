"""What the cluster's admission chain says of the stack's pods, asked before anything is applied.

A Deployment or LeaderWorkerSet is admitted whatever its pod template holds; PodSecurity,
ResourceQuota, LimitRange and validating webhooks judge the *pods*, which the controllers create
later, so `helm install` succeeds and the refusal only shows as a FailedCreate event. Here each pod
template the bundle renders is sent as a Pod through server-side dry-run (``dryRun=All``: the whole
admission chain runs, nothing is stored), and each ResourceQuota of the namespace is summed over
all the stack's pods (the dry-run judges one pod at a time). ``explain_refusal`` turns the API
server's words into the cause and the fix; verify uses it on the FailedCreate events too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from ..plan.podsecurity import LEVELS, pod_security_findings, stack_pod_security
from ..plan.stack import Plan
from .health import FAIL, PASS, WARN, Check
from .kube import NAMESPACES, Kube, KubeError, Resource

RESOURCEQUOTAS = Resource("", "v1", "resourcequotas")
ROLE_LABEL = "llm-d.ai/role"
PSA_ENFORCE = "pod-security.kubernetes.io/enforce"


@dataclass(frozen=True)
class Workload:
    """One pod template the bundle creates, and how many pods of it run."""

    kind: str
    name: str
    release: str
    pods: int
    template: dict  # {metadata, spec} of the pods
    part: str = ""  # "leader" / "worker" of a LeaderWorkerSet
    own_account: bool = False  # its ServiceAccount is one the bundle creates (not there before apply)

    @property
    def label(self) -> str:
        return f"{self.kind} {self.name}" + (f" ({self.part})" if self.part else "")

    @property
    def role(self) -> str | None:
        return ((self.template.get("metadata") or {}).get("labels") or {}).get(ROLE_LABEL)

    @property
    def spec(self) -> dict:
        return self.template.get("spec") or {}


def _int(value, default: int = 1) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def workloads_of(objects_by_release: dict[str, list[dict]]) -> list[Workload]:
    """The pod templates of Deployments, StatefulSets, Jobs and LeaderWorkerSets (leader and
    worker), in release order. DaemonSets are left out: their count is the nodes'."""
    accounts = {(o.get("metadata") or {}).get("name") for objs in objects_by_release.values() for o in objs if o.get("kind") == "ServiceAccount"}
    out = []
    for release, objects in objects_by_release.items():
        for obj in objects:
            kind, spec = obj.get("kind"), obj.get("spec") or {}
            name = (obj.get("metadata") or {}).get("name", "?")
            if kind in ("Deployment", "StatefulSet", "ReplicaSet") and spec.get("template"):
                out.append(Workload(kind, name, release, _int(spec.get("replicas"), 1), spec["template"]))
            elif kind == "Job" and spec.get("template"):
                out.append(Workload(kind, name, release, _int(spec.get("parallelism"), 1), spec["template"]))
            elif kind == "LeaderWorkerSet":
                lwt = spec.get("leaderWorkerTemplate") or {}
                groups, size = _int(spec.get("replicas"), 1), _int(lwt.get("size"), 1)
                worker = lwt.get("workerTemplate")
                leader = lwt.get("leaderTemplate") or worker
                if leader:
                    out.append(Workload(kind, name, release, groups, leader, "leader"))
                if worker and size > 1:
                    out.append(Workload(kind, name, release, groups * (size - 1), worker, "worker"))
    return [w if ((w.spec.get("serviceAccountName") or w.spec.get("serviceAccount")) not in accounts) else
            Workload(w.kind, w.name, w.release, w.pods, w.template, w.part, own_account=True) for w in out]


# --- the dry-run --------------------------------------------------------------------------------


def as_pod(workload: Workload, namespace: str) -> dict:
    """The Pod a controller would create from the template. A ServiceAccount the bundle itself
    creates does not exist before apply, and the ServiceAccount admission plugin refuses a pod
    that names a missing one: such a pod is judged under the namespace's default account."""
    meta = workload.template.get("metadata") or {}
    spec = dict(workload.spec)
    if workload.own_account:
        spec.pop("serviceAccountName", None)
        spec.pop("serviceAccount", None)
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"generateName": f"{workload.name}-llmdctl-doctor-", "namespace": namespace,
                         "labels": dict(meta.get("labels") or {}), "annotations": dict(meta.get("annotations") or {})},
            "spec": spec}


def can_create_pods(kube: Kube, namespace: str) -> bool | None:
    """SelfSubjectAccessReview: may this context create Pods there (the dry-run needs the right)?
    None when the API does not answer the question."""
    body = {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
            "spec": {"resourceAttributes": {"namespace": namespace, "verb": "create", "resource": "pods"}}}
    try:
        doc = kube.review_access(body)
    except KubeError:
        return None
    return bool((doc.get("status") or {}).get("allowed"))


@dataclass(frozen=True)
class Refusal:
    cause: str  # PodSecurity | ResourceQuota | LimitRange | webhook | ServiceAccount | admission
    reason: str  # the API server's words
    fix: str


_PSA = re.compile(r'violates PodSecurity "([a-z]+):([^"]+)": (.*)', re.S)
_QUOTA = re.compile(r"exceeded quota: ([^,]+), requested: (.*?), used: (.*?), limited: (.*)$", re.S)
_WEBHOOK = re.compile(r'admission webhook "([^"]+)" denied the request(?:: (.*))?', re.S)
_LIMITRANGE = re.compile(r"(maximum|minimum) (\S+) usage per (Container|Pod) is (\S+)(?:, but (?:limit|request) is (\S+))?")
# what baseline already refuses: needing one of these means the namespace must be privileged
_PRIVILEGED_ONLY = ("non-default capabilities", "host namespaces", "privileged", "hostPath volumes", "hostPort", "host ports",
                    "unsafe sysctls", "procMount", "seLinuxOptions", "forbidden AppArmor profile")


def explain_refusal(message: str, plan: Plan) -> Refusal:
    """The cause of one admission refusal and its fix, from the message alone: no fix names a
    cause the message does not show."""
    ns = plan.namespace
    m = _PSA.search(message)
    if m:
        level, violations = m.group(1), m.group(3).strip()
        needs = "privileged" if any(marker in violations for marker in _PRIVILEGED_ONLY) else "baseline"
        fix = (f"namespace {ns} enforces PodSecurity {level}; the pods need {needs}: either the namespace owner allows it "
               f"(kubectl label namespace {ns} {PSA_ENFORCE}={needs} --overwrite), or the pods drop what the level forbids")
        if "IPC_LOCK" in violations:
            fix += ("; IPC_LOCK lets UCX pin memory for RDMA: without RDMA (--rdma-resource none, the KV cache over TCP, slower) drop it with "
                    "--set 'ms.roles.containers[vllm].securityContext.capabilities.add=null'")
        elif "host namespaces" in violations or "hostIPC" in violations:
            fix += "; hostIPC/hostPID carry CUDA IPC between pods on one node (the profile's fast path); without them the KV cache goes over the network"
        return Refusal("PodSecurity", f"violates PodSecurity {level}:{m.group(2)}: {violations}", fix)
    m = _QUOTA.search(message)
    if m:
        name = m.group(1).strip()
        return Refusal("ResourceQuota", message[message.find("exceeded quota"):].strip(),
                       f"ResourceQuota {name} in {ns} is full (requested {m.group(2)}, used {m.group(3)}, limited {m.group(4).strip()}): "
                       f"raise it (kubectl edit resourcequota {name} -n {ns}), free what other workloads use, or shrink the layout")
    if "status unknown for quota" in message:
        return Refusal("ResourceQuota", message.strip(),
                       "the quota's usage is not computed yet (kube-controller-manager's resourcequota controller): retry in a few seconds")
    if "failed quota" in message and "must specify" in message:
        return Refusal("ResourceQuota", message.strip(),
                       "a ResourceQuota in the namespace tracks a resource the pods do not set: give every container requests/limits for it "
                       "(--set ms.roles.containers[vllm].resources.limits.cpu=..., or the profile's resources)")
    m = _WEBHOOK.search(message)
    if m:
        return Refusal("webhook", message[m.start():].strip(),
                       f"the validating webhook {m.group(1)} refuses the pod: change what it names, or ask its owner for an exception "
                       "(kubectl get validatingwebhookconfigurations shows who serves it)")
    m = re.search(r'serviceaccount "([^"]+)" not found', message)
    if m:
        return Refusal("ServiceAccount", message.strip(),
                       f"the pods run as ServiceAccount {m.group(1)}, which neither exists in {ns} nor is created by the bundle: "
                       f"create it (kubectl create serviceaccount {m.group(1)} -n {ns}) or drop the override that names it")
    m = _LIMITRANGE.search(message)
    if m:
        return Refusal("LimitRange", message[m.start():].strip(),
                       f"a LimitRange in {ns} bounds {m.group(2)} per {m.group(3).lower()} ({m.group(1)} {m.group(4)}): set the resources "
                       f"inside it (--set ms.roles.containers[vllm].resources...), or ask for a namespace with room (kubectl describe limitrange -n {ns})")
    return Refusal("admission", message.strip(), "")


def dry_run_checks(kube: Kube, plan: Plan, workloads: list[Workload]) -> list[Check]:
    """One check per pod template: admitted, or refused with the cause and the fix."""
    out = []
    for w in workloads:
        try:
            kube.dry_run_create_pod(plan.namespace, as_pod(w, plan.namespace))
        except KubeError as exc:
            if exc.status == 0:
                raise
            text = exc.message.split(": ", 2)[-1] if exc.message.startswith("POST ") else exc.message
            refusal = explain_refusal(text, plan)
            out.append(Check(f"admission {w.label}", FAIL, f"{refusal.cause}: {refusal.reason}", "admitted (server-side dry-run)",
                             hint=refusal.fix))
            continue
        out.append(Check(f"admission {w.label}", PASS, "admitted (server-side dry-run)", "admitted"))
    return out


# --- quotas: the dry-run judges one pod; the quota is for all of them ---------------------------

_SUFFIX = {"n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"), "": Decimal(1), "k": Decimal(10) ** 3, "M": Decimal(10) ** 6,
           "G": Decimal(10) ** 9, "T": Decimal(10) ** 12, "P": Decimal(10) ** 15, "E": Decimal(10) ** 18,
           "Ki": Decimal(2) ** 10, "Mi": Decimal(2) ** 20, "Gi": Decimal(2) ** 30, "Ti": Decimal(2) ** 40, "Pi": Decimal(2) ** 50, "Ei": Decimal(2) ** 60}
_QUANTITY = re.compile(r"([+-]?[0-9.]+(?:[eE][+-]?[0-9]+)?)(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E)?")


def quantity(value) -> Decimal:
    """A Kubernetes resource quantity (``16``, ``500m``, ``64Gi``, ``1e3``) as a number; 0 when unreadable."""
    m = _QUANTITY.fullmatch(str(value).strip())
    if not m:
        return Decimal(0)
    try:
        return Decimal(m.group(1)) * _SUFFIX[m.group(2) or ""]
    except InvalidOperation:
        return Decimal(0)


def pod_usage(spec: dict) -> dict[str, Decimal]:
    """What one pod counts against quotas: requests.X and limits.X summed over its containers
    (restartable init containers, i.e. native sidecars, run beside them; other init containers count
    at their largest), plus ``pods``; a request left unset takes its limit, as the API defaults it."""
    def of(container: dict) -> dict[str, Decimal]:
        res = container.get("resources") or {}
        limits, requests = res.get("limits") or {}, dict(res.get("requests") or {})
        for name, v in limits.items():
            requests.setdefault(name, v)
        out = {f"requests.{k}": quantity(v) for k, v in requests.items()}
        out.update({f"limits.{k}": quantity(v) for k, v in limits.items()})
        return out

    total: dict[str, Decimal] = {}
    inits = spec.get("initContainers") or []
    for c in list(spec.get("containers") or []) + [c for c in inits if c.get("restartPolicy") == "Always"]:
        for k, v in of(c).items():
            total[k] = total.get(k, Decimal(0)) + v
    for c in inits:
        if c.get("restartPolicy") != "Always":
            for k, v in of(c).items():
                total[k] = max(total.get(k, Decimal(0)), v)
    total["pods"] = Decimal(1)
    return total


def _quota_key(key: str) -> str:
    # a bare cpu/memory in a quota means its request; extended resources are quota'd as requests.X
    return f"requests.{key}" if key in ("cpu", "memory", "ephemeral-storage") else key


def _fmt(value: Decimal) -> str:
    return str(int(value)) if value == value.to_integral() else f"{value.normalize():f}"


def quota_checks(plan: Plan, quotas: list[dict], workloads: list[Workload], own_pods: list[dict]) -> list[Check]:
    """Each ResourceQuota (without scopes) of the namespace against the sum over every planned pod;
    the stack's own running pods are taken out of its usage (apply replaces them)."""
    need: dict[str, Decimal] = {}
    for w in workloads:
        for k, v in pod_usage(w.spec).items():
            need[k] = need.get(k, Decimal(0)) + v * w.pods
    mine: dict[str, Decimal] = {}
    for pod in own_pods:
        if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
            continue
        for k, v in pod_usage(pod.get("spec") or {}).items():
            mine[k] = mine.get(k, Decimal(0)) + v
    out = []
    for q in sorted(quotas, key=lambda q: q["metadata"]["name"]):
        name, spec, status = q["metadata"]["name"], q.get("spec") or {}, q.get("status") or {}
        if spec.get("scopes") or spec.get("scopeSelector"):
            out.append(Check(f"ResourceQuota {name}", WARN, "has scopes; not summed here", "room for the stack's pods",
                             hint="the admission dry-run judged each pod against it; kubectl describe resourcequota " + name))
            continue
        short = []
        for key, hard in sorted((spec.get("hard") or {}).items()):
            wanted = need.get(_quota_key(key), Decimal(0))
            if not wanted:
                continue
            used = quantity((status.get("used") or {}).get(key, 0)) - mine.get(_quota_key(key), Decimal(0))
            room = quantity(hard) - max(used, Decimal(0))
            if wanted > room:
                short.append(f"{key} {_fmt(wanted)} needed, {_fmt(quantity(hard))} hard, {_fmt(max(used, Decimal(0)))} used by others")
        if short:
            out.append(Check(f"ResourceQuota {name}", FAIL, "; ".join(short), "room for the stack's pods",
                             hint=f"the stack's pods need more than the quota leaves: raise it (kubectl edit resourcequota {name} -n {plan.namespace}), "
                                  "free what other workloads hold, or shrink the layout (--prefill/--decode)"))
        else:
            out.append(Check(f"ResourceQuota {name}", PASS, "room for every planned pod", "room for the stack's pods"))
    return out


# --- reading the policies, when this context may not create Pods ---------------------------------

def policy_checks(plan: Plan, namespace: dict, workloads: list[Workload]) -> list[Check]:
    """The namespace's PodSecurity enforce level read from its label and applied to the templates
    (the fallback when the dry-run may not run)."""
    level = ((namespace.get("metadata") or {}).get("labels") or {}).get(PSA_ENFORCE, "privileged")
    out = []
    for w in workloads:
        found = pod_security_findings(w.spec, level)
        if found:
            refusal = explain_refusal(f'violates PodSecurity "{level}:latest": ' + ", ".join(found), plan)
            out.append(Check(f"PodSecurity {w.label}", FAIL, f"{level} refuses: {', '.join(found)} (read from the namespace label)",
                             f"allowed by {level}", hint=refusal.fix))
    if not out:
        out.append(Check("PodSecurity", PASS, f"namespace enforces {level}; the pod templates stay inside it (read from the label)", f"allowed by {level}"))
    return out


def pod_security_check(plan: Plan, namespace: dict) -> Check:
    """The level the stack's pods need (each profile states it; computed from the pods) against
    the level the namespace enforces."""
    need = stack_pod_security(plan)
    labels = (namespace.get("metadata") or {}).get("labels") or {}
    enforced = labels.get(PSA_ENFORCE)
    why = next((w for _, (lvl, w) in need.roles.items() if lvl == need.level and w), [])
    needs = f"{need.level}" + (f" ({'; '.join(why[:2])} rule out {LEVELS[LEVELS.index(need.level) - 1]})" if why else "")
    if enforced is None:
        return Check("Pod Security level", PASS, f"no enforce label on {plan.namespace}: the cluster's default applies (privileged unless its "
                     f"admission configuration sets one); the stack needs {needs}", f"a level that admits {need.level}")
    if enforced not in LEVELS or LEVELS.index(enforced) >= LEVELS.index(need.level):
        return Check("Pod Security level", PASS, f"{plan.namespace} enforces {enforced}; the stack needs {needs}", f"a level that admits {need.level}")
    fix = (f"label the namespace pod-security.kubernetes.io/enforce={need.level} if your policy allows it"
           + ("; or --rdma-resource none (KV over TCP: no IPC_LOCK)" if any("IPC_LOCK" in w for w in why) else "")
           + ("; or hardware that needs no host namespaces" if any("host namespaces" in w for w in why) else ""))
    return Check("Pod Security level", FAIL, f"{plan.namespace} enforces {enforced}; the stack needs {needs}", f"a level that admits {need.level}", hint=fix)


def admission_checks(kube: Kube, plan: Plan, workloads: list[Workload], own_pods: list[dict]) -> list[Check]:
    """The admission dry-run of every pod template (or, without the right to create Pods, the
    namespace's PodSecurity label read and applied), then the quotas summed over all pods."""
    namespace = kube.get(NAMESPACES, plan.namespace)
    if namespace is None:
        return [Check("admission", WARN, f"namespace {plan.namespace} does not exist yet", "the namespace's admission policies",
                      hint="the pods could not be judged by the admission chain; create the namespace first (with its labels) and run doctor again")]
    level = pod_security_check(plan, namespace)
    if not workloads:
        return [level, Check("admission", WARN, "no pod template rendered", "every pod template admitted")]
    allowed = can_create_pods(kube, plan.namespace)
    if allowed:
        checks = [level] + dry_run_checks(kube, plan, workloads)
    else:
        checks = [Check("admission dry-run", WARN, "this context may not create pods in " + plan.namespace if allowed is False else
                        "the API server did not answer a SelfSubjectAccessReview", "create pods (server-side dry-run)",
                        hint="ask for create on pods (the dry-run stores nothing), or run doctor as a user who may; the PodSecurity "
                             "label and the quotas were read instead, webhooks and LimitRanges were not judged")]
        checks += [level] + policy_checks(plan, namespace, workloads)
    try:
        quotas = kube.list(RESOURCEQUOTAS, plan.namespace)
    except KubeError as exc:
        checks.append(Check("ResourceQuota", WARN, exc.message, "readable", hint="the quotas were not summed (kubectl auth can-i list resourcequotas)"))
        return checks
    return checks + quota_checks(plan, quotas, workloads, own_pods)
