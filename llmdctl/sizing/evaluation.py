"""One layout under the requested load, as ``plan`` prints it: the figures under each scenario
(pessimistic, expected, optimistic), the prior that moves them most, the assumptions, what the
model leaves out, and the ``vllm bench serve`` recipe that checks them. The search (planner.py)
and the what-if (whatif.py) both answer through here."""

from __future__ import annotations

import math

from .loadmodel import closed_loop, e2e_latency
from .model import Estimate, Scenario, aggregated, disagg, prefill_throughput
from .request import SCENARIOS, Layout, Request


def estimate(req: Request, layout: Layout, s: Scenario, prio: dict, rate: float | None) -> Estimate:
    m, g, wl = req.model, req.gpu, req.workload
    if layout.prefill:
        return disagg(m, g, wl, s, prio, layout.prefill[0], layout.prefill[1], layout.decode[0], layout.decode[1], rate, 1,
                      req.ttft, req.tpot, *layout.ep)
    return aggregated(m, g, wl, s, prio, layout.decode[0], layout.decode[1], rate, req.ttft, req.tpot, layout.ep[1])


def loaded(req: Request, layout: Layout, s: Scenario, prio: dict) -> Estimate:
    """The layout under the requested load: --concurrency users in a closed loop (loadmodel.py),
    --rate as open Poisson arrivals, or (neither) open arrivals at 80% of its capacity."""
    if req.concurrency is None:
        return estimate(req, layout, s, prio, req.rate)
    capacity = estimate(req, layout, s, prio, None).capacity
    return closed_loop(req.model, req.gpu, req.workload, s, prio, req.concurrency, layout.prefill, layout.decode, 1, capacity,
                       req.ttft, req.tpot, layout.ep)


def load_mode(req: Request, rate: float) -> dict:
    """How the load was given, as the output states it."""
    if req.concurrency is not None:
        users = f"{req.concurrency:g} user{'' if req.concurrency == 1 else 's'}"
        return {"mode": "closed", "users": req.concurrency,
                "summary": f"closed loop: {users}, each sending its next request when the previous finishes"}
    if req.rate is not None:
        return {"mode": "open", "rate": req.rate, "summary": f"open loop: {req.rate:.3g} req/s (Poisson arrivals)"}
    return {"mode": "open", "rate": round(rate, 3),
            "summary": f"open loop: {rate:.3g} req/s (Poisson arrivals at 80% of the expected capacity; no load was given)"}


def ranges(req: Request, layout: Layout, sc: dict[str, Scenario], prio: dict) -> dict[str, Estimate]:
    """The layout under each scenario: the same users (closed loop), or the same offered rate
    (--rate, else 80% of the middle capacity)."""
    if req.concurrency is not None:
        return {s: loaded(req, layout, sc[s], prio) for s in SCENARIOS}
    rate = req.rate if req.rate is not None else 0.8 * estimate(req, layout, sc["mid"], prio, None).capacity
    return {s: estimate(req, layout, sc[s], prio, rate) for s in SCENARIOS}


def per_gpu(req: Request, layout: Layout, s: Scenario, prio: dict) -> float:
    """Requests/s per GPU the decision compares: the open-loop capacity, or with --concurrency the
    throughput the closed loop's users reach."""
    if req.concurrency is not None:
        return loaded(req, layout, s, prio).rate / layout.gpus
    return estimate(req, layout, s, prio, None).capacity / layout.gpus


def sensitivity(req: Request, layout: Layout, sc: dict[str, Scenario], prio: dict) -> list[dict]:
    """Which single prior moves the layout's capacity (or TTFT) most between its range ends, under the
    load as given: with --concurrency, the throughput and TTFT the closed loop's users see (a prior
    that only matters in a queue the users never build does not rank high); otherwise the open-loop
    capacity and the TTFT at 80% of it."""
    mid = sc["mid"]
    closed = req.concurrency is not None
    # the middle priors' throughput (closed loop) or open-loop capacity each end is compared with
    base = loaded(req, layout, mid, prio).rate if closed else estimate(req, layout, mid, prio, None).capacity

    def moved(s: Scenario) -> tuple[float, float]:
        if closed:
            e = loaded(req, layout, s, prio)
            return e.rate, e.ttft
        est = estimate(req, layout, s, prio, 0.8 * base if base else None)
        return estimate(req, layout, s, prio, None).capacity, est.ttft
    knobs = {
        "prefill MFU": "prefill_mfu", "HBM efficiency": "hbm_eff", "per-layer decode overhead": "layer_us",
        "KV link bandwidth": "link", "KV transfer fixed cost": "overhead", "network efficiency": "net_eff",
    }
    if max(layout.ep) > 1:
        knobs.update({"expert all-to-all latency": "a2a_latency", "expert all-to-all efficiency": "a2a_eff"})
    out = []
    for label, field in knobs.items():
        spread = [moved(mid._replace(**{field: getattr(sc[end], field)})) for end in ("low", "high")]
        cap_change = abs(spread[1][0] - spread[0][0]) / base if base else 0.0
        ttfts = [t for _, t in spread if math.isfinite(t)]
        ttft_change = (max(ttfts) - min(ttfts)) / max(min(ttfts), 1e-9) if len(ttfts) == 2 else math.inf
        out.append({"parameter": label, "capacityChange": cap_change, "ttftChange": ttft_change})
    out.sort(key=lambda d: (-(d["capacityChange"] + min(d["ttftChange"], 10.0) / 4), d["parameter"]))
    return out[:3]


