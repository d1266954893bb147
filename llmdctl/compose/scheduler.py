"""The EPP's scheduler config of a stack: the release's template with selective P/D, --scorer
and --scheduler-param applied, each checked against what the pinned EPP registers."""

from __future__ import annotations

from typing import Any

from ..base.errors import CatalogError, InputError, suggest
from ..base.yamlio import dump, load_data, load_text
from ..catalog.catalog import Release
from . import eppconfig

def selective_pd(config: str, threshold: int) -> str:
    """--pd-threshold N on the router: prefix-based-pd-decider instead of always-disagg, so prompts
    with at most N uncached tokens skip prefill (the v0.10.0 EPP still registers it)."""
    doc = load_text(config, "EPP config").data
    for plugin in doc["plugins"]:
        if plugin.get("type") == "always-disagg-pd-decider":
            plugin["type"] = "prefix-based-pd-decider"
            plugin["parameters"] = {"nonCachedTokens": threshold}
        params = plugin.get("parameters") or {}
        if params.get("deciderPluginName") == "always-disagg-pd-decider":  # the legacy flat format
            params["deciderPluginName"] = "prefix-based-pd-decider"
        deciders = params.get("deciders") or {}
        if deciders.get("prefill") == "always-disagg-pd-decider":  # the nested one (EPP >= v0.9.0)
            deciders["prefill"] = "prefix-based-pd-decider"
    head = "".join(line + "\n" for line in config.splitlines() if line.startswith("#"))
    return head + f"# selective P/D: prompts with at most {threshold} uncached tokens skip prefill (--pd-threshold)\n" + dump(doc)


def scheduler_config(text: str, release: Release, scorers: tuple, params: tuple) -> str:
    """The EPP config with --scorer weights and --scheduler-param values in place, each checked
    against the plugins the pinned EPP registers: a typo or an unknown plugin would only surface as
    an EPP that does not start."""
    epp = release.epp
    known = list(epp["scorers"])
    doc = load_text(text, "EPP config").data
    plugins = doc.setdefault("plugins", [])
    profiles = doc.get("schedulingProfiles") or []
    for profile_name, raw, weight in scorers:
        name = raw if raw in known or raw in epp.get("needsWiring", {}) else f"{raw}-scorer"
        if name in epp.get("needsWiring", {}):
            raise InputError(f"--scorer {raw}: {name} needs {epp['needsWiring'][name]}")
        if name not in known:
            raise InputError(f"--scorer {raw}: the EPP of llm-d {release.name} has no scorer {name!r}" + suggest(name, known),
                             hint="scorers it knows: " + ", ".join(known))
        targets = [p for p in profiles if profile_name in (None, p.get("name"))]
        if not targets:
            raise InputError(f"--scorer {profile_name}:{raw}: no scheduling profile {profile_name!r}" + suggest(profile_name or "", [p.get("name", "") for p in profiles]),
                             hint="profiles: " + ", ".join(p.get("name", "?") for p in profiles))
        if not any(p.get("type") == name or p.get("name") == name for p in plugins) and weight:
            plugins.append({"type": name})
        for p in targets:
            refs = p.setdefault("plugins", [])
            ref = next((r for r in refs if r.get("pluginRef") == name), None)
            if weight == 0:
                p["plugins"] = [r for r in refs if r.get("pluginRef") != name]
            elif ref is not None:
                ref["weight"] = weight
            else:
                refs.append({"pluginRef": name, "weight": weight})
    table = eppconfig.plugin_schema(release)
    for plugin, param, value in params:
        _check_scheduler_param(release, table, plugin, param, value)
        entry = next((p for p in plugins if p.get("type") == plugin or p.get("name") == plugin), None)
        if entry is None:
            raise InputError(f"--scheduler-param {plugin}.{param}: this stack's scheduler config has no {plugin}",
                             hint="plugins in it: " + ", ".join(p.get("type", "?") for p in plugins))
        entry.setdefault("parameters", {})[param] = value
    used = {r.get("pluginRef") for p in profiles for r in p.get("plugins") or []}
    doc["plugins"] = [p for p in plugins if not (p.get("type") in known and (p.get("name") or p.get("type")) not in used)]
    what = [f"{pr + ':' if pr else ''}{n}={w}" for pr, n, w in scorers] + [f"{pl}.{pa}={v}" for pl, pa, v in params]
    head = "".join(line + "\n" for line in text.splitlines() if line.startswith("#"))  # the template's own explanation
    return head + f"# adjusted by: {', '.join(what)}\n" + dump(doc)


def _check_scheduler_param(release: Release, table: dict | None, plugin: str, param: str, value: Any) -> None:
    """Refuse a --scheduler-param the pinned EPP would refuse: by its own plugin table where llmdctl
    has one (docs/epp-plugins.md), else by the release's hand-written parameter list."""
    if table is not None:
        problem = eppconfig.parameter_error(table, plugin, param, value)
        if problem:
            fields = eppconfig.fields_of(table, plugin)
            raise InputError(f"--scheduler-param {plugin}.{param}={value!r}: {problem}",
                             hint=f"checked against the plugins of the EPP {table['provenance']['tag']} (docs/epp-plugins.md)"
                                  + (f"; {plugin} takes: {', '.join(fields)}" if fields else ""))
        return
    known = release.epp.get("parameters") or {}
    types = known.get(plugin)
    if types is None:
        raise InputError(f"--scheduler-param {plugin}.{param}: llmdctl knows no parameters of {plugin!r} for llm-d {release.name}"
                         + suggest(plugin, list(known)), hint="plugins with parameters: " + ", ".join(known))
    if param not in types:
        raise InputError(f"--scheduler-param {plugin}.{param}: {plugin} has no parameter {param!r}" + suggest(param, list(types)),
                         hint=f"its parameters: {', '.join(types)}")
    if not _json_type_ok(value, types[param]):
        raise InputError(f"--scheduler-param {plugin}.{param}={value!r}: expected {'a' if types[param] != 'integer' else 'an'} {types[param]}")


def _json_type_ok(value: Any, kind: str) -> bool:
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, str)


def check_epp_config(text: str, name: str) -> None:
    """A custom catalog's EPP template must still give an EndpointPickerConfig the EPP can read."""
    try:
        doc = load_data(text, f"EPP config {name}")
    except InputError as exc:
        raise CatalogError(f"the EPP template for {name} does not render valid YAML: {exc.message}") from None
    if not isinstance(doc, dict) or doc.get("kind") != "EndpointPickerConfig":
        raise CatalogError(f"the EPP template for {name} must render a mapping with kind: EndpointPickerConfig")
