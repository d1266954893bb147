"""llmdctl.base.fastschema must give exactly jsonschema's valid/invalid answer for every schema in schemas/.

Hand-written cases pin each keyword family; the rest compares the two validators on the catalog
files, the values blocks inside them, rendered values from the render-matrix snapshots, and
hypothesis mutations and random JSON built from those.
"""

from __future__ import annotations

import copy
import json
import math
import re
from functools import lru_cache
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft7Validator, Draft202012Validator
from ruamel.yaml import YAML

from llmdctl.base.fastschema import is_valid

ROOT = Path(__file__).resolve().parent.parent
# schemas/epp, vllm and sidecar hold what the pinned programs accept (tables read from them, checked
# by llmdctl's own code in compose/eppconfig.py and engineflags.py), not JSON Schemas
PROGRAM_TABLES = ("epp", "vllm", "sidecar")
SCHEMA_FILES = sorted(p for p in (ROOT / "schemas").glob("**/*.json") if p.relative_to(ROOT / "schemas").parts[0] not in PROGRAM_TABLES)
SCHEMA_IDS = [str(p.relative_to(ROOT / "schemas")) for p in SCHEMA_FILES]
CATALOG_FILES = sorted(p for d in ("profiles", "gateways", "guides") for p in (ROOT / d).glob("*.yaml"))
SNAPSHOT = ROOT / "tests" / "__snapshots__" / "test_render_matrix.ambr"
RELEASES = ("infra", "gaie", "ms")
VALUES_KEYS = ("values", "disaggregatedValues", "aggregatedValues")
D7 = "http://json-schema.org/draft-07/schema#"
D2020 = "https://json-schema.org/draft/2020-12/schema"
# ~100 examples per schema, so a few hundred per family (catalog, infra, gaie, ms); no example database
FAST = settings(max_examples=100, deadline=None, database=None, suppress_health_check=list(HealthCheck))


def reference(schema):
    """The real jsonschema's answer, picking the validator class as llmdctl does."""
    draft7 = isinstance(schema, dict) and "draft-07" in schema.get("$schema", "")
    return (Draft7Validator if draft7 else Draft202012Validator)(schema)


def agree(instance, schema) -> bool:
    """Assert both validators give the same answer; return it."""
    expected = reference(schema).is_valid(instance)
    assert is_valid(instance, schema) is expected, f"jsonschema says {expected} for {instance!r}"
    return expected


# --------------------------------------------------------------------------------------------
# hand-written cases, one table per keyword family: (schema, instance, expected)

