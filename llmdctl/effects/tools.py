"""The boundary to the external tools (helmfile, helm, kubectl) and to the kubeconfig.

Everything that runs a process goes through ``Toolbox.run``: one place that pins the kube context
and kubeconfig on every command, streams the tool's output live, keeps the tail of stderr for the
error report and forwards Ctrl-C to the child before giving up on it.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from ..base.errors import InputError, LlmdctlError, suggest
from ..base.yamlio import load_text

# Minimums from llm-d's client-setup prerequisites (guides/prereq/client-setup): helmfile v1
# changed flag parsing and the default of --skip-needs; helm-diff is what `helmfile apply` and
# `helmfile diff` call.
MINIMUMS = {"helmfile": (1, 1, 0), "helm": (3, 12, 0), "kubectl": (1, 28, 0), "helm-diff": (3, 10, 0)}

INSTALL_HINTS = {
    "helmfile": "install helmfile v1.1+: https://helmfile.readthedocs.io/en/latest/#installation (or brew install helmfile)",
    "helm": "install helm v3.12+: https://helm.sh/docs/intro/install/",
    "kubectl": "install kubectl v1.28+: https://kubernetes.io/docs/tasks/tools/#kubectl",
    "helm-diff": "helm plugin install https://github.com/databus23/helm-diff",
}

_VERSION = re.compile(r"v?(\d+)\.(\d+)\.(\d+)")

STDERR_TAIL = 20


class ToolMissing(LlmdctlError):
    """A tool is not installed or too old: the machine, not the input, needs fixing."""


class StepFailed(LlmdctlError):
    """A command exited non-zero (or was interrupted); carries what the report needs."""

    def __init__(self, message: str, *, returncode: int, stderr_tail: list[str], hint: str | None = None):
        super().__init__(message, hint=hint)
        self.returncode = returncode
        self.stderr_tail = stderr_tail


class Interrupted(StepFailed):
    exit_code = 130


def version_tuple(text: str) -> tuple[int, int, int] | None:
    m = _VERSION.search(text or "")
    return (int(m.group(1)), int(m.group(2)), int(m.group(3))) if m else None


def fmt_version(v: tuple[int, int, int] | None) -> str:
    return "unknown" if v is None else "v" + ".".join(map(str, v))


# --- kubeconfig ----------------------------------------------------------------------------


def kubeconfig_files(kubeconfig: str | None, env: dict | None = None) -> list[Path]:
    env = os.environ if env is None else env
    if kubeconfig:
        return [Path(kubeconfig).expanduser()]
    if env.get("KUBECONFIG"):
        return [Path(p).expanduser() for p in env["KUBECONFIG"].split(os.pathsep) if p]
    return [Path("~/.kube/config").expanduser()]


def read_kubeconfig(kubeconfig: str | None, env: dict | None = None) -> tuple[str | None, list[str], list[Path]]:
    """(current context, context names, files read), merged the way kubectl merges $KUBECONFIG:
    the first file that sets current-context wins; contexts are the union."""

    current, contexts, files = None, [], []
    for path in kubeconfig_files(kubeconfig, env):
        if path.is_dir():
            raise InputError(f"kubeconfig {path} is a folder, not a file", hint="point --kubeconfig or $KUBECONFIG at the file")
        try:
            raw = path.read_bytes()
        except OSError:
            continue
        files.append(path)
        try:
            data = load_text(raw.decode("utf-8"), str(path)).data or {}
        except UnicodeDecodeError:
            raise InputError(f"kubeconfig {path} is not a UTF-8 text file") from None
        except LlmdctlError as exc:
            raise InputError(f"kubeconfig {path} is not valid YAML: {exc.message}") from None
        if not isinstance(data, dict):
            raise InputError(f"kubeconfig {path} is not a kubeconfig (a YAML mapping with contexts, clusters and users)")
        if not current and isinstance(data.get("current-context"), str) and data["current-context"]:
            current = data["current-context"]
        listed = data.get("contexts") or []
        if not isinstance(listed, list):
            raise InputError(f"kubeconfig {path}: 'contexts' must be a list, not {type(listed).__name__}")
        for ctx in listed:
            if isinstance(ctx, dict) and isinstance(ctx.get("name"), str) and ctx["name"] not in contexts:
                contexts.append(ctx["name"])
    return current, contexts, files


def resolve_context(kube_context: str | None, kubeconfig: str | None) -> str | None:
    """The context every command of this run is pinned to; refuse to guess."""

    current, contexts, files = read_kubeconfig(kubeconfig)
    where = ", ".join(str(f) for f in files) or ", ".join(str(f) for f in kubeconfig_files(kubeconfig))
    if kube_context:
        if files and contexts and kube_context not in contexts:
            raise InputError(
                f"--kube-context {kube_context}: no such context in {where}" + suggest(kube_context, contexts),
                hint=f"contexts: {', '.join(contexts)}",
            )
        return kube_context
    if not files and os.environ.get("KUBERNETES_SERVICE_HOST"):
        return None  # inside a pod: the service account's cluster, no context to pin
    if not files:
        raise InputError(
            f"no kubeconfig found ({where}), so no Kubernetes context is selected",
            hint="pass --kubeconfig FILE and --kube-context NAME, or set KUBECONFIG",
        )
    if not current:
        raise InputError(
            f"no Kubernetes context is selected (no current-context in {where}); llmdctl will not guess a cluster",
            hint="pass --kube-context NAME" + (f" (one of: {', '.join(contexts)})" if contexts else "") + ", or run kubectl config use-context NAME",
        )
    return current


def context_dir_name(context: str) -> str:
    """A context name as one safe path segment (EKS contexts are ARNs with ':' and '/')."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", context) or "_"


