"""Blue/green, for a change that cannot roll in place (another llm-d generation, another model):
the new stack (green) is installed beside the running one (blue) under a new postfix, attached to
blue's Gateway; blue's HTTPRoute then sends a growing share of requests to green's InferencePool
(weighted backendRefs), and every step is held while verify's own checks watch green.

At 100 % blue's route goes (green's own route, on the same Gateway and path, then takes every
request; while both exist Gateway API gives ties to the older route, blue's, whose backends
already point at green) and blue's releases are uninstalled, except the one holding the Gateway:
it is the clients' address, and green routes through it (destroy refuses to remove it while
green does). Any failure before that puts every request back on blue and stops; green stays for
a look, with the command that removes it.
"""

from __future__ import annotations

import copy
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..base.errors import InputError, LlmdctlError
from ..compose.compose import plan_stack
from ..compose.names import release_names, stack_names
from ..plan.stack import Plan
from .health import PASS, WARN, evaluate_stack, observe_stack
from .kube import HTTPROUTES, Kube, KubeError, kube_for
from .lifecycle import UI, apply_stack, run_steps, uninstall_steps
from .stacks import StackState, observe
from .tools import Command, Toolbox
from .verify import verify

POOL_KINDS = ("InferencePool",)


@dataclass(frozen=True)
class Blue:
    """The stack that serves now, as read from the cluster."""

    namespace: str
    postfix: str
    generation: str  # helmfile | router
    route: dict  # its HTTPRoute as the API returns it
    gateway: tuple[str, str]  # (namespace, name) of the Gateway clients reach
    pool: dict  # the route's InferencePool backendRef
    keep: str | None  # the release that holds the Gateway (kept), when blue owns it
    releases: tuple[str, ...]  # blue's releases, needs order

    @property
    def route_name(self) -> str:
        return self.route["metadata"]["name"]


def parse_steps(text: str) -> tuple[int, ...]:
    """``10,50,100`` -> (10, 50, 100): percentages of requests to green, rising, ending at 100."""
    try:
        steps = tuple(int(s) for s in str(text).split(",") if s.strip())
    except ValueError:
        raise InputError(f"--steps {text!r}: expected rising percentages separated by commas, e.g. 10,50,100") from None
    if not steps or any(b <= a for a, b in zip(steps, steps[1:])) or steps[0] < 1 or steps[-1] != 100:
        raise InputError(f"--steps {text!r}: percentages must rise from at least 1 and end at 100, e.g. 10,50,100")
    return steps


def read_blue(box: Toolbox, kube: Kube, namespace: str, postfix: str) -> Blue:
    """Blue's releases, its route (the one clients reach), that route's Gateway and pool; refuses a
    stack that has no route to shift traffic at (standalone: clients reach its own Envoy)."""
    state = observe(box, namespace, postfix)
    if not state.releases:
        raise LlmdctlError(f"no stack {postfix} in namespace {namespace} to move from",
                           hint=f"llmdctl status -n {namespace} lists the stacks there")
    names = release_names(postfix)
    generation = "helmfile" if names["gaie"] in state.releases or names["infra"] in state.releases else "router"
    route_name = stack_names(namespace, postfix, generation=generation)["route"]
    route = kube.get(HTTPROUTES, route_name, namespace)
    if route is None:
        raise LlmdctlError(f"stack {postfix} has no HTTPRoute {route_name}: blue/green moves requests at the Gateway, and a "
                           "standalone stack's clients reach its own Envoy",
                           hint="move clients to a new standalone stack yourself, or deploy stacks in gateway mode (-e istio, ...)")
    parents = [p for p in route["spec"].get("parentRefs") or [] if p.get("kind", "Gateway") == "Gateway"]
    pools = [b for rule in route["spec"].get("rules") or [] for b in rule.get("backendRefs") or [] if b.get("kind") in POOL_KINDS]
    if len(parents) != 1 or len({b["name"] for b in pools}) != 1:
        raise LlmdctlError(f"HTTPRoute {route_name} has {len(parents)} Gateways and {len({b['name'] for b in pools})} pools; "
                           "blue/green shifts one route of one Gateway to one pool at a time",
                           hint=f"kubectl get httproute {route_name} -n {namespace} -o yaml shows it; was a migration cut off? "
                                "(its backends are then both stacks' pools: restore the route with llmdctl apply for the old stack)")
    parent = parents[0]
    holder = names["infra"] if generation == "helmfile" else names["gateway"]
    return Blue(namespace, postfix, generation, route, (parent.get("namespace", namespace), parent["name"]), pools[0],
                holder if holder in state.releases else None, tuple(state.releases))


