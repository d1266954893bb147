"""Issue 24: user-visible defects found by trying llmdctl as a new user and by generated inputs.
Each test failed on the main of 2026-12-07 and names the item it guards."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from conftest import HELMFILE_ERA, plan_for
from llmdctl.base.errors import InputError

ROOT = Path(__file__).resolve().parent.parent
DEFAULT = ""  # LLMD_VERSION="" in cli(): the catalog's real default release


# --- 1. a user's file is never overwritten without --force ----------------------------------


def test_a_file_the_marker_does_not_list_is_the_users(cli, tmp_path):
    out = tmp_path / "b"
    assert cli("render", "-o", str(out), env={"LLMD_VERSION": DEFAULT}).code == 0
    marker = out / ".llmdctl-bundle"
    marker.write_text("".join(line + "\n" for line in marker.read_text().splitlines() if line != "README.md"))
    (out / "README.md").write_text("my own notes\n")

    r = cli("render", "-o", str(out), env={"LLMD_VERSION": DEFAULT})
    assert r.code == 2, r
    assert "does not list README.md" in r.err and "--force" in r.err
    assert (out / "README.md").read_text() == "my own notes\n"

    r = cli("render", "-o", str(out), "--force", env={"LLMD_VERSION": DEFAULT})
    assert r.code == 0, r
    assert "replaced (--force; not written by llmdctl) README.md" in r.err
    assert (out / "README.md").read_text().startswith("# llm-d stack")
    assert "README.md" in marker.read_text().splitlines()  # ours from now on


def test_a_kept_apply_bundle_folder_keeps_the_users_files_too(tmp_path):
    from llmdctl.effects.bundle_folder import MARKER, write_bundle

    folder = tmp_path / "kept"
    write_bundle({"helmfile.yaml": "a: 1\n"}, folder)
    (folder / "notes.md").write_text("mine\n")
    with pytest.raises(InputError, match="does not list notes.md"):
        write_bundle({"helmfile.yaml": "a: 2\n", "notes.md": "generated\n"}, folder)
    assert (folder / "notes.md").read_text() == "mine\n" and (folder / "helmfile.yaml").read_text() == "a: 1\n"
    assert "notes.md" not in (folder / MARKER).read_text()


def test_charts_pull_never_overwrites_a_file_of_the_packages_name(tmp_path):
    from llmdctl.base.errors import LlmdctlError
    from llmdctl.catalog.catalog import default_catalog
    from llmdctl.effects.charts import pull_charts

    class Box:  # helm is "there"; nothing may be pulled over the user's file
        def path(self, tool):
            return "/bin/true"

        def query(self, cmd, timeout=0):
            raise AssertionError(f"ran {cmd}")

    release = default_catalog().release("v0.9.0")
    chart = release.charts["router"]
    name = chart["chart"].rsplit("/", 1)[-1]
    (tmp_path / f"{name}-{chart['version']}.tgz").write_text("half a download\n")
    with pytest.raises(LlmdctlError, match="helm pull would overwrite it"):
        pull_charts({"router": chart}, str(tmp_path), Box(), repository=None, llmd_version="v0.9.0", say=lambda _: None)
    assert (tmp_path / f"{name}-{chart['version']}.tgz").read_text() == "half a download\n"


# --- 2-4. internal errors on user input ------------------------------------------------------


@pytest.mark.parametrize("version", [DEFAULT, HELMFILE_ERA])
@pytest.mark.parametrize("args, expect", [
    (("--set", "ms.prefill.create=false"), "use --prefill 0"),
    (("--set", "ms.decode.create=false"), "cannot run without them"),
    (("--prefill", "0", "--set", "ms.prefill.create=true"), "nothing would route to those pods"),
])
def test_turning_a_role_on_or_off_by_set_is_refused_with_the_layout_to_use(cli, version, args, expect):
    r = cli("validate", *args, env={"LLMD_VERSION": version})
    assert r.code == 2, r
    assert expect in r.err and "internal error" not in r.err


@pytest.mark.parametrize("args, expect", [
    (("--rdma-resource", "rdma/ib=²"), "must be a whole number"),
    (("--pd-threshold", "٣"), "expected a whole number (digits 0-9)"),
    (("--prefill", "²xTP1"), "expected REPLICASxTPN"),
    (("--decode", "1xTP٤"), "--decode"),
    (("--autoscale", "decode=1-٤"), "expected ROLE=MIN-MAX"),
    (("--scorer", "queue=٢"), "whole-number weight"),
])
def test_numbers_on_the_command_line_are_ascii_digits(cli, args, expect):
    r = cli("validate", *args, env={"LLMD_VERSION": DEFAULT})
    assert r.code == 2, r
    assert expect in r.err and "internal error" not in r.err


def test_plan_numbers_are_ascii_too(cli):
    for args in (("--isl", "١٠٠٠", "--osl", "10"), ("--isl", "100", "--osl", "10", "--rate", "nan"), ("--isl", "100", "--osl", "10", "--rate", "٣")):
        r = cli("plan", *args)
        assert r.code == 2 and "digits 0-9" in r.err, r
    r = cli("plan", "calibrate", "--calibration", "x.json", "--tp", "1", "--decode-point", "٦٤:8000:38")
    assert r.code == 2 and "in digits" in r.err, r


def _catalog_copy(tmp_path: Path) -> Path:
    root = tmp_path / "catalog"
    for folder in ("profiles", "gateways", "guides", "templates", "schemas"):
        shutil.copytree(ROOT / folder, root / folder)
    return root


@pytest.mark.parametrize("breakage, expect", [
    (lambda f: f.unlink(), "cannot read schema"),
    (lambda f: (f.unlink(), f.mkdir()), "cannot read schema"),
    (lambda f: f.write_text("{nope"), "not JSON"),
    (lambda f: f.write_bytes(b"\xff\xfe\x00"), "not a UTF-8 text file"),
    (lambda f: f.write_text("[1]"), "expected a JSON object"),
])
def test_a_corrupt_values_schema_names_the_file(cli, tmp_path, monkeypatch, breakage, expect):
    from llmdctl.catalog.catalog import reset_caches

    root = _catalog_copy(tmp_path)
    target = root / "schemas" / "values" / "router-v0.10.0.schema.json"
    breakage(target)
    monkeypatch.setenv("LLMDCTL_CATALOG", str(root))
    reset_caches()
    try:
        r = cli("validate", env={"LLMD_VERSION": DEFAULT})
    finally:
        monkeypatch.delenv("LLMDCTL_CATALOG")
        reset_caches()
    assert r.code == 3 or r.code == 2, r
    assert str(target) in r.err and expect in r.err and "internal error" not in r.err


def test_a_template_that_is_not_utf8_is_named(cli, tmp_path, monkeypatch):
    from llmdctl.catalog.catalog import reset_caches

    root = _catalog_copy(tmp_path)
    (root / "templates" / "epp-pd-token-load.yaml.tmpl").write_bytes(b"\xff\xfe")
    monkeypatch.setenv("LLMDCTL_CATALOG", str(root))
    reset_caches()
    try:
        r = cli("validate", env={"LLMD_VERSION": DEFAULT})
    finally:
        monkeypatch.delenv("LLMDCTL_CATALOG")
        reset_caches()
    assert "epp-pd-token-load.yaml.tmpl: not a UTF-8 text file" in r.err and "internal error" not in r.err, r


# --- 5-7. rules that missed ------------------------------------------------------------------


def test_v10_refuses_a_device_plugin_rdma_resource_where_rdma_comes_by_dra(cli):
    r = cli("validate", "-e", "gke", "--set", "ms.decode.containers[0].resources.limits.rdma/ib=1", env={"LLMD_VERSION": DEFAULT})
    assert r.code == 2 and "V-10" in r.err and "DRA resource claims" in r.err, r
    r = cli("validate", "--rdma-resource", "none", "--set", "ms.decode.containers[0].resources.limits.rdma/ib=1",
            env={"LLMD_VERSION": DEFAULT})
    assert r.code == 2 and "V-10" in r.err, r
    assert cli("validate", "-e", "gke", env={"LLMD_VERSION": DEFAULT}).code == 0


def test_v42_refuses_an_instance_over_nodes_with_rdma_turned_off(cli):
    args = ("--prefill", "1xDP16EP", "--decode", "1xDP16EP", "--model", "deepseek-ai/DeepSeek-R1")
    assert cli("validate", *args, env={"LLMD_VERSION": DEFAULT}).code == 0
    r = cli("validate", *args, "--rdma-resource", "none", env={"LLMD_VERSION": DEFAULT})
    assert r.code == 2 and "V-42" in r.err and "spans 2 nodes" in r.err, r
    # the KV cache of a plain P/D stack without NICs goes over TCP, and the rules say so
    plan = plan_for(llmd_version="v0.9.0", rdma_resource="none")
    assert plan.hardware_facts["kvTransport"] == "tcp"
    assert any(f.rule == "V-11" for f in plan.findings)


@pytest.mark.parametrize("version", [DEFAULT, HELMFILE_ERA, "v0.7.0"])
def test_v46_the_pool_must_select_the_stacks_own_pods(cli, version):
    r = cli("validate", "--set", r"ms.modelArtifacts.labels.llm-d\.ai/guide=x", env={"LLMD_VERSION": version})
    assert r.code == 2 and "V-46" in r.err and "llm-d.ai/guide=pd-disaggregation (the pods have x)" in r.err, r
    assert cli("validate", env={"LLMD_VERSION": version}).code == 0


def test_v46_a_selector_without_the_stacks_label_may_take_other_stacks_pods():
    from llmdctl.compose.rules.routing import pool_selects_own_pods

    plan = plan_for(llmd_version="v0.9.0")
    assert list(pool_selects_own_pods(plan)) == []
    router = plan.release("router")
    pool = router.values["router"]["modelServers"]
    key = next(iter(plan.pool_selector))
    narrowed = {k: v for k, v in pool["matchLabels"].items() if k != key}
    values = {**router.values, "router": {**router.values["router"], "modelServers": {**pool, "matchLabels": narrowed}}}
    plan = plan.replace(releases=tuple(r._replace(values=values) if r.key == "router" else r for r in plan.releases))
    messages = list(pool_selects_own_pods(plan))
    assert len(messages) == 1 and f"no longer has {key}=" in messages[0]


def test_v47_the_route_stays_on_the_stacks_gateway(cli):
    r = cli("validate", "-e", "istio", "--set", "router.httpRoute.inferenceGatewayName=other", env={"LLMD_VERSION": DEFAULT})
    assert r.code == 2 and "V-47" in r.err and "llm-d-pd/other, not llm-d-pd/gateway-pd" in r.err, r
    r = cli("validate", "-e", "istio", "--set", "router.httpRoute.create=false", env={"LLMD_VERSION": DEFAULT})
    assert r.code == 2 and "V-47" in r.err, r
    assert cli("validate", "-e", "istio", env={"LLMD_VERSION": DEFAULT}).code == 0


# --- 8. a values file's mistake is shown at the user's line and index --------------------------


@pytest.mark.parametrize("version", [DEFAULT, HELMFILE_ERA])
def test_values_type_error_points_at_the_users_line_and_index(cli, tmp_path, version):
    f = tmp_path / "v6.yaml"
    f.write_text("decode:\n  containers:\n    - name: vllm\n      env:\n        - name: A\n          value: \"x\"\n"
                 "        - name: B\n          value: 3\n")
    r = cli("validate", "--values", f"ms={f}", env={"LLMD_VERSION": version})
    assert r.code == 2, r
    assert f"{f}:8:11: ms.decode.containers[0].env[1].value: expected string" in r.err, r.err


def test_values_type_error_through_roles_is_reported_once(cli, tmp_path):
    f = tmp_path / "v7.yaml"
    f.write_text("roles:\n  containers:\n    - name: vllm\n      env:\n        - name: B\n          value: 3\n")
    r = cli("validate", "--values", f"ms={f}", env={"LLMD_VERSION": DEFAULT})
    assert r.code == 2 and r.err.count(f"{f}:6:11: ms.roles.containers[0].env[0].value") == 1, r.err


# --- 9. every stack flag has its spec-file twin -----------------------------------------------


_SPEC_KEY = {"environment": "environments", "set_": "set", "scorer": "scorers", "scheduler_param": "schedulerParams",
             "chart_repo": "chartRepository"}


def test_every_stack_flag_has_a_spec_file_key():
    import argparse

    from llmdctl.cli.parser import add_stack_options
    from llmdctl.inputs.spec import RELEASE_KEYS

    p = argparse.ArgumentParser()
    add_stack_options(p)
    schema = json.loads((ROOT / "schemas" / "spec.schema.json").read_text())
    keys = set(schema["properties"])
    for action in p._actions:
        if action.dest in ("help", "file"):
            continue
        key = _SPEC_KEY.get(action.dest) or re.sub(r"_(.)", lambda m: m.group(1).upper(), action.dest)
        assert key in keys, f"{action.option_strings[0]} has no spec-file key {key}"
    assert set(schema["properties"]["values"]["properties"]) == set(RELEASE_KEYS)


def test_spec_file_values_for_the_router_release(cli, tmp_path):
    (tmp_path / "router-extra.yaml").write_text("router:\n  epp:\n    replicas: 2\n")
    spec = tmp_path / "llmd.yaml"
    spec.write_text("apiVersion: llmdctl/v1\nkind: Stack\nvalues:\n  router: router-extra.yaml\n")
    r = cli("render", "-f", str(spec), "--print", env={"LLMD_VERSION": DEFAULT})
    assert r.code == 0, r
    router = r.out.split("# --- router.values.yaml ---\n", 1)[1].split("# --- ", 1)[0]
    assert "replicas: 2" in router


# --- 10. help describes the default generation -------------------------------------------------

_RELEASE_MENTION = re.compile(r"\b(infra|gaie|router|ms|gateway)-(?:<postfix>|pd\b|,|\s)")


@pytest.mark.parametrize("command", ["", "render", "validate", "apply", "verify", "doctor", "diff", "destroy", "status", "list"])
def test_help_never_names_releases_the_default_release_does_not_have(cli, command):
    from llmdctl.catalog.catalog import default_catalog

    release = default_catalog().release(None)
    have = set(release.release_keys) | {"gateway"}  # gateway-<postfix>: the stack's Gateway in gateway mode
    r = cli(*([command] if command else []), "--help")
    assert r.code == 0
    named = {m.group(1) for m in _RELEASE_MENTION.finditer(r.out)}
    assert named <= have, f"`llmdctl {command} --help` names {sorted(named - have)}-<postfix>, which llm-d {release.name} has not"
    assert "Default: nvidia-ib + istio." not in r.out
    if command == "render":
        assert "Replace a non-empty -o folder" not in r.out and "files llmdctl did not write" in r.out


# --- 11. plan refuses what it does not use, and honours -o -----------------------------------


def test_plan_refuses_calibrate_only_flags_and_calibrate_refuses_plan_only_ones(cli, tmp_path):
    r = cli("plan", "--peak-prefill", "20000", "--isl", "1000", "--osl", "100")
    assert r.code == 2 and "does not use --peak-prefill" in r.err, r
    # --tp means something to plan too (issue 28): it narrows the search to that TP
    r = cli("plan", "--tp", "2", "--isl", "1000", "--osl", "100", "-o", "json")
    assert r.code == 0 and json.loads(r.out)["recommendation"]["decode"].endswith("xTP2"), r
    r = cli("plan", "calibrate", "--calibration", str(tmp_path / "c.json"), "--tp", "1", "--peak-prefill", "20000", "--isl", "5")
    assert r.code == 2 and "does not use --isl" in r.err, r


def test_plan_calibrate_json(cli, tmp_path):
    r = cli("plan", "calibrate", "--calibration", str(tmp_path / "c.json"), "--tp", "4", "--peak-prefill", "20000", "-o", "json")
    assert r.code == 0, r
    doc = json.loads(r.out)
    assert doc["tp"] == 4 and doc["measured"]["prefillMfu"] > 0 and doc["calibration"].endswith("c.json")


# --- 12. apply --dry-run shows the command that will run -----------------------------------------


def test_dry_run_shows_sync_when_helm_diff_is_missing(cli, fake_cluster):
    fc = fake_cluster
    r = cli("apply", "-n", "llm-d-pd", "--dry-run", env={"LLMD_VERSION": DEFAULT})
    assert r.code == 0, r
    assert " apply --skip-needs" in r.out and " sync --skip-needs" not in r.out
    fc.update(lambda s: s.update(plugins={}))
    r = cli("apply", "-n", "llm-d-pd", "--dry-run", env={"LLMD_VERSION": DEFAULT})
    assert r.code == 0, r
    assert " sync --skip-needs" in r.out and " apply --skip-needs" not in r.out
    assert "helm-diff plugin is not installed" in r.out
    # only asked helm which plugins it has (local: no cluster call)
    assert len(fc.commands()) == 2 and all(c.startswith("helm ") and c.endswith(" plugin list") for c in fc.commands())


# --- 13. a check about pods that do not exist is pending ----------------------------------------


def test_sidecar_check_is_pending_without_decode_pods():
    from llmdctl.effects.health import PENDING, Observed, evaluate_stack

    plan = plan_for(llmd_version="v0.9.0", prefill="1xTP1", decode="1xTP1")
    deployments = {o["metadata"]["name"]: o for o in plan.manifests["ms"] if o["kind"] == "Deployment"}
    checks = {c.name: c for c in evaluate_stack(plan, Observed([], deployments, [], None, None, None, {}, None))}
    sidecar = checks["decode sidecar routing-proxy"]
    assert sidecar.status == PENDING and "no decode pods" in sidecar.observed
