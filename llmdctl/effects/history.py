"""A stack's revisions: every apply keeps the bundle it applied, with the inputs that made it and the
Helm revision each release got, beside the kept bundle. ``llmdctl rollback`` applies an earlier one
again (through apply's own checks and rollout rules); ``status --postfix`` lists them.

One revision is one apply of the whole stack (all its releases together), numbered from 1 in
this kept folder; a rollback is a new revision, as with Helm. The inputs are kept as apply's own
flags (``command_args``) and the folder they were typed in, so a rollback re-plans from them
and then checks that the bundle it gets is byte-identical to the kept one: a values file edited
since, or another llmdctl version, is named instead of silently applying something else.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from ..base.errors import LlmdctlError
from ..compose.compose import plan_stack
from ..plan.stack import Plan
from .bundle import bundle_files, command_args
from .bundle_folder import HISTORY
from .stacks import observe
from .tools import Toolbox

KEEP = 10  # revisions kept per stack (the oldest go first), as Helm's --history-max default keeps 10
_RECORD = "revision.json"


@dataclass(frozen=True)
class Revision:
    number: int
    applied: str  # UTC, ISO 8601
    command: tuple[str, ...]  # apply's flags that reproduce the plan (effects.bundle.command_args)
    cwd: str  # where they were typed: relative --values / -f paths resolve from it
    rollout: tuple[tuple[str, str], ...]  # the strategy per role that went into the workloads
    releases: dict  # release name -> Helm revision after this apply
    source: str  # apply | rollback to N
    folder: Path

    def files(self) -> dict[str, str]:
        root = self.folder / "bundle"
        return {p.relative_to(root).as_posix(): p.read_text(encoding="utf-8") for p in sorted(root.rglob("*")) if p.is_file()}

    def as_dict(self) -> dict:
        return {"revision": self.number, "applied": self.applied, "source": self.source, "releases": dict(self.releases),
                "command": list(self.command), "rollout": {role: how for role, how in self.rollout}}


def history_dir(folder: Path) -> Path:
    return folder / HISTORY


def revisions(folder: Path) -> list[Revision]:
    """This stack's kept revisions, oldest first (none when it was never applied from here)."""
    base = history_dir(folder)
    out = []
    for entry in sorted(base.iterdir() if base.is_dir() else [], key=lambda p: int(p.name) if p.name.isdigit() else -1):
        record = entry / _RECORD
        if not entry.name.isdigit() or not record.is_file():
            continue
        try:
            data = json.loads(record.read_text(encoding="utf-8"))
            out.append(Revision(int(entry.name), data["applied"], tuple(data["command"]), data["cwd"],
                                tuple(tuple(x) for x in data.get("rollout", [])), dict(data.get("releases", {})),
                                data.get("source", "apply"), entry))
        except (ValueError, KeyError, TypeError, OSError):
            continue  # a record cut off mid-write is not a revision
    return out


def record(folder: Path, files: dict[str, str], *, command: list[str], cwd: str, rollout: tuple, releases: dict,
           applied: str, source: str = "apply") -> Revision:
    """Keep what was just applied as the next revision; drop the oldest beyond ``KEEP``."""
    kept = revisions(folder)
    number = (kept[-1].number if kept else 0) + 1
    entry = history_dir(folder) / str(number)
    if entry.exists():  # a record that did not parse: never numbered, safe to replace
        shutil.rmtree(entry)
    for rel, text in files.items():
        path = entry / "bundle" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    data = {"applied": applied, "command": list(command), "cwd": cwd, "rollout": [list(x) for x in rollout],
            "releases": dict(releases), "source": source}
    tmp = entry / (_RECORD + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, entry / _RECORD)  # the record last and whole: a revision without it does not count
    for old in kept[: max(0, len(kept) + 1 - KEEP)]:
        shutil.rmtree(old.folder, ignore_errors=True)
    return revisions(folder)[-1]


def forget(folder: Path) -> None:
    """The stack is gone: so is its history (llmdctl wrote all of it)."""
    shutil.rmtree(history_dir(folder), ignore_errors=True)


def rollback_target(folder: Path, namespace: str, postfix: str, to: int | None) -> tuple[Revision, Revision]:
    """(the current revision, the one to go back to): the one before the current, or ``to``."""
    kept = revisions(folder)
    where = f"stack {postfix} in namespace {namespace}"
    if not kept:
        raise LlmdctlError(f"{where} has no revisions kept in {folder}/: nothing to roll back to",
                           hint="revisions are kept by `llmdctl apply` from this machine (or with the same --bundle-dir); "
                                "helm rollback RELEASE REVISION rolls back one release by hand")
    current = kept[-1]
    if to is None:
        if len(kept) < 2:
            raise LlmdctlError(f"{where} has one revision ({current.number}, applied {current.applied}): there is no earlier one",
                               hint="llmdctl status --postfix " + postfix + " lists the revisions")
        return current, kept[-2]
    target = next((r for r in kept if r.number == to), None)
    if target is None:
        raise LlmdctlError(f"{where} has no revision {to}; kept: {', '.join(str(r.number) for r in kept)}",
                           hint=f"llmdctl status --postfix {postfix} lists them (the last {KEEP} are kept)")
    if target.number == current.number:
        raise LlmdctlError(f"revision {to} is the current one of {where}: nothing to roll back")
    return current, target


def keep_revision(plan: Plan, files: dict[str, str], box: Toolbox, folder: Path, *, cwd: str, applied: str,
                  source: str = "apply") -> Revision:
    """After an apply: the bundle, its inputs and each release's Helm revision as the next revision."""
    state = observe(box, plan.namespace, plan.postfix)
    releases = {name: rel.get("revision") for name, rel in state.releases.items()}
    rollout = plan.spec.rollout if plan.spec is not None else ()
    return record(folder, files, command=command_args(plan), cwd=cwd, rollout=rollout, releases=releases,
                  applied=applied, source=source)


def replay_mismatch(plan: Plan, target: Revision) -> list[str]:
    """The files that differ between the kept revision and what its inputs render now (with the
    rollout it had): empty when re-planning gives back exactly what was applied then."""
    if plan.spec is not None and tuple(plan.spec.rollout) != target.rollout:
        plan = plan_stack(plan.spec._replace(rollout=target.rollout))
    kept, now = target.files(), bundle_files(plan)
    return sorted(k for k in set(kept) | set(now) if kept.get(k) != now.get(k))