# --- commands ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Command:
    """One external command: which tool, its arguments, where it runs, and what it is for."""

    tool: str  # helmfile | helm | kubectl
    args: tuple[str, ...]
    label: str
    cwd: str | None = None
    ok_codes: tuple[int, ...] = (0,)

    def argv(self, box: "Toolbox") -> list[str]:
        return [box.path(self.tool), *box.pin(self.tool), *self.args]

    def display(self, box: "Toolbox") -> str:
        shown = [self.tool, *box.pin(self.tool), *self.args]
        text = shlex.join(shown)
        return f"(cd {shlex.quote(self.cwd)} && {text})" if self.cwd else text


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


@dataclass
class Toolbox:
    """Where the tools are and which cluster every command is pinned to."""

    context: str | None = None
    kubeconfig: str | None = None
    bins: dict[str, str] = field(default_factory=dict)  # tool -> explicit path (--helm-bin ...)
    echo: bool = True  # stream tool output to stderr while it runs
    _found: dict[str, str] = field(default_factory=dict)

    def path(self, tool: str) -> str:
        if tool in self._found:
            return self._found[tool]
        explicit = self.bins.get(tool)
        if explicit:
            found = shutil.which(explicit)
            if not found:
                raise ToolMissing(f"--{tool}-bin {explicit}: not found or not executable", hint=INSTALL_HINTS[tool])
        else:
            found = shutil.which(tool)
            if not found:
                raise ToolMissing(f"{tool} is not on PATH; llmdctl runs it to talk to the cluster", hint=INSTALL_HINTS[tool] + f", or pass --{tool}-bin PATH")
        self._found[tool] = found
        return found

    def pin(self, tool: str) -> list[str]:
        """Flags that pin a command to this run's cluster, in each tool's spelling."""
        args: list[str] = []
        if tool == "kubectl":
            if self.kubeconfig:
                args += ["--kubeconfig", self.kubeconfig]
            if self.context:
                args += ["--context", self.context]
        elif tool == "helm":
            if self.kubeconfig:
                args += ["--kubeconfig", self.kubeconfig]
            if self.context:
                args += ["--kube-context", self.context]
        elif tool == "helmfile":
            # helmfile has no --kubeconfig; it hands KUBECONFIG (set in env()) down to helm.
            if self.context:
                args += ["--kube-context", self.context]
            if self.bins.get("helm"):
                args += ["--helm-binary", self.path("helm")]
        return args

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        if self.kubeconfig:
            env["KUBECONFIG"] = self.kubeconfig
        return env

    # -- running ----------------------------------------------------------------------------

    def capture(self, cmd: Command, timeout: float = 60) -> Result:
        """Run a short query command and return its output (nothing streamed)."""
        try:
            proc = subprocess.run(
                cmd.argv(self), cwd=cmd.cwd, env=self.env(), capture_output=True, text=True, errors="replace", timeout=timeout, stdin=subprocess.DEVNULL
            )
        except subprocess.TimeoutExpired:
            raise StepFailed(f"{cmd.label}: `{cmd.display(self)}` did not finish in {timeout:.0f} s", returncode=124, stderr_tail=[]) from None
        except OSError as exc:
            raise ToolMissing(f"{cmd.label}: cannot run {cmd.tool}: {exc.strerror}", hint=INSTALL_HINTS.get(cmd.tool)) from None
        return Result(proc.returncode, proc.stdout, proc.stderr)

    def query(self, cmd: Command, timeout: float = 60) -> str:
        """capture() that raises StepFailed on an exit code outside cmd.ok_codes."""
        res = self.capture(cmd, timeout)
        if res.returncode not in cmd.ok_codes:
            tail = res.stderr.strip().splitlines()[-STDERR_TAIL:]
            raise StepFailed(
                f"{cmd.label}: `{cmd.display(self)}` exited {res.returncode}" + ("\n    " + "\n    ".join(tail) if tail else ""),
                returncode=res.returncode, stderr_tail=tail,
            )
        return res.stdout

    def stream(self, cmd: Command, prefix: str = "  | ", to_stdout: bool = False) -> Result:
        """Run a long command, echoing its output line by line (to stderr, or its stdout to our
        stdout when the output is the command's result, as for diff); Ctrl-C is passed on to it."""
        try:
            proc = subprocess.Popen(
                cmd.argv(self), cwd=cmd.cwd, env=self.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                stdin=subprocess.DEVNULL, text=True, errors="replace", bufsize=1,
            )
        except OSError as exc:
            raise ToolMissing(f"{cmd.label}: cannot run {cmd.tool}: {exc.strerror}", hint=INSTALL_HINTS.get(cmd.tool)) from None
        out: list[str] = []
        err: deque[str] = deque(maxlen=200)
        lock = threading.Lock()

        def pump(pipe, sink, stdout: bool):
            for line in pipe:
                sink.append(line)
                if self.echo:
                    target = sys.stdout if stdout else sys.stderr
                    with lock:
                        target.write(prefix + line if line.endswith("\n") else prefix + line + "\n")
            pipe.close()

        threads = [threading.Thread(target=pump, args=(proc.stdout, out, to_stdout), daemon=True),
                   threading.Thread(target=pump, args=(proc.stderr, err, False), daemon=True)]
        for t in threads:
            t.start()
        try:
            while proc.poll() is None:
                time.sleep(0.02)
        except KeyboardInterrupt:
            _stop(proc)
            for t in threads:
                t.join(timeout=2)
            raise Interrupted(
                f"{cmd.label}: interrupted (Ctrl-C); {cmd.tool} was stopped",
                returncode=130, stderr_tail=[line.rstrip("\n") for line in list(err)[-STDERR_TAIL:]],
            ) from None
        for t in threads:
            t.join()
        return Result(proc.returncode, "".join(out), "".join(err))


