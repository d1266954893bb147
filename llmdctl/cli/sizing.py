"""``llmdctl plan``: a layout from model, hardware, workload and SLAs; text, JSON or a spec file."""

from __future__ import annotations

import argparse
import re
import shlex

from ..base.errors import InputError
from ..base.yamlio import dump
from ..catalog.catalog import default_catalog
from ..inputs.spec import parse_duration
from ..sizing.calibration import calibrate, key_of, write_entry
from ..sizing.planner import recommend
from ..sizing.request import request_from
from ..sizing.report import text, write_plot
from ..sizing.whatif import evaluate, layout_of, read_aic, review_layout
from .common import emit, out


# options one of `plan` and `plan calibrate` reads and the other would silently ignore
_CALIBRATE_ONLY = {"peak_prefill": "--peak-prefill", "chunk": "--chunk", "decode_point": "--decode-point", "link_gbps": "--link-gbps"}
_PLAN_ONLY = {"isl": "--isl", "osl": "--osl", "prefix_hit": "--prefix-hit", "gpus": "--gpus", "gpus_per_node": "--gpus-per-node",
              "rate": "--rate", "concurrency": "--concurrency", "ttft": "--ttft", "tpot": "--tpot", "from_aic": "--from-aic",
              "prefill": "--prefill", "decode": "--decode", "plot": "--plot", "fill": "--fill"}


def _refuse_unused(args: argparse.Namespace, unused: dict[str, str], command: str, hint: str) -> None:
    given = [flag for dest, flag in unused.items() if getattr(args, dest, None) is not None]
    if given:
        raise InputError(f"{command} does not use {', '.join(given)}", hint=hint)


def _check_options(args: argparse.Namespace) -> None:
    if args.action == "calibrate":
        _refuse_unused(args, _PLAN_ONLY, "llmdctl plan calibrate",
                       "calibrate stores measured figures (--tp, --peak-prefill, --decode-point, --link-gbps); plan with them: llmdctl plan --calibration FILE ...")
        if args.output == "spec":
            raise InputError("llmdctl plan calibrate -o spec: calibrate writes a calibration file, not a spec", hint="use -o text or -o json")
    else:
        _refuse_unused(args, _CALIBRATE_ONLY, "llmdctl plan",
                       "those are `llmdctl plan calibrate` options (measured figures); plan reads them back with --calibration FILE")
        what_if = args.prefill is not None or args.decode is not None
        if what_if and args.from_aic:
            raise InputError("--prefill/--decode and --from-aic each give the layout: pass one of them")
        if args.plot and (what_if or args.from_aic):
            raise InputError("--plot draws the frontier of the searched layouts; a given layout has none",
                             hint="drop --prefill/--decode/--from-aic to search and plot")
        if args.fill and (what_if or args.from_aic):
            raise InputError("--fill chooses how much of the budget a searched layout uses; a given layout uses what it names",
                             hint="drop --fill, or drop --prefill/--decode/--from-aic")
        if args.tp is not None and (what_if or args.from_aic):
            raise InputError("--tp narrows the search to one TP; a given layout already names its TP",
                             hint="drop --tp, or drop --prefill/--decode/--from-aic to search at that TP")
        if args.rate is not None and args.concurrency is not None:
            raise InputError("give --rate or --concurrency, not both",
                             hint="--rate is requests/s arriving (open loop); --concurrency is users each waiting for its answer (closed loop)")


def plan(args: argparse.Namespace) -> int:
    catalog = default_catalog()
    _check_options(args)
    if args.action == "calibrate":
        return _calibrate(catalog, args)
    req = request_from(
        catalog, environments=args.environment, gpu=args.gpu, network=args.network, model=args.model,
        explicit=_explicit(args),
        isl=args.isl, osl=args.osl, prefix_hit=args.prefix_hit, gpus=args.gpus, gpus_per_node=args.gpus_per_node,
        rate=args.rate, concurrency=args.concurrency,
        ttft=parse_duration(args.ttft, "--ttft") if args.ttft else None, tpot=parse_duration(args.tpot, "--tpot") if args.tpot else None,
        engine=args.engine, calibration_file=args.calibration, engine_version=args.engine_version, tp=args.tp, fill=args.fill,
    )
    result = _answer(catalog, req, args)
    command = _plan_command(args)
    result["command"] = command
    if args.plot:
        write_plot(args.plot, result, command)
    if args.output == "spec":
        out(spec_text(result, req.profile, command))
    elif args.output == "json":
        emit(result, "json")
    else:
        out(text(result))
    return 0