def green_plan(plan: Plan, blue: Blue) -> Plan:
    """The new stack, attached to blue's Gateway on the same path (no model header), so that once
    blue's route is gone its own route serves the same requests."""
    if plan.spec is None:
        return plan
    if plan.postfix == blue.postfix:
        raise InputError(f"--postfix {plan.postfix} is the stack being replaced: the new stack needs its own postfix",
                         hint=f"e.g. --postfix {blue.postfix}-2")
    if plan.standalone and plan.generation == "router":
        raise InputError("blue/green moves requests at blue's Gateway: the new stack must be in gateway mode too",
                         hint="pick the Gateway's provider, e.g. -e istio")
    return plan_stack(plan.spec._replace(attach_gateway=blue.gateway, route_by_model=False))


def weighted(route: dict, blue: Blue, green_pool: str, percent: int) -> list[dict]:
    """Blue route's rules with each pool backend split: ``percent`` to green, the rest to blue."""
    rules = copy.deepcopy(route["spec"].get("rules") or [])
    for rule in rules:
        refs = []
        for ref in rule.get("backendRefs") or []:
            if ref.get("kind") not in POOL_KINDS:
                refs.append(ref)
                continue
            base = {k: v for k, v in ref.items() if k != "weight"}
            refs.append({**base, "name": blue.pool["name"], "weight": 100 - percent})
            refs.append({**base, "name": green_pool, "weight": percent})
        rule["backendRefs"] = _merge_refs(refs)
    return rules


def _merge_refs(refs: list[dict]) -> list[dict]:
    """One entry per backend (a rule that already listed both pools is not doubled)."""
    out: dict[str, dict] = {}
    for ref in refs:
        key = json.dumps({k: v for k, v in ref.items() if k != "weight"}, sort_keys=True)
        out[key] = ref
    return list(out.values())


def _patch_route(blue: Blue, rules: list[dict], label: str) -> Command:
    body = json.dumps({"spec": {"rules": rules}}, sort_keys=True, separators=(",", ":"))
    return Command("kubectl", ("patch", "httproute", blue.route_name, "--namespace", blue.namespace, "--type", "merge", "--patch", body), label)


def trouble(plan: Plan, kube: Kube) -> list[str]:
    """What is wrong with green now (verify's checks that neither pass nor only warn)."""
    checks = evaluate_stack(plan, observe_stack(kube, plan))
    return [f"{c.name}: {c.observed}" for c in checks if c.status not in (PASS, WARN)]


def migrate(plan: Plan, files: dict[str, str], box: Toolbox, folder: Path, blue: Blue, *, steps: tuple[int, ...], pause: float,
            timeout: float, ui: UI, yes: bool, resume: str, cleanup: str, sleep: Callable[[float], None] = time.sleep) -> list[str]:
    """Install green (apply's own path: its checks and confirmation), wait until it is healthy,
    shift blue's route step by step, then remove blue but its Gateway. Returns what was removed."""
    say = ui.say
    say(f"blue/green: {blue.postfix} ({blue.generation} generation, route {blue.route_name} on Gateway {'/'.join(blue.gateway)}) -> "
        f"{plan.postfix} (llm-d {plan.llmd_version}); requests to {plan.postfix} in steps of {', '.join(f'{s}%' for s in steps)}, "
        f"each held {pause:.0f} s")
    apply_stack(plan, files, box, folder, ui=ui, yes=yes, sync=True, create_namespace=False, resume=resume, cleanup=cleanup)
    kube = kube_for(box)
    checks, _, waited = verify(kube, plan, wait=True, timeout=timeout, say=say)
    failing = [f"{c.name}: {c.observed}" for c in checks if c.status not in (PASS, WARN)]
    if failing:
        raise LlmdctlError(f"the new stack {plan.postfix} did not become healthy in {waited:.0f} s; every request still goes to "
                           f"{blue.postfix}: " + "; ".join(failing[:3]), hint=f"llmdctl verify for {plan.postfix} shows why; remove it with: {cleanup}")
    green_pool = plan.names["pool"]
    try:
        for percent in steps:
            run_steps(box, [_patch_route(blue, weighted(blue.route, blue, green_pool, percent), f"{percent}% to {plan.postfix}")],
                      say=say, resume=resume, cleanup=cleanup)
            say(f"traffic: {percent}% of requests to {plan.postfix}, {100 - percent}% to {blue.postfix}; holding {pause:.0f} s")
            wrong = _hold(plan, kube, pause, sleep)
            if wrong:
                raise LlmdctlError(f"the new stack {plan.postfix} failed at {percent}% ({'; '.join(wrong[:3])}); every request is back on "
                                   f"{blue.postfix}, which was not changed", hint=f"look with llmdctl verify; remove {plan.postfix} with: {cleanup}")
    except BaseException:  # a failed step, a failed patch, Ctrl-C: the old route exactly as it was, then the cause
        _back_to_blue(box, blue, say)
        raise
    return _retire_blue(box, blue, say, resume)


