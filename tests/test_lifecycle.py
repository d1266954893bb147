"""apply / diff / destroy / status against stand-in helmfile, helm and kubectl (tests/fakes)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import HELMFILE_ERA, plan_for, parse
from llmdctl.effects.stacks import chart_version, group_stacks, parse_helm_list
from llmdctl.effects.tools import context_dir_name, version_tuple

MUTATING = re.compile(r"^(helmfile .* (apply|sync|destroy)\b|helm .*\buninstall\b|kubectl .*\b(apply|delete|create)\b)")


def mutations(fc) -> list[str]:
    return [c for c in fc.commands() if MUTATING.match(c)]


def names_stack(command: str, postfix: str) -> bool:
    """Does a command name one of the stack's releases or its route (exactly, not as a prefix)?
    The namespace argument is left out: namespace llm-d-pd is spelled like stack pd's route."""
    command = re.sub(r"namespace \S+", "", command)
    return re.search(rf"(?<![\w-])(infra|gaie|ms|llm-d)-{re.escape(postfix)}(?![\w-])", command) is not None


def apply(cli, fc, *args, env=None):
    return cli("apply", *args, "-y", env=env)


# --- apply ---------------------------------------------------------------------------------


def test_apply_runs_the_three_releases_in_needs_order_then_the_route(cli, fake_cluster):
    fc = fake_cluster
    fc.namespace("llm-d-pd")
    r = apply(cli, fc, "-e", "amd", "-n", "llm-d-pd")
    assert r.code == 0, r
    folder = ".llmdctl/bundles/kind-gpu/llm-d-pd/pd"
    assert mutations(fc) == [
        "helmfile --kube-context kind-gpu --file helmfile.yaml --namespace llm-d-pd --selector name=infra-pd apply --skip-needs",
        "helmfile --kube-context kind-gpu --file helmfile.yaml --namespace llm-d-pd --selector name=gaie-pd apply --skip-needs",
        "helmfile --kube-context kind-gpu --file helmfile.yaml --namespace llm-d-pd --selector name=ms-pd apply --skip-needs",
        "kubectl --context kind-gpu apply --namespace llm-d-pd --filename httproute.yaml",
    ]
    # helmfile and the route apply run inside the kept bundle
    for call in fc.calls():
        if MUTATING.match(" ".join([call["tool"], *call["argv"]])):
            assert call["cwd"] == str(fc.work / folder)
    rels = fc.releases("llm-d-pd")
    assert {n: r["chart"] for n, r in rels.items()} == {
        "infra-pd": "llm-d-infra-v1.4.0", "gaie-pd": "inferencepool-v1.4.0", "ms-pd": "llm-d-modelservice-v0.4.9"}
    route = fc.routes("llm-d-pd")["llm-d-pd"]
    assert [p["name"] for p in route["spec"]["parentRefs"]] == ["infra-pd-inference-gateway"]
    assert route["spec"]["rules"][0]["backendRefs"][0]["name"] == "gaie-pd"
    kept = fc.work / folder
    assert sorted(p.name for p in kept.iterdir()) == [".llmdctl-bundle", ".llmdctl-history", "README.md", "gaie.values.yaml", "helmfile.yaml",
                                                       "httproute.yaml", "infra.values.yaml", "ms.values.yaml"]
    # the bundle just applied is the stack's first revision, with each release's Helm revision
    assert sorted(p.name for p in (kept / ".llmdctl-history").iterdir()) == ["1"]
    assert "revision 1, bundle kept in" in r.err
    assert "llm-d-rocm" in (kept / "ms.values.yaml").read_text()
    # progress names each step, and the summary says what was installed
    assert "install  gaie-pd: inferencepool v1.4.0" in r.err
    assert "[2/4] gaie-pd" in r.err and "applied stack pd to kind-gpu/llm-d-pd" in r.err


def test_second_stack_by_env_postfix_touches_only_its_own_names(cli, fake_cluster):
    fc = fake_cluster
    fc.namespace("llm-d-pd")
    assert apply(cli, fc, "-n", "llm-d-pd").code == 0
    fc.reset_log()
    r = apply(cli, fc, env={"NAMESPACE": "llm-d-pd", "RELEASE_NAME_POSTFIX": "pd-2"})
    assert r.code == 0, r
    commands = fc.commands()
    assert commands and not any(names_stack(c, "pd") for c in commands), commands
    assert [c.split("--selector ")[1].split()[0] for c in mutations(fc) if "--selector" in c] == ["name=infra-pd-2", "name=gaie-pd-2", "name=ms-pd-2"]
    assert sorted(fc.releases("llm-d-pd")) == ["gaie-pd", "gaie-pd-2", "infra-pd", "infra-pd-2", "ms-pd", "ms-pd-2"]
    assert all(r["revision"] == "1" for r in fc.releases("llm-d-pd").values())
    route = fc.routes("llm-d-pd")["llm-d-pd-2"]
    assert route["spec"]["parentRefs"][0]["name"] == "infra-pd-2-inference-gateway"
    assert (fc.work / ".llmdctl/bundles/kind-gpu/llm-d-pd/pd-2/helmfile.yaml").is_file()

    r = cli("status", "-o", "json", env={"NAMESPACE": "llm-d-pd"})
    assert r.code == 0, r
    doc = json.loads(r.out)
    assert [(s["postfix"], s["status"], [x["name"] for x in s["releases"]]) for s in doc["stacks"]] == [
        ("pd", "deployed", ["infra-pd", "gaie-pd", "ms-pd"]),
        ("pd-2", "deployed", ["infra-pd-2", "gaie-pd-2", "ms-pd-2"]),
    ]
    assert doc["stacks"][0]["releases"][2]["version"] == "v0.4.9"


