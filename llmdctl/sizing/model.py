"""Roofline performance model of one vLLM worker and of xPyD / aggregated layouts built from it.

Every function is pure arithmetic on the facts in guides/planner.yaml; ``Scenario`` carries the
efficiency priors at one end of their range (pessimistic, middle, optimistic), so a layout is
evaluated three times and every figure becomes a low-mid-high range.

Notation as in the planner notes: N = input tokens (ISL), M = output tokens (OSL), T = TP degree,
B = decode batch, lambda = request rate. Times are seconds, sizes bytes, rates per second.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import NamedTuple

GB = 1e9
TP_DEGREES = (1, 2, 4, 8)


class ModelFacts(NamedTuple):
    name: str
    layers: int
    full_layers: int  # layers with full attention (the rest use a sliding window)
    window: int | None
    hidden: int
    heads: int
    kv_heads: int
    head_dim: int
    params: float  # total
    active: float  # per token (MoE), = params for dense models
    experts: int | None
    top_k: int | None
    weight_bytes: float
    kv_bytes: float
    compute_dtype: str
    mla: bool
    dense_layers: int = 0  # MoE: leading layers with a dense FFN (no experts, no all-to-all)

    @property
    def moe(self) -> bool:
        return bool(self.experts)

    @property
    def moe_layers(self) -> int:
        return self.layers - self.dense_layers if self.moe else 0


class Gpu(NamedTuple):
    name: str
    memory: float  # bytes
    hbm: float  # bytes/s
    flops: dict  # dtype -> FLOP/s
    nic: float  # bytes/s per GPU (0: none)
    nvlink: float = 0.0  # GPU-to-GPU fabric, bytes/s per GPU and direction (0: none)
    nvlink_domain: int = 1  # GPUs the fabric joins


class Scenario(NamedTuple):
    """The efficiency priors at one end of their ranges."""

    name: str  # low | mid | high (pessimistic ... optimistic)
    prefill_mfu: dict  # TP -> fraction of the dense peak a prefill reaches
    hbm_eff: dict  # TP -> fraction of HBM bandwidth a decode step reaches
    compute_eff: float
    layer_us: dict  # TP -> per-layer decode overhead, microseconds
    cpu_per_layer: float  # seconds per layer per prefill
    net_eff: float
    link: float  # bytes/s per link
    overhead: float  # seconds per KV transfer
    mem_util: float
    runtime_overhead: float  # bytes per GPU
    max_batch: int
    a2a_latency: float = 0.0  # seconds per expert-parallel dispatch or combine
    a2a_eff: float = 1.0  # fraction of the fabric an all-to-all reaches
    a2a_bytes: float = 3.0  # bytes per hidden element for a dispatch and its combine together
    queue_per_doubling: float = 0.0  # prefill queueing factor per doubling of the users (loadmodel.serialized_prefill)
    queue_cap: float = 1.0


class Workload(NamedTuple):
    isl: int
    osl: int
    prefix_hit: float = 0.0  # fraction of the prompt already cached

    @property
    def uncached(self) -> float:
        return self.isl * (1.0 - self.prefix_hit)


# --- memory ------------------------------------------------------------------------------------


@lru_cache(maxsize=256)  # the search asks for the same few contexts tens of thousands of times
def kv_bytes(m: ModelFacts, ctx: float) -> float:
    """KV cache of one sequence of ``ctx`` tokens (all TP ranks together, no replication).
    MLA stores one latent per layer and token; GQA/MHA a key and a value per KV head. Sliding-
    window layers keep at most ``window`` tokens."""
    per_layer_token = m.kv_heads * m.head_dim * m.kv_bytes * (1 if m.mla else 2)
    swa_layers = m.layers - m.full_layers
    return per_layer_token * (m.full_layers * ctx + swa_layers * min(ctx, m.window or ctx))


def kv_replication(m: ModelFacts, tp: int) -> float:
    """How many times each KV byte is stored across the TP ranks: GQA heads are copied when TP
    exceeds the KV heads; the MLA latent lives on every rank."""
    if m.mla:
        return float(tp)
    return max(1.0, tp / m.kv_heads)


def weights(m: ModelFacts) -> float:
    return m.params * m.weight_bytes


@lru_cache(maxsize=64)
def dense_params(m: ModelFacts) -> float:
    """Parameters every token uses (attention, dense layers, shared experts, embeddings): all of a
    dense model; for MoE solved from active = dense + routed * k/E."""
    if not m.moe:
        return m.params
    k_over_e = m.top_k / m.experts
    return max(0.0, min((m.active - m.params * k_over_e) / (1.0 - k_over_e), m.params))


def held_weights(m: ModelFacts, tp: int, ep: int = 1) -> float:
    """Weight bytes on one worker's ``tp`` GPUs. With expert parallelism over ``ep`` GPUs (the
    worker is one of ep/tp data-parallel ranks) each GPU holds the dense part of its rank and
    1/ep of the routed experts; without, the worker holds the whole model."""
    if ep <= 1 or not m.moe:
        return weights(m)
    dense = dense_params(m)
    return (dense + (m.params - dense) * tp / ep) * m.weight_bytes


def fits(m: ModelFacts, gpu: Gpu, tp: int, s: Scenario, ep: int = 1) -> bool:
    return free_kv_memory(m, gpu, tp, s, ep) > 0


def free_kv_memory(m: ModelFacts, gpu: Gpu, tp: int, s: Scenario, ep: int = 1) -> float:
    """Bytes left for KV cache on all ``tp`` GPUs of one worker."""
    return tp * (s.mem_util * gpu.memory - s.runtime_overhead) - held_weights(m, tp, ep)


def max_batch(m: ModelFacts, gpu: Gpu, tp: int, ctx: float, s: Scenario, ep: int = 1) -> int:
    """Sequences of ``ctx`` tokens whose KV fits next to the weights (0 when the weights do not fit).
    A data-parallel rank keeps the KV of its own sequences only (attention is data-parallel)."""
    free = free_kv_memory(m, gpu, tp, s, ep)
    if free <= 0:
        return 0
    return min(s.max_batch, int(free // (kv_bytes(m, ctx) * kv_replication(m, tp))))


# --- prefill -----------------------------------------------------------------------------------


def compute_peak(m: ModelFacts, gpu: Gpu) -> float:
    """Dense FLOP/s at the dtype the GEMMs run in (FP4 weights on a GPU without FP4 run in BF16)."""
    return gpu.flops.get(m.compute_dtype) or gpu.flops["bf16"]


def attention_peak(m: ModelFacts, gpu: Gpu) -> float:
    """Dense FLOP/s of the attention kernel itself (QK^T and AV), which multiplies activations by
    the KV cache, not by weights: FlashAttention runs it in BF16, or in FP8 only over an FP8 KV cache
    (FlashAttention-3's FP8 path; vLLM's --kv-cache-dtype fp8). The weight dtype does not reach it:
    an FP8 or FP4 checkpoint with a BF16 KV cache still attends in BF16."""
    if m.kv_bytes <= 1 and "fp8" in gpu.flops:
        return gpu.flops["fp8"]
    return gpu.flops["bf16"]


def gemm_flops(m: ModelFacts, n: float, cached: float = 0.0) -> float:
    """2 * active params per new token: the weight GEMMs of a prefill."""
    return 2.0 * m.active * (n - cached)


def attention_flops(m: ModelFacts, n: float, cached: float = 0.0) -> float:
    """Causal attention over the whole context: full layers (n^2 - p^2) * 2 * heads * head_dim,
    sliding-window layers at most ``window`` back."""
    new = n - cached
    attn = 2.0 * m.heads * m.head_dim
    full = m.full_layers * attn * (n * n - cached * cached)
    swa = (m.layers - m.full_layers) * attn * 2.0 * new * min(n, m.window or n)
    return full + swa


def prefill_flops(m: ModelFacts, n: float, cached: float = 0.0) -> float:
    return gemm_flops(m, n, cached) + attention_flops(m, n, cached)


def prefill_compute(m: ModelFacts, gpu: Gpu, n: float, cached: float = 0.0) -> float:
    """Seconds one GPU at its full dense peak spends on a prefill: the GEMMs at the weights' compute
    dtype, the attention at the attention kernel's (``attention_peak``)."""
    return gemm_flops(m, n, cached) / compute_peak(m, gpu) + attention_flops(m, n, cached) / attention_peak(m, gpu)


