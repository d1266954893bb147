"""issue 26, drain: a vLLM pod that is replaced or scaled down stops getting new requests (preStop)
and finishes the ones it has (vLLM's --shutdown-timeout) inside its grace period; validate (V-54)
and verify check that an override or an edit did not undo it."""

from __future__ import annotations

import copy

import pytest

from conftest import plan_for
from llmdctl.catalog.catalog import Catalog
from llmdctl.base.errors import InputError
from llmdctl.effects.health import PASS, PENDING, WARN, Observed, _drain_check
from llmdctl.plan.pods import pod_drain


def _templates(plan) -> dict[str, dict]:
    """role -> pod template of the generated chart (a Deployment's, or an LWS group's worker)."""
    out = {}
    for obj in plan.manifests["ms"]:
        if obj["kind"] == "Deployment":
            out[obj["spec"]["template"]["metadata"]["labels"]["llm-d.ai/role"]] = obj["spec"]["template"]
        elif obj["kind"] == "LeaderWorkerSet":
            tpl = obj["spec"]["leaderWorkerTemplate"]["workerTemplate"]
            out[tpl["metadata"]["labels"]["llm-d.ai/role"]] = tpl
    return out


@pytest.mark.parametrize("version", ["v0.9.0", "v0.8.0", "v0.7.0"])
def test_every_router_generation_pod_drains_inside_its_grace_period(version):
    drain = Catalog().release(version).engine["drain"]
    plan = plan_for(llmd_version=version, prefill="2xTP1", decode="1xTP4")
    templates = _templates(plan)
    assert set(templates) == {"prefill", "decode"}
    for role, tpl in templates.items():
        timeout, sleep, grace = pod_drain(tpl["spec"])
        assert timeout == drain["shutdownTimeoutSeconds"] > 0, role
        assert sleep == drain["preStopSeconds"] > 0, role
        # the kubelet counts the preStop against the grace period: both fit, with teardown left
        assert grace == sleep + timeout + drain["teardownSeconds"] > sleep + timeout, role
        vllm = next(c for c in tpl["spec"]["containers"] if c["name"] == "vllm")
        assert vllm["lifecycle"] == {"preStop": {"sleep": {"seconds": drain["preStopSeconds"]}}}
        assert "extraConfig" not in vllm  # the values' container extraConfig is flattened into the container
    # the flag is one vLLM accepts (V-50 reads the pinned parser's table) and nothing warns
    assert not [f for f in plan.findings if f.rule in ("V-50", "V-51", "V-54")], plan.findings


def test_an_instance_over_nodes_drains_for_longer():
    drain = Catalog().release("v0.9.0").engine["drain"]
    plan = plan_for(llmd_version="v0.9.0", environments=["gb200"])
    templates = _templates(plan)
    assert templates and all(pod_drain(t["spec"])[0] == drain["multiNodeShutdownTimeoutSeconds"] for t in templates.values())
    assert all(pod_drain(t["spec"])[2] > sum(pod_drain(t["spec"])[:2]) for t in templates.values())


def test_the_helmfile_era_is_left_as_its_chart_renders_it():
    # the modelservice-era images pin no vLLM known to have --shutdown-timeout: an unknown flag
    # would stop vLLM from starting, so nothing is added there (the README says so)
    plan = plan_for(llmd_version="v0.6.0")
    args = [str(a) for c in plan.ms_values["decode"]["containers"] for a in c.get("args") or []]
    assert not [a for a in args if a.startswith("--shutdown-timeout")]
    assert "drain" not in [layer.name for layer in plan.layers]


@pytest.mark.parametrize("sets,needle", [
    (["ms.decode.terminationGracePeriodSeconds=30"], "terminationGracePeriodSeconds 30 <= preStop 15 s + --shutdown-timeout 60 s"),
    (["ms.decode.containers[vllm].args[--shutdown-timeout]=0"], "aborts its in-flight requests"),
])
def test_an_override_that_undoes_the_drain_is_named(sets, needle):
    plan = plan_for(llmd_version="v0.9.0", sets=sets)
    v54 = [f for f in plan.findings if f.rule == "V-54"]
    assert v54 and needle in v54[0].message and v54[0].message.startswith("decode"), plan.findings


def _observed(plan, role, template) -> Observed:
    dep = next(o for o in plan.manifests["ms"] if o["metadata"]["name"] == role.deployment)
    dep = copy.deepcopy(dep)
    dep["spec"]["template"] = template
    return Observed([], {role.deployment: dep}, [], None, None, None)


def test_verify_reads_the_drain_settings_of_the_live_template():
    plan = plan_for(llmd_version="v0.9.0", prefill="1xTP1", decode="1xTP4")
    role = plan.roles["decode"]
    tpl = _templates(plan)["decode"]
    ok = _drain_check(role, _observed(plan, role, tpl))
    assert ok.status == PASS and ok.observed == "preStop 15 s, --shutdown-timeout 60 s, grace 90 s", ok
    # someone edited the Deployment: the grace period is back to Kubernetes' 30 s
    short = copy.deepcopy(tpl)
    del short["spec"]["terminationGracePeriodSeconds"]
    c = _drain_check(role, _observed(plan, role, short))
    assert c.status == WARN and "grace 30 s" in c.observed and "must exceed 75" in c.hint, c
    # the flag is gone: vLLM aborts on SIGTERM
    bare = copy.deepcopy(tpl)
    vllm = next(x for x in bare["spec"]["containers"] if x["name"] == "vllm")
    vllm["args"] = [a for a in vllm["args"] if not a.startswith("--shutdown-timeout")]
    c = _drain_check(role, _observed(plan, role, bare))
    assert c.status == WARN and "unset" in c.observed and "aborts" in c.hint, c
    # an exec preStop of `sleep N` counts as the sleep action does
    exec_sleep = copy.deepcopy(tpl)
    next(x for x in exec_sleep["spec"]["containers"] if x["name"] == "vllm")["lifecycle"] = {"preStop": {"exec": {"command": ["/bin/sh", "-c", "sleep 20"]}}}
    assert pod_drain(exec_sleep["spec"])[1] == 20
    # nothing deployed yet: pending, not a verdict
    assert _drain_check(role, Observed([], {}, [], None, None, None)).status == PENDING


def test_verify_checks_drain_only_where_the_release_sets_it():
    from llmdctl.effects.health import evaluate_stack
    router = plan_for(llmd_version="v0.9.0", prefill="1xTP1", decode="1xTP4")
    names = [c.name for c in evaluate_stack(router, Observed([], {}, [], None, None, None))]
    assert "prefill drain" in names and "decode drain" in names
    helmfile = plan_for(llmd_version="v0.6.0")
    assert not [c for c in evaluate_stack(helmfile, Observed([], {}, [], None, None, None)) if c.name.endswith(" drain")]


@pytest.mark.parametrize("sets,needle", [
    (["ms.decode.terminationGracePeriodSeconds=abc"], "terminationGracePeriodSeconds: expected a whole number of seconds, got 'abc'"),
    (["ms.decode.terminationGracePeriodSeconds=-1"], "expected a whole number of seconds, got -1"),
    (["ms.decode.containers[vllm].extraConfig.lifecycle=5"], "extraConfig.lifecycle: expected a mapping, got 5"),
])
def test_a_drain_setting_of_the_wrong_type_is_refused_with_its_path(sets, needle):
    with pytest.raises(InputError) as exc:
        plan_for(llmd_version="v0.9.0", sets=sets)
    assert needle in exc.value.message
