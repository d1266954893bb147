"""Wide layouts (issue 10, item 1): data and expert parallelism over nodes as LeaderWorkerSets.

The GB200 example of vLLM's P/D guide renders from `-e gb200` alone; property tests hold every
shape over 4- and 8-GPU nodes to the same arithmetic (ranks per pod x pods = DP, GPUs per pod =
local ranks x TP, whole nodes), the pool's selector and target ports; the rules refuse the shapes
that cannot run, and accept the ones next to them.
"""

from __future__ import annotations

import json

import pytest

from conftest import parse, plan_for
from llmdctl.base.errors import InputError, ValidationError
from llmdctl.effects.bundle import bundle_files
from llmdctl.inputs.spec import RoleLayout, parse_layout

V9 = "v0.9.0"


def _objects(plan, kind):
    return {o["metadata"]["name"]: o for o in plan.manifests["ms"] if o["kind"] == kind}


def _pod(workload):
    spec = workload["spec"]
    return (spec["leaderWorkerTemplate"]["workerTemplate"] if workload["kind"] == "LeaderWorkerSet" else spec["template"])["spec"]


def _vllm(pod):
    return next(c for c in pod["containers"] if c["name"] == "vllm")


def _flags(container) -> dict[str, str | None]:
    """vllm's flags, from the plain args or from the LWS launch script."""
    words = container["args"] if container["command"][0] == "vllm" else [
        w.strip().rstrip("\\").strip() for w in container["args"][0].splitlines()[2:]]
    out = {}
    for w in words:
        w = w.strip("'")
        flag, _, value = w.partition("=")
        out[flag] = value.strip('"') if value else None
    return out


@pytest.mark.parametrize("text,expected,canonical", [
    ("4xTP1", RoleLayout(4, 1), "4xTP1"),
    ("2", RoleLayout(2, 1), "2xTP1"),
    ("1xDP8EP", RoleLayout(1, 1, 8, True), "1xDP8EP"),
    ("2xdp4tp2ep", RoleLayout(2, 2, 4, True), "2xDP4TP2EP"),
    ("1xEPDP16", RoleLayout(1, 1, 16, True), "1xDP16EP"),
    ("1xTP8EP", RoleLayout(1, 8, 1, True), "1xTP8EP"),
    ("3 x DP8", RoleLayout(3, 1, 8, False), "3xDP8"),
])
def test_the_layout_grammar_reads_data_and_expert_parallel_shapes(text, expected, canonical):
    assert parse_layout(text, "--decode") == expected
    assert str(expected) == canonical and parse_layout(canonical, "--decode") == expected


@pytest.mark.parametrize("text,why", [
    ("1xDP8DP2", "expected REPLICASxTPN"), ("1xEPEP", "expected REPLICASxTPN"), ("1xDP", "expected REPLICASxTPN"),
    ("1xDP0", "at least 1"), ("1xDP8TP3", "power of two"), ("1xDP512", "256 ranks"), ("1x", "expected REPLICASxTPN"),
])
def test_the_layout_grammar_refuses_what_it_cannot_read(text, why):
    with pytest.raises(InputError, match=why):
        parse_layout(text, "--decode")