NUMBERS = [
    ({"type": "integer"}, 3, True), ({"type": "integer"}, -3, True), ({"type": "integer"}, 3.0, True),
    ({"type": "integer"}, 3.5, False), ({"type": "integer"}, True, False), ({"type": "integer"}, "3", False),
    ({"type": "integer"}, math.inf, False), ({"type": "integer"}, math.nan, False),
    ({"type": "number"}, 3, True), ({"type": "number"}, 3.5, True), ({"type": "number"}, False, False),
    ({"type": "number"}, None, False), ({"type": "number"}, "1", False),
    ({"minimum": 1}, 1, True), ({"minimum": 1}, 0.999, False), ({"minimum": 1}, "0", True),
    ({"minimum": 1}, False, True),  # bools are not numbers, so numeric keywords ignore them
    ({"minimum": 0}, math.nan, True), ({"maximum": 0}, math.nan, True),  # nan < 0 and nan > 0 are both false
    ({"maximum": 65535}, 65535, True), ({"maximum": 65535}, 65536, False), ({"maximum": 1}, 1.0000001, False),
    ({"exclusiveMinimum": 0}, 0, False), ({"exclusiveMinimum": 0}, 0.0, False), ({"exclusiveMinimum": 0}, 1e-9, True),
    ({"exclusiveMaximum": 1}, 1, False), ({"exclusiveMaximum": 1}, 0.5, True),
    ({"type": "integer", "minimum": 1}, 10**30, True), ({"maximum": 2**53}, 2**53 + 1, False),
]
TYPES = [
    ({"type": "string"}, "", True), ({"type": "string"}, 1, False), ({"type": "string"}, None, False),
    ({"type": "boolean"}, True, True), ({"type": "boolean"}, 1, False), ({"type": "boolean"}, 0, False),
    ({"type": "null"}, None, True), ({"type": "null"}, False, False), ({"type": "null"}, 0, False),
    ({"type": "object"}, {}, True), ({"type": "object"}, [], False), ({"type": "array"}, [], True),
    ({"type": "array"}, {}, False), ({"type": "array"}, "ab", False),
    ({"type": ["string", "null"]}, None, True), ({"type": ["string", "null"]}, "x", True),
    ({"type": ["string", "null"]}, 0, False), ({"type": ["string", "integer"]}, 2.0, True),
    ({"type": ["object", "null"]}, [], False), ({"type": []}, None, False),
]
STRINGS = [
    ({"minLength": 1}, "", False), ({"minLength": 1}, "a", True), ({"minLength": 2}, "\N{GRINNING FACE}", False),
    ({"maxLength": 1}, "\N{GRINNING FACE}", True), ({"maxLength": 1}, "ab", False), ({"minLength": 5}, [], True),
    ({"pattern": "b"}, "abc", True),  # search, not match
    ({"pattern": "^b"}, "abc", False), ({"pattern": "^https://"}, "https://x", True), ({"pattern": "^https://"}, 7, True),
    ({"pattern": "^[0-9]+(\\.[0-9]+)?(Ki|Mi|Gi|Ti)?$"}, "1.5Gi", True),
    ({"pattern": "^[0-9]+(\\.[0-9]+)?(Ki|Mi|Gi|Ti)?$"}, "1.5G", False),
    ({"pattern": "^a$"}, "a\n", True),  # "$" also matches before a final newline, as in re.search
    ({"pattern": "^[^=]+="}, "a=b", True), ({"pattern": "^[^=]+="}, "=b", False),
]
OBJECTS = [
    ({"properties": {"a": {"type": "string"}}}, {"a": "x"}, True),
    ({"properties": {"a": {"type": "string"}}}, {"a": 1}, False),
    ({"properties": {"a": {"type": "string"}}}, {"b": 1}, True),
    ({"properties": {"a": {"type": "string"}}}, "not an object", True),
    ({"properties": {"a": {"properties": {"b": {"const": 1}}}}}, {"a": {"b": 2}}, False),
    ({"properties": {"1": {"type": "string"}}}, {1: 5}, True),  # an int key is not the property "1"
    ({"additionalProperties": False, "properties": {"a": {}}}, {"a": 1}, True),
    ({"additionalProperties": False, "properties": {"a": {}}}, {"a": 1, "b": 2}, False),
    ({"additionalProperties": False}, {}, True), ({"additionalProperties": False}, [1], True),
    ({"additionalProperties": True}, {"z": 1}, True),
    ({"additionalProperties": {"type": "string"}, "properties": {"n": {"type": "integer"}}}, {"n": 1, "s": "x"}, True),
    ({"additionalProperties": {"type": "string"}, "properties": {"n": {"type": "integer"}}}, {"n": 1, "s": 2}, False),
    ({"additionalProperties": {"type": ["string", "null"]}}, {"a": None, "b": "x"}, True),
    ({"patternProperties": {"^x-": {"type": "integer"}}}, {"x-a": 1, "y": "s"}, True),
    ({"patternProperties": {"^x-": {"type": "integer"}}}, {"x-a": "s"}, False),
    ({"patternProperties": {"^x-": {}}, "additionalProperties": False}, {"x-a": 1}, True),
    ({"patternProperties": {"^x-": {}}, "additionalProperties": False}, {"y": 1}, False),
    ({"patternProperties": {"^x-": {}, "^y-": {}}, "additionalProperties": False}, {"y-1": 1, "x-2": 2}, True),
    ({"required": ["a", "b"]}, {"a": 1, "b": None}, True), ({"required": ["a", "b"]}, {"a": 1}, False),
    ({"required": ["a"]}, ["a"], True), ({"required": []}, {}, True),
    ({"minProperties": 1}, {}, False), ({"minProperties": 1}, {"a": 1}, True), ({"minProperties": 1}, [], True),
]
ARRAYS = [
    ({"items": {"type": "string"}}, ["a", "b"], True), ({"items": {"type": "string"}}, ["a", 1], False),
    ({"items": {"type": "string"}}, [], True), ({"items": {"type": "string"}}, {"a": 1}, True),
    ({"items": False}, [], True), ({"items": False}, [1], False),
    ({"minItems": 1}, [], False), ({"minItems": 1}, [None], True), ({"minItems": 1}, "", True),
    ({"maxItems": 1}, [1, 2], False), ({"maxItems": 1}, [1], True),
]
EQUALITY = [
    ({"enum": [1, "a"]}, 1, True), ({"enum": [1, "a"]}, 1.0, True), ({"enum": [1, "a"]}, True, False),
    ({"enum": [0]}, False, False), ({"enum": [True]}, 1, False), ({"enum": [False, None]}, None, True),
    ({"enum": ["rdma", "tcp"]}, "tcp", True), ({"enum": ["rdma", "tcp"]}, "TCP", False),
    ({"enum": ["1"]}, 1, False), ({"enum": [[1, 2]]}, [1, 2], True), ({"enum": [[1, 2]]}, [1.0, 2], True),
    ({"enum": [[1]]}, [True], False), ({"enum": [{"a": 1}]}, {"a": 1.0}, True), ({"enum": [{"a": 1}]}, {"a": True}, False),
    ({"enum": [{"a": 1}]}, {"a": 1, "b": 2}, False), ({"enum": [[]]}, {}, False),
    ({"const": "llmdctl/v1"}, "llmdctl/v1", True), ({"const": "llmdctl/v1"}, "llmdctl/v2", False),
    ({"const": 1}, True, False), ({"const": False}, 0, False), ({"const": False}, False, True),
    ({"const": None}, None, True), ({"const": None}, [], False), ({"const": 2}, 2.0, True),
]
COMBINATORS = [
    ({"oneOf": [{"type": "string"}, {"type": "array"}]}, "x", True),
    ({"oneOf": [{"type": "string"}, {"type": "array"}]}, 1, False),
    ({"oneOf": [{"type": "integer"}, {"type": "number"}]}, 1, False),  # both match: not exactly one
    ({"oneOf": [{"type": "integer"}, {"type": "number"}]}, 1.5, True),
    ({"anyOf": [{"required": ["a"]}, {"required": ["b"]}]}, {"b": 1}, True),
    ({"anyOf": [{"required": ["a"]}, {"required": ["b"]}]}, {"c": 1}, False),
    ({"allOf": [{"minimum": 1}, {"maximum": 3}]}, 2, True), ({"allOf": [{"minimum": 1}, {"maximum": 3}]}, 4, False),
    ({"not": {"required": ["gateway"]}}, {"hardware": {}}, True), ({"not": {"required": ["gateway"]}}, {"gateway": 1}, False),
    ({"if": {"properties": {"kind": {"const": "gateway"}}}, "then": {"required": ["gateway"]}}, {"kind": "gateway"}, False),
    ({"if": {"properties": {"kind": {"const": "gateway"}}}, "then": {"required": ["gateway"]}}, {"kind": "guide"}, True),
    ({"if": {"properties": {"kind": {"const": "gateway"}}}, "then": {"required": ["gateway"]}}, {}, False),  # if holds vacuously
    ({"if": {"type": "string"}, "then": {"minLength": 2}, "else": {"minimum": 5}}, "a", False),
    ({"if": {"type": "string"}, "then": {"minLength": 2}, "else": {"minimum": 5}}, 6, True),
    ({"if": {"type": "string"}, "then": {"minLength": 2}, "else": {"minimum": 5}}, 4, False),
    ({"if": {"type": "string"}, "else": {"minimum": 5}}, "a", True), ({"then": {"minimum": 5}}, 1, True),
]
REFS = [
    ({"$defs": {"f": {"type": "string"}}, "properties": {"a": {"$ref": "#/$defs/f"}}}, {"a": "x"}, True),
    ({"$defs": {"f": {"type": "string"}}, "properties": {"a": {"$ref": "#/$defs/f"}}}, {"a": 1}, False),
    ({"definitions": {"f": {"type": "string"}}, "items": {"$ref": "#/definitions/f"}}, ["x", 1], False),
    ({"$defs": {"a/b": {"type": "null"}}, "$ref": "#/$defs/a~1b"}, None, True),
    ({"$defs": {"a/b": {"type": "null"}}, "$ref": "#/$defs/a~1b"}, 0, False),
    ({"type": ["object", "integer"], "additionalProperties": {"$ref": "#"}}, {"a": {"b": 1}}, True),  # recursive
    ({"type": ["object", "integer"], "additionalProperties": {"$ref": "#"}}, {"a": {"b": "x"}}, False),
    # 2020-12 applies the siblings of $ref; Draft 7 ignores them
    ({"$schema": D2020, "$defs": {"s": {"type": "string"}}, "properties": {"a": {"$ref": "#/$defs/s", "minLength": 3}}}, {"a": "x"}, False),
    ({"$schema": D7, "$defs": {"s": {"type": "string"}}, "properties": {"a": {"$ref": "#/$defs/s", "minLength": 3}}}, {"a": "x"}, True),
    ({"$schema": D7, "$defs": {"s": {"type": "string"}}, "properties": {"a": {"$ref": "#/$defs/s", "minLength": 3}}}, {"a": 1}, False),
]
BOOLEANS_AND_ANNOTATIONS = [
    (True, 1, True), (False, None, False), ({}, {"anything": [1]}, True),
    ({"properties": {"a": False}}, {"a": 1}, False), ({"properties": {"a": False}}, {"b": 1}, True),
    ({"properties": {"a": True}}, {"a": 1}, True), ({"anyOf": [False, True]}, 0, True), ({"not": True}, 0, False),
    ({"$schema": D2020, "$id": "https://x.dev/s.json", "title": "t", "description": "d", "default": 1, "examples": [2],
      "$comment": "c", "deprecated": True, "format": "email", "type": "string"}, "not-an-email", True),
    ({"format": "ipv4"}, "999.1", True), ({"title": "t", "type": "string"}, 1, False),
]
CASES = {
    "numbers": NUMBERS, "types": TYPES, "strings": STRINGS, "objects": OBJECTS, "arrays": ARRAYS,
    "equality": EQUALITY, "combinators": COMBINATORS, "refs": REFS, "booleans-annotations": BOOLEANS_AND_ANNOTATIONS,
}


