"""Every hardware profile x gateway x layout (x host-network), for both pinned llm-d releases.

Snapshots pin the whole bundle; the property tests below assert what must hold on every
combination whatever the snapshot says: names, counts, selectors, ports, resources.
"""

from __future__ import annotations

import pytest

from conftest import parse, plan_for
from matrix import cases, router_cases
from llmdctl.effects.bundle import bundle_files
from llmdctl.base.errors import ValidationError

ALL = list(cases(("v0.6.0", "v0.4.0")))
ACCEPTED = [(cid, kw) for cid, kw, refusal in ALL if refusal is None]
# both generations: the rules run on the final plan whichever charts it is for
REFUSED = [(cid, kw, refusal) for cid, kw, refusal in ALL + list(router_cases(("v0.9.0", "v0.8.0", "v0.7.0"))) if refusal is not None]


def _files(kw):
    plan = plan_for(**kw)
    files = bundle_files(plan)
    return plan, files, {name: parse(text) for name, text in files.items() if name.endswith(".yaml")}


@pytest.mark.parametrize("cid,kw", [c for c in ACCEPTED if c[0].startswith("v0.6.0")], ids=lambda v: v if isinstance(v, str) else "")
def test_bundle_snapshot(cid, kw, snapshot):
    _, files, _ = _files(kw)
    assert {k: v for k, v in files.items() if k != "README.md"} == snapshot


@pytest.mark.parametrize("cid,kw,refusal", REFUSED, ids=lambda v: v if isinstance(v, str) and v.startswith("v0") else "")
def test_refused_combinations_name_their_rule(cid, kw, refusal):
    with pytest.raises(ValidationError) as exc:
        plan_for(**kw)
    assert refusal in {f.rule for f in exc.value.findings if f.severity == "error"}


