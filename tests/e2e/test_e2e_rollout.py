"""issue 26 (first part): a change to a running stack on the real control plane with its GPUs all in
use: the image bump rolls in place (the old pod goes first) and completes, a TP change that cannot
fit is refused before anything changes, and with spare GPUs the same bump surges with no moment
without a ready decode pod; rollback then returns it to the revision before. Router generation (llm-d v0.9.0)."""

from __future__ import annotations

import json
import threading
import time

import pytest

from .harness import measured
from .test_e2e_lifecycle import left_only_user_objects

pytestmark = pytest.mark.e2e

V = ("--llmd-version", "v0.9.0")
IMAGE = "ghcr.io/llm-d/llm-d-cuda:v0.9.0-rollout-{}"



def free_gpus(cp) -> int:
    total = sum(int((n["status"].get("allocatable") or {}).get("nvidia.com/gpu", 0)) for n in cp.get_json("nodes")["items"])
    used = sum(int(((c.get("resources") or {}).get("limits") or {}).get("nvidia.com/gpu", 0))
               for p in cp.get_json("pods", "-A")["items"] if p["spec"].get("nodeName") and p["status"].get("phase") not in ("Succeeded", "Failed")
               for c in p["spec"]["containers"])
    return total - used


def fill_gpus(e2e, count: int) -> None:
    """Another team's pods holding one GPU each: the cluster's GPUs all in use."""
    cp = e2e.cp
    cp.kubectl("create", "namespace", "other-team", check=False)
    cp.apply_objects([{"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "filler", "namespace": "other-team"},
                       "spec": {"replicas": count, "selector": {"matchLabels": {"app": "filler"}},
                                "template": {"metadata": {"labels": {"app": "filler"}}, "spec": {"containers": [
                                    {"name": "x", "image": "example.com/batch:1", "resources": {"limits": {"nvidia.com/gpu": "1"}}}]}}}}])
    e2e.wait_for("the filler pods to run", lambda: cp.get_json("deployment", "filler", "-n", "other-team").get("status", {}).get("readyReplicas") == count,
                 timeout=120, interval=1)


def decode_pods(e2e, ns: str) -> list[dict]:
    return e2e.cp.get_json("pods", "-n", ns, "-l", "llm-d.ai/role=decode")["items"]


