"""Render a plan into bundle files (helmfile, values, HTTPRoute, README); ``bundle_folder.py`` writes them.

Only reads the plan. Output is deterministic: no timestamps, no absolute paths, insertion order.
"""

from __future__ import annotations

import shlex

from .. import __version__
from ..base.templates import render_template
from ..base.yamlio import dump
from ..compose import netpol
from ..compose.autoscaling import adapter_rules, metrics_for
from ..compose.compose import chart_bundle_files
from ..compose.shared_gateway import bbr_install_command
from .gitops import GitOps, gitops_files, readme_section
from ..inputs.spec import DEFAULT_METRICS_NAMESPACE, gateway_ref_text
from ..plan.podsecurity import LEVELS, stack_pod_security
from ..plan.stack import Plan


def command_args(plan: Plan) -> list[str]:
    """The flags that reproduce this plan, most significant first."""
    args = ["-e", plan.hardware]
    for o in plan.overlays:
        args += ["-e", o]
    args += ["-e", plan.gateway, "-n", plan.namespace, "--postfix", plan.postfix]
    if plan.guide != "pd-disaggregation":
        args += ["--guide", plan.guide]
    args += ["--llmd-version", plan.llmd_version, "--model", plan.model["id"]]
    prefill = plan.roles.get("prefill")
    args += ["--prefill", prefill.layout if prefill else "0"]
    args += ["--decode", plan.roles["decode"].layout]
    spec = plan.spec
    if spec is not None:
        if spec.model_size:
            args += ["--model-size", spec.model_size]
        if spec.pd_threshold is not None:
            args += ["--pd-threshold", str(spec.pd_threshold)]
        if spec.prefix_cache != "approx":
            args += ["--prefix-cache", spec.prefix_cache]
        for role, low, high in spec.autoscale:
            args += ["--autoscale", f"{role}={low}-{high}"]
        if spec.attach_gateway:
            args += ["--attach-gateway", gateway_ref_text(spec.attach_gateway)] + ([] if spec.route_by_model else ["--no-route-by-model"])
        elif spec.route_by_model:
            args += ["--route-by-model"]
        if spec.rdma_resource is not None:
            args += ["--rdma-resource", spec.rdma_resource]
        if spec.rollout and spec.origin.get("rollout") == "flag" and len({how for _, how in spec.rollout}) == 1:
            args += ["--rollout", spec.rollout[0][1]]
        if not spec.network_policy:
            args += ["--network-policy", "off"]
        if spec.metrics_namespace != DEFAULT_METRICS_NAMESPACE:
            args += ["--metrics-namespace", spec.metrics_namespace]
        for toleration in spec.tolerations[spec.tolerations_from_spec:]:
            args += ["--toleration", toleration.text()]
        if spec.hf_secret != "llm-d-hf-token":
            args += ["--hf-secret", spec.hf_secret]
        for profile, name, weight in spec.scorers[spec.scorers_from_spec:]:  # a spec file's come with -f
            args += ["--scorer", f"{profile + ':' if profile else ''}{name}={weight}"]
        for plugin, param, value in spec.scheduler_params[spec.params_from_spec:]:
            args += ["--scheduler-param", f"{plugin}.{param}={_set_value(value)}"]
        if spec.charts and not spec.origin.get("charts", "").startswith("spec file"):
            args += ["--charts", spec.charts]
        if spec.chart_repository and not spec.origin.get("chartRepository", "").startswith("spec file"):
            args += ["--chart-repo", spec.chart_repository]
        if spec.spec_file:  # its --values and set entries come with it, paths relative to the spec file
            args = ["-f", spec.spec_file, *args]
        for ov in spec.overrides:
            if ov.from_spec:
                continue
            if ov.file:
                args += ["--values", f"{ov.release}={ov.file}"]
            else:
                args += ["--set", f"{ov.release}.{ov.path}={_set_value(ov.value)}"]
    return args


