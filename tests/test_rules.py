"""Each rule both ways: firing on an input built to break it, silent on a valid plan."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from conftest import HELMFILE_ERA, plan_for
from llmdctl.compose.compose import compose
from llmdctl.base.errors import ValidationError
from llmdctl.compose.compose import evaluate
from llmdctl.compose.rules import RULES
from llmdctl.inputs.spec import build_spec


def findings_for(tmp_path=None, values: str | tuple | None = None, **kw):
    """Findings of every severity, whether or not the plan is refused."""
    if values is not None:
        release, text = values if isinstance(values, tuple) else ("ms", values)
        f = tmp_path / "override.yaml"
        f.write_text(text)
        kw.setdefault("values", []).append(f"{release}={f}")
    plan = compose(build_spec(env={}, **{"llmd_version": HELMFILE_ERA, **kw}))
    try:
        evaluated = evaluate(plan)
        return list(evaluated.findings), evaluated
    except ValidationError as exc:
        return exc.findings, plan


def rule_ids(findings, severity=None):
    return {f.rule for f in findings if severity is None or f.severity == severity}


VLLM_ARGS = "roles:\n  containers:\n    - name: vllm\n      args: [{args}]\n"

# a whole P/D plugins config for the router, given through --values router=
_EPP_CONFIG = """router:
  epp:
    pluginsCustomConfig:
      pd-config.yaml: |
        apiVersion: llm-d.ai/v1alpha1
        kind: EndpointPickerConfig
        plugins:
          - type: always-disagg-pd-decider
          - type: disagg-profile-handler
            parameters: {handler}
          - type: prefill-filter
          - type: decode-filter
          - type: max-score-picker
{extra}        schedulingProfiles:
          - name: prefill
            plugins: [{{pluginRef: prefill-filter}}, {{pluginRef: max-score-picker}}]
          - name: decode
            plugins: [{{pluginRef: decode-filter}}, {{pluginRef: max-score-picker}}]
