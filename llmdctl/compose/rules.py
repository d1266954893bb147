"""Named P/D rules over a composed plan; what each guards against is data (guides/rules.yaml).

Each rule has a stable ID and a severity: ``error`` refuses to render, ``warning`` renders and
warns, ``fix`` proposes a change. A rule only reads the plan: a check yields messages, a fix
yields ``(message, values delta for ms)``. The composer (``compose.evaluate``) merges each fix's
deltas into a new plan through the same merge contract as every layer, runs the fixes first so
that checks see the fixed plan, and refuses when any check says error.
"""

from __future__ import annotations

import re
from typing import Any, Callable, Iterator, NamedTuple

from ..base.errors import CatalogError, Finding, InputError
from ..base.merge import PATCH_KEY, arg_flag
from ..base.yamlio import load_text
from ..plan.stack import ROLES, Plan
from .engineflags import argv_findings, container_args, flag_table, sidecar_findings, sidecar_table
from .eppconfig import config_errors, plugin_schema
from .kvevents import producer_of

CHART_INJECTED_ARGS = ("--port", "--tensor-parallel-size")
_RDMA = re.compile(r"^(rdma/|.*sriov-rdma|amd\.com/vnic)")
_MIG = re.compile(r"^nvidia\.com/mig-")


class Rule(NamedTuple):
    id: str
    severity: str
    check: Callable[[Plan], Iterator]

    def findings(self, plan: Plan, about: dict) -> list[Finding]:
        """Check rules: one finding per message."""
        return [Finding(self.id, self.severity, msg, about["why"], about["source"]) for msg in self.check(plan)]

    def fixes(self, plan: Plan, about: dict) -> list[tuple[Finding, dict]]:
        """Fix rules: (finding, delta over the ms values) per change."""
        return [(Finding(self.id, "fix", msg, about["why"], about["source"]), delta) for msg, delta in self.check(plan)]


RULES: list[Rule] = []


def rule(id: str, severity: str):
    def register(fn: Callable[[Plan], Iterator]):
        RULES.append(Rule(id, severity, fn))
        return fn

    return register


def check_rule_catalog(catalog_rules: dict) -> dict:
    """guides/rules.yaml must describe exactly the registered rules (a catalog edited or replaced
    through LLMDCTL_CATALOG is told what is missing, not met with a KeyError)."""
    missing = [r.id for r in RULES if r.id not in catalog_rules]
    extra = sorted(set(catalog_rules) - {r.id for r in RULES})
    if missing or extra:
        raise CatalogError(f"guides/rules.yaml and the rule code disagree: no entry for {missing or 'none'}, no code for {extra or 'none'}")
    return catalog_rules


def describe(catalog_rules: dict) -> list[dict]:
    """Every registered rule with its catalog entry (title, why, source); both sides must match."""
    check_rule_catalog(catalog_rules)
    out = []
    for r in RULES:
        about = catalog_rules[r.id]
        if about["severity"] != r.severity:
            raise CatalogError(f"guides/rules.yaml: {r.id} says severity {about['severity']}, the code {r.severity}")
        out.append({"id": r.id, "severity": r.severity, "title": about["title"], "why": about["why"], "source": about["source"]})
    return out


def _container_delta(role: str, container: dict, **changes) -> dict:
    """A delta that changes one container of a role, found by its name (the merge identity)."""
    name = container.get("name")
    if not name:
        raise InputError(f"ms.{role}.containers: a container without a name cannot be fixed or merged", hint="give every container a name (vllm for the engine)")
    return {role: {"containers": [{"name": name, **changes}]}}


def _replace_env(name: str, entry: dict) -> list:
    """Identity-list items that drop an env var and add it anew (at the end, as a fresh value)."""
    return [{"name": name, PATCH_KEY: "delete"}, entry]


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


@rule("V-21", "fix")
def strip_injected_args(plan: Plan):
    for role, block in _roles(plan):
        for c in block.get("containers") or []:
            if not isinstance(c, dict) or c.get("modelCommand", "vllmServe") not in ("vllmServe", "imageDefault"):
                continue
            args = c.get("args") or []
            dropped = [a for a in args if arg_flag(a) in CHART_INJECTED_ARGS]
            if dropped:
                flags = sorted({arg_flag(a) for a in dropped})
                yield (f"removed {', '.join(map(str, dropped))} from {role} args",
                       _container_delta(role, c, args=[{"flag": f, PATCH_KEY: "delete"} for f in flags]))


