"""The values-merge contract shared by every layer, and `--set` paths.

Rules (modelled on Helm's ``MergeValues``, the variant that keeps nulls):

* maps merge recursively; scalars replace; the override wins;
* lists replace, except lists whose items have a natural identity, which merge item by item:
  ``containers``/``initContainers``/``env``/``volumes``/``volumeMounts``/``ports`` by ``name``,
  vLLM ``args`` by flag (``--flag=value`` tokens). Base order is kept, new items are appended,
  and an item carrying ``$patch: delete`` removes the item with the same identity;
* ``null`` deletes: when the key exists in the base, llmdctl deletes it (an earlier layer's value
  is gone); when it does not, the ``None`` is kept so it reaches the values file, where Helm deletes
  the chart's own default (helm ``coalesce.go``). Both cases are tested.

A map/scalar clash is an error naming the dotted path, not a silent pick (Helm only warns).
"""

from __future__ import annotations

import copy
from typing import Any, Callable

from .errors import InputError

#: list-valued keys whose items merge by identity rather than replace wholesale
IDENTITY_LISTS = {
    "containers": "name",
    "initContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "name",
    "ports": "name",
    "args": "flag",
}
PATCH_KEY = "$patch"

Provenance = dict[str, str]


def arg_flag(token: Any) -> str:
    """Identity of a vLLM argument token: ``--max-model-len=32000`` -> ``--max-model-len``."""
    if isinstance(token, dict):
        return str(token.get("flag", ""))
    text = str(token)
    return text.split("=", 1)[0] if text.startswith("-") else text


def normalize_args(args: list[Any]) -> list[Any]:
    """Join ``["--flag", "value"]`` pairs into ``--flag=value`` so each flag is one token.

    Upstream values files write either form; one form makes flags comparable and mergeable.
    ``$patch`` items (dicts) pass through untouched.
    """
    out: list[Any] = []
    i = 0
    while i < len(args):
        token = args[i]
        if isinstance(token, str) and token.startswith("--") and "=" not in token and i + 1 < len(args):
            nxt = args[i + 1]
            if not isinstance(nxt, dict) and not (isinstance(nxt, str) and nxt.startswith("--")):
                out.append(f"{token}={nxt}")
                i += 2
                continue
        out.append(token if isinstance(token, dict) else str(token))
        i += 1
    return out


def _identity(item: Any, key: str, path: str = "") -> Any:
    if key == "flag":
        return arg_flag(item)
    if isinstance(item, dict):
        ident = item.get(key)
        if ident is not None and not isinstance(ident, (str, int, float, bool)):
            raise InputError(f"{path}: an item's '{key}' must be a plain value, not {type(ident).__name__} {ident!r}",
                             hint=f"e.g. - {key}: vllm")
        return ident
    return None


def _is_delete_marker(item: Any) -> bool:
    return isinstance(item, dict) and item.get(PATCH_KEY) == "delete"


def _merge_identity_list(base: list, override: list, key: str, path: str, record: Callable[[str], None]) -> list:
    if key == "flag":
        base, override = normalize_args(base), normalize_args(override)
    merged: dict[Any, Any] = {}
    anonymous: list[Any] = []
    for item in base:
        ident = _identity(item, key, path)
        if ident is None:
            anonymous.append(item)
        else:
            merged[ident] = item
    for item in override:
        ident = _identity(item, key, path)
        item_path = f"{path}[{ident}]"
        if ident is None:
            if _is_delete_marker(item):
                raise InputError(f"{path}: a '$patch: delete' item needs a '{key}' to say what it deletes")
            anonymous.append(item)
            record(item_path)
            continue
        if _is_delete_marker(item):
            merged.pop(ident, None)
            record(item_path)
        elif ident in merged and isinstance(item, dict) and isinstance(merged[ident], dict):
            merged[ident] = _merge(merged[ident], item, item_path, record)
        else:
            merged[ident] = copy.deepcopy(item)
            record(item_path)
    return list(merged.values()) + anonymous


