"""issue 27, item 2: NetworkPolicies in every bundle. Model-server ports are open only to the
stack's own router (EPP, and the Gateway's data plane in gateway mode), to the stack's own
model servers, and to the metrics scraper; the EPP only to the Gateway (standalone: Envoy's
listener). Selectors use the stack's own labels, so two stacks in one namespace stay apart."""

from __future__ import annotations

import json

import pytest

from conftest import parse, plan_for

from llmdctl.base.errors import InputError
from llmdctl.compose import netpol
from llmdctl.effects.bundle import bundle_files
from llmdctl.effects.health import PASS, WARN

V9, V8, V7, V6, V4 = "v0.9.0", "v0.8.0", "v0.7.0", "v0.6.0", "v0.4.0"
ROUTER = (V9, V8, V7)
HELMFILE = (V6, V4)


def policies(plan) -> dict[str, dict]:
    """name -> NetworkPolicy, from where the bundle carries them in each generation."""
    if plan.generation == "router":
        objs = [o for o in plan.manifests["ms"] if o["kind"] == "NetworkPolicy"]
    else:
        objs = [o for o in plan.ms_values.get("extraObjects") or [] if o["kind"] == "NetworkPolicy"]
    return {o["metadata"]["name"]: o for o in objs}


def selects(selector: dict, labels: dict) -> bool:
    """A matchLabels selector against a pod's labels, as the API server matches it."""
    assert set(selector) <= {"matchLabels"}, selector  # the policies use matchLabels only
    return all(labels.get(k) == v for k, v in (selector.get("matchLabels") or {}).items())


def model_server_pods(plan) -> dict[str, dict]:
    """role -> the labels the stack's vLLM pods get (the generated chart's templates, or
    modelservice's: modelArtifacts.labels plus llm-d.ai/role)."""
    if plan.generation == "router":
        out = {}
        for o in plan.manifests["ms"]:
            if o["kind"] == "Deployment":
                out[o["metadata"]["labels"]["llm-d.ai/role"]] = o["spec"]["template"]["metadata"]["labels"]
            elif o["kind"] == "LeaderWorkerSet":
                out[o["metadata"]["labels"]["llm-d.ai/role"]] = o["spec"]["leaderWorkerTemplate"]["workerTemplate"]["metadata"]["labels"]
        return out
    labels = plan.ms_values["modelArtifacts"]["labels"]
    return {role: {**labels, "llm-d.ai/role": role} for role in plan.roles}


def rule_ports(rule: dict) -> list[int] | None:
    return [p["port"] for p in rule["ports"]] if "ports" in rule else None


def admitted(policy: dict, peer_labels: dict, namespace: str, *, pod_namespace: str) -> list[int] | str:
    """The ports a pod (labels, namespace) may reach on the policy's pods: 'all', or a port list."""
    ports: set[int] = set()
    for rule in policy["spec"]["ingress"]:
        peers = rule.get("from")
        ok = peers is None or any(_peer_matches(p, peer_labels, pod_namespace, namespace) for p in peers)
        if ok:
            if "ports" not in rule:
                return "all"
            ports |= set(rule_ports(rule))
    return sorted(ports)


def _peer_matches(peer: dict, labels: dict, pod_ns: str, policy_ns: str) -> bool:
    if "namespaceSelector" in peer:
        if not selects(peer["namespaceSelector"], {"kubernetes.io/metadata.name": pod_ns}):
            return False
    elif pod_ns != policy_ns:
        return False
    return "podSelector" not in peer or selects(peer["podSelector"], labels)


# --- the policies of a standalone stack (the default) ----------------------------------------------

@pytest.mark.parametrize("version", ROUTER + HELMFILE)
def test_every_bundle_carries_a_policy_per_role_and_one_for_the_epp(version):
    env = ["istio"] if version in HELMFILE else []
    plan = plan_for(llmd_version=version, environments=env) if env else plan_for(llmd_version=version)
    pols = policies(plan)
    n = plan.names
    assert sorted(pols) == sorted([n["prefill"], n["decode"], netpol.epp_policy_name(plan)])
    pods = model_server_pods(plan)
    for role in ("prefill", "decode"):
        pol = pols[n[role]]
        assert pol["apiVersion"] == "networking.k8s.io/v1"
        assert pol["spec"]["policyTypes"] == ["Ingress"], "egress stays open (models from Hugging Face)"
        # the policy selects exactly this role's pods of this stack, by the stack's labels
        sel = pol["spec"]["podSelector"]
        assert sel["matchLabels"]["app.kubernetes.io/instance" if version not in (V4,) else "llm-d.ai/model"] == n["stackLabel"]
        assert selects(sel, pods[role])
        assert not selects(sel, pods["decode" if role == "prefill" else "prefill"])
    assert pols[netpol.epp_policy_name(plan)]["spec"]["podSelector"]["matchLabels"] == netpol.epp_pod_labels(plan)


