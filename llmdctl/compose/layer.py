"""One named set of values merged in its place in the order ``compose`` states (catalog layers,
the stack's, the layout's, the pod lifecycle's), with what it is for the bundle README."""

from __future__ import annotations

import copy
from typing import NamedTuple

from ..base.merge import merge_values
from ..plan.stack import ROLES


class ValuesLayer(NamedTuple):
    name: str
    what: str
    values: dict  # release key -> values
    summary: str = ""
    source: str = ""  # the catalog file, for messages


def expand_roles(ms: dict, roles: tuple[str, ...] = ROLES) -> dict:
    """``roles`` applies to decode and prefill (to decode alone in aggregated serving, where there
    is no prefill Deployment); the role's own block (same layer) wins."""
    if not isinstance(ms, dict) or "roles" not in ms:
        return ms
    shared = ms["roles"] or {}
    out = {k: v for k, v in ms.items() if k != "roles"}
    for role in roles:
        own = out.get(role) or {}
        out[role] = merge_values(copy.deepcopy(shared), own) if isinstance(own, dict) else own
    return out
