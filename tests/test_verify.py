"""verify, verify --wait, --smoke and doctor against a local fake Kubernetes API server."""

from __future__ import annotations

import json
import sys
import threading
import time

import pytest

from conftest import deploy, gpu_node, plan_for
from kube_api import FakeOpenAI, label_match
from llmdctl.effects.health import Check
from llmdctl.effects.placement import evaluate_capacity
from llmdctl.effects.smoke import metric_sum
from llmdctl.effects.diagnosis import pod_summary

NS = "llm-d-pd"


def verify_json(cli, *args):
    r = cli("verify", "-o", "json", *args)
    return r, json.loads(r.out) if r.out.strip() else None


def by_name(doc) -> dict:
    return {c["name"]: c for c in doc["checks"]}


# --- healthy -------------------------------------------------------------------------------


def test_healthy_4p1d_stack_passes_every_check_with_few_api_calls(cli, kube_api):
    deploy(kube_api)
    r, doc = verify_json(cli)
    assert r.code == 0, r
    assert doc["healthy"] is True
    checks = by_name(doc)
    assert [c["status"] for c in doc["checks"]] == ["pass"] * 11
    assert set(checks) == {
        "release infra-pd", "release gaie-pd", "release ms-pd",
        "prefill Deployment ms-pd-llm-d-modelservice-prefill", "prefill pods",
        "decode Deployment ms-pd-llm-d-modelservice-decode", "decode pods",
        "scheduler (EPP) Deployment gaie-pd-epp", "InferencePool gaie-pd",
        "Gateway infra-pd-inference-gateway", "HTTPRoute llm-d-pd",
    }
    assert checks["prefill Deployment ms-pd-llm-d-modelservice-prefill"]["observed"] == "4/4 ready"
    assert "nvidia.com/gpu: 4, rdma/ib: 1" in checks["decode pods"]["expected"]
    assert checks["InferencePool gaie-pd"]["observed"].startswith("prefill 4 ready, decode 1 ready")
    # a fixed, small number of API calls: lists by selector, never one call per pod
    assert doc["apiCalls"] == 6
    calls = kube_api.api_calls()
    assert len(calls) == 6
    assert not any("/pods/" in path for path, _ in calls)
    pod_list = [q for p, q in calls if p.endswith("/pods")][0]
    assert "labelSelector=" in pod_list and "instance%3Dllm-d-pd" in pod_list
    # (wall time is a benchmark figure: bench/bench.py)


def test_text_output_is_a_table_and_exit_0(cli, kube_api):
    deploy(kube_api, "-e", "amd")
    r = cli("verify", "-e", "amd")
    assert r.code == 0, r
    assert "release ms-pd" in r.out and "amd.com/gpu: 8" in r.out
    assert r.err.strip().startswith("healthy (11 checks, 6 API calls")


def test_stacks_side_by_side_are_verified_separately(cli, kube_api):
    deploy(kube_api)
    deploy(kube_api, "--postfix", "pd-2", "--prefill", "2xTP2", "--decode", "1xTP4")
    r, doc = verify_json(cli, "--postfix", "pd-2", "--prefill", "2xTP2", "--decode", "1xTP4")
    assert r.code == 0, r
    assert by_name(doc)["prefill pods"]["observed"].startswith("2/2 ready")
    assert by_name(doc)["InferencePool gaie-pd-2"]["observed"].startswith("prefill 2 ready, decode 1 ready")
    # verifying pd with pd-2's layout fails: the plan is the expectation
    r, doc = verify_json(cli, "--prefill", "2xTP1")
    assert r.code == 1
    assert by_name(doc)["prefill Deployment ms-pd-llm-d-modelservice-prefill"]["status"] == "fail"


def test_aggregated_stack_has_no_prefill_checks(cli, kube_api):
    deploy(kube_api, "--prefill", "0")
    r, doc = verify_json(cli, "--prefill", "0")
    assert r.code == 0, r
    assert not any("prefill" in c["name"] for c in doc["checks"])


# --- failures and diagnostics ----------------------------------------------------------------


def test_missing_hf_secret_fails_on_the_pods_with_the_create_command(cli, kube_api):
    st = deploy(kube_api, hf_secret=False)
    for i in range(4):
        st.set_waiting("prefill", i, "vllm", "CreateContainerConfigError", 'secret "llm-d-hf-token" not found')
    st.set_waiting("decode", 0, "vllm", "CreateContainerConfigError", 'secret "llm-d-hf-token" not found')
    r, doc = verify_json(cli)
    assert r.code == 1
    assert doc["healthy"] is False
    assert by_name(doc)["prefill pods"]["status"] == "pending"
    diags = doc["diagnostics"]
    assert len(diags) == 5
    assert all("vllm: CreateContainerConfigError" in d["summary"] for d in diags)
    assert any('kubectl create secret generic llm-d-hf-token --namespace llm-d-pd --from-literal=HF_TOKEN="$HF_TOKEN"' in h for h in diags[0]["hints"])
    r = cli("verify")
    assert r.code == 1
    assert 'kubectl create secret generic llm-d-hf-token --namespace llm-d-pd --from-literal=HF_TOKEN="$HF_TOKEN"' in r.out