def test_epp_pod_labels_are_the_charts_own():
    """What each pinned router chart labels its EPP pod with (read from upstream's templates)."""
    assert netpol.epp_pod_labels(plan_for(llmd_version=V9)) == {"llm-d-router-gateway": "router-pd-epp"}
    assert netpol.epp_pod_labels(plan_for(llmd_version=V8, environments=["istio"])) == {"llm-d-router-gateway": "router-pd-epp"}
    # a pool the chart does not create: the standalone selector label
    plan = plan_for(llmd_version=V9, sets=["router.router.inferencePool.create=false"])
    assert netpol.epp_pod_labels(plan) == {"llm-d-router-standalone": "router-pd-epp"}
    assert netpol.epp_pod_labels(plan_for(llmd_version=V7)) == {"inferencepool": "router-pd-epp"}
    assert netpol.epp_pod_labels(plan_for(llmd_version=V6)) == {"inferencepool": "gaie-pd-epp"}


def test_standalone_model_servers_admit_their_epp_own_pods_and_the_scraper_only():
    plan = plan_for(llmd_version=V9)
    pols = policies(plan)
    pods = model_server_pods(plan)
    epp = netpol.epp_pod_labels(plan)
    ns = plan.namespace
    for role, vllm in (("prefill", 8000), ("decode", 8200)):
        pol = pols[plan.names[role]]
        # its own stack's model servers, either role: every port (NIXL 5600, UCX's ephemeral ports)
        assert admitted(pol, pods["prefill"], ns, pod_namespace=ns) == "all"
        assert admitted(pol, pods["decode"], ns, pod_namespace=ns) == "all"
        # the EPP pod (Envoy runs in it): the serving port only
        assert admitted(pol, epp, ns, pod_namespace=ns) == [8000]
        # Prometheus: vLLM's own port (decode's vLLM sits behind the sidecar on 8200)
        assert admitted(pol, {"app": "prometheus"}, ns, pod_namespace="llm-d-monitoring") == [vllm]
        # anything else: nothing (another pod here, the same labels in another namespace)
        assert admitted(pol, {"app": "curl"}, ns, pod_namespace=ns) == []
        assert admitted(pol, pods["decode"], ns, pod_namespace="elsewhere") == []
        # no rule without a source in standalone mode
        assert all("from" in r for r in pol["spec"]["ingress"])
    epp_pol = pols[netpol.epp_policy_name(plan)]
    # standalone: Envoy's listener is the entry point (any client); ext-proc stays on localhost
    assert admitted(epp_pol, {"app": "curl"}, ns, pod_namespace="anywhere") == [8081]
    assert admitted(epp_pol, {}, ns, pod_namespace="llm-d-monitoring") == [8081, 9090]
    assert 9002 not in admitted(epp_pol, pods["decode"], ns, pod_namespace=ns)


@pytest.mark.parametrize("version", [V9, V8, V7, V6, V4])
def test_gateway_mode_admits_the_gateways_data_plane_and_the_epp_only_the_gateway(version):
    plan = plan_for(llmd_version=version, environments=["istio"])
    pols = policies(plan)
    ns, gw = plan.namespace, plan.names["gateway"]
    gateway_pod = {"gateway.networking.k8s.io/gateway-name": gw, "istio.io/gateway-name": gw}
    for role in ("prefill", "decode"):
        assert admitted(pols[plan.names[role]], gateway_pod, ns, pod_namespace=ns) == [8000]
        # another Gateway's pods are not admitted
        other = {"gateway.networking.k8s.io/gateway-name": "gateway-other"}
        assert admitted(pols[plan.names[role]], other, ns, pod_namespace=ns) == []
    epp = pols[netpol.epp_policy_name(plan)]
    assert admitted(epp, gateway_pod, ns, pod_namespace=ns) == [9002]
    assert admitted(epp, {"app": "curl"}, ns, pod_namespace=ns) == []
    assert admitted(epp, model_server_pods(plan)["decode"], ns, pod_namespace=ns) == []
    assert admitted(epp, {}, ns, pod_namespace="llm-d-monitoring") == [9090]


