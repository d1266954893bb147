"""Rules over the model-server pods: hardware, layout, RDMA and NIXL, time-slicing, images, security."""

from __future__ import annotations

import re

from ...base.merge import PATCH_KEY, arg_flag
from ...plan.pods import pod_drain, pod_specs
from ...plan.stack import Plan
from .book import (CHART_INJECTED_ARGS, added_capabilities, MIG_RESOURCE, RDMA_RESOURCE, arg_values, container_delta, env_entry, extra_config,
                   has_capability, is_pd, replace_env, requested, resources_of, role_blocks, rule, time_sliced, vllm_container)


# --- fixes (run first) ---------------------------------------------------------------------


@rule("V-21", "fix")
def strip_injected_args(plan: Plan):
    for role, block in role_blocks(plan):
        for c in block.get("containers") or []:
            if not isinstance(c, dict) or c.get("modelCommand", "vllmServe") not in ("vllmServe", "imageDefault"):
                continue
            args = c.get("args") or []
            dropped = [a for a in args if arg_flag(a) in CHART_INJECTED_ARGS]
            if dropped:
                flags = sorted({arg_flag(a) for a in dropped})
                yield (f"removed {', '.join(map(str, dropped))} from {role} args",
                       container_delta(role, c, args=[{"flag": f, PATCH_KEY: "delete"} for f in flags]))


@rule("V-55", "fix")
def no_memory_pinning_without_rdma(plan: Plan):
    # IPC_LOCK is for UCX to pin memory it registers with an RDMA NIC; with --rdma-resource none
    # there is none, and the capability alone makes the pod need PodSecurity privileged
    spec = plan.spec
    if spec is None or str(spec.rdma_resource or "").lower() not in ("none", "off", "false") or plan.hardware_facts.get("hostNetwork"):
        return
    for role, block in role_blocks(plan):
        c = vllm_container(block)
        add = added_capabilities(c)
        if "IPC_LOCK" in add:
            rest = [cap for cap in add if cap != "IPC_LOCK"]
            yield (f"{role}: removed IPC_LOCK (--rdma-resource none: no RDMA memory to pin)",
                   container_delta(role, c, securityContext={"capabilities": {"add": rest or None}}))


@rule("V-23", "fix")
def side_channel_host(plan: Plan):
    if not is_pd(plan):
        return
    want = {"name": "VLLM_NIXL_SIDE_CHANNEL_HOST", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}
    for role, block in role_blocks(plan):
        c = vllm_container(block)
        env = env_entry(c, want["name"])
        if env == want:
            continue
        was = "missing" if env is None else f"was {env.get('value', env.get('valueFrom'))!r}"
        yield (f"{role}: VLLM_NIXL_SIDE_CHANNEL_HOST now comes from status.podIP ({was})",
               container_delta(role, c, env=replace_env(want["name"], want)))


@rule("V-03", "fix")
def timeslice_ucx(plan: Plan):
    if not (is_pd(plan) and time_sliced(plan)):
        return
    for role, block in role_blocks(plan):
        c = vllm_container(block)
        env = env_entry(c, "UCX_TLS")
        current = [t for t in str((env or {}).get("value") or "").split(",") if t]
        missing = [t for t in ("tcp", "cuda_ipc") if t not in current]
        if not missing:
            continue
        value = ",".join(current + missing) if current else "tcp,sm,cuda_copy,cuda_ipc"
        yield (f"{role}: UCX_TLS lacked {' and '.join(missing)}; now {value}",
               container_delta(role, c, env=replace_env("UCX_TLS", {"name": "UCX_TLS", "value": value})))


@rule("V-04", "fix")
def timeslice_hostipc(plan: Plan):
    if not (is_pd(plan) and time_sliced(plan)):
        return
    for role, block in role_blocks(plan):
        if extra_config(block).get("hostIPC") is not True:
            yield f"{role}: set extraConfig.hostIPC: true", {role: {"extraConfig": {"hostIPC": True}}}


