"""Yes/no JSON Schema validation for llmdctl's own schemas (``schemas/``) without importing jsonschema.

``import jsonschema`` costs ~230 ms, most of a fast CLI run, and nearly every document is valid, so
``is_valid`` is a fast path only: when it says "invalid", the caller runs jsonschema to explain why.
It must agree with jsonschema exactly (tests/test_fastschema.py checks that against the real thing)
and knows only the keywords our schemas use: any other raises ``NotImplementedError`` when the schema
is first used, even in a branch no instance reaches, so a schema edit can't slip past it. Semantics
are jsonschema's (Draft 7, 2020-12): bools are not numbers, "integer" takes integral floats,
enum/const compare like JSON (True != 1, 1 == 1.0), "pattern" is ``re.search``, "format" is not
asserted, a Draft 7 ``$ref`` overrides its siblings, and only local ``$ref`` pointers resolve.
Instances are what json.loads or a YAML safe loader return. A schema is checked for unknown
keywords on first use and remembered by identity: never mutate one afterwards.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from functools import lru_cache

_regex = lru_cache(maxsize=None)(re.compile)
_IGNORED = frozenset({"title", "description", "default", "examples", "$comment", "deprecated", "format",
                      "readOnly", "writeOnly", "$schema"})
_TYPES = {
    "null": lambda x: x is None,
    "boolean": lambda x: isinstance(x, bool),
    "object": lambda x: isinstance(x, dict),
    "array": lambda x: isinstance(x, list),
    "string": lambda x: isinstance(x, str),
    "number": lambda x: isinstance(x, (int, float)) and not isinstance(x, bool),
    "integer": lambda x: (isinstance(x, int) and not isinstance(x, bool)) or (isinstance(x, float) and x.is_integer()),
}
_num = _TYPES["number"]


def _equal(a, b) -> bool:
    """JSON equality, as jsonschema's ``_utils.equal``: bools are not numbers; containers recurse."""
    if a is b:
        return True
    if isinstance(a, str) or isinstance(b, str):
        return a == b
    if isinstance(a, Sequence) and isinstance(b, Sequence):
        return len(a) == len(b) and all(map(_equal, a, b))
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return len(a) == len(b) and all(k in b and _equal(v, b[k]) for k, v in a.items())
    if isinstance(a, bool) or isinstance(b, bool):
        return False  # the same bool was caught by "a is b"
    return a == b


def _extras(x: dict, s: dict) -> list:
    """Keys of ``x`` that additionalProperties applies to (jsonschema joins the patterns with "|")."""
    props, joined = s.get("properties", {}), "|".join(s.get("patternProperties", {}))
    return [k for k in x if k not in props and not (joined and _regex(joined).search(k))]


def _valid(x, s, r: _Root) -> bool:
    if s is True or s is False:
        return s
    if r.draft7 and "$ref" in s:
        return _valid(x, r.ref(s["$ref"]), r)  # Draft 7 ignores every sibling of $ref
    for key, v in s.items():
        check = _KEYWORDS.get(key)
        if check is not None and not check(x, v, s, r):
            return False
    return True