def test_same_postfix_in_two_namespaces_is_two_stacks(cli, fake_cluster):
    fc = fake_cluster
    fc.namespace("team-a")
    fc.namespace("team-b")
    assert apply(cli, fc, "-n", "team-a").code == 0
    assert apply(cli, fc, "-n", "team-b", "-e", "gke").code == 0
    assert sorted(fc.releases("team-a")) == sorted(fc.releases("team-b")) == ["gaie-pd", "infra-pd", "ms-pd"]
    assert (fc.work / ".llmdctl/bundles/kind-gpu/team-a/pd").is_dir() and (fc.work / ".llmdctl/bundles/kind-gpu/team-b/pd").is_dir()
    r = cli("status", "-A", "-o", "json")
    assert [(s["namespace"], s["postfix"]) for s in json.loads(r.out)["stacks"]] == [("team-a", "pd"), ("team-b", "pd")]
    fc.reset_log()
    r = cli("destroy", "-n", "team-a", "-y")
    assert r.code == 0, r
    assert fc.releases("team-a") == {} and not fc.routes("team-a")
    assert sorted(fc.releases("team-b")) == ["gaie-pd", "infra-pd", "ms-pd"] and "llm-d-pd" in fc.routes("team-b")
    for c in fc.commands():
        assert "team-b" not in c, c


def test_reapply_is_idempotent_and_only_changed_releases_get_a_revision(cli, fake_cluster):
    fc = fake_cluster
    fc.namespace("llm-d-pd")
    assert apply(cli, fc).code == 0
    assert apply(cli, fc).code == 0
    assert {n: r["revision"] for n, r in fc.releases("llm-d-pd").items()} == {"infra-pd": "1", "gaie-pd": "1", "ms-pd": "1"}
    r = apply(cli, fc, "--decode", "2xTP4")
    assert r.code == 0, r
    assert "upgrade  ms-pd: llm-d-modelservice-v0.4.9 (revision 1, deployed)" in r.err
    assert {n: r["revision"] for n, r in fc.releases("llm-d-pd").items()} == {"infra-pd": "1", "gaie-pd": "1", "ms-pd": "2"}


def test_a_failing_middle_release_stops_before_ms_and_says_how_to_resume(cli, fake_cluster):
    fc = fake_cluster
    fc.namespace("llm-d-pd")
    fc.fail("helmfile", "name=gaie-pd", "apply", stderr="Error: UPGRADE FAILED: inferencepools.inference.networking.k8s.io is forbidden")
    r = apply(cli, fc, "-n", "llm-d-pd")
    assert r.code == 1
    assert "step 2/4 gaie-pd (inferencepool v1.4.0) failed (exit 1)" in r.err
    assert "--selector name=gaie-pd apply" in r.err
    assert "inferencepools.inference.networking.k8s.io is forbidden" in r.err
    assert "already done: infra-pd (llm-d-infra v1.4.0)" in r.err
    assert "resume with: llmdctl apply -e nvidia-ib -e istio -n llm-d-pd --postfix pd" in r.err
    assert "clean up with: llmdctl destroy -n llm-d-pd --postfix pd --kube-context kind-gpu -y" in r.err
    assert not any("name=ms-pd" in c for c in fc.commands()), "ms must not run after gaie failed"
    assert not any(c.startswith("kubectl") and " apply " in c for c in fc.commands())
    assert sorted(fc.releases("llm-d-pd")) == ["infra-pd"]
    # the cause goes away; the same command converges
    fc.update(lambda s: s.update(fail=[]))
    r = apply(cli, fc, "-n", "llm-d-pd")
    assert r.code == 0, r
    assert sorted(fc.releases("llm-d-pd")) == ["gaie-pd", "infra-pd", "ms-pd"]
    assert fc.releases("llm-d-pd")["infra-pd"]["revision"] == "1"


