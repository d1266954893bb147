"""Stand-in for the LeaderWorkerSet controller (sigs.k8s.io/lws), which cannot run here (it ships as
an image, and its webhooks need serving certificates). It does what the real controller does that
llmdctl reads, nothing more: for a LeaderWorkerSet of ``replicas`` groups of ``size`` pods it
creates each group's leader ``<name>-<group>`` and workers ``<name>-<group>-<index>`` from the
templates, with LWS's labels (name, group-index, worker-index) and environment (LWS_LEADER_ADDRESS,
LWS_GROUP_SIZE, LWS_WORKER_INDEX), a headless Service named after the set, and writes
``status.replicas`` / ``readyReplicas`` (a group is ready when all its pods are). Groups beyond
``replicas`` are deleted. Everything it creates is owned by the set, so the real garbage collector
removes it when helm deletes the set; the real scheduler places the pods, kwok runs them, and a
group that does not fit stays Pending, as with the real controller.

Run: python lws_standin.py KUBECONFIG
"""

from __future__ import annotations

import copy
import sys
import time

from kubernetes import client, config

LWS = ("leaderworkerset.x-k8s.io", "v1")
PREFIX = "leaderworkerset.sigs.k8s.io/"
NAME, GROUP, WORKER = PREFIX + "name", PREFIX + "group-index", PREFIX + "worker-index"


def _owner(lws: dict) -> list[dict]:
    meta = lws["metadata"]
    return [{"apiVersion": "/".join(LWS), "kind": "LeaderWorkerSet", "name": meta["name"], "uid": meta["uid"],
             "controller": True, "blockOwnerDeletion": True}]


def _pod(lws: dict, group: int, worker: int) -> dict:
    meta, spec = lws["metadata"], lws["spec"]
    lwt = spec["leaderWorkerTemplate"]
    template = copy.deepcopy(lwt.get("leaderTemplate") if worker == 0 and lwt.get("leaderTemplate") else lwt["workerTemplate"])
    leader = f"{meta['name']}-{group}"
    name = leader if worker == 0 else f"{leader}-{worker}"
    env = [{"name": "LWS_LEADER_ADDRESS", "value": f"{leader}.{meta['name']}.{meta['namespace']}"},
           {"name": "LWS_GROUP_SIZE", "value": str(lwt.get("size", 1))}, {"name": "LWS_WORKER_INDEX", "value": str(worker)}]
    pod_spec = template["spec"]
    for c in [*(pod_spec.get("containers") or []), *(pod_spec.get("initContainers") or [])]:
        if c in (pod_spec.get("containers") or []):
            c["env"] = [*(c.get("env") or []), *env]
        for kind in ("limits", "requests"):  # a custom object's int-or-string quantity; a Pod's is a string
            res = (c.get("resources") or {}).get(kind)
            if res:
                c["resources"][kind] = {k: str(v) for k, v in res.items()}
    pod_spec.update(hostname=name, subdomain=meta["name"])
    tmeta = template.get("metadata") or {}
    return {"apiVersion": "v1", "kind": "Pod", "spec": pod_spec, "metadata": {
        "name": name, "namespace": meta["namespace"], "annotations": dict(tmeta.get("annotations") or {}), "ownerReferences": _owner(lws),
        "labels": {**(tmeta.get("labels") or {}), NAME: meta["name"], GROUP: str(group), WORKER: str(worker)}}}


def _ready(pod) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in (pod.status.conditions or [])) if pod.status else False


def reconcile(custom: client.CustomObjectsApi, core: client.CoreV1Api) -> None:
    for lws in custom.list_cluster_custom_object(*LWS, "leaderworkersets")["items"]:
        meta, spec = lws["metadata"], lws["spec"]
        if meta.get("deletionTimestamp"):
            continue
        ns, name = meta["namespace"], meta["name"]
        replicas, size = int(spec.get("replicas", 1)), int(spec["leaderWorkerTemplate"].get("size", 1))
        try:
            core.read_namespaced_service(name, ns)
        except client.ApiException as exc:
            if exc.status != 404:
                raise
            core.create_namespaced_service(ns, {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "ownerReferences": _owner(lws)},
                                                "spec": {"clusterIP": "None", "publishNotReadyAddresses": True, "selector": {NAME: name}}})
        pods = {p.metadata.name: p for p in core.list_namespaced_pod(ns, label_selector=f"{NAME}={name}").items}
        want = {(f"{name}-{g}" if w == 0 else f"{name}-{g}-{w}"): (g, w) for g in range(replicas) for w in range(size)}
        for pod_name, (g, w) in sorted(want.items()):
            if pod_name not in pods:
                core.create_namespaced_pod(ns, _pod(lws, g, w))
        for pod_name in sorted(set(pods) - set(want)):
            core.delete_namespaced_pod(pod_name, ns)
        ready = sum(all(p in pods and _ready(pods[p]) for p in want if want[p][0] == g) for g in range(replicas))
        status = lws.get("status") or {}
        if (status.get("replicas"), status.get("readyReplicas")) != (replicas, ready):
            custom.patch_namespaced_custom_object_status(*LWS, ns, "leaderworkersets", name, {"status": {"replicas": replicas, "readyReplicas": ready}})


def main() -> None:
    config.load_kube_config(config_file=sys.argv[1])
    custom, core = client.CustomObjectsApi(), client.CoreV1Api()
    while True:
        try:
            reconcile(custom, core)
        except client.ApiException as exc:  # no CRD yet (404), a conflict, a deleted object: the next pass sees the new state
            if exc.status not in (404, 409):
                print(f"lws stand-in: {exc.status} {exc.reason}: {exc.body}", file=sys.stderr, flush=True)
        except Exception as exc:  # noqa: BLE001 - logged, and retried: a stand-in that dies makes every wait time out unexplained
            print(f"lws stand-in: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
        time.sleep(0.3)


if __name__ == "__main__":
    main()
