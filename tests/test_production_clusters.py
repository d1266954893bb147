"""issue 25: doctor, apply and verify on a production cluster: admission (PodSecurity, quotas,
LimitRanges, webhooks), tainted GPU nodes and the pods' tolerations, and pods never created.

The refusal texts are the API server's (kube-apiserver 1.34, as the e2e suite sees them); the e2e
suite proves them against the real admission plugins, these tests the reading and the fixes."""

from __future__ import annotations

import json

import pytest

from conftest import gpu_node, plan_for
from llmdctl.base.errors import InputError
from llmdctl.plan.podsecurity import pod_security_findings
from llmdctl.effects.admission import (
    Workload, explain_refusal, pod_usage, quantity, quota_checks, workloads_of,
)
from llmdctl.effects.diagnosis import diagnose_pod, workload_refusals
from llmdctl.effects.placement import evaluate_capacity, node_refusal
from llmdctl.inputs.spec import parse_toleration

V9 = {"LLMD_VERSION": "v0.9.0"}
PSA_IPC_LOCK = ('pods "ms-pd-decode-llmdctl-doctor-x" is forbidden: violates PodSecurity "baseline:latest": non-default capabilities '
                '(container "vllm" must not include "IPC_LOCK" in securityContext.capabilities.add)')
QUOTA = ('pods "ms-pd-decode-llmdctl-doctor-x" is forbidden: exceeded quota: gpus, requested: requests.nvidia.com/gpu=4, '
         'used: requests.nvidia.com/gpu=0, limited: requests.nvidia.com/gpu=2')
WEBHOOK = ('admission webhook "deny-vllm.policy.example.com" denied the request: images from docker.io are not allowed here')
GPU_TAINT = {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}
OWN_TAINT = {"key": "dedicated", "value": "llm", "effect": "NoSchedule"}


def router_plan(**kw):
    return plan_for(llmd_version="v0.9.0", **kw)


def workloads(plan) -> list[Workload]:
    return workloads_of({k: list(v) for k, v in plan.manifests.items()})


def specs(plan) -> dict:
    return {w.role: w.spec for w in workloads(plan) if w.role}


# --- the refusal, read ----------------------------------------------------------------------------


def test_a_podsecurity_refusal_names_the_level_the_field_and_both_ways_out():
    r = explain_refusal(PSA_IPC_LOCK, router_plan())
    assert r.cause == "PodSecurity"
    assert 'baseline:latest' in r.reason and "IPC_LOCK" in r.reason
    # a capability outside baseline's list needs privileged, not baseline
    assert "pod-security.kubernetes.io/enforce=privileged" in r.fix and "kubectl label namespace llm-d-pd" in r.fix
    assert "--rdma-resource none" in r.fix and "capabilities.add=null" in r.fix


def test_a_restricted_only_refusal_asks_for_baseline_not_privileged():
    msg = ('pods "x" is forbidden: violates PodSecurity "restricted:latest": allowPrivilegeEscalation != false (container "vllm" must set '
           'securityContext.allowPrivilegeEscalation=false), runAsNonRoot != true (pod or container "vllm" must set securityContext.runAsNonRoot=true)')
    r = explain_refusal(msg, router_plan())
    assert r.cause == "PodSecurity" and "enforce=baseline" in r.fix and "privileged" not in r.fix
    assert "IPC_LOCK" not in r.fix  # no cause the message does not show


def test_quota_limitrange_and_webhook_refusals_name_their_own_cause_only():
    plan = router_plan()
    q = explain_refusal(QUOTA, plan)
    assert q.cause == "ResourceQuota" and "ResourceQuota gpus" in q.fix and "limited requests.nvidia.com/gpu=2" in q.fix
    assert "kubectl edit resourcequota gpus -n llm-d-pd" in q.fix and "PodSecurity" not in q.fix
    w = explain_refusal(WEBHOOK, plan)
    assert w.cause == "webhook" and "deny-vllm.policy.example.com" in w.fix and "docker.io are not allowed" in w.reason
    lr = explain_refusal('pods "x" is forbidden: maximum cpu usage per Container is 4, but limit is 16', plan)
    assert lr.cause == "LimitRange" and "cpu per container" in lr.fix
    sa = explain_refusal('pods "x" is forbidden: error looking up service account llm-d-pd/runner: serviceaccount "runner" not found', plan)
    assert sa.cause == "ServiceAccount" and "kubectl create serviceaccount runner -n llm-d-pd" in sa.fix
    other = explain_refusal("something nobody anticipated", plan)
    assert other.cause == "admission" and other.fix == ""