@rule("V-16", "fix")
def amd_attention_backend(plan: Plan):
    if not is_pd(plan) or plan.hardware_facts.get("accelerator") != "amd":
        return
    if plan.roles["prefill"].tensor == plan.roles["decode"].tensor:
        return
    for role, block in role_blocks(plan):
        c = vllm_container(block)
        if arg_values(c).get("--attention-backend") != "ROCM_ATTN":
            yield (f"{role}: added --attention-backend=ROCM_ATTN (prefill TP{plan.roles['prefill'].tensor} != decode TP{plan.roles['decode'].tensor})",
                   container_delta(role, c, args=[{"flag": "--attention-backend", PATCH_KEY: "delete"}, "--attention-backend=ROCM_ATTN"]))


# --- checks ------------------------------------------------------------------------------


@rule("V-15", "error")
def prefill_tp_above_decode(plan: Plan):
    if is_pd(plan):
        p, d = plan.roles["prefill"].tensor, plan.roles["decode"].tensor
        if p > d:
            yield f"prefill TP{p} > decode TP{d}: use decode TP >= prefill TP, e.g. --prefill {plan.roles['prefill'].replicas}xTP{d} --decode {plan.roles['decode'].replicas}xTP{p}"


@rule("V-02", "error")
def mig_with_pd(plan: Plan):
    if not is_pd(plan):
        return
    if plan.hardware_facts.get("mig"):
        yield f"hardware profile {plan.hardware} uses MIG; use --prefill 0 (aggregated) or time-slicing (gh200-timeslice)"
    for role, block in role_blocks(plan):
        mig = requested(block, MIG_RESOURCE)
        if mig:
            yield f"{role} requests {', '.join(mig)}: NIXL P/D cannot run on MIG slices; use --prefill 0 or whole/time-sliced GPUs"


@rule("V-05", "error")
def timeslice_one_gpu(plan: Plan):
    if time_sliced(plan):
        for role, rp in plan.roles.items():
            if rp.gpus_per_pod != 1:
                yield f"{role} asks for {rp.gpus_per_pod} GPUs per pod (TP{rp.tensor}); time-sliced pods must use --{role} NxTP1"


@rule("V-06", "error")
def timeslice_memory(plan: Plan):
    if not time_sliced(plan):
        return
    total = 0.0
    for role, block in role_blocks(plan):
        value = arg_values(vllm_container(block)).get("--gpu-memory-utilization")
        if value is None:
            yield f"{role} sets no --gpu-memory-utilization"
            continue
        try:
            total += float(value) * plan.roles[role].replicas
        except ValueError:
            yield f"{role}: --gpu-memory-utilization={value} is not a number"
    if total > 1.0 + 1e-9:
        yield f"--gpu-memory-utilization sums to {total:.2f} over all pods on the shared GPU; keep it <= 1.0"


@rule("V-07", "warning")
def timeslice_replicas(plan: Plan):
    ts = plan.hardware_facts.get("timeSlicing") or {}
    pods = sum(r.replicas for r in plan.roles.values())
    if ts and pods > ts.get("replicas", 1):
        yield f"{pods} vLLM pods but the profile assumes timeSlicing replicas={ts.get('replicas')}: raise replicas in the device plugin's time-slicing ConfigMap"


@rule("V-08", "warning")
def ignored_pod_keys(plan: Plan):
    multinode = plan.ms_values.get("multinode")
    for role, block in role_blocks(plan):
        for key in ("runtimeClassName", "hostNetwork") + (() if multinode else ("hostIPC", "hostPID")):
            if key in block:
                yield f"ms.{role}.{key} has no effect; use ms.{role}.extraConfig.{key}"


@rule("V-09", "error")
def timeslice_conflicts(plan: Plan):
    if not time_sliced(plan):
        return
    if plan.hardware_facts.get("hostNetwork"):
        yield f"{plan.hardware} cannot run with the host-network overlay: prefill and decode share one node and both bind 8000 and 5600"
    for role, block in role_blocks(plan):
        rdma = requested(block, RDMA_RESOURCE)
        if rdma:
            yield f"{role} requests {', '.join(rdma)} on {plan.hardware}, which has no RDMA"


