"""The command line as a new user meets it: the issues' "done when" scenarios, errors, discovery."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import parse

FIXTURES = Path(__file__).parent / "fixtures"


def _ms(bundle: Path) -> dict:
    return parse((bundle / "ms.values.yaml").read_text())


def test_render_amd_bundle(cli, tmp_path):
    out = tmp_path / "amd-bundle"
    r = cli("render", "-e", "amd", "-o", str(out))
    assert r.code == 0, r
    assert sorted(p.name for p in out.iterdir()) == [".llmdctl-bundle", "README.md", "gaie.values.yaml", "helmfile.yaml", "httproute.yaml", "infra.values.yaml", "ms.values.yaml"]
    ms = _ms(out)
    assert ms["prefill"]["replicas"] == 1 and ms["decode"]["replicas"] == 1
    assert ms["prefill"]["parallelism"]["tensor"] == 8 and ms["decode"]["parallelism"]["tensor"] == 8
    assert ms["accelerator"]["type"] == "amd"  # the chart turns tensor=8 into 8 amd.com/gpu per pod
    assert ms["prefill"]["containers"][0]["image"].startswith("ghcr.io/llm-d/llm-d-rocm:")
    assert "V-28" in r.err  # rdma resource name is cluster-specific: warned, with the flag to fix it
    assert "--rdma-resource" in r.err


def test_release_name_postfix_env_names_everything(cli, tmp_path):
    out = tmp_path / "pd2"
    r = cli("render", "-o", str(out), env={"RELEASE_NAME_POSTFIX": "pd-2"})
    assert r.code == 0, r
    helmfile = parse((out / "helmfile.yaml").read_text())
    assert [x["name"] for x in helmfile["releases"]] == ["infra-pd-2", "gaie-pd-2", "ms-pd-2"]
    route = parse((out / "httproute.yaml").read_text())
    assert route["spec"]["parentRefs"][0]["name"] == "infra-pd-2-inference-gateway"
    assert route["spec"]["rules"][0]["backendRefs"][0]["name"] == "gaie-pd-2"
    text = "".join(p.read_text() for p in out.glob("*.yaml"))
    assert "infra-pd-" not in text.replace("infra-pd-2", "")


def test_default_output_folder_uses_namespace_and_postfix(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = cli("render", env={"NAMESPACE": "team-a"})
    assert r.code == 0, r
    assert (tmp_path / "llmd-team-a-pd" / "helmfile.yaml").exists()


def test_gke_has_no_rdma_anywhere(cli):
    r = cli("render", "-e", "gke", "--print")
    assert r.code == 0, r
    assert "rdma/" not in r.out.split("# --- README.md ---")[0]
    assert "provider: gke-l7-regional-external-managed" in r.out


def test_gh200_working_set(cli):
    r = cli("render", "-e", "gh200-timeslice", "--print")
    assert r.code == 0, r
    ms = parse(r.out.split("# --- ms.values.yaml ---\n")[1].split("# --- httproute.yaml ---")[0])
    total = 0.0
    for role in ("prefill", "decode"):
        vllm = ms[role]["containers"][0]
        assert ms[role]["extraConfig"]["hostIPC"] is True
        tls = next(e["value"] for e in vllm["env"] if e["name"] == "UCX_TLS").split(",")
        assert {"tcp", "cuda_ipc"} <= set(tls)
        total += float(next(a for a in vllm["args"] if a.startswith("--gpu-memory-utilization=")).split("=")[1]) * ms[role]["replicas"]
    assert total <= 1.0


def test_print_is_deterministic(cli):
    a = cli("render", "-e", "amd", "-e", "host-network", "--print").out
    b = cli("render", "-e", "amd", "-e", "host-network", "--print").out
    assert a == b and a


@pytest.mark.parametrize(
    "args,expect",
    [
        (["--prefill", "1xTP4", "--decode", "1xTP2"], ["V-15", "TP4", "TP2"]),
        (["-e", "gke", "--set", "ms.decode.containers[0].resources.limits.rdma/ib=1"], ["V-10", "rdma/ib"]),
        (["-e", "gh200-timeslice", "-e", "host-network"], ["V-09"]),
        (["-e", "amd-rocee"], ["did you mean 'amd-roce'?"]),
        (["--postfix", "Bad_Name"], ["Bad_Name", "DNS-1123"]),
        (["--postfix", "a" * 60], ["a" * 60, "characters; the limit is"]),
        (["-e", "amd", "-e", "nvidia-ib"], ["V-01", "-e amd-roce -e nvidia-ib: conflicting hardware profiles"]),
        (["--namespace", "Team_A"], ["namespace 'Team_A'"]),
        (["--prefill", "4xTP3"], ["power of two"]),
        (["--decode", "0"], ["at least one decode"]),
        (["--guide", "inference-scheduling", "--prefill", "2xTP1"], ["serves without prefill"]),
        (["--guide", "pd-disagregation"], ["did you mean 'pd-disaggregation'"]),
        (["--set", "ms.routing.inferencePool.name=x"], ["ms.routing", "unknown key 'inferencePool'"]),
        (["--set", "infra.gateway.provider=gke"], ["infra.gateway.provider", "'gke' is not one of"]),
        (["--set", "nope"], ["expected RELEASE.PATH=VALUE"]),
        (["--values", "ms=/does/not/exist.yaml"], ["values file not found"]),
        (["--rdma-resource", "not a resource"], ["--rdma-resource"]),
        (["--model", "not a model id"], ["--model"]),
        # issue 14: invariants after overrides, and names checked whole
        (["--set", "ms.decode.replicas=0"], ["V-37", "decode replicas is 0"]),
        (["--set", "ms.decode.containers[0].args=[--max-num-seqs=512]"], ["V-36", "decode", "--kv-transfer-config"]),
        (["--rdma-resource", "rdma/ib=0"], ["--rdma-resource", "at least 1"]),
        (["--model", "hf://"], ["--model 'hf://'", "name after the scheme"]),
        (["--hf-secret", "My_Secret"], ["--hf-secret 'My_Secret'", "not a valid Secret name"]),
        (["--set", "ms.multinode=true", "--decode", "1xTP16"], ["V-17", "16 GPUs per pod"]),
        (["--postfix", "pd\n"], ["postfix 'pd\\n'", "DNS-1123"]),
        (["--namespace", "llm-d-pd\n"], ["namespace 'llm-d-pd\\n'"]),
        (["--model", "Qwen/Qwen3-8B\n"], ["--model"]),
        (["--set", "ms.roles.containers=[{name: {a: 1}}]"], ["containers[0].name: expected string, got dict"]),
        (["-e", "AMD"], ["did you mean 'amd'?"]),
        (["--guide", "pd"], ["unknown guide 'pd'", "did you mean 'pd-disaggregation'"]),
        # unknown keys: the role and container objects are closed to the keys the chart reads
        (["--set", "ms.decode.replica=2"], ["ms.decode.replica", "unknown key 'replica'", "did you mean 'replicas'"]),
        (["--set", "ms.decod.replicas=2"], ["unknown key 'decod'", "did you mean 'decode'"]),
        (["--set", "ms.decode.runtimeClassName=nvidia"], ["unknown key 'runtimeClassName'"]),
        (["--set", "ms.prefill.containers[0].envFrom=[]"], ["unknown key 'envFrom'"]),
        (["--set", "ms.decode.monitoring.podmonitor.scrapeTimeout=10s"], ["unknown key 'scrapeTimeout'"]),
        (["--model-size", "100GB"], ["--model-size '100GB'", "binary units", "not GB"]),
        (["--set", "gaie.inferenceExtension.replica=2"], ["gaie.inferenceExtension.replica", "did you mean 'replicas'"]),
        (["--llmd-version", "v0.4.0", "--set", "gaie.inferencePol.x=1"], ["unknown key 'inferencePol'", "did you mean 'inferencePool'"]),
    ],
)
def test_refusals_are_clear_exit_2_and_never_a_traceback(cli, args, expect):
    r = cli("render", "--print", *args)
    assert r.code == 2, r
    assert r.out == ""  # nothing half-rendered
    for text in expect:
        assert text in r.err, (text, r.err)


def test_hf_token_is_refused_and_never_echoed(cli, tmp_path):
    token = "hf_" + "A1b2C3d4E5f6G7h8I9j0KlMnOp"
    for args in (["--model", token], ["--set", f"ms.modelArtifacts.authSecretName={token}"], ["--hf-secret", token]):
        r = cli("render", "--print", *args)
        assert r.code == 2 and token not in r.err + r.out and "hf_A1..." in r.err, r
    spec = tmp_path / "spec.yaml"
    spec.write_text(f"model: {token}\n")
    r = cli("validate", "-f", str(spec))
    assert r.code == 2 and token not in r.err + r.out
    # found by generated inputs: a token quoted back by argparse or by a YAML error
    for args in (["render", "--set", "ms.modelArtifacts.labels.x=", token], ["validate", "-o", "json", "--bogus", token]):
        r = cli(*args)
        assert r.code == 2 and token not in r.err + r.out and "hf_A1..." in r.err, r
    spec.write_text(f"model: Qwen/Qwen3-8B\nmodel: {token}\n")
    r = cli("validate", "-f", str(spec))
    assert r.code == 2 and token not in r.err + r.out and "duplicate" in r.err, r


def test_json_output_errors_are_json(cli):
    for args in (["validate", "-e", "amdd", "-o", "json"], ["validate", "-o", "json", "--bogus"], ["validate", "--output=json", "--model", "hf://"]):
        r = cli(*args)
        assert r.code == 2
        doc = json.loads(r.out)
        assert doc["error"]["code"] == 2 and doc["error"]["message"], doc


def test_debug_is_accepted_anywhere(cli):
    r = cli("validate", "--debug")
    assert r.code == 0 and r.out.startswith("ok:")


def test_spec_file_renders_the_same_from_any_folder(cli, tmp_path, monkeypatch):
    spec_dir = tmp_path / "specs"
    spec_dir.mkdir()
    (spec_dir / "extra.yaml").write_text("decode:\n  replicas: 2\n")
    (spec_dir / "llmd.yaml").write_text("apiVersion: llmdctl/v1\nkind: Stack\nvalues:\n  ms: extra.yaml\n")
    outs = []
    for where in (tmp_path, spec_dir):
        monkeypatch.chdir(where)
        r = cli("render", "--print", "-f", str(spec_dir / "llmd.yaml"))
        assert r.code == 0, r
        outs.append(r.out)
    assert outs[0] == outs[1]
    assert "replicas: 2" in outs[0] and f"-f {spec_dir / 'llmd.yaml'}" in outs[0]
    assert "--values ms=extra.yaml**: user override (spec file)" in outs[0] and str(tmp_path / "specs" / "extra") not in outs[0]


def test_rdma_resource_flag_overrides_profile(cli):
    r = cli("render", "-e", "amd", "--rdma-resource", "rdma/roce_gdr=2", "--print")
    assert r.code == 0, r
    assert "rdma/roce_gdr: 2" in r.out and "rdma/ib" not in r.out.split("# --- README.md ---")[0]
    assert "V-28" not in r.err  # the user confirmed the name


def test_spec_file_with_flags_overriding(cli, tmp_path):
    extra = tmp_path / "extra.yaml"
    extra.write_text("roles:\n  containers:\n    - name: vllm\n      env:\n        - name: UCX_LOG_LEVEL\n          value: info\n")
    spec = tmp_path / "llmd.yaml"
    spec.write_text(
        "apiVersion: llmdctl/v1\nkind: Stack\nenvironments: [amd]\nnamespace: from-file\npostfix: file\n"
        "prefill: 2xTP4\ndecode: 1xTP8\nset:\n  ms.decode.replicas: 3\nvalues:\n  ms: extra.yaml\n"
    )
    r = cli("render", "-f", str(spec), "--postfix", "flag", "--print")
    assert r.code == 0, r
    ms = parse(r.out.split("# --- ms.values.yaml ---\n")[1].split("# --- httproute.yaml ---")[0])
    assert ms["decode"]["replicas"] == 3 and ms["prefill"]["replicas"] == 2
    assert "name: infra-flag" in r.out and "namespace: from-file" in r.out
    assert any(e["name"] == "UCX_LOG_LEVEL" for e in ms["decode"]["containers"][0]["env"])
    assert any(e["name"] == "UCX_LOG_LEVEL" for e in ms["prefill"]["containers"][0]["env"])
    for role in ("prefill", "decode"):  # AMD with prefill TP4 != decode TP8 needs ROCM_ATTN on both roles
        assert "--attention-backend=ROCM_ATTN" in ms[role]["containers"][0]["args"]


@pytest.mark.parametrize(
    "name,expect",
    [
        ("tabs.yaml", ["tabs.yaml:2:", "tabs"]),
        ("duplicate-keys.yaml", ["duplicate-keys.yaml:", "duplicate"]),
        ("wrong-types.yaml", ["environments", "expected array"]),
        ("empty.yaml", ["empty"]),
        ("binary.yaml", ["binary.yaml"]),
        ("unknown-key.yaml", ["unknown-key.yaml:1:1", "unknown key 'namespce'", "did you mean 'namespace'?"]),
        ("unclosed.yaml", ["unclosed.yaml:"]),
        ("list.yaml", ["must be a YAML mapping"]),
    ],
)
def test_malformed_spec_files(cli, name, expect):
    r = cli("validate", "-f", str(FIXTURES / "malformed" / name))
    assert r.code == 2, r
    for text in expect:
        assert text in r.err, (text, r.err)


def test_schema_error_from_a_values_file_points_into_it(cli, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("decode:\n  replicas: 2\nrouting:\n  servicePort: 8000\n  inferencePool:\n    name: x\n")
    r = cli("render", "--print", "--values", f"ms={bad}")
    assert r.code == 2
    assert f"{bad}:5:3: ms.routing.inferencePool: unknown key 'inferencePool'" in r.err


def test_malformed_values_file(cli):
    r = cli("render", "--print", "--values", f"ms={FIXTURES / 'malformed' / 'tabs.yaml'}")
    assert r.code == 2 and "tabs.yaml:2:" in r.err


def test_validate_json_lists_warnings(cli):
    r = cli("validate", "-e", "amd", "-o", "json")
    assert r.code == 0, r
    doc = json.loads(r.out)
    assert doc["valid"] is True
    assert doc["stack"]["hardware"] == "amd-roce"
    assert any(f["rule"] == "V-28" and f["severity"] == "warning" for f in doc["findings"])


def test_validate_json_on_refusal(cli):
    r = cli("validate", "--prefill", "1xTP8", "--decode", "1xTP4", "-o", "json")
    assert r.code == 2
    doc = json.loads(r.out)
    assert doc["valid"] is False and doc["findings"][0]["rule"] == "V-15"


def test_output_folder_is_never_clobbered(cli, tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    r = cli("render", "-o", str(tmp_path))
    assert r.code == 2 and "did not write (notes.txt)" in r.err
    assert (tmp_path / "notes.txt").read_text() == "mine"
    out = tmp_path / "b"
    assert cli("render", "-o", str(out)).code == 0
    assert cli("render", "-e", "amd", "-o", str(out)).code == 0  # re-render over an earlier bundle
    assert "amd" in (out / "ms.values.yaml").read_text()


@pytest.mark.parametrize("group,name,text", [("profiles", "gh200-timeslice", "timeSlicing"), ("gateways", "gke", "backendPort: false"), ("guides", "inference-scheduling", "aggregatedOnly")])
def test_discovery(cli, group, name, text):
    listing = cli(group)
    assert listing.code == 0 and name in listing.out
    rows = json.loads(cli(group, "-o", "json").out)
    assert name in [row["name"] for row in rows]
    shown = cli(group, "show", name)
    assert shown.code == 0 and text in shown.out
    missing = cli(group, "show", name[:-1] + "x")
    assert missing.code == 2 and "did you mean" in missing.err


def test_versions_and_rules(cli):
    versions = json.loads(cli("versions", "-o", "json").out)
    assert [v["modelservice"] for v in versions] == [None, None, None, "v0.4.9", "v0.3.8"]
    assert [(v["version"], v["generation"], v["router"]) for v in versions[:3]] == [
        ("v0.9.0 (default)", "router", "v0.10.0"), ("v0.8.0", "router", "v0.9.0"), ("v0.7.0", "router", "v1.5.0")]
    rules = json.loads(cli("rules", "-o", "json").out)
    ids = {r["id"] for r in rules}
    assert {"V-15", "V-10", "V-09", "V-21", "V-23"} <= ids
    assert all(r["why"] and r["source"] for r in rules)


@pytest.mark.parametrize("command", [[], ["render"], ["validate"], ["profiles"], ["profiles", "show"], ["gateways"], ["guides"], ["versions"], ["rules"]])
def test_help_everywhere_with_an_example(cli, command):
    r = cli(*command, "--help")
    assert r.code == 0 and "Usage:" in r.out and "Example" in r.out


def test_usage_errors_exit_2(cli):
    assert cli("bogus").code == 2
    assert cli("render", "--nope").code == 2
    assert cli("validate", "-o", "xml").code == 2
    assert cli("--version").out.startswith("llmdctl ")


def test_a_foreign_helmfile_folder_survives(cli, tmp_path):
    """issue 14: a folder with the user's own helmfile.yaml is not an llmdctl bundle."""
    mine = {"helmfile.yaml": "releases: [mine]\n", "NOTES.txt": "notes\n", "ms-pd/values_amd.yaml": "x: 1\n"}
    for name, text in mine.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    r = cli("render", "-o", str(tmp_path))
    assert r.code == 2 and "helmfile.yaml" in r.err and "--force" in r.err and "replaces helmfile.yaml" in r.err
    assert all((tmp_path / n).read_text() == t for n, t in mine.items())
    r = cli("render", "-o", str(tmp_path), "--force")  # writes into it, replacing only same-named files
    assert r.code == 0, r
    assert (tmp_path / "NOTES.txt").read_text() == "notes\n" and (tmp_path / "ms-pd/values_amd.yaml").read_text() == "x: 1\n"
    assert (tmp_path / ".llmdctl-bundle").is_file()


