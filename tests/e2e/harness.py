"""How the e2e tests drive llmdctl against the session's control plane, and the figures they
measure (printed at the end of the run)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from .controlplane import ControlPlane

CHARTS = Path(os.environ.get("LLMDCTL_E2E_CHARTS") or Path(__file__).parent / "standin-charts").resolve()
MEASURED: list[str] = []


class Run:
    def __init__(self, proc: subprocess.CompletedProcess, seconds: float):
        self.code, self.out, self.err, self.seconds = proc.returncode, proc.stdout, proc.stderr, seconds

    def json(self):
        return json.loads(self.out)

    def __repr__(self) -> str:
        return f"Run(code={self.code}, err=...{self.err[-1500:]!r})"


class E2E:
    """The cluster plus how the tests drive llmdctl in it."""

    def __init__(self, cp: ControlPlane):
        self.cp = cp
        self.cwd = cp.work / "cwd"
        self.cwd.mkdir(exist_ok=True)

    def llmdctl(self, *args: str, timeout: float = 300, env: dict | None = None, charts: bool = True, cwd: Path | None = None) -> Run:
        argv = [sys.executable, "-m", "llmdctl", *args]
        if charts and args and args[0] in ("render", "apply", "doctor", "verify", "diff", "validate", "migrate"):
            argv += ["--charts", str(CHARTS)]
        t0 = time.monotonic()
        proc = subprocess.run(argv, env=self.cp.env(**(env or {})), cwd=cwd or self.cwd, capture_output=True, text=True, timeout=timeout)
        run = Run(proc, time.monotonic() - t0)
        assert "Traceback" not in run.err, run.err
        self.cp.check_alive()
        return run

    def popen(self, *args: str, env: dict | None = None) -> subprocess.Popen:
        argv = [sys.executable, "-m", "llmdctl", *args, "--charts", str(CHARTS)]
        return subprocess.Popen(argv, env=self.cp.env(**(env or {})), cwd=self.cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, start_new_session=True)

    def helm(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(self.cp.bin / "helm"), *args], env=self.cp.env(), capture_output=True, text=True, timeout=120)

    def releases(self, namespace: str) -> dict[str, str]:
        out = self.helm("list", "-n", namespace, "--all", "-o", "json")
        assert out.returncode == 0, out.stderr
        return {r["name"]: r["status"] for r in json.loads(out.stdout)}

    def objects(self, namespace: str, kinds: str = "all,httproute,inferencepool,configmap,secret,serviceaccount,role,rolebinding,"
                "servicemonitor,podmonitor,destinationrule,gateway") -> list[dict]:
        return self.cp.get_json(kinds, "-n", namespace)["items"]

    def wait_for(self, what: str, fn, timeout: float = 60, interval: float = 0.5):
        deadline = time.monotonic() + timeout
        while True:
            value = fn()
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
            time.sleep(interval)


def measured(line: str) -> None:
    MEASURED.append(line)