@pytest.mark.parametrize("family", list(CASES))
def test_keyword_family(family):
    for schema, instance, expected in CASES[family]:
        assert is_valid(instance, schema) is expected, (schema, instance)
        # the expectations are jsonschema's answers, so the table itself is checked too
        assert reference(schema).is_valid(instance) is expected, ("jsonschema disagrees with the table", schema, instance)


@pytest.mark.parametrize("schema", [
    {"uniqueItems": True},
    {"properties": {"a": {"propertyNames": {"minLength": 1}}}},  # in a branch {} never reaches
    {"$defs": {"unused": {"dependentRequired": {}}}},
    {"if": {"type": "string"}, "then": {"contains": {}}},
    {"then": {"multipleOf": 2}},
    {"items": [{"type": "string"}]},
    {"type": "float"},
    {"$ref": "other.json#/x"},
    {"properties": {"a": {"$id": "https://elsewhere.dev/a.json"}}},
    {"$schema": D7, "additionalItems": False},
], ids=lambda s: json.dumps(s)[:40])
def test_unimplemented_keyword_raises(schema):
    with pytest.raises(NotImplementedError):
        is_valid({}, schema)
    with pytest.raises(NotImplementedError):  # and again: a failed schema is not cached as usable
        is_valid({}, schema)