def _merge(base: Any, override: Any, path: str, record: Callable[[str], None]) -> Any:
    if isinstance(base, dict) and isinstance(override, dict):
        out = dict(base)
        for key, value in override.items():
            sub = f"{path}.{key}" if path else str(key)
            if value is None:
                if key in out:
                    del out[key]
                else:
                    out[key] = None  # survives into the values file: Helm deletes the chart default
                record(sub)
            elif key in out and out[key] is not None:
                out[key] = _merge_value(out[key], value, sub, str(key), record)
            else:
                out[key] = copy.deepcopy(value)
                record(sub)
        return out
    record(path)
    return copy.deepcopy(override)


def _merge_value(base: Any, override: Any, path: str, key: str, record: Callable[[str], None]) -> Any:
    if isinstance(base, dict) != isinstance(override, dict):
        raise InputError(
            f"{path}: cannot merge a {type(override).__name__} over a {type(base).__name__}; "
            "set it to null first to replace the whole value"
        )
    if isinstance(base, list) and isinstance(override, list) and key in IDENTITY_LISTS:
        return _merge_identity_list(base, override, IDENTITY_LISTS[key], path, record)
    return _merge(base, override, path, record)


def merge_values(base: dict, override: dict, *, layer: str = "", provenance: Provenance | None = None, root: str = "") -> dict:
    """Merge ``override`` over ``base`` and return a new dict; inputs are never mutated.

    ``provenance`` (dotted path -> layer name) records which layer last set each path.
    """

    def record(path: str) -> None:
        if provenance is not None and layer:
            provenance[path] = layer

    return _merge(base, override, root, record)


