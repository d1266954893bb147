"""Render a plan into bundle files (helmfile, values, HTTPRoute, README) and write them safely.

Only reads the plan. Output is deterministic: no timestamps, no absolute paths, insertion order.
"""

from __future__ import annotations

import os
import shlex
from typing import NamedTuple

from .. import __version__
from ..base.errors import InputError
from ..base.templates import render_template
from ..base.yamlio import dump
from ..compose import netpol
from ..compose.autoscaling import adapter_rules, metrics_for
from ..compose.compose import chart_bundle_files
from ..compose.shared_gateway import bbr_install_command
from .gitops import GitOps, gitops_files, readme_section
from ..inputs.spec import DEFAULT_METRICS_NAMESPACE, gateway_ref_text
from ..plan.stack import Plan

# beside an applied bundle, in its kept folder: the revisions apply kept (effects.history)
HISTORY = ".llmdctl-history"

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
        autoscaling_section=_autoscaling_section(plan) + _network_policy_section(plan),
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


MARKER = ".llmdctl-bundle"
_MARKER_HEAD = "# written by llmdctl: the files of this bundle; llmdctl replaces or removes only these\n"
_LEGACY_HEAD = "# Generated by llmdctl"  # helmfile.yaml of bundles written before the marker existed
_LEGACY_FILES = ("helmfile.yaml", "infra.values.yaml", "gaie.values.yaml", "ms.values.yaml", "httproute.yaml", "README.md")


class BundleWrite(NamedTuple):
    """What writing a bundle did, by file name."""

    folder: str
    added: tuple[str, ...]
    changed: tuple[str, ...]
    unchanged: tuple[str, ...]
    removed: tuple[str, ...]
    replaced: tuple[str, ...] = ()  # files llmdctl did not write, overwritten with --force

    def summary(self) -> str:
        if not (self.changed or self.unchanged or self.removed):
            return f"wrote {len(self.added)} files to {self.folder}/ ({', '.join(self.added)})"
        parts = [f"{label} {', '.join(names)}" for label, names in
                 (("added", self.added), ("changed", tuple(n for n in self.changed if n not in self.replaced)), ("removed", self.removed),
                  ("replaced (--force; not written by llmdctl)", self.replaced)) if names]
        return f"updated {self.folder}/: " + ("; ".join(parts) if parts else "no changes") + f" ({len(self.unchanged)} unchanged)"


def bundle_files_in(folder: str | os.PathLike) -> list[str] | None:
    """The files llmdctl wrote into ``folder`` (from its marker), or None when it holds no llmdctl bundle."""
    marker = _read(os.path.join(folder, MARKER))
    if marker is not None:
        return [line for line in marker.splitlines()[1:] if _safe_relative(line)]
    helmfile = _read(os.path.join(folder, _LEGACY_FILES[0]))
    if helmfile is not None and helmfile.startswith(_LEGACY_HEAD):
        return [name for name in _LEGACY_FILES if os.path.isfile(os.path.join(folder, name))]
    return None


def _safe_relative(name: str) -> bool:
    """A marker line names a file inside the bundle (charts/ms/Chart.yaml), never one outside it."""
    parts = name.split("/")
    return bool(name) and not name.startswith("/") and "\\" not in name and all(p not in ("", ".", "..") for p in parts)


def write_bundle(files: dict[str, str], out_dir: str | os.PathLike, *, force: bool = False) -> BundleWrite:
    """Write the bundle's files, touching nothing llmdctl did not write.

    A new folder is filled beside its final place and renamed in (all or nothing). An earlier
    llmdctl bundle (it carries the marker) gets every changed file replaced atomically and loses
    only the files of its own that the new bundle no longer has; anything else in it stays. A
    non-empty folder without the marker is refused, or with ``force`` gets the bundle's files
    written into it, replacing only files of the same names, which are listed.
    """
    out_dir = os.fspath(out_dir)
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise InputError(f"-o {out_dir}: exists and is not a folder")
    if not os.path.exists(out_dir):
        return _write_new(files, out_dir)
    ours = bundle_files_in(out_dir)
    if ours is None:
        entries = sorted(os.listdir(out_dir))
        clash = [name for name in files if os.path.lexists(os.path.join(out_dir, name))]
        if entries and not force:
            shown = ", ".join(entries[:8]) + (f" and {len(entries) - 8} more" if len(entries) > 8 else "")
            raise InputError(
                f"-o {out_dir}: the folder holds files llmdctl did not write ({shown}); refusing to write the bundle there",
                hint="choose another -o (a new or empty folder), or pass --force to write into it"
                     + (f", which replaces {', '.join(clash)}" if clash else " (nothing in it is replaced)"),
            )
        ours, theirs = [], clash
    else:
        # a file the marker does not list is the user's, even in an llmdctl bundle (a marker from an
        # older llmdctl, or edited by hand): replaced only with --force, and named either way
        theirs = [name for name in files if name not in ours and os.path.lexists(os.path.join(out_dir, name))]
        if theirs and not force:
            it = "it" if len(theirs) == 1 else "them"
            raise InputError(
                f"-o {out_dir}: {MARKER} does not list {', '.join(theirs)}, so llmdctl did not write {it}; refusing to overwrite {it}",
                hint=f"move {it} away, choose another -o, or pass --force to replace {', '.join(theirs)}",
            )
    return _write_in_place(files, out_dir, ours)._replace(replaced=tuple(n for n in theirs if n not in ours))


