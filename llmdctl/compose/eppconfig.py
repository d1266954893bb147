"""The EPP's plugins config, checked the way the pinned EPP reads it, before anything is deployed.

The catalog holds, per pinned EPP (``schemas/epp/epp-<tag>.plugins.json``, provenance in
``docs/epp-plugins.md``), every plugin type the EPP registers and the JSON shape its factory
decodes the ``parameters`` into. The EPP hands each factory a strict decoder (Go's encoding/json
with DisallowUnknownFields): an unknown field or a wrong JSON type stops the EPP, and the router pod
crash-loops. This module applies the same rules:

* object keys match a field name exactly or else case-insensitively (Go's encoding/json v1);
* ``null`` is accepted for any field; an integer field takes a whole number (YAML ``5.0`` reaches
  the EPP as ``5``), a number field any number, a string field only a string;
* a plugin whose factory never reads its parameters accepts anything;
* a plugin with several parameter formats (``disagg-profile-handler``: nested or legacy flat)
  takes a document that matches one of them exactly, never a mix;
* Alpha plugins need the EPP flag ``--allow-experimental-plugins``.
"""

from __future__ import annotations

from typing import Any, Iterator

from ..base.errors import suggest
from ..base.schema import load_schema


def plugin_schema(release) -> dict | None:
    """The pinned EPP's plugin table, or None for a release llmdctl has none for."""
    name = (release.epp or {}).get("pluginSchema")
    return load_schema(name) if name else None


def _types(schema: dict) -> list[str]:
    kind = schema.get("type")
    return [kind] if isinstance(kind, str) else list(kind or [])


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _fits(value: Any, kind: str) -> bool:
    if kind == "integer":
        return (isinstance(value, int) and not isinstance(value, bool)) or (isinstance(value, float) and value.is_integer())
    if kind == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return _kind(value) == kind


def field_for(key: str, properties: dict) -> str | None:
    """The struct field a JSON key decodes into: the exact name, else one equal ignoring case (Go)."""
    if key in properties:
        return key
    folded = key.casefold()
    return next((name for name in properties if name.casefold() == folded), None)


def value_errors(value: Any, schema: dict, path: str, *, list_fields: bool = True) -> list[str]:
    """What a strict Go decoder would refuse in ``value`` against one parameters schema."""
    if value is None or not schema:
        return []
    kinds = [k for k in _types(schema) if k != "null"]
    if kinds and not any(_fits(value, k) for k in kinds):
        want = " or ".join("a whole number" if k == "integer" else f"a{'n' if k[0] in 'aeiou' else ''} {k}" for k in kinds)
        return [f"{path}: expected {want}, got {_kind(value)} {value!r}"]
    if schema.get("x-unmarshaler"):
        return []  # the type decodes itself: only its JSON kind is known
    if isinstance(value, dict):
        props = schema.get("properties")
        extra = schema.get("additionalProperties")
        errors = []
        for key, sub in value.items():
            name = field_for(str(key), props or {}) if props is not None else None
            if name is not None:
                errors += value_errors(sub, props[name], f"{path}.{key}", list_fields=list_fields)
            elif isinstance(extra, dict):
                errors += value_errors(sub, extra, f"{path}.{key}", list_fields=list_fields)
            elif extra is False or props is not None:
                hint = suggest(str(key), list(props or {}))
                errors.append(f"{path}: unknown field {key!r}" + hint
                              + (f" (fields: {', '.join(props)})" if props and list_fields and not hint else ""))
        return errors
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [e for i, item in enumerate(value) for e in value_errors(item, schema["items"], f"{path}[{i}]", list_fields=list_fields)]
    return []


def parameters_errors(entry: dict, params: Any, path: str) -> list[str]:
    """Errors of one plugin's ``parameters`` against its catalog entry (every format it accepts)."""
    spec = entry.get("parameters")
    if spec == "ignored" or params is None:
        return []
    formats = spec.get("anyOf") or [] if isinstance(spec, dict) else []
    if not formats:
        return []
    if len(formats) == 1:
        return value_errors(params, formats[0], path)
    tries = [value_errors(params, schema, path, list_fields=False) for schema in formats]
    if any(not t for t in tries):
        return []
    names = entry.get("formats") or [f"format {i + 1}" for i in range(len(tries))]
    # as the EPP says it: neither format parses on its own (a mix of both, or an unknown field)
    return [f"{path}: matches none of its parameter formats (use one exclusively): "
            + "; ".join(f"{name} ({', '.join(schema.get('properties') or {})}): {', '.join(e.split(': ', 1)[1] for e in errs)}"
                        for name, schema, errs in zip(names, formats, tries))]


