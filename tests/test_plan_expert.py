"""llmdctl plan with expert parallelism (issue 28, item 4): MoE decode and prefill as DPxEP
instances, their all-to-all over the profile's fabric, the search's choice between TP and EP, and
the GB200 guide's layout planned, evaluated and rendered."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import parse
from llmdctl.base.errors import InputError
from llmdctl.catalog.catalog import default_catalog
from llmdctl.inputs.spec import parse_layout
from llmdctl.sizing import loadmodel as lm
from llmdctl.sizing import model as pm
from llmdctl.sizing.planner import Candidate, _worth_experts, recommend, shapes
from llmdctl.sizing.request import Layout, Request, gpu_facts, model_facts, priorities, scenarios

CAT = default_catalog()
PRIO = priorities(CAT)
R1 = model_facts(CAT, "deepseek-ai/DeepSeek-R1", {})
R1_FP4 = model_facts(CAT, "nvidia/DeepSeek-R1-0528-FP4-v2", {})
OSS = model_facts(CAT, "openai/gpt-oss-120b", {})
GB200, H200 = gpu_facts(CAT, "GB200"), gpu_facts(CAT, "H200")
GUIDE = ("-e", "gb200", "--model", "deepseek-ai/DeepSeek-R1", "--isl", "8000", "--osl", "1000")


def request(model=R1, gpu=GB200, gpus=24, per_node=4, **kw) -> Request:
    base = dict(profile="gb200", gpu=gpu, network="mnnvl", model=model, workload=pm.Workload(8000, 1000), gpus=gpus,
                gpus_per_node=per_node, rate=None, concurrency=None, ttft=None, tpot=None)
    base.update(kw)
    return Request(**base)


def mid(req: Request) -> pm.Scenario:
    return scenarios(CAT, req)["mid"]


# --- the arithmetic --------------------------------------------------------------------------


def test_expert_parallelism_spreads_only_the_routed_experts():
    """A GPU of an EP group holds its rank's dense part and 1/EP of the routed experts: DeepSeek-R1
    (FP8, 671 GB) does not fit a 4-GPU GB200 node at TP4 and fits as DP8EP; the dense part
    (attention, 3 dense layers, shared experts) is what R1's active parameters imply."""
    s = mid(request())
    dense = pm.dense_params(R1)
    assert 14e9 < dense < 18e9  # 36.6B active = dense + 671B x 8/256
    assert not pm.fits(R1, GB200, 4, s)
    assert pm.fits(R1, GB200, 1, s, ep=8)
    per_gpu = [pm.held_weights(R1, 1, ep) for ep in (4, 8, 16, 32)]
    assert per_gpu == sorted(per_gpu, reverse=True)
    assert per_gpu[-1] == pytest.approx((dense + (R1.params - dense) / 32) * R1.weight_bytes)
    assert pm.held_weights(R1, 1, 1) == pm.weights(R1)  # no EP: the whole model
    dense_model = model_facts(CAT, "Qwen/Qwen3-32B", {})
    assert pm.held_weights(dense_model, 1, 8) == pm.weights(dense_model)  # nothing to spread


def test_all_to_all_runs_over_the_fabric_domain_then_the_nics():
    """Dispatch and combine cost nothing without EP, grow with the tokens, and cross NVLink inside
    the fabric domain (72 GPUs on GB200 NVL72, 8 in an HGX node) but the NICs beyond it."""
    s = mid(request())
    assert pm.all_to_all(R1, GB200, 64, 1, s) == 0.0
    assert pm.all_to_all(OSS, H200, 64, 8, s) > 0.0
    times = [pm.all_to_all(R1, GB200, t, 8, s) for t in (1, 64, 512, 8000)]
    assert times == sorted(times) and times[0] > 0
    # latency-bound at one token: two collectives per MoE layer
    assert times[0] == pytest.approx(R1.moe_layers * 2 * s.a2a_latency, rel=0.05)
    assert R1.moe_layers == 58
    assert pm.expert_fabric(GB200, 16) == GB200.nvlink  # still inside the NVL72 rack
    assert pm.expert_fabric(H200, 8) == H200.nvlink and pm.expert_fabric(H200, 16) == H200.nic
    assert pm.all_to_all(R1, H200, 256, 16, s) > 4 * pm.all_to_all(R1, H200, 256, 8, s)  # off the node: NICs, 9x slower
    no_fabric = H200._replace(nvlink=0.0, nic=0.0)
    assert math.isinf(pm.all_to_all(R1, no_fabric, 64, 8, s))


