"""Issue 29: `llmdctl completion bash|zsh|fish`. The scripts are run by the real shells: bash's
completion function is called with COMP_WORDS/COMP_CWORD as bash sets them on TAB and COMPREPLY is
read back; fish's `complete -C` completes a command line; zsh gets the line and a TAB typed into its
line editor on a pseudo-terminal. Completion must stay off every other command's start-up.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from llmdctl.catalog.catalog import default_catalog
from llmdctl.cli.completion import catalog_names
from llmdctl.cli.parser import COMMANDS

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def scripts(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("completion")
    out = {}
    for shell in ("bash", "zsh", "fish"):
        res = subprocess.run([sys.executable, "-m", "llmdctl", "completion", shell], capture_output=True, text=True, cwd=ROOT, check=True)
        assert res.stdout and not res.stderr, res.stderr
        out[shell] = folder / f"llmdctl.{shell}"
        out[shell].write_text(res.stdout)
    return out


def bash_complete(script: Path, line: str, env: dict | None = None) -> list[str]:
    """What bash offers on TAB at the end of ``line`` (a trailing space starts a new word)."""
    words = line.split() + ([""] if line.endswith(" ") else [])
    program = (f"source {script}\nCOMP_WORDS=({' '.join(repr(w) for w in words)})\nCOMP_CWORD={len(words) - 1}\n"
               "COMP_LINE=\"${COMP_WORDS[*]}\"\n_shtab_llmdctl\nprintf '%s\\n' \"${COMPREPLY[@]}\"\n")
    res = subprocess.run(["bash", "--norc", "--noprofile", "-c", program], capture_output=True, text=True, check=True, env=env)
    return [w for w in res.stdout.splitlines() if w]


@pytest.fixture
def cluster_kubectl(tmp_path) -> tuple[dict, Path]:
    """A kubectl first on PATH that answers like one whose namespace holds the Helm records of stacks
    pd (two revisions) and pd-2, plus another chart's release; it writes down how it was called."""
    bin_dir, calls = tmp_path / "bin", tmp_path / "kubectl-calls"
    bin_dir.mkdir()
    (bin_dir / "kubectl").write_text(f"#!/bin/sh\nprintf '%s\\n' \"$*\" >> {calls}\nprintf 'ms-pd\\nrouter-pd\\nms-pd\\nms-pd-2\\nrouter-pd-2\\npostgres\\n'\n")
    (bin_dir / "kubectl").chmod(0o755)
    return dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}"), calls


def test_bash_completes_a_partial_profile_with_gh200_and_its_timesliced_variant(scripts):
    assert bash_complete(scripts["bash"], "llmdctl render -e gh") == ["gh200", "gh200-timeslice"]
    assert bash_complete(scripts["bash"], "llmdctl apply --environment gh") == ["gh200", "gh200-timeslice"]
    assert bash_complete(scripts["bash"], "llmdctl render -e amd -e host") == ["host-network", "hostnetwork"]


def test_bash_completes_commands_flags_choices_and_catalog_names(scripts):
    bash = scripts["bash"]
    assert bash_complete(bash, "llmdctl ren") == ["render"]
    assert set(bash_complete(bash, "llmdctl ")) == {c[0] for c in COMMANDS}
    assert bash_complete(bash, "llmdctl render --gi") == ["--gitops"]
    assert bash_complete(bash, "llmdctl render --gitops ") == ["argocd", "flux"]
    assert bash_complete(bash, "llmdctl render --prefix-cache ") == ["approx", "precise"]
    catalog = default_catalog()
    assert bash_complete(bash, "llmdctl render --llmd-version ") == list(catalog.versions["releases"])
    assert bash_complete(bash, "llmdctl validate --guide ") == sorted(catalog.names("guide"))
    assert bash_complete(bash, "llmdctl profiles show gh") == ["gh200", "gh200-timeslice"]
    assert "istio" in bash_complete(bash, "llmdctl gateways show ") and "nvidia-ib" not in bash_complete(bash, "llmdctl gateways show ")
    assert bash_complete(bash, "llmdctl completion ") == ["bash", "zsh", "fish"]


def test_postfixes_of_the_running_stacks_complete_from_their_helm_records(scripts, cluster_kubectl):
    env, calls = cluster_kubectl
    assert bash_complete(scripts["bash"], "llmdctl verify --postfix ", env) == ["pd", "pd-2"]
    assert bash_complete(scripts["bash"], "llmdctl destroy -n llm-d-x --postfix pd-", env) == ["pd-2"]
    asked = calls.read_text().splitlines()
    assert "-n llm-d-x" in asked[-1] and "-n" not in asked[0].split()  # the namespace on the line, else the context's
    assert all("--request-timeout=1s" in a and "owner=helm" in a for a in asked)
    if shutil.which("fish"):
        res = subprocess.run(["fish", "--no-config", "-c", f"source {scripts['fish']}; complete -C 'llmdctl status -n llm-d-y --postfix '"],
                             capture_output=True, text=True, check=True, env=env)
        assert [line.split("\t")[0] for line in res.stdout.splitlines()] == ["pd", "pd-2"]
        assert "-n llm-d-y" in calls.read_text().splitlines()[-1]


def test_no_cluster_no_postfixes_and_no_noise(scripts, tmp_path):
    env = dict(os.environ, PATH=f"{tmp_path}{os.pathsep}/usr/bin:/bin", KUBECONFIG=str(tmp_path / "none"))
    assert bash_complete(scripts["bash"], "llmdctl verify --postfix ", env) == []