@rule("V-23", "fix")
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
        yield (f"{role}: VLLM_NIXL_SIDE_CHANNEL_HOST now comes from status.podIP ({was})",
               _container_delta(role, c, env=_replace_env(want["name"], want)))


@rule("V-03", "fix")
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
        yield (f"{role}: UCX_TLS lacked {' and '.join(missing)}; now {value}",
               _container_delta(role, c, env=_replace_env("UCX_TLS", {"name": "UCX_TLS", "value": value})))


@rule("V-04", "fix")
def timeslice_hostipc(plan: Plan):
    if not (_pd(plan) and _time_sliced(plan)):
        return
    for role, block in _roles(plan):
        if _extra(block).get("hostIPC") is not True:
            yield f"{role}: set extraConfig.hostIPC: true", {role: {"extraConfig": {"hostIPC": True}}}


@rule("V-16", "fix")
def amd_attention_backend(plan: Plan):
    if not _pd(plan) or plan.hardware_facts.get("accelerator") != "amd":
        return
    if plan.roles["prefill"].tensor == plan.roles["decode"].tensor:
        return
    for role, block in _roles(plan):
        c = _vllm(block)
        if _args(c).get("--attention-backend") != "ROCM_ATTN":
            yield (f"{role}: added --attention-backend=ROCM_ATTN (prefill TP{plan.roles['prefill'].tensor} != decode TP{plan.roles['decode'].tensor})",
                   _container_delta(role, c, args=[{"flag": "--attention-backend", PATCH_KEY: "delete"}, "--attention-backend=ROCM_ATTN"]))


# --- checks ------------------------------------------------------------------------------


@rule("V-15", "error")
def prefill_tp_above_decode(plan: Plan):
    if _pd(plan):
        p, d = plan.roles["prefill"].tensor, plan.roles["decode"].tensor
        if p > d:
            yield f"prefill TP{p} > decode TP{d}: use decode TP >= prefill TP, e.g. --prefill {plan.roles['prefill'].replicas}xTP{d} --decode {plan.roles['decode'].replicas}xTP{p}"


@rule("V-02", "error")
def mig_with_pd(plan: Plan):
    if not _pd(plan):
        return
    if plan.hardware_facts.get("mig"):
        yield f"hardware profile {plan.hardware} uses MIG; use --prefill 0 (aggregated) or time-slicing (gh200-timeslice)"
    for role, block in _roles(plan):
        mig = _requested(block, _MIG)
        if mig:
            yield f"{role} requests {', '.join(mig)}: NIXL P/D cannot run on MIG slices; use --prefill 0 or whole/time-sliced GPUs"


@rule("V-05", "error")
def timeslice_one_gpu(plan: Plan):
    if _time_sliced(plan):
        for role, rp in plan.roles.items():
            if rp.gpus_per_pod != 1:
                yield f"{role} asks for {rp.gpus_per_pod} GPUs per pod (TP{rp.tensor}); time-sliced pods must use --{role} NxTP1"


@rule("V-06", "error")
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


@rule("V-07", "warning")
def timeslice_replicas(plan: Plan):
    ts = plan.hardware_facts.get("timeSlicing") or {}
    pods = sum(r.replicas for r in plan.roles.values())
    if ts and pods > ts.get("replicas", 1):
        yield f"{pods} vLLM pods but the profile assumes timeSlicing replicas={ts.get('replicas')}: raise replicas in the device plugin's time-slicing ConfigMap"


@rule("V-08", "warning")
def ignored_pod_keys(plan: Plan):
    multinode = plan.ms_values.get("multinode")
    for role, block in _roles(plan):
        for key in ("runtimeClassName", "hostNetwork") + (() if multinode else ("hostIPC", "hostPID")):
            if key in block:
                yield f"ms.{role}.{key} has no effect; use ms.{role}.extraConfig.{key}"


