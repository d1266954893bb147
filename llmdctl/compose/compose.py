"""Compose catalog layers and inputs into a ``Plan``: plain data that every effect only reads.

Layer order, stated once (``_layers``):

1. ``llm-d <version>``  pinned images and the chart contract (ports, vLLM container);
2. guide             (and the guide it extends);
3. hardware profile  (and the profile it extends);
4. overlays          in the order given with ``-e``;
5. gateway;
6. stack             names, model, labels and selectors derived from namespace and postfix;
7. layout            replicas, tensor parallelism, per-pod memory caps;
8. user overrides    ``--values`` files, then ``--set``, each in the order given.

Each catalog layer may carry ``values`` (always), ``disaggregatedValues`` (layouts with prefill
pods) and ``aggregatedValues`` (decode only). Inside ``ms`` values, ``roles`` applies to both
``decode`` and ``prefill``; the role-specific blocks of the same layer win over it.
"""

from __future__ import annotations

import copy
import math
import os
import re
from typing import Any, NamedTuple

from ..base.errors import CatalogError, Finding, InputError, ValidationError, suggest
from ..base.merge import merge_values, set_path, split_path, strip_patch_markers
from ..base.yamlio import dump, load_data, load_text
from ..base.templates import render_template
from ..catalog.catalog import Catalog, Layer, Release, default_catalog
from ..inputs.charts import resolve_charts
from ..inputs.spec import RoleLayout, Spec, gateway_ref_text, input_name, parse_layout
from .. import __version__
from ..plan.stack import ROLES, LayerInfo, Plan, ReleasePlan, RolePlan
from . import autoscaling, eppconfig, kvevents, netpol, shared_gateway
from .modelserver import chart_files, model_server_objects
from .names import GENERATED_CHARTS, check_names, check_secret_name, stack_names
from .router import gaie_values, gateway_objects, router_pin, router_pins, router_values
from .rules import RULES, check_rule_catalog
from .values_schemas import check_values_schemas



# --- model ---------------------------------------------------------------------------------

_QUANTITY = re.compile(r"[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti)?")
_HF_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*")
_URI_PART = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@/-]*")
_PARAMS = re.compile(r"(?<![A-Za-z0-9])(\d+(?:\.\d+)?)[Bb](?![A-Za-z])")


def model_facts(model: str, size: str | None, sizing: dict) -> tuple[dict, list[str]]:
    """From an HF id (or an hf://, pvc://, oci:// URI) to the chart's URI, name, size and label.

    ``sizing`` is the catalog's guides/models.yaml; the notes say when the size is a guess.
    """
    if "://" in model:
        uri = model
        scheme, name = model.split("://", 1)
        if uri.startswith("pvc://"):
            name = "/".join(name.split("/")[1:]) or name
        if scheme not in ("hf", "pvc", "pvc+hf", "oci") or not _URI_PART.fullmatch(name):
            raise InputError(
                f"--model '{model}': a model URI is hf://ORG/NAME, pvc://CLAIM/PATH or oci://IMAGE, with a name after the scheme",
                hint="e.g. --model hf://Qwen/Qwen3-8B or --model Qwen/Qwen3-8B",
            )
    else:
        if not _HF_ID.fullmatch(model):
            raise InputError(
                f"--model '{model}': expected a Hugging Face id such as Qwen/Qwen2.5-7B-Instruct, "
                "or a URI (hf://, pvc://CLAIM/PATH, oci://IMAGE)"
            )
        uri = f"hf://{model}"
        name = model
    short = name.rsplit("/", 1)[-1]
    label = re.sub(r"[^A-Za-z0-9._-]", "-", short)[:63].strip("-._") or "model"
    notes: list[str] = []
    if size is not None and not _QUANTITY.fullmatch(str(size)):
        raise InputError(
            f"--model-size {size!r}: a Kubernetes quantity in binary units, such as 100Gi or 1.5Ti (Ki, Mi, Gi, Ti; not GB)",
            hint="e.g. --model-size 200Gi",
        )
    if size is None:
        size = estimate_volume(name, sizing)
        if size is None:
            size = sizing["volume"]["unknownSize"]
            notes.append(f"model volume {size}: {name} has no parameter count in its name and is not in the "
                         "catalog's known models; pass --model-size if the weights need more")
    moe = any(re.search(p, name, re.I) for p in sizing.get("mixtureOfExperts") or ())
    return {"id": model, "uri": uri, "name": name, "size": size, "label": label, "moe": moe}, notes


def estimate_volume(name: str, sizing: dict) -> str | None:
    """Room for the weights: parameters x bytes per parameter x headroom, rounded up to a step."""
    rules = sizing["volume"]
    known = sizing["known"].get(name)
    m = _PARAMS.search(name)
    if known:
        params = float(known["parametersB"])
    elif m:
        params = float(m.group(1))
    else:
        return None
    per_param = (known or {}).get("bytesPerParameter")
    if per_param is None:
        per_param = next((r["bytes"] for r in rules["bytesPerParameter"] if re.search(r["match"], name, re.I)),
                         rules["defaultBytesPerParameter"])
    step = rules["stepGi"]
    gib = max(rules["minimumGi"], math.ceil(params * per_param * rules["headroom"] / step) * step)
    return f"{gib}Gi"


# --- layers --------------------------------------------------------------------------------


def expand_roles(ms: dict, roles: tuple[str, ...] = ROLES) -> dict:
    """``roles`` applies to decode and prefill (to decode alone in aggregated serving, where there
    is no prefill Deployment); the role's own block (same layer) wins."""
    if not isinstance(ms, dict) or "roles" not in ms:
        return ms
    shared = ms["roles"] or {}
    out = {k: v for k, v in ms.items() if k != "roles"}
    for role in roles:
        own = out.get(role) or {}
        out[role] = merge_values(copy.deepcopy(shared), own) if isinstance(own, dict) else own
    return out


class _Layer(NamedTuple):
    name: str
    what: str
    values: dict  # release key -> values
    summary: str = ""
    source: str = ""  # the catalog file, for messages


def _catalog_layers(catalog: Catalog, layer: Layer, mode: str, what: str) -> list[_Layer]:
    members = {name: catalog.layer(name) for name in layer.chain}
    out = []
    pairs = list(layer.values) + list(layer.disaggregated if mode == "disaggregated" else layer.aggregated)
    # keep chain order: base layer's values, then its mode values, then the child's
    order = {n: i for i, n in enumerate(layer.chain)}
    pairs.sort(key=lambda p: order[p[0]])
    for name, values in pairs:
        out.append(_Layer(name, f"{what} {name}" if name != layer.name else what, values, members[name].summary, members[name].source))
    return out


def _vllm(image: str, port: int) -> dict:
    return {"name": "vllm", "image": image, "ports": [{"name": "vllm", "containerPort": port, "protocol": "TCP"}]}


