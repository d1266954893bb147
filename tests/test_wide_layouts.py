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
    from llmdctl.effects.health import FAIL, PASS, PENDING, Observed, evaluate_stack
    from llmdctl.effects.doctor import provider_crds

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


# --- status reads the layouts back from the live workloads ----------------------------------

STATUS_SHAPES = [
    dict(environments=["gb200"]),  # the GB200 guide: LWS groups of 2 pods, hybrid load balancing
    dict(environments=["nvidia-ib"], prefill="1xDP16EP", decode="2xDP16EP", model="deepseek-ai/DeepSeek-R1"),  # multi-port over 2 nodes
    dict(environments=["nvidia-ib"], prefill="2xDP8EP", decode="1xDP4TP2EP", model="deepseek-ai/DeepSeek-R1"),  # one node each: Deployments
    dict(environments=["nvidia-ib"], prefill="3xTP1", decode="1xTP4"),
    dict(environments=["nvidia-ib"], prefill="0", decode="2xTP2"),  # aggregated
]


def _as_installed(plan, namespace="llm-d-pd"):
    """The plan's model-server workloads as the API server returns them: with helm's ownership annotations."""
    out = []
    for o in plan.manifests["ms"]:
        if o["kind"] in ("Deployment", "LeaderWorkerSet"):
            o = json.loads(json.dumps(o))
            o["metadata"].update(namespace=namespace, annotations={"meta.helm.sh/release-name": f"ms-{plan.postfix}",
                                                                   "meta.helm.sh/release-namespace": namespace})
            out.append(o)
    return out


@pytest.mark.parametrize("kw", STATUS_SHAPES)
def test_status_reads_back_the_layout_each_role_was_rendered_with(kw):
    """What status shows is read from the objects alone (replicas, LWS size, vLLM flags, in args or in
    the launch script of an instance over nodes), and gives back what --prefill/--decode said."""
    from llmdctl.effects.stacks import attach_layouts, layout_text

    plan = plan_for(llmd_version=V9, **kw)
    stacks = [{"namespace": "llm-d-pd", "postfix": plan.postfix}]
    attach_layouts(stacks, _as_installed(plan))
    roles = stacks[0]["roles"]
    assert [r["role"] for r in roles] == [r for r in ("prefill", "decode") if r in plan.roles]
    for r in roles:
        rp = plan.roles[r["role"]]
        assert (r["layout"], r["podsPerInstance"], r["kind"], r["name"]) == (rp.layout, rp.workers, rp.workload, rp.deployment)
        assert (r["tensor"], r["data"], r["expert"]) == (rp.tensor, rp.data, rp.expert)
    want = ", ".join(f"{r} {plan.roles[r].layout}" + (f" ({plan.roles[r].workers} pods each)" if plan.roles[r].workers > 1 else "")
                     for r in ("prefill", "decode") if r in plan.roles)
    assert layout_text(roles) == want


def test_status_shows_the_gb200_example_and_keeps_stacks_and_releases_apart():
    from llmdctl.effects.stacks import attach_layouts, layout_text

    plan = plan_for(llmd_version=V9, environments=["gb200"])
    mine = _as_installed(plan)
    # the same postfix in another namespace, a Deployment of another release, one without a role
    other_ns = _as_installed(plan_for(llmd_version=V9, prefill="1xTP1", decode="1xTP1"), namespace="team-b")
    stranger = json.loads(json.dumps(mine[0]))
    stranger["metadata"]["annotations"]["meta.helm.sh/release-name"] = "mssql-pd"
    roleless = json.loads(json.dumps(mine[0]))
    roleless["spec"]["leaderWorkerTemplate"]["workerTemplate"]["metadata"]["labels"].pop("llm-d.ai/role")
    roleless["metadata"]["name"] = "ms-pd-extra"
    stacks = [{"namespace": "llm-d-pd", "postfix": "pd"}, {"namespace": "team-b", "postfix": "pd"}, {"namespace": "llm-d-pd", "postfix": "gone"}]
    attach_layouts(stacks, mine + other_ns + [stranger, roleless])
    assert layout_text(stacks[0]["roles"]) == "prefill 2xDP8EP (2 pods each), decode 1xDP8EP (2 pods each)"
    assert layout_text(stacks[1]["roles"]) == "prefill 1xTP1, decode 1xTP1"
    assert stacks[2]["roles"] == [] and layout_text(stacks[2]["roles"]) == "-"
    attach_layouts(stacks, None)  # the workloads could not be read: unknown, not empty
    assert stacks[0]["roles"] is None and layout_text(None) == "?"