def _stop(proc: subprocess.Popen, grace: float = 10.0) -> None:
    """Pass Ctrl-C on (the terminal may already have), then escalate if the tool does not exit."""
    for sig, wait in ((signal.SIGINT, grace), (signal.SIGTERM, 3.0)):
        if proc.poll() is not None:
            return
        try:
            proc.send_signal(sig)
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue
        except KeyboardInterrupt:  # a second Ctrl-C: stop waiting politely
            break
    if proc.poll() is None:
        proc.kill()
        proc.wait()


# --- versions ------------------------------------------------------------------------------


def _version_of(box: Toolbox, tool: str) -> tuple[int, int, int] | None:
    args = {"helmfile": ("--version",), "helm": ("version", "--short"), "kubectl": ("version", "--client", "-o", "json")}[tool]
    res = box.capture(Command(tool, args, f"{tool} version"), timeout=30)
    if res.returncode != 0:
        return None
    if tool == "kubectl":
        try:
            return version_tuple(json.loads(res.stdout)["clientVersion"]["gitVersion"])
        except (ValueError, KeyError, TypeError):
            return version_tuple(res.stdout)
    return version_tuple(res.stdout)


def helm_diff_version(box: Toolbox) -> tuple[int, int, int] | None:
    """The installed helm-diff plugin's version, or None when it is not installed."""
    res = box.capture(Command("helm", ("plugin", "list"), "helm plugin list"), timeout=30)
    if res.returncode != 0:
        return None
    for line in res.stdout.splitlines()[1:]:
        cols = line.split()
        if cols and cols[0] == "diff":
            return version_tuple(line) or (0, 0, 0)
    return None


@dataclass(frozen=True)
class ToolCheck:
    tool: str
    path: str | None
    version: tuple[int, int, int] | None
    minimum: tuple[int, int, int]
    status: str  # pass | warn | fail
    message: str
    fix: str = ""

    def as_dict(self) -> dict:
        return {"tool": self.tool, "path": self.path, "version": fmt_version(self.version) if self.version else None,
                "minimum": fmt_version(self.minimum), "status": self.status, "message": self.message, "fix": self.fix}


