"""Careful YAML in and deterministic YAML out.

Loading keeps the line and column of every key (ruamel.yaml's round-trip loader) so that schema
errors can point at ``file:line:col``; the data itself is handed on as plain dicts and lists.
Dumping always produces the same bytes for the same data: insertion order, block style, ``null``
spelled out (a bare ``key:`` is easy to misread), multi-line strings as literal blocks.
"""

from __future__ import annotations

import math
import re
from functools import lru_cache
import os
from typing import Any

from ruamel.yaml import YAML, YAMLError
from ruamel.yaml.comments import CommentedMap, CommentedSeq

from . import cache
from .data import read_bytes
from .errors import InputError

Position = tuple[int, int]


class Document:
    """A loaded YAML file: plain data, plus the 1-based position of each dotted key path.

    Positions are found only when an error needs one: the data comes from libyaml (fast), the
    positions from ruamel's pure-Python round-trip parser (slow), run on first use of ``positions``.
    """

    __slots__ = ("data", "source", "_text", "_positions")

    def __init__(self, data: Any, source: str, positions: dict[str, Position] | None = None, *, text: str | None = None):
        self.data = data
        self.source = source
        self._text = text
        self._positions = positions

    @property
    def positions(self) -> dict[str, Position]:
        if self._positions is None:
            self._positions = {}
            if self._text is not None:
                _plain(_round_trip().load(self._text), "", self._positions)
        return self._positions

    def where(self, path: str) -> str:
        """``file:line:col`` of a dotted path, falling back to its nearest located ancestor."""
        probe = path
        while probe:
            if probe in self.positions:
                line, col = self.positions[probe]
                return f"{self.source}:{line}:{col}"
            probe = probe.rsplit(".", 1)[0] if "." in probe else ""
        return self.source


def _round_trip():
    yaml = YAML(typ="rt")
    yaml.allow_duplicate_keys = False
    return yaml


@lru_cache(maxsize=1)
def _fast():
    # libyaml through ruamel.yaml.clib when installed; the pure-Python safe loader otherwise
    yaml = YAML(typ="safe", pure=False)
    yaml.allow_duplicate_keys = False
    return yaml


def _plain(node: Any, path: str, positions: dict[str, Position]) -> Any:
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
    return _scalar_value(node)


def _scalar_value(node: Any) -> Any:
    if node is None or isinstance(node, bool):
        return node
    if isinstance(node, (int, float)):
        # ruamel's ScalarFloat/ScalarInt subclass the builtins; normalise for JSON Schema and dumps
        return int(node) if isinstance(node, int) else float(node)
    return str(node)