def _pins_layer(release: Release, hw: dict, mode: str) -> _Layer:
    family = hw.get("imageFamily", "cuda")
    image = release.images.get(family)
    if not image:
        raise InputError(
            f"--llmd-version {release.name}: llm-d {release.name} ships no '{family}' vLLM image, which the hardware profile needs",
            hint="choose another --llmd-version (see `llmdctl versions`), or set the image with "
            "--set ms.roles.containers[0].image=REGISTRY/IMAGE:TAG",
        )
    scheduler = release.images["scheduler"]
    hub_name, tag = scheduler.rsplit(":", 1)
    hub, name = hub_name.rsplit("/", 1)
    service_port = release.contract["servicePort"]
    proxy_port = release.contract["proxyTargetPort"]
    ms: dict[str, Any] = {
        "routing": {"servicePort": service_port},
        "prefill": {"containers": [_vllm(image, service_port)]},
        # behind the routing sidecar decode vLLM listens on the proxy's target port
        "decode": {"containers": [_vllm(image, proxy_port if mode == "disaggregated" else service_port)]},
    }
    if mode == "disaggregated":
        ms["routing"]["proxy"] = {"image": release.images["routingSidecar"], "targetPort": proxy_port}
    if release.generation == "router":
        return _Layer(f"llm-d {release.name}", "pinned images and chart contract", {"ms": ms, "router": router_pins(release)})
    gaie = {"inferenceExtension": {"image": {"hub": hub, "name": name, "tag": tag, "pullPolicy": "Always"}}}
    return _Layer(f"llm-d {release.name}", "pinned images and chart contract", {"ms": ms, "gaie": gaie})


def _stack_layer(
    *, names: dict, namespace: str, guide: Layer, release: Release, gw: dict, hw: dict, model: dict,
    mode: str, hf_secret: str, pd_threshold: int | None, gateway_name: str,
    scorers: tuple = (), scheduler_params: tuple = (), kv: dict | None = None,
) -> tuple[_Layer, dict]:
    dialect = release.dialect
    if release.generation == "router":
        return _router_stack_layer(names=names, guide=guide, release=release, gw=gw, hw=hw, model=model, mode=mode,
                                   hf_secret=hf_secret, pd_threshold=pd_threshold, scorers=scorers, scheduler_params=scheduler_params, kv=kv)
    serving = dialect["servingLabel"]
    if dialect["freeFormPodLabels"]:
        labels = {
            serving: "true",
            "llm-d.ai/guide": guide.name,
            "llm-d.ai/model": model["label"],
            "llm-d.ai/accelerator-vendor": hw.get("accelerator", "nvidia"),
            "app.kubernetes.io/instance": names["stackLabel"],
        }
        selector = {serving: "true", "llm-d.ai/guide": guide.name, "app.kubernetes.io/instance": names["stackLabel"]}
    else:
        # modelservice v0.3.x accepts only these two pod-label keys; the model key names the stack,
        # as the v0.3/v0.4 guides did, so two stacks in one namespace never share a pool
        labels = {serving: "true", "llm-d.ai/model": names["stackLabel"]}
        selector = dict(labels)

    pool_api = dialect["poolApiVersion"].get(gateway_name, dialect["poolApiVersion"]["default"])
    pool: dict[str, Any] = {"modelServers": {"matchLabels": selector}}
    port = release.contract["servicePort"]
    if pool_api.endswith("v1alpha2"):
        pool.update({"apiVersion": pool_api, "targetPortNumber": port})
    else:
        pool["targetPorts"] = [{"number": port}]

    if mode == "disaggregated":
        threshold = release.contract["pdThreshold"] if pd_threshold is None else pd_threshold
        if dialect["eppPdConfig"] == "prefix-decider":
            config = render_template("epp-pd-prefix-decider.yaml.tmpl", non_cached_tokens=threshold)
        else:
            config = render_template("epp-pd-threshold.yaml.tmpl", threshold=threshold)
        config_file = "pd-config.yaml"
    else:
        config = render_template("epp-scheduling.yaml.tmpl")
        config_file = "scheduling-config.yaml"
    _check_epp_config(config, config_file)
    if scorers or scheduler_params:
        config = scheduler_config(config, release, scorers, scheduler_params)
    gaie: dict[str, Any] = {
        "inferenceExtension": {
            "pluginsConfigFile": config_file,
            "pluginsCustomConfig": {config_file: config},
            # per stack: two stacks in one namespace must not fight over one Secret
            "monitoring": {"prometheus": {"auth": {"secretName": names["metricsSecret"]}}},
        },
        "inferencePool": pool,
    }
    # The Istio DestinationRule host is left to the inferencepool chart, which derives it from the
    # release and *its* namespace (templates/istio.yaml, v1.2.0-rc.1 and v1.4.0): a host written
    # here would pin the namespace, and `helmfile -n other apply` would point at the wrong EPP.

    ms: dict[str, Any] = {
        "modelArtifacts": {
            "uri": model["uri"],
            "name": model["name"],
            "size": model["size"],
            "authSecretName": hf_secret,
            "labels": labels,
        },
    }
    return _Layer("stack", "names, model, labels and selectors", {"ms": expand_roles({**ms, **_pod_values(hw, mode, selector)}), "gaie": gaie}), selector


def _pod_values(hw: dict, mode: str, selector: dict) -> dict:
    """ms values the hardware facts imply for the vLLM pods: the RDMA NIC request (per role when the
    profile says so), one zone for the stack (sameZone), one vLLM pod per node with host
    networking (V-12), the tolerations of the GPU nodes' taints. ``roles`` is both roles; a role's own block wins over it."""
    rdma = hw.get("rdma")
    roles: dict[str, Any] = {}
    out: dict[str, Any] = {}

    def nics(n: int) -> list[dict]:
        return [{"name": "vllm", "resources": {"limits": {rdma["resource"]: n}, "requests": {rdma["resource"]: n}}}]

    if rdma and mode == "disaggregated":
        roles["containers"] = nics(rdma.get("count", 1))
        for role, n in (rdma.get("countByRole") or {}).items():  # EFA: 8 NICs for decode, 2 for prefill
            out[role] = {"containers": nics(n)}
    affinity: dict[str, Any] = {}
    if hw.get("sameZone"):
        # the KV cache crosses between roles: keep the stack's pods in one zone (the AWS EFA overlay)
        affinity["podAffinity"] = {"requiredDuringSchedulingIgnoredDuringExecution": [
            {"labelSelector": {"matchLabels": selector}, "topologyKey": "topology.kubernetes.io/zone"}]}
    if hw.get("hostNetwork"):
        # ports 8000/8200/5600 bind on the node
        affinity["podAntiAffinity"] = {"requiredDuringSchedulingIgnoredDuringExecution": [
            {"labelSelector": {"matchLabels": selector}, "topologyKey": "kubernetes.io/hostname"}]}
    if affinity:
        roles["extraConfig"] = {"affinity": affinity}
    if hw.get("tolerations"):
        # the vendor's usual GPU taint (the profile's) and the user's --toleration
        roles.setdefault("extraConfig", {})["tolerations"] = [dict(t) for t in hw["tolerations"]]
    if roles:
        out["roles"] = roles
    return out


