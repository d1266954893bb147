"""Issue 23: what the pods run must accept what llmdctl writes. The EPP's plugins config and vLLM's
command line are checked against tables read from the pinned programs (schemas/epp, schemas/vllm;
docs/epp-plugins.md, docs/engine-flags.md); these tests pin the checkers' verdicts and the tables'
agreement with the rest of the catalog."""

from __future__ import annotations

import pytest

from conftest import plan_for
from llmdctl.base.schema import load_schema
from llmdctl.base.yamlio import load_text
from llmdctl.catalog.catalog import default_catalog
from llmdctl.compose.engineflags import argv_findings, flag_table
from llmdctl.compose.eppconfig import config_errors, parameter_error, parameters_errors, plugin_schema
from matrix import router_cases

V10 = load_schema("epp/epp-v0.10.0.plugins.json")
V26 = load_schema("vllm/vllm-0.26.0.serve-flags.json")


def _errors(doc, table=V10, experimental=False):
    return [m for level, m in config_errors(doc, table, experimental=experimental) if level == "error"]


# --- the EPP's plugins config ------------------------------------------------------------------

# what `llmdctl render --prefix-cache precise` wrote before the fix, and EPP v0.10.0 refused
ISSUE_23_HANDLER = {"type": "disagg-profile-handler",
                    "parameters": {"deciderPluginName": "always-disagg-pd-decider",
                                   "prefixMatchInfoProducerName": "precise-prefix-cache-producer"}}


def test_the_config_epp_v0_10_0_refused_is_refused_as_it_refused_it():
    (error,) = _errors({"plugins": [{"type": "always-disagg-pd-decider"}, ISSUE_23_HANDLER]})
    assert error.startswith("plugins[1] (disagg-profile-handler).parameters: matches none of its parameter formats")
    # the EPP: nested schema error: unknown field "deciderPluginName"; legacy: unknown field "prefixMatchInfoProducerName"
    nested, legacy = error.split("; legacy")
    assert "unknown field 'deciderPluginName'" in nested and "unknown field 'prefixMatchInfoProducerName'" in legacy
    assert "deciderPluginName'" not in legacy.split("):", 1)[1]


@pytest.mark.parametrize("params", [
    {"deciderPluginName": "always-disagg-pd-decider"},                 # legacy flat
    {"deciders": {"prefill": "always-disagg-pd-decider"}},              # nested
    {"DeciderPluginName": "always-disagg-pd-decider"},                  # Go matches keys ignoring case
    {"deciders": None, "profiles": {"decode": "decode"}},               # null is accepted for any field
])
def test_either_format_alone_is_accepted(params):
    assert _errors({"plugins": [{"type": "disagg-profile-handler", "parameters": params}]}) == []


def test_a_mix_of_the_two_formats_is_refused():
    doc = {"plugins": [{"type": "disagg-profile-handler",
                        "parameters": {"deciders": {"prefill": "x"}, "deciderPluginName": "x"}}]}
    assert len(_errors(doc)) == 1


@pytest.mark.parametrize("plugin, expect", [
    ({"type": "prefix-cache-scorrer"}, "registers no plugin type 'prefix-cache-scorrer'; did you mean 'prefix-cache-scorer'?"),
    ({"type": "prefix-cache-affinity-filter", "parameters": {"peakPrefillThroughput": 1000, "affinityThreshhold": 0.9}},
     "unknown field 'affinityThreshhold'; did you mean 'affinityThreshold'?"),
    ({"type": "prefix-cache-affinity-filter", "parameters": {"peakPrefillThroughput": "fast"}},
     ".parameters.peakPrefillThroughput: expected a number, got string 'fast'"),
    ({"type": "approx-prefix-cache-producer", "parameters": {"maxPrefixTokensToMatch": 1.5}},
     "expected a whole number, got number 1.5"),
    ({"type": "prefix-cache-scorer", "parameters": {"maxPrefixBlocksToMatch": 512}},  # moved to the producer in v0.10.0
     "unknown field 'maxPrefixBlocksToMatch'"),
])
def test_what_the_epp_refuses_is_refused_with_the_path(plugin, expect):
    (error,) = _errors({"plugins": [plugin]})
    assert expect in error and error.startswith("plugins[0] ("), error


def test_integers_written_as_5_0_reach_the_epp_as_5():
    # the EPP reads YAML through a JSON conversion: 5.0 becomes 5, which an int field takes
    assert _errors({"plugins": [{"type": "approx-prefix-cache-producer", "parameters": {"maxPrefixTokensToMatch": 65536.0}}]}) == []


