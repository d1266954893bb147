"""What ``llmdctl plan`` is asked: the request (model, GPU, network, workload, load, SLAs and budget,
resolved against the catalog's planner facts), the layouts it speaks of (roles as engines of a TP,
expert-parallel groups) and the priors as pessimistic, middle and optimistic scenarios."""

from __future__ import annotations

import os
from typing import NamedTuple

from ..base.errors import InputError, suggest
from ..catalog.catalog import Catalog
from ..inputs.spec import RoleLayout
from . import calibration
from .model import TP_DEGREES, Gpu, ModelFacts, Scenario, Workload


SCENARIOS = ("low", "mid", "high")


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
                         hint="give every architecture flag, or name a model the catalog knows: " + ", ".join(table))
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


def budget(req: Request) -> int:
    return req.gpus if req.gpus is not None else (req.gpus_per_node * 8 if (req.rate or req.concurrency) else req.gpus_per_node)


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
