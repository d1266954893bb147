"""The plan: an immutable value describing one stack, built by compose and only read by effects.

It says what to install (releases, values, the route), what a healthy stack looks like (roles,
names, the pool selector) and where every value came from (layers, provenance). Each record is a
tuple; every dict and list inside is frozen at construction (see ``frozen``); ``replace`` makes a
changed copy. (Named tuples, not dataclasses: ``dataclasses`` costs a tenth of a render to import.)
"""

from __future__ import annotations

from typing import NamedTuple

from ..base.errors import Finding
from ..catalog.catalog import Release
from ..inputs.spec import RoleLayout, Spec
from .frozen import immutable_record

ROLES = ("prefill", "decode")


@immutable_record
class RolePlan(NamedTuple):
    """What one role (prefill or decode) should look like once deployed."""

    role: str
    replicas: int
    tensor: int
    gpus_per_pod: int
    accelerator_resource: str | None
    rdma: dict | None
    image: str
    vllm_port: int
    deployment: str
    data: int = 1  # DP ranks of one instance
    data_local: int = 1  # DP ranks per pod
    workers: int = 1  # pods per instance (a LeaderWorkerSet group when > 1)
    expert: bool = False  # --enable-expert-parallel
    rank_ports: tuple[int, ...] = ()  # multi-port DP: the port of each local rank, as the pool targets them
    autoscale: tuple[int, int] | None = None  # (min, max) replicas when an HPA sizes the role (--autoscale)

    @property
    def layout(self) -> str:
        """The role as --prefill/--decode spell it: 4xTP1, 2xDP8EP."""
        return str(RoleLayout(self.replicas, self.tensor, self.data, self.expert))

    @property
    def workload(self) -> str:
        return "LeaderWorkerSet" if self.workers > 1 else "Deployment"

    @property
    def pods(self) -> int:
        return self.replicas * self.workers

    @property
    def replica_range(self) -> tuple[int, int]:
        """The replica counts a healthy role may have: the planned one, or the HPA's range."""
        return self.autoscale or (self.replicas, self.replicas)


@immutable_record
class ReleasePlan(NamedTuple):
    key: str  # infra | gaie | ms
    name: str  # infra-<postfix>
    chart: str
    version: str
    repository: dict | None
    needs: tuple[str, ...]
    values: dict
    values_file: str
    local: bool = False  # chart is a path on this machine (--charts): no repository, no dependency build
    generated: bool = False  # a chart llmdctl writes into the bundle (its objects are Plan.manifests[key])


class LayerInfo(NamedTuple):
    """One merge layer as the bundle README lists it."""

    name: str
    what: str
    summary: str = ""


@immutable_record
class Plan(NamedTuple):
    """Everything render, apply, verify and destroy need; nothing here touches a cluster."""

    namespace: str
    postfix: str
    guide: str
    llmd_version: str
    hardware: str
    overlays: tuple[str, ...]
    gateway: str
    mode: str  # disaggregated | aggregated
    model: dict
    roles: dict[str, RolePlan]
    releases: tuple[ReleasePlan, ...]
    route: dict
    names: dict[str, str]
    pool_selector: dict[str, str]
    hardware_facts: dict
    gateway_facts: dict
    release_info: Release
    layers: tuple[LayerInfo, ...]  # in merge order
    provenance: dict[str, dict[str, str]]  # release key -> dotted path -> layer
    hf_secret: str
    notes: tuple[str, ...] = ()
    findings: tuple[Finding, ...] = ()
    spec: Spec | None = None
    manifests: dict[str, list] = {}  # release key -> objects of a generated chart (router generation)

    def release(self, key: str) -> ReleasePlan:
        return next(r for r in self.releases if r.key == key)

    @property
    def ms_values(self) -> dict:
        return self.release("ms").values

    @property
    def generation(self) -> str:
        """helmfile (llm-d <= v0.6.0: infra, gaie, modelservice) or router (>= v0.8: router chart, generated model servers)."""
        return self.release_info.generation

    @property
    def standalone(self) -> bool:
        """No Gateway: clients reach the router's Envoy through the EPP Service."""
        return self.gateway_facts.get("provider") == "standalone"

    @property
    def gateway_namespace(self) -> str:
        """Where the stack's Gateway lives: its own namespace, or the attached Gateway's."""
        return self.names.get("gatewayNamespace", self.namespace)

    @property
    def attached(self) -> bool:
        """The stack routes through a Gateway it neither creates nor deletes (--attach-gateway)."""
        return self.spec is not None and self.spec.attach_gateway is not None

    @property
    def model_match(self) -> tuple[str, str] | None:
        """(header, model) the stack's route matches when it routes by model name, as rendered."""
        facts = self.release_info.dialect.get("modelRoute")
        if not facts or self.generation != "router" or self.standalone:
            return None
        matches = (self.release("router").values.get("httpRoute") or {}).get("headerMatches") or {}
        value = matches.get(facts["header"])
        return (facts["header"], str(value)) if value is not None else None

    @property
    def claims(self) -> dict | None:
        """The hardware profile's DRA claim (devices per GPU) when the pods use one: with prefill
        pods (a GPU and its NIC), or always when the claim is the accelerator itself (Intel XPU)."""
        dra = self.hardware_facts.get("dra")
        return dra if dra and (self.mode == "disaggregated" or dra.get("inAllModes")) else None

    @property
    def pool_values(self) -> dict:
        """The InferencePool as the chart that renders it is told (selector, target ports)."""
        if self.generation == "router":
            values = self.release("router").values
            if "router" in values:
                return (values.get("router") or {}).get("modelServers") or {}
            return values.get("inferencePool") or {}  # llm-d v0.7: GAIE's own chart keys
        return self.release("gaie").values.get("inferencePool") or {}

    @property
    def epp_values(self) -> dict:
        """The EPP block (pluginsConfigFile, pluginsCustomConfig, monitoring) of either generation."""
        values = self.release("router" if self.generation == "router" else "gaie").values
        if "router" in values:
            return (values.get("router") or {}).get("epp") or {}
        return values.get("inferenceExtension") or {}

    @property
    def kv_events(self) -> dict | None:
        """The release's KV-event wiring when the stack routes on them (--prefix-cache precise)."""
        return self.release_info.epp.get("kvEvents") if self.spec is not None and self.spec.prefix_cache == "precise" else None

    @property
    def epp_monitoring(self) -> dict:
        values = self.release("router").values if self.generation == "router" else {}
        if "router" in values:
            return ((values.get("router") or {}).get("monitoring") or {}).get("prometheus") or {}
        return (self.epp_values.get("monitoring") or {}).get("prometheus") or {}
