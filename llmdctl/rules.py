"""Named P/D rules over a composed plan (IDs follow reference/profiles.md section 9).

Each rule has a stable ID and a severity: ``error`` refuses to render, ``warning`` renders and
warns, ``fix`` changes the plan and says so. Fix rules run first, so checks see the fixed plan.
``evaluate`` raises ``ValidationError`` carrying every finding when any rule says error.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Iterator

from .compose import ROLES, Plan
from .errors import Finding, ValidationError
from .merge import arg_flag

CHART_INJECTED_ARGS = ("--port", "--tensor-parallel-size")
_RDMA = re.compile(r"^(rdma/|.*sriov-rdma|amd\.com/vnic)")
_MIG = re.compile(r"^nvidia\.com/mig-")


@dataclass(frozen=True)
class Rule:
    id: str
    severity: str
    title: str
    why: str
    source: str
    check: Callable[[Plan], Iterator[str]]

    def findings(self, plan: Plan) -> list[Finding]:
        return [Finding(self.id, self.severity, msg, self.why, self.source) for msg in self.check(plan)]


RULES: list[Rule] = []


def rule(id: str, severity: str, title: str, why: str, source: str):
    def register(fn: Callable[[Plan], Iterator[str]]):
        RULES.append(Rule(id, severity, title, why, source, fn))
        return fn

    return register


# --- helpers over ms values ----------------------------------------------------------------


def _roles(plan: Plan) -> Iterator[tuple[str, dict]]:
    for role in ROLES:
        if role in plan.roles:
            yield role, plan.ms_values.get(role) or {}


def _vllm(block: dict) -> dict:
    for c in block.get("containers") or []:
        if isinstance(c, dict) and c.get("name") == "vllm":
            return c
    containers = block.get("containers") or []
    return containers[0] if containers and isinstance(containers[0], dict) else {}


def _env(container: dict, name: str) -> dict | None:
    return next((e for e in container.get("env") or [] if isinstance(e, dict) and e.get("name") == name), None)


def _args(container: dict) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for a in container.get("args") or []:
        text = str(a)
        out[arg_flag(text)] = text.split("=", 1)[1] if "=" in text else None
    return out


def _resources(block: dict) -> dict[str, object]:
    found: dict[str, object] = {}
    for c in (block.get("containers") or []) + (block.get("initContainers") or []):
        if not isinstance(c, dict):
            continue
        res = c.get("resources") or {}
        for kind in ("limits", "requests"):
            for k, v in (res.get(kind) or {}).items():
                if v is not None:
                    found[k] = v
    return found


def _requested(block: dict, pattern: re.Pattern) -> list[str]:
    """Sorted resource names of a role's containers that match ``pattern``."""
    return sorted(str(k) for k in _resources(block) if pattern.match(str(k)))


def _extra(block: dict) -> dict:
    return block.get("extraConfig") or {}


def _pd(plan: Plan) -> bool:
    return plan.mode == "disaggregated"


def _time_sliced(plan: Plan) -> bool:
    return bool(plan.hardware_facts.get("timeSlicing"))


def _has_capability(container: dict, cap: str) -> bool:
    sc = container.get("securityContext") or {}
    if sc.get("privileged"):
        return True
    return cap in ((sc.get("capabilities") or {}).get("add") or [])


# --- fixes (run first) ---------------------------------------------------------------------


@rule("V-21", "fix", "--port / --tensor-parallel-size in vLLM args",
      "the chart injects both from routing and parallelism; a second copy conflicts",
      "chart _helpers.tpl vllmServeModelCommand; llm-d-modelservice#190")
def strip_injected_args(plan: Plan):
    for role, block in _roles(plan):
        for c in block.get("containers") or []:
            if not isinstance(c, dict) or c.get("modelCommand", "vllmServe") not in ("vllmServe", "imageDefault"):
                continue
            args = c.get("args") or []
            dropped = [a for a in args if arg_flag(a) in CHART_INJECTED_ARGS]
            if dropped:
                c["args"] = [a for a in args if arg_flag(a) not in CHART_INJECTED_ARGS]
                yield f"removed {', '.join(map(str, dropped))} from {role} args"


@rule("V-23", "fix", "NIXL side-channel host not from the pod IP",
      "vLLM defaults VLLM_NIXL_SIDE_CHANNEL_HOST to localhost (and 0.0.0.0 made decode dial itself), breaking the P/D handshake",
      "vLLM envs.py; llm-d docs/infrastructure/rdma; kthena#1781")