@pytest.mark.parametrize("command,args,want", [
    # upstream's wide-EP script: DP computed by the shell, short flags, space-separated values
    (["/bin/sh", "-c"], ["vllm serve m -tp 2 --data-parallel-size $((LWS_GROUP_SIZE * DP_SIZE_LOCAL)) --data-parallel-size-local 4 --enable-expert-parallel"],
     ("1xDP8TP2EP", 2, 8, True)),
    (["vllm", "serve", "m"], ["--tensor-parallel-size", "4", "--port", "8000"], ("1xTP4", 4, 1, False)),
    (["vllm", "serve", "m"], ["--data-parallel-size=4", "--data-parallel-size-local=4", "--enable-expert-parallel"], ("1xDP4EP", 1, 4, True)),
    (["vllm", "serve", "m"], ["--tensor-parallel-size=$(TP)"], ("1x?", "?", 1, False)),  # not knowable from the object
    (["vllm", "serve", "m"], ["--enable-expert-parallel-not-a-flag"], ("1xTP1", 1, 1, False)),
])
def test_role_shape_reads_the_ways_vllm_flags_are_written(command, args, want):
    from llmdctl.effects.stacks import role_shape

    size = 2 if "LWS_GROUP_SIZE" in " ".join(args) else 1
    pod = {"metadata": {"labels": {"llm-d.ai/role": "decode"}},
           "spec": {"containers": [{"name": "routing-proxy", "args": ["--port=8000"]}, {"name": "vllm", "command": command, "args": args}]}}
    obj = ({"kind": "LeaderWorkerSet", "metadata": {"name": "x"}, "spec": {"replicas": 1, "leaderWorkerTemplate": {"size": size, "workerTemplate": pod}}}
           if size > 1 else {"kind": "Deployment", "metadata": {"name": "x"}, "spec": {"template": pod}})
    got = role_shape(obj)
    assert (got["layout"], got["tensor"], got["data"], got["expert"]) == want
    assert got["podsPerInstance"] == size and got["replicas"] == 1


def test_status_shows_dp_and_ep_of_applied_stacks_in_text_and_json(cli, fake_cluster):
    """Through the CLI: two stacks applied (the GB200 example, and a helmfile-era one whose
    modelservice Deployments carry only chart labels), then status reads their workloads back."""
    fc = fake_cluster
    fc.namespace("llm-d-pd")
    assert cli("apply", "-e", "gb200", "-y", env={"LLMD_VERSION": V9}).code == 0
    assert cli("apply", "--postfix", "old", "-y").code == 0
    r = cli("status")
    assert r.code == 0, r
    rows = {line.split()[1]: line for line in r.out.splitlines()[1:]}
    assert "prefill 2xDP8EP (2 pods each), decode 1xDP8EP (2 pods each)" in rows["pd"]
    assert "prefill 4xTP1, decode 1xTP4" in rows["old"]
    workload_calls = [c for c in fc.commands("kubectl") if "get deployments" in c]
    assert len(workload_calls) == 1 and "--namespace llm-d-pd" in workload_calls[0]  # one query for every stack
    decode = {s["postfix"]: s for s in json.loads(cli("status", "-o", "json").out)["stacks"]}["pd"]["roles"][1]
    assert decode == {"role": "decode", "kind": "LeaderWorkerSet", "name": "ms-pd-decode", "replicas": 1, "readyReplicas": 0,
                      "podsPerInstance": 2, "tensor": 1, "data": 8, "expert": True, "layout": "1xDP8EP"}
    # a cluster without the LeaderWorkerSet CRD: asked again for Deployments alone, not a failure
    fc.update(lambda s: s.update(noLeaderWorkerSetCRD=True))
    r = cli("status", "-o", "json")
    by = {s["postfix"]: s for s in json.loads(r.out)["stacks"]}
    assert by["pd"]["roles"] == [] and [x["layout"] for x in by["old"]["roles"]] == ["4xTP1", "1xTP4"] and "note:" not in r.err
    # a context that may not list Deployments: status still lists the stacks, and says why there is no layout
    fc.fail("kubectl", "get deployments", stderr='Error from server (Forbidden): deployments.apps is forbidden: User "dev" cannot list resource')
    r = cli("status")
    assert r.code == 0 and "deployed" in r.out and "note: the layouts are not shown" in r.err and "Forbidden" in r.err
    assert json.loads(cli("status", "-o", "json").out)["stacks"][0]["roles"] is None