def test_dry_run_runs_no_tool_and_writes_nothing(cli, fake_cluster):
    fc = fake_cluster
    r = cli("apply", "-e", "amd", "-n", "llm-d-pd", "--dry-run", "--create-namespace", "--wait")
    assert r.code == 0, r
    # the one tool call: which helm plugins are installed (apply or sync), read from helm's own folder
    assert [c["argv"][-2:] for c in fc.calls()] == [["plugin", "list"]]
    assert not (fc.work / ".llmdctl").exists()
    lines = r.out.splitlines()
    assert f"# would write {fc.work}/.llmdctl/bundles/kind-gpu/llm-d-pd/pd/: helmfile.yaml, infra.values.yaml, gaie.values.yaml, ms.values.yaml, httproute.yaml, README.md" in lines
    commands = [l for l in lines if not l.startswith("#")]
    assert commands[0] == "kubectl --context kind-gpu create namespace llm-d-pd"
    assert [c.split("--selector ")[1].split()[0] for c in commands[1:4]] == ["name=infra-pd", "name=gaie-pd", "name=ms-pd"]
    assert commands[4].endswith("kubectl --context kind-gpu apply --namespace llm-d-pd --filename httproute.yaml)")
    assert commands[5].startswith("llmdctl verify ") and "--wait --timeout 20m" in commands[5]
    fc.reset_log()
    r = cli("destroy", "--postfix", "pd-2", "--dry-run")
    assert r.code == 0 and fc.calls() == []
    # destroy does not know which llm-d generation made the stack: every release name either could have
    lines = r.out.splitlines()[1:]
    assert [l.split()[3] for l in lines] == ["delete"] + ["uninstall"] * 5
    assert [l.split()[4] for l in lines[1:]] == ["ms-pd-2", "router-pd-2", "gateway-pd-2", "gaie-pd-2", "infra-pd-2"]
    assert not any(names_stack(l, "pd") for l in r.out.splitlines())


def test_missing_or_old_tools_fail_early_with_install_hints(cli, fake_cluster):
    fc = fake_cluster
    fc.namespace("llm-d-pd")
    fc.uninstall("helmfile")
    r = apply(cli, fc)
    assert r.code == 1
    assert "helmfile is not on PATH" in r.err and "hint: install helmfile v1.1+" in r.err and "--helmfile-bin PATH" in r.err
    assert mutations(fc) == []
    fc.install("helmfile")
    fc.update(lambda s: s["versions"].update(helm="v3.9.4"))
    r = apply(cli, fc)
    assert r.code == 1 and "helm v3.9.4" in r.err and "older than the minimum v3.12.0" in r.err and "https://helm.sh/docs/intro/install/" in r.err
    assert mutations(fc) == []


def test_explicit_tool_paths_and_kubeconfig_reach_every_tool(cli, fake_cluster, tmp_path, monkeypatch):
    fc = fake_cluster
    fc.namespace("llm-d-pd", context="other")
    elsewhere = tmp_path / "tools"
    elsewhere.mkdir()
    for tool in ("helmfile", "helm", "kubectl"):
        (fc.bin / tool).rename(elsewhere / tool)
    monkeypatch.delenv("KUBECONFIG")
    r = cli("apply", "-y", "--kubeconfig", str(fc.kubeconfig), "--kube-context", "other",
            "--helmfile-bin", str(elsewhere / "helmfile"), "--helm-bin", str(elsewhere / "helm"), "--kubectl-bin", str(elsewhere / "kubectl"))
    assert r.code == 0, r
    for call in fc.calls():
        argv = call["argv"]
        if call["tool"] == "kubectl":
            assert argv[:4] == ["--kubeconfig", str(fc.kubeconfig), "--context", "other"], argv
        elif call["tool"] == "helm":
            assert argv[:4] == ["--kubeconfig", str(fc.kubeconfig), "--kube-context", "other"], argv
        else:
            assert argv[:4] == ["--kube-context", "other", "--helm-binary", str(elsewhere / "helm")], argv
            assert call["KUBECONFIG"] == str(fc.kubeconfig)
    assert sorted(fc.releases("llm-d-pd", context="other")) == ["gaie-pd", "infra-pd", "ms-pd"]
    assert fc.releases("llm-d-pd") == {}


def test_refuses_without_a_selected_context(cli, fake_cluster):
    fc = fake_cluster
    fc.kubeconfig.write_text(fc.kubeconfig.read_text().replace("current-context: kind-gpu\n", ""))
    r = apply(cli, fc)
    assert r.code == 2 and "no Kubernetes context is selected" in r.err and "kind-gpu, other" in r.err
    r = apply(cli, fc, "--kube-context", "kind-gpus")
    assert r.code == 2 and "no such context" in r.err and "did you mean 'kind-gpu'" in r.err
    assert fc.calls() == []


def test_missing_namespace_is_refused_unless_asked_to_create_it(cli, fake_cluster):
    fc = fake_cluster
    r = apply(cli, fc, "-n", "fresh")
    assert r.code == 1 and "namespace fresh does not exist in context kind-gpu; nothing was applied" in r.err
    assert "--create-namespace" in r.err
    assert mutations(fc) == [] and not (fc.work / ".llmdctl").exists()
    r = apply(cli, fc, "-n", "fresh", "--create-namespace")
    assert r.code == 0, r
    assert mutations(fc)[0] == "kubectl --context kind-gpu create namespace fresh"
    # the token Secret cannot exist in a new namespace: warn with the exact command, never a value
    assert 'kubectl create secret generic llm-d-hf-token --namespace fresh --from-literal=HF_TOKEN="$HF_TOKEN"' in r.err


def test_without_helm_diff_apply_falls_back_to_sync(cli, fake_cluster):
    fc = fake_cluster
    fc.namespace("llm-d-pd")
    fc.update(lambda s: s.update(plugins={}))
    r = apply(cli, fc)
    assert r.code == 0, r
    assert "helm plugin install https://github.com/databus23/helm-diff" in r.err
    assert [c.split()[-2] for c in mutations(fc)[:3]] == ["sync", "sync", "sync"]