def test_a_decode_step_reads_the_experts_every_rank_touches():
    """EP: a rank reads its own share of the experts, but the tokens of all ranks route to them, so
    at a large batch every local expert is read; a small EP batch reads fewer bytes per GPU than
    TP over the same GPUs would not be asked to hold at all."""
    small = pm.weights_read(R1, 1, tp=1, ep=8)
    full = pm.weights_read(R1, 512, tp=1, ep=8)
    assert small < full == pytest.approx(pm.held_weights(R1, 1, 8), rel=1e-6)
    s = mid(request())
    step = pm.decode_step(R1, GB200, 1, 32, 8500, s, ep=8)
    without_a2a = step - pm.all_to_all(R1, GB200, 32, 8, s)
    assert 0 < without_a2a < step


# --- the search ------------------------------------------------------------------------------


def test_the_gb200_guide_layout_is_what_plan_recommends():
    """DeepSeek-R1 on 24 GB200 under a 40 ms TPOT: no TP layout fits a 4-GPU node, and the search
    lands on the GB200 guide's 2xDP8EP prefill + 1xDP8EP decode, saying why it took EP."""
    result = recommend(CAT, request(tpot=0.040))
    rec = result["recommendation"]
    assert (rec["mode"], rec["prefill"], rec["decode"], rec["gpus"]) == ("disaggregated", "2xDP8EP", "1xDP8EP", 24)
    assert any("expert parallelism" in why and "fits no TP-only" in why for why in result["why"])
    p = result["predicted"]
    assert p["expertParallel"] == {"prefillGroupGpus": 8, "decodeGroupGpus": 8}
    assert p["tpotMs"]["expected"] <= 40 and p["feasible"]["expected"]
    assert {"expert all-to-all latency", "expert all-to-all efficiency"} & {s["parameter"] for s in result["sensitive"]}
    assert any("expert-parallel shapes (DPxEP)" in a for a in result["assumptions"])
    # the router scores pods: each of the two pods of a prefill instance serves its node's 4 ranks
    req = request(tpot=0.040)
    rank = pm.prefill_throughput(R1, GB200, 1, req.workload, mid(req), ep=8)
    assert p["prefillRanksPerPod"] == 4 and p["peakPrefillThroughput"] == round(4 * rank)


def _cand(layout: str, capacity: float, gpus: int, feasible: bool = True) -> Candidate:
    est = pm.Estimate(capacity, capacity * 0.8, 1.0, 0.02, 8, 0.5, 0, feasible, "" if feasible else "TPOT 50 ms > 40 ms")
    ep = 8 if "EP" in layout else 1
    return Candidate(Layout("aggregated", None, (gpus, 1), ep=(1, ep)), est, feasible)


def test_an_expert_parallel_layout_must_be_worth_its_all_to_all():
    """The better EP layout wins only with the catalog's gain in requests per GPU, or where TP
    misses the target; a gain inside the model's error keeps the simpler TP layout."""
    req = request(model=R1_FP4, rate=8.0)
    need = PRIO["expertParallelGain"]
    plain = _cand("TP4", 10.0, 8)
    assert _worth_experts(plain, _cand("EP", 10.0 * (need - 0.05), 8), req, PRIO) is plain
    won = _worth_experts(plain, _cand("EP", 10.0 * (need + 0.05), 8), req, PRIO)
    assert max(won.layout.ep) == 8 and "worth its all-to-all" in won.choice
    missed = _worth_experts(_cand("TP4", 10.0, 8, feasible=False), _cand("EP", 10.0, 8), req, PRIO)
    assert max(missed.layout.ep) == 8 and "misses the target (TPOT 50 ms > 40 ms)" in missed.choice
    alone = _worth_experts(None, _cand("EP", 1.0, 8), req, PRIO)
    assert "fits no TP-only" in alone.choice
    assert _worth_experts(plain, None, req, PRIO) is plain