"""

# rule id -> (inputs that make it fire, inputs on which it must stay silent)
CASES = {
    "V-02": ({"sets": ["ms.decode.containers[0].resources.limits.nvidia\\.com/mig-3g\\.48gb=1"]}, {}),
    "V-03": ({"environments": ["gh200"], "values_text": "roles:\n  containers:\n    - name: vllm\n      env:\n        - {name: UCX_TLS, value: 'sm,cuda_copy,cuda_ipc'}\n"}, {"environments": ["gh200"]}),
    "V-04": ({"environments": ["gh200"], "sets": ["ms.roles.extraConfig.hostIPC=false"]}, {"environments": ["gh200"]}),
    "V-05": ({"environments": ["gh200"], "prefill": "1xTP2", "decode": "1xTP2"}, {"environments": ["gh200"]}),
    "V-06": ({"environments": ["gh200"], "values_text": VLLM_ARGS.format(args="'--gpu-memory-utilization=0.9'")}, {"environments": ["gh200"]}),
    "V-07": ({"environments": ["gh200"], "prefill": "2xTP1", "decode": "1xTP1"}, {"environments": ["gh200"]}),
    # (runtimeClassName and hostNetwork at the role's top level are unknown keys now: the schema refuses them)
    "V-08": ({"sets": ["ms.decode.hostIPC=true"]}, {"environments": ["gh200"]}),
    "V-09": ({"environments": ["gh200", "host-network"]}, {"environments": ["gh200"]}),
    "V-10": ({"environments": ["gke"], "sets": ["ms.prefill.containers[0].resources.requests.rdma/ib=1"]}, {"environments": ["gke"]}),
    "V-11": ({"environments": ["gke"]}, {"environments": ["gke"], "model": "Qwen/Qwen2.5-7B-Instruct"}),
    "V-12": ({"environments": ["amd", "host-network"], "sets": ["ms.decode.extraConfig.affinity=null"]}, {"environments": ["amd", "host-network"]}),
    "V-14": ({"environments": ["amd", "host-network"], "sets": ["ms.roles.extraConfig.dnsPolicy=ClusterFirst"]}, {"environments": ["amd"]}),
    "V-15": ({"prefill": "1xTP4", "decode": "1xTP2"}, {"prefill": "1xTP2", "decode": "1xTP4"}),
    "V-16": ({"environments": ["amd"], "prefill": "1xTP4", "decode": "1xTP8", "values_text": "roles:\n  containers:\n    - name: vllm\n      args:\n        - {flag: --attention-backend, $patch: delete}\n"}, {"environments": ["amd"]}),
    "V-17": ({"decode": "1xTP16"}, {"decode": "1xTP8"}),
    "V-18": ({"sets": ["ms.roles.containers[0].image=ghcr.io/llm-d/llm-d-rocm:v0.6.0"]}, {}),
    "V-19": ({"sets": ["ms.accelerator.type=intel"]}, {}),
    "V-20": ({"sets": ["ms.decode.containers[0].resources.limits.nvidia\\.com/gpu=2"]}, {}),
    "V-21": ({"values_text": VLLM_ARGS.format(args="'--port=9000', '--tensor-parallel-size=4'")}, {}),
    "V-22": ({"sets": ["ms.decode.containers[0].ports[0].containerPort=8000"]}, {}),
    "V-23": ({"values_text": "roles:\n  containers:\n    - name: vllm\n      env:\n        - {name: VLLM_NIXL_SIDE_CHANNEL_HOST, value: 0.0.0.0}\n"}, {}),
    "V-24": ({"values_text": "roles:\n  containers:\n    - name: vllm\n      ports:\n        - {name: nixl, $patch: delete}\n"}, {}),
    "V-28": ({"environments": ["amd"]}, {"environments": ["amd"], "rdma_resource": "rdma/roce_gdr"}),
    "V-29": ({"sets": ["ms.roles.containers[0].securityContext=null"]}, {}),
    "V-30": ({"values_text": ("gaie", "inferenceExtension:\n  pluginsCustomConfig:\n    pd-config.yaml: |\n      plugins:\n      - type: precise-prefix-cache-scorer\n        parameters: {tokenProcessorConfig: {blockSize: 64}}\n")},
             {"values_text": ("gaie", "inferenceExtension:\n  pluginsCustomConfig:\n    pd-config.yaml: |\n      plugins:\n      - type: precise-prefix-cache-scorer\n        parameters: {tokenProcessorConfig: {blockSize: 128}}\n")}),
    "V-32": ({"sets": ["ms.prefill.containers[0].image=ghcr.io/llm-d/llm-d-cuda:v0.5.1"]}, {}),
    "V-33": ({"environments": ["gh200"]}, {}),
    "V-35": ({"environments": ["gke", "host-network"]}, {"environments": ["gke"]}),
    # a --set of the whole args list drops the guide's --kv-transfer-config
    "V-36": ({"sets": ["ms.decode.containers[0].args=[--max-num-seqs=512]"]}, {"values_text": VLLM_ARGS.format(args="'--max-num-seqs=512'")}),
    "V-37": ({"sets": ["ms.decode.replicas=0"]}, {"sets": ["ms.decode.replicas=2"]}),
    "V-39": ({"prefill": "0", "guide": "inference-scheduling", "sets": ["ms.decode.containers[0].resources.limits.nvidia\\.com/mig-3g\\.48gb=1"]},
             {"prefill": "0", "guide": "inference-scheduling"}),
    "V-38": ({"sets": ["ms.decode.containers[0].resources.limits.rdma/ib=0", "ms.decode.containers[0].resources.requests.rdma/ib=0"]},
             {"rdma_resource": "rdma/ib=2"}),
    # wide layouts (llm-d >= v0.7): the GB200 example, and DeepSeek-R1 over 8-GPU nodes
    "V-40": ({"llmd_version": "v0.9.0", "environments": ["gb200"], "sets": ["ms.decode.parallelism.workers=3"]},
             {"llmd_version": "v0.9.0", "environments": ["gb200"]}),
    "V-41": ({"llmd_version": "v0.9.0", "environments": ["gb200"], "model": "Qwen/Qwen3-32B"},
             {"llmd_version": "v0.9.0", "environments": ["gb200"], "model": "Qwen/Qwen3-235B-A22B"}),
    "V-42": ({"llmd_version": "v0.9.0", "environments": ["gke-no-rdma"], "prefill": "0", "decode": "1xDP16EP", "model": "deepseek-ai/DeepSeek-R1"},
             {"llmd_version": "v0.9.0", "environments": ["gke-no-rdma"], "prefill": "0", "decode": "1xDP8EP", "model": "deepseek-ai/DeepSeek-R1"}),
    "V-43": ({"llmd_version": "v0.9.0", "prefill": "1xTP8", "decode": "1xDP16EP", "model": "deepseek-ai/DeepSeek-R1"},
             {"llmd_version": "v0.9.0", "prefill": "1xDP16EP", "decode": "1xDP16EP", "model": "deepseek-ai/DeepSeek-R1"}),
    # the EPP dials 5556; a pod that binds 5557 publishes into the void
    "V-44": ({"llmd_version": "v0.9.0", "prefix_cache": "precise",
              "values_text": ("ms", "decode:\n  containers:\n  - name: vllm\n    env:\n    - {name: KV_EVENTS_ENDPOINT, value: 'tcp://*:5557'}\n")},
             {"llmd_version": "v0.9.0", "prefix_cache": "precise"}),
    "V-45": ({"llmd_version": "v0.9.0", "environments": ["istio"], "attach_gateway": "gateway-pd", "postfix": "pd-2",
              "sets": ["router.httpRoute.headerMatches=null"]},
             {"llmd_version": "v0.9.0", "environments": ["istio"], "attach_gateway": "gateway-pd", "postfix": "pd-2"}),
    "V-50": ({"llmd_version": "v0.9.0", "sets": ["ms.decode.containers[vllm].args[--gpu-memory-utilisation]=0.9"]}, {"llmd_version": "v0.9.0"}),
    "V-51": ({"llmd_version": "v0.9.0", "sets": ["ms.decode.containers[vllm].args[--max-num-seq]=256"]},
             {"llmd_version": "v0.9.0", "sets": ["ms.decode.containers[vllm].args[--max-num-seqs]=256"]}),
    "V-52": ({"llmd_version": "v0.9.0", "sets": ["ms.routing.proxy.connector=nixl"]}, {"llmd_version": "v0.9.0"}),
    "V-53": ({"llmd_version": "v0.9.0", "sets": ['ms.decode.extraConfig.tolerations=[{"key":"x","operator":"Exists"}]']},
             {"llmd_version": "v0.9.0", "tolerations": ("x",)}),
    # no RDMA NIC: nothing for UCX to pin, so no IPC_LOCK (and PodSecurity baseline admits the pods)
    "V-55": ({"llmd_version": "v0.9.0", "rdma_resource": "none"}, {"llmd_version": "v0.9.0", "environments": ["gke-no-rdma"]}),
    "V-56": ({"llmd_version": "v0.9.0", "environments": ["gke-no-rdma"], "sets": ["ms.decode.containers[vllm].securityContext.privileged=true"]},
             {"llmd_version": "v0.9.0", "environments": ["gke-no-rdma"], "sets": ["ms.decode.containers[vllm].securityContext.privileged=true",
                                                                                  "ms.decode.containers[vllm].securityContext.allowPrivilegeEscalation=true"]}),
    # an override of the grace period alone: the kubelet would kill vLLM 45 s into its drain
    "V-54": ({"llmd_version": "v0.9.0", "sets": ["ms.decode.terminationGracePeriodSeconds=30"]},
             {"llmd_version": "v0.9.0", "sets": ["ms.decode.terminationGracePeriodSeconds=120"]}),
    "V-46": ({"llmd_version": "v0.9.0", "sets": ["ms.modelArtifacts.labels.llm-d\\.ai/guide=x"]}, {"llmd_version": "v0.9.0"}),
    "V-47": ({"llmd_version": "v0.9.0", "environments": ["istio"], "sets": ["router.httpRoute.inferenceGatewayName=elsewhere"]},
             {"llmd_version": "v0.9.0", "environments": ["istio"]}),
    # the config of issue 23: EPP v0.10.0 refuses prefixMatchInfoProducerName on the profile handler
    "V-48": ({"llmd_version": "v0.9.0", "values_text": ("router", _EPP_CONFIG.format(
                  handler="{deciderPluginName: always-disagg-pd-decider, prefixMatchInfoProducerName: precise-prefix-cache-producer}", extra=""))},
             {"llmd_version": "v0.9.0", "values_text": ("router", _EPP_CONFIG.format(handler="{deciders: {prefill: always-disagg-pd-decider}}", extra=""))}),
    "V-49": ({"llmd_version": "v0.9.0", "values_text": ("router", _EPP_CONFIG.format(
                  handler="{deciders: {prefill: always-disagg-pd-decider}}", extra="          - type: disagg-headers-handler\n"))},
             {"llmd_version": "v0.9.0", "values_text": ("router", _EPP_CONFIG.format(handler="{deciders: {prefill: always-disagg-pd-decider}}", extra=""))}),
}


def _run(tmp_path, inputs):
    inputs = dict(inputs)
    text = inputs.pop("values_text", None)
    return findings_for(tmp_path, text, **inputs)


def test_every_rule_has_a_case():
    assert {r.id for r in RULES} == set(CASES)


@pytest.mark.parametrize("rule_id", sorted(CASES))
def test_rule_fires(rule_id, tmp_path):
    findings, _ = _run(tmp_path, CASES[rule_id][0])
    fired = [f for f in findings if f.rule == rule_id]
    assert fired, [f"{f.rule}: {f.message}" for f in findings]
    severity = next(r.severity for r in RULES if r.id == rule_id)
    assert all(f.severity == severity and f.message and f.why for f in fired)


@pytest.mark.parametrize("rule_id", sorted(CASES))
def test_rule_silent_on_valid_plan(rule_id, tmp_path):
    findings, _ = _run(tmp_path, CASES[rule_id][1])
    assert rule_id not in rule_ids(findings), [f.message for f in findings if f.rule == rule_id]
    assert not rule_ids(findings, "error")


def test_error_rules_refuse_and_fix_rules_change_the_plan(tmp_path):
    with pytest.raises(ValidationError) as exc:
        plan_for(prefill="1xTP4", decode="1xTP2")
    assert "V-15" in str(exc.value) and "TP4" in str(exc.value) and "TP2" in str(exc.value)
    findings, plan = _run(tmp_path, CASES["V-21"][0])
    decode_args = plan.ms_values["decode"]["containers"][0]["args"]
    assert not any(a.startswith(("--port", "--tensor-parallel-size")) for a in decode_args)
    findings, plan = _run(tmp_path, CASES["V-23"][0])
    env = {e["name"]: e for e in plan.ms_values["prefill"]["containers"][0]["env"]}
    assert env["VLLM_NIXL_SIDE_CHANNEL_HOST"]["valueFrom"]["fieldRef"]["fieldPath"] == "status.podIP"
    findings, plan = _run(tmp_path, CASES["V-03"][0])
    tls = next(e for e in plan.ms_values["decode"]["containers"][0]["env"] if e["name"] == "UCX_TLS")["value"]
    assert tls.split(",")[-1] == "tcp" and "cuda_ipc" in tls


def test_conflicting_base_profiles_v01(cli):
    r = cli("validate", "-e", "gh200-timeslice", "-e", "amd-roce")
    assert r.code == 2 and "V-01" in r.err


def test_alias_members_yield_to_explicit_names():
    from llmdctl.catalog.catalog import default_catalog

    cat = default_catalog()
    assert cat.resolve_environments(["gke"]) == {"hardware": "gke-no-rdma", "gateway": "gke", "overlays": []}
    assert cat.resolve_environments(["nvidia-ib", "gke"])["hardware"] == "nvidia-ib"
    assert cat.resolve_environments(["amd", "agentgateway"]) == {"hardware": "amd-roce", "gateway": "agentgateway", "overlays": []}
    assert cat.resolve_environments([]) == {"hardware": "nvidia-ib", "gateway": "istio", "overlays": []}


def test_rule_catalog_matches_the_code_and_cites_reachable_sources():
    from llmdctl.catalog.catalog import default_catalog
    from llmdctl.compose.rules import describe

    about = describe(default_catalog().rules)
    assert [r["id"] for r in about] == [r.id for r in RULES]
    docs = (Path(__file__).resolve().parent.parent / "docs" / "sources.md").read_text()
    anchors = {line[3:].strip() for line in docs.splitlines() if line.startswith("## ")}
    for r in about:
        assert r["title"] and r["why"] and r["source"], r
        assert "reference " not in r["source"] and "profiles.md" not in r["source"], r  # files outside this repository
        for anchor in re.findall(r"docs/sources\.md#([a-z0-9-]+)", r["source"]):
            assert anchor in anchors, (r["id"], anchor)


def test_catalog_facts_drive_ports_thresholds_and_sizes(tmp_path, monkeypatch):
    """Ports, the selective-P/D default and model-volume sizing come from the catalog, not code."""
    import shutil

    from llmdctl.catalog.catalog import data_root, reset_caches

    root = tmp_path / "catalog"
    for folder in ("profiles", "gateways", "guides", "templates", "schemas"):
        shutil.copytree(Path(data_root()) / folder, root / folder)
    versions = (root / "guides" / "versions.yaml").read_text()
    versions = versions.replace("servicePort: 8000", "servicePort: 8100").replace("pdThreshold: 16", "pdThreshold: 48")
    (root / "guides" / "versions.yaml").write_text(versions)
    models = (root / "guides" / "models.yaml").read_text().replace("unknownSize: 100Gi", "unknownSize: 300Gi")
    (root / "guides" / "models.yaml").write_text(models)
    monkeypatch.setenv("LLMDCTL_CATALOG", str(root))
    reset_caches()
    try:
        plan = plan_for(model="acme/mystery-model")
    finally:
        monkeypatch.delenv("LLMDCTL_CATALOG")
        reset_caches()
    gaie = plan.release("gaie").values
    assert gaie["inferencePool"]["targetPorts"] == [{"number": 8100}]
    assert "nonCachedTokens: 48" in gaie["inferenceExtension"]["pluginsCustomConfig"]["pd-config.yaml"]
    assert plan.ms_values["routing"]["servicePort"] == 8100 and plan.roles["prefill"].vllm_port == 8100
    assert plan.route["spec"]["rules"][0]["backendRefs"][0]["port"] == 8100
    assert plan.model["size"] == "300Gi" and any("--model-size" in n for n in plan.notes)
    # and with the shipped catalog, the shipped facts
    shipped = plan_for(model="acme/mystery-model")
    assert shipped.model["size"] == "100Gi" and shipped.release("gaie").values["inferencePool"]["targetPorts"] == [{"number": 8000}]


@pytest.mark.parametrize("model,size", [("Qwen/Qwen3-32B", "80Gi"), ("RedHatAI/Llama-3.3-70B-Instruct-FP8-dynamic", "90Gi"),
                                        ("deepseek-ai/DeepSeek-R1", "840Gi"), ("org/Some-7B-AWQ", "10Gi")])
def test_model_volume_estimates(model, size):
    # 32B x 2 bytes x 1.25 = 80; 70B x 1 x 1.25 = 87.5 -> 90; R1: 671B x 1 x 1.25 = 838.75 -> 840; 7B x 0.5 x 1.25 -> minimum 10
    plan = plan_for(model=model)
    assert plan.model["size"] == size
    assert not any("--model-size" in n for n in plan.notes)
