"""The composed values against llmdctl's copy of what each pinned chart accepts, with a problem a
user's ``--values`` file brought in shown where it sits in that file (line, column, and the file's
own list indexes, which differ from the merged values': list items merge by name, and ``ms.roles``
fills both roles)."""

from __future__ import annotations

import re
from typing import Any

from ..base.schema import check
from ..catalog.catalog import Release
from ..plan.stack import ROLES

_LIST_INDEX = re.compile(r"\[[0-9]+\]")
_NO_VALUE = object()
_PATH_STEP = re.compile(r"\[([0-9]+)\]|\.?([^.\[]+)")


def _value_at(data: Any, path: str) -> Any:
    """The value at a dotted path with list indexes (``decode.containers[0].env[1].value``), or a
    marker that equals nothing when the path does not lead anywhere (a key with a dot in it)."""
    for index, key in _PATH_STEP.findall(path):
        if index:
            if not isinstance(data, list) or int(index) >= len(data):
                return _NO_VALUE
            data = data[int(index)]
        elif isinstance(data, dict) and key in data:
            data = data[key]
        else:
            return _NO_VALUE
    return data


def values_schema_name(key: str, version: str) -> str:
    return f"values/{key}-{version}.schema.json"


def check_values_schemas(release: Release, merged: dict[str, dict], overrides=()) -> None:
    """Every values file must pass llmdctl's copy of what the pinned chart accepts.

    A problem that a user's --values file brought in is located in that file (line and column).
    """
    for key in [k for k in release.release_keys if k in merged]:
        files = [ov.doc for ov in reversed(overrides) if ov.release == key and ov.doc is not None]

        def locate(path: str, value: Any = _NO_VALUE, files=files) -> str | tuple[str, str] | None:
            # the merged values' list indexes and role names differ from the file's (items merge by
            # name; `roles` fills both roles): compare paths without indexes, roles as written, and
            # where several of the file's paths fit, the one holding the offending value
            for doc in files:
                probe = path
                while probe:
                    spelled = {_LIST_INDEX.sub("", probe)}
                    spelled |= {"roles" + p[len(r):] for p in spelled for r in ROLES if p.startswith(r + ".") or p == r}
                    found = [at for at in doc.positions if _LIST_INDEX.sub("", at) in spelled]
                    if probe == path and value is not _NO_VALUE and len(found) > 1:
                        found = [at for at in found if _value_at(doc.data, at) == value] or found
                    if probe in found and (len(found) == 1 or value is _NO_VALUE or _value_at(doc.data, probe) == value):
                        found = [probe]
                    if len(found) == 1:
                        return (doc.where(found[0]), found[0]) if probe == path else doc.where(found[0])
                    probe = probe.rsplit(".", 1)[0] if "." in probe else ""
            return None

        if release.generation == "router" and key == "ms":
            # llmdctl's own chart reads the modelservice values shape (types and enums from its
            # schema); the generator then refuses any key it would not turn into an object
            schema, source = release.dialect["modelServerValuesSchema"], "ms values (of llmdctl's model-server chart)"
            # a role's rollout strategy is the generator's own key (modelservice has none): its
            # shape is the rollout layer's, checked there
            values = {**merged[key], **{r: {k: v for k, v in merged[key][r].items() if k != "strategy"}
                                        for r in ROLES if isinstance(merged[key].get(r), dict)}}
        else:
            schema, source = values_schema_name(key, release.charts[key]["version"]), f"{key}.values.yaml"
            values = merged[key]
        check(values, schema, source=source, root=key, locate=locate)
