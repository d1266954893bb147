"""Issue 10 item 2: several stacks behind one Gateway, routed by the request's model name."""

from __future__ import annotations

import json

import pytest

from conftest import plan_for
from llmdctl.compose.shared_gateway import route_models, route_parents
from llmdctl.effects.bundle import bundle_files, command_args
from llmdctl.effects.health import evaluate_stack, observe_stack
from llmdctl.effects.doctor import shared_gateway_checks
from llmdctl.effects.kube import Kube
from llmdctl.effects.stacks import attached_routes, attached_stacks, gateway_models, group_stacks
from llmdctl.inputs.spec import build_spec

from test_verify import _cluster_basics

NS = "llm-d-pd"
V9 = {"llmd_version": "v0.9.0", "environments": ["istio"], "prefill": "1xTP1", "decode": "1xTP1"}
SMALL_MODEL = "Qwen/Qwen2.5-0.5B-Instruct"
HEADER = "X-Gateway-Model-Name"


def attached(**kw):
    return plan_for(**{**V9, "postfix": "pd-2", "attach_gateway": "gateway-pd", "model": SMALL_MODEL, "model_size": "5Gi", **kw})


def route(name, ns, parents, models=None, pool=None):
    match = {"path": {"type": "PathPrefix", "value": "/"}}
    if models:
        match["headers"] = [{"type": "Exact", "name": HEADER, "value": m} for m in models]
    return {"metadata": {"name": name, "namespace": ns},
            "spec": {"parentRefs": [{"group": "gateway.networking.k8s.io", "kind": "Gateway", **p} for p in parents],
                     "rules": [{"backendRefs": [{"group": "inference.networking.k8s.io", "kind": "InferencePool", "name": pool or name}],
                                "matches": [match]}]}}


# --- compose -------------------------------------------------------------------------------


def test_an_attached_stack_has_no_gateway_release_and_routes_its_model_through_the_other_gateway():
    plan = attached()
    assert [r.key for r in plan.releases] == ["router", "ms"]
    assert plan.release("router").needs == ()
    http = plan.release("router").values["httpRoute"]
    assert http["inferenceGatewayName"] == "gateway-pd" and http["headerMatches"] == {HEADER: SMALL_MODEL}
    assert "inferenceGatewayNamespace" not in http  # same namespace: the chart's default
    assert plan.attached and plan.gateway_namespace == NS and plan.model_match == (HEADER, SMALL_MODEL)
    assert plan.names["gatewayService"] == "gateway-pd-istio" and "gateway" not in plan.manifests
    assert plan.ms_values["modelArtifacts"]["name"] == SMALL_MODEL  # what vLLM serves is what the route matches


def test_attaching_to_a_gateway_in_another_namespace_names_it_on_the_route():
    plan = attached(attach_gateway="gateways/shared")
    http = plan.release("router").values["httpRoute"]
    assert (http["inferenceGatewayName"], http["inferenceGatewayNamespace"]) == ("shared", "gateways")
    assert plan.gateway_namespace == "gateways" and plan.names["gateway"] == "shared"
    readme = bundle_files(plan)["README.md"]
    assert "kubectl port-forward -n gateways service/shared-istio" in readme
    assert "kubectl get gateway -n gateways shared" in readme
    assert "helm install body-based-router" in readme and "-n gateways --set provider.name=istio --set inferenceGateway.name=shared" in readme


def test_the_owner_routing_by_model_keeps_its_gateway_and_matches_its_model():
    plan = plan_for(**V9, route_by_model=True)
    assert [r.key for r in plan.releases] == ["gateway", "router", "ms"] and not plan.attached
    assert plan.model_match == (HEADER, plan.model["name"])


def test_a_plain_gateway_stack_is_unchanged_by_the_feature():
    plan = plan_for(**V9)
    assert plan.model_match is None and "headerMatches" not in plan.release("router").values["httpRoute"]