def _router_stack_layer(*, names: dict, guide: Layer, release: Release, gw: dict, hw: dict, model: dict, mode: str,
                        hf_secret: str, pd_threshold: int | None, scorers: tuple, scheduler_params: tuple,
                        kv: dict | None = None) -> tuple[_Layer, dict]:
    """The router generation's stack layer: the v0.9 guide's labels plus the stack's own, which the
    pool selects (upstream selects llm-d.ai/guide alone, so two stacks would share pods)."""
    labels = {
        "llm-d.ai/guide": guide.name,
        "llm-d.ai/model": model["label"],
        "llm-d.ai/accelerator-vendor": hw.get("accelerator", "nvidia"),
        release.dialect.get("engineTypeLabel", "llm-d.ai/engine-type"): "vllm",
        "app.kubernetes.io/instance": names["stackLabel"],
    }
    selector = {"llm-d.ai/guide": guide.name, "app.kubernetes.io/instance": names["stackLabel"]}
    api = release.dialect["eppApiVersion"]
    if mode == "disaggregated":
        peak = hw.get("peakPrefillThroughput", release.contract["peakPrefillThroughput"])
        template = {"token-load": "epp-pd-token-load.yaml.tmpl", "always-disagg": "epp-pd-always-disagg.yaml.tmpl"}[release.dialect["eppPdConfig"]]
        config = render_template(template, api_version=api, peak_prefill_throughput=peak)
        config_file = "pd-config.yaml"
        if pd_threshold:
            config = _selective_pd(config, pd_threshold)
    else:
        config = render_template("epp-router-scheduling.yaml.tmpl", api_version=api)
        config_file = "scheduling-config.yaml"
    _check_epp_config(config, config_file)
    if kv:
        config = kvevents.epp_config(config, kv, model=model["name"], render_service=names["render"])
    if scorers or scheduler_params:
        config = scheduler_config(config, release, scorers, scheduler_params)
    router = router_values(names=names, release=release, selector=selector, config_file=config_file, config=config,
                           standalone=gw["provider"] == "standalone", gw=gw)
    ms: dict[str, Any] = {"modelArtifacts": {"uri": model["uri"], "name": model["name"], "size": model["size"],
                                             "authSecretName": hf_secret, "labels": labels}}
    return _Layer("stack", "names, model, labels and selectors", {"ms": expand_roles({**ms, **_pod_values(hw, mode, selector)}), "router": router}), selector


def _selective_pd(config: str, threshold: int) -> str:
    """--pd-threshold N on the router: prefix-based-pd-decider instead of always-disagg, so prompts
    with at most N uncached tokens skip prefill (the v0.10.0 EPP still registers it)."""
    doc = load_text(config, "EPP config").data
    for plugin in doc["plugins"]:
        if plugin.get("type") == "always-disagg-pd-decider":
            plugin["type"] = "prefix-based-pd-decider"
            plugin["parameters"] = {"nonCachedTokens": threshold}
        params = plugin.get("parameters") or {}
        if params.get("deciderPluginName") == "always-disagg-pd-decider":  # the legacy flat format
            params["deciderPluginName"] = "prefix-based-pd-decider"
        deciders = params.get("deciders") or {}
        if deciders.get("prefill") == "always-disagg-pd-decider":  # the nested one (EPP >= v0.9.0)
            deciders["prefill"] = "prefix-based-pd-decider"
    head = "".join(line + "\n" for line in config.splitlines() if line.startswith("#"))
    return head + f"# selective P/D: prompts with at most {threshold} uncached tokens skip prefill (--pd-threshold)\n" + dump(doc)


def scheduler_config(text: str, release: Release, scorers: tuple, params: tuple) -> str:
    """The EPP config with --scorer weights and --scheduler-param values in place, each checked
    against the plugins the pinned EPP registers: a typo or an unknown plugin would only surface as
    an EPP that does not start."""
    epp = release.epp
    known = list(epp["scorers"])
    doc = load_text(text, "EPP config").data
    plugins = doc.setdefault("plugins", [])
    profiles = doc.get("schedulingProfiles") or []
    for profile_name, raw, weight in scorers:
        name = raw if raw in known or raw in epp.get("needsWiring", {}) else f"{raw}-scorer"
        if name in epp.get("needsWiring", {}):
            raise InputError(f"--scorer {raw}: {name} needs {epp['needsWiring'][name]}")
        if name not in known:
            raise InputError(f"--scorer {raw}: the EPP of llm-d {release.name} has no scorer {name!r}" + suggest(name, known),
                             hint="scorers it knows: " + ", ".join(known))
        targets = [p for p in profiles if profile_name in (None, p.get("name"))]
        if not targets:
            raise InputError(f"--scorer {profile_name}:{raw}: no scheduling profile {profile_name!r}" + suggest(profile_name or "", [p.get("name", "") for p in profiles]),
                             hint="profiles: " + ", ".join(p.get("name", "?") for p in profiles))
        if not any(p.get("type") == name or p.get("name") == name for p in plugins) and weight:
            plugins.append({"type": name})
        for p in targets:
            refs = p.setdefault("plugins", [])
            ref = next((r for r in refs if r.get("pluginRef") == name), None)
            if weight == 0:
                p["plugins"] = [r for r in refs if r.get("pluginRef") != name]
            elif ref is not None:
                ref["weight"] = weight
            else:
                refs.append({"pluginRef": name, "weight": weight})
    table = eppconfig.plugin_schema(release)
    for plugin, param, value in params:
        _check_scheduler_param(release, table, plugin, param, value)
        entry = next((p for p in plugins if p.get("type") == plugin or p.get("name") == plugin), None)
        if entry is None:
            raise InputError(f"--scheduler-param {plugin}.{param}: this stack's scheduler config has no {plugin}",
                             hint="plugins in it: " + ", ".join(p.get("type", "?") for p in plugins))
        entry.setdefault("parameters", {})[param] = value
    used = {r.get("pluginRef") for p in profiles for r in p.get("plugins") or []}
    doc["plugins"] = [p for p in plugins if not (p.get("type") in known and (p.get("name") or p.get("type")) not in used)]
    what = [f"{pr + ':' if pr else ''}{n}={w}" for pr, n, w in scorers] + [f"{pl}.{pa}={v}" for pl, pa, v in params]
    head = "".join(line + "\n" for line in text.splitlines() if line.startswith("#"))  # the template's own explanation
    return head + f"# adjusted by: {', '.join(what)}\n" + dump(doc)


def _check_scheduler_param(release: Release, table: dict | None, plugin: str, param: str, value: Any) -> None:
    """Refuse a --scheduler-param the pinned EPP would refuse: by its own plugin table where llmdctl
    has one (docs/epp-plugins.md), else by the release's hand-written parameter list."""
    if table is not None:
        problem = eppconfig.parameter_error(table, plugin, param, value)
        if problem:
            fields = eppconfig.fields_of(table, plugin)
            raise InputError(f"--scheduler-param {plugin}.{param}={value!r}: {problem}",
                             hint=f"checked against the plugins of the EPP {table['provenance']['tag']} (docs/epp-plugins.md)"
                                  + (f"; {plugin} takes: {', '.join(fields)}" if fields else ""))
        return
    known = release.epp.get("parameters") or {}
    types = known.get(plugin)
    if types is None:
        raise InputError(f"--scheduler-param {plugin}.{param}: llmdctl knows no parameters of {plugin!r} for llm-d {release.name}"
                         + suggest(plugin, list(known)), hint="plugins with parameters: " + ", ".join(known))
    if param not in types:
        raise InputError(f"--scheduler-param {plugin}.{param}: {plugin} has no parameter {param!r}" + suggest(param, list(types)),
                         hint=f"its parameters: {', '.join(types)}")
    if not _json_type_ok(value, types[param]):
        raise InputError(f"--scheduler-param {plugin}.{param}={value!r}: expected {'a' if types[param] != 'integer' else 'an'} {types[param]}")


def _json_type_ok(value: Any, kind: str) -> bool:
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, str)