def _plain_safe(node: Any) -> Any:
    """The safe loader's result in the same plain shape the round-trip path gives."""
    if isinstance(node, dict):
        return {(str(k) if not isinstance(k, (int, float, bool)) else k): _plain_safe(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_plain_safe(v) for v in node]
    return _scalar_value(node)


def _syntax_error(exc: Exception, text: str, source: str) -> InputError:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark is not None else source
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    hint = None
    if "\t" in text and "tab" in str(exc).lower():
        hint = "YAML indentation must use spaces, not tabs"
    elif "duplicate" in str(exc).lower():
        hint = "each key may appear only once in a mapping"
    return InputError(f"{where}: invalid YAML: {problem}", hint=hint)


def load_data(text: str, source: str) -> Any:
    """The plain data of YAML text that llmdctl itself wrote (an EPP config, a JSON argument), from
    the content-addressed cache when the same text was parsed before: a warm render otherwise needs
    no YAML parser at all (the catalog comes from the cache too), and building one costs more than
    the check that reads the data. A syntax problem is raised as by ``load_text`` and not cached."""
    return cache.cached(cache.key(b"yaml-text", text.encode("utf-8", "surrogatepass")), lambda: load_text(text, source).data)


def load_text(text: str, source: str) -> Document:
    """Parse YAML text; any syntax problem becomes an ``InputError`` naming ``source:line:col``."""
    if "\x00" in text:
        raise InputError(f"{source}: not a YAML text file (it contains NUL bytes)")
    try:
        data = _plain_safe(_fast().load(text))
    except RecursionError:
        raise InputError(f"{source}: YAML nested too deeply to be a values, spec or catalog file") from None
    except (YAMLError, ValueError, TypeError):
        data = None  # the round-trip parser below gives the message (and the position) users know
    else:
        return Document(data, source, text=text)
    try:
        raw = _round_trip().load(text)
    except YAMLError as exc:
        raise _syntax_error(exc, text, source) from None
    except (ValueError, TypeError) as exc:  # e.g. ruamel's complaints about non-printable characters
        raise InputError(f"{source}: invalid YAML: {exc}") from None
    except RecursionError:
        raise InputError(f"{source}: YAML nested too deeply to be a values, spec or catalog file") from None
    positions: dict[str, Position] = {}
    return Document(_plain(raw, "", positions), source, positions)


def load_file(path: str | os.PathLike, *, what: str = "file") -> Document:
    """Read and parse a YAML file, with errors that say which file and why."""
    p = os.fspath(path)
    try:
        raw = read_bytes(p)
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
    return load_text(text, p)


# Plain scalars are emitted only when they cannot be read back as anything but the same string;
# everything else is double-quoted with JSON escapes (a JSON string is a valid YAML one).
# (\Z, not $: "$" also matches before a trailing newline, which would emit "A\n" unquoted)
_PLAIN = re.compile(r"^(?:[A-Za-z_/.]|-[A-Za-z-]|[0-9]+(?:\.[0-9]+)?[A-Za-z])[A-Za-z0-9_./:@+=,-]*\Z")
_NUMBER_LIKE = re.compile(r"^(?:0[xXoObB]|[0-9][0-9._]*[eE][+-]?[0-9]|[0-9]+:[0-9]|\.[0-9])")  # ".0" reads as a float
_RESERVED = re.compile(r"^(?:y|Y|yes|Yes|YES|n|N|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF|null|Null|NULL|~|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))\Z")


def _scalar(value: Any) -> str:
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return ".nan" if math.isnan(value) else (".inf" if value > 0 else "-.inf")
        return repr(value)
    text = str(value)
    if _PLAIN.match(text) and not _RESERVED.match(text) and not _NUMBER_LIKE.match(text) and not text.endswith(":") and ":" not in text[:1]:
        return text
    return _quote(text)


_UNPRINTABLE = re.compile("[\x7f-\x9f\u2028\u2029\ud800-\udfff\ufeff\ufffe\uffff]")


def _quote(text: str) -> str:
    """JSON-style double quotes; characters YAML may not carry raw are escaped as \\uXXXX."""
    return _UNPRINTABLE.sub(lambda m: f"\\u{ord(m.group(0)):04x}", json_string(text))


_JSON_ESCAPE = re.compile(r'[\x00-\x1f\\"]')
_JSON_ESCAPES = {"\\": "\\\\", '"': '\\"', "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def json_string(text: str) -> str:
    """``json.dumps(text, ensure_ascii=False)``, without importing json on every render."""
    return '"' + _JSON_ESCAPE.sub(lambda m: _JSON_ESCAPES.get(m.group(0)) or f"\\u{ord(m.group(0)):04x}", text) + '"'


def _literal(text: str, indent: str) -> str | None:
    """A multi-line string as a literal block, or None when a block cannot hold it exactly."""
    if text.startswith((" ", "\n")) or _UNPRINTABLE.search(text) or any((ord(c) < 32 and c != "\n") or c in "\x85\u2028\u2029" for c in text):
        return None
    body, chomp = (text[:-1], "") if text.endswith("\n") else (text, "-")
    if body.endswith("\n"):
        return None  # trailing blank lines would need the keep indicator; quote instead
    lines = body.split("\n")
    return f"|{chomp}\n" + "\n".join((indent + line) if line else "" for line in lines)


def _emit(value: Any, indent: str, out: list[str]) -> None:
    """Append YAML lines for a mapping or sequence at ``indent``."""
    if isinstance(value, dict):
        for key, item in value.items():
            _emit_entry(f"{indent}{_scalar(key)}:", item, indent, out)
    else:
        for item in value:
            _emit_entry(f"{indent}  -", item, indent + "    ", out, in_list=True)


def _emit_entry(head: str, item: Any, indent: str, out: list[str], in_list: bool = False) -> None:
    child = indent if in_list else indent + "  "
    if isinstance(item, dict) and item:
        if in_list:
            first, *rest = list(item.items())
            sub: list[str] = []
            _emit({first[0]: first[1]}, indent, sub)
            out.append(head + " " + sub[0].lstrip(" "))
            out.extend(sub[1:])
            if rest:
                _emit(dict(rest), indent, out)
        else:
            out.append(head)
            _emit(item, child, out)
    elif isinstance(item, list) and item:
        out.append(head)
        _emit(item, child if in_list else indent, out)
    elif isinstance(item, dict):
        out.append(head + " {}")
    elif isinstance(item, list):
        out.append(head + " []")
    elif isinstance(item, str) and "\n" in item and (block := _literal(item, child)) is not None:
        out.append(head + " " + block)
    else:
        out.append(head + " " + _scalar(item))


def dump(data: Any) -> str:
    """Serialise plain data (dicts, lists, str, int, float, bool, None) to YAML, byte-identical
    for equal inputs: insertion order, block style, ``null`` spelled out, literal blocks for
    multi-line strings."""
    if isinstance(data, (dict, list)):
        if not data:
            return ("{}" if isinstance(data, dict) else "[]") + "\n"
        out: list[str] = []
        _emit(data, "", out)
        return "\n".join(out) + "\n"
    return _scalar(data) + "\n"