@rule("V-10", "error")
def rdma_on_no_rdma(plan: Plan):
    hw = plan.hardware_facts
    if hw.get("rdma"):  # the profile's NICs are a device-plugin resource: asking for one can schedule
        return
    dra = [d.get("deviceClass") for d in (hw.get("dra") or {}).get("devices") or [] if isinstance(d, dict)]
    if dra:
        why = f"gets its NICs through DRA resource claims ({', '.join(dra)}), and no node advertises a device-plugin RDMA resource"
    elif hw.get("kvTransport") == "tcp":
        why = "has no RDMA"
    else:
        why = "has no RDMA device-plugin resource here (--rdma-resource none)"
    for role, block in role_blocks(plan):
        rdma = requested(block, RDMA_RESOURCE)
        if rdma:
            yield (f"{role} requests {', '.join(rdma)} but {plan.hardware} {why}: the pod would stay Pending; remove it "
                   f"(e.g. --set ms.{role}.containers[0].resources.limits.{rdma[0]}=null)")


@rule("V-11", "warning")
def tcp_large_model(plan: Plan):
    if is_pd(plan) and plan.hardware_facts.get("kvTransport") == "tcp":
        m = re.search(r"(\d+(?:\.\d+)?)[Bb](?![A-Za-z])", plan.model["name"])
        if m and float(m.group(1)) >= 30:
            yield f"{plan.model['name']} moves its KV cache over TCP on {plan.hardware}; expect high transfer latency for long prompts"


@rule("V-12", "error")
def hostnetwork_spread(plan: Plan):
    if not plan.hardware_facts.get("hostNetwork"):
        return
    pods = sum(r.replicas for r in plan.roles.values())
    nodes = plan.hardware_facts.get("nodes")
    if nodes and pods > nodes:
        yield f"{pods} host-network pods but {plan.hardware} has {nodes} node(s): at most one pod per node"
    for role, block in role_blocks(plan):
        anti = ((extra_config(block).get("affinity") or {}).get("podAntiAffinity") or {}).get("requiredDuringSchedulingIgnoredDuringExecution") or []
        if not any(t.get("topologyKey") == "kubernetes.io/hostname" for t in anti if isinstance(t, dict)):
            yield f"{role}: no required pod anti-affinity on kubernetes.io/hostname under hostNetwork"


@rule("V-14", "warning")
def hostnetwork_needs(plan: Plan):
    if not plan.hardware_facts.get("hostNetwork"):
        return
    for role, block in role_blocks(plan):
        if extra_config(block).get("dnsPolicy") != "ClusterFirstWithHostNet":
            yield f"{role}: extraConfig.dnsPolicy should be ClusterFirstWithHostNet"
        c = vllm_container(block)
        if not has_capability(c, "IPC_LOCK"):
            yield f"{role}: vLLM container has neither privileged nor IPC_LOCK"
        if is_pd(plan) and env_entry(c, "UCX_NET_DEVICES") is None:
            yield f"{role}: set UCX_NET_DEVICES to the host RDMA NICs (--values ms=FILE with roles: {{containers: [{{name: vllm, env: [{{name: UCX_NET_DEVICES, value: 'mlx5_0:1'}}]}}]}})"


@rule("V-17", "error")
def gpus_per_node(plan: Plan):
    # ms.multinode does not lift this: llmdctl composes single-node pods, so a multinode flag alone
    # would render one pod that asks one node for every GPU
    per_node = plan.hardware_facts.get("gpusPerNode")
    if per_node:
        for role, rp in plan.roles.items():
            if rp.gpus_per_pod > per_node:
                yield (f"{role} asks for {rp.gpus_per_pod} GPUs per pod but {plan.hardware} nodes have {per_node}; lower TP, "
                       f"or spread the ranks over nodes with a data-parallel shape (a pod cannot span nodes; e.g. --{role} {rp.replicas}xDP{rp.gpus_per_pod}EP for an MoE model)")


@rule("V-40", "error")
def dp_ranks_fill_pods(plan: Plan):
    # the final values, so a --set of dataLocal or workers is held to the same shape as the layout
    per_node = int(plan.hardware_facts.get("gpusPerNode") or 8)
    for role, rp in plan.roles.items():
        if rp.data_local * rp.workers != rp.data:
            yield (f"{role}: DP{rp.data} but {rp.workers} pod(s) x {rp.data_local} local ranks = {rp.data_local * rp.workers} ranks; "
                   f"DP x TP must equal the GPUs of the instance (give the shape with --{role}, e.g. {rp.replicas}xDP{rp.data})")
        elif rp.workers > 1 and rp.gpus_per_pod != per_node:
            yield (f"{role}: each of the {rp.workers} pods of an instance uses {rp.gpus_per_pod} of the {per_node} GPUs of its node; "
                   f"ranks over several nodes must fill them (DP{rp.data} x TP{rp.tensor} over {per_node}-GPU nodes: use a multiple of {per_node // rp.tensor} ranks)")


