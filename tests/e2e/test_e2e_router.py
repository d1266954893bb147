"""The router generation (llm-d v0.9.0, issue 13) against the real control plane: the router chart
(the stand-in, or the real one with $LLMDCTL_E2E_CHARTS) and llmdctl's generated model-server
chart, both installed by real helm and helmfile.

Runs after the helmfile-era scenarios (file order), because it moves the session's InferencePool
CRDs to GAIE v1.5.0, the version llm-d v0.9.0 pins.
"""

from __future__ import annotations

import json

import pytest

from .controlplane import lws_crd, start_standin, stop
from .harness import CHARTS
from .test_e2e_lifecycle import SMALL, USER_OWNED, assert_pods_match_plan, left_only_user_objects, names_in, plan_of, pods, versions_in

pytestmark = pytest.mark.e2e

V = ("--llmd-version", "v0.9.0")


def router_plan(**kw):
    return plan_of(llmd_version="v0.9.0", prefill="1xTP1", decode="1xTP1", charts=str(CHARTS), **kw)



def test_standalone_stacks_side_by_side_then_clean_destroys(gaie_v15):
    e2e = gaie_v15
    cp, ns = e2e.cp, "llm-d-router"
    cp.namespace(ns)

    r = e2e.llmdctl("doctor", *V, "-n", ns, *SMALL, "-o", "json")
    checks = {c["name"]: c["status"] for c in r.json()["checks"]}
    assert r.code == 0, r
    assert "CRD inferencepools.inference.networking.k8s.io" in checks and not any("gateway" in n.lower() for n in checks), checks

    r = e2e.llmdctl("apply", "-y", *V, "-n", ns, *SMALL, "--wait", "--timeout", "3m", timeout=400)
    assert r.code == 0, r
    assert e2e.releases(ns) == {"router-pd": "deployed", "ms-pd": "deployed"}
    plan = router_plan(namespace=ns)
    assert_pods_match_plan(e2e, plan)
    objects = names_in(e2e, ns)
    assert {("InferencePool", "router-pd"), ("ConfigMap", "router-pd-envoy"), ("Service", "router-pd-epp"),
            ("Deployment", "ms-pd-prefill"), ("Deployment", "ms-pd-decode"), ("ServiceAccount", "ms-pd")} <= objects, objects
    assert ("ConfigMap", "envoy") not in objects  # upstream's fixed name would collide between stacks
    pool = cp.get_json("inferencepool", "router-pd", "-n", ns)
    assert pool["spec"]["selector"]["matchLabels"] == dict(plan.pool_selector)
    assert pool["spec"]["targetPorts"] == [{"number": 8000}]
    decode = cp.get_json("deployment", "ms-pd-decode", "-n", ns)["spec"]["template"]["spec"]
    sidecar = decode["initContainers"][0]
    assert (sidecar["name"], sidecar["restartPolicy"], sidecar["image"]) == ("routing-proxy", "Always", "ghcr.io/llm-d/llm-d-router-disagg-sidecar:v0.10.0")
    assert "--model-server-port=8200" in sidecar["args"] or "--vllm-port=8200" in sidecar["args"]

    r = e2e.llmdctl("verify", *V, "-n", ns, *SMALL, "-o", "json")
    verdict = {c["name"]: c["status"] for c in r.json()["checks"]}
    assert r.code == 0 and set(verdict.values()) == {"pass"}, verdict
    assert {"decode sidecar routing-proxy", "Service router-pd-epp", "InferencePool router-pd"} <= set(verdict), verdict

    # a second stack in the same namespace shares no object and no pod with the first
    before = versions_in(e2e, ns)
    r = e2e.llmdctl("apply", "-y", *V, "-n", ns, *SMALL, "--wait", "--timeout", "3m", env={"RELEASE_NAME_POSTFIX": "pd-2"}, timeout=400)
    assert r.code == 0, r
    plan2 = router_plan(namespace=ns, postfix="pd-2")
    assert_pods_match_plan(e2e, plan2)
    ours = {n for n in names_in(e2e, ns) - USER_OWNED if n in before}
    theirs = names_in(e2e, ns) - set(before)
    assert theirs and not ours & theirs
    sel = ",".join(f"{k}={v}" for k, v in plan.pool_selector.items())
    assert len(pods(e2e, ns, sel)) == 2, "pd's pool selector must not match pd-2's pods"
    stacks = e2e.llmdctl("status", "-n", ns, "-o", "json").json()["stacks"]
    assert [(s["postfix"], s["status"], s["generation"]) for s in stacks] == [("pd", "deployed", "router"), ("pd-2", "deployed", "router")]

    r = e2e.llmdctl("destroy", "-y", "-n", ns, "--postfix", "pd-2")
    assert r.code == 0, r
    e2e.wait_for("pd-2's objects to go", lambda: not any("pd-2" in n for _, n in names_in(e2e, ns)), timeout=60)
    after = versions_in(e2e, ns)
    assert after == before, {k: (before.get(k), after.get(k)) for k in set(before) | set(after) if before.get(k) != after.get(k)}

    r = e2e.llmdctl("destroy", "-y", "-n", ns)
    assert r.code == 0, r
    left_only_user_objects(e2e, ns)
    assert e2e.releases(ns) == {}