def test_secret_value_is_never_printed(cli, kube_api):
    st = deploy(kube_api)
    st.set_waiting("decode", 0, "vllm", "CrashLoopBackOff", "back-off restarting")
    kube_api.logs[(NS, st.pods["decode"][0], "vllm")] = "INFO loading\nERROR RuntimeError: NIXL handshake failed\n"
    r = cli("verify")
    assert r.code == 1
    assert "hf_FAKE" not in r.out + r.err
    assert "log: ERROR RuntimeError: NIXL handshake failed" in r.out


@pytest.mark.parametrize(
    "resource, expected",
    [("nvidia.com/gpu", "no node has 1 free nvidia.com/gpu for a prefill pod"), ("rdma/ib", "no node advertises rdma/ib: pass --rdma-resource NAME[=N]")],
)
def test_pending_for_insufficient_resources_points_at_the_fix(cli, kube_api, resource, expected):
    st = deploy(kube_api)
    pod = st.set_waiting("prefill", 3, "vllm", "ContainerCreating")
    obj = st.pod_obj("prefill", 3)
    obj["status"] = {"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False"}]}
    kube_api.put(st.core("pods"), obj)
    st.event(pod, "FailedScheduling", f"0/3 nodes are available: 3 Insufficient {resource}. preemption: 0/3 nodes are available")
    r, doc = verify_json(cli)
    assert r.code == 1
    diag = [d for d in doc["diagnostics"] if d["pod"] == pod][0]
    assert diag["summary"] == "Pending"
    assert any(f"Insufficient {resource}" in e for e in diag["events"])
    assert any(expected in h for h in diag["hints"]), diag["hints"]


def test_image_pull_oom_and_old_kubernetes_sidecar_hints(cli, kube_api):
    st = deploy(kube_api)
    pull = st.set_waiting("prefill", 0, "vllm", "ImagePullBackOff", "Back-off pulling image")
    oom = st.set_waiting("prefill", 1, "vllm", "CrashLoopBackOff", "", terminated="OOMKilled")
    kube_api.logs[(NS, oom, "vllm")] = "Killed\n"
    init = st.set_waiting("decode", 0, "routing-proxy", "PodInitializing", init=True)
    obj = st.pod_obj("decode", 0)
    obj["status"]["phase"] = "Pending"
    obj["status"]["initContainerStatuses"][0]["state"] = {"running": {}}
    obj["status"]["initContainerStatuses"][0]["ready"] = False
    kube_api.put(st.core("pods"), obj)
    kube_api.version = {"major": "1", "minor": "28", "gitVersion": "v1.28.9"}
    r, doc = verify_json(cli)
    diags = {d["pod"]: d for d in doc["diagnostics"]}
    assert any("cannot be pulled (ghcr.io/llm-d/llm-d-cuda:v0.6.0)" in h for h in diags[pull]["hints"])
    assert "vllm: OOMKilled" in diags[oom]["summary"] and any("out of memory" in h for h in diags[oom]["hints"])
    assert diags[oom]["logs"] == ["Killed"]
    assert diags[init]["summary"].startswith("Pending, Init:0/1")
    assert any("native sidecar" in h and "1.28" in h for h in diags[init]["hints"])
    kube_api.version = {"major": "1", "minor": "33", "gitVersion": "v1.33.0"}
    r, doc = verify_json(cli)
    assert not any("native sidecar" in h for d in doc["diagnostics"] for h in d["hints"])


def test_wrong_gateway_route_and_pool_are_named(cli, kube_api):
    st = deploy(kube_api)
    route = kube_api.get(st.group("gateway.networking.k8s.io/v1", "httproutes"), "llm-d-pd")
    route["spec"]["parentRefs"][0]["name"] = "infra-pd-2-inference-gateway"
    route["status"] = {"parents": []}
    kube_api.put(st.group("gateway.networking.k8s.io/v1", "httproutes"), route)
    gw = kube_api.get(st.group("gateway.networking.k8s.io/v1", "gateways"), "infra-pd-inference-gateway")
    gw["status"]["conditions"][1] = {"type": "Programmed", "status": "False", "reason": "Invalid", "message": "no such GatewayClass"}
    kube_api.put(st.group("gateway.networking.k8s.io/v1", "gateways"), gw)
    kube_api.remove(st.group("inference.networking.k8s.io/v1", "inferencepools"), "gaie-pd")
    r, doc = verify_json(cli)
    checks = by_name(doc)
    assert r.code == 1
    assert checks["HTTPRoute llm-d-pd"]["status"] == "fail" and "infra-pd-2-inference-gateway" in checks["HTTPRoute llm-d-pd"]["observed"]
    assert checks["Gateway infra-pd-inference-gateway"]["status"] == "fail" and "no such GatewayClass" in checks["Gateway infra-pd-inference-gateway"]["observed"]
    assert checks["InferencePool gaie-pd"]["status"] == "fail" and checks["InferencePool gaie-pd"]["observed"] == "missing"


