"""issue 27, item 2, on the real control plane: two stacks in one namespace, applied with their
NetworkPolicies, in both generations. The API server accepts every policy as rendered (it keeps
every field), and each policy's podSelector, listed as a label selector against the running
pods, selects exactly the intended pods of its own stack and none of the other stack's; so do
the pod peers its rules admit.

kwok has no network plugin: nothing here enforces the policies, so traffic is never tested (no
test dials anything but loopback). What is proven is the selection the plugin would act on.
Runs the helmfile era first, then moves the session's InferencePool CRDs to GAIE v1.5.0 for the
router generation (as test_e2e_router does).
"""

from __future__ import annotations

import pytest

from llmdctl.compose import netpol

from .harness import CHARTS
from .test_e2e_lifecycle import SMALL, plan_of

pytestmark = pytest.mark.e2e


def _selector(match_labels: dict) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(match_labels.items()))


def _pods(e2e, namespace: str, match_labels: dict) -> set[str]:
    """Pod names the selector picks in the namespace, as the API server filters them."""
    items = e2e.cp.get_json("pods", "-n", namespace, "-l", _selector(match_labels))["items"]
    return {p["metadata"]["name"] for p in items if not p["metadata"].get("deletionTimestamp")}


def _policies(e2e, namespace: str, plan) -> dict[str, dict]:
    items = e2e.cp.get_json("networkpolicy", "-n", namespace, "-l", f"app.kubernetes.io/instance={plan.names['stackLabel']}")["items"]
    return {p["metadata"]["name"]: p for p in items}


def _stack_pods(e2e, plan) -> dict[str, set[str]]:
    """The stack's pods by what they are: each role's vLLM pods and the EPP pod, found by
    name (the owner's name prefix), independently of the labels the policies select on."""
    every = {p["metadata"]["name"] for p in e2e.cp.get_json("pods", "-n", plan.namespace)["items"]
             if not p["metadata"].get("deletionTimestamp")}
    out = {role: {p for p in every if p.startswith(plan.names[role] + "-")} for role in plan.roles}
    out["epp"] = {p for p in every if p.startswith(plan.names["epp"] + "-")}
    for what, names in out.items():
        assert names, f"no {what} pod of stack {plan.postfix}"
    return out


def _assert_two_stacks_isolated(e2e, ns: str, plans) -> None:
    expected_policies = {plan.postfix: {plan.names[r] for r in plan.roles} | {netpol.epp_policy_name(plan)} for plan in plans}
    by_stack = {plan.postfix: _stack_pods(e2e, plan) for plan in plans}
    for plan in plans:
        mine = by_stack[plan.postfix]
        theirs = set().union(*(pods for other, groups in by_stack.items() if other != plan.postfix for pods in groups.values()))
        live = _policies(e2e, ns, plan)
        assert set(live) == expected_policies[plan.postfix], sorted(live)
        rendered = {p["metadata"]["name"]: p for p in netpol.network_policies(plan)}
        for name, policy in live.items():
            # accepted as rendered: the API server kept every field of the spec
            assert policy["spec"] == rendered[name]["spec"], name
            selected = _pods(e2e, ns, policy["spec"]["podSelector"]["matchLabels"])
            intended = mine["epp"] if name == netpol.epp_policy_name(plan) else mine[next(r for r in plan.roles if plan.names[r] == name)]
            assert selected == intended, (name, sorted(selected), sorted(intended))
            assert not selected & theirs
            # every same-namespace pod peer admits only this stack's pods
            for rule in policy["spec"]["ingress"]:
                for peer in rule.get("from") or []:
                    if "podSelector" in peer and "namespaceSelector" not in peer:
                        admitted = _pods(e2e, ns, peer["podSelector"]["matchLabels"])
                        assert admitted and not admitted & theirs, (name, peer, sorted(admitted))
                        assert admitted in (mine["epp"], set().union(*(mine[r] for r in plan.roles))), (name, peer, sorted(admitted))


