"""--prefix-cache precise: the KV-event wiring on both ends (issue 10 item 5), the rules that
refuse a half-wired stack, and the smoke check that names a pod whose events never reach the EPP
(the GH200 report's "scorer 0 for every endpoint")."""

from __future__ import annotations

import json
import sys

import pytest

from conftest import plan_for
from kube_api import FakeMetricsEndpoint, FakeOpenAI

V9 = "v0.9.0"
NS = "llm-d-pd"
RECEIVED = "llm_d_router_epp_kv_cache_events_messages_received_total"
ERRORS = "llm_d_router_epp_kv_cache_events_zmq_errors_total"


def _objects(plan, kind):
    return {o["metadata"]["name"]: o for o in plan.manifests["ms"] if o["kind"] == kind}


def _vllm(dep):
    return next(c for c in dep["spec"]["template"]["spec"]["containers"] if c["name"] == "vllm")


def _env(container):
    return {e["name"]: e for e in container.get("env") or []}


def _epp(plan):
    from llmdctl.base.yamlio import load_text

    epp = plan.epp_values
    return load_text(epp["pluginsCustomConfig"][epp["pluginsConfigFile"]], "EPP config").data


def _plugins(config):
    return {p["type"]: p for p in config["plugins"]}


def test_both_ends_of_the_kv_event_wiring_agree_on_a_pd_stack():
    plan = plan_for(llmd_version=V9, prefix_cache="precise")
    kv = plan.kv_events
    model = plan.model["name"]
    deps = _objects(plan, "Deployment")
    assert set(deps) == {"ms-pd-prefill", "ms-pd-decode"}
    for dep in deps.values():
        vllm = _vllm(dep)
        args = {a.split("=", 1)[0]: a.split("=", 1)[1] for a in vllm["args"] if "=" in a}
        events = json.loads(args["--kv-events-config"])
        assert events["enable_kv_cache_events"] is True and events["publisher"] == "zmq"
        env = _env(vllm)
        # each pod binds the port the EPP dials; the topic names the pool endpoint (ip:8000, also on
        # decode, whose vLLM listens on 8200 behind the sidecar) and the served model
        assert env["KV_EVENTS_ENDPOINT"]["value"] == "tcp://*:5556" == f"tcp://*:{kv['eventsPort']}"
        assert env["KV_EVENTS_REPLAY_ENDPOINT"]["value"] == "tcp://*:5559"
        assert events["endpoint"] == "$(KV_EVENTS_ENDPOINT)" and events["replay_endpoint"] == "$(KV_EVENTS_REPLAY_ENDPOINT)"
        assert events["topic"] == f"kv@$(POD_IP):$(POD_PORT)@{model}"
        assert env["POD_PORT"]["value"] == "8000" and env["POD_IP"]["valueFrom"] == {"fieldRef": {"fieldPath": "status.podIP"}}
        assert args["--block-size"] == "64" and args["--served-model-name"] == model
        assert {p["name"]: p["containerPort"] for p in vllm["ports"]}.items() >= {"kv-events": 5556, "kv-replay": 5559}.items()
        assert "--kv-transfer-config" in args  # the P/D connector is still there
    assert plan.pool_values["targetPorts"] == [{"number": 8000}]

    config = _epp(plan)
    plugins = _plugins(config)
    assert "approx-prefix-cache-producer" not in plugins
    producer = plugins["precise-prefix-cache-producer"]["parameters"]
    assert producer["tokenProcessorConfig"]["blockSizeTokens"] == 64
    assert producer["kvEventsConfig"]["discoverPods"] is True
    assert producer["kvEventsConfig"]["podDiscoveryConfig"] == {"socketPort": 5556, "replaySocketPort": 5559}
    assert "podDiscoveryConfig" not in producer  # inside kvEventsConfig, not beside it (llm-d-router #2274)
    for consumer in ("inflight-load-producer", "prefix-cache-affinity-filter"):
        assert plugins[consumer]["parameters"]["prefixMatchInfoProducerName"] == "precise-prefix-cache-producer", consumer
    # the EPP v0.10.0 refuses prefixMatchInfoProducerName on the profile handler (issue 23: the router
    # crash-looped); it keeps only its decider
    assert plugins["disagg-profile-handler"]["parameters"] == {"deciders": {"prefill": "always-disagg-pd-decider"}}
    assert config["dataLayer"] == {"sources": [{"pluginRef": "endpoint-notification-source",
                                                "extractors": [{"pluginRef": "precise-prefix-cache-producer"}]}]}
    assert plugins["token-producer"]["parameters"] == {"modelName": model, "vllm": {"url": "http://ms-pd-render:8000"}}
    # the scheduling profiles are the P/D ones, unchanged
    assert [p["name"] for p in config["schedulingProfiles"]] == ["prefill", "decode"]

    epp = plan.release("router").values["router"]["epp"]
    assert epp["replicas"] == 1 and epp["flags"]["ha-enable-leader-election"] is False
    assert epp["env"] == [{"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {"name": "llm-d-hf-token", "key": "HF_TOKEN"}}}]


def test_the_render_service_fronts_only_this_stacks_decode_pods():
    plan = plan_for(llmd_version=V9, prefix_cache="precise")
    (svc,) = _objects(plan, "Service").values()
    assert svc["metadata"]["name"] == plan.names["render"] == "ms-pd-render"
    deps = _objects(plan, "Deployment")
    labels = {role: deps[f"ms-pd-{role}"]["spec"]["template"]["metadata"]["labels"] for role in ("prefill", "decode")}
    selector = svc["spec"]["selector"]
    assert selector.items() <= labels["decode"].items() and not selector.items() <= labels["prefill"].items()
    # the named port is decode's vLLM (8200 behind the sidecar): render goes to vLLM, not the sidecar
    (port,) = svc["spec"]["ports"]
    decode_ports = {p["name"]: p["containerPort"] for p in _vllm(deps["ms-pd-decode"])["ports"]}
    assert port["port"] == 8000 and decode_ports[port["targetPort"]] == 8200
    other = plan_for(llmd_version=V9, prefix_cache="precise", postfix="pd2")
    (svc2,) = _objects(other, "Service").values()
    assert svc2["metadata"]["name"] == "ms-pd2-render" and svc2["spec"]["selector"] != selector
    assert _plugins(_epp(other))["token-producer"]["parameters"]["vllm"]["url"] == "http://ms-pd2-render:8000"


def test_aggregated_precise_names_the_producer_on_the_prefix_scorer_and_keeps_the_weights():
    plan = plan_for(llmd_version=V9, prefix_cache="precise", guide="inference-scheduling", prefill="0", decode="2xTP2",
                    scorers=["kv-cache-utilization=2"])
    assert set(_objects(plan, "Deployment")) == {"ms-inference-scheduling-decode"}
    config = _epp(plan)
    plugins = _plugins(config)
    assert plugins["prefix-cache-scorer"]["parameters"] == {"prefixMatchInfoProducerName": "precise-prefix-cache-producer"}
    weights = {r["pluginRef"]: r.get("weight") for r in config["schedulingProfiles"][0]["plugins"]}
    assert weights == {"prefix-cache-scorer": 2, "queue-scorer": 1, "kv-cache-utilization-scorer": 2, "max-score-picker": None}
    env = _env(_vllm(_objects(plan, "Deployment")["ms-inference-scheduling-decode"]))
    assert env["POD_PORT"]["value"] == "8000"


def test_approx_is_the_default_and_carries_none_of_it():
    plan = plan_for(llmd_version=V9)
    assert plan.kv_events is None and "render" not in json.dumps([o["kind"] for o in plan.manifests["ms"]]).lower()
    text = json.dumps(plan.manifests["ms"]) + json.dumps(plan.release("router").values)
    assert "kv-events-config" not in text and "precise-prefix-cache-producer" not in text and "KV_EVENTS" not in text
    assert "approx-prefix-cache-producer" in text


@pytest.mark.parametrize("args, message, hint", [
    (("--llmd-version", "v0.8.0"), "does not wire KV events for llm-d v0.8.0", "--llmd-version v0.9.0"),
    (("--llmd-version", "v0.6.0"), "does not wire KV events for llm-d v0.6.0", "--llmd-version v0.9.0"),
    (("--llmd-version", V9, "-e", "gb200"), "--prefill 2xDP8EP, --decode 1xDP8EP", "tensor-parallel layout"),
])
def test_precise_is_refused_where_llmdctl_cannot_wire_it(cli, args, message, hint):
    r = cli("render", "--prefix-cache", "precise", *args, "--print")
    assert r.code == 2 and message in r.err and hint in r.err and "Traceback" not in r.err, r


def test_bad_prefix_cache_values_and_the_old_scorer_name_say_what_to_use(cli, tmp_path):
    r = cli("render", "--prefix-cache", "exact", "--print")
    assert r.code == 2 and "approx" in r.err and "precise" in r.err
    spec = tmp_path / "stack.yaml"
    spec.write_text("prefixCache: exact\n")
    r = cli("render", "-f", str(spec), "--print")
    assert r.code == 2 and "prefixCache" in r.err and "Traceback" not in r.err, r
    r = cli("render", "--llmd-version", V9, "--scorer", "precise-prefix-cache=2", "--print")
    assert r.code == 2 and "--prefix-cache precise" in r.err


def test_a_spec_file_can_ask_for_precise_and_the_bundle_readme_reproduces_it(cli, tmp_path):
    spec = tmp_path / "stack.yaml"
    spec.write_text(f"llmdVersion: {V9}\nprefixCache: precise\n")
    r = cli("render", "-f", str(spec), "-o", str(tmp_path / "b"))
    assert r.code == 0, r
    assert (tmp_path / "b" / "charts" / "ms" / "templates" / "service-ms-pd-render.yaml").exists()
    r = cli("render", "--llmd-version", V9, "--prefix-cache", "precise", "-o", str(tmp_path / "c"))
    readme = (tmp_path / "c" / "README.md").read_text()
    assert r.code == 0 and "--prefix-cache precise" in readme and "| prefix cache | precise:" in readme and "`ms-pd-render`" in readme


def test_a_set_that_breaks_the_wiring_is_refused_with_the_rule(cli, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("decode:\n  containers:\n  - name: vllm\n    env:\n    - {name: POD_PORT, value: '8200'}\n    args: [--block-size=16]\n")
    r = cli("render", "--llmd-version", V9, "--prefix-cache", "precise", "--values", f"ms={bad}", "--print")
    assert r.code != 0 and "V-30" in r.err and "V-44" in r.err and "pool targets 8000" in r.err, r
    # a hand-written EPP config that forgets to name the producer on one consumer (llm-d-router #1501)
    config = _epp(plan_for(llmd_version=V9, prefix_cache="precise"))
    for p in config["plugins"]:
        if p["type"] == "prefix-cache-affinity-filter":
            p["parameters"].pop("prefixMatchInfoProducerName")
    own = tmp_path / "epp.yaml"
    own.write_text(json.dumps({"router": {"epp": {"pluginsCustomConfig": {"pd-config.yaml": json.dumps(config)}}}}))
    r = cli("render", "--llmd-version", V9, "--prefix-cache", "precise", "--values", f"router={own}", "--print")
    assert r.code != 0 and "prefix-cache-affinity-filter does not name prefixMatchInfoProducerName" in r.err, r


# --- verify --smoke: did the EPP hear the pod that prefilled the prompt? ----------------------


def _put_pods(kube_api, plan, count=2):
    """Ready pods of each role, labelled as the generated Deployments label them."""
    names = {}
    for dep in _objects(plan, "Deployment").values():
        role = dep["spec"]["template"]["metadata"]["labels"]["llm-d.ai/role"]
        names[role] = [f"{dep['metadata']['name']}-{i}" for i in range(count)]
        for name in names[role]:
            kube_api.put(f"/api/v1/namespaces/{plan.namespace}/pods", {
                "metadata": {"name": name, "namespace": plan.namespace, "labels": dict(dep["spec"]["template"]["metadata"]["labels"])},
                "spec": dep["spec"]["template"]["spec"], "status": {"conditions": [{"type": "Ready", "status": "True"}]}})
    return names


def _vllm_tokens(kube_api, plan, role, tokens):
    port = plan.roles[role].vllm_port
    for pod, n in tokens.items():
        kube_api.metrics[(plan.namespace, pod, port)] = f'vllm:prompt_tokens_total{{model_name="m"}} {n}\n'


def _epp_page(received: dict, errors: dict | None = None, ns: str = NS) -> str:
    lines = [f"# TYPE {RECEIVED} counter"]
    lines += [f'{RECEIVED}{{pod_identifier="{ns}/{pod}-rank-0"}} {n}' for pod, n in received.items()]
    lines += [f'{ERRORS}{{operation="connect",pod_identifier="{ns}/{pod}-rank-0"}} {n}' for pod, n in (errors or {}).items()]
    lines.append('llm_d_router_epp_kv_cache_events_active_subscribers 4')
    return "\n".join(lines) + "\n"


def _smoke(kube_api, plan, pages, on_completion, settle=0.6):
    from llmdctl.effects.smoke import smoke
    from llmdctl.effects.kube import Kube

    served = list(pages)

    def epp_metrics():
        return served.pop(0) if len(served) > 1 else served[0]

    api = FakeOpenAI(plan.model["name"], on_completion=on_completion)
    try:
        checks = smoke(Kube(kubeconfig=str(kube_api.kubeconfig)), plan, api.url, epp_metrics=epp_metrics, settle=settle)
    finally:
        api.stop()
    return {c.name: c for c in checks}, api


def test_smoke_passes_when_the_epp_heard_the_prefill_pod(kube_api):
    plan = plan_for(llmd_version=V9, prefix_cache="precise")
    pods = _put_pods(kube_api, plan)
    first, second = pods["prefill"]
    _vllm_tokens(kube_api, plan, "prefill", {first: 10, second: 0})

    def through_prefill(req):
        _vllm_tokens(kube_api, plan, "prefill", {first: 10, second: 300})

    # events arrive a moment after the request: the first page after it has not got them yet
    checks, api = _smoke(kube_api, plan, [_epp_page({first: 7}), _epp_page({first: 7}), _epp_page({first: 7, second: 4})], through_prefill, settle=5)
    kv = checks["KV events reached the EPP"]
    assert kv.status == "pass" and kv.observed == f"{second}: 4 messages", kv
    assert checks["request went through prefill"].status == "pass"
    assert len(api.prompts[0].split()) > 4 * 64 / 5  # several 64-token blocks, so vLLM stores (and reports) some


def test_smoke_names_the_pod_whose_kv_events_never_reach_the_epp(kube_api):
    """The GH200 report: requests are served, the precise scorer gives 0 because no event arrives."""
    plan = plan_for(llmd_version=V9, prefix_cache="precise")
    pods = _put_pods(kube_api, plan)
    first, second = pods["prefill"]
    _vllm_tokens(kube_api, plan, "prefill", {first: 0, second: 0})

    def through_prefill(req):
        _vllm_tokens(kube_api, plan, "prefill", {first: 0, second: 250})

    page = _epp_page({first: 7}, errors={second: 12})
    checks, _ = _smoke(kube_api, plan, [page], through_prefill)
    kv = checks["KV events reached the EPP"]
    assert kv.status == "fail", kv
    assert f"{second} prefilled 250 prompt tokens, but the EPP received no KV events from it" in kv.observed
    assert "12 ZMQ errors" in kv.observed and "no subscriber series" in kv.observed
    assert first not in kv.observed  # the pod that did not serve this request is not blamed
    assert "tcp://*:5556" in kv.hint and "kubectl logs deploy/router-pd-epp" in kv.hint
    assert checks["request went through prefill"].status == "pass"  # serving works; only the events are missing


def test_smoke_on_an_aggregated_precise_stack_watches_the_decode_pods(kube_api):
    plan = plan_for(llmd_version=V9, prefix_cache="precise", guide="inference-scheduling", prefill="0", decode="2xTP2")
    pods = _put_pods(kube_api, plan)
    first, second = pods["decode"]
    _vllm_tokens(kube_api, plan, "decode", {first: 0, second: 0})

    def served(req):
        _vllm_tokens(kube_api, plan, "decode", {first: 90, second: 0})

    ns = plan.namespace
    checks, _ = _smoke(kube_api, plan, [_epp_page({}, ns=ns), _epp_page({first: 2}, ns=ns)], served)
    assert checks["KV events reached the EPP"].status == "pass" and "request went through prefill" not in checks
    checks, _ = _smoke(kube_api, plan, [_epp_page({first: 2}, ns=ns)], lambda req: None)
    kv = checks["KV events reached the EPP"]
    assert kv.status == "fail" and "no decode pod's vllm:prompt_tokens_total rose" in kv.observed


def test_epp_metrics_are_read_through_a_port_forward_with_a_service_account_token(kube_api, fake_cluster, monkeypatch, capsys):
    """No pod proxy: the API server drops the caller's token, and the EPP refuses unauthenticated
    scrapes. The token comes from a TokenRequest for the EPP's ServiceAccount and is never shown."""
    from llmdctl.base.errors import LlmdctlError
    from llmdctl.effects.kube import Kube
    from llmdctl.effects.tools import Toolbox
    from llmdctl.effects.verify import EppMetrics

    monkeypatch.setenv("KUBECONFIG", str(kube_api.kubeconfig))
    plan = plan_for(llmd_version=V9, prefix_cache="precise")
    issued = lambda token: any(token == t for _, _, t, _ in kube_api.tokens)  # noqa: E731
    epp = FakeMetricsEndpoint(issued)
    epp.text = _epp_page({"ms-pd-prefill-0": 3})
    log = fake_cluster.root / "pf.log"
    (fake_cluster.bin / "kubectl").write_text(
        f"#!/bin/sh\necho \"$@\" >> {log}\necho 'Forwarding from 127.0.0.1:{epp.port} -> 9090'\n"
        f"exec {sys.executable} -c 'import time; time.sleep(30)'\n")
    lines = []
    kube = Kube(kubeconfig=str(kube_api.kubeconfig))
    try:
        # the EPP's ServiceAccount (the router chart's, named after the EPP) does not exist yet
        with EppMetrics(kube, plan, Toolbox(), lines.append) as read, pytest.raises(LlmdctlError) as exc:
            read()
        assert "serviceaccounts \"router-pd-epp\" not found" in exc.value.message
        kube_api.put(f"/api/v1/namespaces/{NS}/serviceaccounts", {"metadata": {"name": "router-pd-epp", "namespace": NS}})
        with EppMetrics(kube, plan, Toolbox(), lines.append) as read:
            assert read() == epp.text and read() == epp.text
        assert len(kube_api.tokens) == 1 and kube_api.tokens[0][1] == "router-pd-epp"  # one token per verify
        assert kube_api.tokens[0][3]["spec"]["expirationSeconds"] <= 3600  # short-lived
        assert epp.auth[-1] == f"Bearer {kube_api.tokens[0][2]}"
        assert f"port-forward --namespace {NS} service/router-pd-epp 0:9090" in log.read_text()
        # a scrape without the token is what the pod proxy would send: refused, as by the real EPP
        import urllib.error
        import urllib.request
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"http://127.0.0.1:{epp.port}/metrics", timeout=5)
        assert refused.value.code == 401
        # a token the EPP does not accept (its ServiceAccount lacks GET /metrics) is reported, not shown
        epp.accept = lambda token: False
        with EppMetrics(kube, plan, Toolbox(), lines.append) as read:
            with pytest.raises(LlmdctlError) as exc:
                read()
        assert "HTTP 403" in exc.value.message and "refused the ServiceAccount's token" in exc.value.message
        out = capsys.readouterr()
        assert not any(t in out.out + out.err + " ".join(lines) + exc.value.message for t in ("sa-router-pd-epp",))
    finally:
        epp.stop()
