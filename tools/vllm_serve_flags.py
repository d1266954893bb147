"""Write the table of what `vllm serve` accepts, read from an installed vLLM's own parser.

Run it with the Python of a scratch virtualenv that has the pinned vLLM (never in CI, never with
llmdctl's own environment):

    python3 -m venv /tmp/vllm-0.26.0 && /tmp/vllm-0.26.0/bin/pip install vllm==0.26.0
    /tmp/vllm-0.26.0/bin/python tools/vllm_serve_flags.py schemas/vllm/vllm-0.26.0.serve-flags.json

then point the release's `engine.vllmFlags` in guides/versions.yaml at the file. No GPU, no model and
no network are needed: vLLM builds its parser once it is told its platform (CUDA, set by hand), and
the compiled kernel modules that link the GPU driver's libcuda.so.1 are replaced by empty modules
when, and only when, that library is missing (they register kernels; parsing never calls them).
How the table is used and what it does not cover: docs/engine-flags.md.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime
import importlib.abc
import importlib.machinery
import importlib.metadata
import io
import json
import os
import sys
import types
import typing

UNKNOWN_KEY = "llmdctl_unknown_key"
os.environ.setdefault("VLLM_LOGGING_LEVEL", "ERROR")
os.environ.setdefault("VLLM_NO_USAGE_STATS", "1")
os.environ["HF_ENDPOINT"] = "http://127.0.0.1:9"  # nothing is downloaded: any Hub call fails at once


class _EmptyWithoutDriver(importlib.abc.Loader):
    """Loads a vLLM extension module, or an empty one when it fails only for lack of libcuda."""

    def __init__(self, real):
        self.real, self.empty = real, False

    def create_module(self, spec):
        try:
            return self.real.create_module(spec)
        except ImportError as exc:
            if "libcuda" not in str(exc):
                raise
            self.empty = True
            return types.ModuleType(spec.name)

    def exec_module(self, module):
        if not self.empty:
            self.real.exec_module(module)


class _NoDriverFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path, target=None):
        if not fullname.startswith("vllm.") or path is None:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is not None and isinstance(spec.loader, importlib.machinery.ExtensionFileLoader):
            spec.loader = _EmptyWithoutDriver(spec.loader)
        return spec


def build_parser():
    sys.meta_path.insert(0, _NoDriverFinder())
    import vllm.platforms as platforms
    from vllm.platforms.cuda import CudaPlatform

    platforms._current_platform = CudaPlatform()
    from vllm.entrypoints.openai.cli_args import make_arg_parser

    try:
        from vllm.utils.argparse_utils import FlexibleArgumentParser
    except ImportError:  # older vLLM
        from vllm.utils import FlexibleArgumentParser
    return make_arg_parser(FlexibleArgumentParser(prog="vllm serve"))


def _chain(fn):
    """The type callable and the callables it wraps (optional_type, parse_type closures)."""
    seen = []
    while fn is not None and fn not in seen:
        seen.append(fn)
        inner = [c.cell_contents for c in getattr(fn, "__closure__", None) or () if _cell_callable(c)]
        fn = inner[0] if inner else None
    return seen


def _cell_callable(cell) -> bool:
    try:
        v = cell.cell_contents
    except ValueError:
        return False
    return (callable(v) and not isinstance(v, type)) or v in (int, float, str)


def _config_class(fn):
    for f in _chain(fn):
        for v in getattr(f, "__defaults__", None) or ():
            if isinstance(v, type) and dataclasses.is_dataclass(v):
                return v
    return None


def _kind(action) -> str | None:
    if isinstance(action, (argparse.BooleanOptionalAction, argparse._StoreTrueAction, argparse._StoreFalseAction)):
        return None
    names = [getattr(f, "__qualname__", getattr(f, "__name__", "")) for f in _chain(action.type)]
    if "int" in names:
        return "int"
    if "float" in names:
        return "float"
    if _config_class(action.type) or any(n in ("loads", "union_dict_and_str") for n in names):
        return "json"
    return "str"


def _refuses_unknown_key(parser, option: str) -> bool:
    with contextlib.redirect_stderr(io.StringIO()):
        try:
            parser.parse_args(["m", option, json.dumps({UNKNOWN_KEY: 1})])
        except SystemExit:
            return True
    return False


def _type_text(t) -> str:
    """A field's annotation as vLLM's source spells it: ``Literal['a', 'b'] | None``, ``dict[str, Any]``."""
    if t is type(None):
        return "None"
    if t is typing.Any:
        return "Any"
    if isinstance(t, str):
        return t
    origin, args = typing.get_origin(t), typing.get_args(t)
    if origin in (typing.Union, types.UnionType):
        return " | ".join(_type_text(a) for a in args)
    if origin is typing.Literal:
        return "Literal[" + ", ".join(repr(a) for a in args) + "]"
    if origin is typing.Annotated:
        return f"Annotated[{_type_text(args[0])}, {', '.join(repr(m) for m in args[1:])}]"
    if origin is not None:
        name = getattr(origin, "__name__", str(origin))
        if getattr(origin, "__module__", "") not in ("builtins", "collections.abc", "typing"):
            name = f"{origin.__module__}.{origin.__qualname__}"
        return f"{name}[{', '.join('...' if a is Ellipsis else _type_text(a) for a in args)}]"
    if isinstance(t, type):
        return t.__qualname__ if t.__module__ == "builtins" else f"{t.__module__}.{t.__qualname__}"
    return str(t).replace("typing.", "")


def _keys(cls) -> dict[str, str]:
    hints = typing.get_type_hints(cls, include_extras=True)
    return {f.name: _type_text(hints.get(f.name, f.type)) for f in dataclasses.fields(cls) if f.init}


def table(parser) -> dict:
    flags: dict[str, dict] = {}
    configs: dict[str, dict] = {}
    aliases: dict[str, str] = {}
    for action in parser._actions:
        longs = [o for o in action.option_strings if o.startswith("--")]
        if not longs or isinstance(action, argparse._HelpAction):
            continue
        main = longs[0]
        cls = _config_class(action.type)
        if cls is None and type(action).__name__ == "LoRAParserAction":
            from vllm.entrypoints.openai.models.protocol import LoRAModulePath

            cls = LoRAModulePath
        entry: dict = {"value": "json" if cls is not None else _kind(action)}
        if action.nargs in ("+", "*", "?"):
            entry["nargs"] = action.nargs
        if action.choices:
            entry["choices"] = [str(c) for c in action.choices]
        if isinstance(action, argparse.BooleanOptionalAction):
            entry["negatable"] = True
        if getattr(action, "deprecated", False):
            entry["deprecated"] = True
        if cls is not None and _refuses_unknown_key(parser, main):
            entry["config"] = cls.__name__
            configs[cls.__name__] = {"class": f"{cls.__module__}.{cls.__qualname__}", "keys": dict(sorted(_keys(cls).items()))}
        flags[main] = entry
        for alias in longs[1:]:
            if not (isinstance(action, argparse.BooleanOptionalAction) and alias == "--no-" + main[2:]):
                flags[alias] = {"alias": main}
        aliases.update({o: main for o in action.option_strings if not o.startswith("--")})
    aliases.setdefault("-h", "--help")
    probe = parser.parse_args(["m", "--max_num_seqs", "7"])
    with contextlib.redirect_stderr(io.StringIO()):
        try:
            abbreviated = parser.parse_args(["m", "--max-num-seq", "7"]).max_num_seqs == 7
        except SystemExit:
            abbreviated = False
    return {
        "$comment": "Every option `vllm serve` accepts at this version, read from vLLM's own parser; see docs/engine-flags.md for how. Generated, do not edit by hand.",
        "provenance": {"vllm": importlib.metadata.version("vllm"), "date": datetime.date.today().isoformat(),
                       "extractedWith": "tools/vllm_serve_flags.py: make_arg_parser(FlexibleArgumentParser(prog='vllm serve')) of the "
                                        "installed vLLM, CUDA platform set by hand; unknown JSON config keys probed through parse_args"},
        "normalization": {"underscores": probe.max_num_seqs == 7, "abbreviations": abbreviated, "shortAliases": dict(sorted(aliases.items()))},
        "flags": dict(sorted(flags.items())),
        "configs": dict(sorted(configs.items())),
    }


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    doc = table(build_parser())
    with open(sys.argv[1], "w", encoding="utf-8") as fh:
        json.dump(doc, fh, indent=1)
        fh.write("\n")
    print(f"{sys.argv[1]}: vLLM {doc['provenance']['vllm']}, {len(doc['flags'])} options, configs {', '.join(doc['configs'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
