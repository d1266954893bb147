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
from typing import Any

from ..base.errors import InputError
from ..base.yamlio import dump
from ..plan.stack import ROLES

ROLE_LABEL = "llm-d.ai/role"
STABLE_LABELS = ("llm-d.ai/guide", "app.kubernetes.io/instance", ROLE_LABEL)

# ms.<key> this generator reads; anything else is refused
_TOP_KEYS = {"modelArtifacts", "accelerator", "routing", "multinode", "decode", "prefill"}
_ROLE_KEYS = {"create", "replicas", "parallelism", "containers", "initContainers", "volumes", "extraConfig", "monitoring",
              "annotations", "accelerator"}
_CONTAINER_KEYS = {"name", "image", "modelCommand", "command", "args", "env", "ports", "resources", "securityContext",
                   "volumeMounts", "mountModelVolume", "startupProbe", "livenessProbe", "readinessProbe", "imagePullPolicy"}
# pod-spec fields a profile may set through extraConfig, as in modelservice
_POD_KEYS = {"affinity", "hostNetwork", "hostIPC", "hostPID", "dnsPolicy", "runtimeClassName", "nodeSelector", "tolerations",
             "priorityClassName", "schedulerName", "securityContext", "terminationGracePeriodSeconds", "imagePullSecrets", "topologySpreadConstraints"}
_PROXY_KEYS = {"enabled", "image", "targetPort", "connector", "secure", "zapLogLevel", "resources"}
MODEL_MOUNT = "/model-cache"


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
                         hf_secret: str, claims: dict | None = None) -> list[dict]:
    """ServiceAccount, then per role a Deployment (and, with DRA, its ResourceClaimTemplate).

    ``claims`` is the hardware profile's DRA claim when the pods use one (``Plan.claims``)."""
    _refuse_unknown(ms, _TOP_KEYS, "ms")
    if ms.get("multinode"):
        raise InputError("ms.multinode: true: multi-node (LeaderWorkerSet) model servers are not generated for this llm-d version yet",
                         hint="use --llmd-version v0.6.0 for modelservice's multinode, or a single-node layout")
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
    for role in ROLES:
        block = ms.get(role) or {}
        _refuse_unknown(block, _ROLE_KEYS, f"ms.{role}")
        if role == "prefill" and (mode == "aggregated" or block.get("create") is False):
            continue
        sidecar = role == "decode" and proxy.get("enabled", mode == "disaggregated")
        if sidecar and not proxy.get("image"):
            raise InputError("ms.routing.proxy.enabled: the decode sidecar has no image (llmdctl pins it only for P/D layouts)",
                             hint="give prefill pods (--prefill NxTPm), or set ms.routing.proxy.image=REGISTRY/IMAGE:TAG")
        if claims:
            objects.append(_claim_template(claims, names, labels))
        objects.append(_deployment(role, block, ms, names=names, labels=labels, service_port=service_port, proxy=proxy if sidecar else None,
                                   contract=contract, dialect=dialect, hf_secret=artifacts.get("authSecretName") or hf_secret,
                                   artifacts=artifacts, claims=claims))
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


def _deployment(role: str, block: dict, ms: dict, *, names: dict, labels: dict, service_port: int, proxy: dict | None,
                contract: dict, dialect: dict, hf_secret: str, artifacts: dict, claims: dict | None) -> dict:
    par = block.get("parallelism") or {}
    _refuse_unknown(par, {"tensor", "dataLocal"}, f"ms.{role}.parallelism")
    tensor = int(par.get("tensor", 1))
    gpus = tensor * int(par.get("dataLocal", 1))
    accel = (block.get("accelerator") or ms.get("accelerator") or {}).get("type", "nvidia")
    resource = contract["acceleratorResources"].get(accel, contract["acceleratorResources"]["nvidia"])
    vllm_port = int(proxy.get("targetPort", contract["proxyTargetPort"])) if proxy is not None else service_port
    pod_labels = {**labels, ROLE_LABEL: role}
    volumes = [copy.deepcopy(v) for v in block.get("volumes") or []]
    containers = []
    for c in block.get("containers") or []:
        _refuse_unknown(c, _CONTAINER_KEYS, f"ms.{role}.containers[{c.get('name', '?') if isinstance(c, dict) else '?'}]")
        containers.append(_container(c, role=role, tensor=tensor, gpus=gpus, resource=resource, vllm_port=vllm_port,
                                     hf_secret=hf_secret, artifacts=artifacts, claims=claims))
    if any(c.get("mountModelVolume") for c in block.get("containers") or []):
        volumes.append(_model_volume(artifacts))
    init = [copy.deepcopy(c) for c in block.get("initContainers") or []]
    if proxy is not None:
        init.insert(0, _sidecar(proxy, service_port=service_port, vllm_port=vllm_port, dialect=dialect))
    extra = block.get("extraConfig") or {}
    _refuse_unknown(extra, _POD_KEYS, f"ms.{role}.extraConfig")
    pod: dict[str, Any] = {"serviceAccountName": names["serviceAccount"]}
    pod.update(copy.deepcopy(extra))
    if init:
        pod["initContainers"] = init
    pod["containers"] = containers
    if volumes:
        pod["volumes"] = volumes
    if claims:
        pod["resourceClaims"] = [{"name": f"accel-{i}", "resourceClaimTemplateName": names["claimTemplate"]} for i in range(gpus)]
    template_meta: dict[str, Any] = {"labels": pod_labels}
    if block.get("annotations"):
        template_meta["annotations"] = dict(block["annotations"])
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": names[role], "labels": pod_labels},
        "spec": {
            "replicas": int(block.get("replicas", 1)),
            # a Deployment's selector is immutable: only what never changes for this stack and role
            # (a new --model or accelerator must not need a delete and re-create)
            "selector": {"matchLabels": {k: v for k, v in pod_labels.items() if k in STABLE_LABELS}},
            "template": {"metadata": template_meta, "spec": pod},
        },
    }