def test_gateway_mode_owns_its_gateway_and_the_chart_routes_to_the_pool(gaie_v15):
    e2e = gaie_v15
    ns = "llm-d-router-gw"
    e2e.cp.namespace(ns)
    r = e2e.llmdctl("apply", "-y", *V, "-e", "istio", "-n", ns, *SMALL, "--wait", "--timeout", "3m", timeout=400)
    assert r.code == 0, r
    assert e2e.releases(ns) == {"gateway-pd": "deployed", "router-pd": "deployed", "ms-pd": "deployed"}
    route = e2e.cp.get_json("httproute", "router-pd", "-n", ns)
    assert [p["name"] for p in route["spec"]["parentRefs"]] == ["gateway-pd"]
    assert route["spec"]["rules"][0]["backendRefs"][0]["name"] == "router-pd"
    r = e2e.llmdctl("verify", *V, "-e", "istio", "-n", ns, *SMALL, "-o", "json")
    verdict = {c["name"]: c["status"] for c in r.json()["checks"]}
    assert r.code == 0 and set(verdict.values()) == {"pass"}, verdict
    assert {"Gateway gateway-pd", "HTTPRoute router-pd"} <= set(verdict)
    assert ("DestinationRule", "router-pd-epp") in names_in(e2e, ns)
    r = e2e.llmdctl("destroy", "-y", "-n", ns)
    assert r.code == 0, r
    left_only_user_objects(e2e, ns)


def _dra_devices(e2e, nodes: list[str]) -> None:
    """What GKE's GPU DRA driver and DRANET publish, for kwok nodes: per node 8 GPUs and 8 RDMA NICs,
    GPU i and NIC i on PCIe root i. The scheduler allocates claims from these like from a real driver's."""
    classes = [{"apiVersion": "resource.k8s.io/v1", "kind": "DeviceClass", "metadata": {"name": d},
                "spec": {"selectors": [{"cel": {"expression": f'device.driver == "{d}"'}}]}} for d in ("gpu.nvidia.com", "mrdma.google.com")]
    slices = []
    for node in nodes:
        for driver, kind in (("gpu.nvidia.com", "gpu"), ("mrdma.google.com", "nic")):
            slices.append({
                "apiVersion": "resource.k8s.io/v1", "kind": "ResourceSlice", "metadata": {"name": f"{node}-{kind}"},
                "spec": {"driver": driver, "nodeName": node, "pool": {"name": node, "generation": 1, "resourceSliceCount": 1},
                         "devices": [{"name": f"{kind}-{i}", "attributes": {"resource.kubernetes.io/pcieRoot": {"string": f"pci-{i}"}}} for i in range(8)]},
            })
    e2e.cp.apply_objects(classes + slices)


