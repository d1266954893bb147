"""NetworkPolicies of a stack (issue 27, item 2): who may open a connection to its pods.

A decode pod's sidecar fetches from whatever host its request header names, and vLLM, the NIXL
side channel and the KV-event sockets have no authentication; so each port of a stack's pods is
open only to the peers that need it:

- model-server pods (one policy per role, selected by the stack's own pool labels plus
  ``llm-d.ai/role``): the serving ports from the stack's EPP pod (standalone Envoy runs in it; the
  EPP also scrapes metrics and tokenizes there) and, in gateway mode, from the Gateway's data
  plane; every port from the stack's own model-server pods (NIXL side channel, UCX over TCP on
  ephemeral ports, data-parallel ranks); the KV-event sockets from the EPP (--prefix-cache precise);
  vLLM's metrics port from the monitoring namespace (--metrics-namespace).
- the EPP pod: ext-proc from the Gateway's data plane (gateway mode) or Envoy's listener from any
  client (standalone: Envoy in the EPP pod is the entry point, and ext-proc stays on localhost);
  the metrics port from the monitoring namespace.

Only ``Ingress`` is restricted: the pods keep pulling models and images. Every selector carries
the stack's labels (postfix-specific), so two stacks in one namespace never admit each other.
Facts used (read from upstream): the llm-d router charts (v0.9.0, v0.10.0) label the EPP pod
``llm-d-router-gateway: <release>-epp`` while they create the InferencePool (always, in
llmdctl's bundles) and ``llm-d-router-standalone: <release>-epp`` otherwise; GAIE's charts
(llm-d v0.7.0 and the helmfile era) ``inferencepool: <release>-epp``. Istio, kgateway and
agentgateway label the pods they deploy for a Gateway ``gateway.networking.k8s.io/gateway-name``.
GKE's managed load balancers are no pods: their proxies connect from the cluster's proxy-only
subnet, which the plan does not know, so on GKE the ports the load balancer reaches (serving,
ext-proc) are admitted from any source and every other port stays closed.
"""

from __future__ import annotations

from typing import Any

from ..inputs.spec import DEFAULT_METRICS_NAMESPACE
from ..plan.stack import ROLES, Plan
from .router import ENVOY_LISTENER

ROLE_LABEL = "llm-d.ai/role"
NAMESPACE_LABEL = "kubernetes.io/metadata.name"  # set by the API server on every namespace (Kubernetes >= 1.22)
GATEWAY_POD_LABEL = "gateway.networking.k8s.io/gateway-name"
EXT_PROC_PORT = 9002
EPP_METRICS_PORT = 9090
KV_EVENT_PORTS = (5556, 5559)  # vLLM's ZMQ publisher and replay sockets when the release does not say
EXTERNAL_DATA_PLANE = ("gke",)  # providers whose gateway proxies are not pods (prefixes of gateway_facts.provider)


def enabled(plan: Plan) -> bool:
    return plan.spec is None or plan.spec.network_policy


def metrics_namespace(plan: Plan) -> str:
    return plan.spec.metrics_namespace if plan.spec is not None else DEFAULT_METRICS_NAMESPACE


def network_policies(plan: Plan) -> list[dict]:
    """The stack's NetworkPolicies (none with --network-policy off): per model-server role, then the EPP."""
    if not enabled(plan):
        return []
    labels = {"app.kubernetes.io/managed-by": "llmdctl", "app.kubernetes.io/instance": plan.names["stackLabel"]}
    return [*(_model_server_policy(plan, role, labels) for role in ROLES if role in plan.roles), _epp_policy(plan, labels)]


def epp_policy_name(plan: Plan) -> str:
    """The EPP's policy ships with the model-server release, so it carries that release's name."""
    return f"{plan.names['ms']}-epp"


