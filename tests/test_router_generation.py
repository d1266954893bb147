"""llm-d v0.8/v0.9 (issue 13): the router chart release plus the model-server chart llmdctl writes.

Snapshots pin a bundle per hardware profile; the property tests assert, on every combination of
hardware x gateway x layout x host-network, what must hold whatever a snapshot says: release names
and charts, the pool selector and its pods, ports, GPU / RDMA / DRA counts, the sidecar, postfixed
names. The generated chart is installed by real helm in tests/e2e/test_e2e_router.py.
"""

from __future__ import annotations

import os

import pytest

from conftest import parse, plan_for
from matrix import router_cases
from llmdctl.base.errors import InputError, ValidationError
from llmdctl.base.yamlio import load_text
from llmdctl.compose.modelserver import chart_files
from llmdctl.base.yamlio import dump
from llmdctl.effects.bundle import bundle_files
from llmdctl.effects.bundle_folder import remove_bundle, write_bundle

ALL = list(router_cases(("v0.9.0", "v0.8.0", "v0.7.0")))
ACCEPTED = [(cid, kw) for cid, kw, refusal in ALL if refusal is None]  # the refused ones: test_render_matrix.py
SNAPSHOTS = [c for c in ACCEPTED if c[0].startswith("v0.9.0") and c[0].endswith("-default-plain")
             and ("-standalone-" in c[0] or c[0].startswith("v0.9.0-nvidia-ib-"))]


def _router_view(values: dict) -> tuple[dict, dict | None, dict | None]:
    """(router block, httpRoute, provider) in the v0.8+ chart shape, also for v0.7's GAIE keys."""
    if "router" in values:
        return values["router"], values.get("httpRoute"), values.get("provider")
    ext, pool = values["inferenceExtension"], values["inferencePool"]
    router = {"epp": ext, "monitoring": ext.get("monitoring"), "extraServicePorts": ext.get("extraServicePorts"),
              "modelServers": {"matchLabels": pool["modelServers"]["matchLabels"], "targetPorts": pool["targetPorts"]}}
    if "sidecar" in ext:
        router["proxy"] = ext["sidecar"]
    route = values.get("experimentalHttpRoute")
    if route is not None:
        route = {("create" if k == "enabled" else k): v for k, v in route.items()}
    return router, route, values.get("provider")


def _bundle(**kw):
    plan = plan_for(**kw)
    files = bundle_files(plan)
    docs = {name: parse(text) for name, text in files.items() if name.endswith(".yaml")}
    return plan, files, docs


def _objects(docs, chart: str) -> list[dict]:
    return [d for name, d in docs.items() if name.startswith(f"charts/{chart}/templates/")]


def _by_kind(objects, kind):
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


@pytest.mark.parametrize("cid,kw", SNAPSHOTS, ids=lambda v: v if isinstance(v, str) else "")
def test_bundle_snapshot(cid, kw, snapshot):
    _, files, _ = _bundle(**kw)
    assert {k: v for k, v in files.items() if k != "README.md"} == snapshot


def test_the_snapshots_cover_every_hardware_profile_and_gateway():
    ids = [c[0] for c in SNAPSHOTS]
    assert {i.split("-standalone-")[0] for i in ids if "-standalone-" in i} == {
        f"v0.9.0-{hw}" for hw in ("nvidia-ib", "amd-roce", "gke-dra", "gke-no-rdma", "gh200-timeslice", "aws-efa", "intel-xpu")}
    assert len([i for i in ids if i.startswith("v0.9.0-nvidia-ib-")]) == 5  # every gateway