def test_the_readme_command_reproduces_an_attached_bundle_byte_for_byte(cli, tmp_path):
    plan = attached(attach_gateway="gateways/shared")
    args = command_args(plan)
    assert args[args.index("--attach-gateway") + 1] == "gateways/shared"
    r = cli("render", *args, "-o", str(tmp_path / "b"))
    assert r.code == 0, r.err
    for path, text in bundle_files(plan).items():
        assert (tmp_path / "b" / path).read_text() == text, path


def test_the_spec_file_takes_attach_gateway(tmp_path):
    f = tmp_path / "llmd.yaml"
    f.write_text("llmdVersion: v0.9.0\nenvironments: [istio]\npostfix: pd-2\nattachGateway: gateway-pd\n")
    spec = build_spec(env={}, spec_file=str(f))
    assert spec.attach_gateway == ("", "gateway-pd") and spec.route_by_model


@pytest.mark.parametrize("args, says", [
    (["--attach-gateway", "Gateway_1"], "expected [NAMESPACE/]NAME"),
    (["--attach-gateway", "a/b/c"], "expected [NAMESPACE/]NAME"),
    (["--attach-gateway", "gateway-pd", "-e", "standalone"], "a standalone stack has no Gateway to share"),
    (["--attach-gateway", "gateway-pd", "--llmd-version", "v0.7.0", "-e", "istio"], "GAIE v1.5.0 inferencepool chart's HTTPRoute matches no headers"),
    (["--route-by-model", "--llmd-version", "v0.6.0"], "helmfile-era charts give every stack its own Gateway"),
    (["--attach-gateway", "gateway-pd", "-e", "istio", "--set", "ms.modelArtifacts.name=other"], "V-45"),
])
def test_shapes_that_cannot_share_a_gateway_are_refused_with_the_reason(cli, args, says):
    r = cli("render", "--print", *args, env={"LLMD_VERSION": "v0.9.0"})
    assert r.code == 2 and says in r.err and "Traceback" not in r.err, r.err


# --- reading routes ----------------------------------------------------------------------


def test_route_models_and_parents():
    r = route("router-pd-2", "a", [{"name": "gw"}, {"name": "shared", "namespace": "b"}], [SMALL_MODEL])
    assert route_models(r, HEADER.lower()) == [SMALL_MODEL]
    assert route_parents(r) == [("a", "gw"), ("b", "shared")]
    assert route_models(route("router-pd", "a", [{"name": "gw"}]), HEADER) is None  # catch-all


def test_status_lists_the_models_each_gateway_serves():
    routes = [route("router-pd", NS, [{"name": "gateway-pd"}]),
              route("router-pd-2", NS, [{"name": "gateway-pd"}], [SMALL_MODEL]),
              route("router-pd-3", "other", [{"name": "gateway-pd", "namespace": NS}], ["meta-llama/Llama-3.1-8B"]),
              {"metadata": {"name": "web", "namespace": NS}, "spec": {"parentRefs": [{"name": "gateway-pd"}],
                                                                       "rules": [{"backendRefs": [{"kind": "Service", "name": "web"}]}]}}]
    served = gateway_models(routes, HEADER)
    assert served == [{"gateway": f"{NS}/gateway-pd", "routes": [
        {"model": SMALL_MODEL, "route": f"{NS}/router-pd-2", "pool": "router-pd-2", "postfix": "pd-2"},
        {"model": "meta-llama/Llama-3.1-8B", "route": "other/router-pd-3", "pool": "router-pd-3", "postfix": "pd-3"},
        {"model": "*", "route": f"{NS}/router-pd", "pool": "router-pd", "postfix": "pd"}]}]
    assert attached_routes(routes, NS, "pd") == [f"{NS}/router-pd-2", f"{NS}/web", "other/router-pd-3"]
    assert attached_routes(routes, NS, "pd-2") == []  # nobody hangs off gateway-pd-2


# --- doctor and verify -------------------------------------------------------------------