def test_unimplemented_keyword_is_named():
    with pytest.raises(NotImplementedError, match="^uniqueItems$"):
        is_valid([], {"type": "array", "uniqueItems": True})


# --------------------------------------------------------------------------------------------
# the corpus: real documents from the catalog and the render snapshots


@lru_cache(maxsize=None)
def schemas() -> dict[str, dict]:
    return {name: json.loads(p.read_text(encoding="utf-8")) for name, p in zip(SCHEMA_IDS, SCHEMA_FILES)}


def release_of(schema_id: str) -> str | None:
    """'values/ms-v0.4.9.schema.json' -> 'ms'; None for the catalog schemas."""
    m = re.match(r"values/(infra|gaie|ms)-", schema_id)
    return m.group(1) if m else None


@lru_cache(maxsize=None)
def catalog_docs() -> tuple:
    yaml = YAML(typ="safe")
    return tuple(yaml.load(p.read_text(encoding="utf-8")) for p in CATALOG_FILES)


@lru_cache(maxsize=None)
def values_blocks() -> dict[str, tuple]:
    """{release: (values dict, ...)} from the values/disaggregatedValues/aggregatedValues blocks of the catalog."""
    out = {r: [] for r in RELEASES}
    for doc in catalog_docs():
        for key in VALUES_KEYS:
            block = doc.get(key) if isinstance(doc, dict) else None
            for release, values in (block or {}).items():
                if release in out and isinstance(values, dict):
                    out[release].append(values)
    return {r: tuple(v) for r, v in out.items()}


