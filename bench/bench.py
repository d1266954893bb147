#!/usr/bin/env python3
"""Wall-time figures for llmdctl: `--help`, one render (both as fresh processes, like a user runs
them), the whole test matrix rendered in one process, and verify against the tests' local fake
Kubernetes API server: a ready 4P1D stack as a fresh process, and with --wait the delay between the
last pod turning ready and verify returning. Prints a table; budgets on 2-core CI machines:
--help < 0.25 s, one render < 0.4 s, full matrix < 3 s, verify < 1 s, readiness noticed < 1 s.

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
sys.path.insert(0, str(ROOT / "tests" / "fakes"))

BUDGETS = {
    "llmdctl --help": 0.25,
    "llmdctl render -e amd -o DIR": 0.4,
    "full matrix, one process": 3.0,
    "llmdctl verify (ready 4P1D)": 1.0,
    "verify --wait: ready -> exit": 1.0,
}


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


def _fake_stack(tmp: str):
    """A FakeKube holding a ready default (4P1D) stack, and a kubeconfig pointing at it."""
    from kube_api import FakeKube
    from stack_objects import StackObjects

    from llmdctl.bundle import bundle_files
    from llmdctl.compose import compose
    from llmdctl.rules import evaluate
    from llmdctl.spec import build_spec

    fake = FakeKube().start()
    plan = compose(build_spec(env={}, namespace="llm-d-pd"))
    evaluate(plan)
    stack = StackObjects(fake, bundle_files(plan), "llm-d-pd").install()
    kubeconfig = Path(tmp) / "kubeconfig"
    kubeconfig.write_text(
        f"apiVersion: v1\nkind: Config\ncurrent-context: fake\nclusters:\n- name: fake\n  cluster: {{server: \"{fake.url}\"}}\n"
        "contexts:\n- name: fake\n  context: {cluster: fake, user: u}\nusers:\n- name: u\n  user: {token: t}\n"
    )
    return fake, stack, kubeconfig


def time_verify(repeat: int) -> tuple[list[float], list[float], str]:
    import os

    with tempfile.TemporaryDirectory() as tmp:
        fake, stack, kubeconfig = _fake_stack(tmp)
        env = dict(os.environ, KUBECONFIG=str(kubeconfig), NAMESPACE="llm-d-pd")
        try:
            ready = []
            for _ in range(repeat):
                start = time.perf_counter()
                subprocess.run(_exe() + ["verify"], check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                ready.append(time.perf_counter() - start)
            calls = len(fake.api_calls()) // repeat
            noticed = []
            for _ in range(repeat):
                stack.set_ready("decode", 0, False)
                seen = len(fake.api_calls(watch=True))
                proc = subprocess.Popen(_exe() + ["verify", "--wait", "--timeout", "60s"], env=env,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                while len(fake.api_calls(watch=True)) < seen + 5:  # all five watches open
                    time.sleep(0.01)
                time.sleep(0.2)
                turned = time.perf_counter()
                stack.set_ready("decode", 0, True)
                proc.wait(timeout=30)
                noticed.append(time.perf_counter() - turned)
        finally:
            fake.stop()
    return ready, noticed, f"{calls} API calls"


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
    ready, noticed, note = time_verify(max(1, opts.repeat // 2))
    rows.append(("llmdctl verify (ready 4P1D)", ready, note))
    rows.append(("verify --wait: ready -> exit", noticed, "watches, no polling interval"))
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