def _container(c: dict, *, role: str, tensor: int, gpus: int, resource: str | None, vllm_port: int, hf_secret: str,
               artifacts: dict, claims: dict | None) -> dict:
    out = {k: copy.deepcopy(v) for k, v in c.items() if k not in ("modelCommand", "mountModelVolume")}
    if c.get("modelCommand") == "vllmServe":
        out["command"] = ["vllm", "serve", _served_model(artifacts)]
        out["args"] = [f"--port={vllm_port}", f"--tensor-parallel-size={tensor}",
                       f"--served-model-name={artifacts.get('name', '')}", *[str(a) for a in c.get("args") or []]]
    elif c.get("modelCommand") not in (None, "custom"):
        raise InputError(f"ms.{role}.containers[{c.get('name')}].modelCommand {c.get('modelCommand')!r}: the generated chart knows vllmServe and custom")
    if c.get("name") == "vllm":
        env = [e for e in out.get("env") or [] if not (isinstance(e, dict) and e.get("name") in ("HF_TOKEN", "HF_HOME"))]
        env = [{"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {"name": hf_secret, "key": "HF_TOKEN"}}},
               {"name": "HF_HOME", "value": MODEL_MOUNT}, *env]
        out["env"] = env
        res = out.setdefault("resources", {})
        if claims:
            # each claim brings one GPU and its NIC: the device plugin's GPU count would double-book
            for kind in ("limits", "requests"):
                (res.get(kind) or {}).pop(resource, None)
            res["claims"] = [{"name": f"accel-{i}"} for i in range(gpus)]
        elif resource:
            for kind in ("limits", "requests"):
                res.setdefault(kind, {})[resource] = gpus
        if c.get("mountModelVolume"):
            out.setdefault("volumeMounts", []).append({"name": "model-storage", "mountPath": MODEL_MOUNT,
                                                       **({"readOnly": True} if str(artifacts.get("uri", "")).startswith("pvc://") else {})})
    return out


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


def _sidecar(proxy: dict, *, service_port: int, vllm_port: int, dialect: dict) -> dict:
    """decode's routing sidecar: calls the prefill pod the EPP chose, then forwards to local vLLM."""
    args = [f"--port={service_port}", f"{dialect.get('sidecarModelPortFlag', '--vllm-port')}={vllm_port}",
            f"--kv-connector={proxy.get('connector', 'nixlv2')}", f"--zap-log-level={proxy.get('zapLogLevel', 1)}",
            f"--secure-proxy={'true' if proxy.get('secure', False) else 'false'}"]
    out: dict[str, Any] = {
        "name": "routing-proxy", "image": proxy["image"], "imagePullPolicy": "IfNotPresent",
        "args": args,
        "ports": [{"name": "sidecar", "containerPort": service_port, "protocol": "TCP"}],
        # a native sidecar (Kubernetes >= 1.29): starts before vLLM and runs beside it
        "restartPolicy": "Always",
        "securityContext": {"allowPrivilegeEscalation": False, "runAsNonRoot": True},
    }
    if proxy.get("resources"):
        out["resources"] = copy.deepcopy(proxy["resources"])
    return out


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
