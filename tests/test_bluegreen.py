"""issue 26, blue/green (llmdctl migrate) offline: the steps, the weighted route, the new stack's
shape, the refusals, and what a stopped migration puts back. The run itself is proven on the real
control plane (tests/e2e/test_e2e_rollout.py)."""

from __future__ import annotations

import copy

import pytest

from conftest import plan_for
from llmdctl.base.errors import InputError
from llmdctl.effects.bluegreen import Blue, describe, green_plan, parse_steps, weighted
from llmdctl.effects.bundle import command_args
from llmdctl.effects.health import PENDING, Observed, _deployment_check

ROUTE = {"metadata": {"name": "llm-d-pd", "namespace": "llm-d-pd"},
         "spec": {"parentRefs": [{"name": "infra-pd-inference-gateway"}],
                  "rules": [{"matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                             "backendRefs": [{"group": "inference.networking.k8s.io", "kind": "InferencePool", "name": "gaie-pd", "port": 8000}],
                             "timeouts": {"request": "300s"}}]}}


def blue() -> Blue:
    return Blue("llm-d-pd", "pd", "helmfile", copy.deepcopy(ROUTE), ("llm-d-pd", "infra-pd-inference-gateway"),
                ROUTE["spec"]["rules"][0]["backendRefs"][0], "infra-pd", ("infra-pd", "gaie-pd", "ms-pd"))


@pytest.mark.parametrize("text,steps", [("25,50,100", (25, 50, 100)), ("100", (100,)), (" 1, 99 ,100", (1, 99, 100))])
def test_steps_rise_to_100(text, steps):
    assert parse_steps(text) == steps


@pytest.mark.parametrize("text", ["50", "50,40,100", "0,100", "10,10,100", "ten,100", ""])
def test_steps_that_do_not_rise_to_100_are_refused(text):
    with pytest.raises(InputError, match="--steps"):
        parse_steps(text)


def test_the_old_route_splits_each_pool_backend_and_keeps_everything_else():
    rules = weighted(ROUTE, blue(), "router-pd-v09", 25)
    [rule] = rules
    assert rule["matches"] == ROUTE["spec"]["rules"][0]["matches"] and rule["timeouts"] == {"request": "300s"}
    assert [(b["name"], b["weight"], b["port"], b["group"]) for b in rule["backendRefs"]] == [
        ("gaie-pd", 75, 8000, "inference.networking.k8s.io"), ("router-pd-v09", 25, 8000, "inference.networking.k8s.io")]
    # a step from an already split route is not doubled
    again = copy.deepcopy(ROUTE)
    again["spec"]["rules"] = rules
    assert [(b["name"], b["weight"]) for b in weighted(again, blue(), "router-pd-v09", 100)[0]["backendRefs"]] == [("gaie-pd", 0), ("router-pd-v09", 100)]
    assert ROUTE["spec"]["rules"][0]["backendRefs"] == [blue().pool]  # the original is left as it was (it is what a failure restores)


def test_the_new_stack_attaches_to_the_old_gateway_on_the_same_path():
    plan = green_plan(plan_for(llmd_version="v0.9.0", environments=["istio"], postfix="pd-v09"), blue())
    assert plan.names["gateway"] == "infra-pd-inference-gateway" and plan.gateway_namespace == "llm-d-pd"
    assert not plan.spec.route_by_model  # no model header: once the old route goes, it takes the same requests
    assert not [r for r in plan.releases if r.key == "gateway"]  # the Gateway is the old stack's, not a new one
    route = plan.release("router").values.get("httpRoute") or {}
    assert "headerMatches" not in route and route.get("inferenceGatewayName") == "infra-pd-inference-gateway"
    # the flags that reproduce it (rollback, verify) say so
    args = command_args(plan)
    assert args[args.index("--attach-gateway") + 1:args.index("--attach-gateway") + 3] == ["llm-d-pd/infra-pd-inference-gateway", "--no-route-by-model"]
    lines = describe(plan, blue(), (50, 100), 60)
    assert any("50% to InferencePool router-pd-v09, 50% to gaie-pd" in line for line in lines)
    assert lines[-1].endswith("keep infra-pd (Gateway llm-d-pd/infra-pd-inference-gateway)") and "ms-pd, gaie-pd" in lines[-1]


def test_a_new_stack_that_cannot_sit_behind_the_gateway_is_refused():
    with pytest.raises(InputError, match="needs its own postfix"):
        green_plan(plan_for(llmd_version="v0.9.0", environments=["istio"], postfix="pd"), blue())
    with pytest.raises(InputError, match="gateway mode"):
        green_plan(plan_for(llmd_version="v0.9.0", postfix="pd-v09"), blue())


def test_a_deployment_whose_rollout_is_not_over_is_pending_even_when_its_pods_are_ready():
    dep = {"metadata": {"name": "d", "generation": 3}, "spec": {"replicas": 2},
           "status": {"observedGeneration": 2, "replicas": 2, "updatedReplicas": 2, "readyReplicas": 2}}

    def check(status):
        return _deployment_check("d", 2, Observed([], {"d": {**dep, "status": {**dep["status"], **status}}}, [], None, None, None), what="decode Deployment")
    c = check({})
    assert c.status == PENDING and "has not seen generation 3" in c.observed, c
    c = check({"observedGeneration": 3, "updatedReplicas": 1, "replicas": 3})
    assert c.status == PENDING and "1 of 2 pods on the new template" in c.observed, c
    c = check({"observedGeneration": 3, "replicas": 3})
    assert c.status == PENDING and "1 old pod still draining" in c.observed, c
    assert check({"observedGeneration": 3}).status == "pass"


@pytest.mark.parametrize("flag,value,needle", [("--pause", "abc", "--pause abc: not a duration"),
                                               ("--steps", "50,40", "--steps '50,40': percentages must rise")])
def test_migrate_refuses_bad_steps_before_asking_the_cluster(cli, flag, value, needle):
    r = cli("migrate", "--from", "pd", "--postfix", "pd-2", "-e", "istio", flag, value, "--dry-run")
    assert r.code == 2 and needle in r.err and "Traceback" not in r.err, r