def test_without_yes_and_without_a_terminal_nothing_is_applied(cli, fake_cluster):
    fc = fake_cluster
    fc.namespace("llm-d-pd")
    r = cli("apply")
    assert r.code == 2 and "pass -y/--yes" in r.err
    assert mutations(fc) == [] and not (fc.work / ".llmdctl").exists()


def test_a_tool_that_cannot_reach_the_cluster_is_reported_not_traced(cli, fake_cluster):
    fc = fake_cluster
    fc.fail("helm", "list", stderr="Error: Kubernetes cluster unreachable: dial tcp 127.0.0.1:6443: connect: connection refused")
    r = cli("status")
    assert r.code == 1
    assert "connection refused" in r.err and "helm --kube-context kind-gpu list" in r.err


# --- destroy -------------------------------------------------------------------------------


def test_destroy_touches_only_the_named_postfix(cli, fake_cluster):
    fc = fake_cluster
    fc.namespace("llm-d-pd", secrets=("llm-d-hf-token", "unrelated"))
    assert apply(cli, fc, "-n", "llm-d-pd").code == 0
    assert apply(cli, fc, "-n", "llm-d-pd", "--postfix", "pd-2").code == 0
    fc.reset_log()
    r = cli("destroy", "-n", "llm-d-pd", "--postfix", "pd-2", "-y", "-o", "json")
    assert r.code == 0, r
    assert json.loads(r.out)["removed"] == [
        "release infra-pd-2 (llm-d-infra-v1.4.0, revision 1, deployed)",
        "release gaie-pd-2 (inferencepool-v1.4.0, revision 1, deployed)",
        "release ms-pd-2 (llm-d-modelservice-v0.4.9, revision 1, deployed)",
        "HTTPRoute llm-d-pd-2",
    ]
    assert not any(names_stack(c, "pd") for c in fc.commands()), fc.commands()
    assert mutations(fc) == [
        "kubectl --context kind-gpu delete httproute llm-d-pd-2 --namespace llm-d-pd --ignore-not-found",
        "helmfile --kube-context kind-gpu --file helmfile.yaml --namespace llm-d-pd destroy --skip-deps --skip-charts",
    ]
    destroy_call = [c for c in fc.calls("helmfile") if "destroy" in c["argv"]][0]
    assert destroy_call["cwd"] == str(fc.work / ".llmdctl/bundles/kind-gpu/llm-d-pd/pd-2")
    state = fc.read()["contexts"]["kind-gpu"]["namespaces"]["llm-d-pd"]
    assert sorted(state["releases"]) == ["gaie-pd", "infra-pd", "ms-pd"]
    assert sorted(state["routes"]) == ["llm-d-pd"]
    assert state["secrets"] == ["llm-d-hf-token", "unrelated"]
    assert not (fc.work / ".llmdctl/bundles/kind-gpu/llm-d-pd/pd-2").exists()
    assert (fc.work / ".llmdctl/bundles/kind-gpu/llm-d-pd/pd").is_dir()


def test_destroy_twice_is_nothing_to_remove(cli, fake_cluster):
    fc = fake_cluster
    fc.namespace("llm-d-pd")
    assert apply(cli, fc).code == 0
    assert cli("destroy", "-y").code == 0
    fc.reset_log()
    r = cli("destroy", "-y")
    assert r.code == 0
    assert "nothing to remove" in r.err
    assert mutations(fc) == []


def test_destroy_without_the_kept_bundle_uninstalls_by_exact_name(cli, fake_cluster):
    fc = fake_cluster
    fc.namespace("llm-d-pd")
    assert apply(cli, fc).code == 0
    import shutil

    shutil.rmtree(fc.work / ".llmdctl")
    fc.reset_log()
    r = cli("destroy", "-y")
    assert r.code == 0, r
    assert mutations(fc) == [
        "kubectl --context kind-gpu delete httproute llm-d-pd --namespace llm-d-pd --ignore-not-found",
        "helm --kube-context kind-gpu uninstall ms-pd --namespace llm-d-pd",
        "helm --kube-context kind-gpu uninstall gaie-pd --namespace llm-d-pd",
        "helm --kube-context kind-gpu uninstall infra-pd --namespace llm-d-pd",
    ]
    assert fc.releases("llm-d-pd") == {}


def test_destroy_failure_stops_and_reports_what_is_left(cli, fake_cluster):
    fc = fake_cluster
    fc.namespace("llm-d-pd")
    assert apply(cli, fc).code == 0
    fc.fail("kubectl", "delete", "httproute", stderr='Error from server (Forbidden): httproutes "llm-d-pd" is forbidden')
    r = cli("destroy", "-y")
    assert r.code == 1
    assert "step 1/2 HTTPRoute llm-d-pd failed" in r.err and "Forbidden" in r.err
    assert "resume with: llmdctl destroy -n llm-d-pd --postfix pd --kube-context kind-gpu -y" in r.err
    assert sorted(fc.releases("llm-d-pd")) == ["gaie-pd", "infra-pd", "ms-pd"]


def test_destroy_rejects_a_bad_postfix(cli, fake_cluster):
    r = cli("destroy", "--postfix", "PD_2", "-y")
    assert r.code == 2 and "DNS-1123" in r.err
    assert fake_cluster.calls() == []


