"""The plan: an immutable value describing one stack, built by compose and only read by effects.

It says what to install (releases, values, the route), what a healthy stack looks like (roles,
names, the pool selector) and where every value came from (layers, provenance). Every dict and
list inside is frozen (see ``frozen``); ``dataclasses.replace`` makes a changed copy.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from ..base.errors import Finding
from ..catalog.catalog import Release
from ..inputs.spec import Spec
from .frozen import freeze

ROLES = ("prefill", "decode")


class _Value:
    """Freezes every dict/list field at construction, so no holder of a plan can change it."""

    def __post_init__(self) -> None:
        for f in fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if isinstance(value, (dict, list)):
                object.__setattr__(self, f.name, freeze(value))


@dataclass(frozen=True)
class RolePlan(_Value):
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


@dataclass(frozen=True)
class ReleasePlan(_Value):
    key: str  # infra | gaie | ms
    name: str  # infra-<postfix>
    chart: str
    version: str
    repository: dict | None
    needs: tuple[str, ...]
    values: dict
    values_file: str


@dataclass(frozen=True)
class LayerInfo:
    """One merge layer as the bundle README lists it."""

    name: str
    what: str
    summary: str = ""


@dataclass(frozen=True)
class Plan(_Value):
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

    def release(self, key: str) -> ReleasePlan:
        return next(r for r in self.releases if r.key == key)

    @property
    def ms_values(self) -> dict:
        return self.release("ms").values

    def values(self) -> dict[str, Any]:
        """Release key -> values, for a composer that builds the next plan from this one."""
        return {r.key: r.values for r in self.releases}
