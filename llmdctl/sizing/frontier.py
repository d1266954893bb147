"""The latency a layout buys, next to its throughput per GPU (issue 28, item 2).

Without SLAs the planner ranks on requests per GPU, which hides what P/D is usually deployed for:
a lower TPOT and end-to-end latency. This module lays the trade-off out instead: the Pareto
frontier of the searched layouts over (throughput per GPU: higher is better, TPOT: lower is
better), drawn in the terminal and as a hand-written SVG (no plotting library is a dependency, so
none is added: the file is plain, deterministic text), and a side-by-side of the best aggregated
and the best P/D layout.

Pure functions on plain data: points are dicts with ``label``, ``mode``, ``gpus``, ``perGpu``
(requests/s per GPU), ``ttftMs``, ``tpotMs`` and ``e2eMs`` at the middle priors.
"""

from __future__ import annotations

import math
from xml.sax.saxutils import escape

WIDTH, HEIGHT = 56, 12  # terminal plot, characters


def pareto(points: list[dict]) -> list[dict]:
    """The points no other point beats on both axes (at least as much per GPU at no more TPOT, and
    strictly better on one), ordered by TPOT; ties keep the one with fewer GPUs."""
    ordered = sorted(points, key=lambda p: (p["tpotMs"], -p["perGpu"], p["gpus"], p["label"]))
    out: list[dict] = []
    best = -math.inf
    for p in ordered:
        if p["perGpu"] > best:
            out.append(p)
            best = p["perGpu"]
    return out


def dominated(p: dict, others: list[dict]) -> bool:
    return any(q["perGpu"] >= p["perGpu"] and q["tpotMs"] <= p["tpotMs"] and (q["perGpu"] > p["perGpu"] or q["tpotMs"] < p["tpotMs"])
               for q in others)


def summary(points: list[dict], chosen: str) -> dict:
    """What JSON prints: every searched layout that meets the target, the frontier among them and
    whether the recommendation is on it."""
    usable = [p for p in points if math.isfinite(p["tpotMs"]) and p["perGpu"] > 0]
    front = pareto(usable)
    return {"axes": {"x": "TPOT (mean, ms, expected priors)", "y": "requests/s per GPU (expected priors)"},
            "searched": len(points), "meetingTheTarget": len(usable), "chosen": chosen,
            "chosenOnFrontier": any(p["label"] == chosen for p in front),
            "points": [_rounded(p) for p in front], "all": [_rounded(p) for p in sorted(usable, key=lambda p: p["label"])]}


def _rounded(p: dict) -> dict:
    return {"label": p["label"], "mode": p["mode"], "gpus": p["gpus"], "perGpu": round(p["perGpu"], 3), "ttftMs": round(p["ttftMs"], 1),
            "tpotMs": round(p["tpotMs"], 2), "e2eMs": round(p["e2eMs"], 0)}


def tradeoff(agg: dict | None, pd: dict | None) -> dict | None:
    """The best aggregated and the best P/D layout side by side (expected priors), and what P/D
    buys or costs in latency and requests per GPU."""
    if not agg or not pd:
        return None
    rows = [_row(agg), _row(pd)]
    a, p = rows
    # a figure is None where that layout saturates (its queue never drains): no ratio then
    ratios = {k: (round(p[key] / a[key], 2) if p[key] is not None and a[key] else None)
              for k, key in (("perGpu", "perGpu"), ("ttft", "ttftMs"), ("tpot", "tpotMs"), ("e2e", "e2eMs"))}
    return {"rows": rows, "pdVsAggregated": ratios}


def _row(alt: dict) -> dict:
    f = alt["predicted"]
    return {"summary": alt["summary"], "mode": alt["mode"], "gpus": alt["gpus"], "perGpu": f["throughputPerGpu"]["expected"],
            "ttftMs": f["ttftMs"]["expected"], "tpotMs": f["tpotMs"]["expected"], "e2eMs": f["e2eLatencyMs"]["expected"]}


def tradeoff_lines(t: dict | None) -> list[str]:
    if not t:
        return []
    width = max(len(r["summary"]) for r in t["rows"])
    lines = ["trade-off (expected priors):", f"  {'':<{width}}  req/s per GPU     TTFT       TPOT   end-to-end"]
    for r in t["rows"]:
        lines.append(f"  {r['summary']:<{width}}  {_num(r['perGpu'], 3):>13} {_num(r['ttftMs'], 0, ' ms'):>9} {_num(r['tpotMs'], 1, ' ms'):>10} "
                     f"{_num(r['e2eMs'], 0, ' ms'):>12}")
    v = t["pdVsAggregated"]
    if v["tpot"] is not None and v["perGpu"] is not None:
        lines.append(f"  P/D: {_change(v['tpot'])} TPOT, {_change(v['e2e'])} end-to-end latency, {_change(v['ttft'])} TTFT, "
                     f"for {v['perGpu']:.2f}x the requests per GPU")
    return lines


def _num(v, digits: int, unit: str = "") -> str:
    return "saturated" if v is None else f"{v:.{digits}f}{unit}"


def _change(ratio: float | None) -> str:
    if ratio is None:
        return "n/a"
    return f"{(1 - ratio) * 100:.0f}% lower" if ratio < 1 else f"{(ratio - 1) * 100:.0f}% higher"


# --- drawings -----------------------------------------------------------------------------------


def _bounds(points: list[dict]) -> tuple[float, float, float, float]:
    xs = [p["tpotMs"] for p in points]
    ys = [p["perGpu"] for p in points]
    x0, x1 = min(xs), max(xs)
    y0, y1 = min(ys), max(ys)
    return x0, (x1 if x1 > x0 else x0 + 1), y0, (y1 if y1 > y0 else y0 + 1)