def strip_patch_markers(value: Any) -> Any:
    """Drop ``$patch`` items that found nothing to delete, so they never reach a values file."""
    if isinstance(value, dict):
        return {k: strip_patch_markers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [strip_patch_markers(v) for v in value if not _is_delete_marker(v)]
    return value


# --- `--set` paths ---------------------------------------------------------------------------


class Ident(str):
    """A path part that selects a list item by its identity: ``containers[vllm]``, ``env[UCX_TLS]``,
    ``args[--max-model-len]`` (the same identities the merge contract uses)."""


def split_path(path: str) -> list[str | int]:
    """Split ``decode.containers[0].resources.limits.rdma/ib`` into keys and list indexes.

    A dot inside a key is written ``\\.`` as in ``helm --set`` (``modelArtifacts.labels.llm-d\\.ai/guide``).
    ``[name]`` instead of ``[0]`` selects an item of an identity list (containers, env, ports,
    volumes, volumeMounts by name; vLLM args by flag).
    """
    parts: list[str | int] = []
    buf = ""
    i = 0
    while i < len(path):
        ch = path[i]
        if ch == "\\" and i + 1 < len(path) and path[i + 1] in ".[]":
            buf += path[i + 1]
            i += 2
            continue
        if ch == ".":
            if buf:
                parts.append(buf)
            elif not parts or not isinstance(parts[-1], (int, Ident)):
                raise InputError(f"empty key in path '{path}'")
            buf = ""
        elif ch == "[":
            if buf:
                parts.append(buf)
                buf = ""
            end = path.find("]", i)
            if end < 0:
                raise InputError(f"unclosed '[' in path '{path}'")
            index = path[i + 1 : end]
            if index.isascii() and index.isdigit():
                parts.append(int(index))
            elif index:
                parts.append(Ident(index))
            else:
                raise InputError(f"empty '[]' in path '{path}': give an index ([0]) or an item's name ([vllm])")
            i = end
        else:
            buf += ch
        i += 1
    if buf:
        parts.append(buf)
    if not parts:
        raise InputError(f"empty path '{path}'")
    return parts


def _ident_key(parts: list, depth: int, dotted: str) -> str:
    """The identity field of the list that ``parts[depth]`` (an Ident) selects from."""
    parent = parts[depth - 1] if depth else None
    key = IDENTITY_LISTS.get(parent) if isinstance(parent, str) else None
    if key is None:
        raise InputError(f"--set {dotted}: [{parts[depth]}] selects by name only in {', '.join(sorted(IDENTITY_LISTS))}",
                         hint="use a numeric index ([0]) for other lists")
    return key


def _find(items: list, key: str, ident: str) -> int | None:
    return next((i for i, item in enumerate(items) if _identity(item, key) == ident), None)


def _set_ident(node: Any, parts: list, depth: int, value: Any, dotted: str) -> None:
    """The last part selects an item by identity: set it, add it, or (with ``None``) remove it."""
    key, ident = _ident_key(parts, depth, dotted), str(parts[depth])
    if not isinstance(node, list):
        raise InputError(f"--set {dotted}: '{_fmt(parts[:depth])}' is not a list")
    at = _find(node, key, ident)
    if value is None:
        if at is not None:
            del node[at]
        return
    if key == "flag":
        if isinstance(value, (dict, list)):  # a JSON config (--kv-transfer-config), as vLLM reads it, never Python's repr
            import json  # only for a --set of a flag to a map or list

            value = json.dumps(value, separators=(",", ":"))
        item: Any = ident if value is True else f"{ident}={value}"
    elif isinstance(value, dict):
        item = {key: ident, **{k: v for k, v in value.items() if k != key}}
    else:
        raise InputError(f"--set {dotted}: an item of '{parts[depth - 1]}' is a map; set one of its keys, e.g. {dotted}.value=...")
    if at is None:
        node.append(item)
    else:
        node[at] = item


def set_path(tree: dict, parts: list[str | int], value: Any, dotted: str) -> None:
    """Set (or with ``None``, delete) one path in ``tree`` in place, creating maps on the way."""
    node: Any = tree
    for depth, part in enumerate(parts[:-1]):
        nxt_is_index = isinstance(parts[depth + 1], int)  # (an Ident also needs a list under it)
        if isinstance(parts[depth + 1], Ident):
            nxt_is_index = True
        if isinstance(part, Ident):
            key = _ident_key(parts, depth, dotted)
            if not isinstance(node, list):
                raise InputError(f"--set {dotted}: '{_fmt(parts[:depth])}' is not a list")
            if key == "flag":
                raise InputError(f"--set {dotted}: a vLLM argument has no keys below it", hint=f"--set {_fmt(parts[:depth + 1])}=VALUE")
            at = _find(node, key, part)
            if at is None:
                node.append({key: str(part)})
                at = len(node) - 1
            node = node[at]
            continue
        if isinstance(part, int):
            if not isinstance(node, list):
                raise InputError(f"--set {dotted}: '{_fmt(parts[:depth])}' is not a list")
            if part > len(node):
                raise InputError(f"--set {dotted}: index [{part}] is past the end of a list of {len(node)}")
            if part == len(node):
                node.append([] if nxt_is_index else {})
            node = node[part]
            continue
        if not isinstance(node, dict):
            raise InputError(f"--set {dotted}: '{_fmt(parts[:depth])}' is not a map")
        if node.get(part) is None:
            node[part] = [] if nxt_is_index else {}
        node = node[part]
    last = parts[-1]
    if isinstance(last, Ident):
        _set_ident(node, parts, len(parts) - 1, value, dotted)
        return
    if isinstance(last, int):
        if not isinstance(node, list):
            raise InputError(f"--set {dotted}: '{_fmt(parts[:-1])}' is not a list")
        if last > len(node):
            raise InputError(f"--set {dotted}: index [{last}] is past the end of a list of {len(node)}")
        if value is None:
            if last < len(node):
                del node[last]
        elif last == len(node):
            node.append(value)
        else:
            node[last] = value
        return
    if not isinstance(node, dict):
        raise InputError(f"--set {dotted}: '{_fmt(parts[:-1])}' is not a map")
    if value is None and last in node:
        del node[last]
    else:
        node[last] = value


def _fmt(parts: list[str | int]) -> str:
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, (int, Ident)) else (f".{p}" if out else str(p))
    return out


def leaf_paths(value: Any, prefix: str = "") -> list[str]:
    """Dotted paths of every leaf, for provenance and tests."""
    if isinstance(value, dict) and value:
        out: list[str] = []
        for k, v in value.items():
            out += leaf_paths(v, f"{prefix}.{k}" if prefix else str(k))
        return out
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        out = []
        for i, v in enumerate(value):
            out += leaf_paths(v, f"{prefix}[{i}]")
        return out
    return [prefix]
