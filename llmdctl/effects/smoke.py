"""The smoke test: one completion through the stack's endpoint, and proof that the KV cache moved
(the prefill pods' prompt-token counters, and with precise prefix routing the EPP's KV events)."""

from __future__ import annotations

import json
import re
import secrets
import time
import urllib.error
import urllib.request

from ..base.errors import LlmdctlError
from ..plan.stack import Plan
from ..compose.modelserver import ROLE_LABEL
from .health import FAIL, PASS, Check, pod_ready, selector_text
from .kube import PODS, Kube, KubeError

PREFILL_COUNTER = "vllm:prompt_tokens_total"


def metric_sum(text: str, name: str) -> float:
    """Sum of every series of one counter in Prometheus text format."""
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and (len(line) == len(name) or line[len(name)] in " {"):
            try:
                total += float(line.rsplit(" ", 1)[-1])
            except ValueError:
                continue
    return total


def prompt_tokens(kube: Kube, plan: Plan, role: str, pods: list[dict]) -> tuple[dict[str, float], list[str]]:
    """Prompt tokens each pod of a role has processed so far (read through the API server's pod proxy)."""
    port = plan.roles[role].vllm_port
    by_pod, errors = {}, []
    for pod in pods:
        name = pod["metadata"]["name"]
        try:
            by_pod[name] = metric_sum(kube.pod_proxy(plan.namespace, name, port, "metrics"), PREFILL_COUNTER)
        except KubeError as exc:
            errors.append(f"{name}: {exc.message}")
    return by_pod, errors


def prefill_tokens(kube: Kube, plan: Plan, pods: list[dict]) -> tuple[float, list[str]]:
    """Prompt tokens the prefill pods have processed so far."""
    by_pod, errors = prompt_tokens(kube, plan, "prefill", pods)
    return sum(by_pod.values()), errors


def series_by_label(text: str, name: str, label: str) -> dict[str, float]:
    """label value -> sum of the counter's series with it, from Prometheus text format."""
    out: dict[str, float] = {}
    pattern = re.compile(re.escape(label) + r'="((?:[^"\\]|\\.)*)"')
    for line in text.splitlines():
        if not line.startswith(name + "{"):
            continue
        labels, _, value = line[len(name):].rpartition("}")
        m = pattern.search(labels)
        if not m:
            continue
        try:
            out[m.group(1)] = out.get(m.group(1), 0.0) + float(value.split()[0])
        except (ValueError, IndexError):
            continue
    return out


def _of_pod(counts: dict[str, float], namespace: str, pod: str) -> float:
    """A pod's share of a per-endpoint EPP series (endpoints are <namespace>/<pod>-rank-<n>)."""
    prefix = f"{namespace}/{pod}-rank-"
    return sum(v for k, v in counts.items() if k.startswith(prefix))


def kv_events_check(plan: Plan, served: dict[str, float], before: str, after: str) -> Check:
    """Did the EPP receive KV events from the pods that just prefilled the smoke prompt? (The GH200
    report's failure: events never arrived, and the precise scorer gave every endpoint 0.)"""
    kv = plan.kv_events or {}
    metric, errors_metric = kv["receivedMetric"], kv["errorsMetric"]
    expected = f"{metric} rises for the pod that prefilled the prompt"
    was, now = series_by_label(before, metric, "pod_identifier"), series_by_label(after, metric, "pod_identifier")
    errors = series_by_label(after, errors_metric, "pod_identifier")
    silent, heard = [], []
    for pod, tokens in sorted(served.items()):
        delta = _of_pod(now, plan.namespace, pod) - _of_pod(was, plan.namespace, pod)
        if delta > 0:
            heard.append(f"{pod}: {delta:.0f} messages")
        else:
            failed = _of_pod(errors, plan.namespace, pod)
            silent.append(f"{pod} prefilled {tokens:.0f} prompt tokens, but the EPP received no KV events from it"
                          + (f" ({failed:.0f} ZMQ errors for it)" if failed else "")
                          + ("" if any(k.startswith(f"{plan.namespace}/{pod}-rank-") for k in now) else " (no subscriber series for it)"))
    if silent:
        port = kv["eventsPort"]
        return Check("KV events reached the EPP", FAIL, "; ".join(silent), expected,
                     hint=f"the EPP dials each pod on port {port}: check the pod's --kv-events-config (endpoint tcp://*:{port}, "
                          "topic kv@$(POD_IP):<pool port>@<served model>), a NetworkPolicy between the EPP and the pods, "
                          f"and the EPP's log (kubectl logs deploy/{plan.names['epp']} | grep -i zmq)")
    return Check("KV events reached the EPP", PASS, "; ".join(heard), expected)


