"""llmdctl plan, second version (issue 28): what-if of a given layout, closed-loop load for
--concurrency (open arrivals for --rate), and --tp narrowing the search."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import parse
from llmdctl.catalog.catalog import default_catalog
from llmdctl.sizing import loadmodel as lm
from llmdctl.sizing import model as pm
from llmdctl.sizing.planner import recommend
from llmdctl.sizing.request import Layout, Request, gpu_facts, model_facts, priorities, scenarios
from llmdctl.sizing.whatif import evaluate

CAT = default_catalog()
PRIO = priorities(CAT)
OSS = ("--model", "openai/gpt-oss-120b", "--isl", "5000", "--osl", "250")


def request(model="openai/gpt-oss-120b", isl=5000, osl=250, **kw) -> Request:
    base = dict(profile="nvidia-ib", gpu=gpu_facts(CAT, "H200"), network="ib", model=model_facts(CAT, model, {}),
                workload=pm.Workload(isl, osl), gpus=16, gpus_per_node=8, rate=None, concurrency=None, ttft=None, tpot=None)
    base.update(kw)
    return Request(**base)


def closed(req: Request, users: int, prefill, decode, scenario="mid") -> pm.Estimate:
    s = scenarios(CAT, req)[scenario]
    return lm.closed_loop(req.model, req.gpu, req.workload, s, PRIO, users, prefill, decode, 1, 0.0, None, None)


# --- the closed loop --------------------------------------------------------------------------


@pytest.mark.parametrize("prefill, decode", [((8, 1), (2, 4)), ((1, 1), (1, 1)), (None, (4, 2)), (None, (1, 1))])
@pytest.mark.parametrize("scenario", ["low", "mid", "high"])
def test_a_single_closed_loop_user_never_queues(prefill, decode, scenario):
    """One user: TTFT is its own prefill, the KV transfer (P/D) and one decode step at batch 1,
    with nothing ahead of it in any queue (the open-loop model gave it a queue it never sees)."""
    req = request()
    s = scenarios(CAT, req)[scenario]
    est = closed(req, 1, prefill, decode, scenario)
    tp_pre = (prefill or decode)[1]
    t_kv = pm.kv_transfer(req.model, req.workload, prefill[1], decode[1], 1, s) if prefill else 0.0
    by_hand = pm.prefill_time(req.model, req.gpu, tp_pre, req.workload, s) + t_kv + pm.decode_step(req.model, req.gpu, decode[1], 1, 5125, s)
    assert est.ttft == pytest.approx(by_hand, rel=1e-9)
    assert est.ttft == pytest.approx(lm.unloaded_ttft(req.model, req.gpu, req.workload, s, prefill, decode[1], 1), rel=1e-9)
    assert est.decode_batch == 1 and est.kv_transfer == pytest.approx(t_kv)
    assert est.tpot == pytest.approx(pm.decode_step(req.model, req.gpu, decode[1], 1, 5125, s))


@settings(max_examples=30, deadline=None)
@given(users=st.integers(1, 600), x=st.integers(0, 8), y=st.integers(1, 4), tp_d=st.sampled_from([1, 2, 4]),
       scenario=st.sampled_from(["low", "mid", "high"]))
def test_closed_loop_throughput_is_users_over_latency(users, x, y, tp_d, scenario):
    """The interactive response-time law with no think time: X = N / end-to-end latency, never more;
    the decode batch never holds more requests than there are users, nor more than fit in memory."""
    req = request()
    est = closed(req, users, (x, 1) if x else None, (y, tp_d), scenario)
    e2e = lm.e2e_latency(est, req.workload.osl)
    assert est.rate <= users / e2e * (1 + 1e-6)
    assert est.rate == pytest.approx(users / e2e, rel=1e-3)
    assert 1 <= est.decode_batch <= max(1.0, users / y) * (1 + 1e-6)
    b_cap = pm.max_batch(req.model, req.gpu, tp_d, 5250, scenarios(CAT, req)[scenario])
    assert est.decode_batch <= b_cap
    assert 0 <= est.prefill_util <= 1


def test_more_users_raise_throughput_and_latency_until_a_stage_saturates():
    req = request()
    runs = [closed(req, n, (2, 1), (1, 4)) for n in (1, 2, 4, 8, 16, 32, 64, 128, 256)]
    rates, ttfts, tpots = [r.rate for r in runs], [r.ttft for r in runs], [r.tpot for r in runs]
    assert rates == sorted(rates) and ttfts == sorted(ttfts) and tpots == sorted(tpots)
    t_pre = pm.prefill_time(req.model, req.gpu, 1, req.workload, scenarios(CAT, req)["mid"])
    assert rates[-1] <= 2 / t_pre  # never past what two prefill workers can do
    assert runs[0].feasible and not runs[-1].feasible and "prefill is saturated" in runs[-1].why


def test_users_beyond_the_kv_cache_wait_for_a_place():
    req = request(model="meta-llama/Llama-3.3-70B-Instruct", isl=8000, osl=400)
    s = scenarios(CAT, req)["mid"]
    b_cap = pm.max_batch(req.model, req.gpu, 4, 8400, s)
    est = closed(req, 4 * b_cap, (8, 4), (1, 4))
    assert est.decode_batch == b_cap and not est.feasible and "do not fit the decode KV cache" in est.why
    assert est.rate == pytest.approx(4 * b_cap / lm.e2e_latency(est, 400), rel=1e-3)  # the wait is part of the latency


def test_the_output_states_the_load_mode(cli):
    r = cli("plan", *OSS, "--prefill", "8xTP1", "--decode", "2xTP4", "--concurrency", "64", "-o", "json")
    assert r.code == 0, r
    load = parse(r.out)["predicted"]["load"]
    assert load["mode"] == "closed" and load["users"] == 64 and load["summary"].startswith("closed loop: 64 users")
    data = parse(cli("plan", *OSS, "--gpus", "16", "--rate", "45", "-o", "json").out)
    assert data["predicted"]["load"] == {"mode": "open", "rate": 45.0, "summary": "open loop: 45 req/s (Poisson arrivals)"}
    text = cli("plan", *OSS, "--prefill", "0", "--decode", "4xTP1", "--concurrency", "1").out
    assert "load: closed loop: 1 user, each sending its next request when the previous finishes" in text
    assert "--max-concurrency 1 --request-rate inf" in text  # the benchmark that measures the same thing


# --- what-if ----------------------------------------------------------------------------------


def test_done_when_the_figures_of_a_given_layout(cli):
    r = cli("plan", "-e", "nvidia-ib", *OSS, "--prefill", "8xTP1", "--decode", "2xTP4", "--concurrency", "64")
    assert r.code == 0, r
    assert r.out.startswith("evaluated: prefill 8xTP1 + decode 2xTP4 (16 GPUs) (what-if")
    for part in ("throughput", "req/s per GPU", "TTFT (mean)", "TPOT (mean)", "end-to-end (mean)", "GPUs              16",
                 "saturation", "KV transfer", "validate after apply:"):
        assert part in r.out, part
    data = parse(cli("plan", *OSS, "--prefill", "8xTP1", "--decode", "2xTP4", "--concurrency", "64", "-o", "json").out)
    p = data["predicted"]
    assert data["evaluated"]["gpus"] == p["gpus"] == 16 and "recommendation" not in data
    for fig in ("throughput", "outputTokensPerSecond"):
        assert p[fig]["pessimistic"] <= p[fig]["expected"] <= p[fig]["optimistic"]
    for fig in ("ttftMs", "tpotMs", "e2eLatencyMs"):
        assert p[fig]["pessimistic"] >= p[fig]["expected"] >= p[fig]["optimistic"]
    assert p["decodeBatch"]["expected"] <= 64 / 2


@pytest.mark.parametrize("load", [("--rate", "45"), ("--concurrency", "64"), ()])
def test_what_if_of_the_recommendation_gives_the_same_figures(load):
    kw = {"rate": 45.0} if "--rate" in load else {"concurrency": 64} if load else {}
    req = request(**kw)
    rec = recommend(CAT, req)
    chosen = rec["recommendation"]
    layout = _layout(chosen["prefill"], chosen["decode"])
    assert evaluate(CAT, req, layout)["predicted"] == rec["predicted"]
    if rec["alternative"]:
        alt = rec["alternative"]
        assert evaluate(CAT, req, _layout(alt["prefill"], alt["decode"]))["predicted"] == alt["predicted"]


def _layout(prefill: str, decode: str) -> Layout:
    y, tp_d = (int(v) for v in decode.split("xTP"))
    if prefill == "0":
        return Layout("aggregated", None, (y, tp_d))
    x, tp_p = (int(v) for v in prefill.split("xTP"))
    return Layout("disaggregated", (x, tp_p), (y, tp_d))


@pytest.mark.parametrize("prefill, decode, guide", [("8xTP1", "2xTP4", None), ("0", "4xTP2", "inference-scheduling")])
def test_a_what_if_spec_renders_unchanged(cli, tmp_path, prefill, decode, guide):
    r = cli("plan", *OSS, "--prefill", prefill, "--decode", decode, "--rate", "20", "-o", "spec")
    assert r.code == 0, r
    doc = parse(r.out)
    assert (doc["prefill"], doc["decode"], doc.get("guide")) == (prefill, decode, guide)
    assert doc["plannedBy"].endswith(f"--prefill {prefill} --decode {decode} --rate 20")
    spec = tmp_path / "whatif.yaml"
    spec.write_text(r.out)
    out = tmp_path / "bundle"
    assert cli("render", "-f", str(spec), "-o", str(out)).code == 0
    ms = parse((out / "ms.values.yaml").read_text())
    assert f"{ms['decode']['replicas']}xTP{ms['decode']['parallelism']['tensor']}" == decode


@pytest.mark.parametrize("args, expect", [
    (["--prefill", "1xDP3EP", "--decode", "1xDP8EP"], "128 experts do not split evenly over the 3 GPUs"),
    (["--prefill", "1xDP4EP", "--decode", "1xDP4EP", "--gpus-per-node", "3"], "leaves one node partly used"),
    (["--gpu", "GH200", "--prefill", "1xDP8EP", "--decode", "1xDP8EP"], "no GPU fabric and no NIC bandwidth"),
    (["--prefill", "2xTP1", "--decode", "1xTP16"], "spans more than one node"),
    (["--prefill", "2xTP1"], "a what-if needs both --prefill and --decode"),
    (["--decode", "2xTP4"], "a what-if needs both --prefill and --decode"),
    (["--prefill", "2xTP1", "--decode", "0"], "at least one decode"),
    (["--prefill", "2xTQ1", "--decode", "2xTP4"], "expected REPLICASxTPN"),
    (["--prefill", "2xTP1", "--decode", "2xTP4", "--tp", "2"], "a given layout already names its TP"),
    (["--prefill", "2xTP1", "--decode", "2xTP4", "--rate", "3", "--concurrency", "8"], "give --rate or --concurrency, not both"),
    (["--prefill", "2xTP1", "--decode", "2xTP4", "--from-aic", "x.csv"], "pass one of them"),
])
def test_what_if_refusals_name_what_is_missing(cli, args, expect):
    r = cli("plan", *OSS, *args)
    assert r.code == 2, r
    assert expect in r.err


def test_what_if_refuses_a_shape_the_model_cannot_hold(cli):
    r = cli("plan", "--model", "meta-llama/Llama-3.3-70B-Instruct", "--isl", "8000", "--osl", "400", "--prefill", "2xTP1", "--decode", "1xTP4")
    assert r.code == 2 and "does not fit on 1 H200" in r.err and "raise the TP" in r.err
    r = cli("plan", "--model", "Qwen/Qwen2.5-7B-Instruct", "--isl", "8000", "--osl", "400", "--prefill", "0", "--decode", "1xTP8")
    assert r.code == 2 and "28 attention heads, which TP8 cannot split evenly" in r.err
    r = cli("plan", "--model", "my/model", "--params", "8", "--layers", "32", "--hidden", "4096", "--heads", "12", "--kv-heads", "4",
            "--head-dim", "128", "--isl", "4000", "--osl", "300", "--prefill", "0", "--decode", "1xTP8")
    assert r.code == 2 and "12 attention heads" in r.err


def test_what_if_warns_about_what_render_refuses(cli):
    data = parse(cli("plan", *OSS, "--prefill", "2xTP4", "--decode", "2xTP2", "--gpus", "8", "--rate", "10", "-o", "json").out)
    assert any("V-15" in w for w in data["warnings"]) and any("more than --gpus 8" in w for w in data["warnings"])


# --- --tp -------------------------------------------------------------------------------------


def test_tp_narrows_the_search_to_that_tp(cli):
    data = parse(cli("plan", *OSS, "--gpus", "16", "--rate", "20", "--tp", "2", "-o", "json").out)
    for layout in (data["recommendation"], data["alternative"]):
        assert all(role == "0" or role.endswith("xTP2") for role in (layout["prefill"], layout["decode"])), layout
    r = cli("plan", "--model", "meta-llama/Llama-3.3-70B-Instruct", "--isl", "8000", "--osl", "400", "--tp", "1")
    assert r.code == 2 and "cannot run at TP1" in r.err and "TP2, TP4, TP8" in r.err


# --- latency in the decision: the trade-off and the Pareto frontier ---------------------------

from llmdctl.sizing import frontier as fr  # noqa: E402

_point = st.builds(lambda i, g, y, t: {"label": f"L{i}", "mode": "aggregated" if i % 2 else "disaggregated", "gpus": g,
                                       "perGpu": y, "ttftMs": 100.0, "tpotMs": t, "e2eMs": 1000.0},
                   st.integers(0, 10_000), st.integers(1, 64), st.floats(0.01, 10), st.floats(1, 200))


@settings(max_examples=200, deadline=None)
@given(points=st.lists(_point, min_size=1, max_size=40, unique_by=lambda p: p["label"]))
def test_frontier_points_are_exactly_the_non_dominated_ones(points):
    front = fr.pareto(points)
    labels = {p["label"] for p in front}
    for p in front:
        assert not fr.dominated(p, points)
    for p in points:
        if p["label"] not in labels:  # off the frontier: beaten, or an exact tie with a point on it
            assert fr.dominated(p, points) or any(q["perGpu"] == p["perGpu"] and q["tpotMs"] == p["tpotMs"] for q in front)
    tpots = [p["tpotMs"] for p in front]
    per_gpu = [p["perGpu"] for p in front]
    assert tpots == sorted(tpots) and per_gpu == sorted(per_gpu)  # more per GPU costs TPOT along the frontier


def test_done_when_gpt_oss_shows_the_latency_pd_buys_and_why(cli, tmp_path):
    """gpt-oss-120b, 16 x H200, 5000/250 at 45 req/s, no SLA: the answer puts P/D's TPOT and
    end-to-end latency next to its requests per GPU, and says which criterion chose."""
    args = ("plan", "-e", "nvidia-ib", *OSS, "--gpus", "16", "--rate", "45")
    data = parse(cli(*args, "-o", "json").out)
    assert "No SLA was given, so latency did not count" in data["criterion"] and "fewest GPUs that sustain 45 req/s" in data["criterion"]
    agg, pd = data["tradeoff"]["rows"]
    assert agg["mode"] == "aggregated" and pd["mode"] == "disaggregated"
    for row in (agg, pd):
        assert all(row[k] > 0 for k in ("perGpu", "ttftMs", "tpotMs", "e2eMs"))
    assert pd["tpotMs"] < agg["tpotMs"] and pd["e2eMs"] < agg["e2eMs"]  # the latency P/D buys ...
    assert data["tradeoff"]["pdVsAggregated"]["perGpu"] == round(pd["perGpu"] / agg["perGpu"], 2)  # ... and what it costs
    f = data["frontier"]
    assert f["points"] and f["meetingTheTarget"] == len(f["all"]) <= f["searched"]
    for p in f["points"]:
        assert not fr.dominated(p, f["all"])
    text = cli(*args).out
    for part in ("  picked by: fewest GPUs", "trade-off (expected priors):", "P/D: ", "lower TPOT", "Pareto frontier over",
                 "on the frontier:"):
        assert part in text, part


def test_slas_are_named_in_the_criterion():
    req = request(model="meta-llama/Llama-3.3-70B-Instruct", isl=8000, osl=400, rate=6.0, ttft=3.0, tpot=0.03, gpus=None)
    data = recommend(CAT, req)
    assert data["criterion"].startswith("fewest GPUs that sustain 6 req/s with TTFT <= 3000 ms and TPOT <= 30 ms")
    assert "No SLA" not in data["criterion"]
    assert recommend(CAT, request(gpus=8))["criterion"].startswith("most requests/s on the 8-GPU budget, then fewest GPUs; P/D only")


def test_plot_writes_the_frontier_as_deterministic_svg(cli, tmp_path):
    import xml.etree.ElementTree as ET

    args = ("plan", *OSS, "--gpus", "16", "--rate", "45")
    first, second = tmp_path / "a.svg", tmp_path / "b.svg"
    assert cli(*args, "--plot", str(first)).code == 0
    assert cli(*args, "-o", "json", "--plot", str(second)).code == 0
    assert first.read_bytes() == second.read_bytes()
    root = ET.fromstring(first.read_text())
    ns = "{http://www.w3.org/2000/svg}"
    data = parse(cli(*args, "-o", "json").out)
    assert len(root.findall(f"{ns}circle")) == data["frontier"]["meetingTheTarget"]
    assert root.find(f"{ns}desc").text == data["command"] and "--plot" not in data["command"]
    spec = parse(cli(*args, "-o", "spec", "--plot", str(first)).out)
    assert "--plot" not in spec["plannedBy"]


@pytest.mark.parametrize("extra, expect", [
    (["--plot", "frontier.png"], "the frontier is written as SVG"),
    (["--plot", "/no/such/folder/f.svg"], "no folder /no/such/folder"),
    (["--plot", "f.svg", "--prefill", "2xTP1", "--decode", "2xTP4"], "a given layout has none"),
])
def test_plot_refusals(cli, extra, expect):
    r = cli("plan", *OSS, "--gpus", "8", *extra)
    assert r.code == 2 and expect in r.err


def test_a_saturated_layout_in_the_trade_off_has_no_ratio():
    def alt(mode, per_gpu, ms):
        rng = lambda v: {"pessimistic": v, "expected": v, "optimistic": v}  # noqa: E731
        return {"summary": mode, "mode": mode, "gpus": 2, "predicted": {"throughputPerGpu": rng(per_gpu), "ttftMs": rng(ms),
                                                                        "tpotMs": rng(ms), "e2eLatencyMs": rng(ms)}}
    t = fr.tradeoff(alt("aggregated", 0.5, 80.0), alt("disaggregated", 0.06, None))  # None: the queue never drains
    assert t["pdVsAggregated"] == {"perGpu": 0.12, "ttft": None, "tpot": None, "e2e": None}
    assert "saturated" in "\n".join(fr.tradeoff_lines(t))


# --- --fill: the whole budget -----------------------------------------------------------------


@pytest.mark.parametrize("load", [("--rate", "45"), ("--concurrency", "64")])
def test_fill_spends_the_budget_on_latency_and_says_so(cli, load):
    args = ("plan", *OSS, "--gpus", "16", *load, "-o", "json")
    fewest, filled = parse(cli(*args).out), parse(cli(*args, "--fill").out)
    assert fewest["inputs"]["budgetMode"] == "fewest GPUs" and filled["inputs"]["budgetMode"] == "fill"
    assert filled["recommendation"]["gpus"] == 16 and fewest["recommendation"]["gpus"] < 16
    assert filled["criterion"].startswith("the whole --gpus 16 budget (--fill)")
    assert filled["predicted"]["e2eLatencyMs"]["expected"] < fewest["predicted"]["e2eLatencyMs"]["expected"]
    assert filled["predicted"]["feasible"]["pessimistic"]


def test_fill_without_a_load_keeps_the_most_capacity():
    data = recommend(CAT, request(gpus=16, fill=True))
    assert data["recommendation"]["gpus"] == 16 and "the most capacity" in data["criterion"]


@pytest.mark.parametrize("args, expect", [
    (["--fill", "--rate", "4"], "give it with --gpus N"),
    (["--fill", "--gpus", "8", "--prefill", "2xTP1", "--decode", "2xTP2"], "a given layout uses what it names"),
])
def test_fill_refusals(cli, args, expect):
    r = cli("plan", *OSS, *args)
    assert r.code == 2 and expect in r.err


# --- data parallelism: what a dense model's DP ranks are, and AIConfigurator's dp column ---------


LLAMA8 = ("--model", "meta-llama/Llama-3.1-8B-Instruct", "--isl", "4000", "--osl", "250")


def test_dense_dp_ranks_cost_as_engines_and_keep_their_shape(cli, tmp_path):
    """vLLM's data parallelism of a dense model runs independent engines: 2xDP4 serves like 8xTP1,
    and the spec keeps the shape the user gave."""
    dp = parse(cli("plan", *LLAMA8, "--prefill", "0", "--decode", "2xDP4", "--rate", "20", "-o", "json").out)
    tp = parse(cli("plan", *LLAMA8, "--prefill", "0", "--decode", "8xTP1", "--rate", "20", "-o", "json").out)
    assert dp["predicted"] == tp["predicted"] and dp["evaluated"]["summary"] == "aggregated 2xDP4 (8 GPUs)"
    r = cli("plan", *LLAMA8, "--prefill", "2xDP2", "--decode", "1xTP2", "--rate", "20", "-o", "spec")
    assert r.code == 0, r
    doc = parse(r.out)
    assert (doc["prefill"], doc["decode"]) == ("2xDP2", "1xTP2")
    spec = tmp_path / "dp.yaml"
    spec.write_text(r.out)
    assert cli("render", "-f", str(spec), "-o", str(tmp_path / "bundle")).code == 0


def _aic(tmp_path, **changes) -> str:
    from pathlib import Path

    text = (Path(__file__).parent / "fixtures" / "aic_best_config_topn.csv").read_text().splitlines()
    head, first = text[0].split(","), text[1].split(",")
    for key, value in changes.items():
        column = key.replace("p_", "(p)").replace("d_", "(d)")
        if column not in head:
            head.append(column)
            first.append("")
        first[head.index(column)] = str(value)
    path = tmp_path / "aic.csv"
    path.write_text(",".join(head) + "\n" + ",".join(first) + "\n")
    return str(path)


def test_from_aic_keeps_data_parallelism(cli, tmp_path):
    """AIConfigurator's 6 x (TP1, DP2) is six two-GPU prefill workers, not six one-GPU ones."""
    csv = _aic(tmp_path, p_dp=2, model="meta-llama/Llama-3.1-8B-Instruct")
    data = parse(cli("plan", *LLAMA8, "--rate", "20", "--from-aic", csv, "-o", "json").out)
    assert data["recommendation"]["prefill"] == "6xDP2" and data["recommendation"]["decode"] == "4xTP1"
    assert data["recommendation"]["gpus"] == 6 * 2 + 4
    plain = parse(cli("plan", *LLAMA8, "--rate", "20", "--prefill", "12xTP1", "--decode", "4xTP1", "-o", "json").out)
    assert data["predicted"] == plain["predicted"]


