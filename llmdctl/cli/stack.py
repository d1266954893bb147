"""render and validate: inputs -> plan -> bundle files (or findings)."""

from __future__ import annotations

import argparse
from ..base.errors import ValidationError
from ..effects.bundle import bundle_files, default_output_dir
from ..effects.bundle_folder import print_bundle, write_bundle
from ..effects.gitops import gitops_target
from ..plan.podsecurity import stack_pod_security
from .common import emit, err, out, plan_from, report


def render(args: argparse.Namespace) -> int:
    gitops = gitops_target(args.gitops, args.repo_url, args.path, args.revision, local_charts=bool(args.charts))
    plan = plan_from(args)
    report(plan)
    files = bundle_files(plan, gitops)
    if args.print_:
        out(print_bundle(files))
        return 0
    folder = args.output or default_output_dir(plan)
    err(write_bundle(files, folder, force=args.force).summary())
    route = f" && kubectl apply -n {plan.namespace} -f httproute.yaml" if plan.generation == "helmfile" else ""
    err(f"next: cd {folder} && helmfile apply{route}" if gitops is None else
        f"next: commit {folder}/ to {gitops.repo_url} ({gitops.path or 'its root'}), then see GitOps in {folder}/README.md")
    return 0


def validate(args: argparse.Namespace) -> int:
    try:
        plan = plan_from(args)
    except ValidationError as exc:
        if args.output == "json":
            emit({"valid": False, "findings": [f.as_dict() for f in exc.findings]}, "json")
            return 2
        raise
    if args.output == "json":
        emit({
            "valid": True,
            "stack": {"namespace": plan.namespace, "postfix": plan.postfix, "guide": plan.guide, "llmdVersion": plan.llmd_version,
                      "hardware": plan.hardware, "overlays": list(plan.overlays), "gateway": plan.gateway, "mode": plan.mode,
                      "roles": {r.role: {"layout": r.layout, "workload": r.workload, "replicas": r.replicas, "podsPerReplica": r.workers,
                                         "gpusPerPod": r.gpus_per_pod, "tensorParallel": r.tensor, "dataParallel": r.data,
                                         "dataParallelPerPod": r.data_local, "expertParallel": r.expert,
                                         "autoscale": {"min": r.autoscale[0], "max": r.autoscale[1]} if r.autoscale else None}
                                for r in plan.roles.values()},
                      "prefixCache": "precise" if plan.kv_events else "approx",
                      "podSecurity": stack_pod_security(plan).as_dict()},
            "notes": list(plan.notes),
            "findings": [f.as_dict() for f in plan.findings],
        }, "json")
        return 0
    report(plan)
    roles = ", ".join(f"{r.role} {r.layout}" for r in plan.roles.values())
    out(f"ok: {plan.names['ms']} in {plan.namespace}: {plan.hardware} + {plan.gateway}, {roles}\n")
    return 0