def _two_stacks_applied(e2e, ns: str, version: str) -> list:
    """Stacks pd and pd-2 of ``version`` applied side by side in ``ns``; their plans, as render builds them."""
    plans = []
    for postfix in ("pd", "pd-2"):
        r = e2e.llmdctl("apply", "-y", "--llmd-version", version, "-n", ns, "--postfix", postfix, *SMALL, "--wait", "--timeout", "3m", timeout=400)
        assert r.code == 0, r
        plans.append(plan_of(llmd_version=version, namespace=ns, postfix=postfix, prefill="1xTP1", decode="1xTP1", charts=str(CHARTS)))
    return plans


def test_helmfile_era_two_stacks_carry_policies_that_select_their_own_pods(e2e):
    cp, ns = e2e.cp, "llm-d-netpol-v6"
    cp.namespace(ns)
    plans = _two_stacks_applied(e2e, ns, "v0.6.0")
    _assert_two_stacks_isolated(e2e, ns, plans)
    # the gateway peer names the stack's own Gateway, in the namespace it lives in
    peers = [p for rule in _policies(e2e, ns, plans[0])[plans[0].names["decode"]]["spec"]["ingress"] for p in rule.get("from") or []
             if "namespaceSelector" in p and "podSelector" in p]
    assert peers == [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": ns}},
                      "podSelector": {"matchLabels": {"gateway.networking.k8s.io/gateway-name": "infra-pd-inference-gateway"}}}]

    # destroy removes the policies with the modelservice release (they ride in its extraObjects)
    r = e2e.llmdctl("destroy", "-y", "-n", ns, "--postfix", "pd")
    assert r.code == 0, r
    e2e.wait_for("pd's policies gone", lambda: not _policies(e2e, ns, plans[0]), timeout=90)
    assert set(_policies(e2e, ns, plans[1])) == {plans[1].names[r] for r in plans[1].roles} | {netpol.epp_policy_name(plans[1])}
    assert e2e.llmdctl("destroy", "-y", "-n", ns, "--postfix", "pd-2").code == 0



def test_router_generation_two_stacks_then_off(gaie_v15):
    e2e = gaie_v15
    cp, ns = e2e.cp, "llm-d-netpol"
    cp.namespace(ns)
    v = ("--llmd-version", "v0.9.0")

    # kwok runs no network plugin: doctor cannot tell, and says so as a warning, never a failure
    r = e2e.llmdctl("doctor", *v, "-n", ns, *SMALL, "-o", "json")
    checks = {c["name"]: c for c in r.json()["checks"]}
    assert checks["NetworkPolicy enforcement"]["status"] == "warn" and "cannot tell" in checks["NetworkPolicy enforcement"]["observed"]
    assert r.code == 0, r

    plans = _two_stacks_applied(e2e, ns, "v0.9.0")
    _assert_two_stacks_isolated(e2e, ns, plans)
    r = e2e.llmdctl("verify", *v, "-n", ns, "--postfix", "pd", *SMALL, "-o", "json")
    assert r.code == 0, r

    # --network-policy off on a running stack: the policies leave with the next apply, the other stack keeps its own
    r = e2e.llmdctl("apply", "-y", *v, "-n", ns, "--postfix", "pd", *SMALL, "--network-policy", "off", "--wait", "--timeout", "3m", timeout=400)
    assert r.code == 0, r
    e2e.wait_for("pd's policies gone", lambda: not _policies(e2e, ns, plans[0]), timeout=90)
    assert len(_policies(e2e, ns, plans[1])) == 3
    r = e2e.llmdctl("doctor", *v, "-n", ns, "--postfix", "pd", *SMALL, "--network-policy", "off", "-o", "json")
    assert "NetworkPolicy enforcement" not in {c["name"] for c in r.json()["checks"]}

    for postfix in ("pd", "pd-2"):
        assert e2e.llmdctl("destroy", "-y", "-n", ns, "--postfix", postfix).code == 0
    e2e.wait_for("every policy gone", lambda: not cp.get_json("networkpolicy", "-n", ns)["items"], timeout=90)
