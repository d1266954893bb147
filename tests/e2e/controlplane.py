"""A real Kubernetes control plane for the e2e suite: etcd, kube-apiserver, kube-controller-manager,
kube-scheduler and kwok (fake GPU nodes, no container runtime), on 127.0.0.1 inside a network
namespace of this test process that has only ``lo`` up, so nothing can dial a pod or Service IP
or leave the machine. Binaries come from ``.ci/e2e-tools`` (built from Go modules, cached).

Every process is started here and stopped here by PID; the state lives in one temporary folder.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CLONE_NEWNET = 0x40000000
TOKEN = "e2e-admin-token"  # the API server's static token file; the cluster lives only in this process's netns


class E2EError(RuntimeError):
    pass


def enter_private_network() -> None:
    """Move this process (and every child it starts later) into a new network namespace whose only
    interface is loopback. Needs root (CAP_SYS_ADMIN), as CI has."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise E2EError(f"unshare(CLONE_NEWNET) failed: {os.strerror(err)} (the e2e suite needs root to isolate its network)")
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    # prove the isolation before anything runs: a pod IP must be unreachable, not slow
    s = socket.socket()
    s.settimeout(2)
    try:
        s.connect(("10.244.0.10", 8000))
    except OSError as exc:
        if exc.errno != errno.ENETUNREACH:
            raise E2EError(f"a dial to a pod IP gave {exc!r}, not 'network unreachable': the namespace is not isolated") from None
    else:
        raise E2EError("a dial to a pod IP connected: the network namespace is not isolated")
    finally:
        s.close()


def tool_dir() -> Path:
    """The toolchain folder: $LLMDCTL_E2E_BIN, else what .ci/e2e-tools says (without building)."""
    if os.environ.get("LLMDCTL_E2E_BIN"):
        return Path(os.environ["LLMDCTL_E2E_BIN"])
    out = subprocess.run([str(REPO / ".ci" / "e2e-tools"), "--bin-dir"], capture_output=True, text=True, check=True)
    return Path(out.stdout.strip())


def lws_crd() -> Path:
    """The LeaderWorkerSet CRD .ci/e2e-tools puts beside the binaries (from the sigs.k8s.io/lws module)."""
    found = sorted(tool_dir().glob("lws-v*-crd.yaml"))
    if not found:
        raise E2EError(f"no LeaderWorkerSet CRD in {tool_dir()}: run .ci/e2e-tools (it copies it from sigs.k8s.io/lws)")
    return found[-1]


def crd_dir() -> Path:
    """The unmodified upstream CRDs beside the checkout ($LLMDCTL_E2E_CRDS, else ../shared/crds)."""
    return Path(os.environ.get("LLMDCTL_E2E_CRDS") or REPO.parent / "shared" / "crds")


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


