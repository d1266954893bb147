"""Measured figures that replace the planner's priors: a prefill throughput (llm-d's calibrate.sh
result, ``peakPrefillThroughput`` at a chunk size), a two-point decode sweep, a NIXL/UCX bandwidth.

Each is turned into the efficiency the roofline model needs, keyed by model, GPU, TP and engine,
and refused when it implies more than the roofline allows (a figure beyond the hardware is a
wrong dtype or a wrong unit, not a fast cluster). A matching calibration narrows the ranges from
the priors' spread to +-BAND around the measured value.
"""

from __future__ import annotations

import os
from typing import NamedTuple

from ..base.errors import InputError
from ..base.schema import check
from ..base.yamlio import dump, load_file
from .model import Gpu, ModelFacts, Scenario, kv_bytes, kv_replication, prefill_compute, weights

BAND = 0.10  # +-10% around a measured efficiency
MAX_PREFILL_MFU = 0.85


class Measured(NamedTuple):
    prefill_mfu: float | None = None
    hbm_eff: float | None = None
    layer_us: float | None = None
    link_gbps: float | None = None


def prefill_efficiency(m: ModelFacts, gpu: Gpu, tp: int, tokens_per_s: float, chunk: int, cpu_per_layer: float) -> float:
    """The MFU a measured peak prefill throughput implies: chunk tokens in chunk / rate seconds,
    of which vLLM's CPU dispatch takes layers x cpu_per_layer."""
    seconds = chunk / tokens_per_s - m.layers * cpu_per_layer
    if seconds <= 0:
        raise InputError(f"{tokens_per_s:.0f} tokens/s at a {chunk}-token chunk leaves no time for the GPU after vLLM's CPU cost "
                         f"({m.layers} layers x {cpu_per_layer * 1000:g} ms): the figure is beyond what the roofline allows",
                         hint="check the unit (tokens/s per worker, not per cluster) and the chunk size")
    mfu = prefill_compute(m, gpu, chunk) / (tp * seconds)
    if mfu > MAX_PREFILL_MFU:
        raise InputError(f"{tokens_per_s:.0f} tokens/s of {m.name} on {tp} {gpu.name} implies {mfu:.0%} of the dense "
                         f"{m.compute_dtype} peak, above the {MAX_PREFILL_MFU:.0%} a prefill reaches",
                         hint="a figure beyond the roofline usually means a wrong dtype: check --dtype (FP8 doubles the peak) and --tp")
    return mfu


def decode_fit(m: ModelFacts, gpu: Gpu, tp: int, points: list[tuple[int, int, float]]) -> tuple[float, float]:
    """HBM efficiency and per-layer overhead from two decode points (batch, context, step seconds):
    step = (W + B kv(C) r) / (T BW eta) + L tau is linear in B at one context."""
    if len(points) != 2:
        raise InputError("a decode calibration needs exactly two points (BATCH:CONTEXT:STEP_MS), e.g. 1:8000:21 and 64:8000:38")
    (b1, c1, t1), (b2, c2, t2) = sorted(points)
    if b1 == b2 or c1 != c2:
        raise InputError("the two decode points need different batch sizes at the same context")
    slope = (t2 - t1) / (b2 - b1)
    if slope <= 0:
        raise InputError(f"the decode step did not grow with the batch ({t1 * 1000:g} ms at {b1}, {t2 * 1000:g} ms at {b2}): "
                         "the points do not describe one memory-bound worker")
    eta = kv_bytes(m, c1) * kv_replication(m, tp) / (tp * gpu.hbm * slope)
    tau = (t1 - b1 * slope - weights(m) / (tp * gpu.hbm * eta)) / m.layers
    if eta > 1.0 or tau < 0:
        raise InputError(f"the decode points imply {eta:.0%} of {gpu.name}'s HBM bandwidth"
                         + (f" and a negative per-layer cost ({tau * 1e6:.0f} us)" if tau < 0 else "")
                         + ": faster than the roofline allows",
                         hint="check --tp, --dtype and that STEP_MS is one decode step of the whole batch")
    return eta, tau


