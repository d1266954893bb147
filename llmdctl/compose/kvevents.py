"""Precise prefix-cache routing (``--prefix-cache precise``): both ends of the KV-event wiring.

The approximate producer guesses what each pod caches from the EPP's own routing decisions. The
precise one indexes the blocks vLLM reports: every vLLM pod publishes KV events on a ZMQ socket it
binds itself, and the EPP dials each endpoint of the pool (pod discovery). The GH200 report's
failure ("scorer 0 for every endpoint") comes from any one of these disagreeing, so they are all
derived here from one catalog block (``epp.kvEvents`` of the release):

* vLLM: ``--kv-events-config`` binding the port the EPP dials, a topic that names the pool
  endpoint (``ip:port``, the key the EPP scores by) and the served model, the block size the
  producer hashes with, and the ports declared;
* EPP: the producer in place of the approximate one, every consumer told its name (without it a
  consumer reads an empty producer and scores 0), the data-layer source that announces pods, and a
  tokenizer that renders prompts on the decode pods through a per-stack Service;
* one EPP replica (the guide's: token accounting is per process).
"""

from __future__ import annotations

import copy
from typing import Any

from ..base.errors import InputError
from ..base.yamlio import dump, load_text
from ..catalog.catalog import Release

RENDER_PORT = 8000  # the render Service's port (the token producer's URL)


def kv_events_facts(release: Release, *, layouts: dict) -> dict:
    """The release's KV-event wiring, or a refusal saying what to use instead."""
    kv = release.epp.get("kvEvents")
    if not kv:
        raise InputError(f"--prefix-cache precise: llmdctl does not wire KV events for llm-d {release.name} "
                         + ("(its EPP has no per-pod KV-event metrics to verify them by)" if release.generation == "router"
                            else "(the helmfile-era guides publish to the EPP in centralized mode on port 5557, which llmdctl does not wire)"),
                         hint="use --llmd-version v0.9.0, or --prefix-cache approx")
    wide = [f"--{role} {lay}" for role, lay in layouts.items() if lay.data > 1]
    if wide:
        raise InputError(f"--prefix-cache precise with {', '.join(wide)}: llmdctl wires one KV-event socket per pod, "
                         "and data-parallel ranks publish one each",
                         hint="use a tensor-parallel layout (e.g. 2xTP4) with --prefix-cache precise, or --prefix-cache approx")
    return kv


def vllm_values(kv: dict, *, model: str, pool_port: int) -> dict:
    """ms values for every vLLM pod: publish KV events where the EPP dials, keyed as the EPP keys pods."""
    import json  # here: render without --prefix-cache precise never needs it (start-up)

    config = {
        "enable_kv_cache_events": True, "publisher": "zmq",
        "endpoint": "$(KV_EVENTS_ENDPOINT)", "replay_endpoint": "$(KV_EVENTS_REPLAY_ENDPOINT)",
        "topic": kv["topic"].replace("{model}", model),
    }
    container = {
        "name": "vllm",
        "args": [f"--block-size={kv['blockSize']}", "--kv-events-config=" + json.dumps(config, separators=(",", ":"))],
        "env": [
            {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            # the pool's target port (the decode sidecar's on P/D decode pods): the EPP's key is ip:port
            {"name": "POD_PORT", "value": str(pool_port)},
            # each pod binds its own PUB socket; the EPP connects to it
            {"name": "KV_EVENTS_ENDPOINT", "value": f"tcp://*:{kv['eventsPort']}"},
            {"name": "KV_EVENTS_REPLAY_ENDPOINT", "value": f"tcp://*:{kv['replayPort']}"},
        ],
        "ports": [
            {"name": "kv-events", "containerPort": kv["eventsPort"], "protocol": "TCP"},
            {"name": "kv-replay", "containerPort": kv["replayPort"], "protocol": "TCP"},
        ],
    }
    return {"ms": {"roles": {"containers": [container]}}}


def epp_config(text: str, kv: dict, *, model: str, render_service: str) -> str:
    """The stack's EPP config with the precise producer in place of the approximate one."""
    doc = load_text(text, "EPP config").data
    producer = kv["producer"]
    plugins = [p for p in doc.get("plugins") or [] if p.get("type") != kv["replaces"]]
    for plugin in plugins:
        if plugin.get("type") in kv["consumers"]:
            plugin.setdefault("parameters", {})["prefixMatchInfoProducerName"] = producer
    doc["plugins"] = [
        {"type": kv["tokenizer"], "parameters": {"modelName": model, "vllm": {"url": f"http://{render_service}:{RENDER_PORT}"}}},
        {"type": kv["notificationSource"]},
        {"type": producer, "parameters": copy.deepcopy(kv["producerParameters"])},
        *plugins,
    ]
    doc["dataLayer"] = {"sources": [{"pluginRef": kv["notificationSource"], "extractors": [{"pluginRef": producer}]}]}
    head = "".join(line + "\n" for line in text.splitlines() if line.startswith("#"))
    return (head + f"# precise prefix-cache routing (--prefix-cache precise): {producer} indexes the KV events every vLLM pod "
            f"publishes on port {kv['eventsPort']}; prompts are tokenized by the decode pods ({render_service})\n" + dump(doc))


def router_values(kv: dict, *, hf_secret: str) -> dict:
    """The EPP of a precise stack: one replica, no leader election, the tokenizer's HF token by Secret name."""
    return {"router": {"router": {"epp": {
        "replicas": kv["eppReplicas"],
        "flags": {"ha-enable-leader-election": False},
        "env": [{"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {"name": hf_secret, "key": "HF_TOKEN"}}}],
    }}}}


def render_service(*, names: dict, labels: dict, selector: dict) -> dict:
    """The Service the token producer calls: vLLM's /v1/*/render on the stack's decode pods."""
    return {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": names["render"], "labels": {**labels, "app.kubernetes.io/component": "vllm-render"}},
        "spec": {
            # only this stack's decode pods (Ready ones: never a pod still loading weights)
            "selector": {**selector, "llm-d.ai/role": "decode"},
            "ports": [{"name": "render-http", "port": RENDER_PORT, "targetPort": "vllm", "protocol": "TCP"}],
        },
    }


def producer_of(config: Any) -> dict | None:
    """The precise producer's plugin entry in an EPP config document, if it has one."""
    for plugin in (config.get("plugins") or []) if isinstance(config, dict) else []:
        if isinstance(plugin, dict) and plugin.get("type") in ("precise-prefix-cache-producer", "precise-prefix-cache-scorer"):
            return plugin
    return None