def test_an_attached_gateway_is_admitted_from_its_own_namespace():
    plan = plan_for(llmd_version=V9, environments=["istio"], postfix="pd-2", attach_gateway="shared/gw-x",
                    model="Qwen/Qwen2.5-0.5B-Instruct")
    pols = policies(plan)
    pod = {"gateway.networking.k8s.io/gateway-name": "gw-x"}
    assert admitted(pols[plan.names["decode"]], pod, plan.namespace, pod_namespace="shared") == [8000]
    assert admitted(pols[plan.names["decode"]], pod, plan.namespace, pod_namespace=plan.namespace) == []
    assert admitted(pols[netpol.epp_policy_name(plan)], pod, plan.namespace, pod_namespace="shared") == [9002]


@pytest.mark.parametrize("version", [V9, V6])
def test_gke_load_balancer_proxies_are_no_pods_so_only_the_ports_they_reach_are_open(version):
    plan = plan_for(llmd_version=version, environments=["gke"])
    pols = policies(plan)
    for role in ("prefill", "decode"):
        pol = pols[plan.names[role]]
        assert admitted(pol, {}, plan.namespace, pod_namespace="anywhere") == [8000]
        assert [r for r in pol["spec"]["ingress"] if "from" not in r] == [{"ports": [{"protocol": "TCP", "port": 8000}]}]
    assert admitted(pols[netpol.epp_policy_name(plan)], {}, plan.namespace, pod_namespace="anywhere") == [9002]


def test_precise_prefix_cache_opens_the_kv_event_sockets_to_the_epp_only():
    plan = plan_for(llmd_version=V9, prefix_cache="precise")
    pols = policies(plan)
    epp = netpol.epp_pod_labels(plan)
    for role in ("prefill", "decode"):
        assert admitted(pols[plan.names[role]], epp, plan.namespace, pod_namespace=plan.namespace) == [5556, 5559, 8000]
    # approx: no KV-event ports
    plain = policies(plan_for(llmd_version=V9))
    assert admitted(plain[plan.names["decode"]], epp, plan.namespace, pod_namespace=plan.namespace) == [8000]


def test_multi_port_data_parallel_opens_every_rank_port_the_pool_targets():
    plan = plan_for(llmd_version=V9, prefill="1xDP16EP", decode="1xDP16EP", model="deepseek-ai/DeepSeek-R1")
    pols = policies(plan)
    targets = sorted(p["number"] for p in plan.pool_values["targetPorts"])
    assert len(targets) > 1
    pods = model_server_pods(plan)
    assert selects(pols[plan.names["decode"]]["spec"]["podSelector"], pods["decode"])  # LeaderWorkerSet pods
    assert admitted(pols[plan.names["decode"]], netpol.epp_pod_labels(plan), plan.namespace, pod_namespace=plan.namespace) == targets


def test_aggregated_stack_has_no_prefill_policy():
    plan = plan_for(llmd_version=V9, guide="inference-scheduling", prefill="0", decode="2xTP2")
    assert sorted(policies(plan)) == sorted([plan.names["decode"], netpol.epp_policy_name(plan)])
    # no sidecar: decode's vLLM serves (and is scraped) on the pool's port
    assert admitted(policies(plan)[plan.names["decode"]], {}, plan.namespace, pod_namespace="llm-d-monitoring") == [8000]


# --- two stacks in one namespace -----------------------------------------------------------------

@pytest.mark.parametrize("version,env", [(V9, []), (V9, ["istio"]), (V7, []), (V6, ["istio"]), (V4, ["istio"])])
def test_two_stacks_in_one_namespace_do_not_select_or_admit_each_others_pods(version, env):
    kw = {"environments": env} if env else {}
    a = plan_for(llmd_version=version, postfix="pd", **kw)
    b = plan_for(llmd_version=version, postfix="pd-2", **kw)
    assert a.namespace == b.namespace
    for mine, theirs in ((a, b), (b, a)):
        their_pods = [*model_server_pods(theirs).values(), netpol.epp_pod_labels(theirs)]
        if not theirs.standalone:
            their_pods.append({"gateway.networking.k8s.io/gateway-name": theirs.names["gateway"]})
        for pol in policies(mine).values():
            for labels in their_pods:
                assert not selects(pol["spec"]["podSelector"], labels), (pol["metadata"]["name"], labels)
                assert admitted(pol, labels, mine.namespace, pod_namespace=mine.namespace) in ([], [8081]), (pol["metadata"]["name"], labels)
        # policy names differ too (one namespace, no Helm ownership clash)
    assert not set(policies(a)) & set(policies(b))


