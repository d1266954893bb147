"""The rule registry and the plan-reading helpers every rule module shares.

Each rule has a stable ID and a severity: ``error`` refuses to render, ``warning`` renders and
warns, ``fix`` proposes a change. A rule only reads the plan: a check yields messages, a fix
yields ``(message, values delta for ms)``. What each guards against, and its source, is data
(guides/rules.yaml); ``check_rule_catalog`` keeps both sides in step.
"""

from __future__ import annotations

import re
from typing import Callable, Iterator, NamedTuple

from ...base.errors import CatalogError, Finding, InputError
from ...base.merge import PATCH_KEY, arg_flag
from ...plan.stack import ROLES, Plan


CHART_INJECTED_ARGS = ("--port", "--tensor-parallel-size")


RDMA_RESOURCE = re.compile(r"^(rdma/|.*sriov-rdma|amd\.com/vnic)")


MIG_RESOURCE = re.compile(r"^nvidia\.com/mig-")


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


def container_delta(role: str, container: dict, **changes) -> dict:
    """A delta that changes one container of a role, found by its name (the merge identity)."""
    name = container.get("name")
    if not name:
        raise InputError(f"ms.{role}.containers: a container without a name cannot be fixed or merged", hint="give every container a name (vllm for the engine)")
    return {role: {"containers": [{"name": name, **changes}]}}


def replace_env(name: str, entry: dict) -> list:
    """Identity-list items that drop an env var and add it anew (at the end, as a fresh value)."""
    return [{"name": name, PATCH_KEY: "delete"}, entry]


# --- helpers over ms values ----------------------------------------------------------------


def role_blocks(plan: Plan) -> Iterator[tuple[str, dict]]:
    for role in ROLES:
        if role in plan.roles:
            yield role, plan.ms_values.get(role) or {}


def vllm_container(block: dict) -> dict:
    for c in block.get("containers") or []:
        if isinstance(c, dict) and c.get("name") == "vllm":
            return c
    containers = block.get("containers") or []
    return containers[0] if containers and isinstance(containers[0], dict) else {}


def env_entry(container: dict, name: str) -> dict | None:
    return next((e for e in container.get("env") or [] if isinstance(e, dict) and e.get("name") == name), None)


def arg_values(container: dict) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for a in container.get("args") or []:
        text = str(a)
        out[arg_flag(text)] = text.split("=", 1)[1] if "=" in text else None
    return out


def resources_of(block: dict) -> dict[str, object]:
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


def requested(block: dict, pattern: re.Pattern) -> list[str]:
    """Sorted resource names of a role's containers that match ``pattern``."""
    return sorted(str(k) for k in resources_of(block) if pattern.match(str(k)))


def extra_config(block: dict) -> dict:
    return block.get("extraConfig") or {}


def is_pd(plan: Plan) -> bool:
    return plan.mode == "disaggregated"


def time_sliced(plan: Plan) -> bool:
    return bool(plan.hardware_facts.get("timeSlicing"))


def added_capabilities(container: dict) -> list[str]:
    """``securityContext.capabilities.add`` of a container; a value of another shape (an override
    that set a scalar) is refused with its path rather than read as empty."""
    sc = container.get("securityContext") or {}
    caps = sc.get("capabilities") if isinstance(sc, dict) else None
    if caps is not None and not isinstance(caps, dict):
        raise InputError(f"containers[{container.get('name')}].securityContext.capabilities: expected a mapping (add, drop), got {caps!r}",
                         hint="e.g. capabilities: {add: [IPC_LOCK], drop: [ALL]}")
    add = (caps or {}).get("add") or []
    if not isinstance(add, list):
        raise InputError(f"containers[{container.get('name')}].securityContext.capabilities.add: expected a list, got {add!r}",
                         hint="e.g. add: [IPC_LOCK]")
    return [str(a) for a in add]


def has_capability(container: dict, cap: str) -> bool:
    sc = container.get("securityContext") or {}
    if sc.get("privileged"):
        return True
    return cap in added_capabilities(container)