def _set_value(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        import json  # only for a --set of a list or map; render stays lean

        return json.dumps(value, separators=(",", ":"))
    return str(value)


def _cmd(verb: str, args: list[str]) -> str:
    return shlex.join(["llmdctl", verb, *args])


def _kv_path(plan: Plan) -> str:
    if plan.mode != "disaggregated":
        return "none (aggregated: each pod serves whole requests)"
    hw = plan.hardware_facts
    transport = hw.get("kvTransport", "rdma")
    backend = hw.get("nixlBackend", "UCX")
    if hw.get("hostNetwork"):
        return "NIXL over UCX on the host network (host RDMA NICs, no RDMA resource requested)"
    if transport == "rdma" and hw.get("dra"):
        return f"NIXL over {backend} with RDMA (DRA: one claim per GPU, each with the RDMA NIC on its PCIe root)"
    if transport == "rdma" and hw.get("rdma"):
        with_nics = [r for r in plan.roles.values() if r.rdma]
        per_role = (", ".join(f"{r.role} x{r.rdma.get('count', 1)}" for r in with_nics)
                    if len({r.rdma.get("count", 1) for r in with_nics}) > 1 else f"x{hw['rdma'].get('count', 1)} per pod")
        return f"NIXL over {backend} with RDMA (`{hw['rdma']['resource']}` {per_role})"
    if transport == "cuda-ipc":
        return "NIXL over UCX with CUDA IPC on one GPU (tcp for control messages)"
    return "NIXL over UCX on TCP (no RDMA)"


def mermaid(plan: Plan) -> str:
    n = plan.names
    scheduler = plan.release_info.images["scheduler"].rsplit("/", 1)[-1]
    if plan.standalone:
        entry = ["  client([client]) --> svc[\"Service " + n["epp"] + " :80<br/>Envoy in the EPP pod\"]",
                 "  svc -->|InferencePool " + n["pool"] + "| pool[[\"InferencePool " + n["pool"] + "\"]]"]
    else:
        shared = f"<br/>shared, in {plan.gateway_namespace}" if plan.attached else ""
        match = f", model {plan.model_match[1]}" if plan.model_match else ""
        entry = ["  client([client]) --> gw[\"Gateway " + n["gateway"] + "<br/>" + plan.gateway_facts["provider"] + shared + "\"]",
                 "  gw -->|HTTPRoute " + n["route"] + match + "| pool[[\"InferencePool " + n["pool"] + "\"]]"]
    lines = ["flowchart LR", *entry, "  pool -.->|ext-proc :9002| epp[\"scheduler " + n["epp"] + "<br/>" + scheduler + "\"]"]
    decode = plan.roles["decode"]
    accel = decode.accelerator_resource or "CPU"
    if plan.mode == "disaggregated":
        prefill = plan.roles["prefill"]
        lines += [
            f"  pool --> D[\"decode x{decode.replicas}<br/>{_shape(decode)}, {decode.gpus_per_pod} {accel} per pod<br/>sidecar :8000 → vLLM :{decode.vllm_port}\"]",
            f"  D -->|1. prefill request| P[\"prefill x{prefill.replicas}<br/>{_shape(prefill)}, {prefill.gpus_per_pod} {prefill.accelerator_resource or 'CPU'} per pod<br/>vLLM :{prefill.vllm_port}\"]",
            f"  P ==>|\"2. KV cache: {_kv_short(plan)}\"| D",
        ]
    else:
        lines.append(f"  pool --> D[\"vLLM x{decode.replicas}<br/>{_shape(decode)}, {decode.gpus_per_pod} {accel} per pod<br/>:{decode.vllm_port}\"]")
    return "\n".join(lines)


def _workload_text(role) -> str:
    if role.workers > 1:
        return (f"LeaderWorkerSet `{role.deployment}`, {role.replicas} group(s) of {role.workers} pods (leader + {role.workers - 1} worker(s); "
                f"{role.data_local} DP ranks per pod, the leader's address is the DP address)")
    return f"Deployment `{role.deployment}`, {role.replicas} replica(s)"


def _shape(role) -> str:
    """TP4, or DP8 EP over 2 pods: the parallelism of one instance as the README draws it."""
    if role.data == 1 and not role.expert:
        return f"TP{role.tensor}"
    shape = (f"DP{role.data} " if role.data > 1 else "") + (f"TP{role.tensor} " if role.tensor > 1 else "") + ("EP " if role.expert else "")
    return shape + (f"over {role.workers} pods" if role.workers > 1 else "in one pod")


def _kv_short(plan: Plan) -> str:
    hw = plan.hardware_facts
    backend = hw.get("nixlBackend", "UCX")
    if hw.get("hostNetwork"):
        return "NIXL/UCX, host RDMA NICs"
    if hw.get("kvTransport") == "rdma" and hw.get("dra"):
        return f"NIXL/{backend} over RDMA (DRA claims)"
    if hw.get("kvTransport") == "rdma" and hw.get("rdma"):
        return f"NIXL/{backend} over RDMA ({hw['rdma']['resource']})"
    if hw.get("kvTransport") == "cuda-ipc":
        return "NIXL/UCX over CUDA IPC"
    return "NIXL/UCX over TCP"


def _summarize_paths(paths: list[str], depth: int = 4) -> list[str]:
    """Shorten dotted paths to ``depth`` segments (brackets included) and drop repeats."""
    out: list[str] = []
    for path in paths:
        segments: list[str] = []
        buf = ""
        for ch in path:
            if ch == "." and buf:
                segments.append(buf)
                buf = ""
            elif ch == "[" and buf:
                segments.append(buf)
                buf = "["
            else:
                buf += ch
        if buf:
            segments.append(buf)
        short = ""
        for seg in segments[:depth]:
            short += seg if seg.startswith("[") or not short else "." + seg
        if len(segments) > depth:
            short += ".*"
        if short not in out:
            out.append(short)
    return out


def _layer_list(plan: Plan) -> str:
    """The numbered list of layers in merge order, each with the paths it set that survived."""
    by_layer: dict[str, list[str]] = {}
    for key, prov in plan.provenance.items():
        for path, layer in prov.items():
            by_layer.setdefault(layer, []).append(f"{key}.{path}")
    out = []
    for i, info in enumerate(plan.layers, 1):
        head = f"{i}. **{info.name}**: {info.what}" + (f". {info.summary}" if info.summary else "")
        paths = _summarize_paths(by_layer.get(info.name, []))
        body = ("   Sets: " + ", ".join(f"`{p}`" for p in paths)) if paths else "   (every key it set was overridden by a later layer)"
        out.append(f"{head}\n{body}\n\n")
    return "".join(out)


def _autoscaling_section(plan: Plan) -> str:
    """The HPAs, the metrics they read, and Prometheus Adapter rules that serve those names."""
    rows = []
    for role in plan.roles.values():
        if role.autoscale is None:
            continue
        api, metrics = metrics_for(plan, role.role)
        per = "the pool's" if api.startswith("external.") else "per pod"
        what = ", ".join(f"`{m['name']}` {per} <= {m['target']}" for m in metrics)
        rows.append(f"| {role.role} | `{role.deployment}` ({role.workload}) | {role.autoscale[0]}-{role.autoscale[1]} | {what} (`{api}`) |\n")
    if not rows:
        return ""
    return ("## Autoscaling\n\n| role | HPA target | replicas | scales out when |\n|---|---|---|---|\n" + "".join(rows)
            + "\nThe workloads leave their replica count to the HPAs. `llmdctl doctor` checks that a metrics adapter serves these names; "
              "Prometheus Adapter rules that do (merge them into its values):\n\n```yaml\n" + dump(adapter_rules(plan)) + "```\n\n")


def _failure_mode(plan: Plan) -> str:
    """The pool's failureMode as the router values set it (FailOpen is the guides' default)."""
    values = plan.release("router" if plan.generation == "router" else "gaie").values
    for path in (("router", "inferencePool", "failureMode"), ("inferenceExtension", "failureMode"), ("inferencePool", "failureMode")):
        node = values
        for key in path:
            node = node.get(key) if isinstance(node, dict) else None
        if isinstance(node, str):
            return node
    return "FailClose"  # what the InferencePool API defaults an unset failureMode to


def _security_section(plan: Plan) -> str:
    """What protects the stack: the EPP's failure mode, the sidecar's SSRF protection and its
    RBAC, the Pod Security level its pods need (issue 27)."""
    need = stack_pod_security(plan)
    mode = _failure_mode(plan)
    items = [f"**Failure mode `{mode}`**: " + (
        "when the EPP is down or slow the Gateway still forwards requests to a pool pod, unscheduled (no P/D split, headers as the "
        "client sent them): the stack keeps serving, less well. FailClose refuses them instead (`--set router.router.inferencePool.failureMode=FailClose`)."
        if mode == "FailOpen" else "when the EPP is down requests are refused rather than sent to a pod unscheduled.")]
    if plan.mode == "disaggregated":
        if plan.release_info.dialect.get("sidecarSsrfProtection"):
            items.append(f"**Decode sidecar**: `--enable-ssrf-protection` with `--inference-pool <namespace>/{plan.names['pool']}`: a prefill "
                         f"target (the `x-prefiller-host-port` header) that is not a pod of this pool is refused, so a request that reaches "
                         f"the sidecar unscheduled cannot send the prompt elsewhere. It watches the pool and its pods with Role "
                         f"`{plan.names['serviceAccount']}-sidecar` (get/list/watch on that InferencePool and on pods, this namespace only); "
                         "the API token is mounted into the sidecar alone, not into vLLM.")
        else:
            guard = ("the NetworkPolicies below let only the gateway, the EPP and this stack's pods reach the decode port"
                     if netpol.enabled(plan) else "nothing else: with --network-policy off any pod can reach the decode port")
            items.append(f"**Decode sidecar**: llm-d {plan.llmd_version}'s charts cannot pass the sidecar its SSRF protection flags, so it "
                         "follows any `x-prefiller-host-port` a request carries. What protects it here: the failure mode (FailClose refuses "
                         f"what the EPP did not schedule; the EPP sets that header) and {guard}. llm-d v0.8.0 and later turn the protection on.")
    why = next((w for _, (lvl, w) in need.roles.items() if lvl == need.level and w), [])
    stricter = LEVELS[LEVELS.index(need.level) - 1] if need.level != LEVELS[0] else None
    items.append(f"**Pod Security**: the pods need `{need.level}`" + (f" ({stricter} refuses: {'; '.join(why)})" if why and stricter else "")
                 + f"; `llmdctl doctor` compares it with namespace {plan.namespace}'s `pod-security.kubernetes.io/enforce` label.")
    return _section("Security", items)


def _network_policy_section(plan: Plan) -> str:
    """The NetworkPolicies the bundle carries, what each admits and why (issue 27), or that they are off."""
    if not netpol.enabled(plan):
        return ("## NetworkPolicies\n\nNone: rendered with `--network-policy off`, so any pod in the cluster can reach the model "
                "servers' ports (the decode sidecar, vLLM, the NIXL side channel) and the EPP. Render without it on a cluster "
                "whose network plugin enforces NetworkPolicy (`llmdctl doctor` tells where it can).\n\n")
    policies = netpol.network_policies(plan)
    rows = "".join(f"| `{p['metadata']['name']}` | {netpol.describe_peer({'podSelector': p['spec']['podSelector']})} | "
                   + "<br>".join(netpol.describe_rules(p)) + " |\n" for p in policies)
    where = ("in the model-server chart (`charts/ms/templates/networkpolicy-*.yaml`)" if plan.generation == "router"
             else "in the modelservice release's `extraObjects` (`ms.values.yaml`)")
    gateway = netpol.gateway_peer(plan)
    if gateway is None:
        entry = (f"Standalone: the EPP pod's Envoy (listener {netpol.ENVOY_LISTENER}, the Service's port 80) is the stack's entry point, "
                 "so it admits any client; ext-proc is Envoy to the EPP over localhost, which no NetworkPolicy sees. ")
    elif gateway == {}:
        entry = ("GKE's load balancer proxies are not pods: they connect from the cluster's proxy-only subnet, which llmdctl does not know, "
                 "so the ports they reach (the serving ports, ext-proc) admit any source; every other port stays closed. ")
    else:
        entry = (f"Gateway `{plan.gateway_namespace}/{plan.names['gateway']}`: its data-plane pods, which Istio, kgateway and agentgateway label "
                 f"`{netpol.GATEWAY_POD_LABEL}: {plan.names['gateway']}`. ")
    return ("## NetworkPolicies\n\n"
            f"Ingress only (egress stays open: the pods pull models and images), {where}, removed with the release:\n\n"
            "| policy | selects | admits (source → TCP ports) |\n|---|---|---|\n" + rows
            + "\nWhy: the decode sidecar fetches from whatever host a request header names, and vLLM, the NIXL side channel and the "
              "KV-event sockets have no authentication, so only the stack's own router reaches the serving ports. Between the stack's "
              "model servers every port is open (NIXL side channel, UCX's KV transfer on ephemeral ports, data-parallel ranks); "
              "the EPP reaches the serving ports for requests, metrics and tokenizing" + (" and the KV-event sockets" if plan.kv_events else "")
            + f"; Prometheus in namespace `{netpol.metrics_namespace(plan)}` reaches vLLM's and the EPP's metrics ports "
              "(`--metrics-namespace NS` if it runs elsewhere). " + entry
            + "Selectors carry the stack's own labels, so another stack in this namespace is not admitted. Kubelet probes come "
              "from the node, which the common network plugins admit. Pods on the host network (`-e host-network`) are outside "
              "NetworkPolicy. `llmdctl verify --smoke` reads the prefill pods' metrics through the API server's pod proxy, "
              "which these policies refuse where the API server is not on the nodes (managed control planes). "
              "A cluster whose network plugin does not enforce NetworkPolicy ignores these objects: "
              "`llmdctl doctor` says so where it can tell, and `--network-policy off` leaves them out.\n\n")


def _section(title: str, items: list[str]) -> str:
    return f"## {title}\n\n" + "".join(f"- {item}\n" for item in items) + "\n" if items else ""


def helmfile_text(plan: Plan, command: str) -> str:
    """helmfile.yaml: one release per chart in needs order, labelled with the stack's postfix."""
    repositories = []
    for rel in plan.releases:
        if rel.repository and rel.repository not in repositories:
            repositories.append(rel.repository)
    releases = []
    for rel in plan.releases:
        entry = {"name": rel.name, "namespace": plan.namespace, "chart": rel.chart}
        if rel.generated:
            # written into this bundle by llmdctl: its templates are the objects themselves
            entry["skipDeps"] = True
        elif rel.local:
            # a chart on disk is used as it is: no `helm dependency build`, which would ask the
            # internet for the subcharts (a package carries them; a folder must vendor them)
            entry["skipDeps"] = True
        else:
            entry["version"] = rel.version
        entry.update({"installed": True, "labels": {"stack": plan.postfix, "component": rel.key}})
        if rel.needs:
            entry["needs"] = list(rel.needs)
        if rel.values_file:
            entry["values"] = [rel.values_file]
        releases.append(entry)
    router = plan.generation == "router"
    consistent = ("the router values and the\n# generated charts under charts/" if router
                  else "the values files and the\n# HTTPRoute")
    head = (
        f"# Generated by llmdctl {__version__}. Re-render rather than edit: {consistent} are kept consistent with each other (names, labels, ports).\n"
        f"#   {command}\n"
        "# Apply with plain helmfile in this folder:  helmfile apply\n"
        + ("" if router else f"# then the route:                            kubectl apply -n {plan.namespace} -f httproute.yaml\n")
    )
    body = (dump({"repositories": [{"name": r["name"], "url": r["url"]} for r in repositories]}) + "\n") if repositories else "\n"
    return head + body + dump({"releases": releases})


def _chart_origin(plan: Plan) -> str:
    spec = plan.spec
    if spec is not None and spec.charts:
        return f"; charts from the local folder `{spec.charts}` (no registry is contacted)"
    if spec is not None and spec.chart_repository:
        return f"; charts from the mirror `{spec.chart_repository}`"
    return ""


def _prefix_cache_row(plan: Plan) -> str:
    kv = plan.kv_events
    if not kv:
        return ""
    return (f"| prefix cache | precise: every vLLM pod publishes KV events on port {kv['eventsPort']}, the EPP dials each one; "
            f"prompts are tokenized through Service `{plan.names['render']}` (decode pods) |\n")


def _bbr_prerequisite(plan: Plan) -> str:
    """Routing by model name needs body-based routing once on the Gateway (it writes the header the route matches)."""
    if not plan.model_match:
        return ""
    return (f"- Body-based routing on Gateway `{plan.names['gateway']}`, once per Gateway: it copies the request's `model` into "
            f"`{plan.model_match[0]}`, which this stack's route matches (`llmdctl doctor` looks for it):\n"
            f"  `{bbr_install_command(plan)}`\n")


def readme_text(plan: Plan, args: list[str], command: str) -> str:
    roles = [plan.roles[r] for r in ("decode", "prefill") if r in plan.roles]
    prereq = plan.release_info.prerequisites
    selector = plan.pool_selector
    n = plan.names
    gateway_crds = f"- Gateway API CRDs {prereq.get('gatewayApiCrds', '(see the guide)')} and Gateway API Inference Extension CRDs {prereq.get('inferenceExtensionCrds', '(see the guide)')}.\n"
    control_plane = (f" (Istio {prereq.get('istio', '')} with `ENABLE_GATEWAY_API_INFERENCE_EXTENSION=true`)" if plan.gateway == "istio" else "")
    deployments = "".join(f" {r.deployment}" for r in roles)
    router = plan.generation == "router"
    # how requests come in: the router's Envoy (standalone) or the stack's Gateway and route
    if plan.standalone:
        entry_rows = f"| InferencePool | `{n['pool']}` (no Gateway: Envoy in the EPP pod, Service `{n['epp']}` port 80) |\n"
        crd_prerequisites = f"- Gateway API Inference Extension CRDs {prereq.get('inferenceExtensionCrds', '(see the guide)')} (standalone mode needs no Gateway).\n"
        request_intro = "Send a request through the router's Envoy (port-forward to the EPP Service; its port 80 is Envoy's listener):"
        entry_service = n["epp"]
    else:
        rendered_by = " (rendered by the router chart)" if router else ""
        owner = f" in namespace `{plan.gateway_namespace}`, attached: this stack neither creates nor deletes it" if plan.attached else ""
        match = f", matching `{plan.model_match[0]}: {plan.model_match[1]}`" if plan.model_match else ""
        entry_rows = f"| Gateway | `{n['gateway']}`{owner} |\n| HTTPRoute | `{n['route']}`{rendered_by}{match} → InferencePool `{n['pool']}` |\n"
        crd_prerequisites = gateway_crds + f"- The `{plan.gateway}` gateway control plane{control_plane}.\n" + _bbr_prerequisite(plan)
        request_intro = "Send a request through the gateway (port-forward; the listener is port 80):"
        entry_service = n["gatewayService"]
    if router:
        chart_versions = ", ".join(f"{rel.chart.rsplit('/', 1)[-1]} {rel.version}" if not rel.generated else f"`{rel.chart}` (generated)"
                                   for rel in plan.releases) + _chart_origin(plan)
        keys = "|".join(r.key for r in plan.releases)
        plain_commands = (
            "helmfile apply\n\n"
            f"helm list -n {plan.namespace} --filter '^({keys})-{plan.postfix}$'\n"
            f"kubectl get deployments -n {plan.namespace} {n['epp']}{deployments}\n"
            + ("" if plan.standalone else
               f"kubectl get gateway,httproute -n {plan.namespace} {n['gateway']} {n['route']}\n" if plan.gateway_namespace == plan.namespace else
               f"kubectl get gateway -n {plan.gateway_namespace} {n['gateway']}\nkubectl get httproute -n {plan.namespace} {n['route']}\n")
            + f"kubectl get inferencepool -n {plan.namespace} {n['pool']}\n"
            f"kubectl get pods -n {plan.namespace} -l {','.join(f'{k}={v}' for k, v in selector.items())}\n\n"
            "helmfile destroy\n"
        )
    else:
        chart_versions = (f"llm-d-infra {plan.release('infra').version}, inferencepool {plan.release('gaie').version}, "
                          f"llm-d-modelservice {plan.release('ms').version}" + _chart_origin(plan))
        plain_commands = (
            "helmfile apply\n"
            f"kubectl apply -n {plan.namespace} -f httproute.yaml\n\n"
            f"helm list -n {plan.namespace} --filter '^(infra|gaie|ms)-{plan.postfix}$'\n"
            f"kubectl get deployments -n {plan.namespace} {n['epp']}{deployments}\n"
            f"kubectl get gateway -n {plan.namespace} {n['gateway']}\n"
            f"kubectl get httproute -n {plan.namespace} {n['route']}\n"
            f"kubectl get pods -n {plan.namespace} -l {','.join(f'{k}={v}' for k, v in selector.items())}\n\n"
            f"kubectl delete -n {plan.namespace} -f httproute.yaml --ignore-not-found\n"
            "helmfile destroy\n"
        )
    return render_template(
        "README.md.tmpl",
        postfix=plan.postfix, namespace=plan.namespace, llmdctl_version=__version__, command=command,
        guide=plan.guide, mode=plan.mode, llmd_version=plan.llmd_version,
        chart_versions=chart_versions,
        hardware="".join([f"`{plan.hardware}`"] + [f" + `{o}`" for o in plan.overlays]),
        gateway=plan.gateway, gateway_provider=plan.gateway_facts["provider"], gateway_class=plan.gateway_facts["className"],
        model_name=plan.model["name"], model_uri=plan.model["uri"], model_size=plan.model["size"],
        layout=", ".join(f"{r.role} {r.replicas} x {_shape(r).replace('over', 'each over')} ({r.gpus_per_pod} {r.accelerator_resource or 'CPU'} per pod)" for r in roles),
        planned_by=f"; chosen by `{plan.spec.planned_by}`" if plan.spec is not None and plan.spec.planned_by else "",
        kv_path=_kv_path(plan), hf_secret=plan.hf_secret, mermaid=mermaid(plan),
        release_names=", ".join(f"`{rel.name}`" for rel in plan.releases),
        entry_rows=entry_rows, epp_name=n["epp"], prefix_cache_row=_prefix_cache_row(plan), entry_service=entry_service, request_intro=request_intro,
        entry_namespace=plan.namespace if plan.standalone else plan.gateway_namespace,
        plain_commands=plain_commands, crd_prerequisites=crd_prerequisites,
        role_rows="".join(f"| {r.role} | {_workload_text(r)}, image `{r.image}` |\n" for r in roles),
        pool_selector=", ".join(f"`{k}={v}`" for k, v in selector.items()),
        layer_list=_layer_list(plan),
        notes_section=_section("Adjustments llmdctl made", list(plan.notes)),
        findings_section=_section("Findings", [f"**{f.severity} {f.rule}**: {f.message}" for f in plan.findings]),
        autoscaling_section=_autoscaling_section(plan) + _network_policy_section(plan), security_section=_security_section(plan),
        min_kubernetes=prereq.get("minKubernetes", "1.33"),
        doctor_command=_cmd("doctor", args), apply_command=_cmd("apply", args), verify_command=_cmd("verify", args),
    )


def bundle_files(plan: Plan, gitops: GitOps | None = None) -> dict[str, str]:
    """File name -> content for the whole bundle (with ``gitops``, also the Argo CD or Flux objects
    that deploy it, under gitops/; issue 29)."""
    args = command_args(plan)
    command = _cmd("render", args + (gitops.flags() if gitops else []))
    files: dict[str, str] = {"helmfile.yaml": helmfile_text(plan, command)}
    for rel in plan.releases:
        if rel.values_file:
            header = f"# {rel.name}: {rel.chart} {rel.version} (generated by llmdctl; see README.md)\n"
            files[rel.values_file] = header + dump(rel.values)
    if plan.generation == "router":
        files.update(chart_bundle_files(plan))  # the router chart renders the HTTPRoute itself
    else:
        files["httproute.yaml"] = (
            f"# Apply after the releases: kubectl apply -n {plan.namespace} -f httproute.yaml\n" + dump(plan.route)
        )
    files["README.md"] = readme_text(plan, args, command)
    if gitops is not None:
        files.update(gitops_files(plan, gitops))
        files["README.md"] += readme_section(plan, gitops)
    return files


def default_output_dir(plan: Plan) -> str:
    return f"llmd-{plan.namespace}-{plan.postfix}"