def test_route_not_accepted_and_pool_selecting_other_labels(cli, kube_api):
    st = deploy(kube_api)
    route = kube_api.get(st.group("gateway.networking.k8s.io/v1", "httproutes"), "llm-d-pd")
    route["status"]["parents"][0]["conditions"][1] = {"type": "ResolvedRefs", "status": "False", "reason": "BackendNotFound", "message": "InferencePool gaie-pd not found"}
    kube_api.put(st.group("gateway.networking.k8s.io/v1", "httproutes"), route)
    pool = kube_api.get(st.group("inference.networking.k8s.io/v1", "inferencepools"), "gaie-pd")
    pool["spec"]["selector"]["matchLabels"] = {"llm-d.ai/inference-serving": "true", "llm-d.ai/guide": "pd-disaggregation"}
    kube_api.put(st.group("inference.networking.k8s.io/v1", "inferencepools"), pool)
    r, doc = verify_json(cli)
    checks = by_name(doc)
    assert "ResolvedRefs=False (BackendNotFound" in checks["HTTPRoute llm-d-pd"]["observed"]
    assert checks["InferencePool gaie-pd"]["status"] == "fail" and "other pods" in checks["InferencePool gaie-pd"]["hint"]


def test_pods_with_other_resources_or_missing_releases_fail(cli, kube_api):
    st = deploy(kube_api)
    pod = st.pod_obj("decode", 0)
    pod["spec"]["containers"][0]["resources"]["limits"].pop("rdma/ib")
    pod["spec"]["containers"][0]["image"] = "ghcr.io/llm-d/llm-d-cuda:v0.5.0"
    kube_api.put(st.core("pods"), pod)
    kube_api.remove(st.core("secrets"), "sh.helm.release.v1.gaie-pd.v1")
    kube_api.put(st.core("secrets"), {"metadata": {"name": "sh.helm.release.v1.ms-pd.v2", "labels": {"owner": "helm", "name": "ms-pd", "status": "failed", "version": "2"}}})
    r, doc = verify_json(cli)
    checks = by_name(doc)
    assert "image ghcr.io/llm-d/llm-d-cuda:v0.5.0" in checks["decode pods"]["observed"] and "rdma/ib not requested" in checks["decode pods"]["observed"]
    assert checks["release gaie-pd"]["observed"] == "not installed"
    assert checks["release ms-pd"]["status"] == "fail" and checks["release ms-pd"]["observed"] == "failed, revision 2"


def test_pod_template_without_the_pool_labels_is_caught(cli, kube_api):
    st = deploy(kube_api)
    for name in st.pods["prefill"]:
        kube_api.remove(st.core("pods"), name)
    dep = kube_api.get(st.group("apps/v1", "deployments"), st.deployment_name("prefill"))
    dep["spec"]["template"]["metadata"]["labels"].pop("app.kubernetes.io/instance")
    kube_api.put(st.group("apps/v1", "deployments"), dep)
    r, doc = verify_json(cli)
    assert by_name(doc)["prefill pods"]["status"] == "fail"
    assert "lacks the pool's labels app.kubernetes.io/instance=llm-d-pd" in by_name(doc)["prefill pods"]["observed"]


def test_forbidden_and_unreachable_api_are_reported(cli, kube_api):
    deploy(kube_api)
    kube_api.deny["/api/v1/namespaces/llm-d-pd/secrets"] = 403
    r, doc = verify_json(cli)
    assert r.code == 1
    release = by_name(doc)["helm releases"]
    assert release["status"] == "fail" and "HTTP 403" in release["observed"] and "kubectl auth can-i" in release["hint"]
    assert by_name(doc)["decode pods"]["status"] == "pass"
    kube_api.deny.clear()
    kube_api.hang["/apis/apps/v1"] = 12  # longer than the client's 10 s read timeout
    kube_api.stop()
    r = cli("verify")
    assert r.code == 1 and "is the API server at http://127.0.0.1" in r.err
    assert "Traceback" not in r.err
    r = cli("verify", "-o", "json")  # issue 14: printed nothing on stdout
    error = json.loads(r.out)["error"]
    assert r.code == 1 and error["code"] == 1 and "Connection refused" in error["message"] and "is the API server" in error["hint"]


def test_api_timeouts_are_a_clean_error(cli, kube_api, monkeypatch):
    deploy(kube_api)
    import llmdctl.effects.kube as kube_mod

    original = kube_mod.Kube.__init__

    def short(self, *a, **kw):
        original(self, *a, **kw)
        self.timeout = 0.3

    monkeypatch.setattr(kube_mod.Kube, "__init__", short)
    kube_api.hang["/apis/apps/v1"] = 1.0
    r = cli("verify")
    assert r.code == 1
    assert "GET /apis/apps/v1/namespaces/llm-d-pd/deployments" in r.err and "Timeout" in r.err


# --- --wait ----------------------------------------------------------------------------------