def test_the_gb200_guide_example_renders_from_one_command(cli, tmp_path):
    out = tmp_path / "b"
    r = cli("render", "-e", "gb200", "-o", str(out), env={"LLMD_VERSION": ""})
    assert r.code == 0, r
    plan = plan_for(llmd_version=V9, environments=["gb200"])
    assert (plan.roles["prefill"].layout, plan.roles["decode"].layout) == ("2xDP8EP", "1xDP8EP")
    lws = {n: parse((out / "charts/ms/templates" / f"leaderworkerset-{n}.yaml").read_text()) for n in ("ms-pd-prefill", "ms-pd-decode")}
    assert not list((out / "charts/ms/templates").glob("deployment-*"))
    # 2 prefill instances and 1 decode instance, each DP8 over two 4-GPU nodes: 6 pods, 24 GPUs
    assert [(w["spec"]["replicas"], w["spec"]["leaderWorkerTemplate"]["size"]) for w in lws.values()] == [(2, 2), (1, 2)]
    selector = plan.pool_selector
    for name, w in lws.items():
        role = name.rsplit("-", 1)[1]
        pod = _pod(w)
        labels = w["spec"]["leaderWorkerTemplate"]["workerTemplate"]["metadata"]["labels"]
        assert {k: labels[k] for k in selector} == selector and labels["llm-d.ai/role"] == role
        vllm = _vllm(pod)
        assert vllm["command"] == ["/bin/bash", "-c"]
        flags = _flags(vllm)
        assert flags["--data-parallel-size"] == "8" and flags["--data-parallel-size-local"] == "4"
        assert flags["--data-parallel-address"] == "${LWS_LEADER_ADDRESS}" and flags["--data-parallel-rpc-port"] == "5555"
        assert flags["--data-parallel-start-rank"] == "$(( ${LWS_WORKER_INDEX:-0} * DP_SIZE_LOCAL ))"
        assert "--enable-expert-parallel" in flags and "--data-parallel-hybrid-lb" in flags and "--data-parallel-multi-port-external-lb" not in flags
        assert json.loads(flags["--kv-transfer-config"]) == {"kv_connector": "NixlConnector", "kv_role": "kv_both", "kv_load_failure_policy": "fail"}
        env = {e["name"]: e.get("value") for e in vllm["env"]}
        assert env["DP_SIZE_LOCAL"] == "4" and env["TP_SIZE"] == "1"
        for key, value in {"NCCL_MNNVL_ENABLE": "1", "NCCL_CUMEM_ENABLE": "1", "NCCL_NVLS_ENABLE": "1", "NVSHMEM_IB_ENABLE_IBGDA": "1",
                           "UCX_CUDA_IPC_ENABLE_MNNVL": "y", "UCX_TLS": "cuda_ipc,rc,cuda_copy", "VLLM_SKIP_P2P_CHECK": "1"}.items():
            assert env[key] == value, key
        assert vllm["resources"]["limits"]["nvidia.com/gpu"] == 4 and vllm["resources"]["requests"]["nvidia.com/gpu"] == 4
        assert vllm["resources"]["claims"] == [{"name": "compute-domain-channel"}]
        assert pod["resourceClaims"] == [{"name": "compute-domain-channel", "resourceClaimTemplateName": "ms-pd-compute-domain"}]
        assert pod["hostIPC"] is True and pod["hostPID"] is True
        assert w["spec"]["leaderWorkerTemplate"]["restartPolicy"] == "RecreateGroupOnPodRestart"
        assert "HF_TOKEN" not in json.dumps(env) or env.get("HF_TOKEN") is None  # by Secret reference only
    (cd,) = _objects(plan, "ComputeDomain").values()
    assert cd["apiVersion"] == "resource.nvidia.com/v1beta1" and cd["spec"]["numNodes"] == 6
    assert cd["spec"]["channel"]["resourceClaimTemplate"]["name"] == "ms-pd-compute-domain"
    # hybrid load balancing: one API server per pod, so the pool targets the one service port
    assert plan.pool_values["targetPorts"] == [{"number": 8000}]
    readme = (out / "README.md").read_text()
    assert "LeaderWorkerSet `ms-pd-prefill`, 2 group(s) of 2 pods" in readme and "Deployment `ms-pd" not in readme
    assert "--prefill 2xDP8EP --decode 1xDP8EP" in readme and "DP8 EP over 2 pods" in readme
    # the same example spelled out gives the same bytes
    again = tmp_path / "c"
    assert cli("render", "-e", "gb200", "--prefill", "2xDP8EP", "--decode", "1xDP8EP", "--model", "nvidia/DeepSeek-R1-0528-FP4-v2",
               "-o", str(again), env={"LLMD_VERSION": ""}).code == 0
    assert {p.relative_to(again): p.read_bytes() for p in again.rglob("*") if p.is_file()} == \
        {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}


SHAPES = [(hw, role_shape) for hw in ("nvidia-ib", "gb200") for role_shape in
          ("1xDP4EP", "1xDP8EP", "2xDP16EP", "1xDP8TP2EP", "3xDP32EP", "1xDP2", "2xDP16")]


