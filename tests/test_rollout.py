"""issue 26 (first part): the rollout plan of a change to a running stack, chosen from the free
GPUs by replaying the Deployment controller's rollout; the strategy lands in the generated Deployments."""

from __future__ import annotations

import copy

import pytest

from conftest import gpu_node, parse, plan_for
from llmdctl.base.errors import InputError
from llmdctl.effects.admission import Workload, workloads_of
from llmdctl.effects.rollout import choose, template_changes


def router_plan(**kw):
    return plan_for(llmd_version="v0.9.0", prefill="1xTP1", decode="1xTP4", **kw)


def live_from(plan, image=None):
    """The stack as it runs: its Deployments (as the API returns them) and its pods on nodes."""
    deployments, pods = {}, []
    for obj in plan.manifests["ms"]:
        if obj.get("kind") != "Deployment":
            continue
        obj = copy.deepcopy(obj)
        if image:
            obj["spec"]["template"]["spec"]["containers"][0]["image"] = image
        deployments[obj["metadata"]["name"]] = obj
    return deployments


def running_pods(plan, placement: dict[str, str]) -> list[dict]:
    out = []
    for obj in plan.manifests["ms"]:
        if obj.get("kind") == "Deployment":
            tpl = obj["spec"]["template"]
            role = tpl["metadata"]["labels"]["llm-d.ai/role"]
            out.append({"metadata": {"labels": tpl["metadata"]["labels"]}, "spec": {**tpl["spec"], "nodeName": placement[role]},
                        "status": {"phase": "Running"}})
    return out


def filler(node: str, gpus: int) -> dict:
    return {"metadata": {"labels": {"app": "other-team"}}, "spec": {"nodeName": node, "containers": [
        {"name": "x", "resources": {"limits": {"nvidia.com/gpu": str(gpus)}}}]}, "status": {"phase": "Running"}}