def moe_warnings(req: Request, layout: Layout) -> list[str]:
    """What the model leaves out for an MoE or MLA model in this layout."""
    m, out = req.model, []
    if m.moe:
        out.append("MoE experts are costed under uniform routing (no hot experts, no expert-load balancer)"
                   + ("; the expert-parallel all-to-all is not overlapped with compute" if max(layout.ep) > 1 else ""))
    roles = [r for r in (layout.prefill, layout.decode) if r]
    if m.mla and any(tp > 1 for _, tp in roles):
        out.append("MLA KV is counted as replicated on every TP rank (data-parallel attention, as in the DPxEP shapes, stores it once)")
    return out


def _rng(values: list[float], scale: float = 1.0, digits: int = 3) -> dict:
    """Figures under the pessimistic, expected (middle) and optimistic priors; None where the layout
    saturates (a queue that never drains has no mean)."""
    keys = ("pessimistic", "expected", "optimistic")
    return {k: (round(v * scale, digits) if math.isfinite(v) else None) for k, v in zip(keys, values)}


def figures(req: Request, layout: Layout, r: dict[str, Estimate], sc: dict[str, Scenario], prio: dict) -> dict:
    ests = [r[s] for s in SCENARIOS]
    caps = [estimate(req, layout, sc[s], prio, None).capacity for s in SCENARIOS]
    # open loop: the offered rate, up to what the layout sustains; closed loop: what the users reach
    served = [e.rate if req.concurrency is not None else min(e.rate, c) for e, c in zip(ests, caps)]
    out = {
        "load": load_mode(req, ests[1].rate),
        "requestRate": round(ests[1].rate, 3),
        "gpus": layout.gpus,
        "capacity": _rng(caps, digits=2),
        "throughput": _rng(served, digits=2),
        "throughputPerGpu": _rng([v / layout.gpus for v in served], digits=3),
        "outputTokensPerSecond": _rng([s * req.workload.osl for s in served], digits=0),
        "ttftMs": _rng([e.ttft for e in ests], 1000, 1),
        "tpotMs": _rng([e.tpot for e in ests], 1000, 2),
        "e2eLatencyMs": _rng([e2e_latency(e, req.workload.osl) for e in ests], 1000, 0),
        "decodeBatch": _rng([e.decode_batch for e in ests], digits=1),
        "prefillUtilization": _rng([e.prefill_util for e in ests], digits=2),
        "feasible": dict(zip(("pessimistic", "expected", "optimistic"), (r[s].feasible for s in SCENARIOS))),
        "saturation": dict(zip(("pessimistic", "expected", "optimistic"), (r[s].why or None for s in SCENARIOS))),
    }
    if max(layout.ep) > 1:
        # GPUs each role's experts are spread over (1: the role runs TP alone)
        out["expertParallel"] = {"prefillGroupGpus": layout.ep[0] if layout.prefill else None, "decodeGroupGpus": layout.ep[1]}
    if layout.prefill:
        out["kvTransferMs"] = _rng([e.kv_transfer for e in ests], 1000, 1)
        # the router scores endpoints, i.e. pods: a pod of an expert-parallel instance serves the data-
        # parallel ranks on its node (vLLM's hybrid load balancing), each as fast as one worker
        ranks = max(1, min(layout.ep[0], req.gpus_per_node) // layout.prefill[1]) if layout.ep[0] > 1 else 1
        out["peakPrefillThroughput"] = round(ranks * prefill_throughput(req.model, req.gpu, layout.prefill[1], req.workload, sc["mid"],
                                                                        layout.ep[0]))
        out["prefillRanksPerPod"] = ranks
    return out


def inputs_of(req: Request) -> dict:
    wl = req.workload
    return {"profile": req.profile, "gpu": req.gpu.name, "network": req.network, "model": req.model.name, "gpuBudget": req.gpus,
            "gpusPerNode": req.gpus_per_node, "isl": wl.isl, "osl": wl.osl, "prefixHit": wl.prefix_hit, "rate": req.rate,
            "concurrency": req.concurrency, "ttftMs": req.ttft * 1000 if req.ttft else None, "tpotMs": req.tpot * 1000 if req.tpot else None,
            "slaStatistic": "mean", "engine": req.engine,
            "budgetMode": "fill" if req.fill else ("fewest GPUs" if req.rate is not None or req.concurrency is not None else "most requests/s")}


def assumptions(req: Request, sc: dict[str, Scenario], calibrated: list[str]) -> list[str]:
    lo, mid, hi = sc["low"], sc["mid"], sc["high"]
    m = req.model
    return [
        f"{m.name}: {m.params / 1e9:.1f}B params ({m.active / 1e9:.1f}B active), {m.weight_bytes:g} B/param weights, {m.kv_bytes:g} B KV, "
        + (f"compute in {m.compute_dtype}" if m.compute_dtype in req.gpu.flops else f"{m.compute_dtype} weights computed in bf16 on {req.gpu.name}"),
        f"{req.gpu.name}: {req.gpu.memory / 1e9:.0f} GB, {req.gpu.hbm / 1e12:.2f} TB/s, {req.gpu.flops.get(m.compute_dtype, req.gpu.flops['bf16']) / 1e12:.0f} TFLOP/s",
        f"prefill MFU {_span(lo.prefill_mfu, hi.prefill_mfu)}, HBM efficiency {_span(lo.hbm_eff, hi.hbm_eff)}, per-layer decode overhead "
        f"{min(hi.layer_us.values()):.0f}-{max(lo.layer_us.values()):.0f} us",
        f"KV over {req.network}: {lo.link / 1e9:g}-{hi.link / 1e9:g} GB/s per link at {lo.net_eff}-{hi.net_eff} efficiency, "
        f"{hi.overhead * 1000:g}-{lo.overhead * 1000:g} ms fixed cost per transfer",
        ("closed loop: each user sends its next request when the previous finishes (think time 0); queues by mean-value "
         "analysis (Schweitzer), X = N / end-to-end latency" if req.concurrency is not None
         else "requests arrive as a Poisson process (M/D/1 queue per prefill worker)") + "; SLAs are means, not p90",
        f"weights + KV at {mid.mem_util:.0%} of GPU memory with {mid.runtime_overhead / 1e9:g} GB runtime overhead per GPU",
        *([_expert_assumption(req, lo, hi)] if m.moe else []),
        ("calibrated where listed below, priors elsewhere" if calibrated
         else "uncalibrated: about +-35% on throughput and TPOT, x0.5-x2 on loaded TTFT"),
    ]


def _expert_assumption(req: Request, lo: Scenario, hi: Scenario) -> str:
    g = req.gpu
    inside = (f"{g.nvlink / 1e9:g} GB/s per GPU inside a {g.nvlink_domain}-GPU NVLink domain, the NICs ({g.nic / 1e9:g} GB/s) beyond it"
              if g.nvlink else f"the NICs ({g.nic / 1e9:g} GB/s per GPU): no GPU fabric is known for {g.name}")
    return (f"expert-parallel shapes (DPxEP): each GPU holds 1/EP of the experts; every MoE layer's dispatch and combine cross {inside}, "
            f"at {lo.a2a_eff:g}-{hi.a2a_eff:g} efficiency plus {hi.a2a_latency * 1e6:g}-{lo.a2a_latency * 1e6:g} us each, not overlapped")


def _span(lo: dict, hi: dict) -> str:
    return f"{min(lo.values()):.2g}-{max(hi.values()):.2g}"


def validation(req: Request, layout: Layout, r: dict[str, Estimate]) -> dict:
    wl, low = req.workload, r["low"]
    rate = r["mid"].rate
    if req.concurrency is not None:
        load = f"--max-concurrency {req.concurrency:g} --request-rate inf --num-prompts {max(200, int(req.concurrency * 10))}"
        criteria = [f"output tokens/s >= {low.rate * wl.osl:.0f} with {req.concurrency:g} users"]
    else:
        load = f"--request-rate {rate:.3g} --num-prompts {max(200, int(rate * 120))}"
        criteria = [f"output tokens/s >= {min(low.rate, low.capacity) * wl.osl:.0f} at {rate:.3g} req/s"]
    if math.isfinite(low.ttft):
        criteria.append(f"mean TTFT <= {max(e.ttft for e in r.values() if math.isfinite(e.ttft)) * 1000:.0f} ms")
    if math.isfinite(low.tpot):
        criteria.append(f"mean TPOT <= {max(e.tpot for e in r.values() if math.isfinite(e.tpot)) * 1000:.1f} ms")
    return {
        "command": (f"vllm bench serve --base-url http://<gateway> --model {req.model.name} --dataset-name random "
                    f"--random-input-len {wl.isl} --random-output-len {wl.osl} {load}"),
        "passIf": criteria,
        "compareWith": "the alternative layout under the same command: P/D should beat it on the metric you sized for",
    }