@pytest.mark.parametrize("decode,wide", [("1xDP16EP", True), ("1xDP8EP", False), ("2xTP4", False)])
def test_an_instance_over_nodes_gets_the_rdma_nics_without_prefill_pods_too(decode, wide):
    """Found by the e2e LWS apply: an aggregated DP16 EP instance over two nodes passed V-42 (the
    profile has RDMA) but its pods asked for no NIC, so the all-to-all between the nodes had none."""
    plan = plan_for(llmd_version=V9, environments=["nvidia-ib"], prefill="0", decode=decode, model="deepseek-ai/DeepSeek-R1")
    rp = plan.roles["decode"]
    obj = _objects(plan, rp.workload)[rp.deployment]
    limits = _vllm(_pod(obj))["resources"]["limits"]
    assert ("rdma/ib" in limits) == wide and (rp.rdma is not None) == wide
    if wide:
        assert limits["rdma/ib"] == plan.hardware_facts["rdma"]["count"] == rp.rdma["count"]


def test_status_without_kubectl_lists_the_stacks_and_says_why_there_is_no_layout(cli, fake_cluster):
    fc = fake_cluster
    fc.namespace("llm-d-pd")
    assert cli("apply", "-y").code == 0
    (fc.bin / "kubectl").unlink()
    r = cli("status")
    assert r.code == 0 and " pd " in r.out and "note: the layouts are not shown" in r.err and "kubectl is not installed" in r.err, r
    assert [s["roles"] for s in json.loads(cli("status", "-o", "json").out)["stacks"]] == [None]


def test_gb200s_host_namespaces_are_not_called_debugging_only_but_anything_more_is():
    """V-33 flags host access as debugging-only; gb200's hostIPC/hostPID are what MNNVL cuda_ipc
    needs in production (the profile's hostAccess says why), so only what goes beyond them is flagged."""
    plan = plan_for(llmd_version=V9, environments=["gb200"])
    assert set(plan.hardware_facts["hostAccess"]) == {"hostIPC", "hostPID"}
    pod = _pod(_objects(plan, "LeaderWorkerSet")["ms-pd-decode"])
    assert pod["hostIPC"] is True and pod["hostPID"] is True
    assert not [f for f in plan.findings if f.rule == "V-33"]
    more = plan_for(llmd_version=V9, environments=["gb200"], sets=["ms.decode.extraConfig.hostNetwork=true"])
    assert [f.message for f in more.findings if f.rule == "V-33"] == ["decode runs with hostNetwork (development and debugging only)"]
    gh = plan_for(environments=["gh200"])  # the time-sliced GH200 set shares IPC for development only
    assert [f.message for f in gh.findings if f.rule == "V-33"] == [f"{r} runs with hostIPC (development and debugging only)" for r in ("prefill", "decode")]
