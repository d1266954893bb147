"""Where the planned pods can go: each node's free accelerators and RDMA NICs (allocatable minus
what bound pods request), first fit, biggest pods first, on the nodes each role may use: the
scheduler's own filters for taints and tolerations, node selectors and required node affinity."""

from __future__ import annotations

from ..plan.stack import Plan
from .health import FAIL, PASS, WARN, Check


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
        for name in resources:
            amount = spec_request(spec, name)
            if amount:
                used.setdefault(node, {}).setdefault(name, 0)
                used[node][name] += amount
    return used


def spec_request(spec: dict, name: str) -> int:
    """What a pod spec's containers request of one countable resource (a request left unset takes
    its limit, as the API defaults it)."""
    total = 0
    for c in spec.get("containers") or []:
        res = c.get("resources") or {}
        total += _qty((res.get("requests") or {}).get(name, (res.get("limits") or {}).get(name)))
    return total


# --- the scheduler's node filters ------------------------------------------------------------------


def _tolerates(toleration: dict, taint: dict) -> bool:
    """core/v1 Toleration.ToleratesTaint: an empty effect matches every effect, an empty key with
    Exists every taint; Equal (the default operator) compares the value."""
    if toleration.get("effect") and toleration["effect"] != taint.get("effect"):
        return False
    if toleration.get("key") and toleration["key"] != taint.get("key"):
        return False
    if toleration.get("operator", "Equal") == "Exists":
        return not toleration.get("key") or toleration["key"] == taint.get("key")
    return toleration.get("key") == taint.get("key") and (toleration.get("value") or "") == (taint.get("value") or "")


def taint_text(taint: dict) -> str:
    return taint.get("key", "") + (f"={taint['value']}" if taint.get("value") else "") + f":{taint.get('effect', '')}"


def _expression(expr: dict, labels: dict) -> bool:
    key, op, values = expr.get("key"), expr.get("operator"), expr.get("values") or []
    has, value = key in labels, labels.get(key)
    if op == "In":
        return has and value in values
    if op == "NotIn":
        return not has or value not in values
    if op == "Exists":
        return has
    if op == "DoesNotExist":
        return not has
    if op in ("Gt", "Lt") and has and values:
        try:
            return int(value) > int(values[0]) if op == "Gt" else int(value) < int(values[0])
        except ValueError:
            return False
    return False


def node_refusal(node: dict, spec: dict) -> str | None:
    """Why the scheduler would not put a pod of this spec on the node (None: it may): an
    untolerated NoSchedule/NoExecute taint, the nodeSelector, the required node affinity."""
    tolerations = spec.get("tolerations") or []
    untolerated = [taint for taint in (node.get("spec") or {}).get("taints") or []
                   if taint.get("effect") in ("NoSchedule", "NoExecute") and not any(_tolerates(tol, taint) for tol in tolerations)]
    if untolerated:
        return "untolerated taint " + ", ".join(taint_text(x) for x in untolerated)
    labels = (node.get("metadata") or {}).get("labels") or {}
    wrong = {k: v for k, v in (spec.get("nodeSelector") or {}).items() if labels.get(k) != v}
    if wrong:
        return "nodeSelector " + ", ".join(f"{k}={v}" for k, v in sorted(wrong.items())) + " does not match"
    required = (((spec.get("affinity") or {}).get("nodeAffinity") or {}).get("requiredDuringSchedulingIgnoredDuringExecution") or {})
    terms = required.get("nodeSelectorTerms") or []
    if terms and not any(all(_expression(e, labels) for e in term.get("matchExpressions") or []) for term in terms):
        return "required node affinity does not match"
    return None


def _unplaced(pods: list[tuple[str, int, int]], free: dict[str, list[int]], rdma: bool,
              allowed: dict[str, set[str]] | None = None) -> list[str]:
    """First fit, biggest pods first, of (role, GPUs, NICs) onto the nodes' free [GPUs, NICs]
    (left as they were) each role may use: the roles of the pods that find no node."""
    left = {k: list(v) for k, v in free.items()}
    unplaced = []
    for role, gpus, nics in sorted(pods, key=lambda p: -p[1]):
        node = next((k for k, v in left.items() if (allowed is None or k in allowed.get(role, ())) and v[0] >= gpus and (not rdma or v[1] >= nics)), None)
        if node is None:
            unplaced.append(role)
        else:
            left[node][0] -= gpus
            left[node][1] -= nics
    return unplaced