# --- diff and status -----------------------------------------------------------------------


def test_diff_shows_changes_on_stdout_and_needs_helm_diff(cli, fake_cluster):
    fc = fake_cluster
    fc.namespace("llm-d-pd")
    r = cli("diff")
    assert r.code == 0, r
    assert "Comparing release=infra-pd" in r.out and "+ httproute llm-d-pd" in r.out
    assert r.err.rstrip().endswith("apply would change the items above")
    assert mutations(fc) == []
    diff = [c for c in fc.commands("helmfile") if " diff " in c][0]
    assert diff.endswith("--namespace llm-d-pd diff --skip-needs --detailed-exitcode --context 3")
    assert apply(cli, fc).code == 0
    r = cli("diff")
    assert r.code == 0 and r.err.rstrip().endswith("no changes")
    fc.update(lambda s: s.update(plugins={}))
    # issue 26: without the plugin the rollout plan (read through the API) is still shown, and diff succeeds
    r = cli("diff")
    assert r.code == 0 and "helm-diff plugin" in r.err and "helm plugin install https://github.com/databus23/helm-diff" in r.err, r
    assert r.out.startswith("rollout: ")


def test_status_text_ignores_releases_that_are_not_llmdctl_stacks(cli, fake_cluster):
    fc = fake_cluster
    fc.namespace("llm-d-pd")
    assert apply(cli, fc).code == 0

    def extra(state):
        rels = state["contexts"]["kind-gpu"]["namespaces"]["llm-d-pd"]["releases"]
        rels["ms-sql"] = {"name": "ms-sql", "namespace": "llm-d-pd", "revision": "3", "updated": "x", "status": "deployed", "chart": "mssql-2.0.0", "app_version": "1"}
        rels["gaie-half"] = {"name": "gaie-half", "namespace": "llm-d-pd", "revision": "1", "updated": "x", "status": "failed", "chart": "inferencepool-v1.4.0", "app_version": "1"}
    fc.update(extra)
    r = cli("status")
    assert r.code == 0, r
    lines = r.out.splitlines()
    assert lines[0].split() == ["NAMESPACE", "POSTFIX", "STATUS", "LAYOUT", "RELEASES", "UPDATED"]
    assert len(lines) == 3 and "ms-sql" not in r.out
    half = [l for l in lines if " half " in l][0]
    assert "failed" in half and "infra-half missing" in half and "ms-half missing" in half
    assert half.split()[3] == "-"  # no model servers: nothing to read a layout from
    # the modelservice chart's Deployments, read back: the default layout of the helmfile era
    assert "prefill 4xTP1, decode 1xTP4" in [l for l in lines if " pd " in l][0]
    r = cli("list", "--postfix", "pd", "-o", "json")
    assert [s["postfix"] for s in json.loads(r.out)["stacks"]] == ["pd"]


# --- Ctrl-C --------------------------------------------------------------------------------


def test_ctrl_c_is_passed_to_the_running_tool_and_reported(fake_cluster, tmp_path):
    fc = fake_cluster
    fc.namespace("llm-d-pd")
    fc.fail("helmfile", "name=gaie-pd", "apply", hang=True)
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).parents[1]), LLMD_VERSION=HELMFILE_ERA)
    proc = subprocess.Popen([sys.executable, "-m", "llmdctl", "apply", "-y"], cwd=fc.work, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not any("name=gaie-pd" in c for c in fc.commands()):
        time.sleep(0.05)
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)  # only llmdctl gets it: it must pass it on
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert "step 2/4 gaie-pd (inferencepool v1.4.0) was interrupted" in err
    assert "already done: infra-pd" in err
    signals = [json.loads(l) for l in fc.log_file.read_text().splitlines() if '"signal"' in l]
    assert signals and signals[0]["signal"] == "SIGINT"
    assert not any("name=ms-pd" in c for c in fc.commands())


# --- pure helpers --------------------------------------------------------------------------


def test_group_stacks_and_versions():
    rows = [
        {"name": "infra-pd", "namespace": "a", "revision": "2", "status": "deployed", "chart": "llm-d-infra-v1.4.0"},
        {"name": "gaie-pd", "namespace": "a", "revision": "1", "status": "pending-upgrade", "chart": "inferencepool-v1.4.0"},
        {"name": "ms-pd", "namespace": "a", "revision": "1", "status": "deployed", "chart": "llm-d-modelservice-v0.4.9"},
        {"name": "ms-pd", "namespace": "b", "revision": "1", "status": "deployed", "chart": "llm-d-modelservice-v0.4.9"},
        {"name": "ms-x", "namespace": "b", "revision": "1", "status": "deployed", "chart": "llm-d-infra-v1.4.0"},
    ]
    stacks = group_stacks(rows)
    assert [(s["namespace"], s["postfix"], s["status"], s["missing"]) for s in stacks] == [
        ("a", "pd", "pending", []), ("b", "pd", "incomplete", ["infra-pd", "gaie-pd"])]
    assert stacks[0]["releases"][0]["revision"] == 2
    assert chart_version("llm-d-modelservice-v0.4.9", "ms") == "v0.4.9"
    assert chart_version("llm-d-infra-v1.4.0", "ms") is None
    assert version_tuple("helmfile version v1.1.3") == (1, 1, 3)
    assert version_tuple("v3.17.2+g0123abc") == (3, 17, 2)
    assert version_tuple("nonsense") is None
    assert context_dir_name("arn:aws:eks:us-east-1:123:cluster/gpu") == "arn_aws_eks_us-east-1_123_cluster_gpu"