@rule("V-09", "error")
def timeslice_conflicts(plan: Plan):
    if not _time_sliced(plan):
        return
    if plan.hardware_facts.get("hostNetwork"):
        yield f"{plan.hardware} cannot run with the host-network overlay: prefill and decode share one node and both bind 8000 and 5600"
    for role, block in _roles(plan):
        rdma = _requested(block, _RDMA)
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
    for role, block in _roles(plan):
        rdma = _requested(block, _RDMA)
        if rdma:
            yield (f"{role} requests {', '.join(rdma)} but {plan.hardware} {why}: the pod would stay Pending; remove it "
                   f"(e.g. --set ms.{role}.containers[0].resources.limits.{rdma[0]}=null)")


@rule("V-11", "warning")
def tcp_large_model(plan: Plan):
    if _pd(plan) and plan.hardware_facts.get("kvTransport") == "tcp":
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
    for role, block in _roles(plan):
        anti = ((_extra(block).get("affinity") or {}).get("podAntiAffinity") or {}).get("requiredDuringSchedulingIgnoredDuringExecution") or []
        if not any(t.get("topologyKey") == "kubernetes.io/hostname" for t in anti if isinstance(t, dict)):
            yield f"{role}: no required pod anti-affinity on kubernetes.io/hostname under hostNetwork"


@rule("V-14", "warning")
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
    if not _pd(plan):
        return
    for role, block in _roles(plan):
        config = _args(_vllm(block)).get("--kv-transfer-config")
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
    if not (_pd(plan) and plan.hardware_facts.get("kvTransport") == "rdma"):
        return
    for role, block in _roles(plan):
        for name, value in _resources(block).items():
            if _RDMA.match(str(name)) and str(value).strip() in ("0", ""):
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
    for role, block in _roles(plan):
        role_accel = (block.get("accelerator") or {}).get("type", accel)
        image = str(_vllm(block).get("image", ""))
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
    for role, block in _roles(plan):
        rp = plan.roles[role]
        res = _vllm(block).get("resources") or {}
        for kind in ("limits", "requests"):
            value = (res.get(kind) or {}).get(rp.accelerator_resource)
            if value is not None and str(value) != str(rp.gpus_per_pod):
                yield f"{role} {kind}.{rp.accelerator_resource}={value} but TP gives {rp.gpus_per_pod}; let parallelism set it (drop the key)"


@rule("V-22", "error")
def vllm_ports(plan: Plan):
    for role, block in _roles(plan):
        c = _vllm(block)
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


@rule("V-28", "warning")
def rdma_cluster_specific(plan: Plan):
    rdma = plan.hardware_facts.get("rdma") or {}
    if _pd(plan) and rdma.get("clusterSpecific"):
        yield f"{plan.hardware} requests {rdma['resource']}={rdma.get('count', 1)}; confirm your cluster's RDMA resource and pass --rdma-resource NAME[=COUNT]"


@rule("V-29", "warning")
def rdma_ipc_lock(plan: Plan):
    if not (_pd(plan) and plan.hardware_facts.get("kvTransport") == "rdma"):
        return
    for role, block in _roles(plan):
        if not _has_capability(_vllm(block), "IPC_LOCK"):
            yield f"{role}: the vLLM container lacks IPC_LOCK"


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
    for role, block in _roles(plan):
        vllm_block = _args(_vllm(block)).get("--block-size") or "16"
        if str(epp_block) != str(vllm_block):
            yield f"{role} vLLM --block-size={vllm_block} but {plugin['type']} hashes blocks of {epp_block} tokens"


def _env_value(container: dict, text: str) -> str:
    """``$(NAME)`` references resolved against the container's literal env, as the kubelet does."""
    def value(m: re.Match) -> str:
        entry = _env(container, m.group(1))
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

    for role, block in _roles(plan):
        c = _vllm(block)
        raw = _args(c).get("--kv-events-config")
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


@rule("V-32", "warning")
def images_match(plan: Plan):
    if _pd(plan) and plan.roles["prefill"].image != plan.roles["decode"].image:
        yield f"prefill {plan.roles['prefill'].image} vs decode {plan.roles['decode'].image}"