def test_gke_dra_claims_are_allocated_by_the_real_scheduler_a_gpu_with_its_nic(gaie_v15):
    e2e = gaie_v15
    ns = "llm-d-router-dra"
    e2e.cp.namespace(ns)
    _dra_devices(e2e, [f"gpu-node-{i}" for i in range(3)])
    # standalone: the session has no GKE gateway controller; the hardware side is what is tested
    r = e2e.llmdctl("apply", "-y", *V, "-e", "gke-dra", "-n", ns, *SMALL, "--wait", "--timeout", "3m", timeout=400)
    assert r.code == 0, r
    plan = router_plan(namespace=ns, environments=["gke-dra"])
    by_role = {}
    for pod in pods(e2e, ns, ",".join(f"{k}={v}" for k, v in plan.pool_selector.items())):
        by_role.setdefault(pod["metadata"]["labels"]["llm-d.ai/role"], []).append(pod)
        assert pod["status"]["phase"] == "Running" and pod["spec"]["nodeName"].startswith("gpu-node-")
        vllm = pod["spec"]["containers"][0]
        assert "nvidia.com/gpu" not in (vllm["resources"].get("limits") or {}) and "rdma/ib" not in (vllm["resources"].get("limits") or {})
    assert sorted(by_role) == ["decode", "prefill"]
    claims = e2e.cp.get_json("resourceclaims", "-n", ns)["items"]
    assert len(claims) == 2  # one GPU per pod at TP1
    for claim in claims:
        results = claim["status"]["allocation"]["devices"]["results"]
        assert sorted(r["driver"] for r in results) == ["gpu.nvidia.com", "mrdma.google.com"]
        assert len({r["device"].split("-")[1] for r in results}) == 1  # the GPU and the NIC share a PCIe root
    r = e2e.llmdctl("verify", *V, "-e", "gke-dra", "-n", ns, *SMALL, "-o", "json")
    verdict = {c["name"]: c["status"] for c in r.json()["checks"]}
    assert r.code == 0 and set(verdict.values()) == {"pass"}, verdict
    assert e2e.llmdctl("destroy", "-y", "-n", ns).code == 0
    left_only_user_objects(e2e, ns)
    e2e.wait_for("the claims to be released", lambda: not e2e.cp.get_json("resourceclaims", "-n", ns)["items"], timeout=60)


@pytest.mark.parametrize("version,gateway,router_chart", [
    ("v0.8.0", "standalone", "llm-d-router-standalone-v0.9.0"),
    ("v0.7.0", "standalone", "standalone-v1.5.0"),
    ("v0.7.0", "istio", "inferencepool-v1.5.0"),
])
def test_older_router_releases_converge_and_destroy_clean(gaie_v15, version, gateway, router_chart):
    """v0.8.0 (llm-d's router chart v0.9.0) and v0.7.0 (GAIE's own charts, values under inferenceExtension.*)."""
    e2e = gaie_v15
    ns = f"llm-d-{version.replace('.', '')}-{gateway}"
    e2e.cp.namespace(ns)
    args = ("--llmd-version", version, "-e", gateway, "-n", ns, *SMALL)
    r = e2e.llmdctl("apply", "-y", *args, "--wait", "--timeout", "3m", timeout=400)
    assert r.code == 0, r
    listed = {x["name"]: x for x in json.loads(e2e.helm("list", "-n", ns, "-o", "json").stdout)}
    assert listed["router-pd"]["chart"] == router_chart and listed["ms-pd"]["status"] == "deployed"
    plan = plan_of(llmd_version=version, environments=[gateway], namespace=ns, prefill="1xTP1", decode="1xTP1", charts=str(CHARTS))
    assert_pods_match_plan(e2e, plan)
    pool = e2e.cp.get_json("inferencepool", "router-pd", "-n", ns)
    assert pool["spec"]["selector"]["matchLabels"] == dict(plan.pool_selector)
    r = e2e.llmdctl("verify", *args, "-o", "json")
    verdict = {c["name"]: c["status"] for c in r.json()["checks"]}
    assert r.code == 0 and set(verdict.values()) == {"pass"}, verdict
    stacks = e2e.llmdctl("status", "-n", ns, "-o", "json").json()["stacks"]
    assert [(s["status"], s["generation"]) for s in stacks] == [("deployed", "router")]
    assert e2e.llmdctl("destroy", "-y", "-n", ns).code == 0
    left_only_user_objects(e2e, ns)