def test_wait_returns_within_a_second_of_decode_turning_ready(cli, kube_api):
    st = deploy(kube_api)
    st.set_ready("decode", 0, False)
    became_ready = {}

    def later():
        time.sleep(1.5)
        became_ready["t"] = time.monotonic()
        st.set_ready("decode", 0, True)

    threading.Thread(target=later, daemon=True).start()
    r = cli("verify", "--wait", "--timeout", "30s")
    done = time.monotonic()
    assert r.code == 0, r
    # driven by the watch, not by the 5 s fallback re-check (the 1 s figure is in bench/bench.py)
    assert done - became_ready["t"] < 3.0, done - became_ready["t"]
    assert "prefill 4/4 ready, decode 0/1 ready" in r.err
    assert any("watch=true" in q for _, q in kube_api.requests)


def test_wait_times_out_with_the_last_state(cli, kube_api):
    st = deploy(kube_api)
    st.set_waiting("decode", 0, "vllm", "CreateContainerConfigError", 'secret "llm-d-hf-token" not found')
    started = time.monotonic()
    r = cli("verify", "--wait", "--timeout", "1s")
    assert r.code == 1
    assert time.monotonic() - started < 10  # the timeout is honoured (not the default 20m)
    assert "decode 0/1 ready" in r.err
    assert "kubectl create secret generic llm-d-hf-token" in r.err  # explained while waiting


def test_bad_timeout_is_a_usage_error(cli, kube_api):
    r = cli("verify", "--wait", "--timeout", "soon")
    assert r.code == 2 and "not a duration" in r.err


# --- smoke ---------------------------------------------------------------------------------


def _prefill_metrics(kube_api, st, tokens: dict):
    plan = plan_for()
    port = plan.roles["prefill"].vllm_port
    for name in st.pods["prefill"]:
        kube_api.metrics[(NS, name, port)] = (
            "# HELP vllm:prompt_tokens_total Number of prefill tokens processed.\n# TYPE vllm:prompt_tokens_total counter\n"
            f'vllm:prompt_tokens_total{{model_name="m"}} {tokens.get(name, 0)}\n'
            'vllm:prompt_tokens_total_created{model_name="m"} 1.7e9\n'
        )
    return port


def test_smoke_proves_the_request_went_through_prefill(cli, kube_api):
    st = deploy(kube_api)
    plan = plan_for()
    tokens = {}
    _prefill_metrics(kube_api, st, tokens)

    def through_prefill(req):
        tokens[st.pods["prefill"][2]] = len(req["prompt"].split())
        _prefill_metrics(kube_api, st, tokens)

    api = FakeOpenAI(plan.model["name"], on_completion=through_prefill)
    try:
        r, doc = verify_json(cli, "--smoke", "--endpoint", api.url)
    finally:
        api.stop()
    assert r.code == 0, r
    smoke = {c["name"]: c for c in doc["smoke"]}
    assert smoke["GET /v1/models"]["status"] == "pass"
    assert "time to first token" in smoke["completion"]["observed"] and smoke["completion"]["observed"].startswith("8 chunks")
    assert smoke["request went through prefill"]["status"] == "pass"
    assert api.prompts[0].startswith("[llmdctl smoke ")


def test_smoke_fails_when_no_prefill_pod_saw_the_request(cli, kube_api):
    st = deploy(kube_api)
    plan = plan_for()
    _prefill_metrics(kube_api, st, {})
    api = FakeOpenAI(plan.model["name"])  # decode answers alone
    try:
        r, doc = verify_json(cli, "--smoke", "--endpoint", api.url)
    finally:
        api.stop()
    assert r.code == 1
    check = {c["name"]: c for c in doc["smoke"]}["request went through prefill"]
    assert check["status"] == "fail" and "unchanged on 4 prefill pod(s)" in check["observed"]
    assert "decode served the request alone" in check["hint"]


def test_smoke_prompt_clears_the_selective_pd_threshold_and_reports_wrong_models(cli, kube_api):
    st = deploy(kube_api)
    _prefill_metrics(kube_api, st, {})
    api = FakeOpenAI("some/other-model")
    try:
        r, doc = verify_json(cli, "--smoke", "--endpoint", api.url, "--pd-threshold", "200")
    finally:
        api.stop()
    smoke = {c["name"]: c for c in doc["smoke"]}
    assert smoke["GET /v1/models"]["status"] == "fail" and "some/other-model" in smoke["GET /v1/models"]["observed"]
    assert len(api.prompts[0].split()) > 200