def epp_pod_labels(plan: Plan) -> dict[str, str]:
    """The labels the router chart puts on the stack's EPP pod (and selects it by)."""
    epp = plan.names["epp"]
    if plan.generation == "router" and plan.release_info.dialect.get("routerChart") == "llm-d":
        pool = ((plan.release("router").values.get("router") or {}).get("inferencePool") or {})
        return {("llm-d-router-standalone" if pool.get("create") is False else "llm-d-router-gateway"): epp}
    return {"inferencepool": epp}


def gateway_peer(plan: Plan) -> dict | None:
    """The Gateway's data-plane pods as a NetworkPolicy peer; None in standalone mode; {} (any
    source) for a gateway whose proxies are not pods."""
    if plan.standalone:
        return None
    provider = str(plan.gateway_facts.get("provider", ""))
    if provider.startswith(EXTERNAL_DATA_PLANE):
        return {}
    return {"namespaceSelector": {"matchLabels": {NAMESPACE_LABEL: plan.gateway_namespace}},
            "podSelector": {"matchLabels": {GATEWAY_POD_LABEL: plan.names["gateway"]}}}


def serving_ports(plan: Plan) -> list[int]:
    """The ports the pool targets (prefill vLLM and the decode sidecar; one per rank with multi-port DP)."""
    pool = plan.pool_values
    ports = [int(p["number"]) for p in pool.get("targetPorts") or [] if isinstance(p, dict) and "number" in p]
    if not ports and pool.get("targetPortNumber") is not None:
        ports = [int(pool["targetPortNumber"])]
    return sorted(set(ports or [int(_routing(plan).get("servicePort", plan.release_info.contract["servicePort"]))]))


def metrics_port(plan: Plan, role: str) -> int:
    """The port vLLM itself listens on in this role (its /metrics): behind the sidecar on decode."""
    routing = _routing(plan)
    service = int(routing.get("servicePort", plan.release_info.contract["servicePort"]))
    proxy = routing.get("proxy") or {}
    if role == "decode" and proxy.get("enabled", plan.mode == "disaggregated"):
        return int(proxy.get("targetPort", plan.release_info.contract.get("proxyTargetPort", service)))
    return service


def kv_event_ports(plan: Plan) -> list[int]:
    kv = plan.kv_events
    if not kv:
        return []
    found = ((((kv.get("producerParameters") or {}).get("kvEventsConfig") or {}).get("podDiscoveryConfig")) or {})
    return [int(found.get("socketPort", KV_EVENT_PORTS[0])), int(found.get("replaySocketPort", KV_EVENT_PORTS[1]))]


def _routing(plan: Plan) -> dict:
    return plan.ms_values.get("routing") or {}


def _ports(numbers: list[int]) -> list[dict]:
    return [{"protocol": "TCP", "port": n} for n in numbers]


def _scraper(plan: Plan) -> dict:
    return {"namespaceSelector": {"matchLabels": {NAMESPACE_LABEL: metrics_namespace(plan)}}}


def _policy(name: str, selector: dict, rules: list[dict], labels: dict, why: str) -> dict:
    return {
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": name, "labels": dict(labels), "annotations": {"llmdctl.io/why": why}},
        # Ingress only: egress stays open (models from Hugging Face, images, the EPP's API watches)
        "spec": {"podSelector": {"matchLabels": dict(selector)}, "policyTypes": ["Ingress"], "ingress": rules},
    }


