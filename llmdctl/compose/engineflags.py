"""vLLM's command line, checked against what the pinned vLLM accepts, before a pod crash-loops on it.

The catalog holds, per pinned vLLM (``schemas/vllm/vllm-<version>.serve-flags.json``, provenance in
``docs/engine-flags.md``), every option ``vllm serve`` takes, read from vLLM's own parser, and the
keys of the JSON configs whose classes refuse unknown keys (``--kv-transfer-config``,
``--kv-events-config``, ...). The rules here are vLLM's (FlexibleArgumentParser on argparse):

* ``--max_num_seqs`` is ``--max-num-seqs`` (underscores in the name become dashes);
* an unambiguous prefix is accepted (argparse abbreviations): allowed, but warned about, because a
  later vLLM with a longer flag of the same prefix refuses it;
* ``--X`` / ``--no-X`` switches take no value (``--enable-prefix-caching=false`` is refused);
* ``--kv-transfer-config.kv_role=...`` sets one key of a JSON config;
* ``$(VAR)`` is the kubelet's substitution: such a value is only known in the pod, so not checked.
"""

from __future__ import annotations

import re
from typing import Any, Iterator

from ..base.errors import InputError, suggest
from ..base.schema import load_schema
from ..base.yamlio import load_data

_ENV_REF = re.compile(r"\$\([A-Za-z_][A-Za-z0-9_]*\)")


def flag_table(release) -> dict | None:
    name = (release.engine or {}).get("vllmFlags")
    return load_schema(name) if name else None


def _resolve(name: str, table: dict) -> tuple[str | None, str | None, str | None]:
    """(flag, negated, problem): the table's flag an option names, as vLLM resolves it."""
    flags = table["flags"]
    if not name.startswith("--"):
        full = table["normalization"]["shortAliases"].get(name)
        return (full, None, None) if full else (None, None, f"vLLM has no option {name}")
    if table["normalization"].get("underscores"):
        name = "--" + name[2:].replace("_", "-")
    if name in flags:
        entry = flags[name]
        return entry.get("alias", name), None, None
    if name.startswith("--no-") and flags.get("--" + name[5:], {}).get("negatable"):
        return "--" + name[5:], name, None
    names = [n for n in flags] + ["--no-" + n[2:] for n, e in flags.items() if e.get("negatable")]
    if table["normalization"].get("abbreviations"):
        prefixed = [n for n in names if n.startswith(name)]
        if len(prefixed) == 1:
            full = prefixed[0]
            negated = full if full.startswith("--no-") and full not in flags else None
            base = "--" + full[5:] if negated else full
            return flags[base].get("alias", base), negated, f"abbreviation of {full}"
        if len(prefixed) > 1:
            return None, None, f"{name} is ambiguous in vLLM {table['provenance']['vllm']}: it could be {', '.join(sorted(prefixed)[:5])}"
    return None, None, f"vLLM {table['provenance']['vllm']} has no option {name}" + suggest(name, list(flags))


def _value_problem(flag: str, value: str, table: dict) -> str | None:
    entry = table["flags"][flag]
    if _ENV_REF.search(value):
        return None  # set by the kubelet from the pod's env: known only in the pod
    kind = entry.get("value")
    if entry.get("choices") and value not in entry["choices"]:
        return f"{flag}={value}: not one of {', '.join(entry['choices'])}" + suggest(value, entry["choices"])
    if kind == "int" and not re.fullmatch(r"[-+]?[0-9]+|None|", value):
        return f"{flag}={value}: expected a whole number"
    if kind == "float" and not re.fullmatch(r"[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?|None|", value):
        return f"{flag}={value}: expected a number"
    config = entry.get("config")
    if config and value.strip().startswith("{"):
        try:  # JSON is YAML: the loader render has already imported reads it (json's import is start-up cost)
            doc = load_data(value, flag)
        except InputError as exc:
            return f"{flag}: not JSON ({exc.message})"
        if isinstance(doc, dict):
            keys = table["configs"][config]["keys"]
            bad = [k for k in doc if k not in keys]
            if bad:
                return (f"{flag}: {config} of vLLM {table['provenance']['vllm']} has no key {bad[0]!r}" + suggest(bad[0], list(keys))
                        + f" (keys: {', '.join(keys)})")
    return None