def test_an_image_bump_with_every_gpu_in_use_rolls_in_place_a_tp_change_is_refused_and_spare_gpus_surge(gaie_v15):
    e2e = gaie_v15
    cp, ns = e2e.cp, "llm-d-roll"
    cp.namespace(ns)
    stack = (*V, "-n", ns, "--prefill", "1xTP1", "--decode", "1xTP4")
    r = e2e.llmdctl("apply", "-y", *stack, "--wait", "--timeout", "3m", timeout=400)
    assert r.code == 0, r
    fill_gpus(e2e, free_gpus(cp))
    assert free_gpus(cp) == 0

    # the image bump: no room for a new decode pod beside the old one, so it rolls in place
    bump = ("--set", f"ms.decode.containers[vllm].image={IMAGE.format(1)}")
    r = e2e.llmdctl("apply", "-y", *stack, *bump, "--wait", "--timeout", "3m", timeout=400)
    assert r.code == 0, r
    assert "rollout: decode Deployment ms-pd-decode: vllm image" in r.err and "-> in-place" in r.err, r.err
    measured("image bump, GPUs full: " + next(line for line in r.err.splitlines() if line.startswith("rollout: decode")))
    assert "rollout: prefill Deployment ms-pd-prefill: no change -> unchanged" in r.err, r.err
    strategy = cp.get_json("deployment", "ms-pd-decode", "-n", ns)["spec"]["strategy"]
    assert strategy == {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}}, strategy
    e2e.wait_for("the old decode pod to go", lambda: len(decode_pods(e2e, ns)) == 1, timeout=60)
    [pod] = decode_pods(e2e, ns)
    assert pod["status"]["phase"] == "Running" and pod["spec"]["containers"][0]["image"] == IMAGE.format(1), pod["spec"]["containers"][0]["image"]
    assert e2e.llmdctl("verify", *stack, *bump).code == 0

    # forcing a surge on full GPUs would stall Pending forever: refused up front, naming the role
    r = e2e.llmdctl("apply", "-y", *stack, "--set", f"ms.decode.containers[vllm].image={IMAGE.format(9)}", "--rollout", "surge")
    assert r.code == 1 and "--rollout surge cannot finish" in r.err and "nothing was applied" in r.err, r

    # TP4 -> TP8: no node has 8 free GPUs, not even with the old pod gone; refused before anything changes
    revision = json.loads(e2e.helm("history", "ms-pd", "-n", ns, "-o", "json").stdout)[-1]["revision"]
    r = e2e.llmdctl("apply", "-y", *V, "-n", ns, "--prefill", "1xTP1", "--decode", "1xTP8", *bump)
    assert r.code == 1 and "nothing was applied" in r.err, r
    measured("TP4 -> TP8, GPUs full: " + " | ".join(line.strip() for line in r.err.splitlines() if "decode" in line)[:300])
    assert json.loads(e2e.helm("history", "ms-pd", "-n", ns, "-o", "json").stdout)[-1]["revision"] == revision

    # with spare GPUs the next bump surges: a ready decode pod at every moment
    cp.kubectl("delete", "deployment", "filler", "-n", "other-team", "--wait=true")
    e2e.wait_for("the filler pods to go", lambda: not cp.get_json("pods", "-n", "other-team")["items"], timeout=60)
    seen, stop = [], threading.Event()

    def watch():
        while not stop.is_set():
            status = cp.get_json("deployment", "ms-pd-decode", "-n", ns).get("status") or {}
            seen.append(status.get("availableReplicas", 0))
            time.sleep(0.1)
    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    bump2 = ("--set", f"ms.decode.containers[vllm].image={IMAGE.format(2)}")
    try:
        r = e2e.llmdctl("apply", "-y", *stack, *bump2, "--wait", "--timeout", "3m", timeout=400)
        e2e.wait_for("the surge to finish", lambda: [p["spec"]["containers"][0]["image"] for p in decode_pods(e2e, ns)] == [IMAGE.format(2)], timeout=60)
    finally:
        stop.set()
        watcher.join()
    assert r.code == 0 and "-> surge" in r.err, r.err
    assert seen and min(seen) >= 1, seen
    measured(f"image bump with spare GPUs: surge, decode availableReplicas over {len(seen)} reads: min {min(seen)}, max {max(seen)}")
    assert cp.get_json("deployment", "ms-pd-decode", "-n", ns)["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": 0}

    # the API server took the drain settings as written: preStop sleep, vLLM's drain, the grace period over both
    spec = cp.get_json("deployment", "ms-pd-decode", "-n", ns)["spec"]["template"]["spec"]
    vllm = next(c for c in spec["containers"] if c["name"] == "vllm")
    assert vllm["lifecycle"] == {"preStop": {"sleep": {"seconds": 15}}} and "--shutdown-timeout=60" in vllm["args"], vllm
    assert spec["terminationGracePeriodSeconds"] == 90

    # undo: back to the revision before (the first bump's image), every release through apply's own path
    history = json.loads(e2e.helm("history", "ms-pd", "-n", ns, "-o", "json").stdout)
    r = e2e.llmdctl("rollback", "-y", "-n", ns, "--postfix", "pd", "--wait", "--timeout", "3m", timeout=400)
    assert r.code == 0 and "to revision 2" in r.err and "rollout: decode Deployment ms-pd-decode: vllm image" in r.err, r
    e2e.wait_for("the rollback to finish", lambda: [p["spec"]["containers"][0]["image"] for p in decode_pods(e2e, ns)] == [IMAGE.format(1)], timeout=60)
    assert json.loads(e2e.helm("history", "ms-pd", "-n", ns, "-o", "json").stdout)[-1]["revision"] == history[-1]["revision"] + 1
    assert e2e.llmdctl("verify", *stack, *bump).code == 0
    doc = e2e.llmdctl("status", "-n", ns, "--postfix", "pd", "-o", "json").json()
    assert [(x["revision"], x["source"]) for x in doc["revisions"]] == [(1, "apply"), (2, "apply"), (3, "apply"), (4, "rollback to 2")], doc
    measured("rollback: " + next(line for line in r.err.splitlines() if line.startswith("rollback:")))

    assert e2e.llmdctl("destroy", "-y", "-n", ns).code == 0
    left_only_user_objects(e2e, ns)