def test_smoke_unreachable_endpoint_and_port_forward(cli, kube_api, fake_cluster, monkeypatch):
    monkeypatch.setenv("KUBECONFIG", str(kube_api.kubeconfig))
    st = deploy(kube_api)
    r, doc = verify_json(cli, "--smoke", "--endpoint", "http://127.0.0.1:9")
    assert r.code == 1
    assert {c["name"]: c for c in doc["smoke"]}["GET /v1/models"]["status"] == "fail"
    # --port-forward runs kubectl port-forward; the stand-in says where it forwards (the fake endpoint)
    plan = plan_for()
    _prefill_metrics(kube_api, st, {st.pods["prefill"][0]: 5})
    api = FakeOpenAI(plan.model["name"])
    port = api.url.rsplit(":", 1)[1]
    (fake_cluster.bin / "kubectl").write_text(
        "#!/bin/sh\necho \"$@\" >> " + str(fake_cluster.root / "pf.log") + f"\necho 'Forwarding from 127.0.0.1:{port} -> 80'\nexec {sys.executable} -c 'import time; time.sleep(30)'\n")
    try:
        r, doc = verify_json(cli, "--smoke", "--port-forward")
        assert doc is not None, r.err
    finally:
        api.stop()
    assert {c["name"]: c for c in doc["smoke"]}["GET /v1/models"]["status"] == "pass"
    assert "port-forward --namespace llm-d-pd service/infra-pd-inference-gateway-istio 0:80" in (fake_cluster.root / "pf.log").read_text()


# --- doctor --------------------------------------------------------------------------------


def _cluster_basics(kube_api, *, gpus: dict, rdma: str | None = None, crds=True, labels=None):
    for i, (resource, count) in enumerate(gpus.items()):
        alloc = {"cpu": "64", resource: str(count)}
        if rdma:
            alloc[rdma] = "64"  # a shared RDMA device plugin advertises many
        kube_api.put("/api/v1/nodes", {"metadata": {"name": f"node-{i}", "labels": labels or {}}, "status": {"allocatable": alloc}})
    if crds:
        for name, versions in (("gateways.gateway.networking.k8s.io", ["v1"]), ("httproutes.gateway.networking.k8s.io", ["v1"]),
                               ("inferencepools.inference.networking.k8s.io", ["v1"]), ("destinationrules.networking.istio.io", ["v1"]),
                               ("servicemonitors.monitoring.coreos.com", ["v1"]), ("podmonitors.monitoring.coreos.com", ["v1"])):
            kube_api.put("/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
                         {"metadata": {"name": name}, "spec": {"versions": [{"name": v, "served": True} for v in versions]}})
    kube_api.put("/apis/gateway.networking.k8s.io/v1/gatewayclasses", {"metadata": {"name": "istio"}, "status": {"conditions": [{"type": "Accepted", "status": "True"}]}})
    kube_api.put("/api/v1/namespaces", {"metadata": {"name": NS}})


def test_doctor_amd_reports_missing_amd_gpu_capacity(cli, kube_api, fake_cluster, monkeypatch):
    monkeypatch.setenv("KUBECONFIG", str(kube_api.kubeconfig))
    _cluster_basics(kube_api, gpus={"nvidia.com/gpu": 8}, rdma="rdma/ib")
    deploy(kube_api, "-e", "amd")  # puts the HF Secret in place
    r = cli("doctor", "-e", "amd", "-o", "json")
    assert r.code == 1
    doc = json.loads(r.out)
    checks = {c["name"]: c for c in doc["checks"]}
    cap = checks["capacity amd.com/gpu"]
    assert cap["status"] == "fail" and cap["observed"].startswith("0 allocatable amd.com/gpu")
    assert "-e amd for amd.com/gpu" in cap["hint"] or "pick the profile" in cap["hint"]
    assert checks["tool helmfile"]["status"] == "pass" and checks["tool helm-diff"]["status"] == "pass"
    assert checks["Secret llm-d-hf-token"]["status"] == "pass"
    assert checks["CRD inferencepools.inference.networking.k8s.io"]["status"] == "pass"
    assert "hf_FAKE" not in r.out + r.err
    r = cli("doctor", "-e", "amd")
    assert r.code == 1 and "capacity amd.com/gpu" in r.out and "FAIL" in r.out


def test_doctor_passes_on_a_cluster_that_fits(cli, kube_api, fake_cluster, monkeypatch):
    monkeypatch.setenv("KUBECONFIG", str(kube_api.kubeconfig))
    _cluster_basics(kube_api, gpus={"nvidia.com/gpu": 8}, rdma="rdma/ib")
    deploy(kube_api)
    r = cli("doctor", "-o", "json")
    assert r.code == 0, r.out
    statuses = {c["name"]: c["status"] for c in json.loads(r.out)["checks"]}
    assert statuses["capacity nvidia.com/gpu"] == "pass" and statuses["RDMA rdma/ib"] == "pass"
    assert statuses["cluster version"] == "pass" and statuses["GatewayClass istio"] == "pass"


