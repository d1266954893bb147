"""``llmdctl plan``: choose prefill/decode (xPyD) replicas and TP, or aggregated serving, from the
model, the hardware profile, the workload and the SLAs, with every figure as a low-mid-high range.

Method: per-role roofline curves (``model.py``) under pessimistic, middle and optimistic priors;
throughput-balanced xPyD sizing with AIConfigurator's haircuts; the aggregated baseline on the same
budget; P/D is recommended only when it still wins at the pessimistic end, the KV path is RDMA and
the workload has long prompts. Everything is arithmetic: no cluster, no network, well under a second.
"""

from __future__ import annotations

import math
from typing import NamedTuple

from ..base.errors import InputError
from ..catalog.catalog import Catalog
from . import frontier
from .evaluation import assumptions, figures, inputs_of, loaded, moe_warnings, per_gpu, ranges, sensitivity, validation
from .loadmodel import e2e_latency
from .model import TP_DEGREES, Estimate, Scenario, expert_fabric, fits
from .request import Layout, Request, Shape, budget, calibrated_scenarios, priorities


MAX_WORKERS = 32


class Candidate(NamedTuple):
    layout: Layout
    mid: Estimate
    low_ok: bool = False  # also meets the target under the pessimistic priors
    choice: str = ""  # why an expert-parallel layout was taken over the best TP-only one


def _candidate(req: Request, layout: Layout, sc: dict[str, Scenario], prio: dict) -> Candidate:
    mid = loaded(req, layout, sc["mid"], prio)
    low_ok = mid.feasible and loaded(req, layout, sc["low"], prio).feasible
    return Candidate(layout, mid, low_ok)


def _tps(req: Request, s: Scenario) -> list[int]:
    """TP degrees a worker can use: at most one node, heads split evenly, weights fit (and --tp's alone when given)."""
    return [t for t in TP_DEGREES if t <= req.gpus_per_node and req.model.heads % t == 0 and fits(req.model, req.gpu, t, s)
            and req.tp in (None, t)]


EP_GROUPS = (2, 4, 8, 16, 32, 64)


def _ep_groups(req: Request, s: Scenario, limit: int) -> list[int]:
    """Expert-parallel group sizes an MoE model can use with TP1 ranks: the experts split evenly, the
    ranks' share of the weights fits, whole nodes when the group spans several, within the budget.
    None for a dense model (no experts to spread: its DP ranks are plain TP1 engines), nor for an
    MoE model that fits one GPU: a TP1 replica of it needs no collective at all, and EP's modelled
    edge there stays inside the model's error (gpt-oss-120b on H200: 1.006x the requests per GPU)
    while it would double the search. A what-if still costs any EP shape."""
    m = req.model
    if not m.moe or req.tp not in (None, 1) or fits(m, req.gpu, 1, s):
        return []
    return [g for g in EP_GROUPS if g <= limit and m.experts % g == 0 and fits(m, req.gpu, 1, s, g) and expert_fabric(req.gpu, g) > 0
            and (g <= req.gpus_per_node or g % req.gpus_per_node == 0)]


def shapes(req: Request, s: Scenario) -> list[Shape]:
    """The instance shapes the search tries for either role: TP workers, then expert-parallel groups."""
    return [Shape(t) for t in _tps(req, s)] + [Shape(1, g) for g in _ep_groups(req, s, budget(req))]


def _shape_text(shape: Shape) -> str:
    return f"TP{shape.tp}" if shape.ep <= 1 else f"DP{shape.engines}EP (expert-parallel over {shape.ep} GPUs)"


def _key(c: Candidate, req: Request) -> tuple:
    """Sort key, best first: meets the target even under pessimistic priors, then under the
    middle ones; with --fill, the most of the budget, then (with a load) the lowest end-to-end latency
    at it, then the most headroom; with a target load,
    fewer GPUs then more headroom; without one, more requests per second then fewer GPUs."""
    head = (not c.low_ok, not c.mid.feasible)
    if req.fill:
        latency = e2e_latency(c.mid, req.workload.osl) if req.rate is not None or req.concurrency is not None else 0.0
        return head + (-c.layout.gpus, latency, -c.mid.capacity, str(c.layout))
    if req.rate is not None or req.concurrency is not None:
        return head + (c.layout.gpus, -c.mid.capacity, str(c.layout))
    return head + (-c.mid.capacity, c.layout.gpus, str(c.layout))


