"""The router generation (llm-d >= v0.8): values for llm-d's router chart and the objects of the
charts llmdctl generates (model servers, and the Gateway in gateway mode).

Upstream isolates stacks by namespace only: the pool selects ``llm-d.ai/guide`` and the
standalone chart names its Envoy ConfigMap ``envoy``. Here every stack adds its own label to the
pool selector and to its pods, and names the Envoy ConfigMap and the metrics Secret after its
router release, so two stacks in one namespace share no object and no pod.
"""

from __future__ import annotations

from typing import Any

from ..catalog.catalog import Release

ENVOY_LISTENER = 8081  # the standalone chart's Envoy listener (router.extraServicePorts targets it)


def router_pins(release: Release) -> dict:
    """The EPP image pinned by tag: a chart rendered from source says `main`."""
    hub_name, tag = release.images["scheduler"].rsplit(":", 1)
    registry, repository = hub_name.rsplit("/", 1)
    return {"router": {"epp": {"image": {"registry": registry, "repository": repository, "tag": tag, "pullPolicy": "IfNotPresent"}}}}


def router_values(*, names: dict, release: Release, selector: dict, config_file: str, config: str,
                  standalone: bool, gw: dict) -> dict:
    """What the stack layer sets on the router chart: pool selector and port, the EPP config, and
    per-stack names for the objects upstream names once per namespace."""
    router: dict[str, Any] = {
        "epp": {"pluginsConfigFile": config_file, "pluginsCustomConfig": {config_file: config}},
        "modelServers": {"matchLabels": dict(selector), "targetPorts": [{"number": release.contract["servicePort"]}]},
        "monitoring": {"prometheus": {"auth": {"secretName": names["metricsSecret"]}}},
    }
    values: dict[str, Any] = {"router": router}
    if standalone:
        router["extraServicePorts"] = [{"name": "http", "port": release.contract["proxyServicePort"], "protocol": "TCP",
                                        "targetPort": ENVOY_LISTENER}]
        # both keys: the chart's volume names the ConfigMap again (verified by helm template)
        router["proxy"] = {
            "configMap": {"name": names["envoyConfigMap"]},
            "volumes": [{"name": "config", "configMap": {"name": names["envoyConfigMap"], "items": [{"key": "envoy.yaml", "path": "envoy.yaml"}]}}],
        }
    else:
        values["provider"] = {"name": gw.get("routerProvider", "none")}
        # P/D requests can take minutes; "0s" turns the route's request timeout off
        values["httpRoute"] = {"create": True, "inferenceGatewayName": names["gateway"], "requestTimeout": "0s"}
    return values


def gateway_objects(*, names: dict, gw: dict, labels: dict) -> list[dict]:
    """The stack's own Gateway (gateway mode): one HTTP listener that admits routes of its namespace."""
    return [{
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
        "metadata": {"name": names["gateway"], "labels": dict(labels)},
        "spec": {
            "gatewayClassName": gw["className"],
            "listeners": [{"name": "http", "port": 80, "protocol": "HTTP", "allowedRoutes": {"namespaces": {"from": "Same"}}}],
        },
    }]


def router_pin(standalone: bool) -> str:
    """The catalog pin (versions.yaml charts key) of a stack's router release."""
    return "router" if standalone else "routerGateway"


# llm-d v0.7 deployed the router from GAIE's own charts (standalone / inferencepool v1.5.0), whose
# values sit under inferenceExtension / inferencePool / experimentalHttpRoute; v0.8 moved the same
# settings under router.*. One table maps llmdctl's router layers onto the older keys.
_GAIE_PATHS = (
    ("router.epp.", "inferenceExtension."),
    ("router.inferencePool.failureMode", "inferenceExtension.failureMode"),
    ("router.monitoring.", "inferenceExtension.monitoring."),
    ("router.extraServicePorts", "inferenceExtension.extraServicePorts"),
    ("router.tracing.", "inferenceExtension.tracing."),
    ("router.proxy.proxyType", None),  # GAIE's sidecar is always Envoy
    ("router.proxy.", "inferenceExtension.sidecar."),
    ("router.modelServers.matchLabels", "inferencePool.modelServers.matchLabels"),
    ("router.modelServers.targetPorts", "inferencePool.targetPorts"),
    ("router.modelServers.protocol", "inferencePool.modelServerProtocol"),
    ("router.modelServers.type", "inferencePool.modelServerType"),
    ("httpRoute.create", "experimentalHttpRoute.enabled"),
    ("httpRoute.", "experimentalHttpRoute."),
    ("provider.", "provider."),
)


def gaie_path(path: str) -> str | None:
    """'router.epp.replicas' -> 'inferenceExtension.replicas'; None for a key GAIE has no place for."""
    for old, new in _GAIE_PATHS:
        whole = path.startswith(old) if old.endswith(".") else (path == old or path.startswith((old + ".", old + "[")))
        if whole:
            return None if new is None else new + path[len(old):]
    raise KeyError(path)


def gaie_values(values: dict, provenance: dict) -> tuple[dict, dict]:
    """Router-chart values and their provenance in the GAIE v1.5.0 charts' shape."""
    out: dict[str, Any] = {}

    def walk(node: Any, path: str) -> None:
        try:
            target = gaie_path(path)
        except KeyError:
            if isinstance(node, dict) and node:
                for k, v in node.items():
                    walk(v, f"{path}.{k}" if path else k)
                return
            raise KeyError(path) from None
        if target is None:
            return
        *parents, leaf = target.split(".")
        at = out
        for p in parents:
            at = at.setdefault(p, {})
        at[leaf] = node

    for key, node in values.items():
        walk(node, key)
    moved = {}
    for path, layer in provenance.items():
        try:
            target = gaie_path(path)
        except KeyError:
            target = path
        if target is not None:
            moved[target] = layer
    return out, moved
