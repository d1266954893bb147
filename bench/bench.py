#!/usr/bin/env python3
"""Speed of llmdctl as ratios to a floor measured in the same run, on the same interpreter.

The floor is `python -c "import ruamel.yaml"`: starting the interpreter and loading the one
library every render needs. Every figure is the median of runs alternated with the floor's (so
load on the machine hits both alike), divided by the floor's median:

- `llmdctl --help` and `llmdctl render` as fresh processes, the way a user runs them (render with
  a warm catalog cache, and cold with LLMDCTL_CACHE_DIR=off);
- render with the catalog padded to 2x, 5x and 10x its size (copies of every profile): the figure
  must stay flat, because only the layers the inputs name are read;
- the whole test matrix rendered in one process, per bundle;
- verify of a ready 4P1D stack against the tests' local fake Kubernetes API (as a ratio to a second
  floor that also imports the kubernetes client, which verify needs), and with --wait the delay
  between the last pod turning ready and verify returning.

- the planner's accuracy against published measurements (tests/fixtures/plan_accuracy.yaml): median
  error, share within +-35% and range coverage per figure type, as tests/test_plan_accuracy.py scores it
  (`--accuracy` prints only that: pure arithmetic, no processes).

    python bench/bench.py [--repeat 10] [--accuracy]

Exit 1 when a ratio is over its budget (CI prints the table and goes on: machines differ).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # this checkout's llmdctl for what runs in-process, as pytest does
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "tests" / "fakes"))

from llmdctl.catalog.catalog import default_catalog  # noqa: E402  (after the path above)
from llmdctl.sizing import accuracy as plan_accuracy  # noqa: E402

# ratio of the median to the floor's median (catalog growth: to the 1x catalog's render)
BUDGETS = {
    "llmdctl --help": 1.5,
    "llmdctl render (warm cache)": 2.0,
    "llmdctl render (no cache)": 8.0,
    "render, catalog 2x / 1x": 1.15,
    "render, catalog 5x / 1x": 1.15,
    "render, catalog 10x / 1x": 1.15,
    "matrix in one process, per bundle": 0.5,
    # verify and doctor need the kubernetes client: their floor is importing it (same run)
    "llmdctl verify (ready 4P1D)": 2.0,
    "verify --wait: ready -> exit": 12.0,
    # doctor on a real control plane (admission dry-run of each pod template, quotas, placement,
    # CRDs, the bundle rendered by helmfile) against one `kubectl auth can-i create pods`
    "llmdctl doctor (real API server)": 30.0,
    # the issue's example: the whole xPyD search under three priors, well under a second
    "llmdctl plan (gpt-oss-120b, 16 GPUs)": 8.0,
}


def _exe() -> tuple[list[str], str]:
    """The installed console script and the interpreter it runs on (the floor must use the same)."""
    found = shutil.which("llmdctl")
    if found:
        first = Path(found).read_text(errors="replace").splitlines()[0]
        python = first[2:].strip() if first.startswith("#!") else sys.executable
        return [found], python
    return [sys.executable, "-m", "llmdctl"], sys.executable


def _once(args: list[str], env: dict | None = None) -> float:
    start = time.perf_counter()
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    return time.perf_counter() - start


def alternated(commands: dict[str, tuple[list[str], dict | None]], repeat: int) -> dict[str, float]:
    """Median seconds per command, running each once per round, round after round."""
    times: dict[str, list[float]] = {name: [] for name in commands}
    for name, (args, env) in commands.items():  # one untimed run each: fills the catalog cache
        _once(args, env)
    for _ in range(repeat):
        for name, (args, env) in commands.items():
            times[name].append(_once(args, env))
    return {name: statistics.median(t) for name, t in times.items()}


def padded_catalog(base: Path, factor: int) -> Path:
    """A copy of the shipped catalog with every profile copied ``factor - 1`` more times."""
    from llmdctl.base.data import data_root

    root = base / f"catalog-{factor}x"
    for folder in ("profiles", "gateways", "guides", "templates", "schemas"):
        shutil.copytree(Path(data_root()) / folder, root / folder)
    for profile in sorted((root / "profiles").glob("*.yaml")):
        text = profile.read_text()
        for n in range(1, factor):
            name = f"{profile.stem}-copy{n}"
            (root / "profiles" / f"{name}.yaml").write_text(text.replace(f"name: {profile.stem}\n", f"name: {name}\n", 1))
    return root


def time_matrix(repeat: int) -> tuple[float, int]:
    import itertools

    from matrix import cases, router_cases

    from llmdctl.base.errors import ValidationError
    from llmdctl.compose.compose import plan_stack
    from llmdctl.effects.bundle import bundle_files
    from llmdctl.inputs.spec import build_spec

    times, rendered = [], 0
    for _ in range(repeat):
        start = time.perf_counter()
        rendered = 0
        for _cid, kw, _refusal in itertools.chain(cases(("v0.6.0", "v0.4.0")), router_cases(("v0.9.0", "v0.8.0"))):
            try:
                plan = plan_stack(build_spec(env={}, **kw))
            except ValidationError:
                continue
            bundle_files(plan)
            rendered += 1
        times.append(time.perf_counter() - start)
    return statistics.median(times), rendered


def time_verify(exe: list[str], repeat: int) -> tuple[float, float, int]:
    from kube_api import FakeKube
    from stack_objects import StackObjects

    from llmdctl.compose.compose import plan_stack
    from llmdctl.effects.bundle import bundle_files
    from llmdctl.inputs.spec import build_spec

    with tempfile.TemporaryDirectory() as tmp:
        fake = FakeKube().start()
        try:
            # the fake API server's stack objects imitate the helmfile-era charts
            plan = plan_stack(build_spec(env={}, namespace="llm-d-pd", llmd_version="v0.6.0"))
            stack = StackObjects(fake, bundle_files(plan), "llm-d-pd").install()
            kubeconfig = Path(tmp) / "kubeconfig"
            kubeconfig.write_text(
                f"apiVersion: v1\nkind: Config\ncurrent-context: fake\nclusters:\n- name: fake\n  cluster: {{server: \"{fake.url}\"}}\n"
                "contexts:\n- name: fake\n  context: {cluster: fake, user: u}\nusers:\n- name: u\n  user: {token: t}\n"
            )
            env = dict(os.environ, KUBECONFIG=str(kubeconfig), NAMESPACE="llm-d-pd", LLMD_VERSION="v0.6.0")
            ready = [_once(exe + ["verify"], env) for _ in range(repeat)]
            calls = len(fake.api_calls()) // repeat
            noticed = []
            for _ in range(repeat):
                stack.set_ready("decode", 0, False)
                seen = len(fake.api_calls(watch=True))
                proc = subprocess.Popen(exe + ["verify", "--wait", "--timeout", "60s"], env=env,
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
    return statistics.median(ready), statistics.median(noticed), calls


def time_doctor(exe: list[str], repeat: int) -> tuple[dict[str, float], int] | None:
    """doctor of a 1P1D stack against the e2e suite's real control plane (kube-apiserver with its
    admission plugins, kwok GPU nodes) and `kubectl auth can-i create pods` in the same rounds.
    None without the e2e toolchain ($LLMDCTL_E2E_BIN, as CI exports it). Runs last: it moves this
    process into a network namespace with only loopback."""
    bin_dir = os.environ.get("LLMDCTL_E2E_BIN")
    if not bin_dir:
        return None
    from e2e.controlplane import ControlPlane, enter_private_network

    enter_private_network()
    with tempfile.TemporaryDirectory() as tmp:
        cp = ControlPlane(Path(bin_dir), Path(tmp))
        try:
            cp.start()
            cp.add_gpu_nodes("gpu-node", 3, {"nvidia.com/gpu": "8", "rdma/ib": "8"})
            cp.apply_objects([{"apiVersion": "gateway.networking.k8s.io/v1", "kind": "GatewayClass", "metadata": {"name": "istio"},
                               "spec": {"controllerName": "istio.io/gateway-controller"}}])
            cp.namespace("llm-d-pd")
            env = {k: v for k, v in cp.env().items() if k != "PYTHONPATH"}  # the installed llmdctl, not the checkout
            doctor = exe + ["doctor", "-n", "llm-d-pd", "--prefill", "1xTP1", "--decode", "1xTP1",
                            "--charts", str(ROOT / "tests" / "e2e" / "standin-charts")]
            can_i = [str(cp.bin / "kubectl"), "auth", "can-i", "create", "pods", "-n", "llm-d-pd"]
            medians = alternated({"doctor": (doctor, env), "can-i": (can_i, env)}, repeat)
            ours = [line for line in cp.audit_lines() if str(line.get("userAgent", "")).startswith("llmdctl/")]
            calls = len(ours) // (repeat + 1)  # alternated() runs each once untimed, then repeat times
        finally:
            cp.stop()
    return medians, calls


def print_accuracy() -> None:
    """The planner against published measurements, scored as the accuracy test scores it."""
    for name, what in (("plan_accuracy.yaml", ""), ("plan_accuracy_ep.yaml", ", expert-parallel layouts")):
        _, table = plan_accuracy.scored(default_catalog(), str(ROOT / "tests" / "fixtures" / name))
        print(f"llmdctl plan vs published measurements (tests/fixtures/{name}{what})")
        print(plan_accuracy.render(table))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--accuracy", action="store_true", help="print only the planner's accuracy table")
    opts = parser.parse_args()
    if opts.accuracy:
        print_accuracy()
        return 0
    exe, python = _exe()
    rows: list[tuple[str, float, float, str]] = []  # name, seconds, ratio, note
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        warm = dict(os.environ, LLMDCTL_CACHE_DIR=str(base / "cache"))
        cold = dict(os.environ, LLMDCTL_CACHE_DIR="off")
        catalogs = {f: padded_catalog(base, f) for f in (2, 5, 10)}
        render = exe + ["render", "-o", str(base / "bundle")]
        commands = {
            "floor": ([python, "-c", "import ruamel.yaml"], None),
            "kubernetes floor": ([python, "-c", "import ruamel.yaml, kubernetes.client, kubernetes.config"], None),
            "llmdctl --help": (exe + ["--help"], warm),
            "llmdctl render (warm cache)": (render, warm),
            "llmdctl render (no cache)": (render, cold),
            **{f"catalog {f}x": (render, dict(warm, LLMDCTL_CATALOG=str(root))) for f, root in catalogs.items()},
            "plan": (exe + ["plan", "-e", "nvidia-ib", "--model", "openai/gpt-oss-120b", "--gpus", "16", "--isl", "5000", "--osl", "250",
                            "--rate", "45", "-o", "json"], warm),
        }
        medians = alternated(commands, opts.repeat)
    floor = medians["floor"]
    rows.append(("floor: import ruamel.yaml", floor, 1.0, f"{python}"))
    for name in ("llmdctl --help", "llmdctl render (warm cache)", "llmdctl render (no cache)"):
        rows.append((name, medians[name], medians[name] / floor, ""))
    one = medians["llmdctl render (warm cache)"]
    for f in (2, 5, 10):
        rows.append((f"render, catalog {f}x / 1x", medians[f"catalog {f}x"], medians[f"catalog {f}x"] / one,
                     f"{medians[f'catalog {f}x'] / floor:.2f}x the floor"))
    rows.append(("llmdctl plan (gpt-oss-120b, 16 GPUs)", medians["plan"], medians["plan"] / floor, f"{medians['plan']:.2f} s wall"))
    seconds, rendered = time_matrix(max(1, opts.repeat // 3))
    rows.append(("matrix in one process, per bundle", seconds / rendered, seconds / rendered / floor, f"{rendered} bundles in {seconds:.2f} s"))
    ready, noticed, calls = time_verify(exe, max(1, opts.repeat // 3))
    kube_floor = medians["kubernetes floor"]
    rows.append(("floor: + import kubernetes client", kube_floor, kube_floor / floor, "the library verify and doctor need"))
    rows.append(("llmdctl verify (ready 4P1D)", ready, ready / kube_floor, f"{calls} API calls; {ready / floor:.1f}x the floor"))
    rows.append(("verify --wait: ready -> exit", noticed, noticed / floor, "watches, no polling interval"))
    doctor = time_doctor(exe, max(1, opts.repeat // 2))
    if doctor is None:
        print("bench: no e2e toolchain ($LLMDCTL_E2E_BIN): doctor against a real API server not measured", file=sys.stderr)
    else:
        (doc, calls) = doctor
        rows.append(("floor: kubectl auth can-i create pods", doc["can-i"], doc["can-i"] / floor, "one API request, real kube-apiserver"))
        rows.append(("llmdctl doctor (real API server)", doc["doctor"], doc["doctor"] / doc["can-i"],
                     f"{doc['doctor']:.2f} s wall, {calls} API requests (audit log); helmfile template included"))

    print(f"{'what':36} {'median s':>9} {'ratio':>7} {'budget':>7}  ok   note")
    over = False
    for name, secs, ratio, note in rows:
        budget = BUDGETS.get(name)
        ok = budget is None or ratio <= budget
        over |= not ok
        print(f"{name:36} {secs:9.4f} {ratio:7.2f} {budget if budget else '':>7}  {'' if budget is None else 'yes' if ok else 'NO '}  {note}")
    print()
    print_accuracy()
    return 1 if over else 0


if __name__ == "__main__":
    sys.exit(main())