def test_kept_bundle_is_what_render_writes(cli, fake_cluster):
    fc = fake_cluster
    fc.namespace("llm-d-pd")
    assert apply(cli, fc, "-e", "gke").code == 0
    assert cli("render", "-e", "gke", "-o", "rendered").code == 0
    kept = fc.work / ".llmdctl/bundles/kind-gpu/llm-d-pd/pd"
    for f in (fc.work / "rendered").iterdir():
        assert (kept / f.name).read_text() == f.read_text(), f.name
    assert "rdma/ib" not in (kept / "ms.values.yaml").read_text()
    assert parse((kept / "httproute.yaml").read_text())["metadata"]["name"] == "llm-d-pd"


def test_in_cluster_without_kubeconfig_pins_no_context(cli, fake_cluster, monkeypatch):
    monkeypatch.setenv("KUBECONFIG", str(fake_cluster.root / "absent"))
    r = cli("status")
    assert r.code == 2 and "no kubeconfig found" in r.err
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1")
    r = cli("status", "-o", "json")
    assert r.code == 0, r
    assert fake_cluster.commands("helm")[-1].startswith("helm list --namespace llm-d-pd")


@pytest.mark.parametrize("content,expect", [
    (b"apiVersion: v1\nkind: [unclosed\n", "is not valid YAML"),
    (b"- just\n- a list\n", "is not a kubeconfig"),
    (b"apiVersion: v1\ncontexts: 5\n", "'contexts' must be a list"),
    (b"current-context: caf\xe9\n", "not a UTF-8 text file"),
    (None, "is a folder, not a file"),
])
def test_broken_kubeconfigs_are_named_not_guessed(cli, fake_cluster, content, expect):
    """issue 14: a kubeconfig that is not YAML was reported as "no current-context"."""
    fc = fake_cluster
    if content is None:
        fc.kubeconfig.unlink()
        fc.kubeconfig.mkdir()
    else:
        fc.kubeconfig.write_bytes(content)
    r = apply(cli, fc)
    assert r.code == 2 and expect in r.err and "no Kubernetes context is selected" not in r.err, r
    assert fc.calls() == []


def test_tool_output_that_is_not_utf8_neither_kills_nor_hangs_apply(fake_cluster):
    """issue 14: non-UTF-8 bytes killed the output reader (a traceback, then "applied", exit 0);
    past a pipe buffer of them apply never returned. Run as a process with a deadline, so a
    regression fails here instead of hanging the suite."""
    fc = fake_cluster
    fc.namespace("llm-d-pd")
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).parents[1]), LLMD_VERSION=HELMFILE_ERA)

    def run():
        return subprocess.run([sys.executable, "-m", "llmdctl", "apply", "-y", "-n", "llm-d-pd"], cwd=fc.work, env=env,
                              capture_output=True, text=True, errors="replace", timeout=90)

    fc.fail("helmfile", "name=gaie-pd", "apply", garbage=8000, stderr="Error: boom after odd bytes")  # ~100 KB per stream
    r = run()
    assert r.returncode == 1 and "step 2/4 gaie-pd" in r.stderr and "boom after odd bytes" in r.stderr, r.stderr[-500:]
    assert "Traceback" not in r.stderr and "applied stack" not in r.stderr
    assert "\ufffd" in r.stderr  # shown, with the undecodable bytes replaced
    fc.update(lambda s: s.update(fail=[{"tool": "helmfile", "contains": ["name=gaie-pd", "apply"], "exit": 0, "garbage": 8000}]))
    r = run()
    assert r.returncode == 0 and "applied stack pd" in r.stderr, r.stderr[-500:]
    assert sorted(fc.releases("llm-d-pd")) == ["gaie-pd", "infra-pd", "ms-pd"]


def test_helm_list_rows_of_the_wrong_shape_are_skipped():
    rows = [{"name": {"a": 1}, "chart": "llm-d-infra-v1.4.0", "namespace": "ns", "status": "deployed", "revision": "1"},
            {"name": "infra-pd", "chart": "llm-d-infra-v1.4.0", "namespace": "ns", "status": {"x": 1}, "revision": "1"},
            {"name": "gaie-pd", "chart": "inferencepool-v1.4.0", "namespace": "ns", "status": "deployed", "revision": "2"}]
    stacks = group_stacks(parse_helm_list(json.dumps(rows)))  # the one reader every command uses
    assert [(s["postfix"], [r["name"] for r in s["releases"]]) for s in stacks] == [("pd", ["gaie-pd"])]