@pytest.mark.parametrize("cid,kw", ACCEPTED, ids=lambda v: v if isinstance(v, str) else "")
def test_bundle_properties(cid, kw):
    plan, files, docs = _bundle(**kw)
    p, release = plan.postfix, plan.release_info
    standalone = plan.gateway == "standalone"
    helmfile = docs["helmfile.yaml"]

    # releases: (gateway-), router-, ms-<postfix>; the router from its pinned chart, the others from the bundle
    rels = {r["name"]: r for r in helmfile["releases"]}
    assert list(rels) == ([] if standalone else [f"gateway-{p}"]) + [f"router-{p}", f"ms-{p}"]
    pin = release.charts["router" if standalone else "routerGateway"]
    router_rel = rels[f"router-{p}"]
    assert (router_rel["chart"], router_rel["version"], router_rel["values"]) == (pin["chart"], pin["version"], ["router.values.yaml"])
    chart = router_rel["chart"].rsplit("/", 1)[1]
    assert chart in (("llm-d-router-standalone", "standalone") if standalone else ("llm-d-router-gateway", "inferencepool"))
    ms_rel = rels[f"ms-{p}"]
    assert ms_rel["chart"] == "./charts/ms" and ms_rel["skipDeps"] is True and "version" not in ms_rel and "values" not in ms_rel
    assert ms_rel["needs"] == [f"router-{p}"]
    assert "httproute.yaml" not in files and not any(n.startswith(("infra", "gaie")) for n in files)

    # router values: the stack's selector and port, per-stack names for upstream's fixed ones
    router, http_route, provider = _router_view(docs["router.values.yaml"])
    selector = router["modelServers"]["matchLabels"]
    assert selector == dict(plan.pool_selector) and selector["app.kubernetes.io/instance"] == f"llm-d-{p}"
    assert router["modelServers"]["targetPorts"] == [{"number": 8000}]
    assert router["epp"]["image"]["tag"] == release.images["scheduler"].rsplit(":", 1)[1] != "main"
    assert router["monitoring"]["prometheus"]["auth"]["secretName"] == f"router-{p}-sa-metrics-reader-secret"
    config_file = router["epp"]["pluginsConfigFile"]
    config = load_text(router["epp"]["pluginsCustomConfig"][config_file], "EPP config").data
    assert config["kind"] == "EndpointPickerConfig" and config["apiVersion"] == release.dialect["eppApiVersion"]
    profiles = [s["name"] for s in config["schedulingProfiles"]]
    assert profiles == (["prefill", "decode"] if plan.mode == "disaggregated" else ["default"])
    if standalone:
        proxy = router["proxy"]
        assert proxy["configMap"]["name"] == proxy["volumes"][0]["configMap"]["name"] == f"router-{p}-envoy"
        assert router["extraServicePorts"] == [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8081}]
        assert http_route is None and provider is None
    else:
        assert http_route["create"] is True and http_route["inferenceGatewayName"] == f"gateway-{p}"
        assert provider["name"] == plan.gateway_facts["routerProvider"]
        gateways = _by_kind(_objects(docs, "gateway"), "Gateway")
        assert list(gateways) == [f"gateway-{p}"] and gateways[f"gateway-{p}"]["spec"]["gatewayClassName"] == plan.gateway_facts["className"]

    # the generated model-server chart
    assert docs["charts/ms/Chart.yaml"]["name"] == "llmdctl-model-servers"
    objects = _objects(docs, "ms")
    assert all(o["metadata"]["name"].startswith(f"ms-{p}") for o in objects)
    deployments = _by_kind(objects, "Deployment")
    assert sorted(deployments) == sorted(rp.deployment for rp in plan.roles.values())
    sa = [o["metadata"]["name"] for o in objects if o["kind"] == "ServiceAccount"]
    assert sa == [f"ms-{p}"]
    dra = plan.claims
    claims = _by_kind(objects, "ResourceClaimTemplate")
    assert list(claims) == ([f"ms-{p}-accel"] if dra else [])
    for role, rp in plan.roles.items():
        dep = deployments[rp.deployment]
        template = dep["spec"]["template"]
        labels = template["metadata"]["labels"]
        assert dep["spec"]["replicas"] == rp.replicas
        assert dep["spec"]["selector"]["matchLabels"].items() <= labels.items()
        assert selector.items() <= labels.items() and labels["llm-d.ai/role"] == role
        pod = template["spec"]
        assert pod["serviceAccountName"] == f"ms-{p}"
        vllm = next(c for c in pod["containers"] if c["name"] == "vllm")
        assert vllm["command"][:2] == ["vllm", "serve"] and vllm["image"] == rp.image
        args = {a.split("=", 1)[0]: a.split("=", 1)[-1] for a in vllm["args"]}
        assert len(args) == len(vllm["args"]), vllm["args"]  # no flag twice
        assert args["--tensor-parallel-size"] == str(rp.tensor)
        disagg_decode = role == "decode" and plan.mode == "disaggregated"
        assert args["--port"] == ("8200" if disagg_decode else "8000") == str(rp.vllm_port)
        assert next(x for x in vllm["ports"] if x["name"] == "vllm")["containerPort"] == rp.vllm_port
        env = {e["name"]: e for e in vllm["env"]}
        assert env["HF_TOKEN"] == {"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {"name": plan.hf_secret, "key": "HF_TOKEN"}}}
        limits = vllm["resources"].get("limits") or {}
        requests = vllm["resources"].get("requests") or {}
        if dra:  # one claim per GPU, each a GPU and its NIC; no device-plugin GPU besides
            assert [c["resourceClaimTemplateName"] for c in pod["resourceClaims"]] == [f"ms-{p}-accel"] * rp.gpus_per_pod
            assert vllm["resources"]["claims"] == [{"name": c["name"]} for c in pod["resourceClaims"]]
            assert rp.accelerator_resource not in limits and rp.accelerator_resource not in requests
        elif rp.accelerator_resource:
            assert limits[rp.accelerator_resource] == requests[rp.accelerator_resource] == rp.gpus_per_pod
        rdma = plan.hardware_facts.get("rdma")
        if rdma and plan.mode == "disaggregated":
            want = (rdma.get("countByRole") or {}).get(role, rdma.get("count", 1))
            assert limits[rdma["resource"]] == requests[rdma["resource"]] == want == rp.rdma["count"]
        else:
            assert not any(k.startswith("rdma/") or k.endswith("/efa") for k in {**limits, **requests})
        sidecars = [c for c in pod.get("initContainers") or [] if c["name"] == "routing-proxy"]
        if plan.mode == "disaggregated":
            assert env["VLLM_NIXL_SIDE_CHANNEL_HOST"]["valueFrom"]["fieldRef"]["fieldPath"] == "status.podIP"
            assert int(env["VLLM_NIXL_SIDE_CHANNEL_PORT"]["value"]) in [x["containerPort"] for x in vllm["ports"]]
            assert any("NixlConnector" in a for a in vllm["args"])
        else:
            assert not any("kv-transfer-config" in a for a in vllm["args"])
        if disagg_decode:
            (sidecar,) = sidecars
            assert sidecar["restartPolicy"] == "Always" and sidecar["image"] == release.images["routingSidecar"]
            assert "--port=8000" in sidecar["args"] and any(a.endswith("=8200") for a in sidecar["args"])
        else:
            assert sidecars == []
        if plan.hardware_facts.get("hostNetwork"):
            assert pod["hostNetwork"] is True and pod["dnsPolicy"] == "ClusterFirstWithHostNet"
            term = pod["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][0]
            assert term["labelSelector"]["matchLabels"] == selector
    if plan.mode == "aggregated":
        assert f"ms-{p}-prefill" not in deployments

    # helm parses every template: nothing in them may start a template action
    for name, text in files.items():
        if name.startswith("charts/") and "/templates/" in name:
            assert "{{" not in text.replace('{{ "{{" }}', "").replace('{{ "}}" }}', ""), name


def _cli_bundle(cli, tmp_path, *args, env=None):
    out = tmp_path / "b"
    r = cli("render", "-o", str(out), *args, env={"LLMD_VERSION": "", **(env or {})})
    assert r.code == 0, r
    docs = {}
    for root, _, names in os.walk(out):
        for n in names:
            if n.endswith(".yaml"):
                rel = os.path.relpath(os.path.join(root, n), out)
                docs[rel] = parse(open(os.path.join(root, n)).read())
    return docs


def test_a_new_user_gets_v090_standalone_with_the_reference_layout(cli, tmp_path):
    docs = _cli_bundle(cli, tmp_path)
    rels = docs["helmfile.yaml"]["releases"]
    assert [(r["name"], r["chart"], r.get("version")) for r in rels] == [
        ("router-pd", "oci://ghcr.io/llm-d/charts/llm-d-router-standalone", "v0.10.0"), ("ms-pd", "./charts/ms", None)]
    deps = _by_kind(_objects(docs, "ms"), "Deployment")
    for name, replicas, tp in (("ms-pd-prefill", 4, 1), ("ms-pd-decode", 1, 4)):
        spec = deps[name]["spec"]
        vllm = spec["template"]["spec"]["containers"][0]
        assert spec["replicas"] == replicas and f"--tensor-parallel-size={tp}" in vllm["args"]
        assert vllm["resources"]["limits"]["rdma/ib"] == 1 and vllm["resources"]["limits"]["nvidia.com/gpu"] == tp


def test_amd_gives_rocm_pods_with_eight_gpus_each(cli, tmp_path):
    deps = _by_kind(_objects(_cli_bundle(cli, tmp_path, "-e", "amd"), "ms"), "Deployment")
    assert sorted(deps) == ["ms-pd-decode", "ms-pd-prefill"]
    for dep in deps.values():
        vllm = dep["spec"]["template"]["spec"]["containers"][0]
        assert dep["spec"]["replicas"] == 1 and vllm["image"] == "ghcr.io/llm-d/llm-d-rocm:v0.9.0"
        assert vllm["resources"]["limits"]["amd.com/gpu"] == 8 and "--attention-backend=ROCM_ATTN" in vllm["args"]
        assert "nvidia.com/gpu" not in vllm["resources"]["limits"]


def test_gke_claims_gpus_with_their_nics_and_asks_for_no_rdma_ib(cli, tmp_path):
    docs = _cli_bundle(cli, tmp_path, "-e", "gke")
    text = dump(docs)
    assert "rdma/ib" not in text
    assert docs["helmfile.yaml"]["releases"][1]["chart"].endswith("llm-d-router-gateway")
    assert docs["router.values.yaml"]["provider"]["name"] == "gke"
    (rct,) = _by_kind(_objects(docs, "ms"), "ResourceClaimTemplate").values()
    classes = [r["exactly"]["deviceClassName"] for r in rct["spec"]["spec"]["devices"]["requests"]]
    assert classes == ["gpu.nvidia.com", "mrdma.google.com"]
    assert rct["spec"]["spec"]["devices"]["constraints"][0]["matchAttribute"] == "resource.kubernetes.io/pcieRoot"
    decode = _by_kind(_objects(docs, "ms"), "Deployment")["ms-pd-decode"]["spec"]["template"]["spec"]
    assert len(decode["resourceClaims"]) == 4  # TP4: four GPUs, four NICs


def test_istio_switches_to_the_gateway_chart_with_an_httproute(cli, tmp_path):
    docs = _cli_bundle(cli, tmp_path, "-e", "istio")
    rels = docs["helmfile.yaml"]["releases"]
    assert [r["name"] for r in rels] == ["gateway-pd", "router-pd", "ms-pd"]
    assert rels[1]["chart"] == "oci://ghcr.io/llm-d/charts/llm-d-router-gateway" and rels[1]["needs"] == ["gateway-pd"]
    values = docs["router.values.yaml"]
    assert values["httpRoute"] == {"create": True, "inferenceGatewayName": "gateway-pd", "requestTimeout": "0s"}
    assert values["provider"]["name"] == "istio" and values["provider"]["istio"]["destinationRule"]["trafficPolicy"]["tls"]["mode"] == "SIMPLE"


def _names(plan) -> set[tuple[str, str]]:
    """Every object name the stack owns: the generated charts' and the router chart's (named after its release)."""
    out = {(o["kind"], o["metadata"]["name"]) for objs in plan.manifests.values() for o in objs}
    n = plan.names
    out |= {("InferencePool", n["pool"]), ("Deployment", n["epp"]), ("Service", n["epp"]), ("ConfigMap", n["epp"]),
            ("ConfigMap", n["envoyConfigMap"]), ("Secret", n["metricsSecret"]), ("HTTPRoute", n["route"])}
    return out | {("HelmRelease", r.name) for r in plan.releases}


@pytest.mark.parametrize("env", [["nvidia-ib"], ["gke-dra", "istio"], ["amd-roce", "host-network"]])
def test_two_postfixes_share_no_object_name_and_no_pod(env):
    a = plan_for(llmd_version="v0.9.0", environments=env)
    b = plan_for(llmd_version="v0.9.0", environments=env, postfix="pd-2")
    assert not _names(a) & _names(b)
    a_pods = [o["spec"]["template"]["metadata"]["labels"] for o in a.manifests["ms"] if o["kind"] == "Deployment"]
    assert not any(a.pool_selector.items() <= labels.items() for labels in
                   (o["spec"]["template"]["metadata"]["labels"] for o in b.manifests["ms"] if o["kind"] == "Deployment"))
    assert all(a.pool_selector.items() <= labels.items() for labels in a_pods)
    if a.standalone:  # upstream's fixed `envoy` ConfigMap would be owned by both releases
        names = {s.release("router").values["router"]["proxy"]["configMap"]["name"] for s in (a, b)}
        assert names == {"router-pd-envoy", "router-pd-2-envoy"}


def test_renders_are_byte_identical():
    kw = dict(llmd_version="v0.9.0", environments=["gke-dra", "istio"])
    assert bundle_files(plan_for(**kw)) == bundle_files(plan_for(**kw))


@pytest.mark.parametrize("kw,message", [
    (dict(llmd_version="v0.6.0", environments=["gke-dra"]), "cannot attach DRA resource claims"),
    (dict(llmd_version="v0.6.0", environments=["standalone"]), "standalone mode (no Gateway) is the router chart's"),
    (dict(llmd_version="v0.9.0", sets=["gaie.inferenceExtension.replicas=2"]), "llm-d v0.9.0 has no gaie release; its releases are router, ms"),
    (dict(llmd_version="v0.9.0", sets=["ms.decode.bogus=1"]), "ms.decode.bogus"),
    (dict(llmd_version="v0.9.0", sets=["ms.multinode=true"]), "llmdctl makes an instance span nodes from the layout"),
    (dict(llmd_version="v0.9.0", model="oci://registry.example/models/qwen:1"), "loads hf:// and pvc:// models"),
    (dict(llmd_version="v0.8.0", environments=["amd"]), "ships no 'rocm' vLLM image"),
    (dict(llmd_version="v0.6.0", environments=["aws-efa"]), "ships no 'aws' vLLM image"),
    (dict(llmd_version="v0.9.0", sets=["ms.decode.replicas=x"]), "expected integer"),
    (dict(llmd_version="v0.9.0", prefill="0", decode="1xTP2", sets=["ms.routing.proxy.enabled=true"]), "the decode sidecar is on but has no image"),
])
def test_what_a_generation_cannot_express_is_refused_with_the_reason(kw, message):
    with pytest.raises((InputError, ValidationError)) as exc:
        plan_for(**kw)
    assert message in exc.value.message, exc.value.message


def test_selective_pd_and_scheduler_params_on_the_router():
    plan = plan_for(llmd_version="v0.9.0", pd_threshold=64,
                    scheduler_params=["prefix-cache-affinity-filter.peakPrefillThroughput=20000"])
    text = plan.epp_values["pluginsCustomConfig"]["pd-config.yaml"]
    doc = load_text(text, "EPP config").data
    types = {p["type"]: p.get("parameters") for p in doc["plugins"]}
    assert types["prefix-based-pd-decider"] == {"nonCachedTokens": 64} and "always-disagg-pd-decider" not in types
    assert types["disagg-profile-handler"] == {"deciders": {"prefill": "prefix-based-pd-decider"}}
    assert types["prefix-cache-affinity-filter"]["peakPrefillThroughput"] == 20000
    assert not any("peakPrefillThroughput" in n for n in plan.notes)  # measured by the user: no calibration note
    assert any("peakPrefillThroughput 33821" in n for n in plan_for(llmd_version="v0.9.0").notes)


def test_a_template_action_in_a_value_is_written_so_helm_prints_it():
    files = chart_files([{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}, "data": {"a": "{{ .Values.x }}"}}],
                        chart="c", version="0.1.0", description="d")
    assert '{{ "{{" }} .Values.x }}' in files["templates/configmap-x.yaml"]


def test_the_bundle_writer_keeps_foreign_files_in_chart_folders(tmp_path):
    out = tmp_path / "bundle"
    files = bundle_files(plan_for(llmd_version="v0.9.0"))
    write_bundle(files, out)
    (out / "charts" / "ms" / "mine.txt").write_text("not llmdctl's")
    write_bundle(bundle_files(plan_for(llmd_version="v0.6.0")), out)  # the helmfile era has no charts/
    assert (out / "charts" / "ms" / "mine.txt").read_text() == "not llmdctl's"
    assert not (out / "charts" / "ms" / "templates").exists() and not (out / "charts" / "ms" / "Chart.yaml").exists()
    remove_bundle(out)
    assert sorted(p.name for p in out.rglob("*")) == ["charts", "mine.txt", "ms"]


def test_aws_efa_gives_each_role_its_nics_and_libfabric():
    plan = plan_for(llmd_version="v0.9.0", environments=["aws-efa"])
    assert {r: p.rdma["count"] for r, p in plan.roles.items()} == {"prefill": 2, "decode": 8}
    for dep in (o for o in plan.manifests["ms"] if o["kind"] == "Deployment"):
        role = dep["metadata"]["labels"]["llm-d.ai/role"]
        pod = dep["spec"]["template"]["spec"]
        vllm = pod["containers"][0]
        assert vllm["resources"]["limits"]["vpc.amazonaws.com/efa"] == plan.roles[role].rdma["count"]
        assert "cpu" not in vllm["resources"]["limits"] and vllm["resources"]["requests"]["cpu"]
        assert any('"backends":["LIBFABRIC"]' in a for a in vllm["args"])
        assert pod["affinity"]["podAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][0]["topologyKey"] == "topology.kubernetes.io/zone"
    # a count on the command line is every role's
    plan = plan_for(llmd_version="v0.9.0", environments=["aws-efa"], rdma_resource="vpc.amazonaws.com/efa=4")
    assert {r: p.rdma["count"] for r, p in plan.roles.items()} == {"prefill": 4, "decode": 4}


def test_v070_writes_the_gaie_charts_keys_and_flags_address_them():
    plan = plan_for(llmd_version="v0.7.0", environments=["istio"], sets=["router.inferenceExtension.replicas=1"])
    rel = plan.release("router")
    assert (rel.chart, rel.version) == ("oci://registry.k8s.io/gateway-api-inference-extension/charts/inferencepool", "v1.5.0")
    values = rel.values
    assert set(values) == {"inferenceExtension", "inferencePool", "provider", "experimentalHttpRoute"}
    assert values["experimentalHttpRoute"] == {"enabled": True, "inferenceGatewayName": "gateway-pd", "requestTimeout": "0s"}
    assert values["inferenceExtension"]["image"] == {"registry": "ghcr.io/llm-d", "repository": "llm-d-inference-scheduler", "tag": "v0.8.0", "pullPolicy": "IfNotPresent"}
    assert "apiVersion: inference.networking.x-k8s.io/v1alpha1" in values["inferenceExtension"]["pluginsCustomConfig"]["pd-config.yaml"]
    assert plan.provenance["router"]["inferenceExtension.replicas"] == "--set router.inferenceExtension.replicas"
    standalone = plan_for(llmd_version="v0.7.0").release("router").values["inferenceExtension"]["sidecar"]
    assert standalone["configMap"]["name"] == standalone["volumes"][0]["configMap"]["name"] == "router-pd-envoy"
    with pytest.raises(ValidationError) as exc:
        plan_for(llmd_version="v0.7.0", sets=["router.router.epp.replicas=2"])  # the v0.8 keys are not v0.7's chart's
    assert "unknown key 'router'; allowed: inferenceExtension, inferencePool" in exc.value.message


def test_the_v090_overlays_pod_settings_reach_the_pods():
    plan = plan_for(llmd_version="v0.9.0")
    env = {d["metadata"]["labels"]["llm-d.ai/role"]: {e["name"]: e.get("value") for e in d["spec"]["template"]["spec"]["containers"][0]["env"]}
           for d in plan.manifests["ms"] if d["kind"] == "Deployment"}
    assert env["prefill"]["VLLM_HTTP_TIMEOUT_KEEP_ALIVE"] == "120" and "VLLM_HTTP_TIMEOUT_KEEP_ALIVE" not in env["decode"]
    assert env["prefill"]["USER"] == env["decode"]["USER"] == "llm-d"
    args = next(d for d in plan.manifests["ms"] if d["kind"] == "Deployment")["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--disable-access-log-for-endpoints=/health,/metrics,/v1/models" in args and "--disable-uvicorn-access-log" not in args
    # the helmfile era keeps its own values (this layer is the release's)
    old = plan_for(llmd_version="v0.6.0").ms_values["prefill"]["containers"][0]
    assert "--disable-uvicorn-access-log" in old["args"] and "USER" not in {e["name"] for e in old["env"]}


def _helm_row(name, chart, status="deployed", ns="llm-d-pd"):
    return {"name": name, "chart": chart, "namespace": ns, "status": status, "revision": "1", "updated": "2026-12-02 06:00:00"}


def test_status_groups_router_generation_stacks():
    from llmdctl.effects.stacks import group_stacks

    stacks = group_stacks([
        _helm_row("router-pd", "llm-d-router-standalone-v0.10.0"), _helm_row("ms-pd", "llmdctl-model-servers-0.1.0"),
        _helm_row("router-gw", "llm-d-router-gateway-v0.10.0"), _helm_row("ms-gw", "llmdctl-model-servers-0.1.0"),
        _helm_row("router-old", "inferencepool-v1.5.0"), _helm_row("gateway-old", "llmdctl-gateway-0.1.0"), _helm_row("ms-old", "llmdctl-model-servers-0.1.0"),
        _helm_row("ms-half", "llmdctl-model-servers-0.1.0"),
        _helm_row("infra-v6", "llm-d-infra-v1.4.0"), _helm_row("gaie-v6", "inferencepool-v1.4.0"), _helm_row("ms-v6", "llm-d-modelservice-v0.4.9"),
        _helm_row("router-x", "nginx-1.0.0"),  # not an llmdctl release
    ])
    by = {s["postfix"]: s for s in stacks}
    assert (by["pd"]["status"], by["pd"]["generation"], by["pd"]["missing"]) == ("deployed", "router", [])
    assert (by["gw"]["status"], by["gw"]["missing"]) == ("incomplete", ["gateway-gw"])  # gateway mode needs its Gateway release
    assert (by["old"]["status"], [r["chart"] for r in by["old"]["releases"]]) == ("deployed", ["llmdctl-gateway", "inferencepool", "llmdctl-model-servers"])
    assert by["half"]["missing"] == ["router-half"]
    assert (by["v6"]["status"], by["v6"]["generation"]) == ("deployed", "helmfile")
    assert "x" not in by


def test_verify_reads_the_sidecar_and_the_standalone_service():
    from llmdctl.effects.health import FAIL, PASS, Observed, evaluate_stack

    plan = plan_for(llmd_version="v0.9.0", prefill="1xTP1", decode="1xTP1")
    deployments = {o["metadata"]["name"]: o for o in plan.manifests["ms"] if o["kind"] == "Deployment"}
    service = {"spec": {"ports": [{"port": 9002}, {"port": 80, "targetPort": 8081}]}}
    template = deployments["ms-pd-decode"]["spec"]["template"]
    decode_pod = {"metadata": {"name": "ms-pd-decode-0", "labels": template["metadata"]["labels"]}, "spec": template["spec"]}
    checks = {c.name: c for c in evaluate_stack(plan, Observed([], deployments, [decode_pod], None, None, None, {}, service))}
    assert checks["decode sidecar routing-proxy"].status == PASS and checks["Service router-pd-epp"].status == PASS
    assert not any(n.startswith(("Gateway", "HTTPRoute")) for n in checks)  # standalone: nothing to find there
    broken = {**deployments, "ms-pd-decode": {**deployments["ms-pd-decode"], "spec": {**deployments["ms-pd-decode"]["spec"],
              "template": {"spec": {"initContainers": [], "containers": []}}}}}
    checks = {c.name: c for c in evaluate_stack(plan, Observed([], broken, [], None, None, None, {}, {"spec": {"ports": [{"port": 80, "targetPort": 8000}]}}))}
    assert checks["decode sidecar routing-proxy"].status == FAIL and checks["Service router-pd-epp"].status == FAIL


def test_doctor_asks_for_the_crds_the_router_stack_uses():
    from llmdctl.effects.doctor import provider_crds

    assert provider_crds(plan_for(llmd_version="v0.9.0")) == ["servicemonitors.monitoring.coreos.com", "podmonitors.monitoring.coreos.com"]
    assert provider_crds(plan_for(llmd_version="v0.9.0", environments=["istio", "no-monitoring"])) == ["destinationrules.networking.istio.io"]
    assert provider_crds(plan_for(llmd_version="v0.9.0", environments=["gke"])) == ["healthcheckpolicies.networking.gke.io", "gcpbackendpolicies.networking.gke.io"]


def test_doctor_warns_when_the_inferencepool_crds_are_older_than_the_release_pins():
    from llmdctl.effects.health import PASS, WARN
    from llmdctl.effects.doctor import _bundle_version_check

    name = "inferencepools.inference.networking.k8s.io"

    def crd(bundle):
        return {"metadata": {"annotations": {"inference.networking.k8s.io/bundle-version": bundle}}}

    plan = plan_for(llmd_version="v0.9.0")
    old = _bundle_version_check(name, crd("v1.4.0"), ["v1"], "v1", plan)
    assert old.status == WARN and "bundle v1.4.0" in old.observed and "releases/download/v1.5.0/v1-manifests.yaml" in old.hint
    assert _bundle_version_check(name, crd("v1.5.0"), ["v1"], "v1", plan).status == PASS
    assert _bundle_version_check(name, crd("v1.4.0"), ["v1"], "v1", plan_for(llmd_version="v0.6.0")).status == PASS


def test_intel_xpu_claims_its_gpus_in_every_layout_and_doctor_does_not_count_them():
    from llmdctl.effects.health import WARN
    from llmdctl.effects.placement import evaluate_capacity

    for layout in (dict(), dict(prefill="0", decode="1xTP2")):
        plan = plan_for(llmd_version="v0.9.0", environments=["intel-xpu"], **layout)
        (rct,) = [o for o in plan.manifests["ms"] if o["kind"] == "ResourceClaimTemplate"]
        assert [r["exactly"]["deviceClassName"] for r in rct["spec"]["spec"]["devices"]["requests"]] == ["gpu.intel.com"]
        for dep in (o for o in plan.manifests["ms"] if o["kind"] == "Deployment"):
            role = plan.roles[dep["metadata"]["labels"]["llm-d.ai/role"]]
            pod = dep["spec"]["template"]["spec"]
            assert len(pod["resourceClaims"]) == role.gpus_per_pod and pod["securityContext"] == {"fsGroup": 107}
            assert "nvidia.com/gpu" not in pod["containers"][0]["resources"]["limits"]
        (check,) = evaluate_capacity(plan, nodes=[])
        assert check.status == WARN and "gpu.intel.com" in check.observed
    with pytest.raises(InputError, match="ships no 'xpu' vLLM image"):
        plan_for(llmd_version="v0.8.0", environments=["intel-xpu"])


def test_the_model_secret_is_the_one_the_values_name():
    plan = plan_for(llmd_version="v0.9.0", sets=["ms.modelArtifacts.authSecretName=team-hf"])
    for dep in (o for o in plan.manifests["ms"] if o["kind"] == "Deployment"):
        env = {e["name"]: e for e in dep["spec"]["template"]["spec"]["containers"][0]["env"]}
        assert env["HF_TOKEN"]["valueFrom"]["secretKeyRef"] == {"name": "team-hf", "key": "HF_TOKEN"}


def test_a_new_model_keeps_the_deployments_selectors():
    """Selectors are immutable: an upgrade that changed them would fail with `field is immutable`."""
    def selectors(**kw):
        return {o["metadata"]["name"]: o["spec"]["selector"] for o in plan_for(llmd_version="v0.9.0", **kw).manifests["ms"] if o["kind"] == "Deployment"}
    assert selectors() == selectors(model="Qwen/Qwen3-32B") == {
        f"ms-pd-{r}": {"matchLabels": {"llm-d.ai/guide": "pd-disaggregation", "app.kubernetes.io/instance": "llm-d-pd", "llm-d.ai/role": r}}
        for r in ("prefill", "decode")}
