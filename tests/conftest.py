from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
# the catalog cache of this test run stays out of the developer's ~/.cache
HELMFILE_ERA = "v0.6.0"  # what the tests written for llm-d-infra + inferencepool + modelservice target
os.environ.setdefault("LLMDCTL_CACHE_DIR", tempfile.mkdtemp(prefix="llmdctl-test-cache-"))

from llmdctl.cli.main import main  # noqa: E402
from llmdctl.compose.compose import compose  # noqa: E402
from llmdctl.compose.compose import evaluate  # noqa: E402
from llmdctl.inputs.spec import build_spec  # noqa: E402
from llmdctl.base.yamlio import load_text  # noqa: E402


class Result:
    def __init__(self, code: int, out: str, err: str):
        self.code, self.out, self.err = code, out, err

    def __repr__(self) -> str:
        return f"Result(code={self.code}, err={self.err[-400:]!r})"


@pytest.fixture
def cli(capsys, monkeypatch):
    """Run llmdctl in-process: cli(args..., env={...}) -> Result(code, stdout, stderr)."""

    def run(*args: str, env: dict | None = None) -> Result:
        for var in ("NAMESPACE", "RELEASE_NAME_POSTFIX"):
            monkeypatch.delenv(var, raising=False)
        # the helmfile-era suites target v0.6.0 unless they name a version; env={"LLMD_VERSION": ""}
        # runs with the catalog's real default
        monkeypatch.setenv("LLMD_VERSION", HELMFILE_ERA)
        for k, v in (env or {}).items():
            if v == "" and k == "LLMD_VERSION":
                monkeypatch.delenv(k)
            else:
                monkeypatch.setenv(k, v)
        capsys.readouterr()
        code = main(list(args))
        out, err = capsys.readouterr()
        assert "Traceback" not in err, err
        return Result(code, out, err)

    return run


def plan_for(**kwargs):
    """Compose and evaluate a plan without the environment's NAMESPACE/postfix leaking in; a test
    that names no llm-d version gets the helmfile era's v0.6.0 (the router generation's tests name theirs)."""
    return evaluate(compose(build_spec(env={}, **{"llmd_version": HELMFILE_ERA, **kwargs})))


def parse(text: str):
    return load_text(text, "test").data


# --- stand-in helmfile / helm / kubectl --------------------------------------------------------

import json  # noqa: E402

FAKE_TOOLS = Path(__file__).parent / "fakes" / "fake_tools.py"

KUBECONFIG_TEXT = """\
apiVersion: v1
kind: Config
current-context: kind-gpu
clusters:
- name: gpu
  cluster: {server: "https://127.0.0.1:6443"}
contexts:
- name: kind-gpu
  context: {cluster: gpu, user: admin}
- name: other
  context: {cluster: gpu, user: admin}
users:
- name: admin
  user: {token: not-a-real-token}
"""


class FakeCluster:
    """The stand-in tools' world: state, call log, and knobs for failures."""

    def __init__(self, root: Path, server: str = "https://127.0.0.1:6443"):
        self.root = root
        self.bin = root / "bin"
        self.state_file = root / "state.json"
        self.log_file = root / "calls.jsonl"
        self.kubeconfig = root / "kubeconfig"
        self.bin.mkdir(parents=True)
        self.kubeconfig.write_text(KUBECONFIG_TEXT.replace("https://127.0.0.1:6443", server))
        self.log_file.write_text("")
        self.write({
            "current": "kind-gpu",
            "versions": {"helmfile": "1.1.3", "helm": "v3.17.2", "kubectl": "v1.31.1"},
            "plugins": {"diff": "3.11.0"},
            "contexts": {"kind-gpu": {"namespaces": {}}},
            "fail": [],
        })
        for tool in ("helmfile", "helm", "kubectl"):
            self.install(tool)

    def install(self, tool: str) -> None:
        exe = self.bin / tool
        exe.write_text(f"#!{sys.executable}\nimport sys\nsys.path.insert(0, {str(FAKE_TOOLS.parent)!r})\nimport fake_tools\nfake_tools.main({tool!r})\n")
        exe.chmod(0o755)

    def uninstall(self, tool: str) -> None:
        (self.bin / tool).unlink()

    # state
    def read(self) -> dict:
        return json.loads(self.state_file.read_text())

    def write(self, state: dict) -> None:
        self.state_file.write_text(json.dumps(state))

    def update(self, fn) -> None:
        state = self.read()
        fn(state)
        self.write(state)

    def namespace(self, ns: str, secrets=("llm-d-hf-token",), context: str = "kind-gpu") -> None:
        def add(state):
            cluster = state["contexts"].setdefault(context, {"namespaces": {}})
            cluster["namespaces"].setdefault(ns, {"releases": {}, "routes": {}, "secrets": list(secrets)})
        self.update(add)

    def fail(self, tool: str, *contains: str, exit: int = 1, stderr: str = "Error: boom", hang: bool = False, garbage: int = 0) -> None:
        self.update(lambda s: s["fail"].append({"tool": tool, "contains": list(contains), "exit": exit, "stderr": stderr, "hang": hang,
                                                "garbage": garbage}))

    def releases(self, ns: str, context: str = "kind-gpu") -> dict:
        return self.read()["contexts"].get(context, {"namespaces": {}})["namespaces"].get(ns, {}).get("releases", {})

    def routes(self, ns: str, context: str = "kind-gpu") -> dict:
        return self.read()["contexts"].get(context, {"namespaces": {}})["namespaces"].get(ns, {}).get("routes", {})

    # calls
    def calls(self, tool: str | None = None) -> list[dict]:
        rows = [json.loads(line) for line in self.log_file.read_text().splitlines() if line.strip()]
        return [r for r in rows if "argv" in r and (tool is None or r["tool"] == tool)]

    def commands(self, tool: str | None = None) -> list[str]:
        return [" ".join([c["tool"], *c["argv"]]) for c in self.calls(tool)]

    def reset_log(self) -> None:
        self.log_file.write_text("")