def test_plugins_that_ignore_parameters_accept_anything():
    assert V10["plugins"]["always-disagg-pd-decider"]["parameters"] == "ignored"
    assert _errors({"plugins": [{"type": "always-disagg-pd-decider", "parameters": {"anything": [1, 2]}}]}) == []


def test_alpha_plugins_need_the_experimental_flag():
    alpha = sorted(t for t, e in V10["plugins"].items() if e["stability"] == "Alpha")
    assert "topology-affinity-filter" in alpha and "prefix-cache-scorer" not in alpha
    doc = {"plugins": [{"type": alpha[0]}]}
    (error,) = _errors(doc)
    assert "--allow-experimental-plugins" in error
    assert _errors(doc, experimental=True) == []


def test_plugin_refs_must_name_a_plugin_of_the_config():
    doc = {"plugins": [{"type": "max-score-picker"}, {"type": "queue-scorer", "name": "q"}],
           "schedulingProfiles": [{"name": "d", "plugins": [{"pluginRef": "q"}, {"pluginRef": "max-score-picker"}, {"pluginRef": "queue-scorer"}]}]}
    (error,) = _errors(doc)
    assert "pluginRef 'queue-scorer' names no plugin" in error


def test_deprecated_plugins_are_warned_about_with_their_replacement():
    warnings = [m for level, m in config_errors({"plugins": [{"type": "disagg-headers-handler"}]}, V10, experimental=False) if level == "warning"]
    assert warnings == ["plugins[0] (disagg-headers-handler): deprecated since v0.9.0, removed in v0.11.0; use disagg-profile-handler"]


def test_scheduler_param_is_typed_by_the_table():
    assert parameter_error(V10, "approx-prefix-cache-producer", "maxPrefixTokensToMatch", 65536) is None
    assert "no parameter 'maxPrefixBlocksToMatch'" in parameter_error(V10, "prefix-cache-scorer", "maxPrefixBlocksToMatch", 512)
    assert "expected a number" in parameter_error(V10, "prefix-cache-affinity-filter", "peakPrefillThroughput", "x")
    assert "reads no parameters" in parameter_error(V10, "always-disagg-pd-decider", "x", 1)


def test_scheduler_param_refusals_reach_the_user(cli):
    r = cli("validate", "--scheduler-param", "prefix-cache-scorer.maxPrefixBlocksToMatch=512", env={"LLMD_VERSION": ""})
    assert r.code == 2 and "prefix-cache-scorer has no parameter 'maxPrefixBlocksToMatch'" in r.err, r
    r = cli("validate", "--scheduler-param", "approx-prefix-cache-producer.maxPrefixTokensToMatch=65536", env={"LLMD_VERSION": ""})
    assert r.code == 0, r


def _configs(plan):
    for name, text in (plan.epp_values.get("pluginsCustomConfig") or {}).items():
        yield name, load_text(text, name).data


EXTRA_ROUTER_CASES = [
    dict(prefix_cache="precise"), dict(prefix_cache="precise", guide="inference-scheduling", prefill="0", decode="2xTP2"),
    dict(pd_threshold=64), dict(scorers=["kv-cache-utilization=2", "decode:queue=3"]), dict(autoscale=["decode=1-4"]),
    dict(environments=["gb200"]), dict(prefill="1xDP16EP", decode="1xDP16EP", model="deepseek-ai/DeepSeek-R1"),
    dict(guide="inference-scheduling", prefill="0", decode="2xTP2", scorers=["kv-cache-utilization=2"]),
]


@pytest.mark.parametrize("case_id, kwargs", [(c, k) for c, k, refusal in router_cases(("v0.9.0", "v0.8.0")) if refusal is None]
                         + [(f"v0.9.0-{i}", {"llmd_version": "v0.9.0", **kw}) for i, kw in enumerate(EXTRA_ROUTER_CASES)])
def test_every_generated_config_loads_in_the_pinned_epp(case_id, kwargs):
    plan = plan_for(**kwargs)
    table = plugin_schema(plan.release_info)
    assert table is not None and table["provenance"]["tag"] == plan.release_info.images["scheduler"].rsplit(":", 1)[1]
    configs = list(_configs(plan))
    assert configs, case_id
    for name, doc in configs:
        assert _errors(doc, table) == [], (case_id, name)


# --- the tables agree with the rest of the catalog ---------------------------------------------