def test_the_kept_bundle_is_found_from_any_folder(cli, fake_cluster, tmp_path, monkeypatch):
    """issue 12: under ./.llmdctl, destroy from another folder left the stale bundle, and apply
    from another folder lost the history."""
    fc = fake_cluster
    fc.namespace("llm-d-pd")
    assert apply(cli, fc, "-n", "llm-d-pd").code == 0
    kept = fc.work / ".llmdctl/bundles/kind-gpu/llm-d-pd/pd"
    assert (kept / ".llmdctl-bundle").is_file()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    r = apply(cli, fc, "-n", "llm-d-pd", "--decode", "1xTP8")
    assert r.code == 0 and f"bundle: {kept}/" in r.err
    assert "tensor: 8" in (kept / "ms.values.yaml").read_text() and not (elsewhere / ".llmdctl").exists()
    r = cli("destroy", "-n", "llm-d-pd", "-y")
    assert r.code == 0 and not kept.exists()
    assert any(c["argv"][-3:] == ["destroy", "--skip-deps", "--skip-charts"] and c["cwd"] == str(kept) for c in fc.calls() if c["tool"] == "helmfile")


def test_state_dir_follows_xdg_and_the_override():
    from llmdctl.effects.lifecycle import state_dir

    assert state_dir({"LLMDCTL_STATE_DIR": "/s"}) == Path("/s")
    assert state_dir({"XDG_STATE_HOME": "/x"}) == Path("/x/llmdctl")
    assert state_dir({}) == Path(os.path.expanduser("~")) / ".local/state/llmdctl"


def _set_status(fc, release: str, status: str) -> None:
    def change(state):
        state["contexts"]["kind-gpu"]["namespaces"]["llm-d-pd"]["releases"][release]["status"] = status
    fc.update(change)


def test_apply_converges_after_a_failed_release(cli, fake_cluster):
    """issue 12: after an interrupted upgrade left ms-pd failed, apply said "applied" and helm-diff
    saw no change; the failed release is synced now."""
    fc = fake_cluster
    fc.namespace("llm-d-pd")
    assert apply(cli, fc, "-n", "llm-d-pd").code == 0
    _set_status(fc, "ms-pd", "failed")
    before = len(fc.calls())
    r = apply(cli, fc, "-n", "llm-d-pd")
    assert r.code == 0 and "ms-pd is failed" in r.err, r.err
    steps = [c["argv"] for c in fc.calls()[before:] if c["tool"] == "helmfile" and "--selector" in c["argv"]]
    verbs = {next(a for a in argv if a.startswith("name=")): argv[argv.index("--skip-needs") - 1] for argv in steps}
    assert verbs == {"name=infra-pd": "apply", "name=gaie-pd": "apply", "name=ms-pd": "sync"}
    assert fc.releases("llm-d-pd")["ms-pd"]["status"] == "deployed"


def test_apply_syncs_a_release_whose_live_deployments_drifted(cli, fake_cluster):
    """issue 12, item 5: after `kubectl scale` of the decode Deployment verify said "apply restores
    the plan", but helm-diff compares with the last release and apply changed nothing."""
    fc = fake_cluster
    fc.namespace("llm-d-pd")
    assert apply(cli, fc, "-n", "llm-d-pd").code == 0
    r = apply(cli, fc, "-n", "llm-d-pd")
    assert r.code == 0 and "drifted" not in r.err  # no drift: nothing is synced
    revision = fc.releases("llm-d-pd")["ms-pd"]["revision"]

    def scale(state):
        state["contexts"]["kind-gpu"]["namespaces"]["llm-d-pd"]["deployments"]["ms-pd-llm-d-modelservice-decode"]["replicas"] = 3
    fc.update(scale)
    before = len(fc.calls())
    r = apply(cli, fc, "-n", "llm-d-pd")
    assert r.code == 0, r.err
    assert "ms-pd-llm-d-modelservice-decode has 3 replicas, the plan 1" in r.err
    steps = [c["argv"] for c in fc.calls()[before:] if c["tool"] == "helmfile" and "--selector" in c["argv"]]
    verbs = {next(a for a in argv if a.startswith("name=")): argv[argv.index("--skip-needs") - 1] for argv in steps}
    assert verbs == {"name=infra-pd": "apply", "name=gaie-pd": "apply", "name=ms-pd": "sync"}
    state = fc.read()["contexts"]["kind-gpu"]["namespaces"]["llm-d-pd"]
    assert state["deployments"]["ms-pd-llm-d-modelservice-decode"]["replicas"] == 1
    assert int(state["releases"]["ms-pd"]["revision"]) == int(revision) + 1


@pytest.mark.parametrize("status,verb", [("pending-install", "uninstall"), ("pending-upgrade", "rollback")])
def test_apply_recover_clears_a_pending_release_then_applies(cli, fake_cluster, status, verb):
    """issue 12, item 4: helm killed mid-install leaves pending-install; apply refuses and names
    --recover, which clears the lock (uninstall or rollback) and converges."""
    fc = fake_cluster
    fc.namespace("llm-d-pd")
    assert apply(cli, fc, "-n", "llm-d-pd").code == 0
    _set_status(fc, "ms-pd", status)
    r = apply(cli, fc, "-n", "llm-d-pd")
    assert r.code == 1 and f"ms-pd is {status}" in r.err and "--recover -y" in r.err, r.err
    before = len(fc.commands())
    r = apply(cli, fc, "-n", "llm-d-pd", "--recover")
    assert r.code == 0, r.err
    cmds = fc.commands()[before:]
    recover = [c for c in cmds if c.startswith(f"helm --kube-context kind-gpu {verb} ms-pd")]
    assert recover == [f"helm --kube-context kind-gpu {verb} ms-pd --namespace llm-d-pd --wait"], cmds
    assert {n: r["status"] for n, r in fc.releases("llm-d-pd").items()} == {"infra-pd": "deployed", "gaie-pd": "deployed", "ms-pd": "deployed"}
    # other releases were never touched by the recovery
    assert not any(c.split()[3:4] in (["uninstall"], ["rollback"]) and "ms-pd" not in c for c in cmds if c.startswith("helm"))