def test_rerender_updates_only_its_own_files_and_says_what_changed(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert cli("render", "-o", ".").code == 0  # the current folder works
    (tmp_path / "my-notes.md").write_text("mine")
    r = cli("render", "-o", ".")
    assert r.code == 0 and "no changes (6 unchanged)" in r.err, r
    r = cli("render", "-o", ".", "--decode", "1xTP8")
    assert r.code == 0 and "changed" in r.err and "ms.values.yaml" in r.err
    assert (tmp_path / "my-notes.md").read_text() == "mine"
    fresh = tmp_path / "fresh"
    assert cli("render", "-o", str(fresh)).code == 0
    assert fresh.stat().st_mode & 0o077, "a new bundle folder follows the umask, not mkdtemp's 0700"


def test_spec_file_errors_name_the_spec_file(cli, tmp_path):
    spec = tmp_path / "llmd.yaml"
    spec.write_text("apiVersion: llmdctl/v1\nkind: Stack\ndecode: 2xTP3\n")
    r = cli("validate", "-f", str(spec))
    assert r.code == 2 and f"{spec}: decode '2xTP3'" in r.err and "--decode" not in r.err


def test_aliases_are_listed_and_shown(cli):
    rows = {r["name"]: r for r in json.loads(cli("profiles", "-o", "json").out)}
    assert rows["amd"]["kind"] == "alias" and rows["amd"]["summary"] == "-e amd-roce"
    assert rows["gke"]["summary"] == "-e gke-dra + gke (llm-d >= v0.8); -e gke-no-rdma + gke (<= v0.6.0)"
    assert rows["default"]["summary"].endswith("without -e: nvidia-ib + standalone from llm-d v0.8, nvidia-ib + istio before")
    r = cli("profiles", "show", "amd")
    assert r.code == 0 and r.out.startswith("# amd is an alias for -e amd-roce") and "kind: hardware" in r.out
    r = cli("profiles", "show", "AMD-roce")
    assert r.code == 2 and "did you mean 'amd-roce'" in r.err


def test_values_file_type_mistakes_point_at_the_file_and_say_quote_it(cli, tmp_path):
    f = tmp_path / "v6.yaml"
    f.write_text("roles:\n  containers:\n    - name: vllm\n      env:\n        - name: VLLM_NIXL_SIDE_CHANNEL_PORT\n          value: 5600\n")
    r = cli("validate", "--values", f"ms={f}")
    assert r.code == 2 and f"{f}:6:11:" in r.err and 'quote it: "5600"' in r.err, r.err


def test_roles_overrides_in_aggregated_mode_reach_decode_only(cli, tmp_path):
    f = tmp_path / "agg.yaml"
    f.write_text("roles:\n  containers:\n    - name: vllm\n      args: [--max-num-seqs=64]\n")
    r = cli("render", "--print", "--guide", "inference-scheduling", "--prefill", "0", "--values", f"ms={f}", "--set", "ms.roles.replicas=2")
    assert r.code == 0, r
    ms = parse(r.out.split("# --- ms.values.yaml ---\n")[1].split("# --- ")[0])
    assert ms["prefill"] == {"create": False} and ms["decode"]["replicas"] == 2
    assert "--max-num-seqs=64" in ms["decode"]["containers"][0]["args"]


def test_null_names_are_quoted_in_the_helmfile(cli):
    r = cli("render", "--print", "-n", "null", "--postfix", "null")
    assert r.code == 0, r
    helmfile = parse(r.out.split("# --- helmfile.yaml ---\n")[1].split("# --- ")[0])
    assert {rel["namespace"] for rel in helmfile["releases"]} == {"null"}
    assert [rel["name"] for rel in helmfile["releases"]] == ["infra-null", "gaie-null", "ms-null"]


@pytest.mark.parametrize("template,text,expect", [
    ("README.md.tmpl", "", "is empty"),
    ("README.md.tmpl", "# ${nope}\n", "uses ${nope}"),
    ("epp-pd-prefix-decider.yaml.tmpl", "kind: [unclosed\n", "does not render valid YAML"),
    ("epp-pd-prefix-decider.yaml.tmpl", "kind: Something\n", "kind: EndpointPickerConfig"),
])
def test_a_broken_template_in_a_custom_catalog_is_refused(cli, tmp_path, monkeypatch, template, text, expect):
    import shutil

    from llmdctl.base.data import data_root
    from llmdctl.catalog.catalog import reset_caches

    root = tmp_path / "catalog"
    for folder in ("profiles", "gateways", "guides", "templates", "schemas"):
        shutil.copytree(Path(data_root()) / folder, root / folder)
    (root / "templates" / template).write_text(text)
    monkeypatch.setenv("LLMDCTL_CATALOG", str(root))
    reset_caches()
    try:
        r = cli("render", "--print")
    finally:
        monkeypatch.delenv("LLMDCTL_CATALOG")
        reset_caches()
    assert r.code == 2 and expect in r.err and r.out == "", r