def _write_new(files: dict[str, str], out_dir: str) -> BundleWrite:
    parent = os.path.dirname(os.path.abspath(out_dir))
    try:
        os.makedirs(parent, exist_ok=True)
        tmp = _fresh_dir(parent, f".{os.path.basename(os.path.abspath(out_dir))}.new")
    except OSError as exc:
        raise InputError(f"-o {out_dir}: cannot create it: {exc.strerror}") from None
    try:
        for name, text in {**files, MARKER: _marker(files)}.items():
            _write(os.path.join(tmp, name), text)
        os.rename(tmp, out_dir)
    except OSError as exc:
        for name in (*files, MARKER):  # only what this call wrote
            _unlink(os.path.join(tmp, name))
        _prune_dirs(tmp, files)
        os.rmdir(tmp)
        raise InputError(f"-o {out_dir}: cannot write the bundle: {exc.strerror}") from None
    return BundleWrite(out_dir, tuple(files), (), (), ())


def _write_in_place(files: dict[str, str], out_dir: str, ours: list[str]) -> BundleWrite:
    before = {name: _read(os.path.join(out_dir, name)) for name in (*files, MARKER)}
    staged: list[tuple[str, str]] = []
    try:
        # every new file is written first, then all are swapped in: a full disk fails before any
        # swap; a file whose bytes are already right is left alone
        for name, text in {**files, MARKER: _marker(files)}.items():
            if before[name] == text:
                continue
            head, base = os.path.split(name)
            tmp = os.path.join(out_dir, head, f".{base}.llmdctl-{os.getpid()}")
            _write(tmp, text)
            staged.append((tmp, os.path.join(out_dir, name)))
        for tmp, final in staged:
            os.replace(tmp, final)
    except OSError as exc:
        for tmp, _ in staged:
            _unlink(tmp)
        raise InputError(f"-o {out_dir}: cannot write the bundle: {exc.strerror}") from None
    removed = tuple(name for name in ours if name not in files and name != MARKER and os.path.isfile(os.path.join(out_dir, name)))
    for name in removed:
        os.unlink(os.path.join(out_dir, name))
    _prune_dirs(out_dir, removed)
    return BundleWrite(
        out_dir,
        added=tuple(n for n in files if before[n] is None),
        changed=tuple(n for n in files if before[n] is not None and before[n] != files[n]),
        unchanged=tuple(n for n in files if before[n] == files[n]),
        removed=removed,
    )


def remove_bundle(folder: str | os.PathLike) -> list[str]:
    """Delete the files of the llmdctl bundle in ``folder`` (and the folder once it is empty).
    Anything llmdctl did not write stays. Returns what was removed."""
    ours = bundle_files_in(folder)
    if ours is None:
        return []
    removed = [name for name in (*ours, MARKER) if os.path.isfile(os.path.join(folder, name))]
    for name in removed:
        os.unlink(os.path.join(folder, name))
    _prune_dirs(os.fspath(folder), removed)
    try:
        os.rmdir(folder)
    except OSError:
        pass  # not empty: someone else's files are in it
    return removed


def _marker(files: dict[str, str]) -> str:
    return _MARKER_HEAD + "".join(f"{name}\n" for name in files)


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except (OSError, UnicodeDecodeError):
        return None


def _prune_dirs(root: str, removed) -> None:
    """Remove the sub-folders (charts/ms/templates, ...) that removing our files left empty."""
    dirs = {os.path.dirname(name) for name in removed if "/" in name}
    for d in sorted({p for d in dirs for p in _parents(d)}, key=lambda p: -p.count("/")):
        try:
            os.rmdir(os.path.join(root, d))
        except OSError:
            pass  # not empty: something else lives there


def _parents(d: str) -> list[str]:
    parts = d.split("/")
    return ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]


def _write(path: str, text: str) -> None:
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _fresh_dir(parent: str, stem: str) -> str:
    """A new, empty folder beside the bundle (same file system, so the final rename is atomic)."""
    for n in range(1000):
        path = os.path.join(parent, f"{stem}-{os.getpid()}-{n}")
        try:
            os.mkdir(path)
            return path
        except FileExistsError:
            continue
    raise OSError(17, "no free temporary folder name", parent)


def print_bundle(files: dict[str, str]) -> str:
    """All files as one stream, each preceded by a ``# --- name ---`` banner."""
    return "".join(f"# --- {name} ---\n{text}" + ("" if text.endswith("\n") else "\n") for name, text in files.items())
