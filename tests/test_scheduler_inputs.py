"""Scheduler settings as inputs (issue 10, item 3): --scorer weights and --scheduler-param values,
checked against the plugins the pinned EPP registers, in the EPP config the bundle carries."""

from __future__ import annotations

import pytest

from conftest import parse, plan_for


def epp_config(plan) -> dict:
    custom = plan.release("gaie").values["inferenceExtension"]["pluginsCustomConfig"]
    (text,) = custom.values()
    return parse(text)


def weights(doc: dict) -> dict:
    return {p["name"]: {r["pluginRef"]: r.get("weight") for r in p["plugins"] if "weight" in r} for p in doc["schedulingProfiles"]}


def test_defaults_are_untouched():
    assert weights(epp_config(plan_for())) == {"prefill": {"prefix-cache-scorer": 2, "queue-scorer": 1},
                                               "decode": {"prefix-cache-scorer": 2, "queue-scorer": 1}}


def test_scorer_weights_by_name_in_every_profile_or_one():
    doc = epp_config(plan_for(scorers=["prefix-cache=3", "kv-cache-utilization=2", "decode:queue=0"]))
    assert weights(doc) == {"prefill": {"prefix-cache-scorer": 3, "queue-scorer": 1, "kv-cache-utilization-scorer": 2},
                            "decode": {"prefix-cache-scorer": 3, "kv-cache-utilization-scorer": 2}}
    assert {"type": "kv-cache-utilization-scorer"} in doc["plugins"]  # a new scorer is declared once
    assert any(p["type"] == "queue-scorer" for p in doc["plugins"])  # still used by prefill


def test_the_gh200_report_weights_on_the_aggregated_guide():
    # GH200 report: prefix-cache / queue / kv-cache scoring at weights 2 / 1 / 2 on one gateway
    doc = epp_config(plan_for(guide="inference-scheduling", prefill="0", scorers=["kv-cache-utilization=2"]))
    assert weights(doc) == {"default": {"prefix-cache-scorer": 2, "queue-scorer": 1, "kv-cache-utilization-scorer": 2}}


def test_a_scorer_removed_everywhere_is_no_longer_declared():
    doc = epp_config(plan_for(guide="inference-scheduling", prefill="0", scorers=["queue=0"]))
    assert "queue-scorer" not in {p["type"] for p in doc["plugins"]}
    assert "queue-scorer" not in weights(doc)["default"]


def test_plugin_parameters_are_set_and_typed():
    doc = epp_config(plan_for(scheduler_params=["prefix-cache-scorer.maxPrefixBlocksToMatch=512", "prefix-based-pd-decider.nonCachedTokens=64"]))
    by_type = {p["type"]: p.get("parameters", {}) for p in doc["plugins"]}
    assert by_type["prefix-cache-scorer"] == {"maxPrefixBlocksToMatch": 512, "lruCapacityPerServer": 31250}
    assert by_type["prefix-based-pd-decider"] == {"nonCachedTokens": 64}


def test_v040_knows_its_own_plugins():
    doc = epp_config(plan_for(llmd_version="v0.4.0", scheduler_params=["pd-profile-handler.threshold=100"]))
    assert next(p for p in doc["plugins"] if p["type"] == "pd-profile-handler")["parameters"]["threshold"] == 100
    from llmdctl.base.errors import InputError
    with pytest.raises(InputError, match="no scorer 'running-requests-size-scorer'"):
        plan_for(llmd_version="v0.4.0", scorers=["running-requests-size=1"])  # GAIE v1.2.0-rc.1 has no such scorer


@pytest.mark.parametrize("args, message", [
    (["--scorer", "prefix-cach=2"], "did you mean 'prefix-cache-scorer'"),
    (["--scorer", "precise-prefix-cache=2"], "needs KV events from vLLM"),
    (["--scorer", "queue=1.5"], "whole-number weight"),
    (["--scorer", "encode:queue=1"], "no scheduling profile 'encode'"),
    (["--scheduler-param", "prefix-based-pd-decider.nonCachedToken=5"], "did you mean 'nonCachedTokens'"),
    (["--scheduler-param", "prefix-based-pd-decider.nonCachedTokens=many"], "expected an integer"),
    (["--scheduler-param", "nonCachedTokens=5"], "expected PLUGIN.PARAMETER=VALUE"),
    (["--guide", "inference-scheduling", "--prefill", "0", "--scheduler-param", "prefix-based-pd-decider.nonCachedTokens=5"],
     "this stack's scheduler config has no prefix-based-pd-decider"),
])
def test_bad_scheduler_inputs_are_refused_clearly(cli, args, message):
    r = cli("render", "--print", *args)
    assert r.code == 2, r
    assert message in r.err


def test_spec_file_keys_and_reproducing_command(cli, tmp_path):
    spec = tmp_path / "s.yaml"
    spec.write_text("scorers:\n  prefix-cache: 4\n  decode:queue: 2\nschedulerParams:\n  prefix-cache-scorer.autoTune: true\n")
    out = tmp_path / "b"
    assert cli("render", "-f", str(spec), "-o", str(out)).code == 0
    gaie = parse((out / "gaie.values.yaml").read_text())
    doc = parse(next(iter(gaie["inferenceExtension"]["pluginsCustomConfig"].values())))
    assert weights(doc)["decode"] == {"prefix-cache-scorer": 4, "queue-scorer": 2}
    assert next(p for p in doc["plugins"] if p["type"] == "prefix-cache-scorer")["parameters"]["autoTune"] is True
    # a spec file's scorers come with -f; flags given beside it are reproduced as flags
    r = cli("render", "-f", str(spec), "--scorer", "prefill:queue=5", "-o", str(tmp_path / "d"))
    readme = (tmp_path / "d" / "README.md").read_text()
    assert "--scorer prefill:queue=5" in readme and "--scorer prefix-cache=4" not in readme
    # flags are reproduced in the bundle's commands
    r = cli("render", "--scorer", "decode:queue=3", "-o", str(tmp_path / "c"))
    assert r.code == 0
    assert "--scorer decode:queue=3" in (tmp_path / "c" / "README.md").read_text()


def test_versions_json_lists_the_scorers(cli):
    rows = parse(cli("versions", "-o", "json").out)
    v06 = next(r for r in rows if r["version"].startswith("v0.6.0"))
    assert "kv-cache-utilization-scorer" in v06["scorers"] and v06["schedulerParameters"]["prefix-based-pd-decider"] == {"nonCachedTokens": "integer"}
