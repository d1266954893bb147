"""The merge contract (Helm MergeValues semantics plus identity-keyed lists) and --set paths."""

import copy
import re

import pytest

from llmdctl.base.errors import InputError
from llmdctl.base.merge import merge_values, normalize_args, set_path, split_path, strip_patch_markers
from llmdctl.base.yamlio import load_text


def test_maps_merge_scalars_and_plain_lists_replace():
    base = {"a": {"x": 1, "y": [1, 2]}, "b": "keep"}
    out = merge_values(base, {"a": {"x": 2, "y": [3]}})
    assert out == {"a": {"x": 2, "y": [3]}, "b": "keep"}


def test_inputs_are_never_mutated():
    base = {"a": {"env": [{"name": "A", "value": "1"}]}}
    over = {"a": {"env": [{"name": "A", "value": "2"}]}}
    snapshot = copy.deepcopy((base, over))
    merge_values(base, over)
    assert (base, over) == snapshot


@pytest.mark.parametrize("spelling", ["null", "Null", "NULL", "~", ""])
def test_null_deletes_a_key_an_earlier_layer_set(spelling):
    override = load_text(f"limits:\n  rdma/ib: {spelling}\n", "t").data
    out = merge_values({"limits": {"rdma/ib": 1, "cpu": "8"}}, override)
    assert out == {"limits": {"cpu": "8"}}


def test_null_for_an_absent_key_survives_for_helm_to_delete_the_chart_default():
    out = merge_values({"decode": {}}, {"decode": {"monitoring": None}})
    assert out == {"decode": {"monitoring": None}}


def test_empty_string_and_false_are_values_not_deletions():
    out = merge_values({"a": "x", "b": True}, {"a": "", "b": False})
    assert out == {"a": "", "b": False}


def test_env_merges_by_name_keeping_order_and_appending_new():
    base = {"env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]}
    out = merge_values(base, {"env": [{"name": "B", "value": "3"}, {"name": "C", "value": "4"}]})
    assert out["env"] == [{"name": "A", "value": "1"}, {"name": "B", "value": "3"}, {"name": "C", "value": "4"}]


def test_patch_delete_removes_an_identity_item():
    base = {"ports": [{"name": "vllm", "containerPort": 8000}, {"name": "nixl", "containerPort": 5600}]}
    out = merge_values(base, {"ports": [{"name": "nixl", "$patch": "delete"}]})
    assert out["ports"] == [{"name": "vllm", "containerPort": 8000}]


def test_args_merge_by_flag_and_split_pairs_are_joined():
    base = {"args": ["--block-size=128", "--max-model-len", "32000"]}
    out = merge_values(base, {"args": ["--max-model-len=4096", "--enforce-eager"]})
    assert out["args"] == ["--block-size=128", "--max-model-len=4096", "--enforce-eager"]
    assert normalize_args(["--a", "1", "--b", "--c=2"]) == ["--a=1", "--b", "--c=2"]


def test_containers_merge_by_name_deeply():
    base = {"containers": [{"name": "vllm", "image": "x", "env": [{"name": "A", "value": "1"}]}]}
    out = merge_values(base, {"containers": [{"name": "vllm", "env": [{"name": "B", "value": "2"}]}]})
    assert out["containers"][0] == {"name": "vllm", "image": "x", "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]}


def test_map_over_scalar_is_an_error_naming_the_path():
    with pytest.raises(InputError, match=r"a\.b: cannot merge a dict over a int"):
        merge_values({"a": {"b": 1}}, {"a": {"b": {"c": 2}}})


def test_provenance_records_the_last_layer_per_path():
    prov = {}
    out = merge_values({}, {"a": {"b": 1}}, layer="one", provenance=prov)
    merge_values(out, {"a": {"b": 2}}, layer="two", provenance=prov)
    assert prov["a.b"] == "two"


def test_unmatched_patch_markers_are_stripped():
    assert strip_patch_markers({"env": [{"name": "X", "$patch": "delete"}, {"name": "Y"}]}) == {"env": [{"name": "Y"}]}


def test_split_path_handles_indexes_slashes_and_escaped_dots():
    assert split_path("decode.containers[0].resources.limits.rdma/ib") == ["decode", "containers", 0, "resources", "limits", "rdma/ib"]
    assert split_path(r"modelArtifacts.labels.llm-d\.ai/guide") == ["modelArtifacts", "labels", "llm-d.ai/guide"]
    assert split_path("a[x].b") == ["a", "x", "b"] and type(split_path("a[x]")[1]).__name__ == "Ident"  # by name (issue 14)
    with pytest.raises(InputError):
        split_path("a[]")
    with pytest.raises(InputError):
        split_path("a..b")


def test_set_path_creates_sets_and_deletes():
    tree = {"decode": {"containers": [{"name": "vllm"}]}}
    set_path(tree, split_path("decode.containers[0].resources.limits.cpu"), "8", "x")
    assert tree["decode"]["containers"][0]["resources"]["limits"]["cpu"] == "8"
    set_path(tree, split_path("decode.containers[0].resources.limits.cpu"), None, "x")
    assert tree["decode"]["containers"][0]["resources"]["limits"] == {}
    with pytest.raises(InputError, match="past the end"):
        set_path(tree, split_path("decode.containers[5].name"), "x", "x")
    with pytest.raises(InputError, match="is not a map"):
        set_path(tree, split_path("decode.containers[0].name.deeper"), "x", "x")


# --- the YAML emitter: whatever it writes reads back as the same data ---------------------

from hypothesis import given, settings
from hypothesis import strategies as st

from llmdctl.base.yamlio import dump

_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-10**12, 10**12),
    st.floats(allow_nan=False, allow_infinity=False, width=32),
    st.text(max_size=30),
    st.sampled_from(["yes", "no", "on", "y", "null", "~", "0x1F", "1e3", "12:30", "-", "- a", "a: b", "#x", "a #b", "16Gi",
                     "0s", "--flag=1", "multi\nline\n", "multi\nline", " lead", "trail ", "tab\there", "'q'", '"dq"', "{a}", "[a]", "&a", "*a", "!t", "%", "@", "`"]),
)
_keys = st.one_of(st.text(min_size=1, max_size=12), st.sampled_from(["rdma/ib", "llm-d.ai/guide", "true", "1", "a: b"]))
_docs = st.recursive(_scalars, lambda c: st.one_of(st.lists(c, max_size=4), st.dictionaries(_keys, c, max_size=4)), max_leaves=20)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.dictionaries(_keys, _docs, max_size=5), st.lists(_docs, max_size=5)))
def test_dump_round_trips(data):
    assert load_text(dump(data), "dump").data == data