def prefill_time(m: ModelFacts, gpu: Gpu, tp: int, wl: Workload, s: Scenario, ep: int = 1) -> float:
    """One prompt through a TP-``tp`` worker: compute at the prior MFU plus vLLM's CPU dispatch
    (and, expert-parallel, the all-to-all of its new tokens). A busy expert-parallel rank computes
    its share of every rank's experts, so the compute per GPU stays that of the active parameters."""
    return (prefill_compute(m, gpu, wl.isl, wl.isl * wl.prefix_hit) / (tp * s.prefill_mfu[tp]) + m.layers * s.cpu_per_layer
            + all_to_all(m, gpu, wl.uncached / tp, ep, s))


def prefill_throughput(m: ModelFacts, gpu: Gpu, tp: int, wl: Workload, s: Scenario, ep: int = 1) -> float:
    """Uncached prompt tokens per second one worker processes (llm-d's peakPrefillThroughput)."""
    return wl.uncached / prefill_time(m, gpu, tp, wl, s, ep)


# --- decode ------------------------------------------------------------------------------------


def weights_read(m: ModelFacts, batch: float, tp: int = 1, ep: int = 1) -> float:
    """Weight bytes one decode step reads on one worker: all of a dense model; for MoE the dense
    part plus the experts the batch touches, expected under uniform routing: 1 - (1 - k/E)^B of
    them. Expert-parallel, the worker holds tp/ep of the experts and every rank's tokens (B ep/tp)
    route to them."""
    if not m.experts:
        return m.params * m.weight_bytes
    dense = dense_params(m)
    tokens = batch if batch > 1.0 else 1.0
    if ep > 1:
        touched = 1.0 - (1.0 - m.top_k / m.experts) ** (tokens * ep / tp)
        return (dense + (m.params - dense) * touched * tp / ep) * m.weight_bytes
    return (dense + (m.params - dense) * (1.0 - (1.0 - m.top_k / m.experts) ** tokens)) * m.weight_bytes