def test_doctor_names_the_leaderworkerset_and_computedomain_crds_a_wide_gb200_stack_needs(gaie_v15):
    """Issue 10: instances over nodes are LeaderWorkerSets; on a cluster without the LWS controller
    (this one: no LWS CRD is installed) doctor fails on it before anything is applied."""
    e2e = gaie_v15
    ns = "llm-d-wide"
    e2e.cp.namespace(ns)
    r = e2e.llmdctl("doctor", *V, "-e", "gb200", "-n", ns, "-o", "json")
    checks = {c["name"]: c for c in r.json()["checks"]}
    assert r.code != 0, r
    lws, cd = checks["CRD leaderworkersets.leaderworkerset.x-k8s.io"], checks["CRD computedomains.resource.nvidia.com"]
    assert (lws["status"], lws["observed"]) == ("fail", "not installed") and "LeaderWorkerSet controller" in lws["hint"]
    assert cd["status"] == "fail" and "ComputeDomain" in cd["hint"]
    assert checks["CRD inferencepools.inference.networking.k8s.io"]["status"] == "pass"
    # single-node layouts (nvidia-ib, TP1) render Deployments: doctor does not ask for LWS
    r = e2e.llmdctl("doctor", *V, "-n", ns, *SMALL, "-o", "json")
    assert not any("leaderworkersets" in c["name"] for c in r.json()["checks"]), r


WIDE = ("-e", "nvidia-ib", "--prefill", "0", "--decode", "1xDP16EP", "--model", "deepseek-ai/DeepSeek-R1")


