"""``llmdctl plan``: choose prefill/decode (xPyD) replicas and TP, or aggregated serving, from the
model, the hardware profile, the workload and the SLAs, with every figure as a low-mid-high range.

Method: per-role roofline curves (``model.py``) under pessimistic, middle and optimistic priors;
throughput-balanced xPyD sizing with AIConfigurator's haircuts; the aggregated baseline on the same
budget; P/D is recommended only when it still wins at the pessimistic end, the KV path is RDMA and
the workload has long prompts. Everything is arithmetic: no cluster, no network, well under a second.
"""

from __future__ import annotations

import math
import os
from typing import NamedTuple

from ..base.errors import InputError, suggest
from ..catalog.catalog import Catalog
from . import calibration, frontier
from .loadmodel import closed_loop, e2e_latency
from ..inputs.spec import RoleLayout
from .model import TP_DEGREES, Estimate, Gpu, ModelFacts, Scenario, Workload, aggregated, disagg, fits, prefill_throughput

SCENARIOS = ("low", "mid", "high")
MAX_WORKERS = 32


class Request(NamedTuple):
    """What the user asked for, resolved against the catalog."""

    profile: str
    gpu: Gpu
    network: str
    model: ModelFacts
    workload: Workload
    gpus: int | None  # budget
    gpus_per_node: int
    rate: float | None
    concurrency: float | None
    ttft: float | None  # mean, seconds
    tpot: float | None  # mean, seconds
    engine: str = "vllm"
    calibrations: tuple = ()  # entries of a calibration file (calibration.py)
    engine_version: str | None = None
    time_sliced: bool = False  # the profile shares one GPU between prefill and decode (gh200-timeslice)
    tp: int | None = None  # --tp: search layouts whose workers all use this TP
    fill: bool = False  # --fill: spend the whole --gpus budget instead of the fewest GPUs that meet the target


class Shape(NamedTuple):
    """One instance of a role: TP ``tp`` alone, or (``ep`` > 1) an expert-parallel group of ``ep``
    GPUs whose data-parallel ranks run TP ``tp`` each."""

    tp: int
    ep: int = 1

    @property
    def engines(self) -> int:
        """Workers (vLLM engine cores) of one instance: its data-parallel ranks."""
        return self.ep // self.tp if self.ep > 1 else 1

    @property
    def gpus(self) -> int:
        return self.engines * self.tp


class Layout(NamedTuple):
    mode: str  # disaggregated | aggregated
    prefill: tuple[int, int] | None  # (engines, TP)
    decode: tuple[int, int]
    # the roles as written when they are not plain NxTPm: a dense model's DP ranks are independent
    # engines, so 2xDP4 is costed as (8, 1) and rendered as 2xDP4
    shape: tuple[str, str] | None = None
    # GPUs of each role's expert-parallel group (1: none): 2xDP8EP is 16 engines of TP1 in groups of 8
    ep: tuple[int, int] = (1, 1)

    @property
    def gpus(self) -> int:
        return (self.prefill[0] * self.prefill[1] if self.prefill else 0) + self.decode[0] * self.decode[1]

    def spec_layout(self) -> dict:
        if self.shape:
            return {"prefill": self.shape[0], "decode": self.shape[1]}
        return {"prefill": _role_text(self.prefill, self.ep[0]) if self.prefill else "0", "decode": _role_text(self.decode, self.ep[1])}

    def __str__(self) -> str:
        roles = self.spec_layout()
        if self.prefill:
            return f"prefill {roles['prefill']} + decode {roles['decode']} ({self.gpus} GPUs)"
        return f"aggregated {roles['decode']} ({self.gpus} GPUs)"