def decode_step(m: ModelFacts, gpu: Gpu, tp: int, batch: float, ctx: float, s: Scenario, ep: int = 1) -> float:
    """One token for each of ``batch`` sequences of ``ctx`` tokens: bytes over HBM at the prior
    efficiency plus a fixed per-layer cost, or the compute bound if that is higher; expert-parallel,
    plus the all-to-all of the batch's tokens."""
    memory = (weights_read(m, batch, tp, ep) + batch * kv_bytes(m, ctx) * kv_replication(m, tp)) / (tp * gpu.hbm * s.hbm_eff[tp])
    compute = 2.0 * m.active * batch / (tp * compute_peak(m, gpu) * s.compute_eff)
    step = max(memory, compute) + m.layers * s.layer_us[tp] * 1e-6
    return step + all_to_all(m, gpu, batch / tp, ep, s) if ep > 1 else step


# --- expert parallelism ------------------------------------------------------------------------


def expert_fabric(gpu: Gpu, ep: int) -> float:
    """Bytes/s per GPU an all-to-all over ``ep`` GPUs runs at: the NVLink (or Infinity Fabric)
    domain when the group fits in it, else the NICs, which the traffic leaving a node crosses."""
    if gpu.nvlink and ep <= gpu.nvlink_domain:
        return gpu.nvlink
    return gpu.nic


def all_to_all(m: ModelFacts, gpu: Gpu, tokens: float, ep: int, s: Scenario) -> float:
    """The dispatch and combine of every MoE layer for ``tokens`` tokens per GPU in an expert-parallel
    group of ``ep`` GPUs: each token goes to at most min(k, ep) GPUs, (ep - 1)/ep of them remote
    (the DeepEP pattern; vLLM's all-gather/reduce-scatter backend moves the same volume at ep = k).
    0 without expert parallelism; inf when the group has no fabric to cross."""
    if ep <= 1 or not m.moe:
        return 0.0
    fabric = expert_fabric(gpu, ep)
    if fabric <= 0:
        return math.inf
    sent = tokens * min(m.top_k, ep) * m.hidden * s.a2a_bytes * (ep - 1) / ep
    return m.moe_layers * (2.0 * s.a2a_latency + sent / (fabric * s.a2a_eff))