def side_channel_host(plan: Plan):
    if not _pd(plan):
        return
    want = {"name": "VLLM_NIXL_SIDE_CHANNEL_HOST", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}
    for role, block in _roles(plan):
        c = _vllm(block)
        env = _env(c, want["name"])
        if env == want:
            continue
        was = "missing" if env is None else f"was {env.get('value', env.get('valueFrom'))!r}"
        c["env"] = [e for e in c.get("env") or [] if not (isinstance(e, dict) and e.get("name") == want["name"])] + [dict(want)]
        yield f"{role}: VLLM_NIXL_SIDE_CHANNEL_HOST now comes from status.podIP ({was})"


@rule("V-03", "fix", "time-slicing: UCX_TLS without tcp or cuda_ipc",
      "tcp carries UCX active messages (without it: 'no active messages transport'); cuda_ipc moves the KV data on one GPU",
      "GH200 pd-timeslicing-breakthrough.md; sgl-project/sglang#40641")
def timeslice_ucx(plan: Plan):
    if not (_pd(plan) and _time_sliced(plan)):
        return
    for role, block in _roles(plan):
        c = _vllm(block)
        env = _env(c, "UCX_TLS")
        current = [t for t in str((env or {}).get("value") or "").split(",") if t]
        missing = [t for t in ("tcp", "cuda_ipc") if t not in current]
        if not missing:
            continue
        value = ",".join(current + missing) if current else "tcp,sm,cuda_copy,cuda_ipc"
        c["env"] = [e for e in c.get("env") or [] if not (isinstance(e, dict) and e.get("name") == "UCX_TLS")] + [{"name": "UCX_TLS", "value": value}]
        yield f"{role}: UCX_TLS lacked {' and '.join(missing)}; now {value}"


@rule("V-04", "fix", "time-slicing: hostIPC missing on a P/D pod",
      "CUDA IPC between the prefill and decode pods needs a shared IPC namespace; the chart renders hostIPC only through <role>.extraConfig on Deployments",
      "GH200 pd-timeslicing-breakthrough.md; chart decode-deployment.yaml")
def timeslice_hostipc(plan: Plan):
    if not (_pd(plan) and _time_sliced(plan)):
        return
    for role, block in _roles(plan):
        if _extra(block).get("hostIPC") is not True:
            block.setdefault("extraConfig", {})["hostIPC"] = True
            yield f"{role}: set extraConfig.hostIPC: true"


@rule("V-16", "fix", "AMD with prefill TP != decode TP without ROCM_ATTN",
      "the KV layout differs between TP sizes unless both roles use the ROCm attention backend",
      "llm-d README.amd.md; ms-pd/values_amd.yaml")
def amd_attention_backend(plan: Plan):
    if not _pd(plan) or plan.hardware_facts.get("accelerator") != "amd":
        return
    if plan.roles["prefill"].tensor == plan.roles["decode"].tensor:
        return
    for role, block in _roles(plan):
        c = _vllm(block)
        if _args(c).get("--attention-backend") != "ROCM_ATTN":
            c["args"] = [a for a in c.get("args") or [] if arg_flag(a) != "--attention-backend"] + ["--attention-backend=ROCM_ATTN"]
            yield f"{role}: added --attention-backend=ROCM_ATTN (prefill TP{plan.roles['prefill'].tensor} != decode TP{plan.roles['decode'].tensor})"


# --- checks ------------------------------------------------------------------------------


@rule("V-15", "error", "prefill TP greater than decode TP",
      "with NixlConnector vLLM asserts in _validate_remote_agent_handshake and the decode engine crashes; only decode TP >= prefill TP works",
      "llm-d docs/operations/disaggregation/vllm.md")
def prefill_tp_above_decode(plan: Plan):
    if _pd(plan):
        p, d = plan.roles["prefill"].tensor, plan.roles["decode"].tensor
        if p > d:
            yield f"prefill TP{p} > decode TP{d}: use decode TP >= prefill TP, e.g. --prefill {plan.roles['prefill'].replicas}xTP{d} --decode {plan.roles['decode'].replicas}xTP{p}"


