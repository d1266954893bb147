"""Rules over what the programs in the pods accept: the EPP's plugins config, vLLM's command line
and the decode sidecar's flags, each against the table read from the pinned program
(schemas/epp, schemas/vllm, schemas/sidecar; docs/epp-plugins.md, docs/engine-flags.md)."""

from __future__ import annotations

from typing import Any, Iterator

from ...base.errors import InputError
from ...base.yamlio import load_text
from ...plan.stack import Plan
from ..engineflags import argv_findings, container_args, flag_table, sidecar_findings, sidecar_table
from ..eppconfig import config_errors, plugin_schema
from .book import role_blocks, rule


def _epp_configs(plan: Plan) -> Iterator[tuple[str, Any]]:
    """(where, parsed document) of every EPP plugins config the router values carry."""
    key = "router.router.epp" if "router" in plan.release("router").values else "router.inferenceExtension"
    for name, text in sorted((plan.epp_values.get("pluginsCustomConfig") or {}).items()):
        try:
            doc = load_text(str(text), f"{key}.pluginsCustomConfig[{name}]").data
        except InputError as exc:
            yield f"{key}.pluginsCustomConfig[{name}]", exc
            continue
        yield f"{key}.pluginsCustomConfig[{name}]", doc


def _epp_findings(plan: Plan, severity: str) -> Iterator[str]:
    if plan.generation != "router":
        return
    table = plugin_schema(plan.release_info)
    if table is None:
        return
    flags = plan.epp_values.get("flags") or {}
    experimental = str(flags.get("allow-experimental-plugins", "false")).lower() == "true"
    for where, doc in _epp_configs(plan):
        if isinstance(doc, InputError):
            if severity == "error":
                yield f"{where}: not YAML the EPP can read: {doc.message}"
            continue
        for level, message in config_errors(doc, table, experimental=experimental, where=f"{where}: "):
            if level == severity:
                yield message


@rule("V-48", "error")
def epp_config_loads(plan: Plan):
    """What the pinned EPP would refuse in its plugins config, and crash-loop on."""
    yield from _epp_findings(plan, "error")


@rule("V-49", "warning")
def epp_plugin_deprecated(plan: Plan):
    yield from _epp_findings(plan, "warning")


def _vllm_findings(plan: Plan, severity: str) -> Iterator[str]:
    table = flag_table(plan.release_info)
    if table is None:
        return
    for role, block in role_blocks(plan):
        args = container_args(block)
        for level, message in argv_findings(args or [], table):
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
                for message in sidecar_findings(c.get("args") or [], table):
                    if message not in seen:
                        seen.add(message)
                        yield f"{obj['metadata']['name']} routing-proxy: {message}"
