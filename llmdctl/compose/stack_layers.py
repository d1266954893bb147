"""The layers that make a stack of the catalog's pieces: the release's pinned images and ports,
the stack's own names, model, labels and selectors (both generations), and the helmfile era's
llm-d-infra dialect."""

from __future__ import annotations

import copy
from typing import Any

from ..base.errors import InputError
from ..base.templates import render_template
from ..catalog.catalog import Layer, Release
from . import kvevents
from .layer import ValuesLayer, expand_roles
from .router import router_pins, router_values
from .scheduler import check_epp_config, scheduler_config, selective_pd

def _vllm(image: str, port: int) -> dict:
    return {"name": "vllm", "image": image, "ports": [{"name": "vllm", "containerPort": port, "protocol": "TCP"}]}


def pins_layer(release: Release, hw: dict, mode: str) -> ValuesLayer:
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
        return ValuesLayer(f"llm-d {release.name}", "pinned images and chart contract", {"ms": ms, "router": router_pins(release)})
    gaie = {"inferenceExtension": {"image": {"hub": hub, "name": name, "tag": tag, "pullPolicy": "Always"}}}
    return ValuesLayer(f"llm-d {release.name}", "pinned images and chart contract", {"ms": ms, "gaie": gaie})


def stack_layer(
    *, names: dict, namespace: str, guide: Layer, release: Release, gw: dict, hw: dict, model: dict,
    mode: str, hf_secret: str, pd_threshold: int | None, gateway_name: str,
    scorers: tuple = (), scheduler_params: tuple = (), kv: dict | None = None,
) -> tuple[ValuesLayer, dict]:
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
    check_epp_config(config, config_file)
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
    return ValuesLayer("stack", "names, model, labels and selectors", {"ms": expand_roles({**ms, **_pod_values(hw, mode, selector)}), "gaie": gaie}), selector


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
                        kv: dict | None = None) -> tuple[ValuesLayer, dict]:
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
            config = selective_pd(config, pd_threshold)
    else:
        config = render_template("epp-router-scheduling.yaml.tmpl", api_version=api)
        config_file = "scheduling-config.yaml"
    check_epp_config(config, config_file)
    if kv:
        config = kvevents.epp_config(config, kv, model=model["name"], render_service=names["render"])
    if scorers or scheduler_params:
        config = scheduler_config(config, release, scorers, scheduler_params)
    router = router_values(names=names, release=release, selector=selector, config_file=config_file, config=config,
                           standalone=gw["provider"] == "standalone", gw=gw)
    ms: dict[str, Any] = {"modelArtifacts": {"uri": model["uri"], "name": model["name"], "size": model["size"],
                                             "authSecretName": hf_secret, "labels": labels}}
    return ValuesLayer("stack", "names, model, labels and selectors", {"ms": expand_roles({**ms, **_pod_values(hw, mode, selector)}), "router": router}), selector


def gateway_class(infra: dict, release: Release, gw: dict) -> str:
    """The GatewayClass the pinned llm-d-infra chart will write on the Gateway for these values."""
    gateway = infra.get("gateway") or {}
    given = str(gateway.get("gatewayClassName") or "")
    if not release.dialect["infraProviderKey"]:
        return given or gw["className"]
    rewrites = release.dialect["gatewayClassRewrites"]
    name = given or str(gateway.get("provider") or "istio")
    return rewrites.get(name, name)


def infra_dialect(values: dict, release: Release, gw: dict, provenance: dict) -> dict:
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