@rule("V-41", "error")
def expert_parallel_needs_moe(plan: Plan):
    for role, rp in plan.roles.items():
        if rp.expert and not plan.model.get("moe"):
            yield (f"{role}: expert parallelism (EP) on {plan.model['name']}, which llmdctl does not know as a mixture-of-experts model; "
                   f"a dense model has no experts to spread, so vLLM refuses to start (drop EP: --{role} {rp.layout[:-2]})")


@rule("V-42", "error")
def wide_needs_fabric(plan: Plan):
    if plan.hardware_facts.get("kvTransport") == "rdma" or plan.hardware_facts.get("computeDomain"):
        return
    for role, rp in plan.roles.items():
        if rp.workers > 1:
            yield (f"{role}: one instance spans {rp.workers} nodes on {plan.hardware}, which has no RDMA: every decode step's "
                   f"expert all-to-all and the DP collectives would cross nodes over TCP; use an RDMA profile or a single-node shape")


@rule("V-43", "error")
def pool_targets_every_rank(plan: Plan):
    if plan.generation != "router":
        return
    targets = [int(t.get("number", 0)) for t in plan.pool_values.get("targetPorts") or [] if isinstance(t, dict)]
    wide = {role: rp for role, rp in plan.roles.items() if rp.rank_ports}
    for role, rp in wide.items():
        missing = [p for p in rp.rank_ports if p not in targets]
        if missing:
            yield (f"{role}: DP ranks answer on ports {rp.rank_ports[0]}-{rp.rank_ports[-1]}, but the InferencePool targets "
                   f"{', '.join(map(str, targets)) or 'none'}: ranks on {', '.join(map(str, missing))} would get no requests")
    served = {p for rp in wide.values() for p in rp.rank_ports}
    for role, rp in plan.roles.items():
        own = set(rp.rank_ports) or ({targets[0]} if targets else set())
        dead = sorted(p for p in served if p not in own)
        if dead:
            yield (f"{role}: the InferencePool targets ports {', '.join(map(str, dead))} on every pod, but {role} pods do not serve them "
                   "(multi-port DP needs the same ranks per pod in both roles; or use hybrid load balancing)")


@rule("V-36", "error")
def kv_connector_on_every_role(plan: Plan):
    if not is_pd(plan):
        return
    for role, block in role_blocks(plan):
        config = arg_values(vllm_container(block)).get("--kv-transfer-config")
        if not config or "kv_connector" not in config:
            yield (f"{role}: the vLLM container has no --kv-transfer-config with a kv_connector, so it cannot take part in P/D "
                   "(a --set of the whole args list replaces the guide's; add flags with --values and an args list, which merges by flag)")


@rule("V-37", "error")
def replicas_after_overrides(plan: Plan):
    for role, rp in plan.roles.items():
        if role == "decode" and rp.replicas < 1:
            yield f"decode replicas is {rp.replicas} after overrides; a stack needs at least one decode pod"
        if role == "prefill" and rp.replicas < 1:
            yield f"prefill replicas is {rp.replicas} after overrides, but the stack is P/D; use --prefill 0 for aggregated serving"


@rule("V-38", "error")
def rdma_count(plan: Plan):
    if not (is_pd(plan) and plan.hardware_facts.get("kvTransport") == "rdma"):
        return
    for role, block in role_blocks(plan):
        for name, value in resources_of(block).items():
            if RDMA_RESOURCE.match(str(name)) and str(value).strip() in ("0", ""):
                yield f"{role} requests {name}={value}: the KV cache would have no RDMA NIC; request at least 1, or use --rdma-resource none on a TCP profile"


