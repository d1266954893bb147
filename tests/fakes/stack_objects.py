"""Kubernetes objects a stack's charts would create, built from a rendered bundle's files.

Built from the values files (what the charts read), not from llmdctl's plan (what verify reads),
so verify is tested against the charts' shapes: modelservice names Deployments
<release>-llm-d-modelservice-<role>, labels pods with modelArtifacts.labels + llm-d.ai/role, and
puts tensor x dataLocal accelerators in limits; inferencepool selects modelServers.matchLabels;
llm-d-infra names the Gateway <release>-inference-gateway; Helm keeps one Secret per revision.
"""

from __future__ import annotations

import base64
import copy

from ruamel.yaml import YAML

ACCELERATORS = {"nvidia": "nvidia.com/gpu", "amd": "amd.com/gpu"}


def _yaml(text: str):
    return YAML(typ="safe").load(text)


def ready_condition(ready: bool) -> list[dict]:
    return [{"type": "Ready", "status": "True" if ready else "False"}]


class StackObjects:
    def __init__(self, fake, files: dict[str, str], namespace: str):
        self.fake, self.ns = fake, namespace
        self.helmfile = _yaml(files["helmfile.yaml"])
        self.ms = _yaml(files["ms.values.yaml"])
        self.gaie = _yaml(files["gaie.values.yaml"])
        self.infra = _yaml(files["infra.values.yaml"])
        self.route = _yaml(files["httproute.yaml"])
        self.release = {r["labels"]["component"]: r["name"] for r in self.helmfile["releases"]}
        self.pods: dict[str, list[str]] = {}

    # collections
    def core(self, plural):
        return f"/api/v1/namespaces/{self.ns}/{plural}"

    def group(self, group_version, plural):
        return f"/apis/{group_version}/namespaces/{self.ns}/{plural}"

    @property
    def pool_api(self) -> str:
        return (self.gaie.get("inferencePool") or {}).get("apiVersion") or "inference.networking.k8s.io/v1"

    def roles(self) -> list[str]:
        out = []
        for role in ("decode", "prefill"):
            block = self.ms.get(role) or {}
            if block and block.get("create", True) is not False and int(block.get("replicas", 1)) > 0:
                out.append(role)
        return out

    def deployment_name(self, role: str) -> str:
        return f"{self.release['ms']}-llm-d-modelservice-{role}"

    # builders
    def pod(self, role: str, index: int, ready: bool = True) -> dict:
        block = self.ms[role]
        tensor = int((block.get("parallelism") or {}).get("tensor", 1)) * int((block.get("parallelism") or {}).get("dataLocal", 1))
        accel = ACCELERATORS.get((self.ms.get("accelerator") or {}).get("type", "nvidia"), "nvidia.com/gpu")
        containers = []
        for c in block.get("containers") or []:
            c = copy.deepcopy(c)
            res = c.setdefault("resources", {})
            for kind in ("limits", "requests"):
                res.setdefault(kind, {})
                res[kind] = {k: v for k, v in (res[kind] or {}).items() if v is not None}
                res[kind].setdefault(accel, str(tensor))
            containers.append({"name": c["name"], "image": c.get("image"), "resources": res})
        init = []
        proxy = (self.ms.get("routing") or {}).get("proxy") or {}
        if role == "decode" and proxy.get("enabled", True) and proxy.get("image"):
            init.append({"name": "routing-proxy", "image": proxy["image"], "restartPolicy": "Always"})
        labels = dict((self.ms.get("modelArtifacts") or {}).get("labels") or {})
        labels["llm-d.ai/role"] = role
        name = f"{self.deployment_name(role)}-7d9f8-{index:02d}"
        return {
            "metadata": {"name": name, "namespace": self.ns, "labels": labels},
            "spec": {"containers": containers, "initContainers": init},
            "status": {
                "phase": "Running" if ready else "Pending",
                "conditions": ready_condition(ready),
                "containerStatuses": [{"name": c["name"], "ready": ready, "restartCount": 0,
                                       "state": {"running": {}} if ready else {"waiting": {"reason": "ContainerCreating"}}} for c in containers],
                "initContainerStatuses": [{"name": i["name"], "ready": ready, "restartCount": 0, "state": {"running": {}}} for i in init],
            },
        }

    def deployment(self, name: str, replicas: int, ready: int, template_labels: dict | None = None) -> dict:
        return {"metadata": {"name": name, "namespace": self.ns},
                "spec": {"replicas": replicas, "template": {"metadata": {"labels": template_labels or {}}}},
                "status": {"replicas": replicas, "readyReplicas": ready}}

    def install(self, ready: bool = True, hf_secret: bool = True) -> "StackObjects":
        f, ns = self.fake, self.ns
        for key, rel in self.release.items():
            f.put(self.core("secrets"), {"metadata": {"name": f"sh.helm.release.v1.{rel}.v1", "namespace": ns,
                                                      "labels": {"owner": "helm", "name": rel, "status": "deployed", "version": "1"}},
                                         "type": "helm.sh/release.v1", "data": {"release": "H4sIAAAA"}})
        if hf_secret:
            self.put_hf_secret()
        for role in self.roles():
            replicas = int(self.ms[role].get("replicas", 1))
            labels = dict((self.ms.get("modelArtifacts") or {}).get("labels") or {}, **{"llm-d.ai/role": role})
            f.put(self.group("apps/v1", "deployments"), self.deployment(self.deployment_name(role), replicas, replicas if ready else 0, labels))
            self.pods[role] = []
            for i in range(replicas):
                pod = self.pod(role, i, ready)
                self.pods[role].append(pod["metadata"]["name"])
                f.put(self.core("pods"), pod)
        f.put(self.group("apps/v1", "deployments"), self.deployment(f"{self.release['gaie']}-epp", 1, 1))
        pool = self.gaie["inferencePool"]
        f.put(self.group(self.pool_api, "inferencepools"), {
            "apiVersion": self.pool_api, "kind": "InferencePool", "metadata": {"name": self.release["gaie"], "namespace": ns},
            "spec": {"selector": {"matchLabels": dict(pool["modelServers"]["matchLabels"])}, "targetPorts": [{"number": 8000}]},
        })
        gw_name = f"{self.release['infra']}-inference-gateway"
        f.put(self.group("gateway.networking.k8s.io/v1", "gateways"), {
            "metadata": {"name": gw_name, "namespace": ns},
            "spec": {"gatewayClassName": (self.infra.get("gateway") or {}).get("gatewayClassName", "istio")},
            "status": {"addresses": [{"type": "IPAddress", "value": "10.96.0.42"}],
                       "conditions": [{"type": "Accepted", "status": "True"}, {"type": "Programmed", "status": "True" if ready else "Unknown"}]},
        })
        route = copy.deepcopy(self.route)
        route["status"] = {"parents": [{"parentRef": {"name": p["name"]}, "controllerName": "example.net/gateway",
                                        "conditions": [{"type": "Accepted", "status": "True"}, {"type": "ResolvedRefs", "status": "True"}]}
                                       for p in route["spec"]["parentRefs"]]}
        f.put(self.group("gateway.networking.k8s.io/v1", "httproutes"), route)
        return self

    def put_hf_secret(self) -> None:
        self.fake.put(self.core("secrets"), {"metadata": {"name": "llm-d-hf-token", "namespace": self.ns},
                                             "data": {"HF_TOKEN": base64.b64encode(b"hf_FAKEfakeFAKEfake0123456789").decode()}})

    # mutations
    def pod_obj(self, role: str, i: int) -> dict:
        return copy.deepcopy(self.fake.get(self.core("pods"), self.pods[role][i]))

    def set_ready(self, role: str, i: int, ready: bool = True) -> None:
        pod = self.pod_obj(role, i)
        pod["status"] = self.pod(role, i, ready)["status"]
        self.fake.put(self.core("pods"), pod)
        dep = copy.deepcopy(self.fake.get(self.group("apps/v1", "deployments"), self.deployment_name(role)))
        pods = [self.fake.get(self.core("pods"), n) for n in self.pods[role]]
        dep["status"]["readyReplicas"] = sum(p["status"]["conditions"][0]["status"] == "True" for p in pods)
        self.fake.put(self.group("apps/v1", "deployments"), dep)

    def set_waiting(self, role: str, i: int, container: str, reason: str, message: str = "", init: bool = False, terminated: str | None = None) -> str:
        self.set_ready(role, i, False)
        pod = self.pod_obj(role, i)
        key = "initContainerStatuses" if init else "containerStatuses"
        for cs in pod["status"][key]:
            if cs["name"] == container:
                cs["state"] = {"waiting": {"reason": reason, "message": message}}
                cs["ready"] = False
                if terminated:
                    cs["lastState"] = {"terminated": {"reason": terminated, "exitCode": 137}}
                    cs["restartCount"] = 3
        self.fake.put(self.core("pods"), pod)
        return pod["metadata"]["name"]

    def event(self, pod: str, reason: str, message: str, kind: str = "Warning") -> None:
        n = len(self.fake.collections.get(self.core("events"), {}))
        self.fake.put(self.core("events"), {"metadata": {"name": f"{pod}.{n}", "namespace": self.ns}, "type": kind, "reason": reason,
                                            "message": message, "involvedObject": {"kind": "Pod", "name": pod},
                                            "lastTimestamp": f"2026-11-22T10:00:{n:02d}Z"})
