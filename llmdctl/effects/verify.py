"""verify as one call: the checks (optionally waiting), diagnostics for what is unhealthy, and the
smoke request through the gateway. The CLI only formats the report this returns."""

from __future__ import annotations

import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Callable

from ..base.errors import LlmdctlError
from ..plan.stack import Plan
from .diagnosis import Diagnosis, collect_diagnostics, missing_pods, pod_summary, workload_refusals
from .health import FAIL, PASS, WARN, Check, Observed, _role, evaluate_stack, observe_stack, pod_ready, selector_text
from .smoke import smoke
from .kube import DEPLOYMENTS, GATEWAYS, HTTPROUTES, PODS, SECRETS, Kube, KubeError, kube_for
from .tools import PortForward, Toolbox

# a warning (drain settings an override weakened) is told, but the stack serves: it does not fail verify or hold --wait
_FINE = (PASS, WARN)


@dataclass(frozen=True)
class VerifyReport:
    checks: list[Check]
    smoke: list[Check] = field(default_factory=list)
    diagnostics: list[Diagnosis] = field(default_factory=list)
    waited: float = 0.0
    seconds: float = 0.0
    api_calls: int = 0

    @property
    def everything(self) -> list[Check]:
        return self.checks + self.smoke

    @property
    def healthy(self) -> bool:
        return all(c.status in _FINE for c in self.everything)

    @property
    def failed(self) -> int:
        return sum(c.status == FAIL for c in self.everything)

    @property
    def pending(self) -> int:
        return sum(c.status not in (PASS, FAIL, WARN) for c in self.everything)



def verify_stack(plan: Plan, box: Toolbox, *, wait: bool, timeout: float, smoke_test: bool = False,
                 endpoint: str | None = None, port_forward: bool = False, say: Callable[[str], None]) -> VerifyReport:
    """Check the stack (re-checking on watch events until ``timeout`` with ``wait``); explain
    unhealthy pods; with ``smoke_test`` and a healthy stack, send one request through the gateway."""
    started = time.monotonic()
    kube = kube_for(box)
    checks, obs, waited = verify(kube, plan, wait=wait, timeout=timeout, say=say)
    healthy = all(c.status in _FINE for c in checks)
    diagnostics = [] if healthy else collect_diagnostics(kube, plan, obs)
    smoke_checks: list[Check] = []
    if smoke_test and healthy:
        smoke_checks = _smoke(kube, plan, box, endpoint, port_forward, say)
    elif smoke_test:
        say("smoke test skipped: the stack is not healthy yet")
    return VerifyReport(checks, smoke_checks, diagnostics, waited, time.monotonic() - started, kube.calls)


def _smoke(kube: Kube, plan: Plan, box: Toolbox, endpoint: str | None, port_forward: bool, say) -> list[Check]:
    """Send the smoke request to --endpoint, through a port-forward, or to the Gateway's address."""
    with EppMetrics(kube, plan, box, say) as epp:
        reader = epp if plan.kv_events else None
        if endpoint:
            return smoke(kube, plan, endpoint, epp_metrics=reader)
        entry = plan.names["epp"] if plan.standalone else plan.names["gatewayService"]
        if port_forward or plan.standalone:  # standalone: the EPP Service is a ClusterIP, reached by a port-forward
            with PortForward(box, plan.namespace if plan.standalone else plan.gateway_namespace, entry, 80) as pf:
                say(f"port-forward: {pf.url} -> service/{entry}:80")
                return smoke(kube, plan, pf.url, epp_metrics=reader)
        gw = kube.get(GATEWAYS, plan.names["gateway"], plan.gateway_namespace) or {}
        addresses = [a.get("value") for a in (gw.get("status") or {}).get("addresses") or [] if a.get("value")]
        if not addresses:
            raise LlmdctlError(f"Gateway {plan.names['gateway']} has no address to send the smoke request to",
                               hint="pass --endpoint URL or --port-forward")
        return smoke(kube, plan, f"http://{addresses[0]}", epp_metrics=reader)


class EppMetrics:
    """The EPP's /metrics, read as Prometheus reads them: through a port-forward to its Service's
    metrics port, with a short-lived token of the EPP's ServiceAccount (the API server's pod proxy
    would drop the token, and the EPP refuses unauthenticated scrapes). Opened on first read; the
    token lives in memory only."""

    def __init__(self, kube: Kube, plan: Plan, box: Toolbox, say):
        self.kube, self.plan, self.box, self.say = kube, plan, box, say
        self.forward: PortForward | None = None
        self.token = ""

    def __enter__(self) -> "EppMetrics":
        return self

    def __exit__(self, *exc) -> None:
        if self.forward is not None:
            self.forward.__exit__()

    def __call__(self) -> str:
        plan, port = self.plan, (self.plan.kv_events or {}).get("metricsPort", 9090)
        where = f"service/{plan.names['epp']}:{port}/metrics"
        if self.forward is None:
            self.token = self.kube.service_account_token(plan.namespace, plan.names["epp"])
            self.forward = PortForward(self.box, plan.namespace, plan.names["epp"], port).__enter__()
            self.say(f"port-forward: {self.forward.url} -> {where.removesuffix('/metrics')} (EPP metrics)")
        req = urllib.request.Request(self.forward.url + "/metrics", headers={"Authorization": f"Bearer {self.token}"})
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310 - a local port-forward
                return resp.read().decode("utf-8", "replace")
        except urllib.error.HTTPError as exc:
            refused = " (the EPP refused the ServiceAccount's token)" if exc.code in (401, 403) else ""
            raise LlmdctlError(f"GET {where}: HTTP {exc.code}{refused}") from None
        except (urllib.error.URLError, OSError) as exc:
            raise LlmdctlError(f"GET {where}: {getattr(exc, 'reason', exc)}") from None


