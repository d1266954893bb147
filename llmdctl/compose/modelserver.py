"""The model-server chart of a router-generation stack (llm-d >= v0.8): Kubernetes objects from the
same modelservice-shaped ``ms`` values every hardware profile and layout composes.

Upstream ships these workloads as kustomize overlays (one per hardware variant); llmdctl builds
them from its own layers instead and writes them as a small chart into the bundle, so apply needs
only helm and helmfile and ``helm uninstall`` removes every object. The objects follow the v0.9.0
P/D bases: a ServiceAccount, a prefill and a decode Deployment labelled ``llm-d.ai/role``, decode's
routing sidecar as a native sidecar (an init container with ``restartPolicy: Always``) in front of
vLLM, the NIXL side-channel port declared, and per-stack names for everything.

Only keys this module turns into objects are accepted: a key it would ignore is refused with its
path, so nothing a profile or ``--set`` asks for is silently dropped.
"""

from __future__ import annotations

import copy
import shlex
from typing import Any, NamedTuple

from ..base.errors import InputError
from ..base.yamlio import dump
from ..plan.stack import ROLES

ROLE_LABEL = "llm-d.ai/role"
STABLE_LABELS = ("llm-d.ai/guide", "app.kubernetes.io/instance", ROLE_LABEL)

# ms.<key> this generator reads; anything else is refused
_TOP_KEYS = {"modelArtifacts", "accelerator", "routing", "multinode", "decode", "prefill"}
_ROLE_KEYS = {"create", "replicas", "parallelism", "containers", "initContainers", "volumes", "extraConfig", "monitoring",
              "annotations", "accelerator", "strategy", "terminationGracePeriodSeconds"}
_CONTAINER_KEYS = {"name", "image", "modelCommand", "command", "args", "env", "ports", "resources", "securityContext",
                   "volumeMounts", "mountModelVolume", "startupProbe", "livenessProbe", "readinessProbe", "imagePullPolicy",
                   "extraConfig"}
# container fields outside modelservice's container schema, set through its extraConfig as there
_CONTAINER_EXTRA_KEYS = {"lifecycle"}
# pod-spec fields a profile may set through extraConfig, as in modelservice
_POD_KEYS = {"affinity", "hostNetwork", "hostIPC", "hostPID", "dnsPolicy", "runtimeClassName", "nodeSelector", "tolerations",
             "priorityClassName", "schedulerName", "securityContext", "terminationGracePeriodSeconds", "imagePullSecrets", "topologySpreadConstraints"}
_PROXY_KEYS = {"enabled", "image", "targetPort", "connector", "secure", "zapLogLevel", "resources"}
MODEL_MOUNT = "/model-cache"
MULTI_PORT_FLAG = "--data-parallel-multi-port-external-lb"
DP_RPC_PORT = 5555  # the leader's data-parallel coordination port (llm-d's wide-EP guide)


def _refuse_unknown(block: Any, known: set, where: str) -> None:
    if block is None:
        return
    if not isinstance(block, dict):
        raise InputError(f"{where}: expected a mapping, got {type(block).__name__}")
    extra = sorted(set(block) - known)
    if extra:
        raise InputError(
            f"{where}.{extra[0]}: the generated model-server chart of this llm-d version has no such key",
            hint=f"keys it builds objects from: {', '.join(sorted(known))}; the modelservice-only keys need --llmd-version v0.6.0",
        )