def _gateway(kube_api, name="gateway-pd", ns=NS, cls="istio", allowed="Same"):
    kube_api.put(f"/apis/gateway.networking.k8s.io/v1/namespaces/{ns}/gateways", {
        "metadata": {"name": name, "namespace": ns},
        "spec": {"gatewayClassName": cls, "listeners": [{"name": "http", "port": 80, "protocol": "HTTP", "allowedRoutes": {"namespaces": {"from": allowed}}}]}})


def _bbr(kube_api, ns=NS, image="registry.k8s.io/gateway-api-inference-extension/bbr:v1.5.0"):
    kube_api.put(f"/apis/apps/v1/namespaces/{ns}/deployments", {"metadata": {"name": "body-based-router", "namespace": ns},
                                                              "spec": {"template": {"spec": {"containers": [{"name": "bbr", "image": image}]}}}})


def _checks(kube_api, plan):
    return {c.name: c for c in shared_gateway_checks(Kube(kubeconfig=str(kube_api.kubeconfig)), plan)}


def test_doctor_fails_on_a_missing_gateway_and_missing_body_based_routing(kube_api):
    plan = attached()
    checks = _checks(kube_api, plan)
    assert list(checks) == [f"Gateway {NS}/gateway-pd"] and checks[f"Gateway {NS}/gateway-pd"].status == "fail"
    _gateway(kube_api)
    checks = _checks(kube_api, plan)
    assert checks[f"Gateway {NS}/gateway-pd"].status == "pass"
    bbr = checks["body-based routing on Gateway gateway-pd"]
    assert bbr.status == "fail" and "helm install body-based-router" in bbr.hint and HEADER in bbr.hint
    _bbr(kube_api, image="example.com/not-bbr:v1")
    assert _checks(kube_api, plan)["body-based routing on Gateway gateway-pd"].status == "fail"
    _bbr(kube_api)
    checks = _checks(kube_api, plan)
    assert {c.status for c in checks.values()} == {"pass"}, checks


def test_doctor_fails_when_the_model_is_already_routed_and_lists_what_else_the_gateway_serves(kube_api):
    plan = attached()
    _gateway(kube_api)
    _bbr(kube_api)
    kube_api.put(f"/apis/gateway.networking.k8s.io/v1/namespaces/{NS}/httproutes", route("router-pd", NS, [{"name": "gateway-pd"}]))
    ok = _checks(kube_api, plan)[f"model {SMALL_MODEL} on Gateway gateway-pd"]
    assert ok.status == "pass" and f"any other model ({NS}/router-pd)" in ok.observed
    kube_api.put("/apis/gateway.networking.k8s.io/v1/namespaces/other/httproutes",
                 route("router-x", "other", [{"name": "gateway-pd", "namespace": NS}], [SMALL_MODEL]))
    taken = _checks(kube_api, plan)[f"model {SMALL_MODEL} on Gateway gateway-pd"]
    assert taken.status == "fail" and "other/router-x" in taken.observed
    # the stack's own route (a re-apply) does not count against it
    kube_api.remove("/apis/gateway.networking.k8s.io/v1/namespaces/other/httproutes", "router-x")
    kube_api.put(f"/apis/gateway.networking.k8s.io/v1/namespaces/{NS}/httproutes", route("router-pd-2", NS, [{"name": "gateway-pd"}], [SMALL_MODEL]))
    assert _checks(kube_api, plan)[f"model {SMALL_MODEL} on Gateway gateway-pd"].status == "pass"


def test_doctor_fails_on_a_gateway_of_another_class_or_one_that_does_not_admit_the_namespace(kube_api):
    _gateway(kube_api, name="shared", ns="gateways", cls="kgateway", allowed="All")
    _bbr(kube_api, ns="gateways")
    plan = attached(attach_gateway="gateways/shared")
    gw = _checks(kube_api, plan)["Gateway gateways/shared"]
    assert gw.status == "fail" and gw.observed == "class kgateway" and "-e istio" in gw.hint
    _gateway(kube_api, name="shared", ns="gateways", allowed="Same")
    gw = _checks(kube_api, plan)["Gateway gateways/shared"]
    assert gw.status == "fail" and f"no listener admits routes from namespace {NS}" in gw.observed
    _gateway(kube_api, name="shared", ns="gateways", allowed="All")
    assert _checks(kube_api, plan)["Gateway gateways/shared"].status == "pass"


