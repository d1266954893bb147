"""Closed-loop load: ``--concurrency N`` as N users, each sending its next request as soon as the
previous one finishes (think time Z = 0), which is how ``vllm bench serve --max-concurrency`` and
published benchmark tables measure. ``--rate`` stays open-loop Poisson arrivals (``model.py``).

The layout is a closed queueing network with three stations a request visits in turn:

- prefill: c workers of service time D (c = prefill workers, or every worker when aggregated),
  approximated as Seidmann does: one queue of service D/c plus a pure delay of D (c - 1)/c;
- the KV transfer (P/D only): a pure delay;
- decode: OSL steps whose length grows with the batch, B = the users in decode per instance,
  and (aggregated) stretched by the other users' prefills: TPOT / (1 - rho (n - 1)/n).

Mean-value analysis with Schweitzer's approximation (Q(n - 1) = Q(n) (n - 1)/n) gives the queue at
the prefill station without a recursion over 1..N: R_q = (D/c) / (1 - X (D/c) (n - 1)/n). The
response time law X = N / (R + Z), Z = 0, closes the loop, so throughput never exceeds N / latency
and one user (n = 1) sees no queue at all: TTFT is the unloaded prefill (+ KV transfer) plus one
decode step. When the users do not fit the decode KV cache, the rest wait before their prefill
(vLLM's waiting queue) and decode runs at its memory-bound batch.

It is solved by bisection on the one unknown, the decode batch per instance: for a batch B,
Little's law on decode gives X (explicit, also with the aggregated stretch), X gives the prefill
queue, and X R - N grows with B, so its root is unique (45 halvings of at most 512: exact for
every practical purpose, and deterministic).
"""

from __future__ import annotations

import math

from .model import (Estimate, ModelFacts, Gpu, Scenario, Workload, decode_context, decode_step, fits, group_stall, kv_transfer, max_batch,
                    prefill_time)


def unloaded_ttft(m: ModelFacts, gpu: Gpu, wl: Workload, s: Scenario, prefill: tuple[int, int] | None, tp_d: int, nics: int,
                  ep: tuple[int, int] = (1, 1)) -> float:
    """TTFT of a request alone in the layout: its prefill, the KV transfer (P/D) and one decode step."""
    tp_pre = prefill[1] if prefill else tp_d
    t_kv = kv_transfer(m, wl, prefill[1], tp_d, nics, s) if prefill else 0.0
    ep_pre = ep[0] if prefill else ep[1]
    return prefill_time(m, gpu, tp_pre, wl, s, ep_pre) + t_kv + decode_step(m, gpu, tp_d, 1, decode_context(wl), s, ep[1])