def test_bash_completes_files_for_file_options(scripts, tmp_path):
    (tmp_path / "llmd.yaml").write_text("kind: Stack\n")
    program = (f"cd {tmp_path}\nsource {scripts['bash']}\nCOMP_WORDS=(llmdctl render -f llm)\nCOMP_CWORD=3\n_shtab_llmdctl\n"
               "printf '%s\\n' \"${COMPREPLY[@]}\"\n")
    res = subprocess.run(["bash", "--norc", "--noprofile", "-c", program], capture_output=True, text=True, check=True)
    assert res.stdout.split() == ["llmd.yaml"]


def test_every_catalog_name_the_commands_accept_is_offered():
    names = catalog_names(default_catalog())
    catalog = default_catalog()
    aliases = set(catalog.environments["aliases"])
    assert set(catalog.names("hardware", "overlay", "gateway")) <= set(names["environment"])
    assert aliases <= set(names["environment"]), "every -e alias (amd, gke, gh200, ...) completes"
    assert {"gh200", "gh200-timeslice", "amd", "istio", "host-network"} <= set(names["environment"])
    assert "istio" not in names["profiles"] and "nvidia-ib" not in names["gateways"]


def test_fish_completes_a_partial_profile(scripts):
    res = subprocess.run(["fish", "--no-config", "-c", f"source {scripts['fish']}; complete -C 'llmdctl render -e gh'"],
                         capture_output=True, text=True, check=True)
    assert [line.split("\t")[0] for line in res.stdout.splitlines()] == ["gh200", "gh200-timeslice"]
    res = subprocess.run(["fish", "--no-config", "-c", f"source {scripts['fish']}; complete -C 'llmdctl render --gitops '"],
                         capture_output=True, text=True, check=True)
    assert [line.split("\t")[0] for line in res.stdout.splitlines()] == ["argocd", "flux"]


# zsh completes only inside its line editor: type the line and TAB into an interactive zsh on a
# pseudo-terminal (zpty), with compinit loading the script as _llmdctl from fpath, and record what
# compadd adds (-O: the matches after zsh's own prefix matching)
ZSH_DRIVER = r"""
zmodload zsh/zpty
zpty z zsh -f -i
zpty -w z "fpath=($PWD \$fpath); autoload -U compinit; compinit -u -D"
zpty -w z 'comppostfuncs=(finish); typeset -ga _got; PROMPT=""'
zpty -w z 'finish() { zle -I; for m in "${(@)_got}"; do print -r -- "MA""TCH:$m"; done; print "<<EN""D>>"; exit }'
zpty -w z 'compadd() { local -a __h; builtin compadd -O __h "$@"; _got+=("${__h[@]}"); builtin compadd "$@" }'
zpty -w z "bindkey '^I' complete-word"
zpty -w z "$1"$'\t'
zpty -r -m z out '*<<END>>*'
for line in "${(@f)out}"; do
  [[ $line == *MATCH:* ]] && print -r -- "${${line#*MATCH:}%$'\r'}"
done
zpty -d z
"""


def test_zsh_completes_a_partial_profile_and_the_running_stacks(scripts, tmp_path, cluster_kubectl):
    text = scripts["zsh"].read_text()
    assert text.startswith("#compdef llmdctl")
    res = subprocess.run(["zsh", "-n", str(scripts["zsh"])], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    (tmp_path / "_llmdctl").write_text(text)
    (tmp_path / "driver.zsh").write_text(ZSH_DRIVER)

    def complete(line: str) -> list[str]:
        res = subprocess.run(["zsh", "-f", "driver.zsh", line], cwd=tmp_path, capture_output=True, text=True, timeout=30)
        return sorted(set(res.stdout.split()))

    assert complete("llmdctl render -e gh") == ["gh200", "gh200-timeslice"]
    assert complete("llmdctl render --gitops ") == ["argocd", "flux"]
    env, calls = cluster_kubectl
    res = subprocess.run(["zsh", "-f", "driver.zsh", "llmdctl verify -n llm-d-z --postfix "], cwd=tmp_path, capture_output=True, text=True,
                         timeout=30, env=env)
    assert sorted(set(res.stdout.split())) == ["pd", "pd-2"]
    assert "-n llm-d-z" in calls.read_text().splitlines()[-1]


def test_an_unknown_shell_is_a_usage_error(cli):
    r = cli("completion", "tcsh")
    assert r.code == 2 and "invalid choice: 'tcsh'" in r.err and r.out == ""


def test_completion_stays_off_the_start_up_of_other_commands(tmp_path):
    """shtab and the completion module load only for `llmdctl completion`."""
    code = ("import sys\nfrom llmdctl.cli.main import main\n"
            "main(sys.argv[1:])\nprint('MODULES', sorted(m for m in sys.modules if 'shtab' in m or m.endswith('completion')))\n")
    env = dict(os.environ, LLMDCTL_CACHE_DIR=str(tmp_path / "cache"))
    for argv in (["--help"], ["render", "-o", str(tmp_path / "b")], ["completion", "bash"]):
        res = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, cwd=ROOT, env=env, check=True)
        loaded = res.stdout.rsplit("MODULES", 1)[1]
        if argv[0] == "completion":
            assert "'shtab'" in loaded and "'llmdctl.cli.completion'" in loaded
        else:
            assert loaded.strip() == "[]", (argv, loaded)