_IMAGE_FAMILIES = [
    (re.compile(r"llm-d-rocm|rocm"), "amd"),
    (re.compile(r"llm-d-xpu"), "intel"),
    (re.compile(r"vllm-gaudi|llm-d-hpu"), "intel-gaudi"),
    (re.compile(r"vllm-tpu"), "google"),
    (re.compile(r"llm-d-cuda|/llm-d:|llm-d-cuda-dev"), "nvidia"),
]


@rule("V-18", "error")
def accelerator_vs_image(plan: Plan):
    accel = (plan.ms_values.get("accelerator") or {}).get("type", "nvidia")
    for role, block in role_blocks(plan):
        role_accel = (block.get("accelerator") or {}).get("type", accel)
        image = str(vllm_container(block).get("image", ""))
        for pattern, family in _IMAGE_FAMILIES:
            if pattern.search(image):
                if not (role_accel == family or (family == "intel" and role_accel.startswith("intel"))):
                    yield f"{role}: image {image} is for {family} but accelerator.type is {role_accel}"
                break


@rule("V-19", "error")
def intel_without_dra(plan: Plan):
    acc = plan.ms_values.get("accelerator") or {}
    if acc.get("type") == "intel" and not acc.get("dra"):
        yield "accelerator.type: intel needs accelerator.dra: true; or use intel-i915 / intel-xe"


@rule("V-20", "warning")
def explicit_gpu_count(plan: Plan):
    for role, block in role_blocks(plan):
        rp = plan.roles[role]
        res = vllm_container(block).get("resources") or {}
        for kind in ("limits", "requests"):
            value = (res.get(kind) or {}).get(rp.accelerator_resource)
            if value is not None and str(value) != str(rp.gpus_per_pod):
                yield f"{role} {kind}.{rp.accelerator_resource}={value} but TP gives {rp.gpus_per_pod}; let parallelism set it (drop the key)"


@rule("V-22", "error")
def vllm_ports(plan: Plan):
    for role, block in role_blocks(plan):
        c = vllm_container(block)
        port = next((p for p in c.get("ports") or [] if isinstance(p, dict) and p.get("name") == "vllm"), None)
        want = plan.roles[role].vllm_port
        if port is None:
            yield f"{role}: the vLLM container has no port named 'vllm' (probes and PodMonitor use it)"
        elif port.get("containerPort") != want:
            yield f"{role}: port 'vllm' is {port.get('containerPort')} but vLLM listens on {want}"
    pool = plan.pool_values
    service_port = (plan.ms_values.get("routing") or {}).get("servicePort", 8000)
    target = [p.get("number") for p in pool.get("targetPorts") or []] or [pool.get("targetPortNumber", 8000)]
    if target[0] != service_port:
        yield f"InferencePool target port {target[0]} != ms routing.servicePort {service_port}"


@rule("V-24", "warning")
def side_channel_port(plan: Plan):
    if not is_pd(plan):
        return
    for role, block in role_blocks(plan):
        c = vllm_container(block)
        env = env_entry(c, "VLLM_NIXL_SIDE_CHANNEL_PORT")
        if env is None:
            yield f"{role}: VLLM_NIXL_SIDE_CHANNEL_PORT is not set"
            continue
        ports = [p.get("containerPort") for p in c.get("ports") or [] if isinstance(p, dict)]
        if str(env.get("value")) not in map(str, ports):
            yield f"{role}: side-channel port {env.get('value')} is not exposed as a containerPort"


@rule("V-28", "warning")
def rdma_cluster_specific(plan: Plan):
    rdma = plan.hardware_facts.get("rdma") or {}
    if is_pd(plan) and rdma.get("clusterSpecific"):
        yield f"{plan.hardware} requests {rdma['resource']}={rdma.get('count', 1)}; confirm your cluster's RDMA resource and pass --rdma-resource NAME[=COUNT]"


@rule("V-29", "warning")
def rdma_ipc_lock(plan: Plan):
    if not (is_pd(plan) and plan.hardware_facts.get("kvTransport") == "rdma"):
        return
    for role, block in role_blocks(plan):
        if not has_capability(vllm_container(block), "IPC_LOCK"):
            yield f"{role}: the vLLM container lacks IPC_LOCK"


@rule("V-32", "warning")
def images_match(plan: Plan):
    if is_pd(plan) and plan.roles["prefill"].image != plan.roles["decode"].image:
        yield f"prefill {plan.roles['prefill'].image} vs decode {plan.roles['decode'].image}"