def test_doctor_runs_the_shared_gateway_checks_for_an_attached_stack(cli, kube_api, fake_cluster, monkeypatch):
    monkeypatch.setenv("KUBECONFIG", str(kube_api.kubeconfig))
    _cluster_basics(kube_api, gpus={"nvidia.com/gpu": 8}, rdma="rdma/ib")
    kube_api.put(f"/api/v1/namespaces/{NS}/secrets", {"metadata": {"name": "llm-d-hf-token", "namespace": NS}, "data": {"HF_TOKEN": "aGZfRkFLRQ=="}})
    _gateway(kube_api)
    args = ("doctor", "--llmd-version", "v0.9.0", "-e", "istio", "--postfix", "pd-2", "--attach-gateway", "gateway-pd",
            "--prefill", "1xTP1", "--decode", "1xTP1", "-o", "json")
    r = cli(*args)
    checks = {c["name"]: c["status"] for c in json.loads(r.out)["checks"]}
    assert r.code == 1 and checks["body-based routing on Gateway gateway-pd"] == "fail", checks
    _bbr(kube_api)
    r = cli(*args)
    checks = {c["name"]: c["status"] for c in json.loads(r.out)["checks"]}
    assert r.code == 0 and checks[f"Gateway {NS}/gateway-pd"] == "pass", checks


def test_verify_fails_a_route_that_lost_its_model_match(kube_api):
    plan = attached()
    _gateway(kube_api)  # the owner's, programmed by its controller
    gw = kube_api.get(f"/apis/gateway.networking.k8s.io/v1/namespaces/{NS}/gateways", "gateway-pd")
    gw["status"] = {"conditions": [{"type": "Programmed", "status": "True"}], "addresses": [{"value": "10.0.0.1"}]}
    kube = Kube(kubeconfig=str(kube_api.kubeconfig))
    kube_api.put(f"/apis/gateway.networking.k8s.io/v1/namespaces/{NS}/httproutes", route("router-pd-2", NS, [{"name": "gateway-pd"}]))
    checks = {c.name: c for c in evaluate_stack(plan, observe_stack(kube, plan))}
    bad = checks["HTTPRoute router-pd-2"]
    assert bad.status == "fail" and bad.observed == f"matches no {HEADER} header", bad
    assert checks["Gateway gateway-pd"].status == "pass"  # read where the attached Gateway lives


def test_an_attached_stack_is_complete_without_a_gateway_release():
    rows = [{"name": n, "namespace": NS, "chart": c, "revision": "1", "status": "deployed", "updated": "2026-12-03"}
            for n, c in (("gateway-pd", "llmdctl-gateway-0.1.0"), ("router-pd", "llm-d-router-gateway-v0.10.0"), ("ms-pd", "llmdctl-model-servers-0.1.0"),
                         ("router-pd-2", "llm-d-router-gateway-v0.10.0"), ("ms-pd-2", "llmdctl-model-servers-0.1.0"),
                         ("router-pd-3", "llm-d-router-gateway-v0.10.0"), ("ms-pd-3", "llmdctl-model-servers-0.1.0"))]
    routes = [route("router-pd", NS, [{"name": "gateway-pd"}]), route("router-pd-2", NS, [{"name": "gateway-pd"}], [SMALL_MODEL])]
    assert attached_stacks(routes) == {(NS, "pd-2")}
    by_postfix = {s["postfix"]: s for s in group_stacks(rows, attached_stacks(routes))}
    assert (by_postfix["pd"]["status"], by_postfix["pd-2"]["status"]) == ("deployed", "deployed")
    # pd-3 has no route at all: its own Gateway release is what is missing
    assert by_postfix["pd-3"]["status"] == "incomplete" and by_postfix["pd-3"]["missing"] == ["gateway-pd-3"]
