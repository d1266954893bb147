"""doctor: every pre-apply check against the target cluster (tools, version, CRDs, GatewayClass,
placement, admission, namespace and Secret, metrics APIs for autoscaling, a shared Gateway).

The pod templates doctor judges are the bundle's own, rendered by helmfile as apply will render
them (``rendered_workloads``); ``preflight`` is the fast part apply runs before it changes anything."""

from __future__ import annotations

from ..compose.autoscaling import served_metrics
from ..compose import netpol
from ..compose.names import hf_secret_command
from ..compose.shared_gateway import bbr_install_command, route_models, route_parents
from ..plan.stack import Plan
from .health import DRA_V1_MIN, FAIL, GENERATED_KIND_CRDS, NATIVE_SIDECAR_MIN, PASS, WARN, Check, _cond, pool_api_version, selector_text
from .kube import APISERVICES, CRDS, DAEMONSETS, DEPLOYMENTS, GATEWAYCLASSES, GATEWAYS, HTTPROUTES, NAMESPACES, NODES, PODS, Kube, KubeError, kube_for
from pathlib import Path

from .admission import Workload, admission_checks, workloads_of
from .bundle import bundle_files
from .bundle_folder import write_bundle
from .diagnosis import hf_secret_ready
from .tools import Command, StepFailed, ToolMissing, Toolbox, check_tools
from .placement import evaluate_capacity
from .tools import version_tuple


def provider_crds(plan: Plan) -> list[str]:
    """CRDs of the kinds the rendered charts will create, beyond Gateway API and InferencePool:
    read from the plan's values the way the charts' templates decide."""
    if plan.generation == "router":
        return _router_crds(plan)
    crds = []
    if plan.gateway_facts.get("destinationRule"):
        crds.append("destinationrules.networking.istio.io")
    gaie = plan.release("gaie").values
    provider = str(((gaie.get("provider") or {}).get("name")) or "none").lower()
    prometheus = (((gaie.get("inferenceExtension") or {}).get("monitoring") or {}).get("prometheus") or {})
    if prometheus.get("enabled") and provider != "gke":  # inferencepool: the EPP ServiceMonitor
        crds.append(MONITORING_CRDS[0])
    if any((((plan.ms_values.get(role) or {}).get("monitoring") or {}).get("podmonitor") or {}).get("enabled") for role in plan.roles):
        crds.append(MONITORING_CRDS[1])  # modelservice: a PodMonitor per role
    if provider == "gke":  # inferencepool templates/gke.yaml
        crds += ["healthcheckpolicies.networking.gke.io", "gcpbackendpolicies.networking.gke.io"]
        if prometheus.get("enabled") and (prometheus.get("auth") or {}).get("enabled", True):
            crds.append("podmonitorings.monitoring.googleapis.com")  # Google Managed Prometheus scrapes the EPP
    infra_gateway = plan.release("infra").values.get("gateway") or {}
    if plan.release_info.dialect["infraProviderKey"] and infra_gateway.get("provider") in ("kgateway", "agentgateway"):
        crds.append("agentgatewayparameters.agentgateway.dev")  # llm-d-infra v1.4.0 renders AgentgatewayParameters
    elif not plan.release_info.dialect["infraProviderKey"] and infra_gateway.get("gatewayClassName") == "kgateway":
        crds.append("gatewayparameters.gateway.kgateway.dev")  # llm-d-infra v1.3.x renders GatewayParameters
    return crds


MONITORING_CRDS = ("servicemonitors.monitoring.coreos.com", "podmonitors.monitoring.coreos.com")


def _router_crds(plan: Plan) -> list[str]:
    """The router chart's extra kinds (routerlib templates) and the generated charts' PodMonitors."""
    crds = []
    values = plan.release("router").values
    provider = str((values.get("provider") or {}).get("name") or "none").lower()
    if not plan.standalone and provider == "istio":
        crds.append("destinationrules.networking.istio.io")
    if plan.epp_monitoring.get("enabled"):
        crds.append(MONITORING_CRDS[0])
    if any(o.get("kind") == "PodMonitor" for o in plan.manifests.get("ms", ())):
        crds.append(MONITORING_CRDS[1])
    if not plan.standalone and provider == "gke":
        crds += ["healthcheckpolicies.networking.gke.io", "gcpbackendpolicies.networking.gke.io"]
    kinds = {o.get("kind") for objs in plan.manifests.values() for o in objs}
    crds += [crd for kind, crd in GENERATED_KIND_CRDS.items() if kind in kinds]
    return crds