SMALL = ("--prefill", "1xTP1", "--decode", "1xTP1")


def pool_weights(cp, ns: str, route: str) -> dict[str, int] | None:
    """InferencePool backend -> weight of the route's rules (None once the route is gone)."""
    text = cp.kubectl("get", "httproute", route, "-n", ns, "--ignore-not-found", "-o", "json").stdout.strip()
    if not text:
        return None
    obj = json.loads(text)
    return {b["name"]: b.get("weight", 1) for rule in obj["spec"]["rules"] for b in rule.get("backendRefs") or [] if b.get("kind") == "InferencePool"}


def test_a_v06_istio_stack_moves_to_v09_blue_green_and_a_failure_midway_leaves_it_serving(gaie_v15):
    """issue 26 item 6: the generation move at the Gateway. The v0.6.0 stack's route sends a share of
    the requests to the v0.9.0 stack's pool per step; a new stack that breaks mid-way puts every
    request back on the old one; a clean run ends with the old route and releases gone but the
    Gateway's, which the new stack routes through."""
    e2e = gaie_v15
    cp, ns = e2e.cp, "llm-d-move"
    cp.namespace(ns)
    blue = ("-e", "istio", "-n", ns, "--llmd-version", "v0.6.0", *SMALL)
    r = e2e.llmdctl("apply", "-y", *blue, "--wait", "--timeout", "3m", timeout=400)
    assert r.code == 0, r
    assert pool_weights(cp, ns, "llm-d-pd") == {"gaie-pd": 1}
    green = ("--from", "pd", "-e", "istio", "-n", ns, *V, "--postfix", "pd-v09", *SMALL)

    # the plan, without touching anything
    r = e2e.llmdctl("migrate", *green, "--steps", "50,100", "--dry-run")
    assert r.code == 0 and "HTTPRoute llm-d-pd: 50% to InferencePool router-pd-v09, 50% to gaie-pd" in r.out, r
    assert "keep infra-pd (Gateway llm-d-move/infra-pd-inference-gateway)" in r.out, r.out
    assert set(e2e.releases(ns)) == {"infra-pd", "gaie-pd", "ms-pd"}

    # a failure mid-way: the new stack loses its pool while it takes half the requests
    proc = e2e.popen("migrate", *green, "--steps", "50,100", "--pause", "60s", "--timeout", "3m", "-y")
    try:
        e2e.wait_for("half the requests on the new stack", lambda: pool_weights(cp, ns, "llm-d-pd") == {"gaie-pd": 50, "router-pd-v09": 50},
                     timeout=300, interval=0.5)
        cp.kubectl("delete", "inferencepool", "router-pd-v09", "-n", ns)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 1 and "failed at 50%" in err and "InferencePool" in err and "back on pd" in err, err[-2000:]
    assert "Traceback" not in err
    measured("blue/green failure mid-way: " + next(line for line in err.splitlines() if "failed at 50%" in line)[:300])
    assert pool_weights(cp, ns, "llm-d-pd") == {"gaie-pd": 1}  # the old route exactly as it was
    assert {k: v for k, v in e2e.releases(ns).items() if k.endswith("-pd")} == {"infra-pd": "deployed", "gaie-pd": "deployed", "ms-pd": "deployed"}
    assert e2e.llmdctl("verify", *blue).code == 0
    assert e2e.llmdctl("destroy", "-y", "-n", ns, "--postfix", "pd-v09").code == 0

    # a clean run: each step's weights seen on the route, then the old stack retired but its Gateway
    seen, stop = [], threading.Event()

    def watch():
        while not stop.is_set():
            w = pool_weights(cp, ns, "llm-d-pd")
            if not seen or seen[-1] != w:
                seen.append(w)
            time.sleep(0.2)
    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        r = e2e.llmdctl("migrate", *green, "--steps", "50,100", "--pause", "3s", "--timeout", "3m", "-y", timeout=500)
    finally:
        stop.set()
        watcher.join()
    assert r.code == 0, r
    assert "next: llmdctl verify" in r.err and "/infra-pd-inference-gateway --no-route-by-model" in r.err, r
    assert seen[0] == {"gaie-pd": 1} and {"gaie-pd": 50, "router-pd-v09": 50} in seen and {"gaie-pd": 0, "router-pd-v09": 100} in seen, seen
    assert seen[-1] is None, seen  # the old route is gone at the end
    measured(f"blue/green v0.6.0 -> v0.9.0: route backends over the run: {seen}")
    assert e2e.releases(ns) == {"infra-pd": "deployed", "router-pd-v09": "deployed", "ms-pd-v09": "deployed"}
    route = cp.get_json("httproute", "router-pd-v09", "-n", ns)
    assert [p["name"] for p in route["spec"]["parentRefs"]] == ["infra-pd-inference-gateway"]
    assert "headers" not in (route["spec"]["rules"][0].get("matches") or [{}])[0]  # the same requests the old route took
    assert e2e.llmdctl("verify", "-e", "istio", "-n", ns, *V, "--postfix", "pd-v09", "--attach-gateway", "infra-pd-inference-gateway", "--no-route-by-model", *SMALL).code == 0

    # the Gateway stays while the new stack routes through it; the new stack, then it, go cleanly
    r = e2e.llmdctl("destroy", "-y", "-n", ns, "--postfix", "pd")
    assert r.code == 1 and "router-pd-v09" in r.err, r
    assert e2e.llmdctl("destroy", "-y", "-n", ns, "--postfix", "pd-v09").code == 0
    assert e2e.llmdctl("destroy", "-y", "-n", ns, "--postfix", "pd").code == 0
    left_only_user_objects(e2e, ns)