# --- quotas: summed over every planned pod ---------------------------------------------------------


def test_quantities_read_as_kubernetes_writes_them():
    assert quantity("64Gi") == 64 * 2**30 and quantity("500m") * 1000 == 500 and quantity("16") == 16 and quantity("1e3") == 1000
    assert quantity("bogus") == 0


def test_a_native_sidecar_counts_beside_the_containers():
    spec = {"containers": [{"name": "vllm", "resources": {"limits": {"cpu": "16", "nvidia.com/gpu": "4"}}}],
            "initContainers": [{"name": "routing-proxy", "restartPolicy": "Always", "resources": {"requests": {"cpu": "1"}}},
                               {"name": "fetch", "resources": {"requests": {"cpu": "2"}}}]}
    usage = pod_usage(spec)
    # requests default to limits; the sidecar adds; a plain init container counts only at its peak
    assert usage["requests.cpu"] == 17 and usage["requests.nvidia.com/gpu"] == 4 and usage["pods"] == 1


def _quota(name, hard, used=None, **spec):
    return {"metadata": {"name": name}, "spec": {"hard": hard, **spec}, "status": {"hard": hard, "used": used or {}}}


def test_a_gpu_quota_smaller_than_the_stack_fails_although_each_pod_alone_fits():
    plan = router_plan()  # 4 prefill x 1 GPU + 1 decode x 4 GPUs = 8
    ws = workloads(plan)
    [check] = quota_checks(plan, [_quota("gpus", {"requests.nvidia.com/gpu": "4"})], ws, [])
    assert check.status == "fail" and "requests.nvidia.com/gpu 8 needed, 4 hard, 0 used" in check.observed, check
    assert "kubectl edit resourcequota gpus" in check.hint
    [ok] = quota_checks(plan, [_quota("gpus", {"requests.nvidia.com/gpu": "8"})], ws, [])
    assert ok.status == "pass"


def test_the_stacks_own_pods_do_not_count_against_its_update():
    plan = router_plan()
    ws = workloads(plan)
    own = [{"spec": w.spec, "status": {"phase": "Running"}} for w in ws for _ in range(w.pods)]
    [check] = quota_checks(plan, [_quota("gpus", {"requests.nvidia.com/gpu": "8"}, {"requests.nvidia.com/gpu": "8"})], ws, own)
    assert check.status == "pass", check
    [full] = quota_checks(plan, [_quota("gpus", {"requests.nvidia.com/gpu": "8"}, {"requests.nvidia.com/gpu": "8"})], ws, [])
    assert full.status == "fail"


def test_a_scoped_quota_is_left_to_the_dry_run_and_said_so():
    plan = router_plan()
    [check] = quota_checks(plan, [_quota("best", {"pods": "1"}, scopes=["BestEffort"])], workloads(plan), [])
    assert check.status == "warn" and "scopes" in check.observed


# --- PodSecurity, read from the label when the dry-run may not run ---------------------------------


def test_the_profiles_capabilities_are_what_baseline_refuses():
    nvidia = specs(router_plan())
    assert any("IPC_LOCK" in f for f in pod_security_findings(nvidia["decode"], "baseline"))
    assert pod_security_findings(nvidia["decode"], "privileged") == []
    gke = specs(router_plan(environments=("gke-no-rdma",)))
    assert pod_security_findings(gke["decode"], "baseline") == []
    # issue 27: everything restricted asks for but a non-root user (the vLLM images run as root)
    restricted = pod_security_findings(gke["decode"], "restricted")
    assert restricted == ['runAsNonRoot != true (container "vllm")'], restricted


# --- taints and tolerations ----------------------------------------------------------------------


def test_toleration_grammar():
    assert parse_toleration("dedicated=llm:NoSchedule").as_dict() == {"key": "dedicated", "operator": "Equal", "value": "llm", "effect": "NoSchedule"}
    assert parse_toleration("nvidia.com/gpu").as_dict() == {"key": "nvidia.com/gpu", "operator": "Exists"}
    assert parse_toleration("a=b:NoExecute").text() == "a=b:NoExecute"
    for bad in ("", "=x", "a:NoSched", "a=:NoSchedule", "a=b=c", "-a", "a b"):
        with pytest.raises(InputError):
            parse_toleration(bad)


