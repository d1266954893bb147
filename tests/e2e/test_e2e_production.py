"""issue 25: the conditions every production GPU cluster has, set up in the real control plane
(kube-apiserver's own PodSecurity and ResourceQuota admission, the real scheduler and taints, a
validating webhook on loopback). For each: doctor fails naming the cause in the API server's words
with the fix, apply refuses before any release changes, an apply forced through leaves verify
naming the cause, and after the fix apply and verify pass. The admission dry-run stores nothing.
"""

from __future__ import annotations

import base64
import contextlib
import http.server
import json
import ssl
import threading
import time

import pytest

from .harness import measured
from .test_e2e_lifecycle import SMALL, left_only_user_objects, plan_of

pytestmark = pytest.mark.e2e


def deployment(ns: str, role: str) -> str:
    return plan_of(namespace=ns, prefill="1xTP1", decode="1xTP1").roles[role].deployment


def checks_of(run) -> dict[str, dict]:
    return {c["name"]: c for c in run.json()["checks"]}


def failing(run) -> dict[str, dict]:
    return {n: c for n, c in checks_of(run).items() if c["status"] == "fail"}


def no_pods_or_releases(e2e, ns: str) -> None:
    assert e2e.releases(ns) == {}, e2e.releases(ns)
    assert e2e.cp.get_json("pods,replicasets,deployments", "-n", ns)["items"] == []


def refused_before_anything_changed(e2e, ns: str, *args: str, expect: str):
    r = e2e.llmdctl("apply", "-y", "-n", ns, *SMALL, *args)
    assert r.code == 1 and "nothing was applied" in r.err and expect in r.err, r
    no_pods_or_releases(e2e, ns)
    return r


def destroyed(e2e, ns: str) -> None:
    assert e2e.llmdctl("destroy", "-y", "-n", ns).code == 0
    left_only_user_objects(e2e, ns)


def test_podsecurity_baseline(e2e):
    cp, ns = e2e.cp, "llm-d-psa"
    cp.namespace(ns)
    cp.kubectl("label", "namespace", ns, "pod-security.kubernetes.io/enforce=baseline")

    t0 = time.monotonic()
    r = e2e.llmdctl("doctor", "-n", ns, *SMALL, "-o", "json")
    measured(f"doctor with the admission dry-run (PodSecurity baseline): {time.monotonic() - t0:.2f} s")
    assert r.code == 1, r
    bad = failing(r)
    for role in ("prefill", "decode"):
        name = f"admission Deployment {deployment(ns, role)}"
        assert name in bad, {n: (c["status"], c["observed"][:80]) for n, c in checks_of(r).items()}
        check = bad[name]
        # the API server's own words, then the fix: a namespace label or dropping the capability
        assert 'violates PodSecurity baseline:latest: non-default capabilities' in check["observed"] and "IPC_LOCK" in check["observed"], check
        assert f"kubectl label namespace {ns} pod-security.kubernetes.io/enforce=privileged" in check["hint"], check
        assert "--rdma-resource none" in check["hint"]
    assert checks_of(r)["admission Deployment gaie-pd-epp"]["status"] == "pass"  # the EPP is fine under baseline
    level = bad["Pod Security level"]  # what the profile needs, said before any pod is judged
    assert f"{ns} enforces baseline; the stack needs privileged" in level["observed"] and "IPC_LOCK" in level["observed"], level
    no_pods_or_releases(e2e, ns)  # the dry-run stored nothing

    refused_before_anything_changed(e2e, ns, expect="PodSecurity")

    # forced through: the releases install, the pods are never created, and both apply and verify say why
    r = e2e.llmdctl("apply", "-y", "--force", "-n", ns, *SMALL)
    assert r.code == 1 and "the cluster refuses their pods" in r.err and "IPC_LOCK" in r.err and "applied stack" not in r.err, r
    v = e2e.llmdctl("verify", "-n", ns, *SMALL)
    assert v.code == 1 and "the API server refuses them (PodSecurity)" in v.out and "enforce=privileged" in v.out, v

    destroyed(e2e, ns)

    # issue 27: hardware without RDMA needs no more than baseline. gke-no-rdma's pods pass the API
    # server's own PodSecurity check as they are; nvidia-ib without its NICs drops IPC_LOCK and runs
    r = e2e.llmdctl("doctor", "-n", ns, *SMALL, "-e", "gke-no-rdma", "-o", "json")
    checks = checks_of(r)
    for role in ("prefill", "decode"):
        assert checks[f"admission Deployment {deployment(ns, role)}"]["status"] == "pass", checks
    assert checks["Pod Security level"]["status"] == "pass" and "needs baseline" in checks["Pod Security level"]["observed"]
    r = e2e.llmdctl("apply", "-y", "-n", ns, *SMALL, "--rdma-resource", "none", "--wait", "--timeout", "3m", timeout=400)
    assert r.code == 0 and "fixed V-55" in r.err, r
    assert e2e.llmdctl("verify", "-n", ns, *SMALL, "--rdma-resource", "none").code == 0
    destroyed(e2e, ns)

    cp.kubectl("label", "namespace", ns, "pod-security.kubernetes.io/enforce=privileged", "--overwrite")
    assert e2e.llmdctl("doctor", "-n", ns, *SMALL).code == 0
    r = e2e.llmdctl("apply", "-y", "-n", ns, *SMALL, "--wait", "--timeout", "3m", timeout=400)
    assert r.code == 0, r
    assert e2e.llmdctl("verify", "-n", ns, *SMALL).code == 0
    destroyed(e2e, ns)


