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


def _combinations(versions, hardware, gateways, no_image: dict[str, tuple[str, ...]]):
    for version in versions:
        for hw in hardware:
            if hw in no_image.get(version, ()):
                continue  # the release pins no image for it (asserted separately)
            for gw in gateways:
                for layout, flags in LAYOUTS.items():
                    for overlay, extra in OVERLAYS.items():
                        case_id = f"{version}-{hw}-{gw}-{layout}-{overlay}"
                        kwargs = {"environments": [hw, *extra, gw], "llmd_version": version, **flags}
                        yield case_id, kwargs, expected_refusal(hw, layout, overlay)


def cases(versions: tuple[str, ...] = ("v0.6.0",)):
    return _combinations(versions, HARDWARE, GATEWAYS, {"v0.4.0": ("amd-roce",)})


# The router generation (llm-d >= v0.8): its own default gateway (standalone) and GKE profile (DRA).
ROUTER_HARDWARE = ["nvidia-ib", "amd-roce", "gke-dra", "gke-no-rdma", "gh200-timeslice", "aws-efa", "intel-xpu"]
ROUTER_GATEWAYS = ["standalone", "istio", "kgateway", "agentgateway", "gke"]


def router_cases(versions: tuple[str, ...] = ("v0.9.0",)):
    # no ROCm / XPU / AWS P/D image pinned for these releases
    return _combinations(versions, ROUTER_HARDWARE, ROUTER_GATEWAYS,
                         {"v0.8.0": ("amd-roce", "intel-xpu", "aws-efa"), "v0.7.0": ("aws-efa",)})