def test_a_template_change_is_named_and_server_defaults_are_not():
    old = {"metadata": {"labels": {"a": "1"}}, "spec": {"containers": [{"name": "vllm", "image": "v:1", "args": ["--x=1"],
           "env": [{"name": "IP", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "status.podIP"}}}],
           "resources": {"limits": {"memory": "64Gi"}}, "terminationMessagePath": "/dev/termination-log"}]}}
    new = {"metadata": {"labels": {"a": "1"}}, "spec": {"containers": [{"name": "vllm", "image": "v:1", "args": ["--x=1"],
           "env": [{"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}], "resources": {"limits": {"memory": "65536Mi"}}}]}}
    assert template_changes(old, new) == []
    new["spec"]["containers"][0]["image"] = "v:2"
    new["spec"]["containers"][0]["args"] = ["--x=2"]
    assert template_changes(old, new) == ["vllm image v:1 -> v:2", "vllm args without --x=1, with --x=2"]


def test_an_image_bump_on_a_full_cluster_rolls_in_place_and_surges_where_there_is_room():
    plan = router_plan()
    live = live_from(plan, image="old:1")
    ws = workloads_of({"ms": list(plan.manifests["ms"])})
    nodes = [gpu_node("a"), gpu_node("b")]
    running = running_pods(plan, {"prefill": "a", "decode": "a"}) + [filler("a", 3), filler("b", 8)]  # 16 of 16 GPUs used
    rollout = choose(plan, live, ws, nodes, running)
    by_role = {r.role: r for r in rollout.roles}
    assert by_role["decode"].strategy == "in-place" and by_role["decode"].replaced, by_role
    assert "vllm image old:1 -> " in by_role["decode"].changes[0]
    assert "capacity is down while it restarts" in by_role["decode"].why
    # with five GPUs free on b the same change surges (prefill's new pod takes one, decode's four)
    spare = running_pods(plan, {"prefill": "a", "decode": "a"}) + [filler("a", 3), filler("b", 3)]
    by_role = {r.role: r for r in choose(plan, live, ws, nodes, spare).roles}
    assert by_role["decode"].strategy == "surge" and by_role["prefill"].strategy == "surge", by_role


def test_a_bigger_pod_that_cannot_fit_even_in_place_is_refused_and_recreate_named_when_it_would():
    old = router_plan()
    new = plan_for(llmd_version="v0.9.0", prefill="1xTP1", decode="1xTP8")
    live = live_from(old)
    ws = workloads_of({"ms": list(new.manifests["ms"])})
    nodes = [gpu_node("a"), gpu_node("b")]
    running = running_pods(old, {"prefill": "b", "decode": "a"}) + [filler("a", 4), filler("b", 7)]
    by_role = {r.role: r for r in choose(new, live, ws, nodes, running).roles}
    assert by_role["decode"].strategy == "refused" and "8 nvidia.com/gpu" in by_role["decode"].why, by_role["decode"]
    # the old decode pod's 4 GPUs + 4 free on node a: replacing it in place fits
    running = running_pods(old, {"prefill": "b", "decode": "a"}) + [filler("b", 7)]
    by_role = {r.role: r for r in choose(new, live, ws, nodes, running + [filler("a", 0)]).roles}
    assert by_role["decode"].strategy in ("surge", "in-place")


def test_rollout_flag_forces_and_is_checked(cli, tmp_path):
    r = cli("render", "--rollout", "recreate", "-o", str(tmp_path / "b"), env={"LLMD_VERSION": "v0.9.0"})
    assert r.code == 0, r
    decode = parse((tmp_path / "b/charts/ms/templates/deployment-ms-pd-decode.yaml").read_text())
    assert decode["spec"]["strategy"] == {"type": "Recreate"}
    assert "--rollout recreate" in (tmp_path / "b/README.md").read_text()
    r = cli("render", "-o", str(tmp_path / "c"), env={"LLMD_VERSION": "v0.9.0"})
    decode = parse((tmp_path / "c/charts/ms/templates/deployment-ms-pd-decode.yaml").read_text())
    # nothing known of the cluster: in place never stalls on a full one
    assert decode["spec"]["strategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}}
    assert cli("render", "--rollout", "sideways", env={"LLMD_VERSION": "v0.9.0"}).code == 2


def test_a_leaderworkerset_rolls_one_group_at_a_time():
    plan = plan_for(llmd_version="v0.9.0", environments=("gb200",))
    lws = [o for o in plan.manifests["ms"] if o.get("kind") == "LeaderWorkerSet"]
    assert lws and all(o["spec"]["rolloutStrategy"] == {"type": "RollingUpdate", "rollingUpdateConfiguration": {"maxSurge": 0, "maxUnavailable": 1}}
                       for o in lws)


def test_a_strategy_override_that_is_no_strategy_is_refused():
    with pytest.raises(InputError, match="ms.decode.strategy"):
        plan_for(llmd_version="v0.9.0", sets=["ms.decode.strategy.type=Sideways"])


def test_diff_reads_the_rollout_plan_from_the_cluster_without_helm_diff(cli, kube_api, fake_cluster, monkeypatch):
    """issue 26: `llmdctl diff` compares the plan with what runs, through the API; -o json for scripts."""
    monkeypatch.setenv("KUBECONFIG", str(kube_api.kubeconfig))
    fake_cluster.namespace("llm-d-pd", context="fake")
    fake_cluster.update(lambda s: s.update(plugins={}))  # no helm-diff
    plan = plan_for(llmd_version="v0.9.0")
    for name, obj in live_from(plan, image="old:1").items():
        kube_api.put("/apis/apps/v1/namespaces/llm-d-pd/deployments", obj)
    for i in range(2):
        kube_api.put("/api/v1/nodes", gpu_node(f"gpu-node-{i}"))
    r = cli("diff", "-o", "json", env={"LLMD_VERSION": "v0.9.0"})
    assert r.code == 0, r
    import json
    doc = json.loads(r.out)
    roles = {x["role"]: x for x in doc["rollout"]["roles"]}
    assert doc["rollout"]["live"] and roles["decode"]["podsReplaced"] and roles["decode"]["strategy"] == "surge", roles
    assert roles["decode"]["changes"][0].startswith("vllm image old:1 -> ")
    r = cli("diff", env={"LLMD_VERSION": "v0.9.0"})
    assert r.code == 0 and "rollout: decode Deployment ms-pd-decode: vllm image old:1" in r.out and "helm-diff plugin" in r.err, r


def _pod(name, image, gpus, *, ready=True, unschedulable=None):
    conditions = [{"type": "Ready", "status": "True" if ready else "False"}]
    if unschedulable:
        conditions.append({"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": unschedulable})
    return {"metadata": {"name": name, "labels": {"llm-d.ai/role": "decode"}},
            "spec": {"containers": [{"name": "vllm", "image": image, "resources": {"limits": {"nvidia.com/gpu": str(gpus)}}}]},
            "status": {"phase": "Running" if ready else "Pending", "conditions": conditions}}


def test_verify_tells_a_rollout_in_progress_and_a_stalled_one_from_drift():
    from llmdctl.effects.health import _pods_check, Observed
    plan = plan_for(llmd_version="v0.9.0", prefill="1xTP1", decode="1xTP4")
    role = plan.roles["decode"]
    dep = next(o for o in plan.manifests["ms"] if o["metadata"]["name"] == role.deployment)
    dep = {**copy.deepcopy(dep), "status": {}}
    old = _pod("d-old", "old:1", 4)

    def check(pods, deployment=dep):
        return _pods_check(plan, role, Observed([], {role.deployment: deployment}, pods, None, None, None))
    # the template is the plan, one old pod still runs: a rollout, not drift
    c = check([old])
    assert c.status == "pending" and c.observed.startswith("rolling out: 0 of 1") and not c.stalled, c
    # the new pod cannot be scheduled: stalled, with the cause; surge-style strategy -> apply again picks in place
    surge = copy.deepcopy(dep)
    surge["spec"]["strategy"] = {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}
    c = check([old, _pod("d-new", role.image, 4, ready=False, unschedulable="0/2 nodes are available: 2 Insufficient nvidia.com/gpu.")], surge)
    assert c.status == "fail" and c.stalled and "Insufficient nvidia.com/gpu" in c.observed and "in place" in c.hint, c
    # the template itself differs from the plan: that is drift, and apply converges
    drifted = copy.deepcopy(dep)
    drifted["spec"]["template"]["spec"]["containers"][0]["image"] = "old:1"
    c = check([old], drifted)
    assert c.status == "fail" and not c.stalled and "apply converges" in c.hint, c


def test_a_read_the_server_asks_to_retry_is_retried(kube_api):
    """A CRD just established answers 429 "storage is (re)initializing" for a moment (seen in the
    e2e run right after the LeaderWorkerSet CRD was installed): reads retry as client-go does."""
    from llmdctl.effects.kube import LEADERWORKERSETS, Kube, KubeError
    kube_api.busy["/apis/leaderworkerset.x-k8s.io"] = 2
    assert Kube().list(LEADERWORKERSETS, "llm-d-pd") == []
    kube_api.busy["/apis/leaderworkerset.x-k8s.io"] = 9
    with pytest.raises(KubeError) as err:
        Kube().list(LEADERWORKERSETS, "llm-d-pd")
    assert err.value.status == 429


def test_the_helmfile_era_rolls_with_kubernetes_defaults_and_says_so():
    with pytest.raises(InputError, match="no strategy key"):
        plan_for(llmd_version="v0.6.0", rollout="in-place")
    plan = plan_for(llmd_version="v0.6.0", prefill="1xTP1", decode="1xTP4")
    assert plan.generation != "router"
    role = plan.roles["decode"]
    template = {"metadata": {"labels": {"llm-d.ai/role": "decode", **dict(plan.pool_selector)}},
                "spec": {"containers": [{"name": "vllm", "image": "new:2", "resources": {"limits": {"nvidia.com/gpu": "4"}}}]}}
    live = {role.deployment: {"kind": "Deployment", "spec": {"replicas": 1, "template": {**template, "spec": {"containers": [
        {"name": "vllm", "image": "old:1", "resources": {"limits": {"nvidia.com/gpu": "4"}}}]}}}}}
    ws = [Workload("Deployment", role.deployment, "ms", 1, template)]
    running = [{"metadata": template["metadata"], "spec": {**live[role.deployment]["spec"]["template"]["spec"], "nodeName": "a"},
                "status": {"phase": "Running"}}, filler("a", 4), filler("b", 8)]
    [decode] = [r for r in choose(plan, live, ws, [gpu_node("a"), gpu_node("b")], running).roles if r.role == "decode"]
    # no room for the default rollout's new pod, and the chart cannot roll in place: refused, saying why
    assert decode.strategy == "refused" and "cannot roll in place" in decode.why, decode