def argv_findings(args: list, table: dict) -> Iterator[tuple[str, str]]:
    """(severity, message) for each argument of ``vllm serve`` the pinned vLLM would refuse (error)
    or only accepts by argparse's leniency (warning)."""
    args = [str(a) for a in args]
    i = 0
    while i < len(args):
        arg = args[i]
        i += 1
        if not arg.startswith("-") or arg == "-" or re.fullmatch(r"-[0-9.].*", arg):
            continue  # a value, or the model (vLLM takes it as the positional)
        if re.fullmatch(r"-O(=?[0-9])?", arg):
            continue  # -O3: --optimization-level
        name, eq, value = arg.partition("=")
        dotted = None
        if name.startswith("--") and "." in name:
            name, _, dotted = name.partition(".")
        flag, negated, problem = _resolve(name, table)
        if flag is None:
            yield "error", problem or f"unknown option {name}"
            continue
        if problem:
            yield "warning", f"{arg.split('=', 1)[0]}: vLLM reads it as an {problem}; spell the full name (a later vLLM may make it ambiguous)"
        entry = table["flags"][flag]
        takes = entry.get("value") is not None
        if negated or not takes:
            if eq:
                yield "error", f"{arg}: {negated or flag} is a switch and takes no value (vLLM refuses '=')" + (
                    f"; use {flag} or --no-{flag[2:]}" if entry.get("negatable") else "")
            continue
        if dotted is not None:
            config = entry.get("config")
            keys = table["configs"][config]["keys"] if config else None
            top = dotted.split(".", 1)[0].rstrip("+")
            if keys is not None and top not in keys:
                yield "error", (f"{arg.split('=', 1)[0]}: {config} of vLLM {table['provenance']['vllm']} has no key {top!r}"
                                + suggest(top, list(keys)))
            if not eq and i < len(args):
                i += 1
            continue
        if not eq:
            if entry.get("nargs") in ("?", "*") and (i >= len(args) or args[i].startswith("--")):
                continue
            if i >= len(args):
                yield "error", f"{flag}: expects a value"
                continue
            value = args[i]
            i += 1
            if entry.get("nargs") in ("+", "*"):
                while i < len(args) and not args[i].startswith("-"):
                    i += 1
        problem = _value_problem(flag, value, table)
        if problem:
            yield "error", problem


def container_args(block: dict) -> list[Any] | None:
    """The ``vllm serve`` arguments of a role's vllm container, or None when it has none."""
    for c in block.get("containers") or []:
        if isinstance(c, dict) and c.get("name") == "vllm":
            return list(c.get("args") or [])
    return None


def sidecar_table(release) -> dict | None:
    name = (release.engine or {}).get("sidecarFlags")
    return load_schema(name) if name else None


_PFLAG_VALUE = {
    "bool": re.compile(r"1|0|t|f|T|F|true|false|True|False|TRUE|FALSE"),  # strconv.ParseBool
    "int": re.compile(r"[-+]?[0-9]+"),
    "intSlice": re.compile(r"[-+]?[0-9]+(,[-+]?[0-9]+)*"),
    "duration": re.compile(r"0|[-+]?([0-9]*(\.[0-9]*)?(ns|us|µs|ms|s|m|h))+"),  # time.ParseDuration
    "level": re.compile(r"debug|info|warn|error|dpanic|panic|fatal|[0-9]+"),  # zap: a name, or a verbosity above 0
    "encoder": re.compile(r"json|console"),
    "time-encoding": re.compile(r"epoch|millis|nano|iso8601|rfc3339|rfc3339nano"),
}


def pflag_findings(args: list, flags: dict, program: str) -> Iterator[tuple[str, str]]:
    """(severity, message) for each ``--flag=value`` a Go program parsing its flags with pflag would
    refuse at start (error: an unknown flag, a value its type does not parse, a choice it does not
    have), or takes but has deprecated (warning: a later release drops it)."""
    for arg in (str(a) for a in args):
        if not arg.startswith("--"):
            yield "error", f"{arg}: {program} takes --flag=value arguments"
            continue
        name, eq, value = arg.partition("=")
        entry = flags.get(name)
        if entry is None:
            yield "error", f"{name}: {program} has no such flag" + suggest(name, list(flags))
            continue
        kind = entry["type"]
        if not eq:
            if kind != "bool":
                yield "error", f"{name}: needs a value ({kind})"
            continue
        if _ENV_REF.search(value):
            continue
        pattern = _PFLAG_VALUE.get(kind)
        if pattern is not None and not pattern.fullmatch(value):
            yield "error", f"{arg}: not a {kind} value"
        elif entry.get("choices") and value not in entry["choices"]:
            yield "error", f"{arg}: {program} supports {', '.join(entry['choices'])}" + suggest(value, entry["choices"])
        elif entry.get("deprecated"):
            yield "warning", f"{name}: deprecated in {program} ({entry['deprecated']})"


def sidecar_findings(args: list, table: dict) -> Iterator[tuple[str, str]]:
    """(severity, message) for each argument the pinned P/D sidecar would refuse (or has deprecated)."""
    yield from pflag_findings(args, table["flags"], f"the P/D sidecar {table['provenance']['tag']}")


def flag_args(flags: dict) -> list[str]:
    """A chart's ``flags`` map as the command line it renders: ``{v: 2, x: false}`` -> ``--v=2 --x=false``."""
    return [f"--{k}={str(v).lower() if isinstance(v, bool) else v}" for k, v in flags.items() if v is not None]
