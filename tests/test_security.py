"""issue 27: secure by default. The decode sidecar refuses prefill targets outside the stack's own
pool (with the least RBAC that lets it watch the pool), the vLLM pods keep only what their hardware
needs, and each profile's Pod Security level is stated, computed from the pods, and checked."""

from __future__ import annotations

import glob
import json
import os

import pytest

from conftest import plan_for
from llmdctl.catalog.catalog import Catalog
from llmdctl.compose.layout import LEAST_PRIVILEGE
from llmdctl.compose.modelserver import SIDECAR_TOKEN_VOLUME
from llmdctl.effects.admission import pod_security_check
from llmdctl.effects.bundle import bundle_files
from llmdctl.plan.podsecurity import stack_pod_security

TOKEN_PATH = "/var/run/secrets/kubernetes.io/serviceaccount"


def _objects(plan, kind):
    return [o for o in plan.manifests["ms"] if o["kind"] == kind]


def _decode_pod(plan):
    dep = next(o for o in plan.manifests["ms"] if o["kind"] == "Deployment" and o["metadata"]["name"] == plan.roles["decode"].deployment)
    return dep["spec"]["template"]["spec"]


def test_every_release_whose_sidecar_has_ssrf_protection_turns_it_on():
    """Read from the programs' own flag tables: a release whose sidecar knows the flag must set it."""
    cat = Catalog()
    for name in ("v0.9.0", "v0.8.0", "v0.7.0"):
        release = cat.release(name)
        table = (release.engine or {}).get("sidecarFlags")
        flags = json.load(open(os.path.join(cat.root, "schemas", table)))["flags"] if table else {}
        assert bool(release.dialect.get("sidecarSsrfProtection")) == ("--enable-ssrf-protection" in flags), name


@pytest.mark.parametrize("version", ["v0.9.0", "v0.8.0"])
def test_the_sidecar_only_calls_pods_of_its_own_pool(version):
    plan = plan_for(llmd_version=version, prefill="1xTP1", decode="1xTP1")
    pod = _decode_pod(plan)
    sidecar = next(c for c in pod["initContainers"] if c["name"] == "routing-proxy")
    assert "--enable-ssrf-protection=true" in sidecar["args"]
    # a bare pool name would mean namespace "default": the pod's own namespace, expanded by the kubelet
    assert f"--inference-pool=$(POD_NAMESPACE)/{plan.names['pool']}" in sidecar["args"]
    assert {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}} in sidecar["env"]
    # the API token reaches the sidecar alone: vLLM (model code) gets none, nothing is automounted
    assert sidecar["volumeMounts"] == [{"name": SIDECAR_TOKEN_VOLUME, "mountPath": TOKEN_PATH, "readOnly": True}]
    assert not any(m.get("mountPath") == TOKEN_PATH for c in pod["containers"] for m in c.get("volumeMounts") or [])
    [sa] = _objects(plan, "ServiceAccount")
    assert sa["automountServiceAccountToken"] is False and "automountServiceAccountToken" not in pod
    volume = next(v for v in pod["volumes"] if v["name"] == SIDECAR_TOKEN_VOLUME)
    assert [next(iter(src)) for src in volume["projected"]["sources"]] == ["serviceAccountToken", "configMap", "downwardAPI"]
    # least privilege: that pool by name, pods, read verbs, this namespace only (a Role, not a ClusterRole)
    [role] = _objects(plan, "Role")
    assert role["rules"] == [
        {"apiGroups": ["inference.networking.k8s.io"], "resources": ["inferencepools"], "resourceNames": [plan.names["pool"]], "verbs": ["get", "list", "watch"]},
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]}]
    [binding] = _objects(plan, "RoleBinding")
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": pod["serviceAccountName"]}]
    assert not _objects(plan, "ClusterRole")
    # the flags are ones the pinned sidecar accepts (V-52 reads its flag table)
    assert not [f for f in plan.findings if f.rule == "V-52"]
    # the sidecar itself meets restricted
    assert sidecar["securityContext"] == {"allowPrivilegeEscalation": False, "runAsNonRoot": True, "capabilities": {"drop": ["ALL"]},
                                          "seccompProfile": {"type": "RuntimeDefault"}}
    readme = bundle_files(plan)["README.md"]
    assert "--enable-ssrf-protection" in readme and f"Role `{role['metadata']['name']}`" in readme


def test_no_sidecar_no_role_and_the_older_charts_say_what_protects_them():
    aggregated = plan_for(llmd_version="v0.9.0", prefill="0", decode="1xTP1")
    assert not _objects(aggregated, "Role") and not _objects(aggregated, "RoleBinding")
    for version in ("v0.7.0", "v0.6.0"):
        plan = plan_for(llmd_version=version)
        assert not _objects(plan, "Role") if plan.manifests.get("ms") else True
        readme = bundle_files(plan)["README.md"]
        assert "cannot pass the sidecar its SSRF protection flags" in readme and "FailClose" in readme, version
    assert "**Failure mode `FailOpen`**" in bundle_files(plan_for(llmd_version="v0.9.0"))["README.md"]