def _role_text(role: tuple[int, int], ep: int) -> str:
    """A role in render's layout grammar: 4xTP2, or 2xDP8EP for 16 TP1 engines in groups of 8."""
    engines, tp = role
    if ep <= 1:
        return f"{engines}xTP{tp}"
    return str(RoleLayout(engines * tp // ep, tp, ep // tp, True))


# --- inputs -------------------------------------------------------------------------------------


def model_facts(catalog: Catalog, name: str | None, explicit: dict) -> ModelFacts:
    """A model from the catalog's architecture table, or from explicit --params/--layers/...
    (which also override single facts of a known model)."""
    table = catalog.planner["models"]
    base: dict = {}
    if name:
        key = next((k for k in table if k.lower() == name.lower()), None)
        if key is None and not explicit.get("paramsB"):
            raise InputError(f"--model {name}: no architecture for it in the catalog" + suggest(name, list(table)),
                             hint="give it: --params B --layers L --hidden H --heads N --kv-heads K --head-dim D [--active-params B --experts E --top-k K]")
        base = dict(table[key]) if key else {}
    facts = {**base, **{k: v for k, v in explicit.items() if v is not None}}
    missing = [k for k in ("layers", "hidden", "heads", "kvHeads", "headDim", "paramsB") if not facts.get(k)]
    if missing:
        flags = {"layers": "--layers", "hidden": "--hidden", "heads": "--heads", "kvHeads": "--kv-heads", "headDim": "--head-dim", "paramsB": "--params"}
        raise InputError("the model is not fully described: missing " + ", ".join(flags[k] for k in missing),
                         hint="name a known model (llmdctl plan --help lists them) or give every architecture flag")
    if bool(facts.get("experts")) != bool(facts.get("topK")):
        raise InputError("an MoE model needs both --experts and --top-k")
    if facts.get("activeParamsB") and facts["activeParamsB"] > facts["paramsB"]:
        raise InputError(f"--active-params {facts['activeParamsB']}B is more than --params {facts['paramsB']}B")
    dtype_bytes = {"bf16": 2, "fp16": 2, "fp8": 1, "int8": 1, "fp4": 0.5, "int4": 0.5}
    w_bytes = dtype_bytes[facts["dtype"]] if facts.get("dtype") else facts.get("weightBytes", 2)
    kv_b = dtype_bytes[facts["kvDtype"]] if facts.get("kvDtype") else facts.get("kvBytes", 2)
    compute = facts.get("computeDtype") or {2: "bf16", 1: "fp8", 0.5: "fp4"}.get(w_bytes, "bf16")
    return ModelFacts(
        name=name or "custom", layers=int(facts["layers"]), full_layers=int(facts.get("fullAttentionLayers", facts["layers"])),
        window=facts.get("slidingWindow"), hidden=int(facts["hidden"]), heads=int(facts["heads"]), kv_heads=int(facts["kvHeads"]),
        head_dim=int(facts["headDim"]), params=float(facts["paramsB"]) * 1e9,
        active=float(facts.get("activeParamsB") or facts["paramsB"]) * 1e9, experts=facts.get("experts"), top_k=facts.get("topK"),
        weight_bytes=float(w_bytes), kv_bytes=float(kv_b), compute_dtype=compute, mla=bool(facts.get("mla")),
        dense_layers=int(facts.get("denseLayers") or 0),
    )


def gpu_facts(catalog: Catalog, name: str) -> Gpu:
    table = catalog.planner["accelerators"]
    key = next((k for k in table if k.lower() == name.lower()), None)
    if key is None:
        raise InputError(f"--gpu {name}: unknown accelerator" + suggest(name, list(table)), hint=f"known: {', '.join(table)}")
    g = table[key]
    return Gpu(key, g["memoryGB"] * 1e9, g["hbmTBps"] * 1e12, {k: v * 1e12 for k, v in g["tflops"].items()}, g["nicGBps"] * 1e9,
               g.get("nvlinkGBps", 0) * 1e9, g.get("nvlinkDomain", 1))


def priorities(catalog: Catalog) -> dict:
    """The rate-matching haircuts and the utilisation cap the layouts are sized with."""
    return {**catalog.planner["priors"]["rateMatch"], "maxUtilization": catalog.planner["priors"]["maxUtilization"],
            "expertParallelGain": catalog.planner["decision"]["minExpertParallelGain"]}


def scenarios(catalog: Catalog, req: Request) -> dict[str, Scenario]:
    """The priors at each end of their ranges, with matching calibrations in their place."""
    return calibrated_scenarios(catalog, req)[0]


def calibrated_scenarios(catalog: Catalog, req: Request) -> tuple[dict[str, Scenario], list[str]]:
    """scenarios(), and one note per calibration that took the place of a prior."""
    return calibration.apply(_prior_scenarios(catalog, req), list(req.calibrations), req.model.name, req.gpu.name, req.engine,
                             req.engine_version)


def _prior_scenarios(catalog: Catalog, req: Request) -> dict[str, Scenario]:
    p = catalog.planner["priors"]
    net = catalog.planner["networks"][req.network]
    kind = "moe" if req.model.moe else "dense"
    a2a = p["expertParallel"]
    out = {}
    for s in SCENARIOS:
        out[s] = Scenario(
            name=s, prefill_mfu={t: p["prefillMfu"][s] for t in TP_DEGREES}, hbm_eff={t: p["hbmEfficiency"][s] for t in TP_DEGREES},
            compute_eff=p["computeEfficiency"],
            layer_us={t: p["layerOverheadUs"][kind][f"tp{t}"] * p["layerOverheadUs"]["spread"][s] for t in TP_DEGREES},
            cpu_per_layer=p["cpuPerLayerMs"] / 1000.0, net_eff=p["networkEfficiency"][s], link=net["linkGBps"][s] * 1e9,
            overhead=net["overheadMs"][s] / 1000.0, mem_util=p["memoryUtilization"], runtime_overhead=p["runtimeOverheadGB"] * 1e9,
            max_batch=p["maxDecodeBatch"], a2a_latency=a2a["latencyUs"][s] * 1e-6, a2a_eff=a2a["efficiency"][s],
            a2a_bytes=a2a["dispatchBytes"] + a2a["combineBytes"], queue_per_doubling=p["prefillQueueing"]["perDoubling"][s],
            queue_cap=p["prefillQueueing"]["cap"],
        )
    return out


# --- search -------------------------------------------------------------------------------------


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
    return [g for g in EP_GROUPS if g <= limit and m.experts % g == 0 and fits(m, req.gpu, 1, s, g)
            and (g <= req.gpus_per_node or g % req.gpus_per_node == 0)]


def shapes(req: Request, s: Scenario) -> list[Shape]:
    """The instance shapes the search tries for either role: TP workers, then expert-parallel groups."""
    return [Shape(t) for t in _tps(req, s)] + [Shape(1, g) for g in _ep_groups(req, s, budget(req))]


def _estimate(req: Request, layout: Layout, s: Scenario, prio: dict, rate: float | None) -> Estimate:
    m, g, wl = req.model, req.gpu, req.workload
    if layout.prefill:
        return disagg(m, g, wl, s, prio, layout.prefill[0], layout.prefill[1], layout.decode[0], layout.decode[1], rate, 1,
                      req.ttft, req.tpot, *layout.ep)
    return aggregated(m, g, wl, s, prio, layout.decode[0], layout.decode[1], rate, req.ttft, req.tpot, layout.ep[1])


def loaded(req: Request, layout: Layout, s: Scenario, prio: dict) -> Estimate:
    """The layout under the requested load: --concurrency users in a closed loop (loadmodel.py),
    --rate as open Poisson arrivals, or (neither) open arrivals at 80% of its capacity."""
    if req.concurrency is None:
        return _estimate(req, layout, s, prio, req.rate)
    capacity = _estimate(req, layout, s, prio, None).capacity
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


def budget(req: Request) -> int:
    return req.gpus if req.gpus is not None else (req.gpus_per_node * 8 if (req.rate or req.concurrency) else req.gpus_per_node)


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


# --- the recommendation -------------------------------------------------------------------------


def ranges(req: Request, layout: Layout, sc: dict[str, Scenario], prio: dict) -> dict[str, Estimate]:
    """The layout under each scenario: the same users (closed loop), or the same offered rate
    (--rate, else 80% of the middle capacity)."""
    if req.concurrency is not None:
        return {s: loaded(req, layout, sc[s], prio) for s in SCENARIOS}
    rate = req.rate if req.rate is not None else 0.8 * _estimate(req, layout, sc["mid"], prio, None).capacity
    return {s: _estimate(req, layout, sc[s], prio, rate) for s in SCENARIOS}


def _per_gpu(req: Request, layout: Layout, s: Scenario, prio: dict) -> float:
    """Requests/s per GPU the decision compares: the open-loop capacity, or with --concurrency the
    throughput the closed loop's users reach."""
    if req.concurrency is not None:
        return loaded(req, layout, s, prio).rate / layout.gpus
    return _estimate(req, layout, s, prio, None).capacity / layout.gpus


def sensitivity(req: Request, layout: Layout, sc: dict[str, Scenario], prio: dict) -> list[dict]:
    """Which single prior moves the layout's capacity (or TTFT) most between its range ends."""
    mid = sc["mid"]
    base = _estimate(req, layout, mid, prio, None)
    knobs = {
        "prefill MFU": "prefill_mfu", "HBM efficiency": "hbm_eff", "per-layer decode overhead": "layer_us",
        "KV link bandwidth": "link", "KV transfer fixed cost": "overhead", "network efficiency": "net_eff",
    }
    if max(layout.ep) > 1:
        knobs.update({"expert all-to-all latency": "a2a_latency", "expert all-to-all efficiency": "a2a_eff"})
    out = []
    for label, field in knobs.items():
        spread = []
        for end in ("low", "high"):
            s = mid._replace(**{field: getattr(sc[end], field)})
            est = _estimate(req, layout, s, prio, 0.8 * base.capacity if base.capacity else None)
            cap = _estimate(req, layout, s, prio, None).capacity
            spread.append((cap, est.ttft))
        cap_change = abs(spread[1][0] - spread[0][0]) / base.capacity if base.capacity else 0.0
        ttfts = [t for _, t in spread if math.isfinite(t)]
        ttft_change = (max(ttfts) - min(ttfts)) / max(min(ttfts), 1e-9) if len(ttfts) == 2 else math.inf
        out.append({"parameter": label, "capacityChange": cap_change, "ttftChange": ttft_change})
    out.sort(key=lambda d: (-(d["capacityChange"] + min(d["ttftChange"], 10.0) / 4), d["parameter"]))
    return out[:3]


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
        pd_pg, agg_pg = (_per_gpu(req, c.layout, sc["low"], prio) for c in (pd, agg))
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


def _rng(values: list[float], scale: float = 1.0, digits: int = 3) -> dict:
    """Figures under the pessimistic, expected (middle) and optimistic priors; None where the layout
    saturates (a queue that never drains has no mean)."""
    keys = ("pessimistic", "expected", "optimistic")
    return {k: (round(v * scale, digits) if math.isfinite(v) else None) for k, v in zip(keys, values)}


def figures(req: Request, layout: Layout, r: dict[str, Estimate], sc: dict[str, Scenario], prio: dict) -> dict:
    ests = [r[s] for s in SCENARIOS]
    caps = [_estimate(req, layout, sc[s], prio, None).capacity for s in SCENARIOS]
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
        out["peakPrefillThroughput"] = round(prefill_throughput(req.model, req.gpu, layout.prefill[1], req.workload, sc["mid"], layout.ep[0]))
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


def request_from(catalog: Catalog, *, environments: list[str] | None, gpu: str | None, network: str | None, model: str | None,
                 explicit: dict, isl: int, osl: int, prefix_hit: float | None, gpus: int | None, gpus_per_node: int | None,
                 rate: float | None, concurrency: float | None, ttft: float | None, tpot: float | None, engine: str,
                 calibration_file: str | None = None, engine_version: str | None = None, tp: int | None = None,
                 fill: bool = False) -> Request:
    """Inputs to a Request: the hardware profile gives the GPU, network and GPUs per node unless
    --gpu/--network/--gpus-per-node say otherwise; its default model unless --model."""
    envs = catalog.resolve_environments(list(environments or ()))
    hardware = catalog.layer(envs["hardware"])
    defaults = catalog.planner["profiles"].get(envs["hardware"]) or catalog.planner["profiles"].get(hardware.chain[0]) or {}
    if not gpu and not defaults:
        raise InputError(f"-e {envs['hardware']}: the planner knows no GPU for this profile", hint="pass --gpu (e.g. --gpu H100)")
    networks = catalog.planner["networks"]
    net = network or defaults.get("network")
    if net not in networks:
        raise InputError(f"--network {net}: unknown" + suggest(str(net), list(networks)), hint=f"known: {', '.join(networks)}")
    for flag, value in (("--isl", isl), ("--osl", osl)):
        what = f"the mean {'input' if flag == '--isl' else 'output'} tokens per request"
        if value is None:
            raise InputError(f"{flag} is required: {what}", hint="e.g. llmdctl plan --isl 8000 --osl 400 --rate 6")
        if value < 1:
            raise InputError(f"{flag} {value}: {what} must be at least 1")
    if prefix_hit is not None and not 0 <= prefix_hit < 1:
        raise InputError(f"--prefix-hit {prefix_hit}: a fraction of the prompt, 0 <= x < 1")
    for flag, value in (("--rate", rate), ("--concurrency", concurrency), ("--gpus", gpus), ("--gpus-per-node", gpus_per_node)):
        if value is not None and value <= 0:
            raise InputError(f"{flag} {value}: must be positive")
    if fill and gpus is None:
        raise InputError("--fill spends the whole GPU budget: give it with --gpus N", hint="e.g. --gpus 16 --fill")
    if concurrency is not None and concurrency != int(concurrency):
        raise InputError(f"--concurrency {concurrency:g}: a number of users (closed loop), a whole number",
                         hint="for a request rate use --rate REQ/S")
    per_node = gpus_per_node or int(hardware.hardware.get("gpusPerNode") or 8)
    if tp is not None and tp > min(per_node, 8):
        raise InputError(f"--tp {tp}: more than the {min(per_node, 8)} GPUs of one node", hint="a worker's TP stays inside one node")
    if calibration_file and not os.path.exists(calibration_file):
        raise InputError(f"--calibration {calibration_file}: no such file", hint="write one with: llmdctl plan calibrate --calibration FILE ...")
    return Request(
        profile=envs["hardware"], gpu=gpu_facts(catalog, gpu or defaults["gpu"]), network=net,
        model=model_facts(catalog, model or hardware.defaults.get("model"), explicit),
        workload=Workload(int(isl), int(osl), float(prefix_hit or 0.0)), gpus=gpus, gpus_per_node=min(per_node, 8),
        rate=rate, concurrency=concurrency, ttft=ttft, tpot=tpot, engine=engine,
        calibrations=tuple(calibration.read_file(calibration_file)) if calibration_file else (), engine_version=engine_version,
        time_sliced=bool(hardware.hardware.get("timeSlicing")), tp=tp, fill=bool(fill),
    )