@pytest.mark.parametrize("hw,shape", SHAPES)
def test_every_wide_shape_fills_its_pods_and_the_pool_reaches_every_rank(hw, shape):
    plan = plan_for(llmd_version=V9, environments=[hw], prefill=shape, decode=shape, model="deepseek-ai/DeepSeek-R1")
    lay = parse_layout(shape, "--decode")
    per_node = plan.hardware_facts["gpusPerNode"]
    targets = [t["number"] for t in plan.pool_values["targetPorts"]]
    for role, rp in plan.roles.items():
        assert (rp.data, rp.tensor, rp.expert) == (lay.data, lay.tensor, lay.expert)
        assert rp.data_local * rp.workers == lay.data  # ranks per pod x pods = DP
        assert rp.gpus_per_pod == rp.data_local * rp.tensor <= per_node
        assert rp.workers == max(1, lay.data * lay.tensor // per_node)
        if rp.workers > 1:
            assert rp.gpus_per_pod == per_node  # a group takes whole nodes
        obj = _objects(plan, rp.workload)[rp.deployment]
        assert (obj["spec"]["replicas"], rp.workload) == (lay.replicas, "LeaderWorkerSet" if rp.workers > 1 else "Deployment")
        if rp.workers > 1:
            assert obj["spec"]["leaderWorkerTemplate"]["size"] == rp.workers
        pod = _pod(obj)
        vllm = _vllm(pod)
        flags = _flags(vllm)
        assert flags["--data-parallel-size"] == str(lay.data) and flags["--data-parallel-size-local"] == str(rp.data_local)
        assert ("--enable-expert-parallel" in flags) == lay.expert
        assert ("--data-parallel-start-rank" in flags) == (rp.workers > 1)
        assert vllm["resources"]["limits"]["nvidia.com/gpu"] == rp.gpus_per_pod
        labels = (obj["spec"]["leaderWorkerTemplate"]["workerTemplate"] if rp.workers > 1 else obj["spec"]["template"])["metadata"]["labels"]
        assert {k: labels[k] for k in plan.pool_selector} == plan.pool_selector
        multi_port = rp.workers > 1 and hw == "nvidia-ib"  # llm-d's wide-EP guide (H200/B200): a port per rank
        assert ("--data-parallel-multi-port-external-lb" in flags) == multi_port
        if multi_port:
            assert targets == [8000 + i for i in range(rp.data_local)] == list(rp.rank_ports)
            supervisor = next(p for p in vllm["ports"] if p["name"] == "supervisor")["containerPort"]
            assert flags["--data-parallel-supervisor-port"] == str(supervisor) == str(rp.vllm_port + rp.data_local)
            assert vllm["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "supervisor"}
            assert [p["containerPort"] for p in vllm["ports"] if p["name"].startswith("rank-")] == [rp.vllm_port + i for i in range(1, rp.data_local)]
            if role == "decode":
                sidecar = pod["initContainers"][0]
                assert "--data-parallel-size=%d" % rp.data_local in sidecar["args"]
                assert sorted(p["containerPort"] for p in sidecar["ports"]) == targets
        else:
            assert targets == [8000]


@pytest.mark.parametrize("kw,rule,text", [
    (dict(environments=["gb200"], model="Qwen/Qwen3-32B"), "V-41", "does not know as a mixture-of-experts model"),
    (dict(environments=["gke-no-rdma"], prefill="0", decode="1xDP16EP", model="deepseek-ai/DeepSeek-R1"), "V-42", "has no RDMA"),
    (dict(environments=["gb200"], overrides=("ms.decode.parallelism.workers=3",)), "V-40", "3 pod(s) x 4 local ranks = 12 ranks"),
    (dict(environments=["gb200"], overrides=("ms.decode.parallelism.dataLocal=2", "ms.decode.parallelism.workers=4")), "V-40", "must fill them"),
    (dict(environments=["nvidia-ib"], prefill="1xTP8", decode="1xDP16EP", model="deepseek-ai/DeepSeek-R1"), "V-43", "do not serve them"),
    (dict(environments=["nvidia-ib"], prefill="1xDP16EP", decode="1xDP16EP", model="deepseek-ai/DeepSeek-R1",
          overrides=("router.router.modelServers.targetPorts=[{number: 8000}]",)), "V-43", "would get no requests"),
    (dict(environments=["gb200"], decode="1xTP8"), "V-17", "data-parallel shape"),
])
def test_rules_refuse_wide_shapes_that_cannot_run(kw, rule, text):
    overrides = kw.pop("overrides", ())
    with pytest.raises(ValidationError) as exc:
        plan_for(llmd_version=V9, sets=list(overrides), **kw)
    found = [f for f in exc.value.findings if f.rule == rule]
    assert found and any(text in f.message for f in found), exc.value.findings


@pytest.mark.parametrize("kw", [
    dict(environments=["gb200"], model="Qwen/Qwen3-30B-A3B"),  # MoE: EP is fine
    dict(environments=["gb200"], model="Qwen/Qwen3-32B", prefill="2xDP8", decode="1xDP8"),  # dense without EP
    dict(environments=["nvidia-ib"], prefill="0", decode="1xDP16EP", model="deepseek-ai/DeepSeek-R1"),  # RDMA between the nodes
    dict(environments=["nvidia-ib"], prefill="1xDP16EP", decode="1xDP16EP", model="deepseek-ai/DeepSeek-R1"),  # same ranks per pod
    dict(environments=["gke-no-rdma"], prefill="0", decode="1xDP8EP", model="deepseek-ai/DeepSeek-R1"),  # one node: no fabric needed
])
def test_the_shapes_next_to_the_refused_ones_are_accepted(kw):
    plan = plan_for(llmd_version=V9, **kw)
    assert not [f for f in plan.findings if f.rule in ("V-17", "V-40", "V-41", "V-42", "V-43")]


@pytest.mark.parametrize("kw,message", [
    (dict(environments=["gb200"], decode="1xDP6EP"), "DP6 x TP1 does not fill whole nodes of 4 GPUs"),
    (dict(environments=["nvidia-ib"], decode="1xDP4TP16EP", model="deepseek-ai/DeepSeek-R1"), "TP16 is more than the 8 GPUs of one node"),
    (dict(llmd_version="v0.6.0", environments=["nvidia-ib"], decode="1xDP16EP", model="deepseek-ai/DeepSeek-R1"), "needs a LeaderWorkerSet"),
    (dict(llmd_version="v0.6.0", environments=["gb200"]), "cannot be expressed for llm-d v0.6.0"),
])
def test_shapes_no_node_can_hold_are_refused_before_rendering(kw, message):
    with pytest.raises(InputError, match=message.replace("(", r"\(")):
        plan_for(**{"llmd_version": V9, **kw})


def test_a_single_node_dp_role_stays_a_deployment_and_old_layouts_are_unchanged():
    plan = plan_for(llmd_version=V9, environments=["nvidia-ib"], prefill="0", decode="2xDP4EP", model="deepseek-ai/DeepSeek-R1")
    dep = _objects(plan, "Deployment")["ms-pd-decode"]
    flags = _flags(_vllm(_pod(dep)))
    assert dep["spec"]["replicas"] == 2 and flags["--data-parallel-size"] == "4" and "--data-parallel-address" not in flags
    plain = plan_for(llmd_version=V9)
    assert not any(a.startswith("--data-parallel") for a in _vllm(_pod(_objects(plain, "Deployment")["ms-pd-decode"]))["args"])
    assert "LeaderWorkerSet" not in json.dumps(bundle_files(plain))


def test_verify_counts_groups_and_ranks_and_doctor_asks_for_the_lws_and_computedomain_crds():
    from llmdctl.effects.health import FAIL, PASS, PENDING, Observed, evaluate_stack, provider_crds

    plan = plan_for(llmd_version=V9, environments=["gb200"])
    assert provider_crds(plan)[-2:] == ["leaderworkersets.leaderworkerset.x-k8s.io", "computedomains.resource.nvidia.com"]
    assert "leaderworkersets.leaderworkerset.x-k8s.io" not in provider_crds(plan_for(llmd_version=V9))

    lws = {n: {**o, "status": {"readyReplicas": o["spec"]["replicas"]}} for n, o in _objects(plan, "LeaderWorkerSet").items()}

    def pod(role, group, worker, local="4"):
        w = lws[f"ms-pd-{role}"]
        tpl = w["spec"]["leaderWorkerTemplate"]["workerTemplate"]
        vllm = {**_vllm(tpl["spec"]), "env": [e if e["name"] != "DP_SIZE_LOCAL" else {"name": "DP_SIZE_LOCAL", "value": local} for e in _vllm(tpl["spec"])["env"]]}
        return {"metadata": {"name": f"ms-pd-{role}-{group}" + (f"-{worker}" if worker else ""),
                             "labels": {**tpl["metadata"]["labels"], "leaderworkerset.sigs.k8s.io/group-index": str(group)}},
                "spec": {**tpl["spec"], "containers": [vllm]},
                "status": {"conditions": [{"type": "Ready", "status": "True"}]}}

    pods = [pod("prefill", g, w) for g in (0, 1) for w in (0, 1)] + [pod("decode", 0, w) for w in (0, 1)]
    checks = {c.name: c for c in evaluate_stack(plan, Observed([], {}, pods, None, None, None, {}, None, lws))}
    assert checks["prefill LeaderWorkerSet ms-pd-prefill"].status == PASS
    assert checks["prefill DP ranks"].status == PASS and "group 0: 2 pods, 8 ranks; group 1: 2 pods, 8 ranks" == checks["prefill DP ranks"].observed
    assert checks["decode pods"].status == PASS and checks["decode pods"].expected.startswith("2 pods with the pool")
    # a group one pod short is still starting; a pod with the wrong local ranks is wrong
    short = [p for p in pods if p["metadata"]["name"] != "ms-pd-decode-0-1"]
    assert {c.name: c for c in evaluate_stack(plan, Observed([], {}, short, None, None, None, {}, None, lws))}["decode DP ranks"].status == PENDING
    bad = pods[:-1] + [pod("decode", 0, 1, local="2")]
    got = {c.name: c for c in evaluate_stack(plan, Observed([], {}, bad, None, None, None, {}, None, lws))}["decode DP ranks"]
    assert got.status == FAIL and "6 ranks" in got.observed
    scaled = {**lws, "ms-pd-decode": {**lws["ms-pd-decode"], "spec": {**lws["ms-pd-decode"]["spec"], "replicas": 3}}}
    got = {c.name: c for c in evaluate_stack(plan, Observed([], {}, pods, None, None, None, {}, None, scaled))}["decode LeaderWorkerSet ms-pd-decode"]
    assert got.status == FAIL and "spec.replicas 3" in got.observed
    missing = {c.name: c for c in evaluate_stack(plan, Observed([], {}, [], None, None, None, {}, None, {}))}
    assert missing["prefill LeaderWorkerSet ms-pd-prefill"].status == FAIL and "LeaderWorkerSet controller" in missing["prefill LeaderWorkerSet ms-pd-prefill"].hint


def test_validate_says_dp_and_ep_per_role(cli):
    r = cli("validate", "-e", "gb200", env={"LLMD_VERSION": ""})
    assert r.code == 0 and "prefill 2xDP8EP, decode 1xDP8EP" in r.out, r
    r = cli("validate", "-e", "gb200", "-o", "json", env={"LLMD_VERSION": ""})
    roles = json.loads(r.out)["stack"]["roles"]
    assert roles["decode"] == {"layout": "1xDP8EP", "workload": "LeaderWorkerSet", "replicas": 1, "podsPerReplica": 2, "gpusPerPod": 4,
                               "tensorParallel": 1, "dataParallel": 8, "dataParallelPerPod": 4, "expertParallel": True, "autoscale": None}
    assert roles["prefill"]["replicas"] == 2


def test_apply_sees_a_scaled_or_reimaged_leaderworkerset_as_drift():
    """helm-diff compares with the last release: a `kubectl scale lws` or an edited worker image
    is only seen by reading the live LeaderWorkerSets, which apply asks for only when the plan has them."""
    from llmdctl.effects.lifecycle import deployments_query, live_drift

    plan = plan_for(llmd_version=V9, environments=["gb200"])
    argv = deployments_query(plan).args
    assert "leaderworkerset.leaderworkerset.x-k8s.io/ms-pd-decode" in argv and "leaderworkerset.leaderworkerset.x-k8s.io/ms-pd-prefill" in argv
    assert "leaderworkerset" not in " ".join(deployments_query(plan_for(llmd_version=V9)).args)
    lws = _objects(plan, "LeaderWorkerSet")
    live = {"kind": "List", "items": [dict(o) for o in lws.values()]}
    assert live_drift(plan, json.dumps(live)) == []
    scaled = json.loads(json.dumps(live))
    scaled["items"][0]["spec"]["replicas"] = 5
    name = scaled["items"][0]["metadata"]["name"]
    tpl = scaled["items"][1]["spec"]["leaderWorkerTemplate"]["workerTemplate"]["spec"]
    next(c for c in tpl["containers"] if c["name"] == "vllm")["image"] = "vllm/other:1"
    drift = live_drift(plan, json.dumps(scaled))
    assert f"{name} has 5 replicas, the plan {plan.roles[name.rsplit('-', 1)[1]].replicas}" in drift
    assert any("runs vllm/other:1" in d for d in drift), drift