# --- off, determinism, the bundle ----------------------------------------------------------------

@pytest.mark.parametrize("version", [V9, V6])
def test_network_policy_off_leaves_them_out_and_says_so(version):
    plan = plan_for(llmd_version=version, network_policy="off")
    assert policies(plan) == {}
    files = bundle_files(plan)
    assert not any("networkpolicy" in name for name in files)
    assert "NetworkPolicy" not in "".join(t for n, t in files.items() if n != "README.md")
    assert "rendered with `--network-policy off`" in files["README.md"]
    assert "--network-policy off" in files["README.md"].split("```sh")[1]  # the command that reproduces the bundle


@pytest.mark.parametrize("version", [V9, V6])
def test_policies_are_deterministic_and_in_the_bundle(version):
    one, two = bundle_files(plan_for(llmd_version=version)), bundle_files(plan_for(llmd_version=version))
    assert one == two
    if version == V9:
        names = sorted(n for n in one if "networkpolicy" in n)
        assert names == ["charts/ms/templates/networkpolicy-ms-pd-decode.yaml", "charts/ms/templates/networkpolicy-ms-pd-epp.yaml",
                         "charts/ms/templates/networkpolicy-ms-pd-prefill.yaml"]
    else:
        ms = parse(one["ms.values.yaml"])
        assert [o["kind"] for o in ms["extraObjects"]] == ["NetworkPolicy"] * 3
    readme = one["README.md"]
    section = readme.split("## NetworkPolicies", 1)[1].split("\n## ", 1)[0]
    for name in policies(plan_for(llmd_version=version)):
        assert f"`{name}`" in section
    assert "`--network-policy off`" in section and "llm-d-monitoring" in section


def test_user_extra_objects_stay_before_the_policies():
    plan = plan_for(llmd_version=V6, sets=['ms.extraObjects=[{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "mine"}}]'])
    kinds = [o["kind"] for o in plan.ms_values["extraObjects"]]
    assert kinds == ["ConfigMap", "NetworkPolicy", "NetworkPolicy", "NetworkPolicy"]


def test_metrics_namespace_moves_the_scraper_peer():
    plan = plan_for(llmd_version=V9, metrics_namespace="monitoring")
    pol = policies(plan)[plan.names["decode"]]
    assert admitted(pol, {}, plan.namespace, pod_namespace="monitoring") == [8200]
    assert admitted(pol, {}, plan.namespace, pod_namespace="llm-d-monitoring") == []
    assert "--metrics-namespace monitoring" in bundle_files(plan)["README.md"]


# --- inputs: flags and spec file ---------------------------------------------------------------------

@pytest.mark.parametrize("text,expected", [("networkPolicy: off", False), ("networkPolicy: 'off'", False),
                                           ("networkPolicy: on", True), ("{}", True)])
def test_spec_file_network_policy_key(tmp_path, text, expected):
    spec = tmp_path / "spec.yaml"
    spec.write_text("apiVersion: llmdctl/v1\nkind: Stack\n" + ("" if text == "{}" else text + "\n"))
    plan = plan_for(llmd_version=V9, spec_file=str(spec))
    assert plan.spec.network_policy is expected
    assert bool(policies(plan)) is expected