def test_expert_parallelism_is_searched_where_it_can_pay():
    """gpt-oss-120b fits one H200, whose TP1 replicas need no collective: no EP shape is searched;
    the NVFP4 R1 fits a GB200 node at TP4, but DP8EP's KV room and shared expert reads are worth far
    more than the catalog's gain, and the answer says so."""
    oss = recommend(CAT, request(model=OSS, gpu=H200, gpus=16, per_node=8, network="ib", profile="nvidia-ib",
                                 workload=pm.Workload(5000, 250), rate=45.0))
    for layout in (oss["recommendation"], oss["alternative"]):
        assert "EP" not in layout["prefill"] + layout["decode"]
    oss_req = request(model=OSS, gpu=H200, gpus=16, per_node=8)
    assert all(shape.ep == 1 for shape in shapes(oss_req, mid(oss_req)))
    fp4 = recommend(CAT, request(model=R1_FP4, tpot=0.040))
    rec = fp4["recommendation"]
    assert "EP" in rec["prefill"] + rec["decode"]
    gain = next(w for w in fp4["why"] if w.startswith("expert parallelism"))
    assert float(gain.split(": ")[1].split("x")[0]) >= CAT.planner["decision"]["minExpertParallelGain"]
    assert "best TP-only" in gain and "TP4" in gain


def test_a_dense_model_is_never_given_expert_parallel_shapes():
    result = recommend(CAT, request(model=model_facts(CAT, "Qwen/Qwen3-32B", {}), gpu=H200, per_node=8, network="ib", rate=5.0))
    for layout in (result["recommendation"], result["alternative"]):
        assert "EP" not in layout["prefill"] + layout["decode"]


def test_a_model_too_big_for_any_shape_is_refused_with_what_would_help():
    with pytest.raises(InputError) as err:
        recommend(CAT, request(gpus=4))  # R1 FP8 on 4 GB200: no TP fits, EP4 does not either
    assert "nor spread over an expert-parallel group within the 4-GPU budget" in str(err.value)


# --- what-if, spec and render ---------------------------------------------------------------


def test_the_guide_layout_evaluates_and_its_spec_renders(cli, tmp_path):
    """What-if of the guide's shape gives finite figures; plan -o spec writes the shapes render
    takes, and render makes each instance a LeaderWorkerSet of DP8 over two 4-GPU nodes."""
    data = parse(cli("plan", *GUIDE, "--concurrency", "256", "--prefill", "2xDP8EP", "--decode", "1xDP8EP", "-o", "json").out)
    p = data["predicted"]
    assert data["evaluated"]["gpus"] == 24 and p["expertParallel"]["decodeGroupGpus"] == 8
    assert all(v is not None and v > 0 for v in (*p["ttftMs"].values(), *p["tpotMs"].values()))
    assert p["decodeBatch"]["expected"] == pytest.approx(256 / 8, rel=0.1)  # 256 users over 8 decode ranks
    r = cli("plan", *GUIDE, "--gpus", "24", "--tpot", "40ms", "-o", "spec")
    assert r.code == 0, r
    spec = parse(r.out)
    assert (spec["prefill"], spec["decode"]) == ("2xDP8EP", "1xDP8EP")
    assert parse_layout(spec["decode"], "decode").expert
    path = tmp_path / "plan.yaml"
    path.write_text(r.out)
    out = tmp_path / "bundle"
    assert cli("render", "-f", str(path), "-o", str(out), env={"LLMD_VERSION": ""}).code == 0  # the default generation
    lws = (out / "charts" / "ms" / "templates" / "leaderworkerset-ms-pd-decode.yaml").read_text()
    assert "--data-parallel-size=8" in lws and "--data-parallel-size-local=4" in lws and "--enable-expert-parallel" in lws
    # the planned router figure rides along as a comment whose flag v0.9.0's render takes as it is
    flag = next(line.split("#", 1)[1].split() for line in r.out.splitlines() if "--scheduler-param" in line)
    assert flag[1].endswith(f"peakPrefillThroughput={parse(cli('plan', *GUIDE, '--gpus', '24', '--tpot', '40ms', '-o', 'json').out)['predicted']['peakPrefillThroughput']}")
    tuned = tmp_path / "tuned"
    assert cli("render", "-f", str(path), *flag, "-o", str(tuned), env={"LLMD_VERSION": ""}).code == 0
    assert flag[1].split("=")[1] in (tuned / "router.values.yaml").read_text()


def test_moe_data_parallelism_without_ep_is_costed_as_an_expert_group(cli):
    """vLLM shards an MoE model's experts over its DP ranks with or without EP: the planner costs
    1xDP8 and 1xDP8EP of gpt-oss alike, and neither as eight independent engines."""
    base = ("--model", "openai/gpt-oss-120b", "--isl", "5000", "--osl", "250", "--rate", "10", "--prefill", "0", "-o", "json")
    dp = parse(cli("plan", *base, "--decode", "1xDP8").out)["predicted"]
    ep = parse(cli("plan", *base, "--decode", "1xDP8EP").out)["predicted"]
    tp1 = parse(cli("plan", *base, "--decode", "8xTP1").out)["predicted"]
    assert dp == ep
    assert dp["capacity"] != tp1["capacity"]


