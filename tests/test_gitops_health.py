"""Issue 29: the Argo CD health checks the bundle's argocd-cm patch adds, run by a real Lua 5.1
interpreter (lupa's; Argo CD runs gopher-lua, a Lua 5.1) on the objects as the API server returns
them. The sync waves wait on these verdicts, so a wrong one either stalls the app-of-apps (a
standalone InferencePool reported Progressing forever) or lets the next wave start too early.
"""

from __future__ import annotations

from conftest import parse
from llmdctl.effects.gitops import HEALTH_CHECKS

import lupa.lua51 as lua51  # noqa: E402  (the test extra pins lupa: missing, it fails rather than skips)


def health(key: str, obj: dict) -> tuple[str, str]:
    lua = lua51.LuaRuntime(unpack_returned_tuples=True)
    lua.globals().obj = lua.table_from(obj, recursive=True)
    hs = lua.execute(HEALTH_CHECKS[key])
    return hs["status"], hs["message"]


POOL = "inference.networking.k8s.io_InferencePool"
LWS = "leaderworkerset.x-k8s.io_LeaderWorkerSet"
APP = "argoproj.io_Application"


def _pool(*conditions: dict) -> dict:
    return {"kind": "InferencePool", "spec": {}, "status": {"parents": [
        {"parentRef": {"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "gateway-pd"}, "conditions": list(conditions)}]}}


def test_a_standalone_pool_has_no_gateway_parent_and_is_healthy():
    assert health(POOL, {"kind": "InferencePool", "spec": {}})[0] == "Healthy"
    assert health(POOL, {"kind": "InferencePool", "spec": {}, "status": {"parents": []}})[0] == "Healthy"


def test_a_pool_its_gateway_accepted_is_healthy_refused_degraded_pending_progressing():
    accepted = {"type": "Accepted", "status": "True", "reason": "Accepted"}
    resolved = {"type": "ResolvedRefs", "status": "True", "reason": "ResolvedRefs"}
    assert health(POOL, _pool(accepted, resolved)) == ("Healthy", "accepted by its Gateway")
    status, message = health(POOL, _pool(accepted, {"type": "ResolvedRefs", "status": "False", "reason": "InvalidExtensionRef",
                                                    "message": "Service router-pd-epp not found"}))
    assert status == "Degraded" and "router-pd-epp not found" in message
    assert health(POOL, _pool({"type": "Accepted", "status": "Unknown", "reason": "Pending"}))[0] == "Progressing"
    # the alpha group's pools (inferencepool < v1.0) are judged the same way
    assert HEALTH_CHECKS["inference.networking.x-k8s.io_InferencePool"] == HEALTH_CHECKS[POOL]


def test_a_leaderworkerset_is_healthy_when_every_group_is_ready_on_the_current_template():
    lws = {"kind": "LeaderWorkerSet", "spec": {"replicas": 2, "leaderWorkerTemplate": {"size": 2}}}
    assert health(LWS, lws)[0] == "Progressing"  # no status yet
    assert health(LWS, {**lws, "status": {"readyReplicas": 1, "updatedReplicas": 2}}) == ("Progressing", "1 of 2 groups ready, 2 updated")
    assert health(LWS, {**lws, "status": {"readyReplicas": 2, "updatedReplicas": 1}})[0] == "Progressing"  # rolling
    assert health(LWS, {**lws, "status": {"readyReplicas": 2, "updatedReplicas": 2,
                                          "conditions": [{"type": "Available", "status": "True"}]}})[0] == "Healthy"
    failed = {"readyReplicas": 0, "conditions": [{"type": "Failed", "status": "True", "message": "group 0 failed"}]}
    assert health(LWS, {**lws, "status": failed}) == ("Degraded", "group 0 failed")
    assert health(LWS, {"kind": "LeaderWorkerSet", "spec": {}, "status": {"readyReplicas": 1, "updatedReplicas": 1}})[0] == "Healthy"


def test_a_child_application_reports_its_own_health_so_the_next_wave_waits():
    assert health(APP, {"kind": "Application", "spec": {}})[0] == "Progressing"
    app = {"kind": "Application", "status": {"health": {"status": "Degraded", "message": "Deployment ms-pd-decode"}}}
    assert health(APP, app) == ("Degraded", "Deployment ms-pd-decode")
    assert health(APP, {"kind": "Application", "status": {"health": {"status": "Healthy"}}})[0] == "Healthy"


def test_the_patch_carries_exactly_these_checks(cli, tmp_path):
    out = tmp_path / "b"
    r = cli("render", "--llmd-version", "v0.9.0", "-e", "gb200", "--gitops", "argocd", "--repo-url", "https://git.example.com/x.git",
            "-o", str(out))
    assert r.code == 0, r
    data = parse((out / "gitops/argocd/argocd-cm.patch.yaml").read_text())["data"]
    assert {k: v for k, v in data.items() if k.startswith("resource.customizations.health.")} == {
        f"resource.customizations.health.{k}": v for k, v in HEALTH_CHECKS.items()}
    assert data["application.resourceTrackingMethod"] == "annotation"