def config_errors(doc: Any, table: dict, *, experimental: bool, where: str = "") -> Iterator[tuple[str, str]]:
    """(severity, message) for every problem the pinned EPP would have loading ``doc``."""
    plugins = table["plugins"]
    tag = table["provenance"]["tag"]
    if not isinstance(doc, dict):
        yield "error", f"{where}: not a mapping"
        return
    entries = doc.get("plugins") or []
    names: set[str] = set()
    for i, plugin in enumerate(entries):
        at = f"{where}plugins[{i}]"
        if not isinstance(plugin, dict):
            yield "error", f"{at}: expected a mapping with type (and name, parameters)"
            continue
        kind = str(plugin.get("type", ""))
        at = f"{at} ({kind})"
        names.add(str(plugin.get("name") or kind))
        entry = plugins.get(kind)
        if entry is None:
            yield "error", (f"{at}: the EPP {tag} registers no plugin type {kind!r}" + suggest(kind, list(plugins))
                            + " (`llmdctl versions -o json` lists them)")
            continue
        for error in parameters_errors(entry, plugin.get("parameters"), f"{at}.parameters"):
            yield "error", error
        if entry.get("stability") == "Alpha" and not experimental:
            yield "error", (f"{at}: an Alpha plugin; the EPP {tag} refuses it unless started with --allow-experimental-plugins "
                            "(--set router.router.epp.flags.allow-experimental-plugins=true)")
        if entry.get("deprecated"):
            dep = entry["deprecated"]
            yield "warning", (f"{at}: deprecated since {dep.get('in', '?')}, removed in {dep.get('removal', 'a later release')}"
                              + (f"; use {dep['replacement']}" if dep.get("replacement") else ""))
    for p, profile in enumerate(doc.get("schedulingProfiles") or []):
        for r, ref in enumerate((profile or {}).get("plugins") or [] if isinstance(profile, dict) else []):
            name = ref.get("pluginRef") if isinstance(ref, dict) else None
            if name is not None and str(name) not in names:
                yield "error", (f"{where}schedulingProfiles[{p}].plugins[{r}]: pluginRef {name!r} names no plugin of the config"
                                + suggest(str(name), sorted(names)))


def parameter_error(table: dict, plugin: str, param: str, value: Any) -> str | None:
    """Why ``--scheduler-param plugin.param=value`` would stop the pinned EPP, or None."""
    entry = table["plugins"].get(plugin)
    if entry is None:
        return f"the EPP {table['provenance']['tag']} registers no plugin type {plugin!r}" + suggest(plugin, list(table["plugins"]))
    spec = entry.get("parameters")
    if spec == "ignored":
        return f"{plugin} reads no parameters (the EPP ignores them)"
    formats = spec.get("anyOf") or [] if isinstance(spec, dict) else []
    fields = [name for schema in formats for name in (schema.get("properties") or {})]
    schema = next((s for s in formats if field_for(param, s.get("properties") or {})), None)
    if schema is None:
        return f"{plugin} has no parameter {param!r}" + suggest(param, fields) + (f" (its parameters: {', '.join(fields)})" if fields else "")
    errors = value_errors(value, schema["properties"][field_for(param, schema["properties"])], f"{plugin}.{param}")
    return errors[0] if errors else None


def fields_of(table: dict, plugin: str) -> list[str]:
    """The top-level parameter names of one plugin (every format)."""
    spec = (table["plugins"].get(plugin) or {}).get("parameters")
    formats = spec.get("anyOf") or [] if isinstance(spec, dict) else []
    return [name for schema in formats for name in (schema.get("properties") or {})]


def parameter_types(table: dict) -> dict[str, dict[str, str]]:
    """plugin -> top-level parameter -> JSON type, for every plugin that reads parameters (listings)."""
    out: dict[str, dict[str, str]] = {}
    for plugin, entry in table["plugins"].items():
        spec = entry.get("parameters")
        for schema in spec.get("anyOf") or [] if isinstance(spec, dict) else []:
            for name, sub in (schema.get("properties") or {}).items():
                kinds = [k for k in _types(sub) if k != "null"]
                out.setdefault(plugin, {})[name] = "|".join(kinds) or "any"
    return out