def test_spec_file_metrics_namespace_and_flag_wins(tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text("apiVersion: llmdctl/v1\nkind: Stack\nnetworkPolicy: off\nmetricsNamespace: monitoring\n")
    assert plan_for(llmd_version=V9, spec_file=str(spec)).spec.metrics_namespace == "monitoring"
    plan = plan_for(llmd_version=V9, spec_file=str(spec), network_policy="on", metrics_namespace="prom")
    assert plan.spec.network_policy and plan.spec.metrics_namespace == "prom"


@pytest.mark.parametrize("kwargs,words", [({"network_policy": "maybe"}, "--network-policy 'maybe': expected on or off"),
                                          ({"metrics_namespace": "Bad_NS"}, "--metrics-namespace 'Bad_NS': not a namespace name")])
def test_bad_inputs_are_refused_with_the_flag(kwargs, words):
    with pytest.raises(InputError, match=words.replace("(", r"\(")):
        plan_for(llmd_version=V9, **kwargs)


def test_cli_bad_values_exit_2_without_traceback(cli, tmp_path):
    r = cli("render", "--network-policy", "maybe", "-o", str(tmp_path / "b"))
    assert r.code == 2 and "invalid choice" in r.err
    r = cli("render", "--metrics-namespace", "UPPER", "-o", str(tmp_path / "b"))
    assert r.code == 2 and "not a namespace name" in r.err
    spec = tmp_path / "spec.yaml"
    spec.write_text("apiVersion: llmdctl/v1\nkind: Stack\nnetworkPolicy: sometimes\n")
    r = cli("render", "-f", str(spec), "-o", str(tmp_path / "b"))
    assert r.code == 2 and "networkPolicy" in r.err


def test_cli_off_renders_no_policy(cli, tmp_path):
    r = cli("render", "--network-policy", "off", "-o", str(tmp_path / "b"), env={"LLMD_VERSION": V9})
    assert r.code == 0, r.err
    assert not list((tmp_path / "b" / "charts" / "ms" / "templates").glob("networkpolicy-*"))
    r = cli("render", "-o", str(tmp_path / "c"), env={"LLMD_VERSION": V9})
    assert r.code == 0 and len(list((tmp_path / "c" / "charts" / "ms" / "templates").glob("networkpolicy-*"))) == 3


# --- doctor: does the network plugin enforce them? ---------------------------------------------------

def _daemonset(api, namespace: str, name: str) -> None:
    api.put(f"/apis/apps/v1/namespaces/{namespace}/daemonsets", {"apiVersion": "apps/v1", "kind": "DaemonSet",
                                                                  "metadata": {"name": name, "namespace": namespace}})


@pytest.mark.parametrize("sets,status,words", [
    ([("kube-system", "calico-node"), ("kube-system", "kube-proxy")], PASS, "Calico"),
    ([("kube-system", "cilium"), ("kube-system", "cilium-envoy")], PASS, "Cilium"),
    ([("calico-system", "calico-node")], PASS, "Calico"),  # the operator's namespace
    ([("kube-system", "kube-flannel-ds")], WARN, "flannel without a policy engine"),
    ([("kube-flannel", "kube-flannel-ds"), ("kube-system", "canal")], PASS, "Canal"),
    ([("kube-system", "kindnet")], WARN, "cannot tell: kindnet"),
    ([("kube-system", "kube-proxy")], WARN, "cannot tell: no known network plugin"),
])
def test_doctor_tells_whether_the_network_plugin_enforces_policies(kube_api, sets, status, words):
    from llmdctl.effects.doctor import network_policy_check
    from llmdctl.effects.kube import Kube

    for ns, name in sets:
        _daemonset(kube_api, ns, name)
    check = network_policy_check(Kube(kubeconfig=str(kube_api.kubeconfig)))
    assert check.name == "NetworkPolicy enforcement" and check.status == status and words in check.observed
    if status == WARN:
        assert "--network-policy off" in check.hint


def test_doctor_warns_never_fails_when_daemonsets_are_unreadable(kube_api):
    from llmdctl.effects.doctor import network_policy_check
    from llmdctl.effects.kube import Kube

    kube_api.deny["/apis/apps/v1/daemonsets"] = 403  # may not list across namespaces: tries kube-system
    _daemonset(kube_api, "kube-system", "antrea-agent")
    assert network_policy_check(Kube(kubeconfig=str(kube_api.kubeconfig))).status == PASS
    kube_api.deny["/apis/apps/v1/namespaces/kube-system/daemonsets"] = 403
    check = network_policy_check(Kube(kubeconfig=str(kube_api.kubeconfig)))
    assert check.status == WARN and "cannot tell" in check.observed
    kube_api.deny = {"/apis/apps/v1": 500}
    assert network_policy_check(Kube(kubeconfig=str(kube_api.kubeconfig))).status == WARN


def test_doctor_runs_the_check_only_when_policies_are_rendered(cli, fake_cluster):
    _daemonset(fake_cluster.api, "kube-system", "calico-node")
    r = cli("doctor", "-o", "json", env={"LLMD_VERSION": V9})
    names = {c["name"]: c for c in json.loads(r.out)["checks"]}
    assert names["NetworkPolicy enforcement"]["status"] == "pass"
    r = cli("doctor", "-o", "json", "--network-policy", "off", env={"LLMD_VERSION": V9})
    assert "NetworkPolicy enforcement" not in {c["name"] for c in json.loads(r.out)["checks"]}