class ControlPlane:
    TOOLS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok", "kubectl", "helm", "helmfile")

    def __init__(self, bin_dir: Path, work: Path):
        self.bin, self.work = bin_dir, work
        missing = [t for t in self.TOOLS if not (bin_dir / t).is_file()]
        if missing or not (bin_dir / "kwok-stages.yaml").is_file():
            raise E2EError(f"e2e toolchain incomplete in {bin_dir} (missing: {', '.join(missing) or 'kwok-stages.yaml'}); run .ci/e2e-tools")
        self.kubeconfig = work / "kubeconfig"
        self.logs = work / "logs"
        self.procs: dict[str, subprocess.Popen] = {}
        self.audit_log = work / "logs" / "audit.log"

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> "ControlPlane":
        t0 = time.monotonic()
        self.logs.mkdir(parents=True, exist_ok=True)
        self._pki()
        self._spawn("etcd", "--name=n0", f"--data-dir={self.work / 'etcd'}", "--listen-client-urls=http://127.0.0.1:2379",
                    "--advertise-client-urls=http://127.0.0.1:2379", "--listen-peer-urls=http://127.0.0.1:2380",
                    "--initial-advertise-peer-urls=http://127.0.0.1:2380", "--initial-cluster=n0=http://127.0.0.1:2380",
                    "--unsafe-no-fsync=true", "--auto-compaction-retention=1", "--listen-metrics-urls=http://127.0.0.1:2381")
        pki = self.work / "pki"
        (self.work / "audit-policy.yaml").write_text(
            "apiVersion: audit.k8s.io/v1\nkind: Policy\nomitStages: [RequestReceived]\nrules:\n- level: Metadata\n")
        self._spawn("kube-apiserver", "--etcd-servers=http://127.0.0.1:2379", "--bind-address=127.0.0.1", "--secure-port=6443",
                    "--advertise-address=127.0.0.1", "--endpoint-reconciler-type=none", "--allow-privileged=true",
                    f"--tls-cert-file={pki / 'apiserver.crt'}", f"--tls-private-key-file={pki / 'apiserver.key'}",
                    f"--client-ca-file={pki / 'ca.crt'}", f"--token-auth-file={pki / 'tokens.csv'}",
                    "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                    f"--service-account-key-file={pki / 'sa.pub'}", f"--service-account-signing-key-file={pki / 'sa.key'}",
                    "--service-cluster-ip-range=10.96.0.0/16", "--authorization-mode=RBAC", "--kubelet-preferred-address-types=InternalIP",
                    "--enable-priority-and-fairness=false",
                    f"--audit-policy-file={self.work / 'audit-policy.yaml'}", f"--audit-log-path={self.audit_log}", "--audit-log-format=json")
        self._wait_ready(60)
        self.apiserver_ready_s = time.monotonic() - t0
        self._kubeconfig()
        aa = "--authorization-always-allow-paths=/healthz,/readyz,/livez,/metrics"
        self._spawn("kube-controller-manager", f"--kubeconfig={self.kubeconfig}", "--leader-elect=false", "--bind-address=127.0.0.1",
                    "--secure-port=10257", aa, f"--service-account-private-key-file={pki / 'sa.key'}", f"--root-ca-file={pki / 'ca.crt'}",
                    "--use-service-account-credentials=true", "--controllers=*,-nodeipam")
        self._spawn("kube-scheduler", f"--kubeconfig={self.kubeconfig}", "--leader-elect=false", "--bind-address=127.0.0.1",
                    "--secure-port=10259", aa)
        self.start_kwok()
        self._install_crds()
        self.started_s = time.monotonic() - t0
        return self

    def start_kwok(self) -> None:
        self._spawn("kwok", f"--kubeconfig={self.kubeconfig}", f"--config={self.bin / 'kwok-stages.yaml'}", "--manage-all-nodes=true",
                    "--node-ip=127.0.0.1", "--cidr=10.244.0.0/16", "--node-lease-duration-seconds=40",
                    "--server-address=127.0.0.1:10247", "--node-port=10247")

    def stop_process(self, name: str) -> None:
        proc = self.procs.pop(name, None)
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)

    def stop(self) -> None:
        for name in reversed(list(self.procs)):  # newest first: kwok and the controllers before the API server and etcd
            self.stop_process(name)

    def check_alive(self) -> None:
        dead = {n: p.returncode for n, p in self.procs.items() if p.poll() is not None}
        if dead:
            tails = "".join(f"\n--- {n} exited {rc}; last log lines:\n{self._tail(n)}" for n, rc in dead.items())
            raise E2EError(f"control plane process died: {', '.join(dead)}{tails}")

    # -- helpers ------------------------------------------------------------------------------

    def env(self, **extra: str) -> dict[str, str]:
        """Environment for llmdctl and the tools: this cluster, this toolchain, private helm homes."""
        env = {k: v for k, v in os.environ.items() if k not in ("NAMESPACE", "RELEASE_NAME_POSTFIX")}
        env.update({
            "PATH": f"{self.bin}{os.pathsep}{env.get('PATH', '')}", "KUBECONFIG": str(self.kubeconfig),
            "HELM_CACHE_HOME": str(self.work / "helm" / "cache"), "HELM_CONFIG_HOME": str(self.work / "helm" / "config"),
            "HELM_DATA_HOME": str(self.work / "helm" / "data"), "LLMDCTL_STATE_DIR": str(self.work / "state"),
            "PYTHONPATH": str(REPO), "HOME": str(self.work / "home"),
            # the helmfile-era scenarios target v0.6.0; the router-generation ones pass --llmd-version
            "LLMD_VERSION": "v0.6.0",
        })
        env.update(extra)
        return env

    def kubectl(self, *args: str, input: str | None = None, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
        proc = subprocess.run([str(self.bin / "kubectl"), *args], env=self.env(), input=input, capture_output=True, text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise E2EError(f"kubectl {' '.join(args)} exited {proc.returncode}: {proc.stderr.strip()}")
        return proc

    def get_json(self, *args: str) -> dict:
        return json.loads(self.kubectl("get", *args, "-o", "json").stdout)

    def apply_objects(self, docs: list[dict]) -> None:
        self.kubectl("apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": docs}))

    def add_gpu_nodes(self, prefix: str, count: int, resources: dict[str, str], labels: dict[str, str] | None = None) -> list[str]:
        """kwok nodes with the given extended resources (nvidia.com/gpu: 8, rdma/ib: 8, ...)."""
        names = [f"{prefix}-{i}" for i in range(count)]
        capacity = {"cpu": "128", "memory": "2Ti", "pods": "110", **resources}
        self.apply_objects([{
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": n, "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
                         "labels": {"kubernetes.io/hostname": n, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64", "type": "kwok", **(labels or {})}},
            "spec": {}, "status": {"capacity": capacity, "allocatable": capacity, "phase": "Running"},
        } for n in names])
        self.wait_condition("node", names, "Ready")
        return names

    def namespace(self, name: str, hf_secret: str | None = "llm-d-hf-token") -> None:
        self.kubectl("create", "namespace", name)
        if hf_secret:
            # a placeholder, not a token: nothing here ever reaches Hugging Face
            self.kubectl("-n", name, "create", "secret", "generic", hf_secret, "--from-literal=HF_TOKEN=placeholder-not-a-token")
        # the namespace's default ServiceAccount appears asynchronously; charts' pods need it
        deadline = time.monotonic() + 30
        while self.kubectl("-n", name, "get", "serviceaccount", "default", check=False).returncode != 0:
            if time.monotonic() > deadline:
                raise E2EError(f"namespace {name}: no default ServiceAccount after 30 s (is kube-controller-manager running?)")
            time.sleep(0.2)

    def audit_lines(self) -> list[dict]:
        if not self.audit_log.exists():
            return []
        return [json.loads(line) for line in self.audit_log.read_text().splitlines() if line.strip()]

    # -- internals ----------------------------------------------------------------------------

    def _spawn(self, name: str, *args: str) -> None:
        log = open(self.logs / f"{name}.log", "wb")
        self.procs[name] = subprocess.Popen([str(self.bin / name), *args], stdout=log, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, start_new_session=True)
        log.close()

    def _tail(self, name: str, lines: int = 15) -> str:
        path = self.logs / f"{name}.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else "(no log)"

    def _pki(self) -> None:
        d = self.work / "pki"
        d.mkdir(parents=True, exist_ok=True)
        _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=llmdctl-e2e-ca", "-keyout", "ca.key", "-out", "ca.crt", cwd=d)
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=kube-apiserver", "-keyout", "apiserver.key", "-out", "apiserver.csr", cwd=d)
        (d / "san.ext").write_text("subjectAltName=IP:127.0.0.1,IP:10.96.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,"
                                   "DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local\nextendedKeyUsage=serverAuth\n")
        _openssl("x509", "-req", "-in", "apiserver.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-days", "2",
                 "-out", "apiserver.crt", "-extfile", "san.ext", cwd=d)
        _openssl("genrsa", "-out", "sa.key", "2048", cwd=d)
        _openssl("rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub", cwd=d)
        (d / "tokens.csv").write_text(f'{TOKEN},e2e-admin,e2e-admin-uid,"system:masters"\n')

    def _kubeconfig(self) -> None:
        import base64

        ca = base64.b64encode((self.work / "pki" / "ca.crt").read_bytes()).decode()
        self.kubeconfig.write_text(json.dumps({
            "apiVersion": "v1", "kind": "Config", "current-context": "e2e",
            "clusters": [{"name": "e2e", "cluster": {"server": "https://127.0.0.1:6443", "certificate-authority-data": ca}}],
            "users": [{"name": "e2e-admin", "user": {"token": TOKEN}}],
            "contexts": [{"name": "e2e", "context": {"cluster": "e2e", "user": "e2e-admin"}}],
        }))

    def _wait_ready(self, timeout: float) -> None:
        ctx = ssl.create_default_context(cafile=str(self.work / "pki" / "ca.crt"))
        deadline = time.monotonic() + timeout
        while True:
            self.check_alive()
            try:
                with urllib.request.urlopen("https://127.0.0.1:6443/readyz", context=ctx, timeout=2) as resp:
                    if resp.status == 200:
                        return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise E2EError(f"kube-apiserver not ready after {timeout:.0f} s:\n{self._tail('kube-apiserver')}")
            time.sleep(0.3)

    def _install_crds(self) -> None:
        src = crd_dir()
        wanted = [src / "gateway-api" / "v1.4.1", src / "gateway-api-inference-extension" / "v1.4.0",
                  src / "prometheus-operator" / "v0.93.0", src / "istio" / "1.29.1"]
        missing = [str(p) for p in wanted if not p.is_dir()]
        if missing:
            raise E2EError(f"CRDs not found: {', '.join(missing)} (set LLMDCTL_E2E_CRDS to the folder of unmodified upstream CRDs)")
        for p in wanted:
            self.kubectl("apply", "--server-side", "-f", str(p), timeout=120)
        self.wait_established()

    def wait_established(self, *crds: str, timeout: float = 60) -> None:
        """Wait until every named CRD (all of them when none is named) is Established."""
        self.wait_condition("crd", crds, "Established", timeout)

    def wait_condition(self, resource: str, names: tuple[str, ...] | list[str], condition: str, timeout: float = 60) -> None:
        """Wait until every named object (all of ``resource`` when none is named) has ``condition``=True.

        Polls instead of ``kubectl wait --for=condition=...``: that errors out
        (".status.conditions accessor error: <nil>") when it reads an object the apiserver has
        stored but nobody has given a condition yet, which is the moment right after an apply."""
        deadline = time.monotonic() + timeout
        while True:
            r = self.kubectl("get", resource, *names, "-o", "json", check=False)
            pending = list(names) if r.returncode else []
            if not r.returncode:
                doc = json.loads(r.stdout)
                for item in doc["items"] if "items" in doc else [doc]:
                    conds = (item.get("status") or {}).get("conditions") or []
                    if not any(c.get("type") == condition and c.get("status") == "True" for c in conds):
                        pending.append(item["metadata"]["name"])
            if not pending:
                return
            if time.monotonic() > deadline:
                raise E2EError(f"{resource} not {condition} after {timeout:.0f} s: {', '.join(sorted(pending))}")
            time.sleep(0.2)


class SlowAdmission:
    """A validating admission webhook on loopback that holds every Deployment create in one
    namespace for ``seconds`` before allowing it: a slow API server, so a signal reliably lands
    while helm is in the middle of an install (without it the install is over in milliseconds)."""

    def __init__(self, cp: ControlPlane, namespace: str, seconds: float):
        self.cp, self.namespace, self.seconds = cp, namespace, seconds
        self.name = f"llmdctl-e2e-slow-{namespace}"

    def __enter__(self) -> "SlowAdmission":
        import base64
        import http.server
        import threading

        delay = self.seconds

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - the http.server API
                review = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                time.sleep(delay)
                body = json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                                   "response": {"uid": review["request"]["uid"], "allowed": True}}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        pki = self.cp.work / "pki"
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(pki / "apiserver.crt"), str(pki / "apiserver.key"))  # its SAN is 127.0.0.1
        self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        port = self.server.server_address[1]
        self.cp.apply_objects([{
            "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration", "metadata": {"name": self.name},
            "webhooks": [{
                "name": "slow.e2e.llmdctl.dev", "admissionReviewVersions": ["v1"], "sideEffects": "None", "failurePolicy": "Ignore",
                "timeoutSeconds": int(self.seconds) + 5,
                "clientConfig": {"url": f"https://127.0.0.1:{port}/", "caBundle": base64.b64encode((pki / "ca.crt").read_bytes()).decode()},
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": self.namespace}},
                "rules": [{"apiGroups": ["apps"], "apiVersions": ["v1"], "operations": ["CREATE"], "resources": ["deployments"]}],
            }],
        }])
        return self

    def __exit__(self, *exc) -> None:
        self.cp.kubectl("delete", "validatingwebhookconfiguration", self.name, "--ignore-not-found")
        self.server.shutdown()


def start_standin(cp: ControlPlane, script: str, *args: str) -> subprocess.Popen:
    """A stand-in controller (gateway_standin.py, lws_standin.py) against this control plane; its log
    beside the components' logs."""
    log = open(cp.logs / f"{Path(script).stem}.log", "ab")
    proc = subprocess.Popen([sys.executable, str(Path(__file__).parent / script), str(cp.kubeconfig), *args],
                            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=cp.env(), start_new_session=True)
    log.close()
    return proc


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