@rule("V-02", "error", "NIXL P/D on MIG slices",
      "MIG instances are isolated: no CUDA IPC across them and no RDMA inside one GPU, so NIXL fails with NIXL_ERR_BACKEND (MIG is fine for aggregated serving)",
      "GH200 pd-timeslicing-breakthrough.md; docs.rapids.ai MIG guide")
def mig_with_pd(plan: Plan):
    if not _pd(plan):
        return
    if plan.hardware_facts.get("mig"):
        yield f"hardware profile {plan.hardware} uses MIG; use --prefill 0 (aggregated) or time-slicing (gh200-timeslice)"
    for role, block in _roles(plan):
        mig = _requested(block, _MIG)
        if mig:
            yield f"{role} requests {', '.join(mig)}: NIXL P/D cannot run on MIG slices; use --prefill 0 or whole/time-sliced GPUs"


@rule("V-05", "error", "time-slicing: more than one GPU per pod",
      "there is one physical GPU; several time-sliced replicas give no extra compute and may land on the same device",
      "NVIDIA GPU Operator time-slicing doc")
def timeslice_one_gpu(plan: Plan):
    if _time_sliced(plan):
        for role, rp in plan.roles.items():
            if rp.gpus_per_pod != 1:
                yield f"{role} asks for {rp.gpus_per_pod} GPUs per pod (TP{rp.tensor}); time-sliced pods must use --{role} NxTP1"


@rule("V-06", "error", "time-slicing: GPU memory caps missing or above 1.0 in total",
      "time-slicing has no memory isolation; vLLM's default 0.9 lets the second pod run out of memory",
      "GH200 pd-timeslicing-breakthrough.md; k3s-gpu-setup.md")
def timeslice_memory(plan: Plan):
    if not _time_sliced(plan):
        return
    total = 0.0
    for role, block in _roles(plan):
        value = _args(_vllm(block)).get("--gpu-memory-utilization")
        if value is None:
            yield f"{role} sets no --gpu-memory-utilization"
            continue
        try:
            total += float(value) * plan.roles[role].replicas
        except ValueError:
            yield f"{role}: --gpu-memory-utilization={value} is not a number"
    if total > 1.0 + 1e-9:
        yield f"--gpu-memory-utilization sums to {total:.2f} over all pods on the shared GPU; keep it <= 1.0"


@rule("V-07", "warning", "time-slicing: more pods than time-slicing replicas",
      "pods beyond the device plugin's timeSlicing replicas stay Pending",
      "GH200 k3s-gpu-setup.md")
def timeslice_replicas(plan: Plan):
    ts = plan.hardware_facts.get("timeSlicing") or {}
    pods = sum(r.replicas for r in plan.roles.values())
    if ts and pods > ts.get("replicas", 1):
        yield f"{pods} vLLM pods but the profile assumes timeSlicing replicas={ts.get('replicas')}: raise replicas in the device plugin's time-slicing ConfigMap"


@rule("V-08", "warning", "top-level <role>.runtimeClassName / hostIPC / hostNetwork are ignored",
      "on Deployments the chart renders these only from <role>.extraConfig (top-level hostIPC only for multinode LWS)",
      "chart templates v0.4.9")
def ignored_pod_keys(plan: Plan):
    multinode = plan.ms_values.get("multinode")
    for role, block in _roles(plan):
        for key in ("runtimeClassName", "hostNetwork") + (() if multinode else ("hostIPC", "hostPID")):
            if key in block:
                yield f"ms.{role}.{key} has no effect; use ms.{role}.extraConfig.{key}"


@rule("V-09", "error", "time-slicing with RDMA or hostNetwork",
      "one GPU has no RDMA path, and under hostNetwork the co-located pods clash on ports 8000 and 5600",
      "reference profiles.md V-09, V-12")
def timeslice_conflicts(plan: Plan):
    if not _time_sliced(plan):
        return
    if plan.hardware_facts.get("hostNetwork"):
        yield f"{plan.hardware} cannot run with the host-network overlay: prefill and decode share one node and both bind 8000 and 5600"
    for role, block in _roles(plan):
        rdma = _requested(block, _RDMA)
        if rdma:
            yield f"{role} requests {', '.join(rdma)} on {plan.hardware}, which has no RDMA"


@rule("V-10", "error", "RDMA resource on a profile without RDMA",
      "the cluster has no RDMA device plugin for it, so the pods stay Pending forever",
      "infra quickstart gke.md; helmfile gke set: null")