def _model_server_policy(plan: Plan, role: str, labels: dict) -> dict:
    own = {"podSelector": {"matchLabels": dict(plan.pool_selector)}}
    epp = {"podSelector": {"matchLabels": epp_pod_labels(plan)}}
    serving = _ports(serving_ports(plan))
    rules: list[dict[str, Any]] = [
        # the other role and the same role's ranks: NIXL side channel, UCX (ephemeral ports), DP RPC
        {"from": [own]},
        {"from": [epp], "ports": serving},
    ]
    gateway = gateway_peer(plan)
    if gateway == {}:
        rules.append({"ports": serving})
    elif gateway:
        rules.append({"from": [gateway], "ports": serving})
    kv = kv_event_ports(plan)
    if kv:
        rules.append({"from": [epp], "ports": _ports(kv)})
    rules.append({"from": [_scraper(plan)], "ports": _ports(sorted({metrics_port(plan, role)}))})
    return _policy(plan.names[role], {**plan.pool_selector, ROLE_LABEL: role}, rules, labels,
                   f"{role} pods of stack {plan.postfix}: serving ports from its EPP"
                   + ("" if plan.standalone else " and Gateway") + ", every port from its own model servers"
                   + (", KV events to its EPP" if kv else "") + f", vLLM metrics from namespace {metrics_namespace(plan)}")


def _epp_policy(plan: Plan, labels: dict) -> dict:
    values = plan.release("router" if plan.generation == "router" else "gaie").values
    block = values.get("router") if "router" in values else values.get("inferenceExtension")
    block = block or {}
    ext_proc = int(((block.get("epp") or {}) if "epp" in block else block).get("extProcPort", EXT_PROC_PORT))
    metrics = int(block.get("metricsPort", EPP_METRICS_PORT))
    rules: list[dict[str, Any]] = []
    gateway = gateway_peer(plan)
    if gateway is None:
        # standalone: Envoy in this pod is the stack's entry point (the Service's port 80); clients
        # are the user's choice, so any source; ext-proc is Envoy -> EPP over localhost
        rules.append({"ports": _ports([ENVOY_LISTENER])})
        entry = f"Envoy's listener {ENVOY_LISTENER} from any client"
    elif gateway == {}:
        rules.append({"ports": _ports([ext_proc])})
        entry = f"ext-proc {ext_proc} from the load balancer (any source: its proxies are not pods)"
    else:
        rules.append({"from": [gateway], "ports": _ports([ext_proc])})
        entry = f"ext-proc {ext_proc} from Gateway {plan.gateway_namespace}/{plan.names['gateway']}"
    rules.append({"from": [_scraper(plan)], "ports": _ports([metrics])})
    return _policy(epp_policy_name(plan), epp_pod_labels(plan), rules, labels,
                   f"EPP of stack {plan.postfix}: {entry}, metrics {metrics} from namespace {metrics_namespace(plan)}")


def with_extra_objects(plan: Plan) -> Plan:
    """The helmfile era: the policies ride in the modelservice release's ``extraObjects`` (every
    pinned modelservice chart renders that list), so helmfile applies them with the model
    servers and ``helm uninstall`` (destroy) removes them. Objects a user put there stay first."""
    policies = network_policies(plan)
    if not policies:
        return plan
    ms = dict(plan.ms_values)
    ms["extraObjects"] = [*(ms.get("extraObjects") or []), *policies]
    return plan.replace(releases=tuple(r.replace(values=ms) if r.key == "ms" else r for r in plan.releases))


def describe_peer(peer: dict) -> str:
    """A NetworkPolicy peer in words (for the bundle README)."""
    parts = []
    ns = ((peer.get("namespaceSelector") or {}).get("matchLabels") or {}).get(NAMESPACE_LABEL)
    pods = (peer.get("podSelector") or {}).get("matchLabels")
    if pods:
        parts.append("pods " + ",".join(f"`{k}={v}`" for k, v in pods.items()))
    if ns:
        parts.append(f"{'in ' if pods else 'any pod in '}namespace `{ns}`")
    elif pods:
        parts.append("(this namespace)")
    return " ".join(parts) or "any source"


def describe_rules(policy: dict) -> list[str]:
    """One line per ingress rule: who, and on which ports."""
    out = []
    for rule in policy["spec"]["ingress"]:
        who = "; ".join(describe_peer(p) for p in rule.get("from") or []) or "any source"
        ports = ", ".join(str(p["port"]) for p in rule.get("ports") or []) or "every port"
        out.append(f"{who} → {ports}")
    return out
