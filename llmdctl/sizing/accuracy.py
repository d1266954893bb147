"""How close ``llmdctl plan`` comes to published measurements (issue 28, item 3).

A fixture file lists measured runs (tests/fixtures/plan_accuracy.yaml: model, GPU, layout as the
CLI takes it, workload, load, the figures measured and where they were published). Each run goes
through the same fixed-layout evaluation ``plan --prefill ... --decode ...`` prints (whatif.evaluate);
a prefill calibration through the peak prefill throughput of one worker. Per figure type and
overall the score is:

- median error: the median of |expected - measured| / measured, the expected (middle-prior) figure;
- within 35%: the share of figures whose expected value is within +-35% of the measurement
  (the band the uncalibrated planner states);
- coverage: the share of measurements inside the printed pessimistic..optimistic range.

A figure the model cannot give (the layout saturates: no mean) counts as an infinite error and,
when the range has no bound on that side, as covered only if the measurement lies beyond the bound
it has.
"""

from __future__ import annotations

import math
import statistics
from typing import NamedTuple

from ..base.errors import InputError
from ..base.yamlio import load_file
from ..catalog.catalog import Catalog
from .model import Workload, prefill_throughput
from .request import Request, gpu_facts, model_facts, scenarios
from .whatif import evaluate, layout_of

BAND = 0.35
TYPES = ("ttft", "tpot", "e2e", "throughput", "prefill")
# fixture key -> the figure of ``evaluate``'s ``predicted`` it is compared with
PREDICTED = {"ttftMs": ("ttft", "ttftMs"), "tpotMs": ("tpot", "tpotMs"), "e2eMs": ("e2e", "e2eLatencyMs"),
             "throughput": ("throughput", "throughput"), "prefill": ("prefill", None)}


class Figure(NamedTuple):
    entry: str
    kind: str  # one of TYPES
    measured: float
    pessimistic: float  # inf / 0 where the model has no mean (saturated)
    expected: float
    optimistic: float
    in_sample: bool

    @property
    def error(self) -> float:
        return abs(self.expected - self.measured) / self.measured

    @property
    def covered(self) -> bool:
        lo, hi = sorted((self.pessimistic, self.optimistic))
        return lo <= self.measured <= hi


class Score(NamedTuple):
    count: int
    median_error: float
    within: float  # share within +-BAND
    coverage: float


def load(path: str) -> list[dict]:
    doc = load_file(path, what="accuracy fixture").data
    entries = doc.get("entries") if isinstance(doc, dict) else None
    if not isinstance(entries, list) or not entries:
        raise InputError(f"{path}: no 'entries' list of measured runs")
    sources = doc.get("sources") or {}
    for e in entries:
        if e.get("source") not in sources:
            raise InputError(f"{path}: entry {e.get('id')}: source {e.get('source')!r} is not one of the file's sources (each figure cites one)")
        unknown = set(e.get("measured") or {}) - set(PREDICTED)
        if not e.get("measured") or unknown:
            raise InputError(f"{path}: entry {e.get('id')}: measured figures must be some of {', '.join(PREDICTED)}"
                             + (f", not {', '.join(sorted(unknown))}" if unknown else ""))
    return entries


def _request(catalog: Catalog, e: dict) -> Request:
    explicit = {k: e[k] for k in ("dtype", "kvDtype") if e.get(k)}
    return Request(profile="accuracy", gpu=gpu_facts(catalog, e["gpu"]), network=e.get("network", "ib"),
                   model=model_facts(catalog, e["model"], explicit), workload=Workload(int(e.get("isl") or e["chunk"]), int(e.get("osl", 1))),
                   gpus=None, gpus_per_node=8, rate=e.get("rate"), concurrency=e.get("concurrency"), ttft=None, tpot=None,
                   engine=e.get("engine", "vllm"), engine_version=e.get("engineVersion"))


def _value(v: float | None, missing: float) -> float:
    return missing if v is None else float(v)


def figures(catalog: Catalog, entries: list[dict]) -> list[Figure]:
    """Every measured figure with the model's pessimistic / expected / optimistic prediction."""
    out = []
    for e in entries:
        req = _request(catalog, e)
        in_sample = bool(e.get("inSample"))
        if "tp" in e:  # a prefill calibration: one worker at TP tp on a chunk of ``chunk`` tokens
            sc = scenarios(catalog, req)
            lo, mid, hi = (prefill_throughput(req.model, req.gpu, int(e["tp"]), req.workload, sc[s]) for s in ("low", "mid", "high"))
            out.append(Figure(e["id"], "prefill", float(e["measured"]["prefill"]), lo, mid, hi, in_sample))
            continue
        predicted = evaluate(catalog, req, layout_of(catalog, req, str(e["prefill"]), str(e["decode"])))["predicted"]
        for key, value in e["measured"].items():
            kind, name = PREDICTED[key]
            r = predicted[name]
            # a saturated latency has no mean: unbounded above; a saturated throughput: nothing served
            missing = 0.0 if kind == "throughput" else math.inf
            out.append(Figure(e["id"], kind, float(value), _value(r["pessimistic"], missing), _value(r["expected"], missing),
                              _value(r["optimistic"], missing), in_sample))
    return out


def scored(catalog: Catalog, path: str) -> tuple[list[Figure], dict[str, Score]]:
    """A fixture file's figures and their table: what the accuracy test and bench both print."""
    figs = figures(catalog, load(path))
    return figs, table(figs)


def score(figs: list[Figure]) -> Score | None:
    if not figs:
        return None
    errors = [f.error for f in figs]
    return Score(len(figs), statistics.median(errors), sum(e <= BAND for e in errors) / len(figs), sum(f.covered for f in figs) / len(figs))


def table(figs: list[Figure]) -> dict[str, Score]:
    """Scores per figure type, then overall, in-sample and out-of-sample (rows without figures are left out)."""
    groups = {kind: [f for f in figs if f.kind == kind] for kind in TYPES}
    groups["all"] = figs
    groups["out-of-sample"] = [f for f in figs if not f.in_sample]
    groups["in-sample"] = [f for f in figs if f.in_sample]
    return {name: s for name, group in groups.items() if (s := score(group))}


def render(scores: dict[str, Score]) -> str:
    lines = [f"{'figures':<15}{'n':>4}{'median error':>14}{'within 35%':>12}{'range covers':>14}"]
    for name, s in scores.items():
        lines.append(f"{name:<15}{s.count:>4}{s.median_error:>13.0%} {s.within:>11.0%} {s.coverage:>13.0%}")
    return "\n".join(lines)


def details(figs: list[Figure]) -> str:
    """One line per figure: measured, expected and the range, worst first."""
    lines = []
    for f in sorted(figs, key=lambda f: -f.error):
        mark = " " if f.covered else "!"
        lines.append(f"{mark} {f.error:>6.0%}  {f.kind:<10} measured {f.measured:>9.4g}  expected {f.expected:>9.4g}  "
                     f"range {f.pessimistic:.4g}..{f.optimistic:.4g}  {f.entry}")
    return "\n".join(lines)
