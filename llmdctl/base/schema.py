"""JSON Schema checks with errors a person can act on: ``file:line:col: dotted.path: problem``."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from . import cache
from .data import data_path, read_bytes
from .errors import CatalogError, Finding, ValidationError
from .fastschema import is_valid
from .yamlio import Document


@lru_cache(maxsize=None)
def schema_bytes(name: str) -> bytes:
    """A schema file as shipped (read once per process: every catalog file's cache key includes it)."""
    path = data_path("schemas", name)
    try:
        return read_bytes(path)
    except OSError as exc:
        raise CatalogError(f"cannot read schema {path}: {exc.strerror or exc}",
                           hint="the catalog is incomplete: reinstall llmdctl, or fix the folder $LLMDCTL_CATALOG names") from None


@lru_cache(maxsize=None)
def load_schema(name: str) -> dict:
    raw = schema_bytes(name)
    return cache.cached(cache.key(b"schema", raw), lambda: _parse_json(raw, data_path("schemas", name)))


def _parse_json(raw: bytes, path: str) -> dict:
    import json  # only when the cache has no entry for this schema

    try:
        doc = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise CatalogError(f"schema {path}: not a UTF-8 text file") from None
    except json.JSONDecodeError as exc:
        raise CatalogError(f"schema {path}:{exc.lineno}:{exc.colno}: not JSON: {exc.msg}") from None
    if not isinstance(doc, dict):
        raise CatalogError(f"schema {path}: expected a JSON object (a JSON Schema) at the top level")
    return doc


@lru_cache(maxsize=None)
def _validator(name: str):
    # jsonschema costs more to import than a whole render; it runs only to explain a failure
    from jsonschema import Draft202012Validator, Draft7Validator

    schema = load_schema(name)
    cls = Draft7Validator if "draft-07" in schema.get("$schema", "") else Draft202012Validator
    return cls(schema)


def reset_schema_caches() -> None:
    schema_bytes.cache_clear()
    load_schema.cache_clear()
    _validator.cache_clear()


def dotted(parts) -> str:
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


def _describe(error) -> str:
    """One line per error; unknown keys get a did-you-mean from the keys the schema allows."""
    if error.validator == "enum":
        return f"{error.instance!r} is not one of {', '.join(map(repr, error.validator_value))}"
    if error.validator == "type":
        expected = error.validator_value
        wanted = expected if isinstance(expected, list) else [expected]
        expected = " or ".join(expected) if isinstance(expected, list) else expected
        message = f"expected {expected}, got {type(error.instance).__name__} {error.instance!r}"
        if "string" in wanted and isinstance(error.instance, (int, float, bool)):
            # YAML read 5600, 1.0 or true as a number or boolean: the chart wants the text
            text = str(error.instance).lower() if isinstance(error.instance, bool) else str(error.instance)
            message += f"; quote it: \"{text}\""
        return message
    return error.message


def check(instance: Any, schema_name: str, *, doc: Document | None = None, source: str = "", root: str = "", locate=None) -> None:
    """Validate ``instance`` and raise one ``ValidationError`` listing every problem.

    ``doc`` locates problems in the YAML file they came from; ``locate(path[, value])`` may instead
    return a ``file:line:col`` for a path (e.g. inside a user's --values file), or a pair of that and
    the path as the file spells it; ``root`` prefixes key paths (e.g. the release name for values files).
    """
    if is_valid(instance, load_schema(schema_name)):
        return
    from difflib import get_close_matches  # error path only

    errors = sorted(_validator(schema_name).iter_errors(instance), key=lambda e: (list(map(str, e.absolute_path)), e.message))
    if not errors:
        return
    lines = []
    for err in errors:
        path = dotted(err.absolute_path)
        problems = [(path, _describe(err))]
        if err.validator == "additionalProperties" and isinstance(err.instance, dict):
            # one line per unknown key, located at the key itself
            allowed = list(err.schema.get("properties", {}))
            problems = []
            for key in (k for k in err.instance if k not in allowed):
                close = get_close_matches(str(key), allowed, n=1)
                sub = f"{path}.{key}" if path else str(key)
                problems.append((sub, f"unknown key '{key}'" + (f" (did you mean '{close[0]}'?)" if close else f"; allowed: {', '.join(allowed)}")))
        for at, message in problems:
            where = doc.where(at) if doc is not None else None
            if doc is None and locate is not None:
                # the offending value itself helps find it in a user's file (with the file's own
                # path, whose list indexes may differ from the merged values')
                found = locate(at, err.instance) if at == path and err.validator != "additionalProperties" else locate(at)
                if isinstance(found, tuple):
                    where, at = found
                else:
                    where = found
            where = where or source
            full = f"{root}.{at}" if root and at else (root or at)
            prefix = f"{where}: " if where else ""
            lines.append(f"{prefix}{full or '(top level)'}: {message}")
    lines = list(dict.fromkeys(lines))  # one line of a file can be wrong in two places (ms.roles fills both roles)
    findings = [Finding(f"schema:{schema_name}", "error", line) for line in lines]
    raise ValidationError("\n".join(lines), findings)