def test_a_wide_stack_applies_as_leaderworkersets_and_verify_counts_its_ranks(gaie_v15):
    """Issue 10: one instance of 16 data-parallel ranks with EP over two 8-GPU nodes, applied
    against the real LeaderWorkerSet schema (sigs.k8s.io/lws v0.9.0's CRD, unmodified). Before a
    controller answers, verify waits on the groups and status already shows the layout; then the LWS
    stand-in makes the group's pods, the real scheduler puts them on two nodes, and verify counts
    16 ranks in the group. destroy leaves nothing: the garbage collector takes the pods."""
    e2e = gaie_v15
    cp, ns = e2e.cp, "llm-d-wide-ep"
    cp.namespace(ns)
    crd = "leaderworkersets.leaderworkerset.x-k8s.io"
    cp.kubectl("apply", "--server-side", "-f", str(lws_crd()), timeout=120)
    cp.wait_established()
    controller = None
    try:
        r = e2e.llmdctl("doctor", *V, *WIDE, "-n", ns, "-o", "json")
        checks = {c["name"]: c for c in r.json()["checks"]}
        assert checks[f"CRD {crd}"]["status"] == "pass", checks[f"CRD {crd}"]

        r = e2e.llmdctl("apply", "-y", *V, *WIDE, "-n", ns, timeout=400)
        assert r.code == 0, r
        plan = plan_of(llmd_version="v0.9.0", charts=str(CHARTS), namespace=ns, environments=["nvidia-ib"], prefill="0", decode="1xDP16EP",
                       model="deepseek-ai/DeepSeek-R1")
        rendered = next(o for o in plan.manifests["ms"] if o["kind"] == "LeaderWorkerSet")
        live = cp.get_json(crd, "ms-pd-decode", "-n", ns)
        # the API server kept what llmdctl wrote: nothing pruned as unknown by the real schema
        for key in ("replicas", "startupPolicy"):
            assert live["spec"][key] == rendered["spec"][key], key
        lwt, want = live["spec"]["leaderWorkerTemplate"], rendered["spec"]["leaderWorkerTemplate"]
        assert (lwt["size"], lwt["restartPolicy"]) == (want["size"], want["restartPolicy"]) == (2, "RecreateGroupOnPodRestart")
        vllm = next(c for c in lwt["workerTemplate"]["spec"]["containers"] if c["name"] == "vllm")
        assert vllm == next(c for c in want["workerTemplate"]["spec"]["containers"] if c["name"] == "vllm") | {
            k: v for k, v in vllm.items() if k in ("imagePullPolicy", "terminationMessagePath", "terminationMessagePolicy")}

        r = e2e.llmdctl("verify", *V, *WIDE, "-n", ns, "-o", "json")
        verdict = {c["name"]: c for c in r.json()["checks"]}
        assert r.code != 0, r
        group = verdict["decode LeaderWorkerSet ms-pd-decode"]
        assert (group["status"], group["observed"]) == ("pending", "0/1 groups ready"), group
        assert verdict["decode DP ranks"]["observed"] == "no pods yet"
        stack = e2e.llmdctl("status", "-n", ns, "-o", "json").json()["stacks"][0]
        assert [(x["role"], x["layout"], x["kind"], x["podsPerInstance"], x["readyReplicas"]) for x in stack["roles"]] == \
            [("decode", "1xDP16EP", "LeaderWorkerSet", 2, 0)], stack
        assert "decode 1xDP16EP (2 pods each)" in e2e.llmdctl("status", "-n", ns).out

        controller = start_standin(cp, "lws_standin.py")
        r = e2e.llmdctl("verify", *V, *WIDE, "-n", ns, "--wait", "--timeout", "2m", "-o", "json", timeout=200)
        verdict = {c["name"]: c for c in r.json()["checks"]}
        assert r.code == 0 and {c["status"] for c in verdict.values()} == {"pass"}, {n: (c["status"], c["observed"]) for n, c in verdict.items() if c["status"] != "pass"}
        assert verdict["decode DP ranks"]["observed"] == "group 0: 2 pods, 16 ranks", verdict["decode DP ranks"]
        assert verdict["decode LeaderWorkerSet ms-pd-decode"]["observed"] == "1/1 groups ready"
        group_pods = pods(e2e, ns, "leaderworkerset.sigs.k8s.io/name=ms-pd-decode")
        assert len({p["spec"]["nodeName"] for p in group_pods}) == 2, "a group takes whole nodes: one pod per 8-GPU node"
        for p in group_pods:
            c = next(c for c in p["spec"]["containers"] if c["name"] == "vllm")
            assert c["resources"]["limits"]["nvidia.com/gpu"] == "8" and c["resources"]["limits"]["rdma/ib"]
            assert '--data-parallel-address="${LWS_LEADER_ADDRESS}"' in c["args"][0] and "--data-parallel-size=16" in c["args"][0]
        assert e2e.llmdctl("status", "-n", ns, "-o", "json").json()["stacks"][0]["roles"][0]["readyReplicas"] == 1

        r = e2e.llmdctl("destroy", "-y", "-n", ns)
        assert r.code == 0, r
        left_only_user_objects(e2e, ns)
        assert cp.get_json(crd, "-n", ns)["items"] == []
    finally:
        if controller is not None:
            stop(controller)
        cp.kubectl("delete", "crd", crd, "--ignore-not-found", timeout=120)  # the suites after this one run without LWS