HARDWARE = sorted(name for name in (os.path.basename(p)[:-5] for p in glob.glob(os.path.join(Catalog().root, "profiles", "*.yaml")))
                  if Catalog().layer(name).kind == "hardware")  # overlays add to a profile, which states the level


def test_every_hardware_profile_is_checked():
    assert {"nvidia-ib", "gke-no-rdma", "gb200"} <= set(HARDWARE) and "host-network" not in HARDWARE


@pytest.mark.parametrize("profile", HARDWARE)
def test_each_profile_states_the_pod_security_level_its_pods_need(profile):
    stated = Catalog().layer(profile).hardware.get("podSecurity")
    assert stated and stated["why"], f"{profile}: hardware.podSecurity missing"
    computed = stack_pod_security(plan_for(llmd_version="v0.9.0", environments=[profile]))
    assert computed.level == stated["level"], (profile, computed)


def test_vllm_keeps_only_what_its_hardware_needs():
    gke = _decode_pod(plan_for(llmd_version="v0.9.0", environments=["gke-no-rdma"]))
    vllm = next(c for c in gke["containers"] if c["name"] == "vllm")
    assert {k: vllm["securityContext"][k] for k in LEAST_PRIVILEGE} == LEAST_PRIVILEGE
    ib = _decode_pod(plan_for(llmd_version="v0.9.0", environments=["nvidia-ib"]))
    sc = next(c for c in ib["containers"] if c["name"] == "vllm")["securityContext"]
    assert sc["capabilities"] == {"drop": ["ALL"], "add": ["IPC_LOCK"]} or sc["capabilities"] == {"add": ["IPC_LOCK"], "drop": ["ALL"]}
    # no RDMA: IPC_LOCK goes (V-55 says so), and the stack needs baseline instead of privileged
    plan = plan_for(llmd_version="v0.9.0", environments=["nvidia-ib"], rdma_resource="none")
    sc = next(c for c in _decode_pod(plan)["containers"] if c["name"] == "vllm")["securityContext"]
    assert "add" not in sc["capabilities"] and any(f.rule == "V-55" for f in plan.findings)
    assert stack_pod_security(plan).level == "baseline"
    # host access keeps what its guides run with (privileged host-network cannot refuse escalation)
    host = plan_for(llmd_version="v0.9.0", environments=["amd-roce", "host-network"])
    sc = next(c for c in _decode_pod(host)["containers"] if c["name"] == "vllm")["securityContext"]
    assert sc.get("privileged") is True and "allowPrivilegeEscalation" not in sc
    assert "least privilege" not in [layer.name for layer in host.layers]


def _ns(level=None):
    return {"metadata": {"name": "llm-d-pd", "labels": {"pod-security.kubernetes.io/enforce": level} if level else {}}}


def test_doctor_compares_the_level_the_pods_need_with_the_namespace():
    ib = plan_for(llmd_version="v0.9.0")
    c = pod_security_check(ib, _ns("baseline"))
    assert c.status == "fail" and "enforces baseline; the stack needs privileged" in c.observed and "IPC_LOCK" in c.observed, c
    assert "--rdma-resource none" in c.hint
    assert pod_security_check(ib, _ns("privileged")).status == "pass"
    c = pod_security_check(ib, _ns())
    assert c.status == "pass" and "no enforce label" in c.observed
    gke = plan_for(llmd_version="v0.9.0", environments=["gke-no-rdma"])
    assert pod_security_check(gke, _ns("baseline")).status == "pass"
    c = pod_security_check(gke, _ns("restricted"))
    assert c.status == "fail" and "runAsNonRoot" in c.observed, c


def test_validate_reports_the_level(cli):
    r = cli("validate", "--llmd-version", "v0.9.0", "-e", "gke-no-rdma", "-o", "json")
    ps = json.loads(r.out)["stack"]["podSecurity"]
    assert ps["level"] == "baseline" and set(ps["roles"]) == {"prefill", "decode"}
    assert any("runAsNonRoot" in w for w in ps["roles"]["decode"]["stricterRefuses"])


@pytest.mark.parametrize("extra,value,needle", [
    ((), "capabilities=5", "securityContext.capabilities: expected a mapping (add, drop), got 5"),
    (("nvidia-ib",), "capabilities=5", "securityContext.capabilities: expected a mapping (add, drop), got 5"),
    ((), "capabilities.add=IPC_LOCK", "securityContext.capabilities.add: expected a list, got 'IPC_LOCK'"),
])
def test_capabilities_of_the_wrong_shape_are_refused_with_their_path(cli, extra, value, needle):
    # both readers of the capabilities (V-29's, V-55's with --rdma-resource none) once ended in an internal error
    args = [a for e in extra for a in ("-e", e)] + (["--rdma-resource", "none"] if extra else [])
    r = cli("validate", "--llmd-version", "v0.9.0", *args, "--set", f"ms.decode.containers[vllm].securityContext.{value}")
    assert r.code == 2 and needle in r.err and "internal error" not in r.err, r