def terminal(f: dict) -> list[str]:
    """The frontier as characters: `*` the recommendation, `A`/`P` aggregated and P/D layouts on the
    frontier, `.` the dominated ones; TPOT grows to the right, requests per GPU upwards."""
    pts = f["all"]
    if not pts:
        return []
    x0, x1, y0, y1 = _bounds(pts)
    grid = [[" "] * WIDTH for _ in range(HEIGHT)]
    on_front = {p["label"] for p in f["points"]}
    rank = {" ": 0, ".": 1, "A": 2, "P": 2, "*": 3}
    for p in pts:
        col = round((p["tpotMs"] - x0) / (x1 - x0) * (WIDTH - 1))
        row = HEIGHT - 1 - round((p["perGpu"] - y0) / (y1 - y0) * (HEIGHT - 1))
        mark = "*" if p["label"] == f["chosen"] else ("P" if p["mode"] == "disaggregated" else "A") if p["label"] in on_front else "."
        if rank[mark] > rank[grid[row][col]]:
            grid[row][col] = mark
    lines = [f"Pareto frontier over {f['meetingTheTarget']} searched layouts that meet the target "
             "(* recommended, A aggregated / P P/D on the frontier, . dominated):",
             "  req/s per GPU"]
    for i, row in enumerate(grid):
        label = f"{y1:8.3f}" if i == 0 else f"{y0:8.3f}" if i == HEIGHT - 1 else " " * 8
        lines.append(f"  {label} |{''.join(row).rstrip()}")
    lines.append("  " + " " * 8 + " +" + "-" * WIDTH)
    left, right = f"{x0:.1f}", f"{x1:.1f} ms"
    lines.append("  " + " " * 10 + left + " " * max(1, WIDTH - len(left) - len(right) - 14) + "TPOT (mean)  " + right)
    lines.append("  on the frontier:")
    for p in f["points"]:
        lines.append(f"    {'*' if p['label'] == f['chosen'] else '-'} {p['label']:<44} {p['perGpu']:.3f} req/s per GPU, "
                     f"TPOT {p['tpotMs']:.1f} ms, TTFT {p['ttftMs']:.0f} ms")
    return lines


def svg(f: dict, title: str, command: str) -> str:
    """The same chart as a standalone SVG file (text, deterministic: same plan, same bytes)."""
    w, h, left, right, top, bottom = 720, 440, 80, 20, 40, 60
    pts = f["all"]
    x0, x1, y0, y1 = _bounds(pts) if pts else (0.0, 1.0, 0.0, 1.0)

    def sx(v: float) -> float:
        return round(left + (v - x0) / (x1 - x0) * (w - left - right), 1)

    def sy(v: float) -> float:
        return round(h - bottom - (v - y0) / (y1 - y0) * (h - top - bottom), 1)

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="12">',
           f"<desc>{escape(command)}</desc>",
           f'<rect width="{w}" height="{h}" fill="white"/>',
           f'<text x="{w / 2}" y="20" text-anchor="middle" font-size="14">{escape(title)}</text>',
           f'<line x1="{left}" y1="{h - bottom}" x2="{w - right}" y2="{h - bottom}" stroke="black"/>',
           f'<line x1="{left}" y1="{top}" x2="{left}" y2="{h - bottom}" stroke="black"/>']
    for i in range(5):
        xv, yv = x0 + (x1 - x0) * i / 4, y0 + (y1 - y0) * i / 4
        out.append(f'<text x="{sx(xv)}" y="{h - bottom + 16}" text-anchor="middle">{xv:.1f}</text>')
        out.append(f'<text x="{left - 6}" y="{sy(yv) + 4}" text-anchor="end">{yv:.3f}</text>')
    out.append(f'<text x="{(left + w - right) / 2}" y="{h - 18}" text-anchor="middle">{escape(f["axes"]["x"])}</text>')
    out.append(f'<text x="16" y="{(top + h - bottom) / 2}" text-anchor="middle" transform="rotate(-90 16 {(top + h - bottom) / 2})">'
               f'{escape(f["axes"]["y"])}</text>')
    front = f["points"]
    if len(front) > 1:
        path = " ".join(f"{sx(p['tpotMs'])},{sy(p['perGpu'])}" for p in front)
        out.append(f'<polyline points="{path}" fill="none" stroke="#555" stroke-dasharray="4 3"/>')
    on_front = {p["label"] for p in front}
    for p in pts:
        colour = "#1f77b4" if p["mode"] == "aggregated" else "#d62728"
        fill = colour if p["label"] in on_front else "none"
        r = 6 if p["label"] == f["chosen"] else 3.5
        out.append(f'<circle cx="{sx(p["tpotMs"])}" cy="{sy(p["perGpu"])}" r="{r}" stroke="{colour}" fill="{fill}">'
                   f'<title>{escape(p["label"])}: {p["perGpu"]:.3f} req/s per GPU, TPOT {p["tpotMs"]:.1f} ms</title></circle>')
        if p["label"] == f["chosen"]:
            right_half = sx(p["tpotMs"]) > w / 2
            out.append(f'<text x="{sx(p["tpotMs"]) + (-8 if right_half else 8)}" y="{sy(p["perGpu"]) + 18}" '
                       f'text-anchor="{"end" if right_half else "start"}">recommended: {escape(p["label"])}</text>')
    out.append(f'<text x="{w - right}" y="{top - 6}" text-anchor="end">'
               'blue: aggregated, red: P/D; filled: on the frontier</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"