def rdma_on_no_rdma(plan: Plan):
    if plan.hardware_facts.get("kvTransport") != "tcp":
        return
    for role, block in _roles(plan):
        rdma = _requested(block, _RDMA)
        if rdma:
            yield f"{role} requests {', '.join(rdma)} but {plan.hardware} has no RDMA; remove it (e.g. --set ms.{role}.containers[0].resources.limits.{rdma[0]}=null)"


@rule("V-11", "warning", "KV cache over TCP for a large model",
      "without RDMA the KV transfer runs over TCP, which is slow for large models and long prompts",
      "AMD guide (llm-d#776); llm-d rdma doc")
def tcp_large_model(plan: Plan):
    if _pd(plan) and plan.hardware_facts.get("kvTransport") == "tcp":
        m = re.search(r"(\d+(?:\.\d+)?)[Bb](?![A-Za-z])", plan.model["name"])
        if m and float(m.group(1)) >= 30:
            yield f"{plan.model['name']} moves its KV cache over TCP on {plan.hardware}; expect high transfer latency for long prompts"


@rule("V-12", "error", "hostNetwork: pods that could share a node",
      "vLLM, the sidecar and the NIXL side channel bind 8000/8200/5600 on the node; two pods on one node clash",
      "llm-d-benchmark ('ONLY ONE POD PER NODE'); llm-d#632; ray#60057")
def hostnetwork_spread(plan: Plan):
    if not plan.hardware_facts.get("hostNetwork"):
        return
    pods = sum(r.replicas for r in plan.roles.values())
    nodes = plan.hardware_facts.get("nodes")
    if nodes and pods > nodes:
        yield f"{pods} host-network pods but {plan.hardware} has {nodes} node(s): at most one pod per node"
    for role, block in _roles(plan):
        anti = ((_extra(block).get("affinity") or {}).get("podAntiAffinity") or {}).get("requiredDuringSchedulingIgnoredDuringExecution") or []
        if not any(t.get("topologyKey") == "kubernetes.io/hostname" for t in anti if isinstance(t, dict)):
            yield f"{role}: no required pod anti-affinity on kubernetes.io/hostname under hostNetwork"


@rule("V-14", "warning", "hostNetwork without its companion settings",
      "host-network pods need dnsPolicy ClusterFirstWithHostNet to resolve cluster names, privileged or IPC_LOCK to register RDMA memory, and UCX_NET_DEVICES naming the host RDMA NICs",
      "vcave values_amd_host_network.yaml")
def hostnetwork_needs(plan: Plan):
    if not plan.hardware_facts.get("hostNetwork"):
        return
    for role, block in _roles(plan):
        if _extra(block).get("dnsPolicy") != "ClusterFirstWithHostNet":
            yield f"{role}: extraConfig.dnsPolicy should be ClusterFirstWithHostNet"
        c = _vllm(block)
        if not _has_capability(c, "IPC_LOCK"):
            yield f"{role}: vLLM container has neither privileged nor IPC_LOCK"
        if _pd(plan) and _env(c, "UCX_NET_DEVICES") is None:
            yield f"{role}: set UCX_NET_DEVICES to the host RDMA NICs (--values ms=FILE with roles: {{containers: [{{name: vllm, env: [{{name: UCX_NET_DEVICES, value: 'mlx5_0:1'}}]}}]}})"


@rule("V-17", "error", "pod GPUs above GPUs per node without multinode",
      "a Deployment pod cannot span nodes; multi-node tensor parallelism needs multinode (LeaderWorkerSet)",
      "chart numGpuPerWorker; llm-d prereq README")
def gpus_per_node(plan: Plan):
    per_node = plan.hardware_facts.get("gpusPerNode")
    if per_node and not plan.ms_values.get("multinode"):
        for role, rp in plan.roles.items():
            if rp.gpus_per_pod > per_node:
                yield f"{role} asks for {rp.gpus_per_pod} GPUs per pod but {plan.hardware} nodes have {per_node}; lower TP or use multinode"


_IMAGE_FAMILIES = [
    (re.compile(r"llm-d-rocm|rocm"), "amd"),
    (re.compile(r"llm-d-xpu"), "intel"),
    (re.compile(r"vllm-gaudi|llm-d-hpu"), "intel-gaudi"),
    (re.compile(r"vllm-tpu"), "google"),
    (re.compile(r"llm-d-cuda|/llm-d:|llm-d-cuda-dev"), "nvidia"),
]


