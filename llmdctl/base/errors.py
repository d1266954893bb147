"""Errors that mean "tell the user, no traceback", and the exit codes they map to.

The CLI maps every ``LlmdctlError`` to its ``exit_code`` in one place (``cli.main``): 2 for a usage
or validation error (the input is wrong), 1 for a runtime failure (a tool or the cluster failed).
"""

from __future__ import annotations

import re
from typing import NamedTuple


class LlmdctlError(Exception):
    """Base class: a message for the user, printed without a traceback."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint


class InputError(LlmdctlError):
    """The user's input (flags, spec file, overrides) is malformed or names something unknown."""

    exit_code = 2


class ValidationError(InputError):
    """Composition succeeded but the result breaks a schema or a rule; carries every finding."""

    def __init__(self, message: str, findings: list | None = None, *, hint: str | None = None):
        super().__init__(message, hint=hint)
        self.findings = findings or []


class CatalogError(LlmdctlError):
    """A shipped catalog file (profile, gateway, guide, version pin) is broken: a packaging bug."""

    exit_code = 2


class Finding(NamedTuple):
    """One result of a rule or schema check. ``severity``: error refuses, warning renders, fix changed the plan."""

    rule: str
    severity: str
    message: str
    why: str = ""
    source: str = ""

    def as_dict(self) -> dict:
        return {"rule": self.rule, "severity": self.severity, "message": self.message, "why": self.why, "source": self.source}


def suggest(name: str, candidates: list[str]) -> str:
    """A "; did you mean 'x'?" tail for an unknown name, or "" when nothing is close (any case)."""
    import difflib  # only on the error path; start-up stays lean

    lowered = {c.lower(): c for c in candidates}
    close = difflib.get_close_matches(str(name).lower(), list(lowered), n=1, cutoff=0.6)
    if not close and len(str(name)) >= 2:  # a prefix of one name only: "pd" -> "pd-disaggregation"
        close = [c for c in lowered if c.startswith(str(name).lower())]
        close = close if len(close) == 1 else []
    return f"; did you mean '{lowered[close[0]]}'?" if close else ""


HF_TOKEN = re.compile(r"hf_[A-Za-z0-9]{16,}")


def mask(token: str) -> str:
    return token[:5] + "..." if len(token) > 8 else "hf_..."


def mask_tokens(text: str) -> str:
    """Every Hugging Face token in a message replaced by its first characters: nothing llmdctl
    prints (an argparse complaint, a YAML error quoting a value) can leak one."""
    return HF_TOKEN.sub(lambda m: mask(m.group(0)), text)