@pytest.mark.parametrize("version", ["v0.9.0", "v0.8.0"])
def test_the_catalogs_epp_facts_are_what_the_pinned_epp_registers(version):
    release = default_catalog().release(version)
    table = plugin_schema(release)
    assert table["provenance"]["tag"] == release.images["scheduler"].rsplit(":", 1)[1]
    plugins = table["plugins"]
    for scorer in release.epp["scorers"]:
        assert scorer in plugins, scorer
    kv = release.epp.get("kvEvents")
    if kv:
        for kind in (kv["producer"], kv["replaces"], kv["notificationSource"], kv["tokenizer"], *kv["consumers"]):
            assert kind in plugins, kind
        # the fix of issue 23: only plugins with the parameter are told the producer's name
        for consumer in kv["consumers"]:
            assert parameter_error(table, consumer, "prefixMatchInfoProducerName", kv["producer"]) is None, consumer
        assert parameter_error(table, "disagg-profile-handler", "prefixMatchInfoProducerName", kv["producer"])
        assert parameters_errors(plugins[kv["producer"]], kv["producerParameters"], kv["producer"]) == []


# --- vLLM's command line -----------------------------------------------------------------------


def _argv_errors(args, table=V26):
    return [m for level, m in argv_findings(args, table) if level == "error"]


@pytest.mark.parametrize("args, expect", [
    (["--max-num-sqs=256"], "has no option --max-num-sqs; did you mean '--max-num-seqs'?"),
    (["--gpu-memory-utilisation=0.9"], "has no option --gpu-memory-utilisation; did you mean '--gpu-memory-utilization'?"),
    (["--gpu-memory-utilisation", "0.9"], "--gpu-memory-utilisation"),
    (['--kv-transfer-config={"kv_conector":"NixlConnector","kv_role":"kv_both"}'], "KVTransferConfig of vLLM 0.26.0 has no key 'kv_conector'; did you mean 'kv_connector'?"),
    (["--kv-transfer-config.kv_rol=kv_both"], "has no key 'kv_rol'"),
    (['--kv-events-config={"enable_kv_cache_event":true}'], "KVEventsConfig"),
    (["--enable-prefix-caching=false"], "is a switch and takes no value"),
    (["--kv-cache-dtype=fp9"], "not one of"),
    (["--max-num-seqs=many"], "expected a whole number"),
    (["--max-num"], "ambiguous"),
    (["--max-model-len"], "expects a value"),
])
def test_what_vllm_refuses_is_refused(args, expect):
    (error,) = _argv_errors(args)
    assert expect in error, error


@pytest.mark.parametrize("args", [
    ["--max_num_seqs", "256"], ["--max-num-seqs=256"], ["--no-enable-prefix-caching"], ["-tp", "2"], ["-O3"],
    ['--kv-transfer-config={"kv_connector":"NixlConnector","kv_role":"kv_both"}'], ["--kv-transfer-config.kv_role=kv_both"],
    ["--block-size=$(BLOCK_SIZE)"], ["--gpu-memory-utilization", "0.9", "--served-model-name", "a", "b"],
])
def test_what_vllm_accepts_is_accepted(args):
    assert _argv_errors(args) == []


def test_abbreviations_are_accepted_with_a_warning():
    assert [level for level, _ in argv_findings(["--max-num-seq=256"], V26)] == ["warning"]


def test_a_set_that_misspells_a_vllm_flag_or_config_key_is_refused_at_render(cli):
    r = cli("render", "--print", "--set", "ms.decode.containers[vllm].args[--gpu-memory-utilisation]=0.9", env={"LLMD_VERSION": ""})
    assert r.code == 2 and "V-50" in r.err and "--gpu-memory-utilisation" in r.err, r
    r = cli("render", "--print", "--set",
            'ms.decode.containers[vllm].args[--kv-transfer-config]={"kv_conector":"NixlConnector","kv_role":"kv_both"}', env={"LLMD_VERSION": ""})
    assert r.code == 2 and "no key 'kv_conector'" in r.err, r


@pytest.mark.parametrize("version", ["v0.9.0", "v0.8.0"])
def test_the_flag_table_is_the_pinned_vllms(version):
    release = default_catalog().release(version)
    table = flag_table(release)
    assert table["provenance"]["vllm"] == release.engine["vllm"]
    assert release.images["cuda"].endswith(f":v{release.engine['vllm']}")
    # the flags llmdctl's own layers rely on are there, with the configs whose keys it writes
    for flag in ("--kv-transfer-config", "--kv-events-config", "--data-parallel-size", "--enable-expert-parallel", "--block-size"):
        assert flag in table["flags"], flag
    assert {"kv_connector", "kv_role"} <= set(table["configs"]["KVTransferConfig"]["keys"])
    assert {"enable_kv_cache_events", "publisher", "endpoint", "replay_endpoint", "topic"} <= set(table["configs"]["KVEventsConfig"]["keys"])