def _filter_fix(excluded: dict[str, tuple[str, list[str]]], plan: Plan) -> str:
    """How to let the pods onto the GPU nodes the scheduler's filters keep them off."""
    taints = sorted({part.strip() for why, _ in excluded.values() if why.startswith("untolerated taint ")
                     for part in why[len("untolerated taint "):].split(",")})
    parts = []
    if taints:
        parts.append("the GPU nodes carry taints the pods do not tolerate: if the stack may run there, pass "
                     + " ".join(f"--toleration {x}" for x in taints) + f" (the {plan.hardware} profile tolerates only its vendor's GPU taint)")
    if any(why.startswith(("nodeSelector", "required node affinity")) for why, _ in excluded.values()):
        parts.append("the pods' nodeSelector / node affinity matches no GPU node with room: check the node labels "
                     "(kubectl get nodes --show-labels) against the profile's ms.roles.extraConfig")
    return "; ".join(parts)


def evaluate_capacity(plan: Plan, nodes: list[dict], running: list[dict] | None = None, specs: dict[str, dict] | None = None) -> list[Check]:
    """Do the planned pods fit on the nodes' free accelerators (and RDMA), one pod per node slot?

    Free is allocatable minus what pods already bound there request (``running``; this stack's own
    pods excluded): beside a running stack a second one must not "fit" and then stay Pending.
    ``specs`` (role -> the pod spec the bundle renders) limits each role to the nodes the scheduler
    would consider: a tainted GPU node the pods do not tolerate holds no room for them."""
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
    gpu_nodes = [n for n in usable if _qty((n.get("status") or {}).get("allocatable", {}).get(accel))]
    allowed, excluded = None, {}  # excluded: node -> (why, roles)
    if specs is not None:
        allowed = {}
        for role in plan.roles:
            spec = specs.get(role) or {}
            for n in usable:
                why = node_refusal(n, spec)
                if why is None:
                    allowed.setdefault(role, set()).add(n["metadata"]["name"])
                elif n in gpu_nodes:
                    excluded.setdefault(n["metadata"]["name"], (why, []))[1].append(role)
    unplaced = _unplaced(pods, free, bool(rdma), allowed)
    observed = (f"{total} allocatable {accel} on {len(gpu_nodes)} of {len(usable)} schedulable nodes"
                + (f", {busy} in use by other pods" if busy else ""))
    if excluded:
        observed += "; excluded for the pods: " + "; ".join(f"{name} ({why}; {', '.join(roles)})" for name, (why, roles) in sorted(excluded.items()))
    if not unplaced:
        checks.append(Check(f"capacity {accel}", PASS, observed, f"{layout} = {need} {accel}"))
    else:
        filtered = bool(excluded) and not _unplaced(pods, free, bool(rdma))
        if total == 0:
            fix = (f"no node offers {accel}: pick the profile for your GPUs (llmdctl profiles; e.g. -e nvidia-ib for nvidia.com/gpu, -e amd for amd.com/gpu) "
                   "or install the device plugin")
        elif filtered:
            # the GPUs are there and free: the scheduler's filters keep the pods off them
            fix = _filter_fix(excluded, plan)
        else:
            fix = f"shrink the layout (--prefill/--decode NxTPm) or free {accel}: {len(unplaced)} pod(s) do not fit ({', '.join(sorted(set(unplaced)))})"
            if excluded:
                fix += "; " + _filter_fix(excluded, plan)
        checks.append(Check(f"capacity {accel}", FAIL, observed, f"{layout} = {need} {accel}", hint=fix))
    peak = {r.role: r.autoscale[1] * r.workers for r in plan.roles.values() if r.autoscale and r.autoscale[1] > r.replicas}
    if peak and not unplaced:
        # the HPA may grow a role to its maximum: pods past what the nodes hold would stay Pending then
        at_max = [slot for r in plan.roles.values() for slot in slots(r, peak.get(r.role, r.pods))]
        short = _unplaced(at_max, free, bool(rdma), allowed)
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