def _hold(plan: Plan, kube: Kube, pause: float, sleep: Callable[[float], None]) -> list[str]:
    """Watch green for ``pause`` seconds (every 2 s): the first trouble ends the hold."""
    deadline = time.monotonic() + pause
    while True:
        try:
            wrong = trouble(plan, kube)
        except KubeError as exc:
            wrong = [f"the API server: {exc.message}"]
        if wrong or time.monotonic() >= deadline:
            return wrong
        sleep(min(2.0, max(0.0, deadline - time.monotonic())))


def _back_to_blue(box: Toolbox, blue: Blue, say) -> None:
    """Blue's route exactly as it was (its backends only)."""
    run_steps(box, [_patch_route(blue, copy.deepcopy(blue.route["spec"].get("rules") or []), f"every request back to {blue.postfix}")],
              say=say, resume="kubectl edit httproute " + blue.route_name, cleanup=None)


def _retire_blue(box: Toolbox, blue: Blue, say, resume: str) -> list[str]:
    """Blue's route first (green's own route takes over), then blue's releases but the Gateway's."""
    gone = StackState({n: {} for n in blue.releases if n != blue.keep})
    steps = [Command("kubectl", ("delete", "httproute", blue.route_name, "--namespace", blue.namespace, "--ignore-not-found"),
                     f"HTTPRoute {blue.route_name}")]
    steps += uninstall_steps(blue.namespace, blue.postfix, gone)
    run_steps(box, steps, say=say, resume=resume, cleanup=None)
    removed = [f"HTTPRoute {blue.route_name}"] + [f"release {n}" for n in blue.releases if n != blue.keep]
    if blue.keep:
        say(f"kept: release {blue.keep}, the Gateway {'/'.join(blue.gateway)} clients reach; the new stack routes through it "
            f"(llmdctl destroy --postfix {blue.postfix} refuses to remove it while it does)")
    return removed


def describe(plan: Plan, blue: Blue, steps: tuple[int, ...], pause: float) -> list[str]:
    """What migrate would do, in order (its --dry-run)."""
    gw = "/".join(blue.gateway)
    lines = [f"# blue/green: {blue.postfix} -> {plan.postfix} in {plan.namespace}",
             f"1. install {plan.postfix} (llm-d {plan.llmd_version}: {', '.join(r.name for r in plan.releases)}), attached to Gateway {gw} "
             f"with its own HTTPRoute {plan.names['route']} on the same path; wait until llmdctl verify passes"]
    for i, percent in enumerate(steps, start=2):
        lines.append(f"{i}. HTTPRoute {blue.route_name}: {percent}% to InferencePool {plan.names['pool']}, {100 - percent}% to "
                     f"{blue.pool['name']}; hold {pause:.0f} s while verify's checks watch {plan.postfix} (any failure: all back to {blue.postfix})")
    retire = [n for n in blue.releases if n != blue.keep]
    lines.append(f"{len(steps) + 2}. delete HTTPRoute {blue.route_name}, then helm uninstall {', '.join(reversed(retire))}"
                 + (f"; keep {blue.keep} (Gateway {gw})" if blue.keep else ""))
    return lines