def group_stall(rho: float, ranks: int) -> float:
    """The share of steps a decode waits for prefills on an aggregated worker whose prefills take
    ``rho`` of its time. Expert-parallel ranks step together (every MoE layer is a collective), so
    a rank's decode also waits while any other rank of its group prefills: with independent
    arrivals, 1 - (1 - rho)^ranks (vLLM's wide-EP write-up names this as why large EP groups are
    served disaggregated). A plain worker (one rank) waits for its own prefills only."""
    return 1.0 - (1.0 - rho) ** ranks if rho < 1.0 else 1.0


def decode_context(wl: Workload) -> float:
    return wl.isl + wl.osl / 2.0


# --- KV transfer and queueing ------------------------------------------------------------------


def kv_transfer(m: ModelFacts, wl: Workload, tp_prefill: int, tp_decode: int, nics_per_gpu: int, s: Scenario) -> float:
    """Prompt KV from a prefill to a decode worker: NIXL pulls per rank, so min(T_P, T_D) links."""
    links = max(1, min(tp_prefill, tp_decode) * nics_per_gpu)
    return s.overhead + kv_bytes(m, wl.isl) / (links * s.link * s.net_eff)


def md1_wait(rate: float, service: float) -> float:
    """Mean time in an M/D/1 queue (DistServe section 3): D + R D^2 / (2 (1 - R D)); inf when saturated."""
    rho = rate * service
    if rho >= 1.0:
        return math.inf
    return service + rate * service * service / (2.0 * (1.0 - rho))


# --- layouts -----------------------------------------------------------------------------------


class Estimate(NamedTuple):
    """One layout under one scenario, at one offered rate."""

    capacity: float  # requests/s the layout sustains (rate-matched)
    rate: float  # the rate the figures below are for
    ttft: float  # mean, seconds
    tpot: float  # mean, seconds
    decode_batch: float  # per decode instance
    prefill_util: float  # fraction of prefill time in use
    kv_transfer: float  # seconds per request (0 when aggregated)
    feasible: bool  # sustains ``rate`` within the SLAs
    why: str  # what breaks when not feasible


def _tpot_at(m, gpu, tp, per_instance_rate, wl, s, batch_cap, stretch: float = 1.0, ep: int = 1) -> tuple[float, float]:
    """Decode batch and TPOT at a per-instance request rate (Little's law, fixed point)."""
    ctx = decode_context(wl)
    tpot = decode_step(m, gpu, tp, 1, ctx, s, ep) * stretch
    batch = 1.0
    for _ in range(30):
        batch = max(1.0, per_instance_rate * wl.osl * tpot)
        if batch > batch_cap:
            return batch, math.inf
        new = decode_step(m, gpu, tp, batch, ctx, s, ep) * stretch
        if abs(new - tpot) < 1e-7:
            break
        tpot = new
    return batch, tpot