def test_the_decode_sidecar_may_read_its_own_pool_and_pods_and_nothing_more(gaie_v15):
    """issue 27 item 5: the sidecar is not running here, so the wiring is proven: its SSRF flags as
    the API server stored them, and what its ServiceAccount may do, asked as that account."""
    e2e = gaie_v15
    cp, ns = e2e.cp, "llm-d-sec"
    cp.namespace(ns)
    r = e2e.llmdctl("apply", "-y", *V, "-n", ns, *SMALL, "--wait", "--timeout", "3m", timeout=400)
    assert r.code == 0, r
    spec = cp.get_json("deployment", "ms-pd-decode", "-n", ns)["spec"]["template"]["spec"]
    sidecar = next(c for c in spec["initContainers"] if c["name"] == "routing-proxy")
    assert "--enable-ssrf-protection=true" in sidecar["args"] and "--inference-pool=$(POD_NAMESPACE)/router-pd" in sidecar["args"]
    [pod] = cp.get_json("pods", "-n", ns, "-l", "llm-d.ai/role=decode")["items"]
    assert any(v["name"] == "sidecar-api-access" and "projected" in v for v in pod["spec"]["volumes"])
    assert not any(m["mountPath"].startswith("/var/run/secrets/kubernetes.io") for c in pod["spec"]["containers"] for m in c.get("volumeMounts") or [])

    account = f"system:serviceaccount:{ns}:ms-pd"

    def may(*args: str) -> str:
        return cp.kubectl("auth", "can-i", *args, "--as", account, check=False).stdout.strip()
    pool = "inferencepools.inference.networking.k8s.io"
    allowed = [("get", f"{pool}/router-pd"), ("list", f"{pool}/router-pd"), ("watch", f"{pool}/router-pd"),
               ("get", "pods"), ("list", "pods"), ("watch", "pods")]
    refused = [("list", pool), ("get", f"{pool}/router-other"), ("update", f"{pool}/router-pd"), ("create", "pods"), ("delete", "pods"),
               ("get", "secrets"), ("list", "secrets"), ("list", "pods", "-n", "default"), ("list", "nodes"), ("get", "configmaps")]
    answers = {" ".join(a): may(*a, *([] if "-n" in a else ["-n", ns])) for a in allowed + refused}
    assert [a for a in allowed if answers[" ".join(a)] != "yes"] == [], answers
    assert [a for a in refused if answers[" ".join(a)] != "no"] == [], answers
    measured(f"sidecar ServiceAccount: {len(allowed)} reads allowed, {len(refused)} other requests refused (kubectl auth can-i --as)")
    assert e2e.llmdctl("destroy", "-y", "-n", ns).code == 0
    left_only_user_objects(e2e, ns)