def rendered_workloads(plan: Plan, box: Toolbox) -> tuple[list[Workload], str | None]:
    """The pod templates of every release, from `helmfile template` of the bundle (the upstream
    charts included), and a note when only the charts llmdctl generates could be read."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="llmdctl-doctor-") as tmp:
        folder = Path(tmp) / "bundle"
        write_bundle(bundle_files(plan), folder)
        try:
            render = Command("helmfile", ("--file", "helmfile.yaml", "--namespace", plan.namespace, "template", "--skip-deps"),
                             "render the bundle's pod templates", cwd=str(folder))
            text = box.query(render, timeout=180)
            return workloads_of({"bundle": _documents(text)}), None
        except (StepFailed, ToolMissing) as exc:
            why = exc.message.splitlines()[0]
    generated = workloads_of({k: list(v) for k, v in plan.manifests.items()})
    return generated, (f"the upstream charts could not be rendered ({why}); judged "
                       + ("the pod templates of the charts llmdctl generates only" if generated else "no pod template"))


def _documents(text: str) -> list[dict]:
    import yaml  # PyYAML comes with the kubernetes client; only doctor and apply read rendered charts

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return [d for d in yaml.load_all(text, Loader=loader) if isinstance(d, dict)]


def role_specs(workloads: list[Workload]) -> dict[str, dict]:
    """role -> the pod spec its pods get (the first template of the role: a LeaderWorkerSet's leader)."""
    out: dict[str, dict] = {}
    for w in workloads:
        if w.role and w.role not in out:
            out[w.role] = w.spec
    return out


def preflight(kube: Kube, plan: Plan, workloads: list[Workload]) -> list[Check]:
    """What apply asks before it changes anything: the admission dry-run and quotas, and whether
    the pods fit on the nodes they may use. One pass, no waiting."""
    checks = admission_checks(kube, plan, workloads, kube.list(PODS, plan.namespace, labels=selector_text(plan.pool_selector)))
    checks += evaluate_capacity(plan, kube.list(NODES), kube.list(PODS, fields="status.phase!=Succeeded,status.phase!=Failed"), role_specs(workloads))
    return checks


def doctor_stack(plan: Plan, box: Toolbox) -> list[Check]:
    """Every pre-apply check: tools, cluster, CRDs, GatewayClass, placement, admission, the HF Secret."""
    tools = check_tools(box, ("helmfile", "helm", "kubectl", "helm-diff"))
    workloads, note = rendered_workloads(plan, box)
    return doctor(kube_for(box), plan, tools, workloads=workloads, render_note=note)


def doctor(kube: Kube, plan: Plan, tool_checks: list, *, workloads: list[Workload] | None = None, render_note: str | None = None) -> list[Check]:
    checks = [Check(f"tool {t.tool}", t.status, t.message, f">= v{'.'.join(map(str, t.minimum))}", hint=t.fix) for t in tool_checks]
    try:
        version = kube.version()
    except KubeError as exc:
        checks.append(Check("cluster", FAIL, exc.message, "reachable", hint=exc.hint or "check --kube-context / --kubeconfig"))
        return checks

    v = version_tuple(version.get("gitVersion", ""))
    ok = v is not None and (v[0], v[1]) >= NATIVE_SIDECAR_MIN
    checks.append(Check("cluster version", PASS if ok else WARN, version.get("gitVersion", "unknown"), f">= {NATIVE_SIDECAR_MIN[0]}.{NATIVE_SIDECAR_MIN[1]}",
                        hint="" if ok else "V-31: the routing sidecar is a native sidecar; decode pods may stay in Init:0/1"))
    if plan.claims:
        dra = v is not None and (v[0], v[1]) >= DRA_V1_MIN
        checks.append(Check("DRA (resource.k8s.io/v1)", PASS if dra else FAIL, version.get("gitVersion", "unknown"), f">= {DRA_V1_MIN[0]}.{DRA_V1_MIN[1]}",
                            hint="" if dra else f"{plan.hardware} claims GPUs and NICs through resource.k8s.io/v1 ResourceClaimTemplates, GA in Kubernetes 1.34"))

    def guarded(name: str, fn):
        try:
            checks.extend(fn())
        except KubeError as exc:
            checks.append(Check(name, FAIL if exc.status != 403 else WARN, exc.message,
                                hint="the current user may not read this (kubectl auth can-i)" if exc.status == 403 else ""))

    def crd_checks():
        present = {c["metadata"]["name"]: c for c in kube.list(CRDS)}
        pool_group, pool_version = pool_api_version(plan).split("/")
        gateway_api = [] if plan.standalone else [("gateways.gateway.networking.k8s.io", "v1"), ("httproutes.gateway.networking.k8s.io", "v1")]
        wanted = gateway_api + [(f"inferencepools.{pool_group}", pool_version)] + [(n, None) for n in provider_crds(plan)]
        out = []
        for name, version_needed in wanted:
            crd = present.get(name)
            served = [v["name"] for v in (crd or {}).get("spec", {}).get("versions", []) if v.get("served")]
            if crd is None:
                out.append(Check(f"CRD {name}", FAIL, "not installed", version_needed or "installed", hint=_crd_fix(name, plan)))
            elif version_needed and version_needed not in served:
                out.append(Check(f"CRD {name}", FAIL, f"serves {', '.join(served)}", version_needed, hint=_crd_fix(name, plan)))
            else:
                out.append(_bundle_version_check(name, crd, served, version_needed, plan))
        return out

    def class_checks():
        name = plan.gateway_facts.get("className")
        gc = kube.get(GATEWAYCLASSES, name)
        if gc is None:
            return [Check(f"GatewayClass {name}", FAIL, "missing", "Accepted", hint=f"install the {plan.gateway_facts['provider']} gateway control plane (see the bundle README prerequisites)")]
        acc = _cond(gc, "Accepted")
        ok = acc is not None and acc.get("status") == "True"
        return [Check(f"GatewayClass {name}", PASS if ok else WARN, "Accepted" if ok else f"Accepted={acc.get('status') if acc else 'not reported'}", "Accepted")]

    def namespace_checks():
        ns = kube.get(NAMESPACES, plan.namespace)
        if ns is None:
            return [Check(f"namespace {plan.namespace}", WARN, "missing", "exists", hint=f"llmdctl apply --create-namespace, or kubectl create namespace {plan.namespace}"),
                    Check(f"Secret {plan.hf_secret}", FAIL, "missing (no namespace)", "key HF_TOKEN", hint=hf_secret_command(plan.namespace, plan.hf_secret))]
        has_key = hf_secret_ready(kube, plan)
        out = [Check(f"namespace {plan.namespace}", PASS, "exists", "exists")]
        if has_key:
            out.append(Check(f"Secret {plan.hf_secret}", PASS, "has key HF_TOKEN", "key HF_TOKEN"))
        else:
            out.append(Check(f"Secret {plan.hf_secret}", FAIL, "missing or without key HF_TOKEN", "key HF_TOKEN", hint=hf_secret_command(plan.namespace, plan.hf_secret)))
        return out

    guarded("CRDs", crd_checks)
    if not plan.standalone:
        guarded("GatewayClass", class_checks)
    # one list across namespaces: what other pods already hold on each node
    specs = role_specs(workloads) if workloads else None
    guarded("nodes", lambda: evaluate_capacity(plan, kube.list(NODES), kube.list(PODS, fields="status.phase!=Succeeded,status.phase!=Failed"), specs))
    if render_note:
        checks.append(Check("pod templates", WARN, render_note, "every release rendered (helmfile template)",
                            hint="llmdctl charts pull DIR and --charts DIR render without a registry"))
    if workloads is not None:
        guarded("admission", lambda: admission_checks(kube, plan, workloads, kube.list(PODS, plan.namespace, labels=selector_text(plan.pool_selector))))
    guarded("namespace", namespace_checks)
    if any(r.autoscale for r in plan.roles.values()):
        guarded("metrics APIs", lambda: metrics_api_checks(kube, plan))
    if plan.model_match:
        guarded("shared Gateway", lambda: shared_gateway_checks(kube, plan))
    if netpol.enabled(plan):
        checks.append(network_policy_check(kube))
    return checks


# The network plugin's node agent (a DaemonSet, by name) -> whether it enforces NetworkPolicy.
# Enforcing: Calico (calico-node, and canal = flannel + Calico policy), Cilium (and GKE Dataplane V2's
# anetd), Antrea, kube-router, Weave Net, Azure NPM and OVN-Kubernetes (OpenShift).
# flannel alone only routes. kindnet enforces NetworkPolicy only from kind v0.24 (its
# kube-network-policies controller), so its name alone does not tell.
ENFORCING_CNI = {"calico-node": "Calico", "canal": "Canal (Calico policy)", "cilium": "Cilium", "anetd": "GKE Dataplane V2 (Cilium)",
                 "antrea-agent": "Antrea", "kube-router": "kube-router", "weave-net": "Weave Net", "azure-npm": "Azure Network Policy Manager",
                 "ovnkube-node": "OVN-Kubernetes"}
NON_ENFORCING_CNI = {"kube-flannel-ds": "flannel", "kube-flannel": "flannel", "flannel": "flannel"}
UNSURE_CNI = {"kindnet": "kindnet (enforces NetworkPolicy from kind v0.24 on)"}


def network_policy_check(kube: Kube) -> Check:
    """Whether the cluster's network plugin enforces the bundle's NetworkPolicies, from the node
    agents' DaemonSets. Never a failure: an unenforced policy blocks nothing, it only protects nothing."""
    name, want = "NetworkPolicy enforcement", "a network plugin that enforces NetworkPolicy"
    off = "render with --network-policy off to leave the policies out"
    try:
        try:
            sets = kube.list(DAEMONSETS)
        except KubeError as exc:
            if exc.status != 403:
                raise
            sets = kube.list(DAEMONSETS, "kube-system")  # may not list every namespace: the usual home of the CNI
    except KubeError as exc:
        return Check(name, WARN, f"cannot tell: DaemonSets unreadable ({exc.message})", want,
                     hint="the current user may not list DaemonSets (kubectl auth can-i list daemonsets -A); " + off + " if your network plugin does not enforce them")
    found = sorted({(s.get("metadata") or {}).get("name", "") for s in sets})
    enforcing = [ENFORCING_CNI[n] for n in found if n in ENFORCING_CNI]
    if enforcing:
        return Check(name, PASS, ", ".join(sorted(set(enforcing))), want)
    flannel = [NON_ENFORCING_CNI[n] for n in found if n in NON_ENFORCING_CNI]
    if flannel:
        return Check(name, WARN, "flannel without a policy engine: the bundle's NetworkPolicies would be ignored", want,
                     hint="add a policy engine (Calico as canal) so the model servers are reachable only through the router, or " + off)
    unsure = [UNSURE_CNI[n] for n in found if n in UNSURE_CNI]
    return Check(name, WARN, "cannot tell: " + (", ".join(unsure) if unsure else "no known network plugin DaemonSet"), want,
                 hint="if the network plugin does not enforce NetworkPolicy, anything in the cluster reaches the model servers; " + off)


def shared_gateway_checks(kube: Kube, plan: Plan) -> list[Check]:
    """A stack that routes by model name on a shared Gateway: the attached Gateway exists, is of the
    class the stack was rendered for and admits its route; no other route on it claims the model;
    body-based routing runs beside it (without it the model header is never set and nothing matches)."""
    n, gw_ns = plan.names, plan.gateway_namespace
    header, model = plan.model_match
    facts = plan.release_info.dialect["modelRoute"]
    out: list[Check] = []
    if plan.attached:
        label = f"Gateway {gw_ns}/{n['gateway']}"
        gw = kube.get(GATEWAYS, n["gateway"], gw_ns)
        if gw is None:
            return [Check(label, FAIL, "missing", "exists (this stack attaches to it)",
                          hint="apply the stack that owns it first (its Gateway is gateway-<postfix>), or name an existing one: kubectl get gateways -A")]
        cls = (gw.get("spec") or {}).get("gatewayClassName")
        want = plan.gateway_facts.get("className")
        admits = [lst.get("name", "?") for lst in (gw.get("spec") or {}).get("listeners") or [] if _admits(lst, gw_ns, plan.namespace)]
        if cls != want:
            out.append(Check(label, FAIL, f"class {cls}", f"class {want}",
                             hint=f"this stack is rendered for -e {plan.gateway}; render it for the Gateway's implementation instead"))
        elif not admits:
            out.append(Check(label, FAIL, f"no listener admits routes from namespace {plan.namespace}", f"class {want}, a listener admitting {plan.namespace}",
                             hint="the Gateway's listeners allow routes from their own namespace only (allowedRoutes.namespaces.from: Same): "
                                  "set from: All (or a Selector matching this namespace) on the Gateway, or deploy this stack in its namespace"))
        else:
            out.append(Check(label, PASS, f"class {cls}, listener {', '.join(admits)} admits {plan.namespace}", f"class {want}, a listener admitting {plan.namespace}"))
    try:
        routes = kube.list(HTTPROUTES)
    except KubeError as exc:
        if exc.status != 403:
            raise
        routes = kube.list(HTTPROUTES, plan.namespace)  # may not list cluster-wide: at least this namespace's
    others, catch_all, taken = [], [], []
    for r in routes:
        meta = r.get("metadata") or {}
        ref = f"{meta.get('namespace')}/{meta.get('name')}"
        if (meta.get("namespace"), meta.get("name")) == (plan.namespace, n["route"]) or (gw_ns, n["gateway"]) not in route_parents(r):
            continue
        models = route_models(r, header)
        if models is None:
            catch_all.append(ref)
        elif model in models:
            taken.append(ref)
        else:
            others.append(f"{', '.join(models)} ({ref})")
    label = f"model {model} on Gateway {n['gateway']}"
    if taken:
        out.append(Check(label, FAIL, f"already routed by HTTPRoute {', '.join(taken)}", "no other route matches it",
                         hint="two pools for one model name split its requests at random: destroy the other stack, or serve this one under another --model name"))
    else:
        seen = others + [f"any other model ({c})" for c in catch_all]
        out.append(Check(label, PASS, "free" + (f"; the Gateway also serves {'; '.join(seen)}" if seen else ""), "no other route matches it"))
    label = f"body-based routing on Gateway {n['gateway']}"
    image = facts["bbrImage"]
    found = [d["metadata"]["name"] for d in kube.list(DEPLOYMENTS, gw_ns)
             if any(str(c.get("image", "")).split("@")[0].rsplit(":", 1)[0] == image
                    for c in ((d.get("spec") or {}).get("template") or {}).get("spec", {}).get("containers") or [])]
    if found:
        out.append(Check(label, PASS, f"Deployment {', '.join(sorted(found))}", f"a Deployment of {image} in {gw_ns}"))
    else:
        out.append(Check(label, FAIL, f"no Deployment of {image} in {gw_ns}", f"a Deployment of {image} in {gw_ns}",
                         hint=f"without it no request carries {header} and no model route matches: {bbr_install_command(plan)}"))
    return out


def _admits(listener: dict, gateway_ns: str, route_ns: str) -> bool:
    """Whether a Gateway listener accepts HTTPRoutes from ``route_ns`` (a Selector is taken as yes:
    only the controller evaluates it, and verify reports the route's Accepted condition)."""
    allowed = (listener.get("allowedRoutes") or {}).get("namespaces") or {}
    frm = allowed.get("from", "Same")
    kinds = (listener.get("allowedRoutes") or {}).get("kinds")
    if kinds and not any(k.get("kind") == "HTTPRoute" for k in kinds):
        return False
    return frm in ("All", "Selector") or (frm == "Same" and gateway_ns == route_ns)


def metrics_api_checks(kube: Kube, plan: Plan) -> list[Check]:
    """Each metrics API the stack's HPAs read: registered, available, served by an adapter that
    answers hand-written HPAs, and listing every metric name they ask for."""
    out = []
    for api, names in served_metrics(plan).items():
        group, version = api.split("/")
        label = f"APIService {version}.{group}"
        expected = "Available, serving " + ", ".join(names)
        svc = kube.get(APISERVICES, f"{version}.{group}")
        if svc is None:
            out.append(Check(label, FAIL, "not registered", expected,
                             hint="install a metrics adapter that serves it from Prometheus (the Prometheus Adapter with the rules in the bundle README's "
                                  "Autoscaling section); without it the HPAs never scale"))
            continue
        backend = ((svc.get("spec") or {}).get("service") or {})
        owner = f"{backend.get('namespace', '?')}/{backend.get('name', '?')}"
        available = _cond(svc, "Available")
        if available is None or available.get("status") != "True":
            why = f"{available.get('reason', '')}: {available.get('message', '')}" if available else "no Available condition"
            out.append(Check(label, FAIL, f"served by {owner}, not available ({why.strip()[:200]})", expected,
                             hint=f"the adapter behind it is down or unreachable: kubectl get pods -n {backend.get('namespace', '<its namespace>')}"))
            continue
        if group.startswith("external.") and "keda" in str(backend.get("name", "")):
            out.append(Check(label, FAIL, f"served by {owner} (KEDA)", expected,
                             hint="KEDA answers external metrics only for its own ScaledObjects, so these HPAs would read nothing; "
                                  "KEDA and the Prometheus Adapter cannot both serve this API (drop --autoscale and write a ScaledObject, "
                                  "or serve the API with the Prometheus Adapter)"))
            continue
        try:
            listed = {str(r.get("name", "")).rsplit("/", 1)[-1] for r in kube.discovery(api).get("resources") or []}
        except KubeError as exc:
            out.append(Check(label, FAIL, f"served by {owner}, discovery failed: {exc.message}", expected))
            continue
        missing = [n for n in names if n not in listed]
        if missing:
            out.append(Check(label, FAIL, f"served by {owner}, without {', '.join(missing)}", expected,
                             hint="add the Prometheus Adapter rules from the bundle README's Autoscaling section (and check that Prometheus scrapes "
                                  + ("the EPP" if group.startswith("external.") else "the vLLM pods") + ")"))
        else:
            out.append(Check(label, PASS, f"served by {owner}, with {', '.join(names)}", expected))
    return out


def _bundle_version_check(name: str, crd: dict, served: list[str], version_needed: str | None, plan: Plan) -> Check:
    """The InferencePool CRD serves v1 from GAIE v1.0 on; its bundle-version annotation says which
    release's schema the API server validates with, which the pinned charts were written against."""
    label, expected = f"CRD {name}", version_needed or "installed"
    want = plan.release_info.prerequisites.get("inferenceExtensionCrds")
    have = ((crd.get("metadata") or {}).get("annotations") or {}).get("inference.networking.k8s.io/bundle-version")
    if name.startswith("inferencepools.inference.networking.k8s.io") and want and have:
        older = version_tuple(have) is not None and version_tuple(want) is not None and version_tuple(have) < version_tuple(want)
        if older:
            return Check(label, WARN, f"serves {', '.join(served)}, bundle {have}", f"bundle >= {want} (llm-d {plan.llmd_version})", hint=_crd_fix(name, plan))
        return Check(label, PASS, f"serves {', '.join(served)}, bundle {have}", f"{expected}, bundle >= {want}")
    return Check(label, PASS, f"serves {', '.join(served)}", expected)


def _crd_fix(name: str, plan: Plan) -> str:
    pre = plan.release_info.prerequisites
    if name.endswith("gateway.networking.k8s.io"):
        return f"install the Gateway API CRDs {pre.get('gatewayApiCrds', '')}: kubectl apply -f https://github.com/kubernetes-sigs/gateway-api/releases/download/{pre.get('gatewayApiCrds', 'v1.5.1')}/standard-install.yaml"
    if name.startswith("inferencepools."):
        v = pre.get("inferenceExtensionCrds", "v1.4.0")
        asset = pre.get("inferenceExtensionManifest", "manifests.yaml")
        return f"install the Inference Extension CRDs {v}: kubectl apply -f https://github.com/kubernetes-sigs/gateway-api-inference-extension/releases/download/{v}/{asset}"
    if name in MONITORING_CRDS:
        return ("install the Prometheus operator CRDs (kube-prometheus-stack or prometheus-operator-crds), "
                "or render without monitoring objects: -e no-monitoring")
    if name == GENERATED_KIND_CRDS["LeaderWorkerSet"]:
        return ("instances over several nodes are LeaderWorkerSets: install the LeaderWorkerSet controller "
                "(https://lws.sigs.k8s.io/docs/installation/), or give the roles single-node layouts")
    if name == GENERATED_KIND_CRDS["ComputeDomain"]:
        return ("the pods join a ComputeDomain (multi-node NVLink): install NVIDIA's DRA driver for GPUs with ComputeDomains "
                "enabled (https://github.com/NVIDIA/k8s-dra-driver-gpu)")
    if name.endswith("networking.gke.io"):
        return "these come with GKE's Gateway controller: enable the Gateway API on the cluster (gcloud container clusters update --gateway-api=standard)"
    return f"install the {plan.gateway_facts['provider']} control plane (its CRDs include {name})"


