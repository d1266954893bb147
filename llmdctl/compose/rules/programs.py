"""Rules over what the programs in the pods accept: the EPP's plugins config, vLLM's command line
and the decode sidecar's flags, each against the table read from the pinned program
(schemas/epp, schemas/vllm, schemas/sidecar; docs/epp-plugins.md, docs/engine-flags.md)."""

from __future__ import annotations

from functools import lru_cache
from typing import Iterator

from ...base import cache
from ...base.data import read_bytes
from ...base.errors import InputError
from ...base.schema import load_schema, schema_bytes
from ...base.yamlio import load_data
from ...plan.stack import Plan
from .. import engineflags, eppconfig
from ..engineflags import argv_findings, container_args, flag_args, pflag_findings, sidecar_findings, sidecar_table
from ..eppconfig import config_errors
from .book import role_blocks, rule


# The findings are a pure function of the input (a config text, an argument list), the program's
# table and the checking code, so they are kept in the content-addressed cache under a key of all
# three: a warm render reads one small entry instead of loading a table and checking. Each pair of
# rules (an error and a warning) also shares one computation per process (lru_cache, plain keys:
# a plan's frozen values never sit in the cache).
_CHECKERS = (eppconfig.__file__, engineflags.__file__, __file__)


@lru_cache(maxsize=1)
def _checker_code() -> bytes:
    return b"".join(read_bytes(path) for path in _CHECKERS)


def _findings(kind: str, payload: str, table_name: str, compute) -> tuple[tuple[str, str], ...]:
    digest = cache.key(b"program-check", kind.encode(), payload.encode("utf-8", "surrogatepass"), schema_bytes(table_name), _checker_code())
    return tuple((level, message) for level, message in cache.cached(digest, lambda: [[level, message] for level, message in compute()]))


@lru_cache(maxsize=128)
def _config_findings(text: str, where: str, table_name: str, experimental: bool) -> tuple[tuple[str, str], ...]:
    def compute():
        try:
            doc = load_data(text, where)
        except InputError as exc:
            return [("error", f"{where}: not YAML the EPP can read: {exc.message}")]
        return config_errors(doc, load_schema(table_name), experimental=experimental, where=f"{where}: ")

    return _findings("epp-config", "\0".join((text, where, str(experimental))), table_name, compute)


@lru_cache(maxsize=128)
def _epp_flag_findings(args: tuple[str, ...], table_name: str) -> tuple[tuple[str, str], ...]:
    def compute():
        table = load_schema(table_name)
        return pflag_findings(list(args), table.get("flags") or {}, f"the EPP {table['provenance']['tag']}")

    return _findings("epp-flags", "\0".join(args), table_name, compute)


@lru_cache(maxsize=256)
def _argv_findings(args: tuple[str, ...], table_name: str) -> tuple[tuple[str, str], ...]:
    return _findings("vllm", "\0".join(args), table_name, lambda: argv_findings(list(args), load_schema(table_name)))


def _epp_findings(plan: Plan, severity: str) -> Iterator[str]:
    table_name = (plan.release_info.epp or {}).get("pluginSchema")
    if plan.generation != "router" or not table_name:
        return
    key = "router.router.epp" if "router" in plan.release("router").values else "router.inferenceExtension"
    flags = plan.epp_values.get("flags") or {}
    # the EPP's own command line: the chart renders the flags map as --name=value
    for level, message in _epp_flag_findings(tuple(flag_args(flags)), table_name):
        if level == severity:
            yield f"{key}.flags: {message}"
    experimental = str(flags.get("allow-experimental-plugins", "false")).lower() == "true"
    for name, text in sorted((plan.epp_values.get("pluginsCustomConfig") or {}).items()):
        for level, message in _config_findings(str(text), f"{key}.pluginsCustomConfig[{name}]", table_name, experimental):
            if level == severity:
                yield message


@rule("V-48", "error")
def epp_config_loads(plan: Plan):
    """What the pinned EPP would refuse in its flags and plugins config, and crash-loop on."""
    yield from _epp_findings(plan, "error")


@rule("V-49", "warning")
def epp_plugin_deprecated(plan: Plan):
    yield from _epp_findings(plan, "warning")


def _vllm_findings(plan: Plan, severity: str) -> Iterator[str]:
    table_name = (plan.release_info.engine or {}).get("vllmFlags")
    if not table_name:
        return
    for role, block in role_blocks(plan):
        args = tuple(str(a) for a in container_args(block) or ())
        for level, message in _argv_findings(args, table_name):
            if level == severity:
                yield f"ms.{role}.containers[vllm].args: {message}"


@rule("V-50", "error")
def vllm_refuses_an_argument(plan: Plan):
    """An option or value the pinned vLLM's parser refuses: the pod exits at start and crash-loops."""
    yield from _vllm_findings(plan, "error")


@rule("V-51", "warning")
def vllm_abbreviated_option(plan: Plan):
    yield from _vllm_findings(plan, "warning")


@rule("V-52", "error")
def sidecar_refuses_an_argument(plan: Plan):
    """The decode sidecar's arguments, as generated, against the pinned sidecar's flag set."""
    table = sidecar_table(plan.release_info)
    if table is None:
        return
    for obj in plan.manifests.get("ms") or []:
        spec = obj.get("spec") or {}
        lws = spec.get("leaderWorkerTemplate") or {}
        pods = [t.get("spec") or {} for t in (spec.get("template"), lws.get("leaderTemplate"), lws.get("workerTemplate")) if t]
        seen = set()
        for c in (c for pod in pods for c in pod.get("initContainers") or []):
            if c.get("name") == "routing-proxy":
                for level, message in sidecar_findings(c.get("args") or [], table):
                    if level == "error" and message not in seen:
                        seen.add(message)
                        yield f"{obj['metadata']['name']} routing-proxy: {message}"
