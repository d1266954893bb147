"""--autoscale ROLE=MIN-MAX (issue 10 item 4): an HPA per role on the metrics that tell that role
apart, workloads that leave their count to it, the adapter rules that serve those names, and the
doctor and verify checks that fail when the HPA cannot read them."""

from __future__ import annotations

import json

import pytest

from conftest import plan_for, parse

V9 = "v0.9.0"


def _objects(plan, kind):
    return {o["metadata"]["name"]: o for o in plan.manifests["ms"] if o["kind"] == kind}


def _metric_names(hpa):
    return [m[m["type"].lower()]["metric"]["name"] for m in hpa["spec"]["metrics"]]


def test_pd_roles_get_one_hpa_each_on_their_own_vllm_pods():
    plan = plan_for(llmd_version=V9, autoscale=["decode=1-4", "prefill=2-8"])
    hpas, deps = _objects(plan, "HorizontalPodAutoscaler"), _objects(plan, "Deployment")
    assert set(hpas) == set(deps) == {"ms-pd-prefill", "ms-pd-decode"}
    for name, hpa in hpas.items():
        role = plan.roles[hpa["metadata"]["labels"]["llm-d.ai/role"]]
        assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": name} and name == role.deployment
        assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == role.autoscale
        assert all(m["type"] == "Pods" and m["pods"]["target"]["type"] == "AverageValue" for m in hpa["spec"]["metrics"])
        assert hpa["spec"]["behavior"]["scaleDown"]["stabilizationWindowSeconds"] == 300
        # the HPA owns the count: a replicas field would be reset by every helm upgrade
        assert "replicas" not in deps[name]["spec"]
    assert plan.roles["prefill"].autoscale == (2, 8) and plan.roles["decode"].autoscale == (1, 4)
    assert _metric_names(hpas["ms-pd-prefill"]) == ["vllm_num_requests_waiting"]
    assert _metric_names(hpas["ms-pd-decode"]) == ["vllm_num_requests_waiting", "vllm_kv_cache_usage_perc"]


def test_only_the_named_role_is_autoscaled():
    plan = plan_for(llmd_version=V9, autoscale=["decode=1-3"])
    assert set(_objects(plan, "HorizontalPodAutoscaler")) == {"ms-pd-decode"}
    deps = _objects(plan, "Deployment")
    assert deps["ms-pd-prefill"]["spec"]["replicas"] == plan.roles["prefill"].replicas and "replicas" not in deps["ms-pd-decode"]["spec"]
    assert plan.roles["prefill"].autoscale is None and plan.roles["prefill"].replica_range == (4, 4)


def test_an_aggregated_stack_scales_on_its_pools_averages():
    plan = plan_for(llmd_version=V9, guide="inference-scheduling", prefill="0", decode="2xTP2", autoscale=["decode=1-4"])
    (hpa,) = _objects(plan, "HorizontalPodAutoscaler").values()
    for m in hpa["spec"]["metrics"]:
        assert m["type"] == "External" and m["external"]["metric"]["selector"] == {"matchLabels": {"name": plan.names["pool"]}}
        assert m["external"]["target"]["type"] == "Value"
    assert _metric_names(hpa) == ["llm_d_epp_average_queue_size", "llm_d_epp_average_kv_cache_utilization"]
    other = plan_for(llmd_version=V9, guide="inference-scheduling", prefill="0", decode="2xTP2", autoscale=["decode=1-4"], postfix="b")
    (hpa_b,) = _objects(other, "HorizontalPodAutoscaler").values()
    assert hpa_b["metadata"]["name"] != hpa["metadata"]["name"]
    assert hpa_b["spec"]["metrics"][0]["external"]["metric"]["selector"]["matchLabels"]["name"] == "router-b"  # never the other stack's pool


def test_a_wide_role_scales_its_leaderworkerset_groups():
    plan = plan_for(llmd_version=V9, environments=["gb200"], autoscale=["decode=1-2"])
    hpa = _objects(plan, "HorizontalPodAutoscaler")["ms-pd-decode"]
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "leaderworkerset.x-k8s.io/v1", "kind": "LeaderWorkerSet", "name": "ms-pd-decode"}
    lws = _objects(plan, "LeaderWorkerSet")
    assert "replicas" not in lws["ms-pd-decode"]["spec"] and lws["ms-pd-prefill"]["spec"]["replicas"] == 2