def model_server_objects(ms: dict, *, names: dict, labels: dict, mode: str, contract: dict, dialect: dict,
                         hf_secret: str, claims: dict | None = None, compute_domain: dict | None = None,
                         autoscaled: set | frozenset = frozenset()) -> list[dict]:
    """ServiceAccount, then per role a Deployment, or a LeaderWorkerSet when one instance spans
    nodes (and, with DRA, its ResourceClaimTemplate; on GB200 the ComputeDomain of the NVLink fabric).

    ``claims`` is the hardware profile's DRA claim when the pods use one (``Plan.claims``)."""
    _refuse_unknown(ms, _TOP_KEYS, "ms")
    if ms.get("multinode"):
        raise InputError("ms.multinode: true: llmdctl makes an instance span nodes from the layout, not from this flag",
                         hint="give the role a data-parallel shape, e.g. --decode 1xDP8EP: it becomes a LeaderWorkerSet when the ranks need more than one node")
    routing = ms.get("routing") or {}
    _refuse_unknown(routing, {"servicePort", "proxy"}, "ms.routing")
    proxy = routing.get("proxy") or {}
    _refuse_unknown(proxy, _PROXY_KEYS, "ms.routing.proxy")
    artifacts = ms.get("modelArtifacts") or {}
    _refuse_unknown(artifacts, {"uri", "name", "size", "authSecretName", "labels"}, "ms.modelArtifacts")
    service_port = int(routing.get("servicePort", contract["servicePort"]))
    objects: list[dict] = [{
        "apiVersion": "v1", "kind": "ServiceAccount",
        "metadata": {"name": names["serviceAccount"], "labels": dict(labels)},
        "automountServiceAccountToken": False,
    }]
    if mode == "disaggregated" and proxy.get("enabled", True) and dialect.get("sidecarSsrfProtection"):
        objects += sidecar_access(names, labels, str(dialect.get("poolApiVersion", {}).get("default", "inference.networking.k8s.io/v1")).split("/")[0])
    for role in ROLES:
        block = ms.get(role) or {}
        _refuse_unknown(block, _ROLE_KEYS, f"ms.{role}")
        if role == "prefill" and (mode == "aggregated" or block.get("create") is False):
            continue
        sidecar = role == "decode" and proxy.get("enabled", mode == "disaggregated")
        if sidecar and not proxy.get("image"):
            raise InputError("ms.routing.proxy.image: the decode sidecar is on but has no image; llmdctl sets the release's "
                             "images.routingSidecar (guides/versions.yaml) for P/D layouts only, and no layer or override may remove it",
                             hint="give prefill pods (--prefill NxTPm), or set ms.routing.proxy.image=REGISTRY/IMAGE:TAG")
        if claims:
            objects.append(_claim_template(claims, names, labels))
        if compute_domain:
            objects.append(_compute_domain(compute_domain, ms, names, labels, mode))
        objects.append(_workload(role, block, ms, names=names, labels=labels, service_port=service_port, proxy=proxy if sidecar else None,
                                   contract=contract, dialect=dialect, hf_secret=artifacts.get("authSecretName") or hf_secret,
                                   artifacts=artifacts, claims=claims, compute_domain=compute_domain, autoscaled=role in autoscaled))
        monitor = _pod_monitor(role, block, names=names, labels=labels)
        if monitor:
            objects.append(monitor)
    return _dedupe(objects)


def _pod_monitor(role: str, block: dict, *, names: dict, labels: dict) -> dict | None:
    """The role's PodMonitor (Prometheus operator), as modelservice renders one."""
    monitoring = block.get("monitoring") or {}
    _refuse_unknown(monitoring, {"podmonitor"}, f"ms.{role}.monitoring")
    pm = monitoring.get("podmonitor") or {}
    _refuse_unknown(pm, {"enabled", "portName", "path", "interval"}, f"ms.{role}.monitoring.podmonitor")
    if not pm.get("enabled"):
        return None
    return {
        "apiVersion": "monitoring.coreos.com/v1", "kind": "PodMonitor",
        "metadata": {"name": names[role], "labels": dict(labels)},
        "spec": {
            "selector": {"matchLabels": {**labels, ROLE_LABEL: role}},
            "podMetricsEndpoints": [{"port": pm.get("portName", "vllm"), "path": pm.get("path", "/metrics"), "interval": pm.get("interval", "30s")}],
        },
    }