@pytest.mark.parametrize("cid,kw", ACCEPTED, ids=lambda v: v if isinstance(v, str) else "")
def test_bundle_properties(cid, kw):
    plan, files, docs = _files(kw)
    p = plan.postfix
    helmfile, infra, gaie, ms, route = (docs[n] for n in ("helmfile.yaml", "infra.values.yaml", "gaie.values.yaml", "ms.values.yaml", "httproute.yaml"))
    release = plan.release_info

    # three releases, postfixed, in needs order, with the catalog's pinned charts
    rels = {r["name"]: r for r in helmfile["releases"]}
    assert list(rels) == [f"infra-{p}", f"gaie-{p}", f"ms-{p}"]
    assert rels[f"gaie-{p}"]["needs"] == [f"infra-{p}"]
    assert rels[f"ms-{p}"]["needs"] == [f"infra-{p}", f"gaie-{p}"]
    for key, name in (("infra", f"infra-{p}"), ("gaie", f"gaie-{p}"), ("ms", f"ms-{p}")):
        assert rels[name]["version"] == release.charts[key]["version"]
        assert rels[name]["namespace"] == plan.namespace
        assert rels[name]["values"] == [f"{key}.values.yaml"]

    # the pool selects this stack's pods, with the chart version's label spelling
    selector = gaie["inferencePool"]["modelServers"]["matchLabels"]
    labels = ms["modelArtifacts"]["labels"]
    assert selector.items() <= labels.items()
    assert selector[release.dialect["servingLabel"]] == "true"
    other = "llm-d.ai/inferenceServing" if release.dialect["servingLabel"] == "llm-d.ai/inference-serving" else "llm-d.ai/inference-serving"
    assert other not in labels and other not in selector
    assert f"llm-d-{p}" in selector.values()  # stack-unique: two postfixes never share a pool

    # ports: the pool targets the service port; decode vLLM sits behind the sidecar
    service_port = ms["routing"]["servicePort"]
    target = gaie["inferencePool"].get("targetPorts", [{"number": gaie["inferencePool"].get("targetPortNumber")}])[0]["number"]
    assert target == service_port == 8000

    # inferencepool >= v1.2 takes flags as a map
    assert isinstance(gaie["inferenceExtension"].get("flags", {}), dict)

    roles = ["decode"] + (["prefill"] if plan.mode == "disaggregated" else [])
    if plan.mode == "aggregated":
        assert ms["prefill"] == {"create": False}
        assert ms["routing"]["proxy"]["enabled"] is False
    for role in roles:
        block = ms[role]
        vllm = next(c for c in block["containers"] if c["name"] == "vllm")
        rp = plan.roles[role]
        assert block["replicas"] == rp.replicas
        assert block["parallelism"]["tensor"] == rp.tensor
        # GPU count comes from parallelism only: no accelerator key in resources
        for kind in ("limits", "requests"):
            assert rp.accelerator_resource not in (vllm.get("resources", {}).get(kind) or {})
        flags = [a.split("=", 1)[0] for a in vllm.get("args", [])]
        assert "--port" not in flags and "--tensor-parallel-size" not in flags
        assert len(flags) == len(set(flags)), flags
        port = next(x for x in vllm["ports"] if x["name"] == "vllm")["containerPort"]
        assert port == (8200 if role == "decode" and plan.mode == "disaggregated" else 8000)
        env = {e["name"]: e for e in vllm.get("env", [])}
        if plan.mode == "disaggregated":
            assert env["VLLM_NIXL_SIDE_CHANNEL_HOST"]["valueFrom"]["fieldRef"]["fieldPath"] == "status.podIP"
            side = env["VLLM_NIXL_SIDE_CHANNEL_PORT"]["value"]
            assert int(side) in [x["containerPort"] for x in vllm["ports"]]
            assert any("NixlConnector" in a for a in vllm["args"])
        else:
            assert not any("kv-transfer-config" in a for a in vllm.get("args", []))
        if plan.hardware_facts.get("hostNetwork"):
            extra = block["extraConfig"]
            assert extra["hostNetwork"] is True and extra["dnsPolicy"] == "ClusterFirstWithHostNet"
            term = extra["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][0]
            assert term["topologyKey"] == "kubernetes.io/hostname" and term["labelSelector"]["matchLabels"] == selector
        rdma = plan.hardware_facts.get("rdma")
        limits = vllm.get("resources", {}).get("limits") or {}
        if rdma and plan.mode == "disaggregated":
            assert limits[rdma["resource"]] == rdma.get("count", 1)
        else:
            assert not any(k.startswith("rdma/") for k in limits)

    # the route names this stack's Gateway and InferencePool
    assert route["metadata"]["name"] == f"llm-d-{p}"
    assert route["spec"]["parentRefs"][0]["name"] == f"infra-{p}-inference-gateway"
    backend = route["spec"]["rules"][0]["backendRefs"][0]
    assert backend["name"] == f"gaie-{p}" and backend["kind"] == "InferencePool"
    is_gke = plan.gateway == "gke"
    assert ("port" in backend) is not is_gke
    assert ("timeouts" in route["spec"]["rules"][0]) is not is_gke

    # gateway provider: infra v1.4.0 needs gateway.provider; v1.3.x picks by class name only
    if release.dialect["infraProviderKey"]:
        assert infra["gateway"]["provider"] == plan.gateway_facts["provider"]
    else:
        assert "provider" not in infra["gateway"]
        assert infra["gateway"]["gatewayClassName"] == plan.gateway_facts["className"]
    if plan.gateway == "istio":
        # no host: the chart derives <release>-epp.<release namespace>.svc.cluster.local itself, so
        # the bundle stays right when helmfile installs it into another namespace
        dr = gaie["provider"]["istio"]["destinationRule"]
        assert "host" not in dr and dr["trafficPolicy"]["connectionPool"]
        assert ".svc.cluster.local" not in files["gaie.values.yaml"]

    # the hardware profile's signature
    text = "".join(files.values())
    if plan.hardware == "gke-no-rdma":
        assert "rdma/" not in "".join(v for k, v in files.items() if k.endswith(".yaml"))
    if plan.hardware == "amd-roce":
        assert ms["accelerator"]["type"] == "amd"
        assert all("llm-d-rocm" in next(c for c in ms[r]["containers"] if c["name"] == "vllm")["image"] for r in roles)
    if plan.hardware == "gh200-timeslice":
        caps = []
        for role in roles:
            vllm = next(c for c in ms[role]["containers"] if c["name"] == "vllm")
            cap = next(a for a in vllm["args"] if a.startswith("--gpu-memory-utilization="))
            caps += [float(cap.split("=")[1])] * ms[role]["replicas"]
            if plan.mode == "disaggregated":
                tls = next(e for e in vllm["env"] if e["name"] == "UCX_TLS")["value"].split(",")
                assert "tcp" in tls and "cuda_ipc" in tls
                assert ms[role]["extraConfig"]["hostIPC"] is True
        assert sum(caps) <= 1.0
    assert "hf_" not in text.replace("hf://", "")


def test_same_inputs_give_byte_identical_bundles():
    kw = {"environments": ["amd", "host-network"], "prefill": "1xTP8", "decode": "1xTP8"}
    assert bundle_files(plan_for(**kw)) == bundle_files(plan_for(**kw))


def test_v040_has_no_rocm_image():
    from llmdctl.base.errors import InputError

    with pytest.raises(InputError, match="ships no 'rocm' vLLM image"):
        plan_for(environments=["amd"], llmd_version="v0.4.0")


@pytest.mark.parametrize("name", ["nvidia-ib", "amd-roce", "gh200-timeslice"])
def test_readme_snapshot(name, snapshot):
    assert bundle_files(plan_for(environments=[name]))["README.md"] == snapshot


def test_readme_explains_layers_diagram_and_commands():
    readme = bundle_files(plan_for(environments=["amd"], postfix="pd-2"))["README.md"]
    assert "```mermaid" in readme and "KV cache" in readme and "prefill x1" in readme
    assert "hardware profile amd-roce" in readme and "Sets:" in readme
    assert "helmfile apply" in readme and "kubectl apply -n llm-d-pd -f httproute.yaml" in readme
    assert "llmdctl destroy -n llm-d-pd --postfix pd-2" in readme
    assert "kubectl create secret generic llm-d-hf-token" in readme and '"$HF_TOKEN"' in readme