@contextlib.contextmanager
def tainted(cp, taint: str):
    nodes = [n["metadata"]["name"] for n in cp.get_json("nodes", "-l", "nvidia.com/gpu.product")["items"]]
    cp.kubectl("taint", "nodes", *nodes, taint)
    try:
        yield nodes
    finally:
        cp.kubectl("taint", "nodes", *nodes, taint.split("=")[0] + ":" + taint.rsplit(":", 1)[1] + "-", check=False)


def test_tainted_gpu_nodes(e2e):
    cp, ns = e2e.cp, "llm-d-taint"
    cp.namespace(ns)
    with tainted(cp, "nvidia.com/gpu=present:NoSchedule"):
        # the vendor's usual GPU taint: the profile tolerates it
        r = e2e.llmdctl("doctor", "-n", ns, *SMALL, "-o", "json")
        assert r.code == 0 and checks_of(r)["capacity nvidia.com/gpu"]["status"] == "pass", r
        with tainted(cp, "dedicated=llm:NoSchedule"):
            r = e2e.llmdctl("doctor", "-n", ns, *SMALL, "-o", "json")
            assert r.code == 1, r
            cap = failing(r)["capacity nvidia.com/gpu"]
            assert "gpu-node-0 (untolerated taint dedicated=llm:NoSchedule" in cap["observed"], cap
            assert "--toleration dedicated=llm:NoSchedule" in cap["hint"] and "shrink" not in cap["hint"], cap

            refused_before_anything_changed(e2e, ns, expect="--toleration dedicated=llm:NoSchedule")

            assert e2e.llmdctl("apply", "-y", "--force", "-n", ns, *SMALL).code == 0

            def named():
                v = e2e.llmdctl("verify", "-n", ns, *SMALL)
                return v if "untolerated" in v.out else None
            v = e2e.wait_for("the scheduler's taint event in verify", named, timeout=60, interval=2)
            assert v.code == 1 and "--toleration dedicated=llm:NoSchedule" in v.out, v.out
            assert "shrink the layout" not in v.out, v.out  # the CPU node's Insufficient is not a full GPU pool

            assert e2e.llmdctl("doctor", "-n", ns, *SMALL, "--toleration", "dedicated=llm:NoSchedule").code == 0
            r = e2e.llmdctl("apply", "-y", "-n", ns, *SMALL, "--toleration", "dedicated=llm:NoSchedule", "--wait", "--timeout", "3m", timeout=400)
            assert r.code == 0, r
            assert e2e.llmdctl("verify", "-n", ns, *SMALL, "--toleration", "dedicated=llm:NoSchedule").code == 0
            destroyed(e2e, ns)