def _dedupe(objects: list[dict]) -> list[dict]:
    seen, out = set(), []
    for obj in objects:
        key = (obj["kind"], obj["metadata"]["name"])
        if key not in seen:
            seen.add(key)
            out.append(obj)
    return out


def _compute_domain(cd: dict, ms: dict, names: dict, labels: dict, mode: str) -> dict:
    """GB200's multi-node NVLink (MNNVL): the NVIDIA DRA driver makes the claim template every pod
    names, so the KV cache and the DP/EP collectives go over NVLink between nodes."""
    roles = [r for r in ROLES if not (r == "prefill" and (mode == "aggregated" or (ms.get(r) or {}).get("create") is False))]
    nodes = sum(int((ms.get(r) or {}).get("replicas", 1)) * int(((ms.get(r) or {}).get("parallelism") or {}).get("workers", 1)) for r in roles)
    return {
        "apiVersion": cd["apiVersion"], "kind": "ComputeDomain",
        "metadata": {"name": names["computeDomain"], "labels": dict(labels)},
        "spec": {"numNodes": nodes, "channel": {"allocationMode": "Single", "resourceClaimTemplate": {"name": names["computeDomain"]}}},
    }


def _claim_template(claims: dict, names: dict, labels: dict) -> dict:
    """One claim per GPU: the GPU, and on GKE the RDMA NIC on its PCIe root (DRA + DRANET)."""
    requests = [{"name": r["name"], "exactly": {"deviceClassName": r["deviceClass"], "allocationMode": "ExactCount", "count": 1}}
                for r in claims["devices"]]
    spec: dict[str, Any] = {"devices": {"requests": requests}}
    if claims.get("matchAttribute"):
        spec["devices"]["constraints"] = [{"requests": [r["name"] for r in claims["devices"]], "matchAttribute": claims["matchAttribute"]}]
    return {
        "apiVersion": "resource.k8s.io/v1", "kind": "ResourceClaimTemplate",
        "metadata": {"name": names["claimTemplate"], "labels": dict(labels)},
        "spec": {"spec": spec},
    }


