"""Compose catalog layers and inputs into a ``Plan``: plain data that every effect only reads.

Layer order, stated once (``compose``; the layers live in stack_layers.py and layout.py):

1. ``llm-d <version>``  pinned images and the chart contract (ports, vLLM container);
2. guide             (and the guide it extends);
3. llm-d overlays    what the release's own P/D overlays set on every vLLM pod;
4. hardware profile  (and the profile it extends);
5. overlays          in the order given with ``-e``;
6. gateway;
7. least privilege   vLLM's securityContext where the hardware needs no host access;
8. stack             names, model, labels and selectors derived from namespace and postfix;
9. model routing     (--attach-gateway, --route-by-model) the route's model header;
10. layout           replicas, parallelism, per-pod memory caps;
11. drain, rollout   (router generation) preStop / --shutdown-timeout / grace, and the strategy;
12. precise prefix-cache routing (--prefix-cache precise);
13. user overrides   ``--values`` files, then ``--set``, each in the order given.

Each catalog layer may carry ``values`` (always), ``disaggregatedValues`` (layouts with prefill
pods) and ``aggregatedValues`` (decode only). Inside ``ms`` values, ``roles`` applies to both
``decode`` and ``prefill``; the role-specific blocks of the same layer win over it.
"""

from __future__ import annotations

import copy
import os
import re
from typing import Any

from ..base.errors import CatalogError, Finding, InputError, ValidationError
from ..base.merge import merge_values, set_path, split_path, strip_patch_markers
from ..catalog.catalog import Catalog, Layer, Release, default_catalog
from ..inputs.charts import resolve_charts
from ..inputs.spec import RoleLayout, Spec, gateway_ref_text, input_name, parse_layout
from .. import __version__
from ..plan.stack import ROLES, LayerInfo, Plan, ReleasePlan, RolePlan
from . import autoscaling, kvevents, netpol, shared_gateway
from .layer import ValuesLayer, expand_roles
from .layout import drain_layer, layout_layer, least_privilege_layer, role_rdma, rollout_layer
from .modelserver import chart_files, model_server_objects
from .names import GENERATED_CHARTS, check_names, check_secret_name, stack_names
from .router import gaie_values, gateway_objects, router_pin
from .rules import RULES, check_rule_catalog
from .values_schemas import check_values_schemas
from .model_volume import model_facts
from .stack_layers import gateway_class, infra_dialect, pins_layer, stack_layer



# --- layers --------------------------------------------------------------------------------




def _catalog_layers(catalog: Catalog, layer: Layer, mode: str, what: str) -> list[ValuesLayer]:
    members = {name: catalog.layer(name) for name in layer.chain}
    out = []
    pairs = list(layer.values) + list(layer.disaggregated if mode == "disaggregated" else layer.aggregated)
    # keep chain order: base layer's values, then its mode values, then the child's
    order = {n: i for i, n in enumerate(layer.chain)}
    pairs.sort(key=lambda p: order[p[0]])
    for name, values in pairs:
        out.append(ValuesLayer(name, f"{what} {name}" if name != layer.name else what, values, members[name].summary, members[name].source))
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

    layers: list[ValuesLayer] = [pins_layer(release, hw, mode)]
    layers += _catalog_layers(catalog, guide, mode, f"guide {guide.name}")
    layers += _release_defaults_layer(release, mode)
    layers += _catalog_layers(catalog, hardware, mode, f"hardware profile {hardware.name}")
    for ov in overlays:
        layers += _catalog_layers(catalog, ov, mode, f"overlay {ov.name}")
    layers += _catalog_layers(catalog, gateway, mode, f"gateway {gateway.name}")
    layers += least_privilege_layer(hw)
    stack, selector = stack_layer(
        names=names, namespace=namespace, guide=guide, release=release, gw=gw, hw=hw, model=model, mode=mode,
        hf_secret=spec.hf_secret, pd_threshold=spec.pd_threshold, gateway_name=gateway.name,
        scorers=spec.scorers, scheduler_params=spec.scheduler_params, kv=kv,
    )
    layers.append(stack)
    if model_route:
        layers.append(ValuesLayer("model routing", "one Gateway, many models: the route matches the request's model name"
                             + (f" (--attach-gateway {gateway_ref_text(spec.attach_gateway)})" if spec.attach_gateway else " (--route-by-model)"),
                             shared_gateway.router_values(model_route, model=model["name"], names=names, namespace=namespace)))
    layout, layout_notes = layout_layer(prefill, decode, mode, hw, release)
    layers.append(layout)
    if release.generation == "router":
        layers += drain_layer(release, layout)
        layers.append(rollout_layer(spec, mode))
    elif spec.rollout:
        raise InputError(f"--rollout: llm-d {release.name}'s modelservice chart has no strategy key, so its Deployments roll with "
                         "Kubernetes' default (25% surge: a new pod first)",
                         hint="leave out --rollout (apply refuses a change whose new pods cannot be placed), or use llm-d v0.8.0 or later")
    notes += layout_notes
    if kv:
        # after the profiles and the layout: the block size and ports must be the ones the EPP expects
        # (a --set that changes them afterwards is caught by V-30 and V-44)
        layers.append(ValuesLayer("precise prefix-cache routing", "KV events from every vLLM pod to the EPP (--prefix-cache precise)",
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
        merged["infra"] = infra_dialect(merged["infra"], release, gw, provenance["infra"])
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
        hardware_facts=hw, gateway_facts={**gw, "className": gateway_class(merged["infra"], release, gw) if "infra" in merged else gw["className"]}, release_info=release,
        layers=_unique_layers(layers, spec),
        provenance=provenance, hf_secret=spec.hf_secret, notes=tuple(notes + _router_notes(release, hw, mode, spec)), spec=spec,
    )
    return plan.replace(manifests=generated_manifests(plan)) if release.generation == "router" else netpol.with_extra_objects(plan)


def _release_defaults_layer(release: Release, mode: str) -> list[ValuesLayer]:
    """What the release's own P/D overlays set on every vLLM pod (env, probes, volumes), after the guide."""
    d = release.model_server_defaults
    blocks = [d.get("values"), d.get("disaggregatedValues" if mode == "disaggregated" else "aggregatedValues")]
    values: dict = {}
    for block in blocks:
        if block:
            values = merge_values(values, {"ms": expand_roles(block["ms"])} if "ms" in block else {})
    return [ValuesLayer(f"llm-d {release.name} overlays", "what the release's P/D overlays set on the vLLM pods", values)] if values else []


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


def _unique_layers(layers: list[ValuesLayer], spec: Spec) -> tuple[LayerInfo, ...]:
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
            rdma=role_rdma(hw.get("rdma"), role) if mode == "disaggregated" or workers > 1 else None,
            image=str(container.get("image", "")), vllm_port=vllm_port, deployment=names[role],
            data=int(par.get("data", local * workers)), data_local=local, workers=workers,
            expert="--enable-expert-parallel" in args,
            rank_ports=tuple(service_port + i for i in range(local)) if multi_port else (),
        )
    return plans


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