def test_doctor_missing_crds_secret_class_and_old_cluster(cli, kube_api, fake_cluster, monkeypatch):
    monkeypatch.setenv("KUBECONFIG", str(kube_api.kubeconfig))
    _cluster_basics(kube_api, gpus={"nvidia.com/gpu": 8}, crds=False)
    kube_api.remove("/apis/gateway.networking.k8s.io/v1/gatewayclasses", "istio")
    kube_api.version = {"major": "1", "minor": "31", "gitVersion": "v1.31.4"}
    fake_cluster.uninstall("helmfile")
    r = cli("doctor", "-o", "json")
    assert r.code == 1
    checks = {c["name"]: c for c in json.loads(r.out)["checks"]}
    assert checks["tool helmfile"]["status"] == "fail" and "helmfile" in checks["tool helmfile"]["hint"]
    assert checks["cluster version"]["status"] == "warn" and "V-31" in checks["cluster version"]["hint"]
    assert checks["CRD inferencepools.inference.networking.k8s.io"]["status"] == "fail"
    assert "gateway-api-inference-extension/releases/download/v1.4.0" in checks["CRD inferencepools.inference.networking.k8s.io"]["hint"]
    assert checks["GatewayClass istio"]["status"] == "fail"
    assert checks["Secret llm-d-hf-token"]["status"] == "fail"
    assert 'kubectl create secret generic llm-d-hf-token --namespace llm-d-pd --from-literal=HF_TOKEN="$HF_TOKEN"' == checks["Secret llm-d-hf-token"]["hint"]
    assert checks["RDMA rdma/ib"]["status"] == "fail"


def test_doctor_unreachable_cluster(cli, kube_api, fake_cluster, monkeypatch):
    monkeypatch.setenv("KUBECONFIG", str(kube_api.kubeconfig))
    kube_api.stop()
    r = cli("doctor", "-o", "json")
    assert r.code == 1
    checks = {c["name"]: c for c in json.loads(r.out)["checks"]}
    assert checks["cluster"]["status"] == "fail" and "reachable" in checks["cluster"]["expected"]


# --- pure pieces ---------------------------------------------------------------------------


def test_capacity_first_fit_and_time_slicing():
    plan = plan_for(environments=["gh200"])
    one_gpu = [{"metadata": {"name": "gh", "labels": {"nvidia.com/gpu.replicas": "2"}}, "status": {"allocatable": {"nvidia.com/gpu": "2"}}}]
    assert [c.status for c in evaluate_capacity(plan, one_gpu)] == ["pass", "pass"]
    unsliced = [{"metadata": {"name": "gh", "labels": {}}, "status": {"allocatable": {"nvidia.com/gpu": "1"}}}]
    checks = {c.name: c for c in evaluate_capacity(plan, unsliced)}
    assert checks["capacity nvidia.com/gpu"].status == "fail" and checks["GPU time-slicing"].status == "fail"
    # 4 prefill x 1 + 1 decode x 4 = 8 GPUs fit on 2 x 4, but not on 8 x 1 (decode needs 4 on one node)
    plan = plan_for(environments=["gke"])
    four = [{"metadata": {"name": f"n{i}"}, "status": {"allocatable": {"nvidia.com/gpu": "4"}}} for i in range(2)]
    ones = [{"metadata": {"name": f"n{i}"}, "status": {"allocatable": {"nvidia.com/gpu": "1"}}} for i in range(8)]
    assert evaluate_capacity(plan, four)[0].status == "pass"
    c = evaluate_capacity(plan, ones)[0]
    assert c.status == "fail" and "1 pod(s) do not fit (decode)" in c.hint


def test_label_selector_semantics_of_the_fake_match_the_api():
    labels = {"owner": "helm", "name": "ms-pd"}
    assert label_match(labels, "owner=helm,name in (infra-pd,gaie-pd,ms-pd)")
    assert not label_match(labels, "owner=helm,name in (ms-pd-2)")
    assert label_match(labels, "name!=ms-pd-2,owner")
    assert not label_match(labels, "!owner")


def test_metric_sum_and_pod_summary():
    text = 'vllm:prompt_tokens_total{a="1"} 10\nvllm:prompt_tokens_total{a="2"} 5.0\nvllm:prompt_tokens_total_created 99\n# vllm:prompt_tokens_total 7\n'
    assert metric_sum(text, "vllm:prompt_tokens_total") == 15.0
    pod = {"status": {"phase": "Pending", "initContainerStatuses": [{"name": "routing-proxy", "ready": False, "state": {"waiting": {"reason": "ErrImagePull"}}}]}}
    summary, reasons, container = pod_summary(pod)
    assert summary == "Pending, Init:0/1, routing-proxy: ErrImagePull" and container is None
    assert Check("x", "pass", "y").as_dict()["status"] == "pass"


def test_apply_wait_hands_over_to_verify(cli, kube_api, fake_cluster, monkeypatch):
    """apply --wait: the stand-in tools apply, then verify watches the (fake) API until healthy."""
    monkeypatch.setenv("KUBECONFIG", str(kube_api.kubeconfig))
    fake_cluster.namespace(NS, context="fake")
    for i in range(3):  # apply's pre-apply placement needs GPU nodes
        kube_api.put("/api/v1/nodes", gpu_node(f"gpu-node-{i}"))
    st = deploy(kube_api)
    st.set_ready("decode", 0, False)
    def when_watched():
        while not any("watch=true" in q for _, q in kube_api.requests):
            time.sleep(0.02)
        time.sleep(0.3)
        st.set_ready("decode", 0, True)

    threading.Thread(target=when_watched, daemon=True).start()
    r = cli("apply", "-y", "--wait", "--timeout", "30s")
    assert r.code == 0, r
    assert sorted(fake_cluster.releases(NS, context="fake")) == ["gaie-pd", "infra-pd", "ms-pd"]
    assert "waiting up to 30s" in r.err and "decode 0/1 ready" in r.err and "healthy (11 checks" in r.err
    st.set_ready("decode", 0, False)
    r = cli("apply", "-y", "--wait", "--timeout", "1s")
    assert r.code == 1 and "pending" in r.err.splitlines()[-1]