@rule("V-33", "warning")
def privileged_pods(plan: Plan):
    # the hardware profile names what its hardware needs (gb200: hostIPC/hostPID for MNNVL cuda_ipc);
    # those are how that hardware runs in production, so only the others are flagged
    needed = plan.hardware_facts.get("hostAccess") or {}
    for role, block in role_blocks(plan):
        extra = extra_config(block)
        flags = [k for k in ("hostNetwork", "hostIPC", "hostPID") if extra.get(k)]
        if ((vllm_container(block).get("securityContext") or {}).get("privileged")):
            flags.append("privileged")
        flags = [f for f in flags if f not in needed]
        if flags:
            yield f"{role} runs with {', '.join(flags)} (development and debugging only)"


@rule("V-35", "warning")
def hostnetwork_without_rdma(plan: Plan):
    if plan.hardware_facts.get("hostNetwork") and plan.hardware_facts.get("kvTransport") == "tcp":
        yield f"host-network on {plan.hardware} brings port clashes and no RDMA benefit"


@rule("V-39", "error")
def mig_without_a_mig_profile(plan: Plan):
    if plan.hardware_facts.get("mig"):
        return
    for role, block in role_blocks(plan):
        mig = requested(block, MIG_RESOURCE)
        if mig and plan.roles[role].accelerator_resource:
            yield (f"{role} requests {', '.join(mig)} and, from its tensor parallelism, {plan.roles[role].gpus_per_pod} "
                   f"{plan.roles[role].accelerator_resource}: the pod would need a whole GPU and a slice of one; "
                   f"{plan.hardware} is not a MIG profile")


@rule("V-53", "warning")
def gpu_taints_still_tolerated(plan: Plan):
    # the profile's (and --toleration's) list goes to extraConfig.tolerations; a --set/--values that
    # replaces that list drops them, and the pods then never land on the tainted GPU nodes
    wanted = plan.hardware_facts.get("tolerations") or []
    for role, block in role_blocks(plan):
        have = list(extra_config(block).get("tolerations") or []) + list(block.get("tolerations") or [])
        lost = [t for t in wanted if t not in have]
        if lost:
            names = ", ".join(t["key"] + (f"={t['value']}" if t.get("value") else "") + (f":{t['effect']}" if t.get("effect") else "") for t in lost)
            yield (f"{role}: the pods no longer tolerate {names} (an override replaced ms.{role}.extraConfig.tolerations); "
                   f"keep those entries in your list, or add yours with --toleration instead")


@rule("V-54", "warning")
def pods_drain_before_exit(plan: Plan):
    # the release's drain layer sets all three; an override of one can silently undo the others
    if not (plan.release_info.engine or {}).get("drain"):
        return
    for role, spec in pod_specs(plan).items():
        timeout, sleep, grace = pod_drain(spec)
        if not timeout:
            yield (f"{role}: vLLM runs without --shutdown-timeout (or with 0): a replaced or scaled-down pod aborts its "
                   f"in-flight requests on SIGTERM; keep the release's --shutdown-timeout")
        elif grace <= sleep + timeout:
            yield (f"{role}: terminationGracePeriodSeconds {grace} <= preStop {sleep} s + --shutdown-timeout {timeout} s: the kubelet "
                   f"kills vLLM before its drain ends; raise ms.{role}.terminationGracePeriodSeconds above {sleep + timeout}")


@rule("V-56", "error")
def privileged_cannot_refuse_escalation(plan: Plan):
    # the least-privilege layer sets allowPrivilegeEscalation: false; an override that makes the
    # container privileged must lift it too, or the API server refuses every pod
    for role, block in role_blocks(plan):
        for c in block.get("containers") or []:
            sc = (c.get("securityContext") or {}) if isinstance(c, dict) else {}
            if sc.get("privileged") and sc.get("allowPrivilegeEscalation") is False:
                yield (f"{role}: container {c.get('name')} is privileged with allowPrivilegeEscalation: false, which the API server "
                       f"refuses; also set ms.{role}.containers[{c.get('name')}].securityContext.allowPrivilegeEscalation=true (or null)")
