"""The render matrix: every hardware profile x gateway x layout, with and without host-network.

Shared by the snapshot and property tests and by bench/bench.py. A case that llmdctl must refuse
names the rule it expects.
"""

from __future__ import annotations

HARDWARE = ["nvidia-ib", "amd-roce", "gke-no-rdma", "gh200-timeslice"]
GATEWAYS = ["istio", "kgateway", "agentgateway", "gke"]
LAYOUTS = {
    "default": {},
    "4p1d-tp1-tp4": {"prefill": "4xTP1", "decode": "1xTP4"},
    "1p1d-tp8-tp8": {"prefill": "1xTP8", "decode": "1xTP8"},
    "agg-2xtp2": {"prefill": "0", "decode": "2xTP2"},
}
OVERLAYS = {"plain": [], "hostnet": ["host-network"]}


def expected_refusal(hardware: str, layout: str, overlay: str) -> str | None:
    """The rule that must refuse this combination, or None when it must render."""
    if hardware == "gh200-timeslice":
        if overlay == "hostnet":
            return "V-09"
        if layout != "default":
            return "V-05"  # one time-sliced GPU per pod
    return None


def cases(versions: tuple[str, ...] = ("v0.6.0",)):
    for version in versions:
        for hw in HARDWARE:
            if version == "v0.4.0" and hw == "amd-roce":
                continue  # no ROCm image in that release (asserted separately)
            for gw in GATEWAYS:
                for layout, flags in LAYOUTS.items():
                    for overlay, extra in OVERLAYS.items():
                        case_id = f"{version}-{hw}-{gw}-{layout}-{overlay}"
                        kwargs = {"environments": [hw, *extra, gw], "llmd_version": version, **flags}
                        yield case_id, kwargs, expected_refusal(hw, layout, overlay)


# The router generation (llm-d >= v0.8): its own default gateway (standalone) and GKE profile (DRA).
ROUTER_HARDWARE = ["nvidia-ib", "amd-roce", "gke-dra", "gke-no-rdma", "gh200-timeslice", "aws-efa", "intel-xpu"]
ROUTER_GATEWAYS = ["standalone", "istio", "kgateway", "agentgateway", "gke"]


def router_cases(versions: tuple[str, ...] = ("v0.9.0",)):
    for version in versions:
        for hw in ROUTER_HARDWARE:
            if (version == "v0.8.0" and hw in ("amd-roce", "intel-xpu")) or (version in ("v0.8.0", "v0.7.0") and hw == "aws-efa"):
                continue  # no ROCm / XPU / AWS P/D image pinned for that release (asserted separately)
            for gw in ROUTER_GATEWAYS:
                for layout, flags in LAYOUTS.items():
                    for overlay, extra in OVERLAYS.items():
                        case_id = f"{version}-{hw}-{gw}-{layout}-{overlay}"
                        kwargs = {"environments": [hw, *extra, gw], "llmd_version": version, **flags}
                        yield case_id, kwargs, expected_refusal(hw, layout, overlay)
