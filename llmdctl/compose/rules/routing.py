"""Rules over how requests reach the pods: the pool's selector and ports, the route's Gateway and
model match, and the KV-event wiring between vLLM and the EPP (--prefix-cache precise)."""

from __future__ import annotations

import re

from ...base.errors import InputError
from ...base.yamlio import load_text
from ...plan.stack import Plan
from ..kvevents import producer_of
from .book import arg_values, env_entry, role_blocks, rule, vllm_container


def _epp_config(plan: Plan):
    """The stack's EPP config document when it routes on KV events (a precise producer or the
    monolithic precise scorer), with that plugin; (None, None) otherwise."""
    ext = plan.epp_values
    text = (ext.get("pluginsCustomConfig") or {}).get(ext.get("pluginsConfigFile"))
    if not text or "precise-prefix-cache-" not in str(text):
        return None, None
    try:
        config = load_text(str(text), "EPP config").data or {}
    except InputError:
        return None, None  # an EPP config that is not YAML is the schema check's to report
    return config, producer_of(config)


@rule("V-30", "error")
def block_size(plan: Plan):
    _, plugin = _epp_config(plan)
    if plugin is None:
        return
    tokens = (plugin.get("parameters") or {}).get("tokenProcessorConfig") or {}
    epp_block = tokens.get("blockSizeTokens", tokens.get("blockSize"))  # the producer's key, the old scorer's
    if epp_block is None:
        return
    for role, block in role_blocks(plan):
        vllm_block = arg_values(vllm_container(block)).get("--block-size") or "16"
        if str(epp_block) != str(vllm_block):
            yield f"{role} vLLM --block-size={vllm_block} but {plugin['type']} hashes blocks of {epp_block} tokens"


def _env_value(container: dict, text: str) -> str:
    """``$(NAME)`` references resolved against the container's literal env, as the kubelet does."""
    def value(m: re.Match) -> str:
        entry = env_entry(container, m.group(1))
        return str(entry["value"]) if entry and "value" in entry else m.group(0)
    return re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", value, text)


@rule("V-44", "error")
def kv_events_wiring(plan: Plan):
    config, plugin = _epp_config(plan)
    if plugin is None or plugin.get("type") != "precise-prefix-cache-producer":
        return
    params = plugin.get("parameters") or {}
    events = params.get("kvEventsConfig") or {}
    if "podDiscoveryConfig" in params:
        yield "precise-prefix-cache-producer: podDiscoveryConfig sits beside kvEventsConfig, where the EPP ignores it; it belongs inside kvEventsConfig"
    if not events.get("discoverPods"):
        yield "precise-prefix-cache-producer: kvEventsConfig.discoverPods is not true, so the EPP dials no pod (and the vLLM pods bind, not connect)"
        return
    port = str((events.get("podDiscoveryConfig") or {}).get("socketPort", ""))
    topic_filter = str(events.get("topicFilter", ""))
    producer = plugin.get("name") or plugin["type"]
    consumers = set((plan.kv_events or {}).get("consumers") or ("prefix-cache-scorer", "prefix-cache-affinity-filter", "inflight-load-producer"))
    for other in config.get("plugins") or []:
        if isinstance(other, dict) and other.get("type") in consumers and (other.get("parameters") or {}).get("prefixMatchInfoProducerName") != producer:
            yield f"{other['type']} does not name prefixMatchInfoProducerName: {producer}, so it reads another producer's matches and scores 0"
    targets = [str(p.get("number")) for p in plan.pool_values.get("targetPorts") or [] if isinstance(p, dict)]
    import json  # only for stacks that route on KV events (render's start-up stays lean)

    for role, block in role_blocks(plan):
        c = vllm_container(block)
        raw = arg_values(c).get("--kv-events-config")
        if not raw:
            yield f"{role}: vLLM has no --kv-events-config, so its pods publish no KV events"
            continue
        try:
            kv = json.loads(raw)
        except ValueError:
            yield f"{role}: --kv-events-config is not JSON: {raw[:80]}"
            continue
        endpoint = _env_value(c, str(kv.get("endpoint", "")))
        if not kv.get("enable_kv_cache_events") or kv.get("publisher") != "zmq":
            yield f"{role}: --kv-events-config must set enable_kv_cache_events: true and publisher: zmq"
        if not re.fullmatch(rf"tcp://\*:{re.escape(port)}", endpoint):
            yield f"{role}: vLLM publishes on {endpoint or 'no endpoint'}, but the EPP dials each pod on port {port} (bind tcp://*:{port})"
        topic = _env_value(c, str(kv.get("topic", "")))
        m = re.fullmatch(r"(.*?)\$\(POD_IP\):([^@]*)@(.*)", topic)
        if not m or not topic.startswith(topic_filter):
            yield f"{role}: KV-event topic {topic!r} is not {topic_filter}$(POD_IP):<port>@<model>; the EPP keys pods by ip:port"
            continue
        if targets and m.group(2) not in targets:
            yield f"{role}: the KV-event topic names port {m.group(2)}, but the pool targets {', '.join(targets)}: events land on a pod the EPP never scores"
        if m.group(3) != plan.model["name"]:
            yield f"{role}: the KV-event topic names model {m.group(3)!r}, the pods serve {plan.model['name']!r}"


