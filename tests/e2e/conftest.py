"""Fixtures of the e2e suite (``pytest -m e2e``): one real control plane per session."""

from __future__ import annotations

import time

import pytest

from .controlplane import ControlPlane, crd_dir, enter_private_network, start_standin, stop, tool_dir
from .harness import CHARTS, MEASURED, E2E, measured


@pytest.fixture(scope="session")
def e2e(tmp_path_factory):
    enter_private_network()
    t0 = time.monotonic()
    cp = ControlPlane(tool_dir(), tmp_path_factory.mktemp("cluster"))
    gateway = None
    try:
        cp.start()
        cp.add_gpu_nodes("gpu-node", 3, {"nvidia.com/gpu": "8", "rdma/ib": "8"}, labels={"nvidia.com/gpu.product": "NVIDIA-H200"})
        cp.add_gpu_nodes("cpu-node", 1, {})
        cp.apply_objects([{"apiVersion": "gateway.networking.k8s.io/v1", "kind": "GatewayClass", "metadata": {"name": "istio"},
                           "spec": {"controllerName": "istio.io/gateway-controller"}}])
        gateway = start_standin(cp, "gateway_standin.py", "istio.io/gateway-controller")
        measured(f"control plane: API server ready {cp.apiserver_ready_s:.1f} s, everything up (CRDs, nodes) {time.monotonic() - t0:.1f} s")
        measured(f"charts: {CHARTS}")
        yield E2E(cp)
    finally:
        t1 = time.monotonic()
        if gateway is not None:
            stop(gateway)
        cp.stop()
        measured(f"control plane down in {time.monotonic() - t1:.1f} s")


@pytest.fixture(scope="module")
def gaie_v15(e2e):
    """The InferencePool CRDs llm-d v0.9.0 pins (GAIE v1.5.0), for the modules that run router-generation stacks."""
    e2e.cp.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(crd_dir() / "gateway-api-inference-extension" / "v1.5.0"), timeout=120)
    e2e.cp.wait_established()
    return e2e


def pytest_terminal_summary(terminalreporter):
    if MEASURED:
        terminalreporter.section("e2e measurements")
        for line in MEASURED:
            terminalreporter.write_line(line)