def test_a_context_that_cannot_read_deployments_only_loses_the_drift_check(cli, fake_cluster):
    fc = fake_cluster
    fc.namespace("llm-d-pd")
    assert apply(cli, fc, "-n", "llm-d-pd").code == 0
    fc.fail("kubectl", "get", "deployment", stderr='Error from server (Forbidden): deployments.apps is forbidden')
    r = apply(cli, fc, "-n", "llm-d-pd")
    assert r.code == 0, r.err
    assert "could not read the live Deployments" in r.err and "Forbidden" in r.err and "--sync" in r.err


def test_live_drift_reads_replicas_and_image():
    import json as _json

    from llmdctl.effects.lifecycle import live_drift

    plan = plan_for(prefill="2xTP1", decode="1xTP2")
    image = plan.roles["decode"].image
    listing = {"kind": "List", "items": [
        {"kind": "Deployment", "metadata": {"name": plan.roles["decode"].deployment},
         "spec": {"replicas": 1, "template": {"spec": {"containers": [{"image": "vllm/other:1"}]}}}},
        {"kind": "Deployment", "metadata": {"name": plan.roles["prefill"].deployment},
         "spec": {"replicas": 2, "template": {"spec": {"containers": [{"image": image}]}}}}]}
    assert live_drift(plan, _json.dumps(listing)) == [f"{plan.roles['decode'].deployment} runs vllm/other:1, the plan {image}"]
    assert live_drift(plan, "") == [] and live_drift(plan, "not json") == []


@pytest.mark.parametrize("status,fix", [("pending-install", "helm uninstall ms-pd --namespace llm-d-pd"),
                                        ("pending-upgrade", "helm rollback ms-pd --namespace llm-d-pd")])
def test_apply_refuses_a_release_stuck_pending_with_the_command_that_clears_it(cli, fake_cluster, status, fix):
    """issue 12: with a pending-install release apply exited 0 and --sync failed with a hint that
    repeated itself."""
    fc = fake_cluster
    fc.namespace("llm-d-pd")
    assert apply(cli, fc, "-n", "llm-d-pd").code == 0
    _set_status(fc, "ms-pd", status)
    before = len(fc.commands())
    r = apply(cli, fc, "-n", "llm-d-pd")
    assert r.code == 1 and f"ms-pd is {status}" in r.err and fix in r.err and "nothing was applied" in r.err, r.err
    assert [c for c in fc.commands()[before:] if MUTATING.match(c)] == []


def test_destroy_of_an_absent_postfix_names_the_stacks_that_are_there(cli, fake_cluster):
    """Found by the e2e suite: a stack applied from an aggregated plan gets the guide's postfix, and
    `destroy -n NS` said only "nothing to remove"."""
    fc = fake_cluster
    fc.namespace("llm-d-pd")
    assert apply(cli, fc, "-n", "llm-d-pd", "--postfix", "agg").code == 0
    r = cli("destroy", "-n", "llm-d-pd", "-y", "-o", "json")
    assert r.code == 0 and "nothing to remove" in r.err
    assert "other postfixes: agg" in r.err and "llmdctl destroy -n llm-d-pd --postfix agg" in r.err
    assert parse(r.out)["otherStacks"] == ["agg"]
    assert set(fc.releases("llm-d-pd")) == {"infra-agg", "gaie-agg", "ms-agg"}  # nothing was touched


def test_destroy_leaves_a_foreign_release_that_shares_a_stack_name(cli, fake_cluster):
    """router-generation names (gateway-<postfix>, router-<postfix>) are common words: a release of
    another chart under such a name is not the stack's and destroy must not uninstall it."""
    fc = fake_cluster
    fc.namespace("llm-d-pd")
    assert apply(cli, fc, "-n", "llm-d-pd").code == 0

    def add(state):
        state["contexts"]["kind-gpu"]["namespaces"]["llm-d-pd"]["releases"]["gateway-pd"] = {
            "name": "gateway-pd", "namespace": "llm-d-pd", "revision": "3", "updated": "2026-12-01 10:00:00",
            "status": "deployed", "chart": "nginx-ingress-4.11.0", "app_version": "1.11", "digest": ""}
    fc.update(add)
    r = cli("destroy", "-y", "-n", "llm-d-pd", "-o", "json")
    assert r.code == 0, r
    assert list(fc.releases("llm-d-pd")) == ["gateway-pd"]
    assert not any("gateway-pd" in " ".join(c["argv"]) for c in fc.calls("helm") if "uninstall" in c["argv"])