def test_every_gpu_profile_tolerates_its_vendors_usual_taint():
    for env, key in (("nvidia-ib", "nvidia.com/gpu"), ("gke-no-rdma", "nvidia.com/gpu"), ("amd-roce", "amd.com/gpu"), ("gh200-timeslice", "nvidia.com/gpu")):
        for role, spec in specs(router_plan(environments=(env,))).items():
            assert {"key": key, "operator": "Exists", "effect": "NoSchedule"} in spec.get("tolerations", []), (env, role)


def test_the_scheduler_filter_follows_toleration_semantics():
    node = gpu_node("n", taints=[GPU_TAINT])
    assert node_refusal(node, {}) == "untolerated taint nvidia.com/gpu=present:NoSchedule"
    assert node_refusal(node, {"tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists"}]}) is None
    assert node_refusal(node, {"tolerations": [{"key": "nvidia.com/gpu", "operator": "Equal", "value": "absent"}]}) is not None
    assert node_refusal(node, {"tolerations": [{"operator": "Exists"}]}) is None  # tolerates everything
    assert node_refusal(gpu_node("m", taints=[{"key": "x", "effect": "PreferNoSchedule"}]), {}) is None
    assert node_refusal(gpu_node("l", labels={"pool": "a"}), {"nodeSelector": {"pool": "b"}}).startswith("nodeSelector pool=b")
    affinity = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "pool", "operator": "In", "values": ["a"]}]}]}}}
    assert node_refusal(gpu_node("l", labels={"pool": "a"}), {"affinity": affinity}) is None
    assert node_refusal(gpu_node("l", labels={"pool": "c"}), {"affinity": affinity}) == "required node affinity does not match"


def test_tainted_gpu_nodes_fail_placement_with_the_toleration_to_pass_not_a_smaller_layout():
    plan = router_plan()
    nodes = [gpu_node(f"gpu-node-{i}", taints=[OWN_TAINT]) for i in range(2)]
    [cap, _rdma] = evaluate_capacity(plan, nodes, [], specs(plan))
    assert cap.status == "fail", cap
    assert "gpu-node-0 (untolerated taint dedicated=llm:NoSchedule; prefill, decode)" in cap.observed, cap.observed
    assert "--toleration dedicated=llm:NoSchedule" in cap.hint and "shrink" not in cap.hint
    # the vendor's own taint is tolerated by the profile
    [ok, _] = evaluate_capacity(plan, [gpu_node(f"g{i}", taints=[GPU_TAINT]) for i in range(2)], [], specs(plan))
    assert ok.status == "pass", ok
    # and the user's toleration lets the pods onto their nodes
    tolerated = router_plan(tolerations=("dedicated=llm:NoSchedule",))
    [fits, _] = evaluate_capacity(tolerated, nodes, [], specs(tolerated))
    assert fits.status == "pass", fits


def test_a_layout_too_big_for_the_untainted_nodes_names_both_causes():
    plan = router_plan(decode="2xTP8")  # 4 + 16 GPUs on 2 nodes of 8: does not fit anyway
    nodes = [gpu_node("a"), gpu_node("b", taints=[OWN_TAINT])]
    [cap, _] = evaluate_capacity(plan, nodes, [], specs(plan))
    assert cap.status == "fail" and "shrink the layout" in cap.hint and "--toleration dedicated=llm:NoSchedule" in cap.hint


# --- verify: the scheduler's and the controllers' words --------------------------------------------

SCHEDULER_134 = ("0/3 nodes are available: 1 Insufficient nvidia.com/gpu, 2 node(s) had untolerated taint(s). "
                 "preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling.")


def _pending_pod(plan, role="decode"):
    spec = specs(plan)[role]
    return {"metadata": {"name": f"ms-pd-{role}-abc", "labels": {"llm-d.ai/role": role}}, "spec": spec,
            "status": {"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable"}]}}


