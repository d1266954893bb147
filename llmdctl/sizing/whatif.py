"""What-if: evaluate a layout the user gives (``plan --prefill NxSHAPE --decode NxSHAPE``) or the one
AIConfigurator picked (``plan --from-aic``) under the workload, instead of searching, and print the
same figures and ranges the planner prints for its recommendation.

The layout grammar is render's (``inputs/spec.py``), data- and expert-parallel shapes included.
Shapes the roofline model cannot cost (TP across nodes, experts on a dense model) are refused with
what is missing, never costed as if they were something else.
"""

from __future__ import annotations

import csv
import math

from ..base.errors import InputError
from ..catalog.catalog import Catalog
from ..inputs.spec import RoleLayout, parse_layout
from .model import Scenario, expert_fabric, fits
from .evaluation import assumptions, figures, inputs_of, moe_warnings, ranges, sensitivity, validation
from .request import Layout, Request, calibrated_scenarios, priorities


def layout_of(catalog: Catalog, req: Request, prefill: str | None, decode: str | None) -> Layout:
    """--prefill and --decode as a layout the model can cost, or a refusal that says why."""
    if decode is None or prefill is None:
        raise InputError("a what-if needs both --prefill and --decode",
                         hint="e.g. --prefill 8xTP1 --decode 2xTP4, or --prefill 0 --decode 4xTP2 for aggregated serving")
    p = parse_layout(prefill, "--prefill")
    d = parse_layout(decode, "--decode")
    if d.replicas < 1:
        raise InputError(f"--decode {decode}: at least one decode (or aggregated) worker")
    return _costable(catalog, req, ("--prefill " + str(prefill), p), ("--decode " + str(decode), d))


def _costable(catalog: Catalog, req: Request, prefill: tuple[str, RoleLayout], decode: tuple[str, RoleLayout]) -> Layout:
    """Roles (each named as the user wrote it, for errors) as a layout of engines the model costs.
    Every DP rank is an engine of TP t, so NxDPdTPt is N*d engines. A dense model's ranks are
    independent (vLLM's data parallelism without experts); an MoE model's ranks share the experts,
    spread over the instance's d*t GPUs: with EP each GPU holds 1/(d t) of the experts, and without
    it vLLM shards every expert over the same GPUs, so both are costed as one expert group with its
    all-to-all (model.py)."""
    mid = calibrated_scenarios(catalog, req)[0]["mid"]
    engines, groups = [], []
    for name, role in (prefill, decode):
        group = role.gpus if req.model.moe and (role.expert or role.data > 1) else 1
        if role.replicas:
            _check_shape(req, mid, name, role, group)
        engines.append((role.replicas * role.data, role.tensor) if role.replicas else None)
        groups.append(group)
    plain = all(r.data == 1 and not r.expert for _, r in (prefill, decode))
    shape = None if plain else (str(prefill[1]) if prefill[1].replicas else "0", str(decode[1]))
    if engines[0] is None:
        return Layout("aggregated", None, engines[1], shape, (1, groups[1]))
    return Layout("disaggregated", engines[0], engines[1], shape, tuple(groups))