def test_precise_routing_and_an_hpa_on_the_real_api_server_and_hpa_controller(gaie_v15):
    """Issue 10: the render Service, the KV-event ports and the HPA are objects the real API server
    accepts; with no metrics adapter (none here) doctor says so before apply, and after apply the
    real HPA controller cannot read the metrics, which verify reports with its reason."""
    e2e = gaie_v15
    cp, ns = e2e.cp, "llm-d-precise"
    cp.namespace(ns)
    extra = ("--prefix-cache", "precise", "--autoscale", "decode=1-2")
    r = e2e.llmdctl("doctor", *V, "-n", ns, *SMALL, *extra, "-o", "json")
    checks = {c["name"]: c for c in r.json()["checks"]}
    adapter = checks["APIService v1beta1.custom.metrics.k8s.io"]
    assert r.code != 0 and (adapter["status"], adapter["observed"]) == ("fail", "not registered"), r
    peak = checks["capacity nvidia.com/gpu at the HPA maximum"]  # the kwok nodes hold decode's maximum
    assert (peak["status"], peak["expected"]) == ("pass", "1 prefill x 1 + 2 decode x 1 = 3 nvidia.com/gpu"), peak

    r = e2e.llmdctl("apply", "-y", *V, "-n", ns, *SMALL, *extra, timeout=400)
    assert r.code == 0, r
    plan = router_plan(namespace=ns, prefix_cache="precise", autoscale=["decode=1-2"])
    render = cp.get_json("service", "ms-pd-render", "-n", ns)
    assert render["spec"]["selector"] == {**plan.pool_selector, "llm-d.ai/role": "decode"}
    hpa = cp.get_json("hpa", "ms-pd-decode", "-n", ns)
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (1, 2)
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "ms-pd-decode"}
    decode = cp.get_json("deployment", "ms-pd-decode", "-n", ns)
    assert decode["spec"]["replicas"] == 1  # the API server's default: the chart leaves the count to the HPA
    ports = {p["name"]: p["containerPort"] for c in decode["spec"]["template"]["spec"]["containers"] if c["name"] == "vllm" for p in c["ports"]}
    assert (ports["kv-events"], ports["kv-replay"]) == (5556, 5559)
    epp = json.loads(e2e.helm("get", "values", "router-pd", "-n", ns, "-o", "json").stdout)["router"]["epp"]
    assert "precise-prefix-cache-producer" in epp["pluginsCustomConfig"]["pd-config.yaml"] and epp["replicas"] == 1

    def hpa_verdict():
        doc = e2e.llmdctl("verify", *V, "-n", ns, *SMALL, *extra, "-o", "json").json()
        check = {c["name"]: c for c in doc["checks"]}["decode HPA ms-pd-decode"]
        return check if check["status"] == "fail" else None

    check = e2e.wait_for("the HPA controller to report its metrics", hpa_verdict, timeout=90, interval=3)
    assert "ScalingActive False" in check["observed"] and "FailedGet" in check["observed"], check
    assert "llmdctl doctor" in check["hint"]

    r = e2e.llmdctl("destroy", "-y", "-n", ns)
    assert r.code == 0, r
    left_only_user_objects(e2e, ns)


BBR = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "body-based-router"},
       "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "body-based-router"}},
                "template": {"metadata": {"labels": {"app": "body-based-router"}},
                             "spec": {"containers": [{"name": "bbr", "image": "registry.k8s.io/gateway-api-inference-extension/bbr:v1.5.0"}]}}}}