def test_untolerated_taints_are_named_and_the_cpu_nodes_insufficient_is_not_read_as_full_gpus():
    plan = router_plan()
    pod = _pending_pod(plan)
    event = {"involvedObject": {"name": pod["metadata"]["name"]}, "type": "Warning", "reason": "FailedScheduling", "message": SCHEDULER_134}
    cpu = {"metadata": {"name": "cpu-0"}, "status": {"allocatable": {"cpu": "8"}}}
    nodes = [cpu, gpu_node("gpu-node-0", taints=[OWN_TAINT]), gpu_node("gpu-node-1", taints=[OWN_TAINT])]
    d = diagnose_pod(plan, pod, [event], [], hf_secret_present=True, server_version=(1, 34), nodes=nodes)
    assert any("--toleration dedicated=llm:NoSchedule" in h for h in d.hints), d.hints
    assert not any("shrink the layout" in h for h in d.hints), d.hints  # the one Insufficient node is the CPU node
    # the same message where GPU nodes are the ones short: the hint stays
    full = SCHEDULER_134.replace("1 Insufficient", "3 Insufficient").replace(", 2 node(s) had untolerated taint(s)", "")
    event["message"] = full
    d = diagnose_pod(plan, pod, [event], [], hf_secret_present=True, server_version=(1, 34), nodes=[cpu, gpu_node("a"), gpu_node("b")])
    assert any("shrink the layout" in h for h in d.hints) and not any("toleration" in h for h in d.hints), d.hints


def test_pods_never_created_are_explained_from_the_replicasets_failedcreate(kube_api):
    plan = router_plan()
    ns = plan.namespace
    decode = plan.roles["decode"].deployment

    def event(name, obj, message, when):
        kube_api.put(f"/api/v1/namespaces/{ns}/events", {"metadata": {"name": name, "namespace": ns}, "reason": "FailedCreate", "type": "Warning",
                                                         "involvedObject": {"kind": "ReplicaSet", "name": obj}, "message": message, "lastTimestamp": when})
    event("e1", f"{decode}-5d8f7c9b4", "Error creating: " + PSA_IPC_LOCK, "2026-12-07T10:00:00Z")
    event("e2", f"{decode}-2-5d8f7c9b4", "Error creating: " + QUOTA, "2026-12-07T10:00:01Z")  # another stack's (postfix pd-2)
    from llmdctl.effects.kube import Kube
    [d] = workload_refusals(Kube(), plan)
    assert d.pod == f"ReplicaSet {decode}-5d8f7c9b4" and d.role == "decode" and "PodSecurity" in d.summary
    assert "enforce=privileged" in d.hints[0] and "IPC_LOCK" in d.events[0]
    # an hour later the events are gone; the Deployment's ReplicaFailure condition still says why
    kube_api.remove(f"/api/v1/namespaces/{ns}/events", "e1")
    deployment = {"metadata": {"name": decode}, "status": {"conditions": [
        {"type": "ReplicaFailure", "status": "True", "reason": "FailedCreate", "message": QUOTA}]}}
    [d] = workload_refusals(Kube(), plan, deployments={decode: deployment})
    assert d.pod == f"Deployment {decode}" and "ResourceQuota" in d.summary and "kubectl edit resourcequota gpus" in d.hints[0]


# --- doctor and apply, end to end against the stand-ins --------------------------------------------


def _namespace(fc, ns="llm-d-pd", labels=None):
    fc.namespace(ns)
    fc.api.put("/api/v1/namespaces", {"metadata": {"name": ns, "labels": labels or {}}})
    fc.api.put(f"/api/v1/namespaces/{ns}/secrets", {"metadata": {"name": "llm-d-hf-token", "namespace": ns}, "data": {"HF_TOKEN": "eA=="}})


def _refuse_ipc_lock(pod):
    caps = [c for ct in pod["spec"].get("containers", []) for c in ((ct.get("securityContext") or {}).get("capabilities") or {}).get("add") or []]
    return PSA_IPC_LOCK if "IPC_LOCK" in caps else None