@lru_cache(maxsize=None)
def rendered_values() -> dict[str, tuple]:
    """{release: (values dict, ...)} from the '<release>.values.yaml' files in the render snapshots."""
    out = {r: [] for r in RELEASES}
    if SNAPSHOT.exists():
        yaml, lines = YAML(typ="safe"), SNAPSHOT.read_text(encoding="utf-8").splitlines()
        start = release = None
        for i, line in enumerate(lines):
            m = re.match(r"^    '(infra|gaie|ms)\.values\.yaml': '''$", line)
            if m:
                start, release = i + 1, m.group(1)
            elif start is not None and line == "    ''',":
                out[release].append(yaml.load("\n".join(x[6:] for x in lines[start:i])))
                start = None
    return {r: tuple(v) for r, v in out.items()}


def corpus_for(schema_id: str) -> list:
    """Every catalog document, plus the values of the schema's release when it is a values schema."""
    release = release_of(schema_id)
    extra = list(values_blocks()[release]) + list(rendered_values()[release]) if release else []
    return list(catalog_docs()) + extra


def test_corpus_is_present():
    assert len(SCHEMA_FILES) >= 10 and len(CATALOG_FILES) >= 10
    assert values_blocks()["ms"], "no values blocks found in the catalog"
    assert sum(map(len, rendered_values().values())) or not SNAPSHOT.exists(), "snapshot values not parsed"


@pytest.mark.parametrize("schema_id", SCHEMA_IDS)
def test_corpus_agrees(schema_id):
    schema = schemas()[schema_id]
    answers = [agree(doc, schema) for doc in corpus_for(schema_id)]
    assert False in answers  # every schema rejects most catalog files, so the corpus has both outcomes