def _check_epp_config(text: str, name: str) -> None:
    """A custom catalog's EPP template must still give an EndpointPickerConfig the EPP can read."""
    try:
        doc = load_data(text, f"EPP config {name}")
    except InputError as exc:
        raise CatalogError(f"the EPP template for {name} does not render valid YAML: {exc.message}") from None
    if not isinstance(doc, dict) or doc.get("kind") != "EndpointPickerConfig":
        raise CatalogError(f"the EPP template for {name} must render a mapping with kind: EndpointPickerConfig")


def _layout_layer(prefill: RoleLayout, decode: RoleLayout, mode: str, hw: dict, release: Release) -> tuple[_Layer, list[str]]:
    notes: list[str] = []
    layouts = {"decode": decode, **({"prefill": prefill} if mode == "disaggregated" else {})}
    ms: dict[str, Any] = {}
    for role, lay in layouts.items():
        ms[role] = {**({"create": True} if role == "prefill" else {}), "replicas": lay.replicas, "parallelism": _parallelism(role, lay, hw, release)}
        flags = (["--enable-expert-parallel"] if lay.expert else []) + _dp_balancer_flags(ms[role]["parallelism"], hw)
        vllm: dict[str, Any] = {"name": "vllm", **({"args": flags} if flags else {})}
        rdma = _role_rdma(hw.get("rdma"), role)
        if rdma and mode != "disaggregated" and ms[role]["parallelism"].get("workers", 1) > 1:
            # the stack layer asks for NICs where the KV cache crosses between roles; an instance
            # over nodes needs them without prefill pods too, for its own EP all-to-all and DP collectives
            n = rdma.get("count", 1)
            vllm["resources"] = {"limits": {rdma["resource"]: n}, "requests": {rdma["resource"]: n}}
        if len(vllm) > 1:
            ms[role]["containers"] = [vllm]
    ports = _rank_ports(ms, hw, release)
    router: dict[str, Any] = {}
    if ports:
        # every DP rank answers on its own port: the pool must list them all, or only rank 0 serves
        router = {"router": {"modelServers": {"targetPorts": [{"number": p} for p in ports]}}}
        notes.append(f"multi-port data parallelism: the InferencePool targets ports {ports[0]}-{ports[-1]} (one per local DP rank)")
    ts = hw.get("timeSlicing")
    if ts:
        pods = decode.replicas + (prefill.replicas if mode == "disaggregated" else 0)
        cap = math.floor(ts.get("memoryBudget", 0.8) / pods * 100) / 100
        if cap < 0.05:
            raise InputError(
                f"{pods} vLLM pods cannot share one time-sliced GPU: each would get {cap:.2f} of its memory",
                hint="use fewer replicas, e.g. --prefill 1xTP1 --decode 1xTP1",
            )
        for role in ms:
            vllm = (ms[role].get("containers") or [{"name": "vllm"}])[0]
            ms[role]["containers"] = [{**vllm, "args": [*vllm.get("args", []), f"--gpu-memory-utilization={cap:.2f}"]}]
        notes.append(f"time-slicing: --gpu-memory-utilization={cap:.2f} on each of {pods} pods (sum {cap * pods:.2f} <= 1.0)")
    return _Layer("layout", f"--prefill {prefill} --decode {decode}", {"ms": ms, **({"router": router} if router and release.generation == "router" else {})}), notes


# A GPU cluster is usually full: Kubernetes' default rollout (25% surge, 25% unavailable: one new
# pod first, none old gone) needs spare GPUs that are not there, and the change stalls Pending.
ROLLOUT_STRATEGIES = {
    "surge": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
    "in-place": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}},
    "recreate": {"type": "Recreate"},
}


def _rollout_layer(spec: Spec, mode: str) -> _Layer:
    """Each role's Deployment strategy (a LeaderWorkerSet's rolloutStrategy follows it): what apply
    chose from the live stack, --rollout, or in place when nothing is known (a bundle rendered
    without a cluster must not stall on a full one)."""
    chosen = dict(spec.rollout)
    roles = ("prefill", "decode") if mode == "disaggregated" else ("decode",)
    ms = {role: {"strategy": copy.deepcopy(ROLLOUT_STRATEGIES[chosen.get(role, "in-place")])} for role in roles}
    what = ", ".join(f"{role} {chosen.get(role, 'in-place')}" for role in roles)
    return _Layer("rollout", f"how a change replaces the pods: {what}", {"ms": ms})


# what every container of a pod may keep when the hardware needs nothing more (Pod Security's
# restricted profile, less runAsNonRoot: the vLLM images run as root)
LEAST_PRIVILEGE = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"}}


def _least_privilege_layer(hw: dict) -> list[_Layer]:
    """The vLLM containers drop every capability but the ones the profile adds (IPC_LOCK where UCX
    pins memory for RDMA), never escalate, and run under the runtime's default seccomp profile.
    Not for hardware whose pods share the host's namespaces (host-network runs privileged; GB200's
    cross-pod CUDA IPC needs the host's IPC and PID): those keep what their guides run with."""
    if hw.get("hostNetwork") or hw.get("hostAccess"):
        return []
    return [_Layer("least privilege", "vLLM drops all capabilities but the profile's, no privilege escalation, seccomp RuntimeDefault",
                   {"ms": {"roles": {"containers": [{"name": "vllm", "securityContext": copy.deepcopy(LEAST_PRIVILEGE)}]}}})]


def _drain_layer(release: Release, layout: _Layer) -> list[_Layer]:
    """What lets a pod that is replaced or scaled down finish its requests (the release's
    engine.drain): a preStop sleep while the router stops picking it, vLLM's drain on SIGTERM, and
    a grace period longer than both. An instance over nodes drains longer (long MoE requests)."""
    drain = release.engine.get("drain")
    if not drain:
        return []
    ms: dict[str, Any] = {}
    seen = []
    for role, block in layout.values["ms"].items():
        wide = block["parallelism"].get("workers", 1) > 1
        timeout = drain["multiNodeShutdownTimeoutSeconds" if wide else "shutdownTimeoutSeconds"]
        grace = drain["preStopSeconds"] + timeout + drain["teardownSeconds"]
        ms[role] = {
            "terminationGracePeriodSeconds": grace,
            "containers": [{"name": "vllm", "args": [f"--shutdown-timeout={timeout}"],
                            "extraConfig": {"lifecycle": {"preStop": {"sleep": {"seconds": drain["preStopSeconds"]}}}}}],
        }
        seen.append(f"{role} {drain['preStopSeconds']} s + {timeout} s of {grace} s")
    return [_Layer("drain", "in-flight requests finish before a pod exits (preStop, --shutdown-timeout, grace): " + ", ".join(seen), {"ms": ms})]


