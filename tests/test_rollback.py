"""issue 26, undo: every apply keeps a revision of the stack (bundle, flags, Helm revisions);
rollback re-plans one, refuses unless that renders byte-identical, and applies it through apply's
own path (against stand-in helmfile, helm and kubectl, and the FakeKube apply's checks read)."""

from __future__ import annotations

import json

from llmdctl.effects.history import KEEP, record, revisions

FOLDER = ".llmdctl/bundles/kind-gpu/llm-d-pd/pd"
IMAGE = "ms.decode.containers[vllm].image"


def _apply(cli, *args):
    return cli("apply", "-n", "llm-d-pd", "--llmd-version", "v0.9.0", *args, "-y")


def _decode_image(folder) -> str:
    text = (folder / "charts/ms/templates/deployment-ms-pd-decode.yaml").read_text()
    return next(line.split("image:", 1)[1].strip() for line in text.splitlines() if "image:" in line and "vllm" in line)


def test_rollback_returns_every_release_and_the_kept_bundle_to_the_previous_revision(cli, fake_cluster):
    fc = fake_cluster
    fc.namespace("llm-d-pd")
    assert _apply(cli).code == 0
    kept = fc.work / FOLDER
    first = _decode_image(kept)
    r = _apply(cli, "--set", f"{IMAGE}=docker.io/vllm/vllm-openai:v0.26.1")
    assert r.code == 0 and "revision 2," in r.err, r
    assert _decode_image(kept) == "docker.io/vllm/vllm-openai:v0.26.1"

    fc.reset_log()
    r = cli("rollback", "-n", "llm-d-pd", "--postfix", "pd", "-y")
    assert r.code == 0, r
    assert "rollback: stack pd from revision 2" in r.err and "to revision 1" in r.err
    # every release of the stack, in needs order, from the kept folder that now holds revision 1's files
    selectors = [c.split("--selector ")[1].split()[0] for c in fc.commands("helmfile") if "--selector" in c and " apply" in c]
    assert selectors == ["name=router-pd", "name=ms-pd"], fc.commands()
    assert _decode_image(kept) == first
    history = revisions(kept)
    assert [h.number for h in history] == [1, 2, 3] and history[-1].source == "rollback to 1"
    assert history[-1].files() == history[0].files()
    # status lists them, for people and for scripts
    r = cli("status", "-n", "llm-d-pd", "--postfix", "pd", "-o", "json")
    doc = json.loads(r.out)
    assert [x["revision"] for x in doc["revisions"]] == [1, 2, 3] and doc["revisions"][2]["source"] == "rollback to 1"
    assert set(doc["revisions"][0]["releases"]) == {"router-pd", "ms-pd"}
    r = cli("status", "-n", "llm-d-pd", "--postfix", "pd")
    assert "rollback to 1" in r.out and "REVISION" in r.out


def test_rollback_refuses_what_it_cannot_reproduce_and_changes_nothing(cli, fake_cluster):
    fc = fake_cluster
    fc.namespace("llm-d-pd")
    # one revision: nothing earlier
    assert _apply(cli).code == 0
    r = cli("rollback", "-n", "llm-d-pd", "--postfix", "pd", "-y")
    assert r.code == 1 and "there is no earlier one" in r.err and "Traceback" not in r.err, r
    # a values file edited after the apply: revision 2 can no longer be rendered as it was
    values = fc.work / "decode.yaml"
    values.write_text("decode:\n  replicas: 2\n")
    assert _apply(cli, "--values", f"ms={values}").code == 0
    assert _apply(cli).code == 0
    values.write_text("decode:\n  replicas: 3\n")
    fc.reset_log()
    r = cli("rollback", "-n", "llm-d-pd", "--postfix", "pd", "-y")
    assert r.code == 1 and "no longer render what was applied then" in r.err and "helm rollback" in r.err, r
    assert not [c for c in fc.commands() if " apply" in c or " sync" in c], fc.commands()
    # an unknown revision is named with the ones kept
    r = cli("rollback", "-n", "llm-d-pd", "--postfix", "pd", "--to", "9", "-y")
    assert r.code == 1 and "no revision 9; kept: 1, 2, 3" in r.err, r
    # and a stack never applied from here says where revisions come from
    r = cli("rollback", "-n", "llm-d-pd", "--postfix", "other", "-y")
    assert r.code == 1 and "no revisions kept" in r.err, r


def test_rollback_to_a_named_revision_and_dry_run_runs_nothing(cli, fake_cluster):
    fc = fake_cluster
    fc.namespace("llm-d-pd")
    assert _apply(cli).code == 0
    assert _apply(cli, "--decode", "2xTP4").code == 0
    assert _apply(cli, "--decode", "1xTP8").code == 0
    fc.reset_log()
    r = cli("rollback", "-n", "llm-d-pd", "--postfix", "pd", "--to", "1", "--dry-run")
    assert r.code == 0 and "from revision 3" in r.err and "to revision 1" in r.err and r.out.startswith("# dry run"), r
    assert not [c for c in fc.commands() if " apply" in c or " sync" in c]
    assert [h.number for h in revisions(fc.work / FOLDER)] == [1, 2, 3]  # a dry run keeps no revision
    assert cli("rollback", "-n", "llm-d-pd", "--postfix", "pd", "--to", "2", "-y").code == 0
    assert "replicas: 2" in (fc.work / FOLDER / "charts/ms/templates/deployment-ms-pd-decode.yaml").read_text()


def test_the_history_keeps_the_last_revisions_and_goes_with_the_stack(cli, fake_cluster, tmp_path):
    folder = tmp_path / "kept"
    for i in range(KEEP + 3):
        record(folder, {"a.yaml": f"{i}\n"}, command=["-n", "x"], cwd=str(tmp_path), rollout=(("decode", "in-place"),),
               releases={"ms-x": i + 1}, applied=f"2026-12-07T00:00:{i:02d}Z")
    kept = revisions(folder)
    assert [r.number for r in kept] == list(range(4, KEEP + 4)) and kept[-1].files() == {"a.yaml": f"{KEEP + 2}\n"}
    # a record cut off mid-write is not a revision
    (folder / ".llmdctl-history" / "99").mkdir()
    assert len(revisions(folder)) == KEEP
    # destroy forgets the kept bundle and its revisions
    fc = fake_cluster
    fc.namespace("llm-d-pd")
    assert _apply(cli).code == 0
    assert cli("destroy", "-n", "llm-d-pd", "--postfix", "pd", "-y").code == 0
    assert not (fc.work / FOLDER).exists()