def test_doctor_fails_on_what_admission_refuses_and_apply_changes_nothing(cli, fake_cluster):
    fc = fake_cluster
    _namespace(fc)
    fc.api.admission.append(_refuse_ipc_lock)
    r = cli("doctor", "-o", "json", env=V9)
    assert r.code == 1, r
    checks = {c["name"]: c for c in json.loads(r.out)["checks"]}
    decode = checks["admission Deployment ms-pd-decode"]
    assert decode["status"] == "fail" and decode["observed"].startswith("PodSecurity: violates PodSecurity baseline:latest")
    assert "enforce=privileged" in decode["hint"]
    dry_runs = [q for p, q in fc.api.requests if p.endswith("/pods") and "dryRun=All" in q]
    assert len(dry_runs) == 2  # one per pod template (prefill, decode)
    # the bundle's own ServiceAccount does not exist before apply: the pods are judged under default
    assert all(w.own_account for w in workloads(router_plan()))
    r = cli("apply", "-y", env=V9)
    assert r.code == 1 and "nothing was applied" in r.err and "IPC_LOCK" in r.err and "--force" in r.err, r
    assert not [c for c in fc.commands("helmfile") if " apply" in c or " sync" in c], fc.commands("helmfile")
    # --force installs anyway, warning
    r = cli("apply", "-y", "--force", env=V9)
    assert r.code == 0 and "warning: applying with --force" in r.err, r


def test_doctor_without_the_right_to_create_pods_reads_the_podsecurity_label(cli, fake_cluster):
    fc = fake_cluster
    _namespace(fc, labels={"pod-security.kubernetes.io/enforce": "baseline"})
    fc.api.may_create_pods = False
    r = cli("doctor", "-o", "json", env=V9)
    checks = {c["name"]: c for c in json.loads(r.out)["checks"]}
    assert checks["admission dry-run"]["status"] == "warn" and "may not create pods" in checks["admission dry-run"]["observed"]
    assert checks["PodSecurity Deployment ms-pd-decode"]["status"] == "fail" and "IPC_LOCK" in checks["PodSecurity Deployment ms-pd-decode"]["observed"]
    assert r.code == 1
    assert not [q for p, q in fc.api.requests if p.endswith("/pods") and "dryRun" in q]


def test_doctor_and_apply_pass_an_admitting_cluster_and_a_quota_with_room(cli, fake_cluster):
    fc = fake_cluster
    _namespace(fc)
    fc.api.put("/api/v1/namespaces/llm-d-pd/resourcequotas", _quota("gpus", {"requests.nvidia.com/gpu": "8"}) | {"metadata": {"name": "gpus", "namespace": "llm-d-pd"}})
    r = cli("doctor", "-o", "json", env=V9)
    checks = {c["name"]: c["status"] for c in json.loads(r.out)["checks"]}
    assert checks["admission Deployment ms-pd-decode"] == "pass" and checks["ResourceQuota gpus"] == "pass", checks
    assert checks["capacity nvidia.com/gpu"] == "pass"
    # the stand-in API server has no CRDs: those are the only failures
    assert {n for n, s in checks.items() if s == "fail"} <= {n for n in checks if n.startswith("CRD ")}, checks
    assert cli("apply", "-y", env=V9).code == 0


def test_a_taint_the_pods_do_not_tolerate_stops_apply_and_the_toleration_lets_it_through(cli, fake_cluster):
    fc = fake_cluster
    _namespace(fc)
    for i in range(4):
        fc.api.put("/api/v1/nodes", gpu_node(f"gpu-node-{i}", taints=[OWN_TAINT]))
    r = cli("apply", "-y", env=V9)
    assert r.code == 1 and "--toleration dedicated=llm:NoSchedule" in r.err, r
    r = cli("apply", "-y", "--toleration", "dedicated=llm:NoSchedule", env=V9)
    assert r.code == 0, r


def test_toleration_flag_and_spec_file_reach_the_pods_and_the_bundle_command(cli, tmp_path):
    spec = tmp_path / "llmd.yaml"
    spec.write_text("tolerations: ['dedicated=llm:NoSchedule']\n")
    out = tmp_path / "b"
    r = cli("render", "-f", str(spec), "--toleration", "pool=gpu", "-o", str(out), env=V9)
    assert r.code == 0, r
    text = (out / "charts/ms/templates/deployment-ms-pd-decode.yaml").read_text()
    assert "key: dedicated" in text and "value: llm" in text and "key: pool" in text and "key: nvidia.com/gpu" in text
    readme = (out / "README.md").read_text()
    assert "--toleration pool=gpu" in readme and "--toleration dedicated" not in readme  # the spec file's come with -f
    r = cli("render", "--toleration", "a:Sometimes", env=V9)
    assert r.code == 2 and "NoSchedule, PreferNoSchedule, NoExecute" in r.err