# --- verify --wait ---------------------------------------------------------------------------


def progress_line(plan: Plan, checks: list[Check], obs: Observed) -> str:
    parts = []
    for role in plan.roles.values():
        pods = [p for p in obs.pods if _role(p) == role.role]
        parts.append(f"{role.role} {sum(pod_ready(p) for p in pods)}/{role.pods} ready")
    waiting = [c.name for c in checks if c.status not in _FINE and not c.name.endswith((" pods", " ranks")) and "Deployment" not in c.name and "LeaderWorkerSet" not in c.name]
    return ", ".join(parts) + (f"; waiting for: {', '.join(waiting)}" if waiting else "")


class Watcher:
    """Background watches on what verify reads; ``changed`` is set on every event."""

    def __init__(self, kube: Kube, plan: Plan):
        self.kube, self.plan = kube, plan
        self.changed = threading.Event()
        self.stop = threading.Event()
        n, ns = plan.names, plan.namespace
        releases = ",".join(r.name for r in plan.releases)
        self.targets = [
            (PODS, ns, selector_text(plan.pool_selector), None),
            (DEPLOYMENTS, ns, None, None),
            (SECRETS, ns, f"owner=helm,name in ({releases})", None),
        ]
        if not plan.standalone:
            self.targets += [(GATEWAYS, plan.gateway_namespace, None, f"metadata.name={n['gateway']}"), (HTTPROUTES, ns, None, f"metadata.name={n['route']}")]
        self.threads = [threading.Thread(target=self._run, args=t, daemon=True) for t in self.targets]

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()

    def _run(self, res, ns, labels, fields) -> None:
        while not self.stop.is_set():
            try:
                for _type, _obj in self.kube.watch(res, ns, labels=labels, fields=fields, timeout_seconds=30, stop=self.stop):
                    self.changed.set()
                    if self.stop.is_set():
                        return
            except Exception:  # a watch that fails (403, dropped connection) falls back to the periodic re-check
                if self.stop.wait(2.0):
                    return


def verify(kube: Kube, plan: Plan, *, wait: bool, timeout: float, say, recheck: float = 5.0) -> tuple[list[Check], Observed, float]:
    """Evaluate once, or (wait) re-evaluate on every watch event until all pass or time runs out.

    Returns the checks, the last observations and the seconds spent waiting."""
    started = time.monotonic()
    obs = observe_stack(kube, plan)
    checks = evaluate_stack(plan, obs)
    if not wait or all(c.status in _FINE for c in checks) or any(c.stalled for c in checks):
        return checks, obs, time.monotonic() - started
    last_line, told = "", set()
    with Watcher(kube, plan) as watcher:
        while True:
            line = progress_line(plan, checks, obs)
            if line != last_line:
                say(f"[{time.monotonic() - started:5.0f}s] {line}")
                last_line = line
            for diag in _new_trouble(kube, plan, obs, told):
                say(f"  {diag.pod}: {diag.summary}" + "".join(f"\n    hint: {h}" for h in diag.hints))
            remaining = timeout - (time.monotonic() - started)
            if remaining <= 0:
                return checks, obs, time.monotonic() - started
            watcher.changed.wait(min(recheck, remaining))
            watcher.changed.clear()
            try:
                obs = observe_stack(kube, plan)
            except KubeError as exc:  # a blip during a long wait is retried until the timeout
                say(f"API server not answering ({exc.message}); retrying")
                continue
            checks = evaluate_stack(plan, obs)
            if all(c.status in _FINE for c in checks):
                return checks, obs, time.monotonic() - started
            stalled = [c for c in checks if c.stalled]
            if stalled:  # waiting longer cannot help: say why now
                say(f"[{time.monotonic() - started:5.0f}s] stalled: " + "; ".join(f"{c.name}: {c.observed}" for c in stalled))
                return checks, obs, time.monotonic() - started


def _new_trouble(kube: Kube, plan: Plan, obs: Observed, told: set) -> list[Diagnosis]:
    """Diagnose once each pod with a (new) waiting reason or that the scheduler cannot place, and
    each workload whose pods the API server refuses, so --wait explains a stall while it waits."""
    fresh = []
    for pod in obs.pods:
        summary, reasons, _ = pod_summary(pod)
        unschedulable = any(c.get("type") == "PodScheduled" and c.get("reason") == "Unschedulable"
                            for c in (pod.get("status") or {}).get("conditions") or [])
        key = (pod["metadata"]["name"], tuple(r for _, r, _ in reasons), unschedulable)
        if (reasons or unschedulable) and key not in told:
            told.add(key)
            fresh.append(pod)
    out = []
    short = missing_pods(plan, obs)
    if short:
        try:
            for diag in workload_refusals(kube, plan, short, obs.deployments):
                key = (diag.pod, diag.summary)
                if key not in told:
                    told.add(key)
                    out.append(diag)
        except KubeError:
            pass
    if fresh:
        sub = Observed(obs.releases, obs.deployments, fresh, obs.pool, obs.gateway, obs.route)
        out += [d for d in collect_diagnostics(kube, plan, sub) if d.pod in {p["metadata"]["name"] for p in fresh}]
    return out