def test_a_gpu_quota(e2e):
    cp, ns = e2e.cp, "llm-d-quota"
    cp.namespace(ns)
    cp.apply_objects([{"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "gpus", "namespace": ns},
                       "spec": {"hard": {"requests.nvidia.com/gpu": "1"}}}])
    e2e.wait_for("the quota's usage", lambda: (cp.get_json("resourcequota", "gpus", "-n", ns).get("status") or {}).get("used"))

    r = e2e.llmdctl("doctor", "-n", ns, *SMALL, "-o", "json")
    assert r.code == 1, r
    quota = failing(r)["ResourceQuota gpus"]
    assert "requests.nvidia.com/gpu 2 needed, 1 hard, 0 used" in quota["observed"] and "kubectl edit resourcequota gpus" in quota["hint"], quota
    # each pod alone fits: the API server admits one at a time
    assert checks_of(r)[f"admission Deployment {deployment(ns, 'decode')}"]["status"] == "pass"

    refused_before_anything_changed(e2e, ns, expect="ResourceQuota gpus")

    r = e2e.llmdctl("apply", "-y", "--force", "-n", ns, *SMALL)
    assert r.code == 1 and "exceeded quota: gpus" in r.err, r
    v = e2e.llmdctl("verify", "-n", ns, *SMALL)
    assert v.code == 1 and "(ResourceQuota)" in v.out and "exceeded quota: gpus" in v.out and "kubectl edit resourcequota gpus" in v.out, v.out

    destroyed(e2e, ns)
    cp.kubectl("patch", "resourcequota", "gpus", "-n", ns, "--type=merge", "-p", json.dumps({"spec": {"hard": {"requests.nvidia.com/gpu": "2"}}}))
    e2e.wait_for("the raised quota", lambda: cp.get_json("resourcequota", "gpus", "-n", ns)["status"]["hard"]["requests.nvidia.com/gpu"] == "2")
    # the quota controller recounts usage after the forced stack's pods are gone
    e2e.wait_for("the quota's usage back to 0", lambda: cp.get_json("resourcequota", "gpus", "-n", ns)["status"].get("used", {}).get("requests.nvidia.com/gpu") == "0")
    assert e2e.llmdctl("doctor", "-n", ns, *SMALL).code == 0
    r = e2e.llmdctl("apply", "-y", "-n", ns, *SMALL, "--wait", "--timeout", "3m", timeout=400)
    assert r.code == 0, r
    assert e2e.llmdctl("verify", "-n", ns, *SMALL).code == 0
    destroyed(e2e, ns)


class DenyVllm:
    """A validating webhook on loopback that refuses, in one namespace, every Pod with a container
    named vllm (a policy engine's "images need approval" rule); sideEffects None, so dry-runs reach it."""

    MESSAGE = "vllm pods need a signed image (policy gpu-images)"

    def __init__(self, cp, namespace: str):
        self.cp, self.namespace, self.name = cp, namespace, f"llmdctl-e2e-deny-vllm-{namespace}"
        self.seen: list[bool] = []  # dryRun flag of each review

    def __enter__(self):
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                review = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                req = review["request"]
                outer.seen.append(bool(req.get("dryRun")))
                names = [c.get("name") for c in (req.get("object") or {}).get("spec", {}).get("containers", [])]
                response = {"uid": req["uid"], "allowed": "vllm" not in names}
                if "vllm" in names:
                    response["status"] = {"code": 403, "message": DenyVllm.MESSAGE}
                body = json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response}).encode()
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
        ctx.load_cert_chain(str(pki / "apiserver.crt"), str(pki / "apiserver.key"))
        self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.cp.apply_objects([{
            "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration", "metadata": {"name": self.name},
            "webhooks": [{
                "name": "deny-vllm.e2e.llmdctl.dev", "admissionReviewVersions": ["v1"], "sideEffects": "None", "failurePolicy": "Fail",
                "timeoutSeconds": 5,
                "clientConfig": {"url": f"https://127.0.0.1:{self.server.server_address[1]}/",
                                 "caBundle": base64.b64encode((pki / "ca.crt").read_bytes()).decode()},
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": self.namespace}},
                "rules": [{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"], "resources": ["pods"]}],
            }],
        }])
        return self

    def __exit__(self, *exc):
        self.cp.kubectl("delete", "validatingwebhookconfiguration", self.name, "--ignore-not-found")
        self.server.shutdown()


def test_a_validating_webhook_that_denies_the_vllm_pod(e2e):
    cp, ns = e2e.cp, "llm-d-webhook"
    cp.namespace(ns)
    with DenyVllm(cp, ns) as hook:
        def asked():
            r = e2e.llmdctl("doctor", "-n", ns, *SMALL, "-o", "json")
            return r if f"admission Deployment {deployment(ns, 'decode')}" in failing(r) else None
        r = e2e.wait_for("the webhook to be in force", asked, timeout=30, interval=1)  # configuration changes reach the API server's cache asynchronously
        check = failing(r)[f"admission Deployment {deployment(ns, 'decode')}"]
        assert check["observed"].startswith('webhook: admission webhook "deny-vllm.e2e.llmdctl.dev" denied the request: ' + DenyVllm.MESSAGE), check
        assert "deny-vllm.e2e.llmdctl.dev" in check["hint"]
        assert checks_of(r)["admission Deployment gaie-pd-epp"]["status"] == "pass"
        assert hook.seen and all(hook.seen), hook.seen  # every review the webhook saw was a dry-run
        refused_before_anything_changed(e2e, ns, expect=DenyVllm.MESSAGE)
    e2e.wait_for("the webhook to be gone", lambda: e2e.llmdctl("doctor", "-n", ns, *SMALL).code == 0, timeout=30, interval=1)
    no_pods_or_releases(e2e, ns)