def _http(url: str, body: dict | None = None, timeout: float = 60.0):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json", "Accept": "application/json, text/event-stream"},
                                 method="POST" if data else "GET")
    return urllib.request.urlopen(req, timeout=timeout)  # noqa: S310 - the user's own endpoint


def smoke(kube: Kube, plan: Plan, endpoint: str, *, timeout: float = 120.0, epp_metrics=None, settle: float = 15.0) -> list[Check]:
    """GET /v1/models and one streamed completion through the gateway; for P/D, prove a prefill pod
    took part; with precise prefix-cache routing, that the EPP heard that pod's KV events.

    ``epp_metrics`` reads the EPP's /metrics text (a callable: it needs a port-forward and a token);
    KV events arrive shortly after the blocks are stored, so the EPP is re-read for up to ``settle`` s."""
    base = endpoint.rstrip("/")
    model = plan.model["name"]
    checks: list[Check] = []
    try:
        t0 = time.monotonic()
        with _http(base + "/v1/models", timeout=timeout) as resp:
            ids = [m.get("id") for m in json.loads(resp.read()).get("data", [])]
        ms = (time.monotonic() - t0) * 1000
        ok = model in ids
        checks.append(Check("GET /v1/models", PASS if ok else FAIL, f"{', '.join(map(str, ids)) or 'no models'} ({ms:.0f} ms)", model,
                            hint="" if ok else "the gateway answers but not with this stack's model: is the route on the right Gateway?"))
    except (urllib.error.URLError, OSError, ValueError) as exc:
        checks.append(Check("GET /v1/models", FAIL, f"{base}: {getattr(exc, 'reason', exc)}", model,
                            hint="use --endpoint URL, or --port-forward to reach a ClusterIP gateway"))
        return checks
    prefill_pods: list[dict] = []
    role = "prefill" if plan.mode == "disaggregated" else "decode"  # the pods that compute the prompt's KV cache
    precise = plan.kv_events is not None and epp_metrics is not None
    if plan.mode == "disaggregated" or precise:
        prefill_pods = [p for p in kube.list(PODS, plan.namespace, labels=selector_text({**plan.pool_selector, ROLE_LABEL: role})) if pod_ready(p)]
        tokens_before, errors = prompt_tokens(kube, plan, role, prefill_pods)
    epp_before, epp_error = "", ""
    if precise:
        try:
            epp_before = epp_metrics()
        except LlmdctlError as exc:
            epp_error = exc.message
    # A fresh nonce keeps the prompt out of every prefix cache, and enough words clear the
    # selective-P/D threshold (and fill several KV blocks), so the scheduler has every reason to
    # send it through prefill and vLLM stores blocks it reports.
    threshold = (plan.spec.pd_threshold if plan.spec and plan.spec.pd_threshold else 0) or 0
    blocks = 4 * (plan.kv_events or {}).get("blockSize", 0)
    prompt = f"[llmdctl smoke {secrets.token_hex(8)}] " + " ".join(["Describe prefill and decode disaggregation."] * (max(threshold, blocks) // 5 + 8))
    body = {"model": model, "prompt": prompt, "max_tokens": 8, "stream": True, "temperature": 0}
    try:
        t0 = time.monotonic()
        ttft, chunks = None, 0
        with _http(base + "/v1/completions", body, timeout=timeout) as resp:
            for raw in resp:
                line = raw.decode("utf-8", "replace").strip()
                if not line.startswith("data:") or line == "data: [DONE]":
                    continue
                chunks += 1
                if ttft is None:
                    ttft = time.monotonic() - t0
        latency = time.monotonic() - t0
        if chunks == 0:
            checks.append(Check("completion", FAIL, "the stream carried no tokens", "a streamed completion"))
        else:
            checks.append(Check("completion", PASS, f"{chunks} chunks, time to first token {ttft * 1000:.0f} ms, total {latency * 1000:.0f} ms", "a streamed completion"))
    except (urllib.error.URLError, OSError) as exc:
        detail = exc.read().decode("utf-8", "replace")[:300] if isinstance(exc, urllib.error.HTTPError) else ""
        checks.append(Check("completion", FAIL, f"{getattr(exc, 'reason', exc)} {detail}".strip(), "a streamed completion"))
        return checks
    tokens_after: dict[str, float] = {}
    if plan.mode == "disaggregated" or precise:
        tokens_after, errors2 = prompt_tokens(kube, plan, role, prefill_pods)
        errors += errors2
    if plan.mode == "disaggregated":
        before, after = sum(tokens_before.values()), sum(tokens_after.values())
        if errors or not prefill_pods:
            checks.append(Check("request went through prefill", FAIL, "; ".join(errors) or "no ready prefill pod", f"{PREFILL_COUNTER} rises on a prefill pod",
                                hint="the prefill pods' /metrics could not be read through the API server's pod proxy"))
        elif after > before:
            checks.append(Check("request went through prefill", PASS, f"prefill pods processed {after - before:.0f} prompt tokens", f"{PREFILL_COUNTER} rises on a prefill pod"))
        else:
            checks.append(Check("request went through prefill", FAIL, f"{PREFILL_COUNTER} unchanged on {len(prefill_pods)} prefill pod(s)", f"{PREFILL_COUNTER} rises on a prefill pod",
                                hint="decode served the request alone: check the EPP's P/D profile (llmdctl render --print | grep -A20 pluginsCustomConfig), "
                                     "the routing sidecar's logs on the decode pod, and --pd-threshold"))
    if precise:
        checks.append(_kv_events_after(plan, role, epp_metrics, epp_before, epp_error, tokens_before, tokens_after, settle))
    return checks


def _kv_events_after(plan: Plan, role: str, epp_metrics, before: str, error: str, tokens_before: dict, tokens_after: dict,
                     settle: float) -> Check:
    """Re-read the EPP until it has heard from every pod that prefilled the prompt, or ``settle`` s pass."""
    expected = "the EPP receives KV events from the pod that prefilled the prompt"
    served = {pod: tokens_after[pod] - tokens_before.get(pod, 0.0) for pod in tokens_after if tokens_after[pod] > tokens_before.get(pod, 0.0)}
    if not error and not served:
        return Check("KV events reached the EPP", FAIL, f"no {role} pod's {PREFILL_COUNTER} rose, so there is no pod whose events to look for",
                     expected,
                     hint="the pods' /metrics could not show which pod served the request")
    deadline = time.monotonic() + settle
    while not error:
        try:
            after = epp_metrics()
        except LlmdctlError as exc:
            error = exc.message
            break
        check = kv_events_check(plan, served, before, after)
        if check.status == PASS or time.monotonic() >= deadline:
            return check
        time.sleep(0.5)
    return Check("KV events reached the EPP", FAIL, f"the EPP's /metrics could not be read: {error}", expected,
                 hint=f"verify reads them through a port-forward to service/{plan.names['epp']} with a short-lived token of its "
                      "ServiceAccount (the router chart grants it /metrics when monitoring.prometheus.enabled is true)")