def test_corpus_has_valid_documents():
    """Both answers occur, for catalog and values schemas alike (else the agreement above proves little)."""
    valid = {sid: sum(map(reference(schemas()[sid]).is_valid, corpus_for(sid))) for sid in SCHEMA_IDS}
    assert valid["layer.schema.json"] >= 5, valid
    assert sum(n for sid, n in valid.items() if release_of(sid)) >= 10, valid


# --------------------------------------------------------------------------------------------
# hypothesis: mutated corpus documents and random JSON

def _scalars(node, out: set):
    if isinstance(node, dict):
        for k, v in node.items():
            _scalars(k, out)
            _scalars(v, out)
    elif isinstance(node, list):
        for v in node:
            _scalars(v, out)
    elif node is None or isinstance(node, (bool, int, float, str)):
        out.add((type(node), node))


GENERIC = [None, True, False, 0, 1, -1, 0.5, 1.0, math.inf, math.nan, "", "x", [], ["x"], {}, {"x": 1}]


def edge_values(*nodes) -> list:
    """Values at the edges of schemas: every scalar in ``nodes`` (enum/const values, bounds, property names,
    catalog values), numeric neighbours of the numbers among them, and a few generic values of each type."""
    found: set = set()
    for node in nodes:
        _scalars(node, found)
    numbers = [v for t, v in found if t in (int, float)]
    found |= {(type(x), x) for n in numbers for x in (n - 1, n + 1, float(n), n + 0.5)}
    return sorted((v for _, v in found), key=repr) + GENERIC


@lru_cache(maxsize=None)
def interesting_scalars() -> tuple:
    return tuple(edge_values(*schemas().values(), *catalog_docs()))


JSON_SCALARS = (st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12))
KEYS = st.text(max_size=10) | st.integers(-2, 2)  # YAML allows non-string keys


@lru_cache(maxsize=None)
def json_values():
    leaves = JSON_SCALARS | st.builds(list) | st.builds(dict) | st.sampled_from(interesting_scalars())
    return st.recursive(leaves, lambda kids: st.lists(kids, max_size=4) | st.dictionaries(KEYS, kids, max_size=4),
                        max_leaves=12)


def property_names(schema) -> list:
    """Every name under a "properties" keyword anywhere in the schema."""
    if isinstance(schema, list):
        return [n for x in schema for n in property_names(x)]
    if not isinstance(schema, dict):
        return []
    return sorted(set(schema.get("properties", {})) | {n for v in schema.values() for n in property_names(v)})


@st.composite
def mutated(draw, seeds, names, edges):
    """A corpus document with 1-3 random edits: at a random depth, delete a key or an item, set one to another
    value (generic, an edge value of the schema, or random JSON), or add a key (one of the schema's property
    names or an unknown one) or an item; or copy a top-level entry (preferably a new key) from another document."""
    doc = copy.deepcopy(draw(st.sampled_from(seeds)))
    values = st.sampled_from(GENERIC) | st.sampled_from(edges) | json_values()
    for _ in range(draw(st.integers(1, 3))):
        if not isinstance(doc, (dict, list)):
            return copy.deepcopy(draw(values))
        other = draw(st.sampled_from(seeds))
        if isinstance(doc, dict) and isinstance(other, dict) and other and draw(st.integers(0, 2)) == 0:
            key = draw(st.sampled_from([k for k in other if k not in doc] or list(other)))  # preferably a new key
            doc[key] = copy.deepcopy(other[key])
            continue
        node = doc
        while draw(st.booleans()):  # walk down, so shallow nodes (where most keywords sit) are picked more often
            kids = [v for v in (node.values() if isinstance(node, dict) else node) if isinstance(v, (dict, list))]
            if not kids:
                break
            node = draw(st.sampled_from(kids))
        keys = list(node) if isinstance(node, dict) else list(range(len(node)))
        op = draw(st.sampled_from(["delete", "set", "add"] if keys else ["add"]))
        value = copy.deepcopy(draw(values))  # a later edit may change it: keep the sampled originals intact
        if op == "add" and isinstance(node, dict):
            node[draw(st.sampled_from(names) | KEYS)] = value
        elif op == "add":
            node.append(value)
        elif op == "delete":
            del node[draw(st.sampled_from(keys))]
        else:
            node[draw(st.sampled_from(keys))] = value
    return doc