@pytest.mark.parametrize("case_id, kwargs", [(c, k) for c, k, refusal in router_cases(("v0.9.0", "v0.8.0")) if refusal is None]
                         + [(f"v0.9.0-{i}", {"llmd_version": "v0.9.0", **kw}) for i, kw in enumerate(EXTRA_ROUTER_CASES)])
def test_every_generated_vllm_command_line_parses(case_id, kwargs):
    from llmdctl.compose.engineflags import container_args

    plan = plan_for(**kwargs)
    table = flag_table(plan.release_info)
    for role in plan.roles:
        args = container_args(plan.ms_values.get(role) or {})
        assert args, (case_id, role)
        assert list(argv_findings(args, table)) == [], (case_id, role)


# --- the P/D sidecar's flags -------------------------------------------------------------------

SIDECAR10 = load_schema("sidecar/pd-sidecar-v0.10.0.flags.json")


@pytest.mark.parametrize("args, expect", [
    (["--kv-connector=nixl"], "supports nixlv2"),
    (["--vllm-prot=8200"], "no such flag; did you mean '--vllm-port'?"),
    (["--zap-log-level=verbose"], "not a level value"),
    (["--secure-proxy=maybe"], "not a bool value"),
])
def test_what_the_sidecar_refuses_is_refused(args, expect):
    from llmdctl.compose.engineflags import sidecar_findings

    ((level, message),) = sidecar_findings(args, SIDECAR10)
    assert level == "error" and expect in message, message


def test_a_deprecated_sidecar_flag_is_a_warning():
    from llmdctl.compose.engineflags import sidecar_findings

    # v0.10.0 renamed --vllm-port to --model-server-port and still takes the old one
    assert [level for level, _ in sidecar_findings(["--vllm-port=8200"], SIDECAR10)] == ["warning"]


@pytest.mark.parametrize("sets, expect", [
    (["router.router.epp.flags.allow-experimental-plugin=true"], "no such flag; did you mean '--allow-experimental-plugins'?"),
    (["router.router.epp.flags.drain-timeout=30"], "--drain-timeout=30: not a duration value"),
    (["router.router.epp.flags.v=verbose"], "--v=verbose: not a int value"),
])
def test_an_epp_flag_the_epp_refuses_is_refused_at_render(sets, expect):
    from llmdctl.base.errors import ValidationError

    with pytest.raises(ValidationError) as exc:
        plan_for(llmd_version="v0.9.0", sets=sets)
    assert "V-48" in str([f.rule for f in exc.value.findings]) and expect in exc.value.message, exc.value.message


def test_epp_flags_llmdctl_writes_are_the_pinned_epps():
    plan = plan_for(llmd_version="v0.9.0", prefix_cache="precise", sets=["router.router.epp.flags.drain-timeout=45s"])
    assert plan.epp_values["flags"]["ha-enable-leader-election"] is False
    assert not [f for f in plan.findings if f.rule in ("V-48", "V-49")]
    plan = plan_for(llmd_version="v0.9.0", sets=["router.router.epp.flags.total-queued-requests-metric=q"])
    assert [f.message for f in plan.findings if f.rule == "V-49"] == [
        "router.router.epp.flags: --total-queued-requests-metric: deprecated in the EPP v0.10.0 (use engineConfigs in EndpointPickerConfig instead)"]


@pytest.mark.parametrize("version", ["v0.9.0", "v0.8.0"])
def test_the_generated_sidecar_args_are_the_pinned_sidecars(version):
    from llmdctl.compose.engineflags import sidecar_findings, sidecar_table

    plan = plan_for(llmd_version=version)
    table = sidecar_table(plan.release_info)
    assert table["provenance"]["tag"] == plan.release_info.images["routingSidecar"].rsplit(":", 1)[1]
    (decode,) = [o for o in plan.manifests["ms"] if o["metadata"]["name"] == "ms-pd-decode" and o["kind"] == "Deployment"]
    (sidecar,) = [c for c in decode["spec"]["template"]["spec"]["initContainers"] if c["name"] == "routing-proxy"]
    assert list(sidecar_findings(sidecar["args"], table)) == []
    assert any(a.startswith(plan.release_info.dialect.get("sidecarModelPortFlag", "--vllm-port") + "=") for a in sidecar["args"])


def test_a_sidecar_connector_the_sidecar_lacks_is_refused_at_render(cli):
    r = cli("validate", "--set", "ms.routing.proxy.connector=nixl", env={"LLMD_VERSION": ""})
    assert r.code == 2 and "V-52" in r.err and "did you mean 'nixlv2'" in r.err, r