def calibrate(m: ModelFacts, gpu: Gpu, tp: int, *, cpu_per_layer: float, peak_prefill: float | None, chunk: int | None,
              decode_points: list[tuple[int, int, float]], link_gbps: float | None) -> Measured:
    if peak_prefill is None and not decode_points and link_gbps is None:
        raise InputError("nothing to calibrate", hint="give --peak-prefill TOKENS/S (with --chunk), two --decode-point B:CTX:MS, or --link-gbps")
    mfu = prefill_efficiency(m, gpu, tp, peak_prefill, chunk or 8192, cpu_per_layer) if peak_prefill is not None else None
    eta, tau = decode_fit(m, gpu, tp, decode_points) if decode_points else (None, None)
    if link_gbps is not None and link_gbps <= 0:
        raise InputError(f"--link-gbps {link_gbps}: must be positive")
    return Measured(mfu, eta, tau * 1e6 if tau is not None else None, link_gbps)


# --- the calibration file -------------------------------------------------------------------------


def key_of(model: str, gpu: str, tp: int, engine: str) -> dict:
    return {"model": model, "gpu": gpu, "tp": tp, "engine": engine}


def read_file(path: str) -> list[dict]:
    if not os.path.exists(path):
        return []
    doc = load_file(path, what="calibration file")
    check(doc.data, "calibration.schema.json", doc=doc)
    return list(doc.data.get("entries") or [])


def write_entry(path: str, key: dict, measured: Measured, engine_version: str | None, source: str) -> list[dict]:
    """Add or replace the entry for ``key``: measured fields replace those of an older entry."""
    entries = read_file(path)
    old = next((e for e in entries if all(e.get(k) == v for k, v in key.items())), None)
    entry = dict(old or key)
    for field, value in (("prefillMfu", measured.prefill_mfu), ("hbmEfficiency", measured.hbm_eff),
                         ("layerOverheadUs", measured.layer_us), ("linkGBps", measured.link_gbps)):
        if value is not None:
            entry[field] = round(value, 4)
    if engine_version:
        entry["engineVersion"] = engine_version
    entry["source"] = source
    entries = [e for e in entries if e is not old] + [entry]
    entries.sort(key=lambda e: (e["model"], e["gpu"], e["tp"], e["engine"]))
    text = "# llmdctl plan calibrations: measured efficiencies by model, GPU, TP and engine (llmdctl plan calibrate)\n"
    text += dump({"apiVersion": "llmdctl/v1", "kind": "Calibration", "entries": entries})
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(tmp, path)
    return entries


def apply(sc: dict[str, Scenario], entries: list[dict], model: str, gpu: str, engine: str,
          engine_version: str | None = None) -> tuple[dict[str, Scenario], list[str]]:
    """Scenarios with every matching measurement in place of its prior, +-BAND wide (twice that
    when it was measured on another engine version than the one planned for)."""
    notes = []
    out = dict(sc)
    for e in entries:
        if e["model"].lower() != model.lower() or e["gpu"].lower() != gpu.lower() or e["engine"] != engine:
            continue
        tp = e["tp"]
        other_version = bool(engine_version and e.get("engineVersion") and e["engineVersion"] != engine_version)
        band = 2 * BAND if other_version else BAND
        for end, f in {"low": 1 - band, "mid": 1.0, "high": 1 + band}.items():
            s = out[end]
            if "prefillMfu" in e:
                s = s._replace(prefill_mfu={**s.prefill_mfu, tp: e["prefillMfu"] * f})
            if "hbmEfficiency" in e:
                s = s._replace(hbm_eff={**s.hbm_eff, tp: min(1.0, e["hbmEfficiency"] * f)})
            if "layerOverheadUs" in e:
                s = s._replace(layer_us={**s.layer_us, tp: e["layerOverheadUs"] * (2 - f)})  # a higher cost is the pessimistic end
            if "linkGBps" in e:
                s = s._replace(link=e["linkGBps"] * 1e9 * f, net_eff=1.0)  # a measured bandwidth is already effective
            out[end] = s
        used = [k for k in ("prefillMfu", "hbmEfficiency", "layerOverheadUs", "linkGBps") if k in e]
        notes.append(f"calibrated TP{tp}: {', '.join(used)} from {e.get('source', 'a calibration')}"
                     + (f" ({e['engineVersion']})" if e.get("engineVersion") else "") + f", +-{band:.0%}"
                     + (f" (measured on {e['engineVersion']}, planning for {engine_version}: the band is doubled)" if other_version else ""))
    return out, notes
