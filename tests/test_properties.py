"""Property-based tests: random flags, random spec files and corrupted catalog files thrown at the
CLI. Whatever comes in: no traceback, exit 0 or 2, a refusal says what it refuses, and accepted
input renders a bundle."""

from __future__ import annotations

import contextlib
import io
import os
import random
import re

import pytest
import shutil
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llmdctl.catalog.catalog import data_root, reset_caches
from llmdctl.cli.main import main
from llmdctl.base.yamlio import dump

ENV_NAMES = ["nvidia-ib", "amd-roce", "amd", "gke", "gke-no-rdma", "gh200-timeslice", "gh200", "host-network",
             "no-monitoring", "istio", "kgateway", "agentgateway", "amd-rocee", "nvidia", "bogus"]
LAYOUTS = ["0", "1", "2xTP1", "4xTP1", "1xTP2", "1xTP4", "1xTP8", "2xTP16", "1xTP3", "x", "4XTP1", "-1", "1xTP0"]
NAMES = ["llm-d-pd", "pd", "pd-2", "Bad_Name", "a" * 40, "-x", "team-a", "", "ns.dots"]
# An error must name what was wrong: a rule, a schema path, a flag, a file, an argument, a name kind.
# (Matched against the message after "error: ", so the prefix every error carries proves nothing.)
IDENTIFIES = re.compile(r"V-\d\d|schema|names|--[a-z]|-e |\.yaml|\.json|environment|guide|version|model|argument|postfix|namespace|spec file|release")

settings.register_profile("ci", max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("ci")


def run(args: list[str], env: dict | None = None) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    saved = {k: os.environ.get(k) for k in ("NAMESPACE", "RELEASE_NAME_POSTFIX")}
    for k in saved:
        os.environ.pop(k, None)
    os.environ.update(env or {})
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(args)
    finally:
        for k, v in saved.items():
            os.environ.pop(k, None)
            if v is not None:
                os.environ[k] = v
    return code, out.getvalue(), err.getvalue()


def check(code: int, out: str, err: str) -> None:
    assert "Traceback" not in err and "internal error" not in err, err
    assert code in (0, 2), (code, err)
    if code == 2:
        _, found, message = err.partition("error: ")  # the message and its continuation lines
        message = "\n".join(line for line in message.splitlines() if not line.startswith("hint: "))
        assert found and IDENTIFIES.search(message), err
    else:
        assert "# --- helmfile.yaml ---" in out


flag_lists = st.lists(
    st.one_of(
        st.tuples(st.just("-e"), st.sampled_from(ENV_NAMES)),
        st.tuples(st.just("--prefill"), st.sampled_from(LAYOUTS)),
        st.tuples(st.just("--decode"), st.sampled_from(LAYOUTS)),
        st.tuples(st.just("-n"), st.sampled_from(NAMES)),
        st.tuples(st.just("--postfix"), st.sampled_from(NAMES)),
        st.tuples(st.just("--guide"), st.sampled_from(["pd-disaggregation", "inference-scheduling", "nope"])),
        st.tuples(st.just("--llmd-version"), st.sampled_from(["v0.6.0", "v0.4.0", "v9"])),
        st.tuples(st.just("--pd-threshold"), st.sampled_from(["0", "16", "-1", "many"])),
        st.tuples(st.just("--rdma-resource"), st.sampled_from(["rdma/ib", "rdma/roce_gdr=2", "none", "bad name", "x=y"])),
        st.tuples(st.just("--set"), st.sampled_from([
            "ms.decode.replicas=3", "ms.decode.replicas=x", "ms.routing.bogus=1", "gaie.inferenceExtension.replicas=2",
            "infra.gateway.provider=gke", "ms.roles.containers[0].image=ghcr.io/llm-d/llm-d-rocm:v0.6.0", "x.y=1",
            "ms.decode.containers[7].name=a", "ms.decode=", "ms.decode.parallelism.tensor=0", "ms.modelArtifacts=null",
        ])),
        st.tuples(st.just("--model"), st.sampled_from(["Qwen/Qwen3-0.6B", "meta-llama/Llama-3.1-405B", "pvc://models/llama", "not a model"])),
    ),
    max_size=6,
)


@given(flag_lists)
def test_random_flags(flags):
    args = ["render", "--print"] + [x for pair in flags for x in pair]
    check(*run(args))


spec_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-3, 20), st.sampled_from(["amd", "1xTP4", "pd", "", "x" * 70, "4xTP1"])),
    lambda children: st.one_of(st.lists(children, max_size=3), st.dictionaries(st.sampled_from(["a", "b", "ms.decode.replicas"]), children, max_size=3)),
    max_leaves=6,
)
spec_docs = st.dictionaries(
    st.sampled_from(["environments", "namespace", "postfix", "guide", "llmdVersion", "model", "prefill", "decode",
                     "pdThreshold", "hfSecret", "rdmaResource", "set", "values", "apiVersion", "kind", "bogus"]),
    spec_values,
    max_size=6,
)