def gpu_node(name: str, gpus: int = 8, rdma: int = 8, taints: list | None = None, labels: dict | None = None) -> dict:
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, **(labels or {})}},
            "spec": {"taints": taints} if taints else {},
            # every vendor's device resource, so any profile's stack fits the stand-in world
            "status": {"allocatable": {"cpu": "96", "memory": "1Ti", "pods": "110", "rdma/ib": str(rdma), "vpc.amazonaws.com/efa": str(rdma),
                                       **{r: str(gpus) for r in ("nvidia.com/gpu", "amd.com/gpu", "gpu.intel.com/i915", "gpu.intel.com/xe",
                                                                 "habana.ai/gaudi", "google.com/tpu")}}}}


@pytest.fixture
def fake_cluster(tmp_path, monkeypatch):
    """Stand-in tools first (and alone) on PATH, a kubeconfig, and the cwd in a scratch folder.
    The kubeconfig's server is a FakeKube with four free 8-GPU nodes, which apply's pre-apply
    checks read (``fc.api``)."""
    api = FakeKube().start()
    for i in range(4):  # the widest example stack (GB200: 24 GPUs) fits
        api.put("/api/v1/nodes", gpu_node(f"gpu-node-{i}"))
    fc = FakeCluster(tmp_path / "fake", server=api.url)
    fc.api = api
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv("PATH", str(fc.bin))
    monkeypatch.setenv("KUBECONFIG", str(fc.kubeconfig))
    monkeypatch.setenv("FAKE_STATE", str(fc.state_file))
    monkeypatch.setenv("FAKE_LOG", str(fc.log_file))
    # kept bundles under the scratch folder: <work>/.llmdctl/bundles/<context>/<namespace>/<postfix>
    monkeypatch.setenv("LLMDCTL_STATE_DIR", str(work / ".llmdctl"))
    fc.work = work
    yield fc
    api.stop()


# --- stand-in Kubernetes API server -------------------------------------------------------------

sys.path.insert(0, str(Path(__file__).parent / "fakes"))

from kube_api import FakeKube  # noqa: E402
from stack_objects import StackObjects  # noqa: E402


@pytest.fixture
def kube_api(tmp_path, monkeypatch):
    """A FakeKube on 127.0.0.1 with a kubeconfig (context fake) pointing at it."""
    fake = FakeKube().start()
    kubeconfig = tmp_path / "kubeconfig-fake"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: fake\n"
        f"clusters:\n- name: fake\n  cluster: {{server: \"{fake.url}\"}}\n"
        "contexts:\n- name: fake\n  context: {cluster: fake, user: tester, namespace: default}\n"
        "users:\n- name: tester\n  user: {token: test-token}\n"
    )
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    fake.kubeconfig = kubeconfig
    yield fake
    fake.stop()


def deploy(fake, *render_args: str, namespace: str = "llm-d-pd", ready: bool = True, hf_secret: bool = True) -> StackObjects:
    """Put the objects a stack's charts would create into the fake API server."""
    from llmdctl.effects.bundle import bundle_files
    from llmdctl.compose.compose import compose
    from llmdctl.inputs.spec import build_spec
    from llmdctl.compose.compose import evaluate

    args = list(render_args)
    envs = [args[i + 1] for i, a in enumerate(args) if a == "-e"]
    kw = {}
    for flag, key in (("--postfix", "postfix"), ("--prefill", "prefill"), ("--decode", "decode")):
        if flag in args:
            kw[key] = args[args.index(flag) + 1]
    if "--llmd-version" in args:
        kw["llmd_version"] = args[args.index("--llmd-version") + 1]
    plan = evaluate(compose(build_spec(env={}, environments=envs or None, namespace=namespace, **{"llmd_version": HELMFILE_ERA, **kw})))
    return StackObjects(fake, bundle_files(plan), namespace).install(ready=ready, hf_secret=hf_secret)