def test_dump_is_readable_block_yaml():
    text = dump({"args": ["--block-size=128"], "cfg": "a: 1\nb: 2\n", "port": "5600", "none": None})
    assert text == 'args:\n  - --block-size=128\ncfg: |\n  a: 1\n  b: 2\nport: "5600"\nnone: null\n'


def test_dump_quotes_a_trailing_newline_in_keys_and_words():
    # found by test_dump_round_trips: "$" in the plain-scalar pattern matched before a trailing newline,
    # and ".0" was written plain (it reads back as a float)
    for data in ({"A\n": None}, {"null\n": 1}, {"k": ["x\n"]}, [".0"], {".5e3": ".5"}):
        assert load_text(dump(data), "dump").data == data


def test_set_selects_list_items_by_identity():
    """issue 14: `--set` reaches items of identity lists the way the merge contract does for files."""
    tree = {"containers": [{"name": "sidecar"}, {"name": "vllm", "args": ["--block-size=128", "--max-model-len=4096"],
                                                 "env": [{"name": "UCX_TLS", "value": "rc"}]}]}
    set_path(tree, split_path("containers[vllm].env[UCX_TLS].value"), "tcp", "x")
    set_path(tree, split_path("containers[vllm].env[UCX_NET_DEVICES].value"), "mlx5_0:1", "x")
    set_path(tree, split_path("containers[vllm].args[--max-model-len]"), 8192, "x")
    set_path(tree, split_path("containers[vllm].args[--enforce-eager]"), True, "x")
    set_path(tree, split_path("containers[vllm].args[--block-size]"), None, "x")
    vllm = tree["containers"][1]
    assert vllm["env"] == [{"name": "UCX_TLS", "value": "tcp"}, {"name": "UCX_NET_DEVICES", "value": "mlx5_0:1"}]
    assert vllm["args"] == ["--max-model-len=8192", "--enforce-eager"]
    set_path(tree, split_path("containers[vllm].env[UCX_TLS]"), None, "x")
    assert [e["name"] for e in vllm["env"]] == ["UCX_NET_DEVICES"]
    set_path(tree, split_path("containers[new].image"), "img", "x")  # a missing item is added with its name
    assert tree["containers"][2] == {"name": "new", "image": "img"}
    assert tree["containers"][0] == {"name": "sidecar"}


@pytest.mark.parametrize("path,message", [
    ("replicas[x]", "selects by name only in"),
    ("containers[vllm].args[--flag].x", "has no keys below it"),
    ("containers[]", "empty '[]'"),
])
def test_set_identity_errors(path, message):
    tree = {"replicas": [1], "containers": [{"name": "vllm", "args": []}]}
    with pytest.raises(InputError, match=re.escape(message)):
        set_path(tree, split_path(path), 1, path)