def disagg(m, gpu, wl, s, prio, x: int, tp_p: int, y: int, tp_d: int, rate: float | None, nics: int,
           ttft_sla: float | None, tpot_sla: float | None, ep_p: int = 1, ep_d: int = 1) -> Estimate:
    """x prefill workers of TP tp_p and y decode workers of TP tp_d (AIConfigurator-style rate
    matching with its 0.9 / 0.92 haircuts); at ``rate`` (default: 80% of capacity). A worker of an
    expert-parallel instance (ep_p, ep_d GPUs per expert group) is one of its data-parallel ranks."""
    t_pre = prefill_time(m, gpu, tp_p, wl, s, ep_p)
    cap_p = prio["prefill"] * x / t_pre
    ctx = decode_context(wl)
    b_cap = max_batch(m, gpu, tp_d, wl.isl + wl.osl, s, ep_d)
    if b_cap < 1 or not fits(m, gpu, tp_p, s, ep_p):
        return Estimate(0, rate or 0, math.inf, math.inf, 0, 0, 0, False, "the weights do not fit")
    b_slo = b_cap
    if tpot_sla:
        while b_slo > 1 and decode_step(m, gpu, tp_d, b_slo, ctx, s, ep_d) > tpot_sla:
            b_slo = max(1, int(b_slo * 0.9))
    cap_d = prio["decode"] * y * b_slo / (decode_step(m, gpu, tp_d, b_slo, ctx, s, ep_d) * wl.osl)
    capacity = min(cap_p, cap_d)
    at = rate if rate is not None else 0.8 * capacity
    t_kv = kv_transfer(m, wl, tp_p, tp_d, nics, s)
    wait = md1_wait(at / x, t_pre)
    batch, tpot = _tpot_at(m, gpu, tp_d, at / y, wl, s, b_cap, ep=ep_d)
    ttft = wait + t_kv + (tpot if math.isfinite(tpot) else 0)
    why = _breaks(at, capacity, ttft, tpot, ttft_sla, tpot_sla)
    return Estimate(capacity, at, ttft, tpot, batch, at * t_pre / x, t_kv, not why, why)


def aggregated(m, gpu, wl, s, prio, r: int, tp: int, rate: float | None, ttft_sla: float | None, tpot_sla: float | None,
               ep: int = 1) -> Estimate:
    """r workers of TP tp doing both phases: prefill steals step time from decode (TPOT / (1 - rho);
    expert-parallel ranks also wait for each other's prefills, ``group_stall``) and a prompt waits
    behind the running prefills (M/D/1)."""
    if not fits(m, gpu, tp, s, ep):
        return Estimate(0, rate or 0, math.inf, math.inf, 0, 0, 0, False, "the weights do not fit")
    t_pre = prefill_time(m, gpu, tp, wl, s, ep)
    b_cap = max_batch(m, gpu, tp, wl.isl + wl.osl, s, ep)
    ranks = ep // tp if ep > 1 else 1

    def tpot_at(lam_i: float) -> tuple[float, float, float]:
        rho = lam_i * t_pre
        if rho >= 1:
            return math.inf, rho, math.inf
        waiting = group_stall(rho, ranks)  # 1.0 once (1 - rho)^ranks underflows: decode never runs
        batch, tpot = _tpot_at(m, gpu, tp, lam_i, wl, s, b_cap, stretch=1.0 / (1.0 - waiting) if waiting < 1.0 else math.inf, ep=ep)
        return batch, rho, tpot

    # capacity: the largest per-instance rate keeping prefill below the utilisation cap, the batch
    # in memory and TPOT within the SLA (bisection; all three only get worse with rate)
    lo, hi = 0.0, prio["maxUtilization"] / t_pre
    for _ in range(40):
        mid = (lo + hi) / 2
        batch, rho, tpot = tpot_at(mid)
        ok = math.isfinite(tpot) and batch <= b_cap and (not tpot_sla or tpot <= tpot_sla)
        lo, hi = (mid, hi) if ok else (lo, mid)
    capacity = lo * r
    at = rate if rate is not None else 0.8 * capacity
    batch, rho, tpot = tpot_at(at / r)
    ttft = md1_wait(at / r, t_pre) + (tpot if math.isfinite(tpot) else 0)
    why = _breaks(at, capacity, ttft, tpot, ttft_sla, tpot_sla)
    return Estimate(capacity, at, ttft, tpot, batch, min(rho, 1.0), 0.0, not why and capacity > 0, why or ("" if capacity > 0 else "no rate meets the SLAs"))


def _breaks(rate, capacity, ttft, tpot, ttft_sla, tpot_sla) -> str:
    if capacity <= 0:
        return "no rate meets the SLAs"
    if rate > capacity * 1.0000001:
        return f"needs {rate:.3g} req/s, sustains {capacity:.3g}"
    if ttft_sla and not ttft <= ttft_sla:
        return f"TTFT {ttft * 1000:.0f} ms > {ttft_sla * 1000:.0f} ms"
    if tpot_sla and not tpot <= tpot_sla:
        return f"TPOT {tpot * 1000:.1f} ms > {tpot_sla * 1000:.1f} ms"
    return ""