def test_two_models_share_one_gateway_routed_by_model_name(gaie_v15):
    """Issue 10 item 2: a second stack attaches to the first one's Gateway and routes by model name;
    doctor guards the sharing (body-based routing, the model taken, the listener's namespaces),
    status lists the models per Gateway, and the owner cannot be destroyed from under the other."""
    e2e = gaie_v15
    cp, ns, other_ns = e2e.cp, "llm-d-shared", "llm-d-shared-2"
    cp.namespace(ns)
    cp.namespace(other_ns)
    small = ("--model", "Qwen/Qwen2.5-0.5B-Instruct", "--model-size", "5Gi")
    second = (*V, "-e", "istio", "-n", ns, "--postfix", "pd-2", "--attach-gateway", "gateway-pd", *SMALL, *small)
    r = e2e.llmdctl("apply", "-y", *V, "-e", "istio", "--route-by-model", "-n", ns, *SMALL, "--wait", "--timeout", "3m", timeout=400)
    assert r.code == 0, r

    # before body-based routing runs on the Gateway, doctor says the model header would never be set
    r = e2e.llmdctl("doctor", *second, "-o", "json")
    checks = {c["name"]: c for c in r.json()["checks"]}
    bbr = checks["body-based routing on Gateway gateway-pd"]
    assert r.code == 1 and bbr["status"] == "fail" and "helm install body-based-router" in bbr["hint"], bbr
    assert checks[f"Gateway {ns}/gateway-pd"]["status"] == "pass", checks
    cp.kubectl("apply", "-n", ns, "-f", "-", input=json.dumps(BBR))
    r = e2e.llmdctl("doctor", *second, "-o", "json")
    checks = {c["name"]: c for c in r.json()["checks"]}
    assert r.code == 0, [c for c in checks.values() if c["status"] != "pass"]
    owner_model = plan_of(llmd_version="v0.9.0").model["name"]
    assert owner_model in checks["model Qwen/Qwen2.5-0.5B-Instruct on Gateway gateway-pd"]["observed"], checks

    r = e2e.llmdctl("apply", "-y", *second, "--wait", "--timeout", "3m", timeout=400)
    assert r.code == 0, r
    assert {k: v for k, v in e2e.releases(ns).items() if k.endswith("pd-2")} == {"router-pd-2": "deployed", "ms-pd-2": "deployed"}
    route = cp.get_json("httproute", "router-pd-2", "-n", ns)
    assert [p["name"] for p in route["spec"]["parentRefs"]] == ["gateway-pd"]
    assert route["spec"]["rules"][0]["matches"][0]["headers"] == [{"type": "Exact", "name": "X-Gateway-Model-Name", "value": "Qwen/Qwen2.5-0.5B-Instruct"}]
    r = e2e.llmdctl("verify", *second, "-o", "json")
    verdict = {c["name"]: c["status"] for c in r.json()["checks"]}
    assert r.code == 0 and set(verdict.values()) == {"pass"}, verdict
    assert {"Gateway gateway-pd", "HTTPRoute router-pd-2"} <= set(verdict)

    r = e2e.llmdctl("status", "-n", ns, "-o", "json")
    assert {s["postfix"]: s["status"] for s in r.json()["stacks"]} == {"pd": "deployed", "pd-2": "deployed"}, r.out
    served = {g["gateway"]: {e["model"]: e["route"] for e in g["routes"]} for g in r.json()["gateways"]}
    assert served == {f"{ns}/gateway-pd": {owner_model: f"{ns}/router-pd", "Qwen/Qwen2.5-0.5B-Instruct": f"{ns}/router-pd-2"}}, served
    r = e2e.llmdctl("status", "-n", ns)
    assert "gateway-pd" in r.out and "Qwen/Qwen2.5-0.5B-Instruct" in r.out, r.out

    # a third stack for a model already served there, and one from a namespace the listener does not admit
    r = e2e.llmdctl("doctor", *V, "-e", "istio", "-n", ns, "--postfix", "pd-3", "--attach-gateway", "gateway-pd", *SMALL, *small, "-o", "json")
    taken = next(c for c in r.json()["checks"] if c["name"].startswith("model "))
    assert r.code == 1 and taken["status"] == "fail" and f"{ns}/router-pd-2" in taken["observed"], taken
    r = e2e.llmdctl("doctor", *V, "-e", "istio", "-n", other_ns, "--attach-gateway", f"{ns}/gateway-pd", *SMALL, *small, "-o", "json")
    gw = next(c for c in r.json()["checks"] if c["name"] == f"Gateway {ns}/gateway-pd")
    assert r.code == 1 and gw["status"] == "fail" and "no listener admits" in gw["observed"], gw

    # the owner's Gateway stays while another stack routes through it
    r = e2e.llmdctl("destroy", "-y", "-n", ns)
    assert r.code != 0 and "router-pd-2" in r.err and "--postfix pd-2" in r.err, r
    assert e2e.releases(ns).get("gateway-pd") == "deployed"
    for postfix in ("pd-2", "pd"):
        r = e2e.llmdctl("destroy", "-y", "-n", ns, "--postfix", postfix)
        assert r.code == 0, r
    cp.kubectl("delete", "deployment", "-n", ns, "body-based-router")
    left_only_user_objects(e2e, ns)