def _check_shape(req: Request, mid: Scenario, name: str, role: RoleLayout, group: int) -> None:
    m = req.model
    if role.expert and not m.moe:
        raise InputError(f"{name}: expert parallelism needs an MoE model; {m.name} is dense",
                         hint=f"drop EP: {role._replace(expert=False)}")
    if group > 1 and m.experts % group:
        raise InputError(f"{name}: {m.name}'s {m.experts} experts do not split evenly over the {group} GPUs of one instance")
    if group > 1 and group > req.gpus_per_node and group % req.gpus_per_node:
        raise InputError(f"{name}: an instance of {group} GPUs over nodes of {req.gpus_per_node} leaves one node partly used",
                         hint=f"use a multiple of {req.gpus_per_node} GPUs per instance")
    if group > 1 and m.moe and expert_fabric(req.gpu, group) <= 0:
        raise InputError(f"{name}: the experts' all-to-all over {group} GPUs has no link to run on: the catalog gives "
                         f"{req.gpu.name} no GPU fabric and no NIC bandwidth (guides/planner.yaml accelerators)",
                         hint="evaluate a TP shape, or give the GPU with --gpu one that states them")
    if role.tensor > req.gpus_per_node:
        raise InputError(f"{name}: TP{role.tensor} spans more than one node ({req.gpus_per_node} GPUs per node); "
                         "the planner does not cost TP over the inter-node fabric", hint=f"use at most TP{req.gpus_per_node} per worker")
    if m.heads % role.tensor:
        raise InputError(f"{name}: {m.name} has {m.heads} attention heads, which TP{role.tensor} cannot split evenly")
    if not fits(m, req.gpu, role.tensor, mid, group):
        where = f"{role.tensor} {req.gpu.name}" + (f" with its experts spread over {group}" if group > 1 else "")
        raise InputError(f"{name}: {m.name} ({m.params * m.weight_bytes / 1e9:.0f} GB of weights) does not fit on {where}",
                         hint="raise the TP of that role" + (", or its DP (more GPUs per expert group)" if m.moe else ""))


def evaluate(catalog: Catalog, req: Request, layout: Layout) -> dict:
    """The layout under the requested load, as plain data shaped like ``recommend``'s answer
    (``evaluated`` in place of ``recommendation``, no alternative)."""
    sc, calibrated = calibrated_scenarios(catalog, req)
    prio = priorities(catalog)
    r = ranges(req, layout, sc, prio)
    warnings = _layout_warnings(req, layout)
    net = catalog.planner["networks"][req.network]
    if layout.prefill and not net["rdma"]:
        warnings.append(f"{req.network} KV transfer is functional only: expect seconds of TTFT on long prompts")
    return {
        "inputs": {**inputs_of(req), "whatIf": True},
        "evaluated": {"mode": layout.mode, **layout.spec_layout(), "gpus": layout.gpus, "summary": str(layout)},
        "why": ["the layout given with --prefill/--decode, evaluated as it is (what-if: no search)"],
        "predicted": figures(req, layout, r, sc, prio),
        "alternative": None,
        "sensitive": sensitivity(req, layout, sc, prio),
        "assumptions": assumptions(req, sc, calibrated),
        "calibrated": calibrated,
        "warnings": warnings,
        "validation": validation(req, layout, r),
    }


def _layout_warnings(req: Request, layout: Layout) -> list[str]:
    warnings = []
    if layout.prefill and layout.prefill[1] > layout.decode[1] and req.engine == "vllm":
        warnings.append(f"prefill TP{layout.prefill[1]} is above decode TP{layout.decode[1]}: vLLM's NixlConnector refuses it (rule V-15); "
                        "llmdctl render will too")
    if layout.prefill and req.engine == "sglang" and layout.prefill[1] != layout.decode[1]:
        warnings.append("SGLang without wide-EP transfers KV between equal TPs only")
    if req.gpus is not None and layout.gpus > req.gpus:
        warnings.append(f"the layout uses {layout.gpus} GPUs, more than --gpus {req.gpus}")
    warnings += moe_warnings(req, layout)
    if req.time_sliced and layout.prefill:
        warnings.append(f"-e {req.profile} time-slices one GPU between prefill and decode; the planner counts separate GPUs, "
                        "so every P/D figure here is optimistic")
    return warnings


# --- AIConfigurator import ------------------------------------------------------------------------