def _answer(catalog, req, args: argparse.Namespace) -> dict:
    """A what-if of the given layout, AIConfigurator's layout reviewed, or the searched recommendation."""
    if args.prefill is not None or args.decode is not None:
        return evaluate(catalog, req, layout_of(catalog, req, args.prefill, args.decode))
    if args.from_aic:
        layout, row = read_aic(catalog, req, args.from_aic)
        return review_layout(catalog, req, layout, row)
    return recommend(catalog, req)


def _plan_command(args: argparse.Namespace) -> str:
    """The plan command as typed, without its output format or plot file: the plan, not how it was printed."""
    typed = args.argv[args.argv.index("plan") + 1:]
    for flag in ("-o", "--output", "--plot"):
        while flag in typed and typed.index(flag) + 1 < len(typed):
            i = typed.index(flag)
            del typed[i:i + 2]
    return shlex.join(["llmdctl", "plan", *(a for a in typed if not a.startswith(("-o=", "--output=", "--plot=")))])


def spec_text(result: dict, profile: str, command: str) -> str:
    rec = result.get("recommendation") or result["evaluated"]
    spec = {"apiVersion": "llmdctl/v1", "kind": "Stack", "environments": [profile], "model": result["inputs"]["model"],
            "prefill": rec["prefill"], "decode": rec["decode"], "plannedBy": command}
    if rec["mode"] == "aggregated":
        spec["guide"] = "inference-scheduling"
    head = (f"# llmdctl plan: {rec['summary']}\n# {command}\n"
            "# render or apply it unchanged: llmdctl apply -f <this file>\n")
    peak = result["predicted"].get("peakPrefillThroughput")
    if peak:
        # a comment, not schedulerParams: only v0.9.0's router has the filter, and the figure is modelled
        head += ("# the router's prefill figure for this layout, modelled (measure it: upstream calibrate.sh); on llm-d v0.9.0 add\n"
                 f"#   --scheduler-param prefix-cache-affinity-filter.peakPrefillThroughput={peak}\n")
    return head + dump(spec)


def _calibrate(catalog, args: argparse.Namespace) -> int:
    if not args.calibration or not args.tp:
        raise InputError("plan calibrate needs --calibration FILE and --tp N (the TP the figures were measured at)")
    points = [_decode_point(p) for p in args.decode_point or []]
    req = request_from(catalog, environments=args.environment, gpu=args.gpu, network=args.network, model=args.model, explicit=_explicit(args),
                       isl=1, osl=1, prefix_hit=None, gpus=None, gpus_per_node=None, rate=None, concurrency=None, ttft=None, tpot=None,
                       engine=args.engine)
    cpu = catalog.planner["priors"]["cpuPerLayerMs"] / 1000.0
    measured = calibrate(req.model, req.gpu, args.tp, cpu_per_layer=cpu, peak_prefill=args.peak_prefill, chunk=args.chunk,
                         decode_points=points, link_gbps=args.link_gbps)
    source = shlex.join(["llmdctl", "plan", *args.argv[args.argv.index("plan") + 1:]])
    write_entry(args.calibration, key_of(req.model.name, req.gpu.name, args.tp, args.engine), measured, args.engine_version, source)
    shown = {"prefill MFU": measured.prefill_mfu, "HBM efficiency": measured.hbm_eff, "per-layer decode cost (us)": measured.layer_us,
             "KV link (GB/s)": measured.link_gbps}
    if args.output == "json":
        emit({"model": req.model.name, "gpu": req.gpu.name, "tp": args.tp, "engine": args.engine, "calibration": args.calibration,
              "measured": {"prefillMfu": measured.prefill_mfu, "hbmEfficiency": measured.hbm_eff, "decodeLayerUs": measured.layer_us,
                           "linkGbps": measured.link_gbps}}, "json")
        return 0
    out("".join(f"{k}: {v:.3g}\n" for k, v in shown.items() if v is not None))
    out(f"stored for {req.model.name} on {req.gpu.name} TP{args.tp} ({args.engine}) in {args.calibration}\n")
    return 0


_DECODE_POINT = re.compile(r"([0-9]+):([0-9]+):([0-9]+(?:\.[0-9]+)?)")


def _decode_point(text: str) -> tuple[int, int, float]:
    m = _DECODE_POINT.fullmatch(text)
    if not m:
        raise InputError(f"--decode-point {text}: expected BATCH:CONTEXT:STEP_MS in digits, e.g. 64:8000:38")
    return int(m.group(1)), int(m.group(2)), float(m.group(3)) / 1000.0


def _explicit(args: argparse.Namespace) -> dict:
    return {"paramsB": args.params, "activeParamsB": args.active_params, "layers": args.layers, "hidden": args.hidden,
            "heads": args.heads, "kvHeads": args.kv_heads, "headDim": args.head_dim, "dtype": args.dtype, "kvDtype": args.kv_dtype,
            "experts": args.experts, "topK": args.top_k}
