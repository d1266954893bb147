"""The text view of ``llmdctl plan``'s answer: the same data JSON prints, laid out for a terminal,
every figure as pessimistic - expected - optimistic."""

from __future__ import annotations

import os

from ..base.errors import InputError
from .frontier import svg, terminal, tradeoff_lines

def _r(rng: dict, unit: str = "", digits: int = 1) -> str:
    vals = [rng[k] for k in ("pessimistic", "expected", "optimistic")]
    return " - ".join("saturated" if v is None else f"{v:.{digits}f}" for v in vals) + unit


def text(result: dict) -> str:
    """The answer of `plan` (a recommendation, a what-if or AIConfigurator's layout) for a terminal."""
    p = result["predicted"]
    rec = result.get("recommendation")
    lines = [f"recommended: {rec['summary']}" if rec else f"evaluated: {result['evaluated']['summary']} (what-if: the layout given, not searched)"]
    lines += [f"  why: {w}" for w in result["why"]]
    if result.get("criterion"):
        lines.append(f"  picked by: {result['criterion']}")
    lines.append(f"load: {p['load']['summary']}")
    lines.append("predicted (pessimistic - expected - optimistic priors):")
    lines += _figure_lines(p)
    lines += _aic_lines(result.get("aic"))
    alt = result.get("alternative")
    if alt:
        lines.append(f"alternative: {alt['summary']}")
        lines += _figure_lines(alt["predicted"])
    lines += tradeoff_lines(result.get("tradeoff"))
    lines += terminal(result["frontier"]) if result.get("frontier") else []
    return "\n".join(lines + _tail_lines(result)) + "\n"


def _aic_lines(aic: dict | None) -> list[str]:
    if not aic:
        return []
    lines = ["AIConfigurator said: " + ", ".join(f"{k} {v:g}" for k, v in aic.items() if not isinstance(v, dict))]
    if "ttftWithKvTransferMs" in aic:
        lines.append(f"  its TTFT plus the KV transfer it does not model: {_r(aic['ttftWithKvTransferMs'], ' ms', 0)}")
    return lines


def _tail_lines(result: dict) -> list[str]:
    lines = ["most sensitive to: " + ", ".join(s["parameter"] for s in result["sensitive"])]
    if result.get("calibrated"):
        lines.append("calibrated:")
        lines += [f"  - {c}" for c in result["calibrated"]]
    lines.append("assumptions:")
    lines += [f"  - {a}" for a in result["assumptions"]]
    if result["warnings"]:
        lines.append("warnings:")
        lines += [f"  - {w}" for w in result["warnings"]]
    v = result["validation"]
    lines.append("validate after apply:")
    lines.append(f"  {v['command']}")
    lines += [f"  pass if {c}" for c in v["passIf"]]
    lines.append(f"  {v['compareWith']}")
    lines.append("deploy it: llmdctl plan ... -o spec > plan.yaml && llmdctl apply -f plan.yaml")
    return lines


def _figure_lines(p: dict) -> list[str]:
    lines = [f"  GPUs              {p['gpus']}",
             f"  throughput        {_r(p['throughput'], ' req/s', 2)}  ({_r(p['throughputPerGpu'], ' req/s per GPU', 2)})",
             f"  capacity          {_r(p['capacity'], ' req/s', 2)} (open loop, before saturation)",
             f"  output tokens/s   {_r(p['outputTokensPerSecond'], '', 0)}",
             f"  TTFT (mean)       {_r(p['ttftMs'], ' ms', 0)}",
             f"  TPOT (mean)       {_r(p['tpotMs'], ' ms', 1)}",
             f"  end-to-end (mean) {_r(p['e2eLatencyMs'], ' ms', 0)}",
             f"  decode batch      {_r(p['decodeBatch'], ' per decode engine (a DP rank of an EP instance)' if p.get('expertParallel') else ' per instance', 0)}",
             f"  prefill busy      {_r(p['prefillUtilization'], '', 2)}"]
    sat = {k: v for k, v in p["saturation"].items() if v}
    # what saturates or misses a target, per end of the priors (the open loop's capacity, the closed
    # loop's prefill or KV cache, an SLA)
    lines += [f"  saturation ({k}): {v}" for k, v in sat.items()] or ["  saturation        none: no stage saturated, targets met"]
    if "kvTransferMs" in p:
        lines.append(f"  KV transfer       {_r(p['kvTransferMs'], ' ms per request', 1)}")
        per = f"prefill pod ({p['prefillRanksPerPod']} DP ranks)" if p.get("prefillRanksPerPod", 1) > 1 else "prefill worker"
        lines.append(f"  peak prefill      {p['peakPrefillThroughput']} tokens/s per {per} (the router's peakPrefillThroughput from v0.7)")
    return lines


def write_plot(path: str, result: dict, command: str) -> None:
    """The frontier as an SVG file. No plotting library is a dependency of llmdctl, so the SVG is
    written by hand and no other image format is offered."""
    if not path.lower().endswith(".svg"):
        raise InputError(f"--plot {path}: the frontier is written as SVG (llmdctl has no plotting library for other formats)",
                         hint="name the file .svg, e.g. --plot frontier.svg")
    folder = os.path.dirname(path) or "."
    if not os.path.isdir(folder):
        raise InputError(f"--plot {path}: no folder {folder}")
    with open(path, "w", encoding="utf-8") as fh:
        i = result["inputs"]
        title = f"{i['model']} on {i['gpu']}, ISL {i['isl']} / OSL {i['osl']}, {result['predicted']['load']['summary'].split(',')[0]}"
        fh.write(svg(result["frontier"], title, command))
