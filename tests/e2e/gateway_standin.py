"""Stand-in for a gateway controller (istio, kgateway, ...), the one part of the e2e cluster that
cannot be real here: it writes the status a real controller writes, nothing else.

It accepts GatewayClasses whose controllerName it is told to serve, marks their Gateways
Programmed with an address from the Service CIDR, and marks HTTPRoutes whose parent is such a
Gateway Accepted, with ResolvedRefs True only when each InferencePool backend exists (as a real
controller does). A Gateway of another class is left alone, so "no controller answered" stays
observable. Run: python gateway_standin.py KUBECONFIG CONTROLLER_NAME [CONTROLLER_NAME ...]
"""

from __future__ import annotations

import hashlib
import sys
import time

from kubernetes import client, config

GW = ("gateway.networking.k8s.io", "v1")
POOL = ("inference.networking.k8s.io", "v1")


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _cond(kind: str, status: str, reason: str, generation: int) -> dict:
    return {"type": kind, "status": status, "reason": reason, "message": f"{reason} (e2e gateway stand-in)",
            "lastTransitionTime": _now(), "observedGeneration": generation}


def _same(old: list | None, new: list) -> bool:
    strip = lambda cs: [{k: v for k, v in c.items() if k != "lastTransitionTime"} for c in cs or []]  # noqa: E731
    return strip(old) == strip(new)


def _address(namespace: str, name: str) -> str:
    h = hashlib.sha256(f"{namespace}/{name}".encode()).digest()
    return f"10.96.{h[0]}.{max(h[1], 2)}"  # inside the Service CIDR: never dialled by the tests


def reconcile(api: client.CustomObjectsApi, controllers: set[str]) -> None:
    classes = {}
    for gc in api.list_cluster_custom_object(*GW, "gatewayclasses")["items"]:
        ours = gc["spec"].get("controllerName") in controllers
        classes[gc["metadata"]["name"]] = ours
        if not ours:
            continue
        conds = [_cond("Accepted", "True", "Accepted", gc["metadata"].get("generation", 1))]
        if not _same((gc.get("status") or {}).get("conditions"), conds):
            api.patch_cluster_custom_object_status(*GW, "gatewayclasses", gc["metadata"]["name"], {"status": {"conditions": conds}})
    served: dict[tuple[str, str], set[str]] = {}
    for gw in api.list_cluster_custom_object(*GW, "gateways")["items"]:
        meta = gw["metadata"]
        if not classes.get(gw["spec"].get("gatewayClassName")):
            continue
        # namespaces whose routes a listener admits: "Same" (the default) means the Gateway's own
        served[(meta["namespace"], meta["name"])] = {((lst.get("allowedRoutes") or {}).get("namespaces") or {}).get("from", "Same")
                                                     for lst in gw["spec"].get("listeners") or []}
        gen = meta.get("generation", 1)
        conds = [_cond("Accepted", "True", "Accepted", gen), _cond("Programmed", "True", "Programmed", gen)]
        status = gw.get("status") or {}
        if not _same(status.get("conditions"), conds) or not status.get("addresses"):
            api.patch_namespaced_custom_object_status(*GW, meta["namespace"], "gateways", meta["name"], {"status": {
                "conditions": conds, "addresses": [{"type": "IPAddress", "value": _address(meta["namespace"], meta["name"])}]}})
    for route in api.list_cluster_custom_object(*GW, "httproutes")["items"]:
        meta = route["metadata"]
        ns = meta["namespace"]
        parents = []
        for ref in route["spec"].get("parentRefs") or []:
            if (ref.get("namespace", ns), ref["name"]) not in served:
                continue
            missing = [b["name"] for rule in route["spec"].get("rules") or [] for b in rule.get("backendRefs") or []
                       if b.get("kind") == "InferencePool" and not _pool_exists(api, ns, b["name"])]
            gen = meta.get("generation", 1)
            resolved = _cond("ResolvedRefs", "False", "BackendNotFound", gen) if missing else _cond("ResolvedRefs", "True", "ResolvedRefs", gen)
            admitted = "All" in served[(ref.get("namespace", ns), ref["name"])] or ref.get("namespace", ns) == ns
            accepted = _cond("Accepted", "True", "Accepted", gen) if admitted else _cond("Accepted", "False", "NotAllowedByListeners", gen)
            parents.append({"parentRef": {"group": GW[0], "kind": "Gateway", "name": ref["name"], "namespace": ref.get("namespace", ns)},
                            "controllerName": sorted(controllers)[0], "conditions": [accepted, resolved]})
        old = (route.get("status") or {}).get("parents") or []
        if parents and [(p["parentRef"]["name"], [(c["type"], c["status"]) for c in p["conditions"]]) for p in parents] != \
                [(p.get("parentRef", {}).get("name"), [(c["type"], c["status"]) for c in p.get("conditions", [])]) for p in old]:
            api.patch_namespaced_custom_object_status(*GW, ns, "httproutes", meta["name"], {"status": {"parents": parents}})


def _pool_exists(api: client.CustomObjectsApi, namespace: str, name: str) -> bool:
    try:
        api.get_namespaced_custom_object(*POOL, namespace, "inferencepools", name)
        return True
    except client.ApiException as exc:
        if exc.status == 404:
            return False
        raise


def main() -> None:
    kubeconfig, controllers = sys.argv[1], set(sys.argv[2:])
    config.load_kube_config(config_file=kubeconfig)
    api = client.CustomObjectsApi()
    while True:
        try:
            reconcile(api, controllers)
        except client.ApiException as exc:  # a conflict or a deleted object: the next pass sees the new state
            if exc.status not in (404, 409):
                print(f"gateway stand-in: {exc.status} {exc.reason}", file=sys.stderr, flush=True)
        time.sleep(0.3)


if __name__ == "__main__":
    main()
