"""Which Pod Security Standard a stack's pods need: the least of restricted, baseline and
privileged whose checks the pod templates pass, with what keeps them from the stricter one.

The checks are the PodSecurity admission plugin's that a model-server pod can trip (host
namespaces, privileged, capabilities, hostPath, host ports; for restricted also non-root, no
privilege escalation, dropping ALL and the seccomp profile). doctor's admission dry-run is the
API server's own verdict; this is the same reading offline, for validate and the bundle README.
"""

from __future__ import annotations

from typing import NamedTuple

from .pods import pod_specs
from .stack import Plan

LEVELS = ("restricted", "baseline", "privileged")  # strictest first
BASELINE_CAPABILITIES = {"AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD", "NET_BIND_SERVICE", "SETFCAP",
                         "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT"}


def pod_security_findings(spec: dict, level: str) -> list[str]:
    """What of a pod spec the PodSecurity level refuses."""
    if level not in ("baseline", "restricted"):
        return []
    found = []
    hosts = [k for k in ("hostNetwork", "hostPID", "hostIPC") if spec.get(k)]
    if hosts:
        found.append(f"host namespaces ({', '.join(f'{k}=true' for k in hosts)})")
    containers = list(spec.get("containers") or []) + list(spec.get("initContainers") or [])
    for c in containers:
        sc = c.get("securityContext") or {}
        if sc.get("privileged"):
            found.append(f'privileged (container "{c.get("name")}")')
        extra = sorted(set((sc.get("capabilities") or {}).get("add") or []) - (BASELINE_CAPABILITIES if level == "baseline" else {"NET_BIND_SERVICE"}))
        if extra:
            found.append(f'non-default capabilities (container "{c.get("name")}": {", ".join(extra)})')
        if any(p.get("hostPort") for p in c.get("ports") or []):
            found.append(f'hostPort (container "{c.get("name")}")')
    if any("hostPath" in v for v in spec.get("volumes") or []):
        found.append("hostPath volumes")
    if level == "restricted":
        pod_sc = spec.get("securityContext") or {}
        for c in containers:
            sc = c.get("securityContext") or {}
            if sc.get("allowPrivilegeEscalation") is not False:
                found.append(f'allowPrivilegeEscalation != false (container "{c.get("name")}")')
            if "ALL" not in ((sc.get("capabilities") or {}).get("drop") or []):
                found.append(f'unrestricted capabilities (container "{c.get("name")}" must drop ALL)')
            if not (sc.get("runAsNonRoot") or pod_sc.get("runAsNonRoot")):
                found.append(f'runAsNonRoot != true (container "{c.get("name")}")')
            if not ((sc.get("seccompProfile") or pod_sc.get("seccompProfile") or {}).get("type") in ("RuntimeDefault", "Localhost")):
                found.append(f'seccompProfile (container "{c.get("name")}" needs RuntimeDefault or Localhost)')
    return list(dict.fromkeys(found))


def least_level(spec: dict) -> str:
    """The strictest level that admits the pod spec."""
    return next(level for level in LEVELS if not pod_security_findings(spec, level))


class PodSecurity(NamedTuple):
    level: str  # the least level every pod of the stack passes
    roles: dict  # role -> (its level, what the next stricter level refuses)

    def as_dict(self) -> dict:
        return {"level": self.level, "roles": {role: {"level": lvl, "stricterRefuses": why} for role, (lvl, why) in self.roles.items()}}


def stack_pod_security(plan: Plan) -> PodSecurity:
    roles = {}
    for role, spec in pod_specs(plan).items():
        level = least_level(spec)
        stricter = LEVELS[LEVELS.index(level) - 1] if level != "restricted" else None
        roles[role] = (level, pod_security_findings(spec, stricter) if stricter else [])
    level = max((lvl for lvl, _ in roles.values()), key=LEVELS.index, default="restricted")
    return PodSecurity(level, roles)
