#!/usr/bin/env python3
"""Wall-time figures for llmdctl: `--help`, one render (both as fresh processes, like a user runs
them) and the whole test matrix rendered in one process. Prints a table; budgets on 2-core CI
machines: --help < 0.25 s, one render < 0.4 s, full matrix < 3 s.

    python bench/bench.py [--repeat 7]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

BUDGETS = {"llmdctl --help": 0.25, "llmdctl render -e amd -o DIR": 0.4, "full matrix, one process": 3.0}


def _exe() -> list[str]:
    found = shutil.which("llmdctl")
    return [found] if found else [sys.executable, "-m", "llmdctl.cli"]


def time_process(args: list[str], repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run(args, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append(time.perf_counter() - start)
    return times


def time_matrix(repeat: int) -> tuple[list[float], int]:
    from matrix import cases

    from llmdctl.bundle import bundle_files
    from llmdctl.compose import compose
    from llmdctl.errors import ValidationError
    from llmdctl.rules import evaluate
    from llmdctl.spec import build_spec

    times, rendered = [], 0
    for _ in range(repeat):
        start = time.perf_counter()
        rendered = 0
        for _cid, kw, _refusal in cases(("v0.6.0", "v0.4.0")):
            try:
                plan = compose(build_spec(env={}, **kw))
                evaluate(plan)
            except ValidationError:
                continue
            bundle_files(plan)
            rendered += 1
        times.append(time.perf_counter() - start)
    return times, rendered


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    opts = parser.parse_args()
    exe = _exe()
    with tempfile.TemporaryDirectory() as tmp:
        rows = [
            ("llmdctl --help", time_process(exe + ["--help"], opts.repeat), ""),
            ("llmdctl render -e amd -o DIR", time_process(exe + ["render", "-e", "amd", "-o", f"{tmp}/b"], opts.repeat), ""),
        ]
    matrix_times, rendered = time_matrix(max(1, opts.repeat // 2))
    rows.append(("full matrix, one process", matrix_times, f"{rendered} bundles"))
    print(f"{'what':32} {'median s':>9} {'min s':>7} {'max s':>7} {'budget s':>9}  ok   note")
    worst = 0
    for name, times, note in rows:
        med = statistics.median(times)
        ok = med <= BUDGETS[name]
        worst |= not ok
        print(f"{name:32} {med:9.3f} {min(times):7.3f} {max(times):7.3f} {BUDGETS[name]:9.2f}  {'yes' if ok else 'NO '}  {note}")
    return 1 if worst else 0


if __name__ == "__main__":
    sys.exit(main())