@pytest.mark.parametrize("changes, expect", [
    (dict(p_pp=2), "'(p)pp' is 2: llmdctl's layouts have no pipeline parallelism"),
    (dict(d_cp=2), "'(d)cp' is 2: llmdctl's layouts have no context parallelism"),
])
def test_from_aic_refuses_what_it_cannot_express_naming_the_column(cli, tmp_path, changes, expect):
    r = cli("plan", *OSS, "--rate", "45", "--from-aic", _aic(tmp_path, **changes))
    assert r.code == 2, r
    assert expect in r.err


@pytest.mark.parametrize("changes, prefill, decode", [
    (dict(p_dp=2), "6xDP2", "4xTP1"),  # gpt-oss is MoE: its DP2 shares the experts of two ranks
    (dict(d_moe_ep=4, d_dp=4), "6xTP1", "4xDP4EP"),
])
def test_from_aic_keeps_moe_data_and_expert_parallelism(cli, tmp_path, changes, prefill, decode):
    """AIConfigurator's data- and expert-parallel MoE columns are kept as the shape they name and
    costed as that shape's what-if would cost it."""
    data = parse(cli("plan", *OSS, "--rate", "45", "--from-aic", _aic(tmp_path, **changes), "-o", "json").out)
    assert (data["recommendation"]["prefill"], data["recommendation"]["decode"]) == (prefill, decode)
    what_if = parse(cli("plan", *OSS, "--rate", "45", "--prefill", prefill, "--decode", decode, "-o", "json").out)
    assert data["predicted"] == what_if["predicted"]


def test_sensitivity_ranks_the_priors_under_the_load_as_given(cli):
    """A lone closed-loop user never queues, so what moves its figures is its own path: the KV
    transfer's fixed cost (0.05-200 ms) before prefill MFU; under open arrivals at 20 req/s the
    prefill workers' capacity (prefill MFU) leads."""
    layout = ("--prefill", "8xTP1", "--decode", "2xTP4", "-o", "json")
    one = parse(cli("plan", *OSS, "--concurrency", "1", *layout).out)["sensitive"]
    open_loop = parse(cli("plan", *OSS, "--rate", "20", *layout).out)["sensitive"]
    assert one[0]["parameter"] == "KV transfer fixed cost"
    assert open_loop[0]["parameter"] == "prefill MFU"
    mfu_closed = next((s["capacityChange"] for s in one if s["parameter"] == "prefill MFU"), 0.0)
    mfu_open = next(s["capacityChange"] for s in open_loop if s["parameter"] == "prefill MFU")
    assert mfu_closed < mfu_open  # one user's throughput is 1/latency, not the prefill pool's capacity