def test_expert_parallelism_on_a_dense_model_is_refused(cli):
    r = cli("plan", "--model", "Qwen/Qwen3-32B", "--isl", "5000", "--osl", "250", "--prefill", "0", "--decode", "1xDP8EP")
    assert r.code == 2 and "expert parallelism needs an MoE model" in r.err and "1xDP8" in r.err


# --- aggregated expert-parallel groups -------------------------------------------------------


def test_an_expert_parallel_rank_waits_for_every_rank_s_prefills():
    """EP ranks step together: on an aggregated DP8EP instance a rank's decode stalls while any of
    the 8 ranks prefills, 1 - (1 - rho)^8 of the time, not rho; one rank is the plain worker."""
    assert pm.group_stall(0.3, 1) == pytest.approx(0.3)
    assert pm.group_stall(0.3, 8) == pytest.approx(1 - 0.7 ** 8)
    assert pm.group_stall(0.999999, 64) == 1.0 and pm.group_stall(1.0, 8) == 1.0  # underflow: decode never runs
    req = request(model=R1, gpu=GB200)
    s, wl = mid(req), req.workload
    e = pm.aggregated(R1, GB200, wl, s, PRIO, 8, 1, 1.0, None, None, ep=8)
    step = pm.decode_step(R1, GB200, 1, e.decode_batch, pm.decode_context(wl), s, ep=8)
    assert e.tpot == pytest.approx(step / (1 - e.prefill_util) ** 8, rel=1e-3)
    assert e.tpot > step / (1 - e.prefill_util)


def test_a_closed_loop_on_an_aggregated_expert_group_stalls_the_same_way():
    """The closed loop solves X = k (1 - stall(X a)) for the group: its TPOT carries the other ranks'
    prefills. (For one rank it is the closed form X = k / (1 + k a) it had before: the accuracy
    fixtures, all plain layouts, did not move.)"""
    req = request(model=R1, gpu=GB200)
    s = mid(req)
    grouped = lm.closed_loop(R1, GB200, req.workload, s, PRIO, 256, None, (8, 1), 1, 0.0, None, None, (1, 8))
    assert math.isfinite(grouped.tpot) and grouped.rate > 0
    step = pm.decode_step(R1, GB200, 1, grouped.decode_batch, pm.decode_context(req.workload), s, ep=8)
    assert grouped.tpot > step * 1.05  # the other ranks' prefills show


def test_without_slas_a_large_expert_group_is_served_disaggregated():
    """What vLLM's and llm-d's wide-EP guides do: with the group stalling on every rank's prefills,
    P/D wins for DeepSeek-R1 on 24 GB200 on requests per GPU alone, and the search lands on the
    guide's layout with no SLA given."""
    result = recommend(CAT, request())
    rec = result["recommendation"]
    assert (rec["prefill"], rec["decode"]) == ("2xDP8EP", "1xDP8EP")
    assert result["why"][0].startswith("P/D serves") and result["alternative"]["decode"].endswith("EP")


@settings(max_examples=12, deadline=None)
@given(isl=st.integers(500, 16_000), osl=st.integers(50, 2_000), gpus=st.sampled_from([4, 8, 12, 16, 24, 32]),
       rate=st.one_of(st.none(), st.floats(0.5, 20)), model=st.sampled_from([R1, R1_FP4]))
def test_expert_parallel_recommendations_are_layouts_render_takes(isl, osl, gpus, rate, model):
    """Whatever the workload, an MoE plan on gb200 is either refused with a reason or a layout
    inside the budget whose shapes render's grammar parses, whose expert groups split the experts
    and fill whole nodes, and whose prefill ranks never use more TP than decode's."""
    req = request(model=model, gpus=gpus, rate=rate, workload=pm.Workload(isl, osl))
    try:
        result = recommend(CAT, req)
    except InputError as err:
        assert "budget" in str(err) or "does not fit" in str(err)
        return
    for layout in (result["recommendation"], result["alternative"] or result["recommendation"]):
        assert layout["gpus"] <= gpus
        roles = [parse_layout(layout[r], r) for r in ("prefill", "decode") if layout[r] != "0"]
        for role in roles:
            if role.expert:
                assert model.experts % role.gpus == 0 and (role.gpus <= 4 or role.gpus % 4 == 0)
        if len(roles) == 2:
            assert roles[0].tensor <= roles[1].tensor