def test_the_readme_gives_adapter_rules_for_exactly_the_names_the_hpas_read(tmp_path):
    from llmdctl.compose.autoscaling import adapter_rules
    from llmdctl.effects.bundle import bundle_files

    for kw in (dict(autoscale=["decode=1-4", "prefill=2-8"]),
               dict(guide="inference-scheduling", prefill="0", decode="2xTP2", autoscale=["decode=1-4"])):
        plan = plan_for(llmd_version=V9, **kw)
        read = {n for h in _objects(plan, "HorizontalPodAutoscaler").values() for n in _metric_names(h)}
        rules = adapter_rules(plan)["rules"]
        served = {r["name"]["as"] for kind in rules.values() for r in kind}
        assert served == read
        for kind, items in rules.items():
            for r in items:
                assert "<<.LabelMatchers>>" in r["metricsQuery"] and ("pod" in r["resources"]["overrides"]) == (kind == "custom")
        readme = bundle_files(plan)["README.md"]
        assert "## Autoscaling" in readme and "--autoscale decode=1-4" in readme
        block = readme.split("## Autoscaling", 1)[1].split("```yaml\n", 1)[1].split("```", 1)[0]
        assert parse(block) == adapter_rules(plan)
    assert "## Autoscaling" not in bundle_files(plan_for(llmd_version=V9))["README.md"]


@pytest.mark.parametrize("args, message", [
    (("--llmd-version", "v0.6.0", "--autoscale", "decode=1-4"), "renders HPAs for the router generation"),
    (("--guide", "inference-scheduling", "--autoscale", "prefill=1-2"), "no prefill pods"),
    (("--decode", "1xTP4", "--autoscale", "decode=2-4"), "starts 1 replica(s), outside that range"),
    (("--autoscale", "decode=0-4"), "an HPA cannot scale to zero"),
    (("--autoscale", "decode=4-2"), "need 1 <= MIN <= MAX"),
    (("--autoscale", "gpu=1-2"), "expected ROLE=MIN-MAX"),
])
def test_impossible_autoscaling_is_refused_with_a_reason(cli, args, message):
    full = args if "--llmd-version" in args else ("--llmd-version", V9, *args)
    r = cli("render", *full, "--print")
    assert r.code == 2 and message in r.err and "Traceback" not in r.err, r


def test_a_spec_file_autoscales_and_a_flag_overrides_its_role(tmp_path):
    from llmdctl.inputs.spec import build_spec

    spec_file = tmp_path / "s.yaml"
    spec_file.write_text(f"llmdVersion: {V9}\nautoscale:\n  decode: 1-4\n  prefill: 2-6\n")
    spec = build_spec(spec_file=str(spec_file), autoscale=["decode=1-8"], env={})
    assert spec.autoscale == (("prefill", 2, 6), ("decode", 1, 8))
    spec_file.write_text("autoscale: {decode: lots}\n")
    with pytest.raises(Exception) as exc:
        build_spec(spec_file=str(spec_file), env={})
    assert "spec file autoscale" in str(exc.value)


# --- verify, doctor, drift -------------------------------------------------------------------


def _observed(plan, hpas, replicas, ready=None, pods=None):
    from llmdctl.effects.health import Observed

    deps = {}
    for name, dep in _objects(plan, "Deployment").items():
        deps[name] = {**dep, "spec": {**dep["spec"], "replicas": replicas}, "status": {"readyReplicas": replicas if ready is None else ready}}
    return Observed([], deps, pods or [], None, None, None, {}, None, {}, hpas)


def _hpa(plan, name, *, active="True", reason="ValidMetricFound", message="", current=2):
    hpa = _objects(plan, "HorizontalPodAutoscaler")[name]
    return {**hpa, "status": {"currentReplicas": current, "desiredReplicas": current,
                              "conditions": [{"type": "ScalingActive", "status": active, "reason": reason, "message": message}]}}