def seeds_for(schema_id: str) -> list:
    """Corpus documents the schema accepts (mutating them crosses the boundary both ways); else all of them."""
    schema = schemas()[schema_id]
    docs = corpus_for(schema_id)
    return [d for d in docs if reference(schema).is_valid(d)] or docs


@pytest.mark.parametrize("schema_id", [sid for sid in SCHEMA_IDS if not release_of(sid)])
def test_single_edits_agree(schema_id):
    """Deterministic neighbours of each accepted catalog document: each top-level key deleted, and each
    top-level entry of every other catalog document (that it lacks) added."""
    schema, validator = schemas()[schema_id], reference(schemas()[schema_id])
    seeds, outcomes = seeds_for(schema_id), []
    for doc in (d for d in seeds if isinstance(d, dict)):
        edits = [{k: v for k, v in doc.items() if k != key} for key in doc]
        edits += [{**doc, k: v} for other in corpus_for(schema_id) if isinstance(other, dict)
                  for k, v in other.items() if k not in doc]
        for edit in edits:
            outcomes.append(validator.is_valid(edit))
            assert is_valid(edit, schema) is outcomes[-1], edit
    assert False in outcomes  # some edits do cross the boundary


@pytest.mark.parametrize("schema_id", SCHEMA_IDS)
def test_mutations_agree(schema_id):
    schema, validator = schemas()[schema_id], reference(schemas()[schema_id])

    @FAST
    @given(mutated(seeds_for(schema_id), property_names(schema) or ["x"], edge_values(schema)))
    def check(doc):
        assert is_valid(doc, schema) is validator.is_valid(doc), doc

    check()


def subschemas(schema) -> list:
    """Every schema reachable through properties/additionalProperties/items/combinators, as a stand-alone root
    (keeping the root's $schema and $defs so that its $refs still resolve)."""
    found, stack = [], [schema]
    while stack:
        s = stack.pop()
        if not isinstance(s, dict):
            continue
        found.append(s)
        stack += list(s.get("properties", {}).values()) + list(s.get("$defs", {}).values())
        stack += [s[k] for k in ("additionalProperties", "items", "not", "if", "then", "else") if k in s]
        stack += [x for k in ("allOf", "anyOf", "oneOf") for x in s.get(k, [])]
    keep = {k: schema[k] for k in ("$schema", "$defs", "definitions") if k in schema}
    return [{**keep, "allOf": [s]} for s in found[1:]]  # found[0] is the root itself


@pytest.mark.parametrize("schema_id", SCHEMA_IDS)
def test_edge_values_agree_on_every_subschema(schema_id):
    """Every edge value of the schema against every one of its subschemas, exhaustively."""
    values, outcomes = edge_values(schemas()[schema_id]), []
    for sub in subschemas(schemas()[schema_id]):
        validator = reference(sub)
        for value in values:
            outcomes.append(validator.is_valid(value))
            assert is_valid(value, sub) is outcomes[-1], (sub, value)
    assert outcomes.count(True) >= 10 and outcomes.count(False) >= 10


@pytest.mark.parametrize("schema_id", SCHEMA_IDS)
def test_random_json_agrees(schema_id):
    """Random JSON against the whole schema and against each of its subschemas (where random values often fit)."""
    roots = [schemas()[schema_id]] + subschemas(schemas()[schema_id])
    validators = [reference(s) for s in roots]

    @FAST
    @given(st.integers(0, len(roots) - 1), st.sampled_from(edge_values(roots[0])) | JSON_SCALARS | json_values())
    def check(i, value):
        assert is_valid(value, roots[i]) is validators[i].is_valid(value), (roots[i], value)

    check()