@given(spec_docs)
def test_random_spec_documents(doc):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "llmd.yaml"
        path.write_text(dump(doc))
        check(*run(["render", "--print", "-f", str(path)]))


CORRUPTIONS = ["drop-key", "retype", "unknown-key", "tab", "truncate", "null-values"]


@given(st.sampled_from(["profiles/nvidia-ib.yaml", "profiles/amd-roce.yaml", "profiles/gke-no-rdma.yaml", "profiles/gh200-timeslice.yaml",
                        "profiles/host-network.yaml", "gateways/istio.yaml", "gateways/gke.yaml", "guides/common.yaml",
                        "guides/pd-disaggregation.yaml", "guides/versions.yaml", "guides/environments.yaml",
                        "guides/models.yaml", "guides/rules.yaml"]),
       st.sampled_from(CORRUPTIONS), st.integers(0, 10_000))
@settings(max_examples=40)
def test_corrupted_catalog_files(rel, corruption, seed):
    from llmdctl.base.yamlio import load_text

    rng = random.Random(seed)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for folder in ("profiles", "gateways", "guides", "templates", "schemas"):
            shutil.copytree(Path(data_root()) / folder, root / folder)
        target = root / rel
        text = target.read_text()
        data = load_text(text, rel).data
        paths = _paths(data)
        path = rng.choice(paths) if paths else []
        if corruption == "drop-key" and path:
            _parent(data, path).pop(path[-1], None)
            text = dump(data)
        elif corruption == "retype" and path:
            _parent(data, path)[path[-1]] = rng.choice([42, "text", [1, 2], {"k": "v"}, True])
            text = dump(data)
        elif corruption == "unknown-key":
            data["surprise"] = 1
            text = dump(data)
        elif corruption == "tab":
            text = text.replace("  ", "\t", 1)
        elif corruption == "truncate":
            text = text[: rng.randint(0, len(text))]
        elif corruption == "null-values" and path:
            _parent(data, path)[path[-1]] = None
            text = dump(data)
        target.write_text(text)
        os.environ["LLMDCTL_CATALOG"] = str(root)
        reset_caches()
        try:
            env = {"nvidia-ib": "nvidia-ib", "amd-roce": "amd", "gke-no-rdma": "gke", "gh200-timeslice": "gh200"}.get(Path(rel).stem, "nvidia-ib")
            check(*run(["render", "--print", "-e", env]))
            code, _, err = run(["profiles"])
            assert code in (0, 2) and "Traceback" not in err and "internal error" not in err, err
        finally:
            os.environ.pop("LLMDCTL_CATALOG", None)
            reset_caches()


def _paths(data, prefix=()):
    out = []
    if isinstance(data, dict):
        for k, v in data.items():
            out.append(prefix + (k,))
            out += _paths(v, prefix + (k,))
    return out


def _parent(data, path):
    node = data
    for key in path[:-1]:
        node = node[key]
    return node


@given(st.text())
@settings(max_examples=300)
def test_json_string_matches_json_dumps(text):
    import json

    from llmdctl.base.yamlio import json_string

    assert json_string(text) == json.dumps(text, ensure_ascii=False)


def test_the_error_oracle_can_fail():
    with pytest.raises(AssertionError):
        check(2, "", "error: something went wrong\n")
    with pytest.raises(AssertionError):
        check(2, "", "Usage: llmdctl render\n")  # a usage line alone names nothing
    check(2, "", "error: --prefill 'x': expected REPLICASxTPN\n")


def test_a_guide_that_drops_the_sidecar_settings_is_named(tmp_path, monkeypatch):
    """Found by test_corrupted_catalog_files (seed 133): the pd-disaggregation guide with
    disaggregatedValues.ms.routing set to null left an error that named no file, flag or rule."""
    root = tmp_path / "catalog"
    for folder in ("profiles", "gateways", "guides", "templates", "schemas"):
        shutil.copytree(Path(data_root()) / folder, root / folder)
    from llmdctl.base.yamlio import load_text

    guide = root / "guides" / "pd-disaggregation.yaml"
    data = load_text(guide.read_text(), "guide").data
    data["disaggregatedValues"]["ms"]["routing"] = None
    guide.write_text(dump(data))
    monkeypatch.setenv("LLMDCTL_CATALOG", str(root))
    reset_caches()
    try:
        code, out, err = run(["render", "--print"])
    finally:
        monkeypatch.delenv("LLMDCTL_CATALOG")
        reset_caches()
    assert code == 2 and "ms.routing.proxy.image" in err and "guides/versions.yaml" in err, err
    check(code, out, err)
