"""One Gateway, many stacks: routing by model name (--attach-gateway, --route-by-model).

Each router-chart stack renders an HTTPRoute on path ``/``. Two of them on one Gateway would
split traffic between unrelated models, so a stack that shares a Gateway matches, besides the
path, the header body-based routing (GAIE's BBR, deployed once per Gateway) writes from the
request body's ``model``. Gateway API prefers the rule with more header matches, so an owner
stack that keeps its plain ``/`` route serves every model no other route names.
"""

from __future__ import annotations

from ..base.errors import InputError
from ..catalog.catalog import Release
from ..inputs.spec import Spec
from ..plan.stack import Plan


def model_route(release: Release, gw: dict, spec: Spec) -> dict | None:
    """The release's model-route facts when the stack routes by model name; refuses shapes that cannot."""
    if not spec.route_by_model:
        return None
    flag = "--attach-gateway" if spec.attach_gateway else "--route-by-model"
    if gw.get("provider") == "standalone":
        raise InputError(f"{flag}: a standalone stack has no Gateway to share (clients reach its own Envoy)",
                         hint="pick the gateway its Gateway runs on: -e istio, -e kgateway, -e agentgateway or -e gke")
    facts = release.dialect.get("modelRoute")
    if not facts:
        why = ("its helmfile-era charts give every stack its own Gateway" if release.generation == "helmfile"
               else "the GAIE v1.5.0 inferencepool chart's HTTPRoute matches no headers")
        raise InputError(f"{flag} cannot be expressed for llm-d {release.name}: {why}",
                         hint="use --llmd-version v0.9.0 (or v0.8.0), whose gateway chart matches headers (httpRoute.headerMatches)")
    return facts


def attached_names(names: dict, ref: tuple[str, str], namespace: str, provider: str) -> dict:
    """The stack's names with the Gateway it attaches to (which it neither creates nor deletes)."""
    gw_ns, gw_name = ref
    return {**names, "gateway": gw_name, "gatewayNamespace": gw_ns or namespace,
            "gatewayService": f"{gw_name}-istio" if provider == "istio" else gw_name}


def router_values(facts: dict, *, model: str, names: dict, namespace: str) -> dict:
    """The gateway chart's route: the (attached) Gateway as parent, the model header as match."""
    route: dict = {"inferenceGatewayName": names["gateway"], facts["valuesKey"].split(".", 1)[1]: {facts["header"]: model}}
    if names.get("gatewayNamespace", namespace) != namespace:
        route["inferenceGatewayNamespace"] = names["gatewayNamespace"]
    return {"router": {"httpRoute": route}}


def bbr_install_command(plan: Plan) -> str:
    """The helm install of body-based routing beside the stack's Gateway (once per Gateway)."""
    facts = plan.release_info.dialect["modelRoute"]
    provider = plan.gateway_facts.get("routerProvider", "none")
    return (f"helm install body-based-router {facts['bbrChart']} --version {facts['bbrVersion']} -n {plan.gateway_namespace}"
            + (f" --set provider.name={provider}" if provider in ("istio", "gke") else "") + f" --set inferenceGateway.name={plan.names['gateway']}")


def route_models(route: dict, header: str) -> list[str] | None:
    """The model names an HTTPRoute's rules match on ``header``; None when a rule matches any model."""
    models: list[str] = []
    for rule in (route.get("spec") or {}).get("rules") or []:
        for match in rule.get("matches") or [{}]:
            values = [h.get("value") for h in match.get("headers") or [] if str(h.get("name", "")).lower() == header.lower()]
            if not values:
                return None
            models += [str(v) for v in values if v not in models]
    return models


def route_parents(route: dict) -> list[tuple[str, str]]:
    """(namespace, name) of every Gateway an HTTPRoute names as parent (its own namespace by default)."""
    ns = (route.get("metadata") or {}).get("namespace", "")
    return [(p.get("namespace") or ns, p.get("name", "")) for p in (route.get("spec") or {}).get("parentRefs") or []
            if p.get("kind", "Gateway") == "Gateway"]