@rule("V-18", "error", "accelerator type does not match the image",
      "a CUDA image on AMD GPUs (or the reverse) requests the wrong device resource or cannot run",
      "llm-d ms-pd values files")
def accelerator_vs_image(plan: Plan):
    accel = (plan.ms_values.get("accelerator") or {}).get("type", "nvidia")
    for role, block in _roles(plan):
        role_accel = (block.get("accelerator") or {}).get("type", accel)
        image = str(_vllm(block).get("image", ""))
        for pattern, family in _IMAGE_FAMILIES:
            if pattern.search(image):
                if not (role_accel == family or (family == "intel" and role_accel.startswith("intel"))):
                    yield f"{role}: image {image} is for {family} but accelerator.type is {role_accel}"
                break


@rule("V-19", "error", "accelerator.type intel without DRA",
      "the chart has no resource name for plain 'intel' and falls back to nvidia.com/gpu",
      "chart _helpers.tpl acceleratorResource")
def intel_without_dra(plan: Plan):
    acc = plan.ms_values.get("accelerator") or {}
    if acc.get("type") == "intel" and not acc.get("dra"):
        yield "accelerator.type: intel needs accelerator.dra: true; or use intel-i915 / intel-xe"


@rule("V-20", "warning", "explicit accelerator count that differs from TP",
      "the chart keeps a user-set GPU count and adds an llm-d.ai/accelerator-warning annotation; limits and requests can disagree",
      "chart _helpers.tpl acceleratorWarning")
def explicit_gpu_count(plan: Plan):
    for role, block in _roles(plan):
        rp = plan.roles[role]
        res = _vllm(block).get("resources") or {}
        for kind in ("limits", "requests"):
            value = (res.get(kind) or {}).get(rp.accelerator_resource)
            if value is not None and str(value) != str(rp.gpus_per_pod):
                yield f"{role} {kind}.{rp.accelerator_resource}={value} but TP gives {rp.gpus_per_pod}; let parallelism set it (drop the key)"


@rule("V-22", "error", "vLLM port does not match the routing contract",
      "the sidecar forwards to routing.proxy.targetPort and the EPP targets routing.servicePort; probes use the named port 'vllm'",
      "chart vllmPort, routingProxy")
def vllm_ports(plan: Plan):
    for role, block in _roles(plan):
        c = _vllm(block)
        port = next((p for p in c.get("ports") or [] if isinstance(p, dict) and p.get("name") == "vllm"), None)
        want = plan.roles[role].vllm_port
        if port is None:
            yield f"{role}: the vLLM container has no port named 'vllm' (probes and PodMonitor use it)"
        elif port.get("containerPort") != want:
            yield f"{role}: port 'vllm' is {port.get('containerPort')} but vLLM listens on {want}"
    pool = plan.release("gaie").values.get("inferencePool") or {}
    service_port = (plan.ms_values.get("routing") or {}).get("servicePort", 8000)
    target = [p.get("number") for p in pool.get("targetPorts") or []] or [pool.get("targetPortNumber", 8000)]
    if target[0] != service_port:
        yield f"InferencePool target port {target[0]} != ms routing.servicePort {service_port}"


@rule("V-24", "warning", "NIXL side-channel port not explicit or not exposed",
      "sources disagree on the default (5600 vs 5557); an explicit, exposed port avoids 'Address already in use' surprises",
      "vLLM envs.py; llm-d rdma doc")
def side_channel_port(plan: Plan):
    if not _pd(plan):
        return
    for role, block in _roles(plan):
        c = _vllm(block)
        env = _env(c, "VLLM_NIXL_SIDE_CHANNEL_PORT")
        if env is None:
            yield f"{role}: VLLM_NIXL_SIDE_CHANNEL_PORT is not set"
            continue
        ports = [p.get("containerPort") for p in c.get("ports") or [] if isinstance(p, dict)]
        if str(env.get("value")) not in map(str, ports):
            yield f"{role}: side-channel port {env.get('value')} is not exposed as a containerPort"


@rule("V-28", "warning", "cluster-specific RDMA resource name",
      "RDMA NIC resource names depend on the cluster's device plugin (rdma/ib, rdma/roce_gdr, amd.com/vnic, nvidia.com/sriov-rdma-vf)",
      "llm-d README.amd.md; ms-pd/values_amd.yaml")