def read_aic(catalog: Catalog, req: Request, path: str) -> tuple[Layout, dict]:
    """The top row of AIConfigurator's best_config_topn.csv: (p)workers/(p)tp/(d)workers/(d)tp for a
    disaggregated row, tp with workers or replicas for an aggregated one, with their data (dp) and
    expert (moe_ep) parallelism kept; pipeline (pp) and context (cp) parallelism, which llmdctl's
    layouts cannot express, are refused naming the column."""
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
    except OSError as exc:
        raise InputError(f"--from-aic {path}: {exc.strerror}") from None
    except csv.Error as exc:
        raise InputError(f"--from-aic {path}: not a CSV file ({exc})") from None
    if not rows:
        raise InputError(f"--from-aic {path}: no configuration rows", hint="pass AIConfigurator's best_config_topn.csv (aiconfigurator cli ... --save-dir)")
    row = {k.strip(): (v or "").strip() for k, v in rows[0].items() if k}

    def num(key: str, default: int | None = None) -> int:
        if default is not None and not row.get(key):
            return default
        try:
            value = int(float(row[key]))
        except (KeyError, ValueError):
            raise InputError(f"--from-aic {path}: the first row has no usable '{key}' column",
                             hint="expected AIConfigurator's columns (p)workers, (p)tp, (d)workers, (d)tp (disaggregated) or tp, workers (aggregated)") from None
        if value < 1:
            raise InputError(f"--from-aic {path}: '{key}' is {value}")
        return value

    def role(prefix: str, count: str) -> tuple[str, RoleLayout]:
        for column, what in ((f"{prefix}pp", "pipeline"), (f"{prefix}cp", "context")):
            if num(column, 1) > 1:
                raise InputError(f"--from-aic {path}: '{column}' is {num(column)}: llmdctl's layouts have no {what} parallelism, "
                                 "so this row cannot be planned or rendered", hint="pick a row of best_config_topn.csv with it at 1")
        shape = RoleLayout(num(count), num(f"{prefix}tp"), num(f"{prefix}dp", 1), num(f"{prefix}moe_ep", 1) > 1)
        return f"--from-aic {path}: {str(shape)} (columns {prefix}workers/{prefix}tp/{prefix}dp/{prefix}moe_ep)", shape

    if "(p)workers" in row:
        return _costable(catalog, req, role("(p)", "(p)workers"), role("(d)", "(d)workers")), row
    count = "workers" if "workers" in row else "replicas"
    return _costable(catalog, req, ("--from-aic", RoleLayout(0)), role("", count)), row


def review_layout(catalog: Catalog, req: Request, layout: Layout, aic: dict) -> dict:
    """AIConfigurator's pick, checked and extended by what it does not model: the KV transfer on
    this profile's network, the prefill/decode TP rule, the router's prefill figure, ranges and a
    validation recipe."""
    sc, calibrated = calibrated_scenarios(catalog, req)
    prio = priorities(catalog)
    net = catalog.planner["networks"][req.network]
    warnings = _layout_warnings(req, layout)
    if layout.prefill and not net["rdma"]:
        warnings.append(f"the KV path is {req.network}: AIConfigurator does not model the transfer; over TCP P/D is functional only")
    r = ranges(req, layout, sc, prio)
    predicted = figures(req, layout, r, sc, prio)
    aic_ttft = _float(aic.get("ttft"))
    out_aic = {k: _float(aic.get(k)) for k in ("ttft", "tpot", "tokens/s/gpu", "request_rate", "concurrency") if _float(aic.get(k)) is not None}
    if aic_ttft is not None and layout.prefill:
        kv = predicted["kvTransferMs"]
        out_aic["ttftWithKvTransferMs"] = {k: (round(aic_ttft + v, 1) if v is not None else None) for k, v in kv.items()}
        if req.ttft and kv["pessimistic"] is not None and aic_ttft + kv["pessimistic"] > req.ttft * 1000:
            warnings.append(f"AIConfigurator's TTFT {aic_ttft:.0f} ms plus the pessimistic KV transfer ({kv['pessimistic']:.0f} ms) "
                            f"exceeds --ttft {req.ttft * 1000:.0f} ms")
    return {
        "inputs": {**inputs_of(req), "fromAic": True},
        "recommendation": {"mode": layout.mode, **layout.spec_layout(), "gpus": layout.gpus, "summary": str(layout)},
        "why": ["the top row of AIConfigurator's best_config_topn.csv, checked against this profile's network and llmdctl's rules"],
        "aic": out_aic,
        "predicted": predicted,
        "alternative": None,
        "pdGainAtLowEnd": None,
        "sensitive": sensitivity(req, layout, sc, prio),
        "assumptions": assumptions(req, sc, calibrated),
        "calibrated": calibrated,
        "warnings": warnings,
        "validation": validation(req, layout, r),
    }


def _float(text) -> float | None:
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None