def test_verify_accepts_any_count_in_the_range_and_fails_an_hpa_that_cannot_read_its_metrics():
    from llmdctl.effects.health import FAIL, PASS, evaluate_stack

    plan = plan_for(llmd_version=V9, guide="inference-scheduling", prefill="0", decode="2xTP2", autoscale=["decode=1-4"])
    name = plan.roles["decode"].deployment
    checks = {c.name: c for c in evaluate_stack(plan, _observed(plan, {name: _hpa(plan, name)}, 3))}
    assert checks[f"decode Deployment {name}"].status == PASS and "1-4 replicas (HPA)" in checks[f"decode Deployment {name}"].expected
    assert checks[f"decode HPA {name}"].status == PASS
    checks = {c.name: c for c in evaluate_stack(plan, _observed(plan, {name: _hpa(plan, name)}, 6))}
    assert checks[f"decode Deployment {name}"].status == FAIL and "spec.replicas 6" in checks[f"decode Deployment {name}"].observed
    broken = _hpa(plan, name, active="False", reason="FailedGetExternalMetric",
                  message='unable to get external metric llm-d-inference-scheduling/llm_d_epp_average_queue_size: no metrics returned')
    hpa = {c.name: c for c in evaluate_stack(plan, _observed(plan, {name: broken}, 2))}[f"decode HPA {name}"]
    assert hpa.status == FAIL and "FailedGetExternalMetric" in hpa.observed and "llmdctl doctor" in hpa.hint
    missing = {c.name: c for c in evaluate_stack(plan, _observed(plan, {}, 2))}[f"decode HPA {name}"]
    assert missing.status == FAIL and missing.observed == "missing"
    edited = {**_hpa(plan, name), "spec": {**_hpa(plan, name)["spec"], "maxReplicas": 9}}
    assert {c.name: c for c in evaluate_stack(plan, _observed(plan, {name: edited}, 2))}[f"decode HPA {name}"].status == FAIL


def test_apply_sees_drift_only_outside_the_hpas_range():
    from llmdctl.effects.lifecycle import live_drift

    plan = plan_for(llmd_version=V9, autoscale=["decode=1-4"])
    deps = _objects(plan, "Deployment")

    def listing(decode_replicas):
        items = []
        for name, dep in deps.items():
            items.append({**dep, "kind": "Deployment", "spec": {**dep["spec"], "replicas": decode_replicas if name == "ms-pd-decode" else plan.roles["prefill"].replicas}})
        return json.dumps({"items": items})

    assert live_drift(plan, listing(3)) == []
    assert live_drift(plan, listing(7)) == ["ms-pd-decode has 7 replicas, the plan 1-4 (HPA)"]


def _apiservice(kube_api, group_version, *, service="prometheus-adapter", available="True"):
    group, version = group_version.split("/")
    kube_api.put("/apis/apiregistration.k8s.io/v1/apiservices", {
        "metadata": {"name": f"{version}.{group}"},
        "spec": {"group": group, "version": version, "service": {"namespace": "monitoring", "name": service}},
        "status": {"conditions": [{"type": "Available", "status": available, "reason": "Passed" if available == "True" else "FailedDiscoveryCheck",
                                   "message": "" if available == "True" else "failing or missing response from https://10.0.0.9:443"}]}})


def _discovery(kube_api, group_version, names):
    group, version = group_version.split("/")
    kube_api.put(f"/apis/{group}", {"kind": "APIResourceList", "groupVersion": group_version, "metadata": {"name": version},
                                    "resources": [{"name": n, "namespaced": True, "kind": "ExternalMetricValueList"} for n in names]})