def _workload(role: str, block: dict, ms: dict, *, names: dict, labels: dict, service_port: int, proxy: dict | None,
              contract: dict, dialect: dict, hf_secret: str, artifacts: dict, claims: dict | None, compute_domain: dict | None,
              autoscaled: bool = False) -> dict:
    par = block.get("parallelism") or {}
    _refuse_unknown(par, {"tensor", "data", "dataLocal", "workers"}, f"ms.{role}.parallelism")
    dp = _DataParallel.of(par, block)
    gpus = dp.tensor * dp.local
    accel = (block.get("accelerator") or ms.get("accelerator") or {}).get("type", "nvidia")
    resource = contract["acceleratorResources"].get(accel, contract["acceleratorResources"]["nvidia"])
    vllm_port = int(proxy.get("targetPort", contract["proxyTargetPort"])) if proxy is not None else service_port
    pod_labels = {**labels, ROLE_LABEL: role}
    volumes = [copy.deepcopy(v) for v in block.get("volumes") or []]
    containers = []
    for c in block.get("containers") or []:
        _refuse_unknown(c, _CONTAINER_KEYS, f"ms.{role}.containers[{c.get('name', '?') if isinstance(c, dict) else '?'}]")
        containers.append(_container(c, role=role, dp=dp, gpus=gpus, resource=resource, vllm_port=vllm_port,
                                     hf_secret=hf_secret, artifacts=artifacts, claims=claims, compute_domain=compute_domain))
    if any(c.get("mountModelVolume") for c in block.get("containers") or []):
        volumes.append(_model_volume(artifacts))
    init = [copy.deepcopy(c) for c in block.get("initContainers") or []]
    if proxy is not None:
        init.insert(0, _sidecar(proxy, service_port=service_port, vllm_port=vllm_port, dialect=dialect, dp=dp, pool=names["pool"]))
        if dialect.get("sidecarSsrfProtection"):
            volumes.append(_token_volume())
    extra = block.get("extraConfig") or {}
    _refuse_unknown(extra, _POD_KEYS, f"ms.{role}.extraConfig")
    pod: dict[str, Any] = {"serviceAccountName": names["serviceAccount"]}
    pod.update(copy.deepcopy(extra))
    grace = block.get("terminationGracePeriodSeconds")
    if grace is not None:
        if isinstance(grace, bool) or not isinstance(grace, int) or grace < 0:
            raise InputError(f"ms.{role}.terminationGracePeriodSeconds: expected a whole number of seconds, got {grace!r}",
                             hint="it must exceed the preStop sleep plus vLLM's --shutdown-timeout, e.g. 90")
        pod["terminationGracePeriodSeconds"] = grace
    if init:
        pod["initContainers"] = init
    pod["containers"] = containers
    if volumes:
        pod["volumes"] = volumes
    pod_claims = [{"name": f"accel-{i}", "resourceClaimTemplateName": names["claimTemplate"]} for i in range(gpus)] if claims else []
    if compute_domain:
        pod_claims.append({"name": "compute-domain-channel", "resourceClaimTemplateName": names["computeDomain"]})
    if pod_claims:
        pod["resourceClaims"] = pod_claims
    template_meta: dict[str, Any] = {"labels": pod_labels}
    if block.get("annotations"):
        template_meta["annotations"] = dict(block["annotations"])
    # an HPA owns the count: a replicas field here would undo its decisions on every helm upgrade
    replicas = {} if autoscaled else {"replicas": int(block.get("replicas", 1))}
    strategy = block.get("strategy")
    if strategy is not None and not (isinstance(strategy, dict) and strategy.get("type") in ("RollingUpdate", "Recreate")
                                     and set(strategy) <= {"type", "rollingUpdate"}):
        raise InputError(f"ms.{role}.strategy: expected a Deployment strategy (type RollingUpdate or Recreate), got {strategy!r}",
                         hint="pick one with --rollout surge|in-place|recreate")
    if dp.workers > 1:
        return {
            "apiVersion": "leaderworkerset.x-k8s.io/v1", "kind": "LeaderWorkerSet",
            "metadata": {"name": names[role], "labels": pod_labels},
            "spec": {
                **replicas,
                # the leader's address is every worker's --data-parallel-address: start it first
                "startupPolicy": "LeaderCreated",
                **_group_rollout(block.get("strategy"), int(block.get("replicas", 1))),
                "leaderWorkerTemplate": {
                    "size": dp.workers,
                    # one DP group dies together: a lone restarted rank cannot rejoin its peers
                    "restartPolicy": "RecreateGroupOnPodRestart",
                    "workerTemplate": {"metadata": template_meta, "spec": pod},
                },
            },
        }
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": names[role], "labels": pod_labels},
        "spec": {
            **replicas,
            # a Deployment's selector is immutable: only what never changes for this stack and role
            # (a new --model or accelerator must not need a delete and re-create)
            "selector": {"matchLabels": {k: v for k, v in pod_labels.items() if k in STABLE_LABELS}},
            **({"strategy": block["strategy"]} if block.get("strategy") else {}),
            "template": {"metadata": template_meta, "spec": pod},
        },
    }


def _group_rollout(strategy: dict | None, groups: int) -> dict:
    """A Deployment strategy as a LeaderWorkerSet rolloutStrategy: groups instead of pods (it has
    no Recreate: every group may go at once)."""
    if not strategy:
        return {}
    rolling = strategy.get("rollingUpdate") or {}
    surge, unavailable = (0, max(groups, 1)) if strategy.get("type") == "Recreate" else (rolling.get("maxSurge", 0), rolling.get("maxUnavailable", 1))
    return {"rolloutStrategy": {"type": "RollingUpdate", "rollingUpdateConfiguration": {"maxSurge": surge, "maxUnavailable": unavailable}}}