def closed_loop(m: ModelFacts, gpu: Gpu, wl: Workload, s: Scenario, prio: dict, users: float, prefill: tuple[int, int] | None,
                decode: tuple[int, int], nics: int, capacity: float, ttft_sla: float | None, tpot_sla: float | None,
                ep: tuple[int, int] = (1, 1)) -> Estimate:
    """``users`` closed-loop users on x prefill workers of TP tp_p (``prefill``, None when aggregated)
    and y decode (or aggregated) workers of TP tp_d; ``capacity`` is the layout's open-loop capacity,
    carried through for comparison. ``Estimate.rate`` is the throughput the users reach. ``ep`` is
    each role's expert-parallel group (GPUs; 1 without), whose ranks are the workers."""
    y, tp_d = decode
    c, tp_pre = prefill if prefill else decode
    ep_pre, ep_d = (ep[0] if prefill else ep[1]), ep[1]
    b_cap = max_batch(m, gpu, tp_d, wl.isl + wl.osl, s, ep_d)
    if b_cap < 1 or (prefill and not fits(m, gpu, tp_pre, s, ep_pre)):
        return Estimate(0, 0, math.inf, math.inf, 0, 0, 0, False, "the weights do not fit")
    t_pre = prefill_time(m, gpu, tp_pre, wl, s, ep_pre)
    t_kv = kv_transfer(m, wl, tp_pre, tp_d, nics, s) if prefill else 0.0
    ctx = decode_context(wl)
    n = float(users)
    others = max(0.0, (n - 1.0) / n)  # Schweitzer: what an arriving request sees of the other users
    d_q, d_delay = t_pre / c, t_pre * (c - 1) / c

    ranks = ep_d // tp_d if ep_d > 1 and not prefill else 1  # aggregated EP ranks wait for each other's prefills
    a = others * t_pre / c

    def stretched(k: float) -> float:
        """Throughput when decode alone would give k: X = k (1 - stall(X a)), the stall growing
        with X. One rank: X = k / (1 + k a) in closed form; an EP group: bisection (the
        difference X - k (1 - stall) only grows with X, so the root is unique)."""
        if ranks == 1:
            return k / (1.0 + k * a)
        lo, hi = 0.0, min(k, 1.0 / a) if a else k
        for _ in range(45):
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if mid < k * (1.0 - group_stall(mid * a, ranks)) else (lo, mid)
        return lo

    def state(batch: float) -> tuple[float, float, float]:
        """Throughput, prefill residence and TPOT when ``batch`` users per decode instance are
        decoding: Little's law on decode gives X = y B / (OSL TPOT); an aggregated worker's
        step is stretched by the others' prefills, TPOT = step / (1 - stall(X a)), solved for X."""
        step = decode_step(m, gpu, tp_d, max(1.0, batch), ctx, s, ep_d)
        k = batch * y / (wl.osl * step)
        x = k if prefill else stretched(k)
        waiting = 0.0 if prefill else group_stall(x * a, ranks)
        tpot = step / (1.0 - waiting) if waiting < 1.0 else math.inf
        load = others * x * d_q
        return x, (d_q / (1.0 - load) + d_delay if load < 1.0 else math.inf), tpot

    def excess(batch: float) -> float:
        """X R - N (the closed loop's population, Little's law): grows with the batch."""
        x, r_pre, _ = state(batch)
        return x * (r_pre + t_kv) + batch * y - n

    lo, hi = 0.0, float(b_cap)
    kv_bound = excess(hi) < 0  # even a full KV cache leaves users over: they wait for a place
    if not kv_bound:
        for _ in range(45):  # 512 / 2^45: far below one sequence
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if excess(mid) < 0 else (lo, mid)
    batch = hi
    x, r_pre, tpot = state(batch)
    if not prefill:
        r_pre = max(r_pre, serialized_prefill(n / y, s) * t_pre)
    latency = r_pre + t_kv + wl.osl * tpot
    x = min(x, n / latency)  # the response time law, X = N / (R + Z) with Z = 0
    # what is not prefill, transfer or decode is waiting for a place in the decode batch
    wait = n / x - latency if kv_bound else 0.0
    ttft = wait + r_pre + t_kv + tpot
    batch = max(1.0, batch)
    util = x * t_pre / c
    why = _saturated(util, kv_bound, b_cap, n, y, prio)
    if not why and ttft_sla and ttft > ttft_sla:
        why = f"TTFT {ttft * 1000:.0f} ms > {ttft_sla * 1000:.0f} ms"
    if not why and tpot_sla and tpot > tpot_sla:
        why = f"TPOT {tpot * 1000:.1f} ms > {tpot_sla * 1000:.1f} ms"
    return Estimate(capacity, x, ttft, tpot, batch, min(util, 1.0), t_kv, not why, why)


def serialized_prefill(users: float, s: Scenario) -> float:
    """How much longer than its own prefill a prompt spends on an aggregated vLLM worker with ``users``
    closed-loop users: vLLM v1 runs one partial prefill at a time, so prompts queue behind the active
    one even at a low mean utilisation, more than mean-value analysis (which assumes smooth arrivals)
    finds. The prior (guides/planner.yaml prefillQueueing) is AIConfigurator's vLLM TTFT factor,
    1 + log2(b) / 8 at most 2, in the middle; closed_loop keeps the queueing model where it says more."""
    return min(1.0 + s.queue_per_doubling * math.log2(users), s.queue_cap) if users > 1 else 1.0


def _saturated(util: float, kv_bound: bool, b_cap: int, users: float, y: int, prio: dict) -> str:
    if kv_bound:
        return f"{users:g} users do not fit the decode KV cache ({b_cap} sequences per instance x {y}): the rest queue"
    if util > prio["maxUtilization"]:
        return f"prefill is saturated ({util:.0%} busy): requests queue for it"
    return ""


def e2e_latency(est: Estimate, osl: int) -> float:
    """End-to-end latency of one request as vllm bench serve reports it: TTFT + (OSL - 1) TPOT."""
    return est.ttft + max(osl - 1, 0) * est.tpot