# keyword -> check(instance, keyword value, schema, root); comparisons fail exactly when jsonschema's do
_KEYWORDS = {
    "type": lambda x, v, s, r: _TYPES[v](x) if isinstance(v, str) else any(_TYPES[t](x) for t in v),
    "enum": lambda x, v, s, r: any(_equal(e, x) for e in v),
    "const": lambda x, v, s, r: _equal(x, v),
    "minimum": lambda x, v, s, r: not (_num(x) and x < v),
    "maximum": lambda x, v, s, r: not (_num(x) and x > v),
    "exclusiveMinimum": lambda x, v, s, r: not (_num(x) and x <= v),
    "exclusiveMaximum": lambda x, v, s, r: not (_num(x) and x >= v),
    "minLength": lambda x, v, s, r: not (isinstance(x, str) and len(x) < v),
    "maxLength": lambda x, v, s, r: not (isinstance(x, str) and len(x) > v),
    "pattern": lambda x, v, s, r: not isinstance(x, str) or _regex(v).search(x) is not None,
    "minItems": lambda x, v, s, r: not (isinstance(x, list) and len(x) < v),
    "maxItems": lambda x, v, s, r: not (isinstance(x, list) and len(x) > v),
    "items": lambda x, v, s, r: not isinstance(x, list) or all(_valid(i, v, r) for i in x),
    "minProperties": lambda x, v, s, r: not (isinstance(x, dict) and len(x) < v),
    "required": lambda x, v, s, r: not isinstance(x, dict) or all(k in x for k in v),
    "properties": lambda x, v, s, r: not isinstance(x, dict) or all(
        _valid(val, v[k], r) for k, val in x.items() if k in v),
    "patternProperties": lambda x, v, s, r: not isinstance(x, dict) or all(
        _valid(val, sub, r) for p, sub in v.items() for k, val in x.items() if _regex(p).search(k)),
    "additionalProperties": lambda x, v, s, r: not isinstance(x, dict) or all(
        _valid(x[k], v, r) for k in _extras(x, s)),
    "allOf": lambda x, v, s, r: all(_valid(x, sub, r) for sub in v),
    "anyOf": lambda x, v, s, r: any(_valid(x, sub, r) for sub in v),
    "oneOf": lambda x, v, s, r: sum(1 for sub in v if _valid(x, sub, r)) == 1,
    "not": lambda x, v, s, r: not _valid(x, v, r),
    "if": lambda x, v, s, r: _valid(x, s.get("then", True) if _valid(x, v, r) else s.get("else", True), r),
    "$ref": lambda x, v, s, r: _valid(x, r.ref(v), r),
}
_ONE = {"items", "additionalProperties", "not", "if", "then", "else"}  # keywords holding subschemas
_LIST, _MAP = {"allOf", "anyOf", "oneOf"}, {"properties", "patternProperties", "$defs", "definitions"}
_KNOWN = _KEYWORDS.keys() | _ONE | _MAP


class _Root:
    """A root schema, checked once for keywords this module does not implement, with its resolved $refs."""

    def __init__(self, schema):
        self.schema, self.refs = schema, {}
        self.draft7 = isinstance(schema, dict) and "draft-07" in str(schema.get("$schema", ""))
        self.scan(schema)

    def scan(self, s) -> None:
        if s is True or s is False:
            return
        if not isinstance(s, dict):
            raise NotImplementedError(f"schema {s!r}")
        for key, v in s.items():
            if key in _IGNORED or (key == "$id" and s is self.schema):
                continue
            if key not in _KNOWN:
                raise NotImplementedError(key)
            if key == "type" and not set([v] if isinstance(v, str) else v) <= _TYPES.keys():
                raise NotImplementedError(f"type {v!r}")
            if key == "items" and isinstance(v, list):
                raise NotImplementedError("items (array form)")
            if key == "pattern":
                _regex(v)  # a bad regex fails now, not on some later instance
            if key == "$ref":
                self.ref(v)  # and so does a pointer that does not resolve
            for sub in [v] if key in _ONE else v if key in _LIST else v.values() if key in _MAP else ():
                self.scan(sub)

    def ref(self, pointer: str):
        if pointer not in self.refs:
            if pointer != "#" and (not pointer.startswith("#/") or "%" in pointer):
                raise NotImplementedError(f"$ref {pointer}")
            target = self.schema
            for part in pointer[2:].split("/") if pointer != "#" else ():
                part = part.replace("~1", "/").replace("~0", "~")
                target = target[int(part)] if isinstance(target, list) else target[part]
            self.refs[pointer] = target
        return self.refs[pointer]


_roots: dict[int, _Root] = {}  # id(schema) -> _Root; a _Root holds its schema, so the id stays unique


def is_valid(instance, schema: dict) -> bool:
    """True iff ``instance`` is valid against the root ``schema`` (exactly as jsonschema decides)."""
    r = _roots.get(id(schema))
    if r is None or r.schema is not schema:
        if len(_roots) >= 64:
            _roots.clear()
        r = _roots[id(schema)] = _Root(schema)
    return _valid(instance, schema, r)