class _DataParallel(NamedTuple):
    """The ranks of one pod and of its instance, and how requests reach them."""

    tensor: int
    data: int  # ranks of the instance
    local: int  # ranks of this pod
    workers: int  # pods of the instance
    multi_port: bool  # one API port per rank (behind a supervisor) rather than one per pod

    @classmethod
    def of(cls, par: dict, block: dict) -> "_DataParallel":
        vllm = next((c for c in block.get("containers") or [] if isinstance(c, dict) and c.get("name") == "vllm"), {})
        local, workers = int(par.get("dataLocal", 1)), int(par.get("workers", 1))
        return cls(int(par.get("tensor", 1)), int(par.get("data", local * workers)), local, workers,
                   workers > 1 and MULTI_PORT_FLAG in [str(a) for a in vllm.get("args") or []])


def _container(c: dict, *, role: str, dp: _DataParallel, gpus: int, resource: str | None, vllm_port: int, hf_secret: str,
               artifacts: dict, claims: dict | None, compute_domain: dict | None) -> dict:
    out = {k: copy.deepcopy(v) for k, v in c.items() if k not in ("modelCommand", "mountModelVolume", "extraConfig")}
    extra = c.get("extraConfig") or {}
    _refuse_unknown(extra, _CONTAINER_EXTRA_KEYS, f"ms.{role}.containers[{c.get('name')}].extraConfig")
    for key, value in extra.items():  # each is a container field of mapping type (lifecycle)
        if value is not None and not isinstance(value, dict):
            raise InputError(f"ms.{role}.containers[{c.get('name')}].extraConfig.{key}: expected a mapping, got {value!r}",
                             hint="e.g. lifecycle: {preStop: {sleep: {seconds: 15}}}")
    out.update(copy.deepcopy(extra))
    if c.get("modelCommand") == "vllmServe":
        args = [f"--port={vllm_port}", f"--tensor-parallel-size={dp.tensor}",
                f"--served-model-name={artifacts.get('name', '')}", *[str(a) for a in c.get("args") or []]]
        if dp.data > 1:
            args += [f"--data-parallel-size={dp.data}", f"--data-parallel-size-local={dp.local}"]
        if dp.workers > 1:
            # ranks start at the pod's place in its group; the leader's address reaches them all
            args += ["--data-parallel-address=${LWS_LEADER_ADDRESS}", f"--data-parallel-rpc-port={DP_RPC_PORT}",
                     "--data-parallel-start-rank=$(( ${LWS_WORKER_INDEX:-0} * DP_SIZE_LOCAL ))"]
            if dp.multi_port:
                args.append(f"--data-parallel-supervisor-port={vllm_port + dp.local}")
            out["command"] = ["/bin/bash", "-c"]
            out["args"] = [_launch_script(_served_model(artifacts), args)]
        else:
            out["command"] = ["vllm", "serve", _served_model(artifacts)]
            out["args"] = args
    elif c.get("modelCommand") not in (None, "custom"):
        raise InputError(f"ms.{role}.containers[{c.get('name')}].modelCommand {c.get('modelCommand')!r}: the generated chart knows vllmServe and custom")
    if c.get("name") == "vllm":
        owned = ("HF_TOKEN", "HF_HOME") + (("DP_SIZE_LOCAL", "TP_SIZE") if dp.data > 1 else ())  # the generator's, whatever a layer said
        env = [e for e in out.get("env") or [] if not (isinstance(e, dict) and e.get("name") in owned)]
        env = [{"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {"name": hf_secret, "key": "HF_TOKEN"}}},
               {"name": "HF_HOME", "value": MODEL_MOUNT}, *env]
        if dp.data > 1:
            env[2:2] = [{"name": "DP_SIZE_LOCAL", "value": str(dp.local)}, {"name": "TP_SIZE", "value": str(dp.tensor)}]
        out["env"] = env
        if dp.multi_port:
            _supervised(out, vllm_port, dp.local)
        res = out.setdefault("resources", {})
        if claims:
            # each claim brings one GPU and its NIC: the device plugin's GPU count would double-book
            for kind in ("limits", "requests"):
                (res.get(kind) or {}).pop(resource, None)
            res["claims"] = [{"name": f"accel-{i}"} for i in range(gpus)]
        elif resource:
            for kind in ("limits", "requests"):
                res.setdefault(kind, {})[resource] = gpus
        if compute_domain:
            res["claims"] = [*(res.get("claims") or []), {"name": "compute-domain-channel"}]
        if c.get("mountModelVolume"):
            out.setdefault("volumeMounts", []).append({"name": "model-storage", "mountPath": MODEL_MOUNT,
                                                       **({"readOnly": True} if str(artifacts.get("uri", "")).startswith("pvc://") else {})})
    return out


def _launch_script(model: str, args: list[str]) -> str:
    """vllm serve under bash, so the LWS variables become flags; everything else is quoted as is."""
    def word(a: str) -> str:
        flag, _, value = a.partition("=")
        if "${LWS_" in value or "$((" in value:
            return f'{flag}="{value}"' if "$((" not in value else f"{flag}={value}"
        return shlex.quote(a)
    lines = ["# one pod of a data-parallel group: its ranks start at its index in the group times its local ranks",
             "exec vllm serve " + shlex.quote(model) + " \\", *[f"  {word(a)} \\" for a in args]]
    lines[-1] = lines[-1][:-2]
    return "\n".join(lines)


def _supervised(container: dict, vllm_port: int, ranks: int) -> None:
    """Multi-port DP: every rank has its own port (declared, as the pool targets them), so health
    is the supervisor's aggregate, on the port after the last rank's."""
    ports = [{"name": f"rank-{i}", "containerPort": vllm_port + i, "protocol": "TCP"} for i in range(1, ranks)]
    container["ports"] = [*(container.get("ports") or []), *ports, {"name": "supervisor", "containerPort": vllm_port + ranks, "protocol": "TCP"}]
    for probe, path in (("startupProbe", "/health"), ("livenessProbe", "/health"), ("readinessProbe", "/readyz")):
        if probe in container:
            container[probe] = {**container[probe], "httpGet": {"path": path, "port": "supervisor"}}


def _served_model(artifacts: dict) -> str:
    uri = str(artifacts.get("uri", ""))
    if uri.startswith("pvc://"):
        path = uri[len("pvc://"):].split("/", 1)
        return f"{MODEL_MOUNT}/{path[1]}" if len(path) > 1 else MODEL_MOUNT
    if uri.startswith("hf://") or "://" not in uri:
        return str(artifacts.get("name", ""))
    raise InputError(f"--model {uri}: the generated model-server chart loads hf:// and pvc:// models; {uri.split('://')[0]}:// needs --llmd-version v0.6.0")


def _model_volume(artifacts: dict) -> dict:
    uri = str(artifacts.get("uri", ""))
    if uri.startswith("pvc://"):
        claim = uri[len("pvc://"):].split("/", 1)[0]
        return {"name": "model-storage", "persistentVolumeClaim": {"claimName": claim, "readOnly": True}}
    return {"name": "model-storage", "emptyDir": {"sizeLimit": str(artifacts.get("size", "100Gi"))}}


def _sidecar(proxy: dict, *, service_port: int, vllm_port: int, dialect: dict, dp: _DataParallel, pool: str) -> dict:
    """decode's routing sidecar: calls the prefill pod the EPP chose, then forwards to local vLLM
    (with multi-port DP, port service+i to vLLM rank i's port vllm+i). Where it can, it refuses a
    prefill target that is not a pod of the stack's own pool (SSRF protection)."""
    args = [f"--port={service_port}", f"{dialect.get('sidecarModelPortFlag', '--vllm-port')}={vllm_port}",
            f"--kv-connector={proxy.get('connector', 'nixlv2')}", f"--zap-log-level={proxy.get('zapLogLevel', 1)}",
            f"--secure-proxy={'true' if proxy.get('secure', False) else 'false'}"]
    ssrf = dialect.get("sidecarSsrfProtection")
    if ssrf:
        # the x-prefiller-host-port header names the prefill pod; any client that reaches the sidecar
        # unscheduled (FailOpen, or a pod calling it directly) could name any host: only the pool's
        # pods are allowed. A bare name would mean namespace "default", so the pod's own is given.
        args += ["--enable-ssrf-protection=true", f"--inference-pool=$(POD_NAMESPACE)/{pool}"]
    ports = [{"name": "sidecar", "containerPort": service_port, "protocol": "TCP"}]
    if dp.multi_port:
        args.append(f"--data-parallel-size={dp.local}")
        ports += [{"name": f"sidecar-{i}", "containerPort": service_port + i, "protocol": "TCP"} for i in range(1, dp.local)]
    out: dict[str, Any] = {
        "name": "routing-proxy", "image": proxy["image"], "imagePullPolicy": "IfNotPresent",
        "args": args,
        "ports": ports,
        # a native sidecar (Kubernetes >= 1.29): starts before vLLM and runs beside it
        "restartPolicy": "Always",
        # Pod Security's restricted profile: the sidecar needs no privilege at all
        "securityContext": {"allowPrivilegeEscalation": False, "runAsNonRoot": True, "capabilities": {"drop": ["ALL"]},
                            "seccompProfile": {"type": "RuntimeDefault"}},
    }
    if ssrf:
        out["env"] = [{"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}}]
        # the API token only where it is used: vLLM's container (model code) gets none
        out["volumeMounts"] = [{"name": SIDECAR_TOKEN_VOLUME, "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount", "readOnly": True}]
    if proxy.get("resources"):
        out["resources"] = copy.deepcopy(proxy["resources"])
    return out


SIDECAR_TOKEN_VOLUME = "sidecar-api-access"


def _token_volume() -> dict:
    """What the kubelet mounts for an automounted token, as a volume only the sidecar mounts."""
    return {"name": SIDECAR_TOKEN_VOLUME, "projected": {"defaultMode": 0o444, "sources": [
        {"serviceAccountToken": {"path": "token", "expirationSeconds": 3607}},
        {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
        {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}},
    ]}}


def sidecar_access(names: dict, labels: dict, pool_group: str) -> list[dict]:
    """The Role the sidecar's SSRF protection needs, bound to the stack's ServiceAccount: read its
    own InferencePool (by name) and the pods it selects, in this namespace only."""
    name = f"{names['serviceAccount']}-sidecar"
    return [
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": name, "labels": dict(labels)},
         "rules": [{"apiGroups": [pool_group], "resources": ["inferencepools"], "resourceNames": [names["pool"]], "verbs": ["get", "list", "watch"]},
                   {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]}]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": name, "labels": dict(labels)},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
         "subjects": [{"kind": "ServiceAccount", "name": names["serviceAccount"]}]},
    ]


def chart_files(objects: list[dict], *, chart: str, version: str, description: str) -> dict[str, str]:
    """A chart whose templates are the objects themselves (no values): one file per object.

    Helm parses every template as Go text/template, so a literal ``{{`` (from a --set value, say)
    is written as a template action that prints it; a lone ``}}`` is plain text to it."""
    files = {
        "Chart.yaml": dump({"apiVersion": "v2", "name": chart, "version": version, "description": description, "type": "application"}),
    }
    for obj in objects:
        text = dump(obj).replace("{{", '{{ "{{" }}')
        files[f"templates/{obj['kind'].lower()}-{obj['metadata']['name']}.yaml"] = text
    return files