def _parallelism(role: str, lay: RoleLayout, hw: dict, release: Release) -> dict:
    """modelservice's parallelism block for a role: ranks per pod (dataLocal) and pods per instance
    (workers) follow from the profile's GPUs per node; a shape nodes cannot hold is refused here."""
    par: dict[str, Any] = {"tensor": lay.tensor}
    if lay.data == 1:
        return par
    flag = f"--{role} {lay}"
    per_node = int(hw.get("gpusPerNode") or 8)
    if lay.tensor > per_node:
        raise InputError(f"{flag}: TP{lay.tensor} is more than the {per_node} GPUs of one node; tensor parallelism does not span nodes",
                         hint=f"use TP{per_node} or less, with more DP ranks")
    local = min(lay.data, per_node // lay.tensor)
    if lay.data % local:
        fit = [n * local for n in (lay.data // local, lay.data // local + 1) if n]
        raise InputError(f"{flag}: DP{lay.data} x TP{lay.tensor} does not fill whole nodes of {per_node} GPUs "
                         f"({local} ranks per node, so the last node would be part-used and the DP group uneven)",
                         hint="use DP" + " or DP".join(str(n) for n in fit) + f" (a multiple of {local})")
    workers = lay.data // local
    if workers > 1 and release.generation != "router":
        raise InputError(f"{flag}: an instance over {workers} nodes needs a LeaderWorkerSet, which llmdctl generates for llm-d v0.7.0 and later",
                         hint=f"use --llmd-version v0.9.0, or DP{local} (one node) on llm-d {release.name}")
    par.update(data=lay.data, dataLocal=local, workers=workers)
    return par


def _dp_balancer_flags(par: dict, hw: dict) -> list[str]:
    """How the ranks of an instance over several nodes take requests: hybrid (one API server per
    node spreads over its local ranks; vLLM's GB200 guide) or multi-port (one port per rank behind a
    per-node supervisor; llm-d's wide-EP guide), as the hardware profile says."""
    if par.get("workers", 1) <= 1:
        return []
    return ["--data-parallel-hybrid-lb"] if _dp_load_balancing(hw) == "hybrid" else ["--data-parallel-multi-port-external-lb"]


def _dp_load_balancing(hw: dict) -> str:
    return (hw.get("dataParallel") or {}).get("loadBalancing", "hybrid")


def _rank_ports(ms: dict, hw: dict, release: Release) -> list[int]:
    if _dp_load_balancing(hw) != "multi-port":
        return []
    local = max((block["parallelism"].get("dataLocal", 1) for block in ms.values() if block["parallelism"].get("workers", 1) > 1), default=0)
    port = release.contract["servicePort"]
    return [port + i for i in range(local)] if local else []


# --- dialects ------------------------------------------------------------------------------


def _gateway_class(infra: dict, release: Release, gw: dict) -> str:
    """The GatewayClass the pinned llm-d-infra chart will write on the Gateway for these values."""
    gateway = infra.get("gateway") or {}
    given = str(gateway.get("gatewayClassName") or "")
    if not release.dialect["infraProviderKey"]:
        return given or gw["className"]
    rewrites = release.dialect["gatewayClassRewrites"]
    name = given or str(gateway.get("provider") or "istio")
    return rewrites.get(name, name)


def _infra_dialect(values: dict, release: Release, gw: dict, provenance: dict) -> dict:
    """llm-d-infra < v1.4 has no gateway.provider: the class name alone picks the implementation."""
    if release.dialect["infraProviderKey"]:
        return values
    out = copy.deepcopy(values)
    gateway = out.setdefault("gateway", {})
    gateway.pop("provider", None)
    gateway["gatewayClassName"] = gw["className"]
    params = gateway.get("gatewayParameters") or {}
    istio = params.pop("istio", None) if isinstance(params, dict) else None
    if isinstance(istio, dict) and "accessLogging" in istio:
        params["accessLogging"] = istio["accessLogging"]
    provenance["gateway.gatewayClassName"] = f"llm-d {release.name} dialect"
    return out


# --- the composer --------------------------------------------------------------------------


def _layouts(spec: Spec, guide: Layer, hardware: Layer) -> tuple[RoleLayout, RoleLayout]:
    def seed(role: str) -> RoleLayout:
        given = getattr(spec, role)
        if given is not None:
            return given
        for layer in (guide, hardware):
            if role in layer.defaults:
                return parse_layout(layer.defaults[role], f"--{role}")
        return RoleLayout(1, 1)

    return seed("prefill"), seed("decode")


def _rdma_override(text: str) -> dict | None:
    if text.lower() in ("none", "off", "false"):
        return None
    name, _, count = text.partition("=")
    if not re.fullmatch(r"[a-z0-9.-]+/[A-Za-z0-9_.-]+", name):
        raise InputError(f"--rdma-resource '{text}': expected an extended resource name such as rdma/ib or rdma/roce_gdr=2 (or 'none')")
    if count and (not re.fullmatch("[0-9]+", count) or int(count) < 1):
        raise InputError(f"--rdma-resource '{text}': the count after '=' must be a whole number of at least 1",
                         hint="give the NICs each pod needs (e.g. rdma/ib=1), or --rdma-resource none for no RDMA")
    return {"resource": name, "count": int(count or 1)}


def compose(spec: Spec, catalog: Catalog | None = None) -> Plan:
    """Build the plan for one stack. Pure: reads the catalog, writes nothing."""
    catalog = catalog or default_catalog()
    guide = catalog.guide(spec.guide)
    release = catalog.release(spec.llmd_version)
    envs = catalog.resolve_environments(list(spec.environments), release.generation)
    hardware = catalog.layer(envs["hardware"])
    overlays = [catalog.layer(n) for n in envs["overlays"]]
    gateway = catalog.layer(envs["gateway"])
    _check_generation(release, [hardware, *overlays, gateway])

    hw = merge_values(copy.deepcopy(hardware.hardware), {})
    for ov in overlays:
        hw = merge_values(hw, ov.hardware)
    if spec.rdma_resource is not None:
        rdma = _rdma_override(spec.rdma_resource)
        if rdma and hw.get("rdma"):
            rdma = {**hw["rdma"], **rdma, "clusterSpecific": False}
            if "=" in spec.rdma_resource:  # a count given on the command line is every role's
                rdma.pop("countByRole", None)
        if rdma is None and hw.get("kvTransport") == "rdma" and not (hw.get("dra") or hw.get("hostNetwork")):
            # no NIC is requested and none comes by DRA or the host's network: UCX moves the KV
            # cache (and an instance over nodes its collectives) over TCP, and the rules must know
            hw["kvTransport"] = "tcp"
        hw["rdma"] = rdma
    if spec.tolerations:  # the user's, after the profile's (a taint of their own GPU nodes)
        known = list(hw.get("tolerations") or [])
        hw["tolerations"] = known + [t for t in (x.as_dict() for x in spec.tolerations) if t not in known]
    hw = {k: v for k, v in hw.items() if v is not None}
    gw = gateway.gateway

    check_secret_name(spec.hf_secret, input_name("hfSecret", "--hf-secret", spec.origin, spec.spec_file))
    namespace = spec.namespace or guide.defaults.get("namespace", "llm-d-pd")
    postfix = spec.postfix or guide.defaults.get("postfix", "pd")
    check_names(namespace, postfix, gw["provider"])
    names = stack_names(namespace, postfix, gw["provider"], release.generation)
    model_route = shared_gateway.model_route(release, gw, spec)
    if spec.attach_gateway:
        names = shared_gateway.attached_names(names, spec.attach_gateway, namespace, gw["provider"])

    prefill, decode = _layouts(spec, guide, hardware)
    if decode.replicas < 1:
        raise InputError("--decode 0: a stack needs at least one decode pod", hint="e.g. --decode 1xTP4")
    mode = "disaggregated" if prefill.replicas > 0 else "aggregated"
    if guide.aggregated_only and mode == "disaggregated":
        raise InputError(
            f"guide '{guide.name}' serves without prefill pods, but --prefill {prefill} asks for {prefill.replicas}",
            hint="use --prefill 0, or --guide pd-disaggregation for P/D",
        )
    model_id = spec.model or guide.defaults.get("model") or hardware.defaults.get("model")
    if not model_id:
        raise InputError("no model: pass --model ORG/NAME (a Hugging Face id)")
    model, notes = model_facts(model_id, spec.model_size, catalog.models)
    kv = None
    if spec.prefix_cache == "precise":
        kv = kvevents.kv_events_facts(release, layouts={**({"prefill": prefill} if mode == "disaggregated" else {}), "decode": decode})

    layers: list[_Layer] = [_pins_layer(release, hw, mode)]
    layers += _catalog_layers(catalog, guide, mode, f"guide {guide.name}")
    layers += _release_defaults_layer(release, mode)
    layers += _catalog_layers(catalog, hardware, mode, f"hardware profile {hardware.name}")
    for ov in overlays:
        layers += _catalog_layers(catalog, ov, mode, f"overlay {ov.name}")
    layers += _catalog_layers(catalog, gateway, mode, f"gateway {gateway.name}")
    layers += _least_privilege_layer(hw)
    stack, selector = _stack_layer(
        names=names, namespace=namespace, guide=guide, release=release, gw=gw, hw=hw, model=model, mode=mode,
        hf_secret=spec.hf_secret, pd_threshold=spec.pd_threshold, gateway_name=gateway.name,
        scorers=spec.scorers, scheduler_params=spec.scheduler_params, kv=kv,
    )
    layers.append(stack)
    if model_route:
        layers.append(_Layer("model routing", "one Gateway, many models: the route matches the request's model name"
                             + (f" (--attach-gateway {gateway_ref_text(spec.attach_gateway)})" if spec.attach_gateway else " (--route-by-model)"),
                             shared_gateway.router_values(model_route, model=model["name"], names=names, namespace=namespace)))
    layout, layout_notes = _layout_layer(prefill, decode, mode, hw, release)
    layers.append(layout)
    if release.generation == "router":
        layers += _drain_layer(release, layout)
        layers.append(_rollout_layer(spec, mode))
    elif spec.rollout:
        raise InputError(f"--rollout: llm-d {release.name}'s modelservice chart has no strategy key, so its Deployments roll with "
                         "Kubernetes' default (25% surge: a new pod first)",
                         hint="leave out --rollout (apply refuses a change whose new pods cannot be placed), or use llm-d v0.8.0 or later")
    notes += layout_notes
    if kv:
        # after the profiles and the layout: the block size and ports must be the ones the EPP expects
        # (a --set that changes them afterwards is caught by V-30 and V-44)
        layers.append(_Layer("precise prefix-cache routing", "KV events from every vLLM pod to the EPP (--prefix-cache precise)",
                             merge_values(kvevents.vllm_values(kv, model=model["name"], pool_port=release.contract["servicePort"]),
                                          kvevents.router_values(kv, hf_secret=spec.hf_secret))))

    keys = release.release_keys
    provenance: dict[str, dict[str, str]] = {k: {} for k in keys if k != "gateway"}
    merged: dict[str, dict] = {k: {} for k in provenance}
    for layer in layers:
        for key, values in layer.values.items():
            if key not in merged:  # the other generation's release (gaie values on a router stack)
                continue
            vals = expand_roles(values) if key == "ms" else values
            try:
                merged[key] = merge_values(merged[key], vals, layer=layer.name, provenance=provenance[key])
            except InputError as exc:  # say which layer (and file) could not be merged
                where = f"{layer.source} ({layer.what})" if layer.source else layer.what
                raise InputError(f"{where}: {key}.{exc.message}", hint=exc.hint) from None

    if mode == "aggregated":
        # the chart renders nothing for a role with create: false; keep its values out of the file
        merged["ms"]["prefill"] = {"create": False}
    if release.generation == "helmfile":
        merged["infra"] = _infra_dialect(merged["infra"], release, gw, provenance["infra"])
    elif release.dialect.get("routerChart") == "gaie":
        # before the user's overrides: --set/--values address the chart's own keys
        try:
            merged["router"], provenance["router"] = gaie_values(merged["router"], provenance["router"])
        except KeyError as exc:
            raise CatalogError(f"router.{exc.args[0]}: the GAIE charts of llm-d {release.name} have no key for it",
                               hint="map it in llmdctl/compose/router.py _GAIE_PATHS, or drop it from the router layers for this release") from None

    for ov in spec.overrides:
        if ov.release not in merged:
            raise InputError(f"{_override_label(ov)[0]}: llm-d {release.name} has no {ov.release} release; its releases are "
                             + ", ".join(merged), hint="the router generation (llm-d >= v0.8) has router and ms; infra and gaie are for v0.6.0 and older")
        _apply_override(merged, ov, provenance, ROLES if mode == "disaggregated" else ("decode",))
    for key in merged:
        merged[key] = strip_patch_markers(merged[key])
    _check_roles_created(merged["ms"], mode, provenance["ms"], prefill, decode)

    check_values_schemas(release, merged, spec.overrides)  # before anything reads the values as typed data
    roles = _role_plans(merged["ms"], names, hw, mode, release.contract)
    for role, bounds in autoscaling.check_autoscale(spec.autoscale, release, roles=roles).items():
        roles[role] = roles[role]._replace(autoscale=bounds)
    if release.generation == "router":
        route = {}  # the router chart renders the HTTPRoute itself (gateway mode)
        releases = _router_release_plans(release, names, merged, spec, standalone=gw["provider"] == "standalone",
                                         own_gateway=not spec.attach_gateway)
    else:
        route = build_route(names, gw, release, gateway.name)
        releases = _release_plans(release, names, merged, spec)
    plan = Plan(
        namespace=namespace, postfix=postfix, guide=guide.name, llmd_version=release.name,
        hardware=hardware.name, overlays=tuple(o.name for o in overlays), gateway=gateway.name, mode=mode,
        model=model, roles=roles, releases=releases, route=route, names=names, pool_selector=selector,
        hardware_facts=hw, gateway_facts={**gw, "className": _gateway_class(merged["infra"], release, gw) if "infra" in merged else gw["className"]}, release_info=release,
        layers=_unique_layers(layers, spec),
        provenance=provenance, hf_secret=spec.hf_secret, notes=tuple(notes + _router_notes(release, hw, mode, spec)), spec=spec,
    )
    return plan.replace(manifests=generated_manifests(plan)) if release.generation == "router" else netpol.with_extra_objects(plan)


def _release_defaults_layer(release: Release, mode: str) -> list[_Layer]:
    """What the release's own P/D overlays set on every vLLM pod (env, probes, volumes), after the guide."""
    d = release.model_server_defaults
    blocks = [d.get("values"), d.get("disaggregatedValues" if mode == "disaggregated" else "aggregatedValues")]
    values: dict = {}
    for block in blocks:
        if block:
            values = merge_values(values, {"ms": expand_roles(block["ms"])} if "ms" in block else {})
    return [_Layer(f"llm-d {release.name} overlays", "what the release's P/D overlays set on the vLLM pods", values)] if values else []


def _check_generation(release: Release, layers: list[Layer]) -> None:
    """A layer that only one generation can express is refused on the other, with its reason."""
    for layer in layers:
        facts = layer.hardware if layer.kind in ("hardware", "overlay") else layer.gateway
        allowed = facts.get("generations")
        if allowed and release.generation not in allowed:
            why = facts.get("generationsWhy") or (
                "standalone mode (no Gateway) is the router chart's; llm-d <= v0.6.0 always deploys a Gateway"
                if layer.name == "standalone" else f"it is written for llm-d releases of the {'/'.join(allowed)} generation")
            newer = "v0.9.0 (or v0.8.0)" if "router" in allowed else "v0.6.0"
            raise InputError(f"-e {layer.name} cannot be expressed for llm-d {release.name}: {why}",
                             hint=f"use --llmd-version {newer}, or another profile (llmdctl profiles)")


def _router_notes(release: Release, hw: dict, mode: str, spec: Spec) -> list[str]:
    """Say where the prefill throughput the scheduler assumes came from, unless the hardware
    profile or the user (--scheduler-param) gave a measured one."""
    given = any(param == "peakPrefillThroughput" for _, param, _ in spec.scheduler_params)
    if release.generation != "router" or mode != "disaggregated" or hw.get("peakPrefillThroughput") or given \
            or release.dialect["eppPdConfig"] != "token-load":
        return []
    return [f"prefix-cache-affinity-filter peakPrefillThroughput {release.contract['peakPrefillThroughput']} was measured upstream "
            "on 8xTP1 H200 prefill (gpt-oss-120b); measure yours (upstream guides/recipes/router/calibration/calibrate.sh) and pass "
            "--scheduler-param prefix-cache-affinity-filter.peakPrefillThroughput=N"]


def generated_manifests(plan: Plan) -> dict[str, list[dict]]:
    """The objects of the charts llmdctl writes into the bundle, by release key, from the final
    ms values (after the rules' fixes)."""
    ms = plan.ms_values
    labels = (ms.get("modelArtifacts") or {}).get("labels") or {}
    out = {"ms": model_server_objects(ms, names=plan.names, labels=labels, mode=plan.mode,
                                      contract=plan.release_info.contract, dialect=plan.release_info.dialect,
                                      hf_secret=plan.hf_secret, claims=plan.claims,
                                      compute_domain=plan.hardware_facts.get("computeDomain"),
                                      autoscaled={r.role for r in plan.roles.values() if r.autoscale})}
    out["ms"] += autoscaling.hpa_objects(plan, labels)
    if plan.kv_events:
        out["ms"].append(kvevents.render_service(names=plan.names, labels=labels, selector=plan.pool_selector))
    out["ms"] += netpol.network_policies(plan)
    if any(r.key == "gateway" for r in plan.releases):
        out["gateway"] = gateway_objects(names=plan.names, gw=plan.gateway_facts,
                                         labels={"app.kubernetes.io/instance": plan.names["stackLabel"]})
    return out


def chart_bundle_files(plan: Plan) -> dict[str, str]:
    """Bundle path -> text for every chart llmdctl generates (charts/<release key>/...)."""
    files: dict[str, str] = {}
    for rel in plan.releases:
        if not rel.generated:
            continue
        what = "model servers (prefill and decode)" if rel.key == "ms" else "the stack's Gateway"
        for name, text in chart_files(list(plan.manifests[rel.key]), chart=GENERATED_CHARTS[rel.key], version=__version__,
                                      description=f"{what} of llm-d stack {plan.postfix}, generated by llmdctl").items():
            files[f"{rel.chart.removeprefix('./')}/{name}"] = text
    return files


def _router_release_plans(release: Release, names: dict, merged: dict, spec: Spec, *, standalone: bool,
                          own_gateway: bool = True) -> tuple[ReleasePlan, ...]:
    pin = router_pin(standalone)
    src = resolve_charts({pin: release.charts[pin]}, folder=spec.charts, repository=spec.chart_repository,
                         llmd_version=release.name, flag=input_name("charts", "--charts", spec.origin, spec.spec_file))[pin]
    out = []
    gateway_release = not standalone and own_gateway  # an attached stack routes through a Gateway it does not own
    if gateway_release:
        out.append(ReleasePlan(key="gateway", name=names["gateway"], chart="./charts/gateway", version=__version__, repository=None,
                               needs=(), values={}, values_file="", local=True, generated=True))
    out.append(ReleasePlan(key="router", name=names["router"], chart=src.chart, version=src.version, repository=src.repository,
                           needs=(names["gateway"],) if gateway_release else (), values=merged["router"],
                           values_file="router.values.yaml", local=src.local))
    out.append(ReleasePlan(key="ms", name=names["ms"], chart="./charts/ms", version=__version__, repository=None,
                           needs=(names["router"],), values=merged["ms"], values_file="", local=True, generated=True))
    return tuple(out)


def evaluate(plan: Plan, catalog: Catalog | None = None) -> Plan:
    """Run every named rule over ``plan`` and return the plan they lead to; ``plan`` is unchanged.

    Fix rules run first, in order, each on the plan the previous fixes made; their deltas merge
    into the ms values like any layer. Then the checks run on the fixed plan. Any error refuses
    with every finding attached.
    """
    about = check_rule_catalog((catalog or default_catalog()).rules)
    findings: list[Finding] = []
    for r in (r for r in RULES if r.severity == "fix"):
        fixes = r.fixes(plan, about[r.id])
        if fixes:
            ms = plan.ms_values
            for finding, delta in fixes:
                try:
                    ms = merge_values(ms, delta)
                except InputError as exc:  # the values have a shape the fix cannot merge into: say whose fix and where
                    raise InputError(f"{r.id} could not apply its fix ({finding.message}): ms.{exc.message}",
                                     hint=exc.hint or "check the type of that key in your --set / --values and the profile's values") from None
                findings.append(finding)
            plan = _with_ms_values(plan, strip_patch_markers(ms))
    for r in (r for r in RULES if r.severity != "fix"):
        findings += r.findings(plan, about[r.id])
    errors = [f for f in findings if f.severity == "error"]
    if errors:
        lines = [f"{f.rule}: {f.message}" for f in errors]
        raise ValidationError("refused:\n  " + "\n  ".join(lines), findings, hint=errors[0].why)
    return plan.replace(findings=tuple(findings))


def plan_stack(spec: Spec, catalog: Catalog | None = None) -> Plan:
    """Inputs to a checked plan: compose, then the named rules. What every command starts from."""
    return evaluate(compose(spec, catalog), catalog)


def _with_ms_values(plan: Plan, ms: dict) -> Plan:
    releases = tuple(r.replace(values=ms) if r.key == "ms" else r for r in plan.releases)
    roles = _role_plans(ms, plan.names, plan.hardware_facts, plan.mode, plan.release_info.contract)
    plan = plan.replace(releases=releases, roles=roles)
    return plan.replace(manifests=generated_manifests(plan)) if plan.release_info.generation == "router" else plan


def _unique_layers(layers: list[_Layer], spec: Spec) -> tuple[LayerInfo, ...]:
    """One entry per layer in merge order; a layer's values and mode values count once."""
    out: list[LayerInfo] = []
    for layer in layers:
        if layer.name not in [info.name for info in out]:
            out.append(LayerInfo(layer.name, layer.what, layer.summary))
    return tuple(out) + tuple(LayerInfo(*_override_label(o)) for o in spec.overrides)


def _check_roles_created(ms: dict, mode: str, provenance: dict, prefill: RoleLayout, decode: RoleLayout) -> None:
    """A role is switched on and off by the layout, never by ``<role>.create``: the EPP config, the
    decode sidecar and the pool are all built for the layout, so a role removed behind their back
    leaves a P/D router waiting for prefill pods that never come (or an aggregated stack with a
    prefill Deployment nothing routes to)."""
    for role, want in (("prefill", mode == "disaggregated"), ("decode", True)):
        created = (ms.get(role) or {}).get("create", True) is not False
        if created == want:
            continue
        where = provenance.get(f"{role}.create") or "an override"
        if role == "decode":
            raise InputError(f"ms.decode.create=false ({where}): a stack serves through its decode pods and cannot run without them",
                             hint="remove the override; to stop serving, `llmdctl destroy` the stack")
        if want:
            raise InputError(f"ms.prefill.create=false ({where}) on a P/D stack (--prefill {prefill}): the router and the decode "
                             "sidecar would still send every prompt to prefill pods that do not exist",
                             hint=f"for serving without prefill pods use --prefill 0 (aggregated: decode pods only, --decode {decode})")
        raise InputError(f"ms.prefill.create=true ({where}) on an aggregated stack (--prefill 0): nothing would route to those pods",
                         hint="for P/D, give the prefill layout instead, e.g. --prefill 4xTP1")


def _override_label(ov) -> tuple[str, str]:
    what = "user override (spec file)" if ov.from_spec else "user override"
    if ov.file:
        return (f"--values {ov.release}={ov.file}", what)
    return (f"--set {ov.release}.{ov.path}", what)


def _apply_override(merged: dict, ov, provenance: dict, roles: tuple[str, ...]) -> None:
    label = _override_label(ov)[0]
    if ov.file is not None:
        data = expand_roles(ov.data, roles) if ov.release == "ms" else ov.data
        try:
            merged[ov.release] = merge_values(merged[ov.release], data, layer=label, provenance=provenance[ov.release])
        except InputError as exc:
            raise InputError(f"{label}: {ov.release}.{exc.message}", hint=exc.hint) from None
        return
    parts = split_path(ov.path)
    targets = [parts]
    if ov.release == "ms" and parts[0] == "roles":
        targets = [[role] + parts[1:] for role in roles]
    for target in targets:
        set_path(merged[ov.release], target, copy.deepcopy(ov.value), f"{ov.release}.{ov.path}")
        provenance[ov.release][".".join(str(p) for p in target)] = label


def _role_plans(ms: dict, names: dict, hw: dict, mode: str, contract: dict) -> dict[str, RolePlan]:
    accel = (ms.get("accelerator") or {}).get("type", "nvidia")
    proxy = (ms.get("routing") or {}).get("proxy") or {}
    service_port = (ms.get("routing") or {}).get("servicePort", contract["servicePort"])
    plans = {}
    for role in ROLES:
        block = ms.get(role) or {}
        if role == "prefill" and (mode == "aggregated" or block.get("create") is False):
            continue
        par = block.get("parallelism") or {}
        tensor, local = int(par.get("tensor", 1)), int(par.get("dataLocal", 1))
        workers = int(par.get("workers", 1))
        container = next((c for c in block.get("containers") or [] if isinstance(c, dict) and c.get("name") == "vllm"), {})
        args = [str(a) for a in container.get("args") or []]
        role_accel = (block.get("accelerator") or {}).get("type", accel)
        vllm_port = proxy.get("targetPort", contract["proxyTargetPort"]) if role == "decode" and proxy.get("enabled", mode == "disaggregated") else service_port
        multi_port = workers > 1 and "--data-parallel-multi-port-external-lb" in args
        plans[role] = RolePlan(
            role=role, replicas=int(block.get("replicas", 1)), tensor=tensor, gpus_per_pod=tensor * local,
            # the chart falls back to nvidia.com/gpu for a type it does not know
            accelerator_resource=contract["acceleratorResources"].get(role_accel, contract["acceleratorResources"]["nvidia"]),
            rdma=_role_rdma(hw.get("rdma"), role) if mode == "disaggregated" or workers > 1 else None,
            image=str(container.get("image", "")), vllm_port=vllm_port, deployment=names[role],
            data=int(par.get("data", local * workers)), data_local=local, workers=workers,
            expert="--enable-expert-parallel" in args,
            rank_ports=tuple(service_port + i for i in range(local)) if multi_port else (),
        )
    return plans


def _role_rdma(rdma: dict | None, role: str) -> dict | None:
    if not rdma:
        return None
    by_role = rdma.get("countByRole") or {}
    return {**rdma, "count": by_role.get(role, rdma.get("count", 1))} if role in by_role else rdma


def build_route(names: dict, gw: dict, release: Release, gateway_name: str) -> dict:
    """The stack's HTTPRoute: the stack's Gateway -> its InferencePool, on the pinned API group."""
    pool_api = release.dialect["poolApiVersion"].get(gateway_name, release.dialect["poolApiVersion"]["default"])
    backend: dict[str, Any] = {"group": pool_api.split("/")[0], "kind": "InferencePool", "name": names["pool"]}
    route_opts = gw.get("route", {})
    if route_opts.get("backendPort", True):
        backend["port"] = release.contract["servicePort"]
    backend["weight"] = 1
    rule: dict[str, Any] = {"backendRefs": [backend], "matches": [{"path": {"type": "PathPrefix", "value": "/"}}]}
    if route_opts.get("timeouts", True):
        # P/D requests can take minutes; the gateway's default timeout would cut them off
        rule["timeouts"] = {"backendRequest": "0s", "request": "0s"}
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {
            "name": names["route"],
            "labels": {"app.kubernetes.io/managed-by": "llmdctl", "app.kubernetes.io/instance": names["stackLabel"]},
        },
        "spec": {
            "parentRefs": [{"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": names["gateway"]}],
            "rules": [rule],
        },
    }


def _release_plans(release: Release, names: dict, merged: dict, spec: Spec) -> tuple[ReleasePlan, ...]:
    needs = {"infra": (), "gaie": (names["infra"],), "ms": (names["infra"], names["gaie"])}
    keys = release.release_keys
    sources = resolve_charts({k: release.charts[k] for k in keys}, folder=spec.charts, repository=spec.chart_repository,
                             llmd_version=release.name, flag=input_name("charts", "--charts", spec.origin, spec.spec_file))
    out = []
    for key in keys:
        src = sources[key]
        out.append(ReleasePlan(
            key=key, name=names[key], chart=src.chart, version=src.version, repository=src.repository,
            needs=needs[key], values=merged[key], values_file=f"{key}.values.yaml", local=src.local,
        ))
    return tuple(out)


def stack_target(namespace: str | None, postfix: str | None, env: dict | None = None, catalog: Catalog | None = None) -> tuple[str, str]:
    """Namespace and postfix for commands that take no stack inputs (destroy, status): the flags,
    then ``$NAMESPACE`` / ``$RELEASE_NAME_POSTFIX`` as in the upstream guides, then the guide's defaults."""
    env = os.environ if env is None else env
    defaults = (catalog or default_catalog()).guide("pd-disaggregation").defaults
    ns = namespace or env.get("NAMESPACE") or defaults.get("namespace", "llm-d-pd")
    pf = postfix or env.get("RELEASE_NAME_POSTFIX") or defaults.get("postfix", "pd")
    check_names(ns, pf)
    return ns, pf