def check_tools(box: Toolbox, tools: tuple[str, ...]) -> list[ToolCheck]:
    """Find each tool and compare its version with the documented minimum (never raises)."""
    checks = []
    for tool in tools:
        minimum = MINIMUMS[tool]
        if tool == "helm-diff":
            try:
                box.path("helm")
            except ToolMissing:
                checks.append(ToolCheck(tool, None, None, minimum, "fail", "helm is missing, so is its diff plugin", INSTALL_HINTS["helm"]))
                continue
            v = helm_diff_version(box)
            if v is None:
                checks.append(ToolCheck(tool, None, None, minimum, "warn", "helm-diff plugin not installed (needed by helmfile apply/diff; llmdctl apply falls back to helmfile sync)", INSTALL_HINTS[tool]))
            elif v < minimum:
                checks.append(ToolCheck(tool, None, v, minimum, "warn", f"helm-diff {fmt_version(v)} is older than {fmt_version(minimum)}", "helm plugin update diff"))
            else:
                checks.append(ToolCheck(tool, None, v, minimum, "pass", f"helm-diff {fmt_version(v)}"))
            continue
        try:
            path = box.path(tool)
        except ToolMissing as exc:
            checks.append(ToolCheck(tool, None, None, minimum, "fail", exc.message, exc.hint or INSTALL_HINTS[tool]))
            continue
        v = _version_of(box, tool)
        if v is None:
            checks.append(ToolCheck(tool, path, None, minimum, "warn", f"{tool} at {path}: could not read its version"))
        elif v < minimum:
            checks.append(ToolCheck(tool, path, v, minimum, "fail", f"{tool} {fmt_version(v)} at {path} is older than the minimum {fmt_version(minimum)}", INSTALL_HINTS[tool]))
        else:
            checks.append(ToolCheck(tool, path, v, minimum, "pass", f"{tool} {fmt_version(v)}"))
    return checks


def require_tools(box: Toolbox, tools: tuple[str, ...]) -> list[ToolCheck]:
    """check_tools, raising on the first failure with its install hint."""
    checks = check_tools(box, tools)
    for c in checks:
        if c.status == "fail":
            raise ToolMissing(c.message, hint=c.fix)
    return checks


class PortForward:
    """`kubectl port-forward` to a Service on a free local port, closed on exit."""

    def __init__(self, box: Toolbox, namespace: str, service: str, remote_port: int, timeout: float = 20.0):
        self.box, self.namespace, self.service, self.remote, self.timeout = box, namespace, service, remote_port, timeout
        self.proc: subprocess.Popen | None = None
        self.url = ""

    def __enter__(self) -> "PortForward":
        cmd = Command("kubectl", ("port-forward", "--namespace", self.namespace, f"service/{self.service}", f"0:{self.remote}"),
                      f"port-forward to {self.service}")
        self.proc = subprocess.Popen(cmd.argv(self.box), env=self.box.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     stdin=subprocess.DEVNULL, text=True, errors="replace")
        found: list[str] = []

        def read():
            for line in self.proc.stdout:
                m = re.search(r"Forwarding from (127\.0\.0\.1|\[::1\]):(\d+)", line)
                if m and not found:
                    found.append(m.group(2))

        threading.Thread(target=read, daemon=True).start()
        deadline = time.monotonic() + self.timeout
        while not found and time.monotonic() < deadline and self.proc.poll() is None:
            time.sleep(0.02)
        if not found:
            err = self.proc.stderr.read() if self.proc.poll() is not None else ""
            self.__exit__()
            raise StepFailed(f"{cmd.display(self.box)} did not start forwarding" + (f": {err.strip()[-300:]}" if err else ""),
                             returncode=1, stderr_tail=err.splitlines()[-5:], hint="pass --endpoint URL to use another way in")
        self.url = f"http://127.0.0.1:{found[0]}"
        return self

    def __exit__(self, *exc) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def open_toolbox(*, kube_context: str | None, kubeconfig: str | None, bins: dict[str, str], dry_run: bool = False) -> Toolbox:
    """Tools pinned to one context. A dry run shows the context it would use but refuses nothing."""
    bins = {tool: path for tool, path in bins.items() if path}
    context = (kube_context or read_kubeconfig(kubeconfig)[0]) if dry_run else resolve_context(kube_context, kubeconfig)
    return Toolbox(context=context, kubeconfig=kubeconfig, bins=bins)


def cluster_flags(box: Toolbox) -> list[str]:
    """The llmdctl flags that point another llmdctl command at the same cluster and tools."""
    args = ["--kube-context", box.context] if box.context else []
    if box.kubeconfig:
        args += ["--kubeconfig", box.kubeconfig]
    for tool in ("helmfile", "helm", "kubectl"):
        if box.bins.get(tool):
            args += [f"--{tool}-bin", box.bins[tool]]
    return args