def _better(a: Candidate | None, b: Candidate, req: Request) -> bool:
    return a is None or _key(b, req) < _key(a, req)


def search_disagg(req: Request, sc: dict[str, Scenario], prio: dict, seen: list | None = None) -> Candidate | None:
    mid, limit = sc["mid"], budget(req)
    options = shapes(req, mid)
    best: dict[bool, Candidate | None] = {False: None, True: None}  # without / with expert parallelism
    for d in options:
        for p in options:
            if p.tp > d.tp:
                continue  # vLLM's NixlConnector needs prefill TP <= decode TP (rule V-15)
            if req.engine == "sglang" and p.tp != d.tp:
                continue  # SGLang without wide-EP transfers between equal TPs only
            for x in range(1, min(MAX_WORKERS, (limit - d.gpus) // p.gpus) + 1):
                # decode instances: enough to match this prefill capacity, within the budget
                for y in range(1, min(MAX_WORKERS, (limit - x * p.gpus) // d.gpus) + 1):
                    layout = Layout("disaggregated", (x * p.engines, p.tp), (y * d.engines, d.tp), ep=(p.ep, d.ep))
                    cand = _candidate(req, layout, sc, prio)
                    if seen is not None:
                        seen.append(cand)
                    if _better(best[max(layout.ep) > 1], cand, req):
                        best[max(layout.ep) > 1] = cand
                    if cand.low_ok and (req.rate or req.concurrency) and not req.fill:
                        break  # more decode workers only cost GPUs
    return _worth_experts(best[False], best[True], req, prio)


def search_aggregated(req: Request, sc: dict[str, Scenario], prio: dict, seen: list | None = None) -> Candidate | None:
    mid, limit = sc["mid"], budget(req)
    best: dict[bool, Candidate | None] = {False: None, True: None}
    for shape in shapes(req, mid):
        for r in range(1, min(MAX_WORKERS * 2, limit // shape.gpus) + 1):
            cand = _candidate(req, Layout("aggregated", None, (r * shape.engines, shape.tp), ep=(1, shape.ep)), sc, prio)
            if seen is not None:
                seen.append(cand)
            if _better(best[shape.ep > 1], cand, req):
                best[shape.ep > 1] = cand
            if cand.low_ok and (req.rate or req.concurrency) and not req.fill:
                break
    return _worth_experts(best[False], best[True], req, prio)


def _worth_experts(plain: Candidate | None, expert: Candidate | None, req: Request, prio: dict) -> Candidate | None:
    """The better of the best TP-only and the best expert-parallel layout, the expert-parallel one only
    when it is worth its all-to-all and its data-parallel wiring: it meets the target where no TP
    layout does, or serves at least the catalog's gain in requests per GPU (as P/D must over
    aggregated). A gain inside the model's error is not a reason to run a harder layout."""
    if expert is None or not _better(plain, expert, req):
        return plain
    if plain is None:
        return expert._replace(choice=f"expert parallelism: {req.model.name} fits no TP-only {expert.layout.mode} layout on "
                                      f"{req.gpu.name} within the budget")
    if (expert.low_ok and not plain.low_ok) or (expert.mid.feasible and not plain.mid.feasible) or not plain.mid.capacity:
        return expert._replace(choice=f"expert parallelism: the best TP-only {expert.layout.mode} layout ({plain.layout}) "
                                      f"misses the target ({plain.mid.why or 'at the pessimistic end'})")
    gain = (expert.mid.capacity / expert.layout.gpus) / (plain.mid.capacity / plain.layout.gpus)
    if gain < prio["expertParallelGain"]:
        return plain
    return expert._replace(choice=f"expert parallelism: {gain:.2f}x the requests per GPU of the best TP-only {expert.layout.mode} "
                                  f"layout ({plain.layout}), which is worth its all-to-all (>= {prio['expertParallelGain']}x)")


def recommend(catalog: Catalog, req: Request) -> dict:
    """The whole answer as plain data (text, JSON and the spec file are views of it)."""
    sc, calibrated = calibrated_scenarios(catalog, req)
    prio = priorities(catalog)
    decision = catalog.planner["decision"]
    net = catalog.planner["networks"][req.network]
    if req.tp and not shapes(req, sc["mid"]) and shapes(req._replace(tp=None), sc["mid"]):
        raise InputError(f"--tp {req.tp}: {req.model.name} cannot run at TP{req.tp} on {req.gpu.name} (the weights do not fit, "
                         f"or {req.model.heads} attention heads do not split {req.tp} ways)",
                         hint="what it can use: " + ", ".join(_shape_text(x) for x in shapes(req._replace(tp=None), sc["mid"])))
    if not shapes(req, sc["mid"]):
        spread = (f", nor spread over an expert-parallel group within the {budget(req)}-GPU budget" if req.model.moe
                  else " (a dense model's weights are not spread over data-parallel ranks)")
        raise InputError(f"{req.model.name} ({req.model.params / 1e9:.0f}B params, {req.model.params * req.model.weight_bytes / 1e9:.0f} GB of weights) "
                         f"does not fit on {min(req.gpus_per_node, 8)} {req.gpu.name} of one node at any TP{spread}",
                         hint="pick a bigger GPU (--gpu), a quantized model" + (" or a larger --gpus budget" if req.model.moe else ""))
    seen: list[Candidate] = []
    pd = search_disagg(req, sc, prio, seen)
    agg = search_aggregated(req, sc, prio, seen)
    pd_ranges = ranges(req, pd.layout, sc, prio) if pd else None
    agg_ranges = ranges(req, agg.layout, sc, prio) if agg else None

    reasons, warnings = [], []
    wl = req.workload
    if not net["rdma"]:
        reasons.append(f"the KV path is {req.network} (no RDMA): P/D over TCP is functional only, TTFT can reach tens of seconds")
    if wl.isl < decision["minIsl"]:
        reasons.append(f"prompts are short (ISL {wl.isl} < {decision['minIsl']}): prefill is a small share of the work")
    if wl.isl / max(wl.osl, 1) < decision["minIslOslRatio"]:
        reasons.append(f"ISL/OSL is {wl.isl / max(wl.osl, 1):.1f} (< {decision['minIslOslRatio']}): decode dominates, separating prefill frees little")
    gain = None
    if pd and agg and pd_ranges and agg_ranges:
        lo_pd, lo_agg = pd_ranges["low"], agg_ranges["low"]
        pd_pg, agg_pg = (per_gpu(req, c.layout, sc["low"], prio) for c in (pd, agg))
        gain = pd_pg / agg_pg if agg_pg else math.inf
        if lo_agg.feasible and not lo_pd.feasible:
            reasons.append(f"at the pessimistic end the P/D layout misses the target ({lo_pd.why}) while aggregated meets it")
        elif not (lo_pd.feasible and not lo_agg.feasible) and gain < decision["minGain"]:
            reasons.append(f"at the pessimistic end P/D serves {gain:.2f}x the requests per GPU of aggregated "
                           f"(needs >= {decision['minGain']}x to be worth a second pool)")
    elif not pd:
        reasons.append("no P/D layout fits the budget")
    use_pd = bool(pd) and not reasons
    chosen, alt = (pd, agg) if use_pd else (agg, pd)
    chosen_ranges, alt_ranges = (pd_ranges, agg_ranges) if use_pd else (agg_ranges, pd_ranges)
    if chosen is None:
        raise InputError("no layout fits the GPU budget", hint="raise --gpus or pick a bigger GPU")
    if not chosen_ranges["mid"].feasible:
        warnings.append(f"even the chosen layout misses the target in the middle of the ranges ({chosen_ranges['mid'].why}): "
                        "raise --gpus or relax the SLAs")
    if use_pd:
        warnings.append("mean TTFT can rise with P/D (every request waits for a KV transfer); measured P/D runs show it, so check it")
    if not net["rdma"]:
        warnings.append(f"{req.network} KV transfer is functional only: expect seconds of TTFT on long prompts")
    warnings += moe_warnings(req, chosen.layout)
    if req.time_sliced:
        warnings.append(f"-e {req.profile} time-slices one GPU between prefill and decode; the planner counts separate GPUs, "
                        "so every P/D figure here is optimistic (use it only to compare layouts)")
    alternative = ({"mode": alt.layout.mode, **alt.layout.spec_layout(), "gpus": alt.layout.gpus, "summary": str(alt.layout),
                    "predicted": figures(req, alt.layout, alt_ranges, sc, prio)} if alt else None)
    recommendation = {"mode": chosen.layout.mode, **chosen.layout.spec_layout(), "gpus": chosen.layout.gpus, "summary": str(chosen.layout),
                      "predicted": figures(req, chosen.layout, chosen_ranges, sc, prio)}
    pair = sorted((d for d in (recommendation, alternative) if d), key=lambda d: d["mode"] != "aggregated")
    return {
        "inputs": inputs_of(req),
        "recommendation": {k: v for k, v in recommendation.items() if k != "predicted"},
        "criterion": criterion(req, decision),
        "why": (reasons if not use_pd else [f"P/D serves {gain:.2f}x the requests per GPU of {alt.layout} at the pessimistic end"
                                             if gain is not None and math.isfinite(gain) else "aggregated cannot meet the target"])
               + ([chosen.choice] if chosen.choice else []),
        "predicted": recommendation["predicted"],
        "alternative": alternative,
        "tradeoff": frontier.tradeoff(*pair) if len(pair) == 2 else None,
        "frontier": frontier.summary([_point(req, c) for c in _meeting(seen)], str(chosen.layout)),
        "pdGainAtLowEnd": gain if gain is not None and math.isfinite(gain) else None,
        "sensitive": sensitivity(req, chosen.layout, sc, prio),
        "assumptions": assumptions(req, sc, calibrated),
        "calibrated": calibrated,
        "warnings": warnings,
        "validation": validation(req, chosen.layout, chosen_ranges),
    }


def criterion(req: Request, decision: dict) -> str:
    """Which criterion picked the recommendation, in words."""
    slas = " and ".join(f"{name} <= {value * 1000:g} ms" for name, value in (("TTFT", req.ttft), ("TPOT", req.tpot)) if value)
    if req.fill:
        best = "the lowest mean end-to-end latency at that load" if req.rate is not None or req.concurrency is not None else "the most capacity"
        return (f"the whole --gpus {req.gpus} budget (--fill): of the layouts that use the most of it and meet the target at the "
                f"pessimistic end, {best}"
                + (f" with {slas}" if slas else "") + f"; P/D only if it serves >= {decision['minGain']}x the requests per GPU "
                "of aggregated (RDMA, long prompts)")
    if req.concurrency is not None:
        target = f"serve {req.concurrency:g} closed-loop users without a saturated stage"
    elif req.rate is not None:
        target = f"sustain {req.rate:g} req/s"
    else:
        target = None
    first = (f"fewest GPUs that {target}" + (f" with {slas}" if slas else "") + " at the pessimistic end" if target
             else f"most requests/s on the {budget(req)}-GPU budget" + (f" with {slas} (goodput under the SLAs)" if slas else "")
             + ", then fewest GPUs")
    tail = ("" if slas else ". No SLA was given, so latency did not count: the trade-off below shows what each layout buys; "
            "give --tpot/--ttft to rank on goodput under them")
    return f"{first}; P/D only if it serves >= {decision['minGain']}x the requests per GPU of aggregated (RDMA, long prompts){tail}"


def _meeting(seen: list[Candidate]) -> list[Candidate]:
    """The searched layouts that meet the target as the recommendation must: under the pessimistic
    priors too (or, when none does, under the middle ones)."""
    return [c for c in seen if c.low_ok] or [c for c in seen if c.mid.feasible]


def _point(req: Request, c: Candidate) -> dict:
    """A searched layout on the trade-off chart: its middle-prior figures at the requested load."""
    e = c.mid
    served = e.rate if req.concurrency is not None else min(e.rate, e.capacity)
    return {"label": str(c.layout), "mode": c.layout.mode, "gpus": c.layout.gpus, "perGpu": served / c.layout.gpus,
            "ttftMs": e.ttft * 1000, "tpotMs": e.tpot * 1000, "e2eMs": e2e_latency(e, req.workload.osl) * 1000}