def rdma_cluster_specific(plan: Plan):
    rdma = plan.hardware_facts.get("rdma") or {}
    if _pd(plan) and rdma.get("clusterSpecific"):
        yield f"{plan.hardware} requests {rdma['resource']}={rdma.get('count', 1)}; confirm your cluster's RDMA resource and pass --rdma-resource NAME[=COUNT]"


@rule("V-29", "warning", "RDMA without IPC_LOCK",
      "UCX must pin memory to register it for RDMA; without IPC_LOCK registration fails with ENOMEM/EPERM",
      "llm-d#2442; llm-d rdma doc")
def rdma_ipc_lock(plan: Plan):
    if not (_pd(plan) and plan.hardware_facts.get("kvTransport") == "rdma"):
        return
    for role, block in _roles(plan):
        if not _has_capability(_vllm(block), "IPC_LOCK"):
            yield f"{role}: the vLLM container lacks IPC_LOCK"


@rule("V-30", "error", "vLLM block size differs from the precise prefix scorer's",
      "the scheduler's prefix index hashes token blocks; with another block size it never matches",
      "GH200 precise-prefix-routing-findings.md")
def block_size(plan: Plan):
    from .yamlio import load_text

    ext = plan.release("gaie").values.get("inferenceExtension") or {}
    text = (ext.get("pluginsCustomConfig") or {}).get(ext.get("pluginsConfigFile"))
    if not text or "precise-prefix-cache-scorer" not in str(text):
        return
    try:
        config = load_text(str(text), "EPP config").data or {}
    except Exception:
        yield f"the EPP config {ext.get('pluginsConfigFile')} is not valid YAML"
        return
    for plugin in (config.get("plugins") or []) if isinstance(config, dict) else []:
        if isinstance(plugin, dict) and plugin.get("type") == "precise-prefix-cache-scorer":
            epp_block = (((plugin.get("parameters") or {}).get("tokenProcessorConfig") or {}).get("blockSize"))
            for role, block in _roles(plan):
                vllm_block = _args(_vllm(block)).get("--block-size") or "16"
                if epp_block is not None and str(epp_block) != str(vllm_block):
                    yield f"{role} vLLM --block-size={vllm_block} but precise-prefix-cache-scorer blockSize={epp_block}"


@rule("V-32", "warning", "prefill and decode images differ",
      "the NIXL handshake checks vLLM compatibility; the EPP assumes every prefill/decode pair can talk",
      "llm-d docs/operations/disaggregation/vllm.md")
def images_match(plan: Plan):
    if _pd(plan) and plan.roles["prefill"].image != plan.roles["decode"].image:
        yield f"prefill {plan.roles['prefill'].image} vs decode {plan.roles['decode'].image}"


@rule("V-33", "warning", "hostNetwork, hostIPC or privileged pods",
      "they bypass pod isolation; upstream marks them for debugging, not production",
      "AMD guide (llm-d#776)")
def privileged_pods(plan: Plan):
    for role, block in _roles(plan):
        extra = _extra(block)
        flags = [k for k in ("hostNetwork", "hostIPC") if extra.get(k)]
        if ((_vllm(block).get("securityContext") or {}).get("privileged")):
            flags.append("privileged")
        if flags:
            yield f"{role} runs with {', '.join(flags)} (development and debugging only)"


@rule("V-35", "warning", "host network on a profile without RDMA",
      "hostNetwork exists to reach host RDMA NICs, which this profile does not use",
      "reference profiles.md §4, §6")
def hostnetwork_without_rdma(plan: Plan):
    if plan.hardware_facts.get("hostNetwork") and plan.hardware_facts.get("kvTransport") == "tcp":
        yield f"host-network on {plan.hardware} brings port clashes and no RDMA benefit"


def evaluate(plan: Plan) -> list[Finding]:
    """Run every rule (fixes first); attach findings to the plan; raise on any error."""
    ordered = [r for r in RULES if r.severity == "fix"] + [r for r in RULES if r.severity != "fix"]
    findings: list[Finding] = []
    for r in ordered:
        findings += r.findings(plan)
    plan.findings = findings
    errors = [f for f in findings if f.severity == "error"]
    if errors:
        lines = [f"{f.rule}: {f.message}" for f in errors]
        raise ValidationError("refused:\n  " + "\n  ".join(lines), findings, hint=errors[0].why)
    return findings
