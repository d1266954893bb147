"""The plan is a value: equal inputs give equal plans, and nothing that reads a plan can change it."""

from __future__ import annotations

import copy

import pytest

from conftest import plan_for
from llmdctl.compose import rules as rules_module
from llmdctl.compose.compose import compose, evaluate
from llmdctl.compose.rules import Rule
from llmdctl.effects.bundle import bundle_files, command_args
from llmdctl.effects.health import Observed, evaluate_stack
from llmdctl.effects.placement import evaluate_capacity
from llmdctl.effects.lifecycle import apply_steps, destroy_steps
from llmdctl.effects.stacks import StackState
from llmdctl.inputs.spec import build_spec
from llmdctl.plan.frozen import FrozenError, thaw

INPUTS = [
    {},
    {"environments": ["amd"], "prefill": "2xTP4", "decode": "1xTP8"},
    {"environments": ["gh200"]},
    {"environments": ["gke"], "sets": ["ms.decode.replicas=2"]},
    {"prefill": "0", "decode": "2xTP2", "guide": "inference-scheduling"},
]


@pytest.mark.parametrize("kw", INPUTS)
def test_equal_inputs_give_equal_plans(kw):
    a, b = plan_for(**kw), plan_for(**kw)
    assert a == b
    assert a is not b and a.ms_values is not b.ms_values
    assert bundle_files(a) == bundle_files(b)


def test_different_inputs_give_different_plans():
    assert plan_for(decode="1xTP4") != plan_for(decode="1xTP8")


def test_every_part_of_a_plan_refuses_changes():
    plan = plan_for()
    with pytest.raises(AttributeError):
        plan.namespace = "other"  # type: ignore[misc]
    with pytest.raises(FrozenError):
        plan.ms_values["decode"]["replicas"] = 9
    with pytest.raises(FrozenError):
        plan.ms_values["decode"]["containers"][0]["args"].append("--enforce-eager")
    with pytest.raises(FrozenError):
        plan.roles["decode"] = plan.roles["prefill"]
    with pytest.raises(FrozenError):
        plan.route["spec"]["rules"].clear()
    with pytest.raises(FrozenError):
        plan.names.update(route="x")
    with pytest.raises(FrozenError):
        plan.release("gaie").values["inferencePool"].pop("modelServers")
    # replace() and _replace() freeze what they are given too
    changed = plan.replace(model={"name": "x", "labels": ["a"]})
    with pytest.raises(FrozenError):
        changed.model["labels"].append("b")
    with pytest.raises(FrozenError):
        plan._replace(names={"route": "r"}).names["route"] = "s"


def test_a_deep_copy_is_mutable_and_leaves_the_plan_alone():
    plan = plan_for()
    values = thaw(plan.ms_values)
    values["decode"]["replicas"] = 7
    assert plan.ms_values["decode"]["replicas"] == 1 and type(values) is dict


def test_a_rule_cannot_change_a_plan(monkeypatch):
    def rogue(plan):
        plan.ms_values["decode"]["replicas"] = 0  # what a careless rule would do
        yield "changed it"

    monkeypatch.setattr(rules_module, "RULES", rules_module.RULES + [Rule("V-99", "warning", rogue)])
    monkeypatch.setattr(rules_module.book, "RULES", rules_module.RULES)  # where the registry is checked against the catalog
    from llmdctl.compose import compose as compose_module

    monkeypatch.setattr(compose_module, "RULES", rules_module.RULES)
    about = {r.id: {"why": "w", "source": "s"} for r in rules_module.RULES}
    monkeypatch.setattr(type(compose_module.default_catalog()), "rules", property(lambda self: about))
    plan = compose(build_spec(env={}))
    with pytest.raises(FrozenError):
        evaluate(plan)
    assert plan.ms_values["decode"]["replicas"] == 1


def test_fix_rules_give_a_new_plan_and_keep_the_old_one(tmp_path):
    values = tmp_path / "v.yaml"
    values.write_text("roles:\n  containers:\n    - name: vllm\n      env:\n        - {name: VLLM_NIXL_SIDE_CHANNEL_HOST, value: 0.0.0.0}\n")
    raw = compose(build_spec(env={}, values=[f"ms={values}"]))
    before = thaw(raw.ms_values)
    fixed = evaluate(raw)
    assert raw.ms_values == before  # the input plan is untouched
    assert raw.findings == () and {f.rule for f in fixed.findings if f.severity == "fix"} == {"V-23"}
    for role in ("prefill", "decode"):
        was, now = ({e["name"]: e for e in plan.ms_values[role]["containers"][0]["env"]}["VLLM_NIXL_SIDE_CHANNEL_HOST"]
                    for plan in (raw, fixed))
        assert was["value"] == "0.0.0.0"
        assert now == {"name": "VLLM_NIXL_SIDE_CHANNEL_HOST", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}


def test_effects_only_read_the_plan(tmp_path):
    plan = plan_for(environments=["amd"])
    snapshot = copy.deepcopy(plan._asdict())
    bundle_files(plan)
    command_args(plan)
    apply_steps(plan, tmp_path, sync=False, create_namespace=True)
    destroy_steps(plan.namespace, plan.postfix, StackState(releases={}, route=""), None)
    evaluate_stack(plan, Observed(releases=[], deployments={}, pods=[], pool=None, gateway=None, route=None))
    evaluate_capacity(plan, [])
    assert plan._asdict() == snapshot