@rule("V-45", "error")
def model_route_matches_served_model(plan: Plan):
    if plan.spec is None or not plan.spec.route_by_model or plan.generation != "router" or plan.standalone:
        return
    header = plan.release_info.dialect["modelRoute"]["header"]
    served = str((plan.ms_values.get("modelArtifacts") or {}).get("name") or "")
    route = plan.release("router").values.get("httpRoute") or {}
    if plan.model_match is None:
        yield (f"the route matches no {header} header, so on a shared Gateway it takes every model's requests"
               " (a --set or --values removed router.httpRoute.headerMatches)")
    elif plan.model_match[1] != served:
        yield (f"the route matches {header}: {plan.model_match[1]}, but vLLM serves {served!r} (ms.modelArtifacts.name): "
               "requests that name the served model never reach this pool")
    if plan.attached and route.get("inferenceGatewayName") != plan.names["gateway"]:
        yield (f"router.httpRoute.inferenceGatewayName is {route.get('inferenceGatewayName')!r}, not the attached Gateway "
               f"{plan.names['gateway']}: the route would hang off a Gateway nobody deploys")


@rule("V-46", "error")
def pool_selects_own_pods(plan: Plan):
    """The InferencePool's selector, after every override, must match each role's pod labels."""
    pool = plan.pool_values  # the router chart's modelServers, or a GAIE chart's inferencePool
    selector = pool.get("matchLabels") if "matchLabels" in pool else (pool.get("modelServers") or {}).get("matchLabels")
    if not isinstance(selector, dict) or not selector:
        yield ("the InferencePool has no matchLabels: it would select every pod in the namespace, other stacks' included "
               "(a --set or --values removed its selector)")
        return
    labels = (plan.ms_values.get("modelArtifacts") or {}).get("labels") or {}
    for role in plan.roles:
        pod = {**labels, "llm-d.ai/role": role}
        off = [f"{k}={v}" + (f" (the pods have {pod[k]})" if k in pod else " (the pods lack it)")
               for k, v in selector.items() if str(pod.get(k)) != str(v)]
        if off:
            yield (f"the InferencePool selects {', '.join(off)}, which the {role} pods do not carry: the router finds no "
                   f"{role} endpoint and every request fails; set the same label in ms.modelArtifacts.labels and the pool's matchLabels")
    mine = plan.pool_selector
    dropped = [k for k in mine if k not in selector]
    if dropped:
        yield (f"the InferencePool's selector no longer has {', '.join(f'{k}={mine[k]}' for k in dropped)}, which tells this stack's pods "
               "from other stacks' in the namespace: it may route to another model's pods")


@rule("V-47", "error")
def route_on_own_gateway(plan: Plan):
    """In gateway mode the route the router chart renders hangs off the stack's Gateway (or the attached one)."""
    if plan.generation != "router" or plan.standalone:
        return
    values = plan.release("router").values
    route = values.get("httpRoute") if "httpRoute" in values else values.get("experimentalHttpRoute")
    if not isinstance(route, dict):
        return
    if route.get("create", route.get("enabled", True)) is False:
        yield ("router.httpRoute.create is false: the stack's Gateway would route nothing to its pool "
               "(give your own HTTPRoute to the Gateway, or remove the override)")
        return
    name = route.get("inferenceGatewayName")
    namespace = route.get("inferenceGatewayNamespace") or plan.namespace
    if (name, namespace) != (plan.names["gateway"], plan.gateway_namespace):
        yield (f"the route would attach to Gateway {namespace}/{name}, not {plan.gateway_namespace}/{plan.names['gateway']}, which "
               "this stack deploys or attaches to (and verify, status and destroy follow): use --attach-gateway NAMESPACE/NAME "
               "to route through another Gateway")