def test_doctor_checks_the_metrics_adapter_and_the_names_it_serves(kube_api):
    from llmdctl.effects.health import FAIL, PASS
    from llmdctl.effects.doctor import metrics_api_checks
    from llmdctl.effects.kube import Kube

    kube = Kube(kubeconfig=str(kube_api.kubeconfig))
    pd = plan_for(llmd_version=V9, autoscale=["decode=1-4", "prefill=2-8"])
    agg = plan_for(llmd_version=V9, guide="inference-scheduling", prefill="0", decode="2xTP2", autoscale=["decode=1-4"])
    (none,) = metrics_api_checks(kube, pd)
    assert none.status == FAIL and none.name == "APIService v1beta1.custom.metrics.k8s.io" and "not registered" in none.observed
    assert "Autoscaling section" in none.hint

    _apiservice(kube_api, "custom.metrics.k8s.io/v1beta1", available="False")
    (down,) = metrics_api_checks(kube, pd)
    assert down.status == FAIL and "FailedDiscoveryCheck" in down.observed and "kubectl get pods -n monitoring" in down.hint

    _apiservice(kube_api, "custom.metrics.k8s.io/v1beta1")
    _discovery(kube_api, "custom.metrics.k8s.io/v1beta1", ["pods/vllm_num_requests_waiting", "namespaces/vllm_num_requests_waiting"])
    (short,) = metrics_api_checks(kube, pd)
    assert short.status == FAIL and short.observed == "served by monitoring/prometheus-adapter, without vllm_kv_cache_usage_perc"
    _discovery(kube_api, "custom.metrics.k8s.io/v1beta1", ["pods/vllm_num_requests_waiting", "pods/vllm_kv_cache_usage_perc"])
    (ok,) = metrics_api_checks(kube, pd)
    assert ok.status == PASS

    # KEDA owns the external API: it answers only for ScaledObjects, never for these HPAs
    _apiservice(kube_api, "external.metrics.k8s.io/v1beta1", service="keda-operator-metrics-apiserver")
    (keda,) = metrics_api_checks(kube, agg)
    assert keda.status == FAIL and "KEDA" in keda.observed and "ScaledObject" in keda.hint
    _apiservice(kube_api, "external.metrics.k8s.io/v1beta1")
    _discovery(kube_api, "external.metrics.k8s.io/v1beta1", ["llm_d_epp_average_queue_size", "llm_d_epp_average_kv_cache_utilization"])
    assert [c.status for c in metrics_api_checks(kube, agg)] == [PASS]
    assert metrics_api_checks(kube, plan_for(llmd_version=V9)) == []


def test_validate_json_says_which_roles_scale_and_how_the_prefix_cache_is_known(cli):
    r = cli("validate", "--llmd-version", V9, "--autoscale", "decode=1-4", "--prefix-cache", "precise", "-o", "json")
    stack = json.loads(r.out)["stack"]
    assert r.code == 0 and stack["prefixCache"] == "precise"
    assert stack["roles"]["decode"]["autoscale"] == {"min": 1, "max": 4} and stack["roles"]["prefill"]["autoscale"] is None


@pytest.mark.parametrize("bounds,status,short", [("decode=1-2", "pass", 0), ("decode=1-4", "warn", 2), ("decode=1-1", None, 0)])
def test_doctor_sizes_capacity_at_the_hpa_maximum_too(bounds, status, short):
    """The layout fits now; whether it still fits when the HPA grows the role to its maximum is
    a separate check (a warning: the HPA may never get there)."""
    from llmdctl.effects.placement import evaluate_capacity

    plan = plan_for(llmd_version=V9, environments=["gke"], prefill="0", decode="1xTP4", autoscale=[bounds])
    nodes = [{"metadata": {"name": f"n{i}"}, "status": {"allocatable": {"nvidia.com/gpu": "4"}}} for i in range(2)]
    checks = {c.name: c for c in evaluate_capacity(plan, nodes)}
    assert checks["capacity nvidia.com/gpu"].status == "pass"
    peak = checks.get("capacity nvidia.com/gpu at the HPA maximum")
    if status is None:
        assert peak is None  # max = the layout's count: nothing more to size
        return
    top = int(bounds.split("-")[1])
    assert peak.status == status and peak.expected == f"{top} decode x 4 = {4 * top} nvidia.com/gpu"
    if short:
        assert f"{short} pod(s) would not fit" in peak.observed and "--autoscale" in peak.hint