def test_doctor_checks_the_class_the_infra_chart_really_writes(cli, kube_api, fake_cluster, monkeypatch):
    """issue 14: llm-d-infra v1.4.0 renders -e kgateway as a Gateway of class agentgateway."""
    from conftest import plan_for

    assert plan_for(environments=["kgateway"]).gateway_facts["className"] == "agentgateway"
    assert plan_for(environments=["kgateway"], llmd_version="v0.4.0").gateway_facts["className"] == "kgateway"
    assert plan_for(environments=["istio"]).gateway_facts["className"] == "istio"
    assert plan_for(environments=["gke"]).gateway_facts["className"] == "gke-l7-regional-external-managed"
    assert plan_for(environments=["kgateway"], sets=["infra.gateway.gatewayClassName=agentgateway-v2"]).gateway_facts["className"] == "agentgateway"
    monkeypatch.setenv("KUBECONFIG", str(kube_api.kubeconfig))
    _cluster_basics(kube_api, gpus={"nvidia.com/gpu": 8}, rdma="rdma/ib")
    deploy(kube_api, "-e", "kgateway")
    kube_api.put("/apis/gateway.networking.k8s.io/v1/gatewayclasses", {"metadata": {"name": "kgateway"}, "status": {"conditions": [{"type": "Accepted", "status": "True"}]}})
    checks = {c["name"]: c for c in json.loads(cli("doctor", "-e", "kgateway", "-o", "json").out)["checks"]}
    assert checks["GatewayClass agentgateway"]["status"] == "fail" and "GatewayClass kgateway" not in checks
    kube_api.put("/apis/gateway.networking.k8s.io/v1/gatewayclasses", {"metadata": {"name": "agentgateway"}, "status": {"conditions": [{"type": "Accepted", "status": "True"}]}})
    checks = {c["name"]: c for c in json.loads(cli("doctor", "-e", "kgateway", "-o", "json").out)["checks"]}
    assert checks["GatewayClass agentgateway"]["status"] == "pass"
    readme = cli("render", "-e", "kgateway", "--print").out
    assert "(provider `kgateway`, GatewayClass `agentgateway`)" in readme


@pytest.mark.parametrize("user,cluster", [("5", "{server: 5}"), ("{token: x}", '{server: "https://127.0.0.1:1", certificate-authority-data: "!!!notbase64"}')])
def test_malformed_kubeconfig_entries_are_named_not_internal_errors(cli, tmp_path, monkeypatch, user, cluster):
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(f"apiVersion: v1\nkind: Config\ncurrent-context: c\nclusters:\n- name: k\n  cluster: {cluster}\n"
                          f"contexts:\n- name: c\n  context: {{cluster: k, user: u}}\nusers:\n- name: u\n  user: {user}\n")
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    r = cli("verify")
    assert r.code == 1 and "is malformed" in r.err and "internal error" not in r.err, r.err


def test_a_gateway_no_controller_answered_is_said_so(cli, kube_api):
    """issue 12: Programmed=Unknown ("Waiting for controller", the API server's default) was shown
    as "Programmed, no address yet"."""
    st = deploy(kube_api)
    gws = st.group("gateway.networking.k8s.io/v1", "gateways")
    gw = kube_api.get(gws, "infra-pd-inference-gateway")
    gw["status"] = {"conditions": [{"type": "Accepted", "status": "Unknown", "reason": "Pending", "message": "Waiting for controller"},
                                   {"type": "Programmed", "status": "Unknown", "reason": "Pending", "message": "Waiting for controller"}]}
    kube_api.put(gws, gw)
    r, doc = verify_json(cli)
    check = by_name(doc)["Gateway infra-pd-inference-gateway"]
    assert r.code == 1 and check["status"] == "pending"
    assert check["observed"] == "Programmed=Unknown: Pending: Waiting for controller"
    assert "no gateway controller has answered" in check["hint"] and "GatewayClass istio" in check["hint"]
    gw["status"] = {"conditions": [{"type": "Programmed", "status": "True", "reason": "Programmed"}]}
    kube_api.put(gws, gw)
    check = by_name(verify_json(cli)[1])["Gateway infra-pd-inference-gateway"]
    assert check["observed"] == "Programmed, no address yet" and "has not assigned an address" in check["hint"]


