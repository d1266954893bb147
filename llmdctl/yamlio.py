"""Careful YAML in and deterministic YAML out.

Loading keeps the line and column of every key (ruamel.yaml's round-trip loader) so that schema
errors can point at ``file:line:col``; the data itself is handed on as plain dicts and lists.
Dumping always produces the same bytes for the same data: insertion order, block style, ``null``
spelled out (a bare ``key:`` is easy to misread), multi-line strings as literal blocks.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import InputError

Position = tuple[int, int]


@dataclass
class Document:
    """A loaded YAML file: plain data plus the 1-based position of each dotted key path."""

    data: Any
    source: str
    positions: dict[str, Position] = field(default_factory=dict)

    def where(self, path: str) -> str:
        """``file:line:col`` of a dotted path, falling back to its nearest located ancestor."""
        probe = path
        while probe:
            if probe in self.positions:
                line, col = self.positions[probe]
                return f"{self.source}:{line}:{col}"
            probe = probe.rsplit(".", 1)[0] if "." in probe else ""
        return self.source


def _loader():
    from ruamel.yaml import YAML

    yaml = YAML(typ="rt")
    yaml.allow_duplicate_keys = False
    return yaml


def _plain(node: Any, path: str, positions: dict[str, Position]) -> Any:
    from ruamel.yaml.comments import CommentedMap, CommentedSeq

    if isinstance(node, CommentedMap):
        out = {}
        for key, value in node.items():
            sub = f"{path}.{key}" if path else str(key)
            try:
                line, col = node.lc.key(key)
                positions[sub] = (line + 1, col + 1)
            except (KeyError, TypeError, AttributeError):
                pass
            out[str(key) if not isinstance(key, (int, float, bool)) else key] = _plain(value, sub, positions)
        return out
    if isinstance(node, CommentedSeq):
        out_list = []
        for i, value in enumerate(node):
            sub = f"{path}[{i}]"
            try:
                line, col = node.lc.item(i)
                positions[sub] = (line + 1, col + 1)
            except (KeyError, TypeError, AttributeError, IndexError):
                pass
            out_list.append(_plain(value, sub, positions))
        return out_list
    if node is None or isinstance(node, (bool, int, float)):
        # ruamel's ScalarFloat/ScalarInt subclass the builtins; normalise for JSON Schema and dumps
        if isinstance(node, bool) or node is None:
            return node
        return int(node) if isinstance(node, int) else float(node)
    return str(node)


def load_text(text: str, source: str) -> Document:
    """Parse YAML text; any syntax problem becomes an ``InputError`` naming ``source:line:col``."""
    from ruamel.yaml import YAMLError

    if "\x00" in text:
        raise InputError(f"{source}: not a YAML text file (it contains NUL bytes)")
    try:
        raw = _loader().load(text)
    except YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark is not None else source
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        hint = None
        if "\t" in text and "tab" in str(exc).lower():
            hint = "YAML indentation must use spaces, not tabs"
        elif "duplicate" in str(exc).lower():
            hint = "each key may appear only once in a mapping"
        raise InputError(f"{where}: invalid YAML: {problem}", hint=hint) from None
    except (ValueError, TypeError) as exc:  # e.g. ruamel's complaints about non-printable characters
        raise InputError(f"{source}: invalid YAML: {exc}") from None
    positions: dict[str, Position] = {}
    return Document(_plain(raw, "", positions), source, positions)


def load_file(path: Path | str, *, what: str = "file") -> Document:
    """Read and parse a YAML file, with errors that say which file and why."""
    p = Path(path)
    try:
        raw = p.read_bytes()
    except FileNotFoundError:
        raise InputError(f"{what} not found: {p}") from None
    except IsADirectoryError:
        raise InputError(f"{what} is a directory, not a file: {p}") from None
    except OSError as exc:
        raise InputError(f"cannot read {what} {p}: {exc.strerror}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InputError(f"{p}: not a UTF-8 text file") from None
    return load_text(text, str(p))


def _dumper():
    from ruamel.yaml import YAML

    yaml = YAML(typ="rt")
    yaml.default_flow_style = False
    yaml.width = 4096  # never fold long strings such as JSON-valued vLLM args
    yaml.indent(mapping=2, sequence=4, offset=2)
    yaml.representer.add_representer(
        type(None), lambda r, _: r.represent_scalar("tag:yaml.org,2002:null", "null")
    )
    return yaml


def _styled(value: Any) -> Any:
    from ruamel.yaml.scalarstring import LiteralScalarString

    if isinstance(value, dict):
        return {k: _styled(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_styled(v) for v in value]
    if isinstance(value, str) and "\n" in value:
        return LiteralScalarString(value)
    return value


def dump(data: Any) -> str:
    """Serialise plain data to YAML, byte-identical for equal inputs."""
    buf = io.StringIO()
    _dumper().dump(_styled(data), buf)
    return buf.getvalue()


def dump_all(docs: list[Any]) -> str:
    return "---\n".join(dump(d) for d in docs)