@rule("V-33", "warning")
def privileged_pods(plan: Plan):
    # the hardware profile names what its hardware needs (gb200: hostIPC/hostPID for MNNVL cuda_ipc);
    # those are how that hardware runs in production, so only the others are flagged
    needed = plan.hardware_facts.get("hostAccess") or {}
    for role, block in _roles(plan):
        extra = _extra(block)
        flags = [k for k in ("hostNetwork", "hostIPC", "hostPID") if extra.get(k)]
        if ((_vllm(block).get("securityContext") or {}).get("privileged")):
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
    for role, block in _roles(plan):
        mig = _requested(block, _MIG)
        if mig and plan.roles[role].accelerator_resource:
            yield (f"{role} requests {', '.join(mig)} and, from its tensor parallelism, {plan.roles[role].gpus_per_pod} "
                   f"{plan.roles[role].accelerator_resource}: the pod would need a whole GPU and a slice of one; "
                   f"{plan.hardware} is not a MIG profile")


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


def _epp_configs(plan: Plan) -> Iterator[tuple[str, Any]]:
    """(where, parsed document) of every EPP plugins config the router values carry."""
    key = "router.router.epp" if "router" in plan.release("router").values else "router.inferenceExtension"
    for name, text in sorted((plan.epp_values.get("pluginsCustomConfig") or {}).items()):
        try:
            doc = load_text(str(text), f"{key}.pluginsCustomConfig[{name}]").data
        except InputError as exc:
            yield f"{key}.pluginsCustomConfig[{name}]", exc
            continue
        yield f"{key}.pluginsCustomConfig[{name}]", doc


def _epp_findings(plan: Plan, severity: str) -> Iterator[str]:
    if plan.generation != "router":
        return
    table = plugin_schema(plan.release_info)
    if table is None:
        return
    flags = plan.epp_values.get("flags") or {}
    experimental = str(flags.get("allow-experimental-plugins", "false")).lower() == "true"
    for where, doc in _epp_configs(plan):
        if isinstance(doc, InputError):
            if severity == "error":
                yield f"{where}: not YAML the EPP can read: {doc.message}"
            continue
        for level, message in config_errors(doc, table, experimental=experimental, where=f"{where}: "):
            if level == severity:
                yield message


@rule("V-48", "error")
def epp_config_loads(plan: Plan):
    """What the pinned EPP would refuse in its plugins config, and crash-loop on."""
    yield from _epp_findings(plan, "error")


@rule("V-49", "warning")
def epp_plugin_deprecated(plan: Plan):
    yield from _epp_findings(plan, "warning")


def _vllm_findings(plan: Plan, severity: str) -> Iterator[str]:
    table = flag_table(plan.release_info)
    if table is None:
        return
    for role, block in _roles(plan):
        args = container_args(block)
        for level, message in argv_findings(args or [], table):
            if level == severity:
                yield f"ms.{role}.containers[vllm].args: {message}"


@rule("V-50", "error")
def vllm_refuses_an_argument(plan: Plan):
    """An option or value the pinned vLLM's parser refuses: the pod exits at start and crash-loops."""
    yield from _vllm_findings(plan, "error")


@rule("V-51", "warning")
def vllm_abbreviated_option(plan: Plan):
    yield from _vllm_findings(plan, "warning")


@rule("V-52", "error")
def sidecar_refuses_an_argument(plan: Plan):
    """The decode sidecar's arguments, as generated, against the pinned sidecar's flag set."""
    table = sidecar_table(plan.release_info)
    if table is None:
        return
    for obj in plan.manifests.get("ms") or []:
        spec = obj.get("spec") or {}
        lws = spec.get("leaderWorkerTemplate") or {}
        pods = [t.get("spec") or {} for t in (spec.get("template"), lws.get("leaderTemplate"), lws.get("workerTemplate")) if t]
        seen = set()
        for c in (c for pod in pods for c in pod.get("initContainers") or []):
            if c.get("name") == "routing-proxy":
                for message in sidecar_findings(c.get("args") or [], table):
                    if message not in seen:
                        seen.add(message)
                        yield f"{obj['metadata']['name']} routing-proxy: {message}"