def test_insufficient_rdma_on_a_cluster_that_has_it_is_not_called_absent(cli, kube_api):
    """issue 12: a CPU-only node's "Insufficient rdma/ib" was counted as absence."""
    st = deploy(kube_api)
    kube_api.put("/api/v1/nodes", {"metadata": {"name": "gpu-0"}, "status": {"allocatable": {"cpu": "64", "nvidia.com/gpu": "8", "rdma/ib": "64"}}})
    kube_api.put("/api/v1/nodes", {"metadata": {"name": "cpu-0"}, "status": {"allocatable": {"cpu": "16"}}})
    pod = st.set_waiting("decode", 0, "vllm", "ContainerCreating")
    obj = st.pod_obj("decode", 0)
    obj["status"] = {"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False"}]}
    kube_api.put(st.core("pods"), obj)
    # as the scheduler counts it: gpu-0 lacks a free NIC; cpu-0 lacks both (counted under each)
    st.event(pod, "FailedScheduling", "0/2 nodes are available: 1 Insufficient nvidia.com/gpu, 2 Insufficient rdma/ib.")
    r, doc = verify_json(cli)
    hints = [h for d in doc["diagnostics"] if d["pod"] == pod for h in d["hints"]]
    assert any("nodes do advertise rdma/ib" in h for h in hints), hints
    assert not any("no node advertises" in h for h in hints)
    # issue 25: the one node short of GPUs is the CPU node, so nothing says the GPUs are full
    assert not any("shrink the layout" in h and "free nvidia.com/gpu" in h for h in hints), hints


def test_doctor_checks_the_crds_the_rendered_charts_need(cli, kube_api, fake_cluster, monkeypatch):
    """issue 12: doctor said "ready to apply", then apply failed at step 2/4 on ServiceMonitor."""
    monkeypatch.setenv("KUBECONFIG", str(kube_api.kubeconfig))
    _cluster_basics(kube_api, gpus={"nvidia.com/gpu": 8}, rdma="rdma/ib")
    deploy(kube_api)
    for name in ("servicemonitors.monitoring.coreos.com", "podmonitors.monitoring.coreos.com"):
        kube_api.remove("/apis/apiextensions.k8s.io/v1/customresourcedefinitions", name)
    r = cli("doctor", "-o", "json")
    checks = {c["name"]: c for c in json.loads(r.out)["checks"]}
    assert r.code == 1
    for name in ("servicemonitors.monitoring.coreos.com", "podmonitors.monitoring.coreos.com"):
        assert checks[f"CRD {name}"]["status"] == "fail" and "-e no-monitoring" in checks[f"CRD {name}"]["hint"]
    r = cli("doctor", "-e", "no-monitoring", "-o", "json")  # the charts then render no monitoring objects
    assert r.code == 0, r.out
    assert not any("monitoring.coreos.com" in c["name"] for c in json.loads(r.out)["checks"])
    from conftest import plan_for
    from llmdctl.effects.doctor import provider_crds

    assert "agentgatewayparameters.agentgateway.dev" in provider_crds(plan_for(environments=["kgateway"]))
    assert "gatewayparameters.gateway.kgateway.dev" in provider_crds(plan_for(environments=["kgateway"], llmd_version="v0.4.0"))
    gke = provider_crds(plan_for(environments=["gke"]))
    assert "healthcheckpolicies.networking.gke.io" in gke and "servicemonitors.monitoring.coreos.com" not in gke
    # inferencepool v1.4.0 (epplib _gke.yaml) scrapes the EPP with a Google Managed Prometheus PodMonitoring on gke
    assert "podmonitorings.monitoring.googleapis.com" in gke
    assert "podmonitorings.monitoring.googleapis.com" not in provider_crds(plan_for(environments=["gke", "no-monitoring"]))


def test_doctor_counts_free_gpus_not_allocatable(cli, kube_api, fake_cluster, monkeypatch):
    """issue 12: beside a running stack a second one "fit" and then stayed Pending."""
    monkeypatch.setenv("KUBECONFIG", str(kube_api.kubeconfig))
    _cluster_basics(kube_api, gpus={"nvidia.com/gpu": 8}, rdma="rdma/ib")  # one node, 8 GPUs
    deploy(kube_api)  # the pd stack: 4 x 1 + 1 x 4 = 8 GPUs requested
    for obj in list(kube_api.collections.get(f"/api/v1/namespaces/{NS}/pods", {}).values()):
        obj.setdefault("spec", {})["nodeName"] = "node-0"
        kube_api.put(f"/api/v1/namespaces/{NS}/pods", obj)
    r = cli("doctor", "-o", "json")  # its own pods do not count against it (an update frees them)
    checks = {c["name"]: c for c in json.loads(r.out)["checks"]}
    assert checks["capacity nvidia.com/gpu"]["status"] == "pass", checks["capacity nvidia.com/gpu"]
    r = cli("doctor", "--postfix", "pd-2", "-o", "json")  # a second stack beside it does not fit
    cap = {c["name"]: c for c in json.loads(r.out)["checks"]}["capacity nvidia.com/gpu"]
    assert r.code == 1 and cap["status"] == "fail" and "8 in use by other pods" in cap["observed"], cap
