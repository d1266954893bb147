"""apply, diff, destroy and status: the commands they run, built as data, then run in order.

The step builders are pure (a plan or a stack's names in, ``Command`` lists out), so tests and
``--dry-run`` see exactly what would run. ``run_steps`` is the only place that executes them; it stops
at the first failure and says what is already done and how to resume or clean up.

Isolation: every command names the stack's own releases (``--selector name=<release>`` on the
kept helmfile, which lists only this stack's three releases), its own HTTPRoute by name, or reads.
Nothing is ever selected by a pattern that another postfix could match.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..base.errors import LlmdctlError
from ..compose.names import ALL_RELEASE_KEYS, GENERATED_CHARTS, hf_secret_command, release_names, stack_names
from ..compose.router import router_pin
from ..inputs.charts import chart_name
from ..plan.stack import Plan
from .bundle_folder import HISTORY, bundle_files_in, remove_bundle, write_bundle
from .diagnosis import missing_pods, workload_refusals
from .doctor import preflight, rendered_workloads
from .health import observe_stack
from .kube import KubeError, kube_for
from .stacks import _ROUTE_NAME, StackState, attached_routes, list_routes, observe
from .tools import INSTALL_HINTS, MINIMUMS, Command, Interrupted, StepFailed, Toolbox, ToolMissing, context_dir_name, fmt_version, helm_diff_version, require_tools

def bundle_dir(base: Path, context: str, namespace: str, postfix: str) -> Path:
    """Where apply keeps a stack's bundle: one folder per context, namespace and postfix."""
    return Path(base) / context_dir_name(context) / namespace / postfix


# --- step builders (pure) ---------------------------------------------------------------------


def helmfile(verb: str, namespace: str, cwd: Path, release: str | None, label: str, *extra: str, ok_codes=(0,)) -> Command:
    args = ["--file", "helmfile.yaml", "--namespace", namespace]
    if release:
        args += ["--selector", f"name={release}"]
    return Command("helmfile", (*args, verb, *extra), label, cwd=str(cwd), ok_codes=ok_codes)


def apply_steps(plan: Plan, folder: Path, *, sync: bool, create_namespace: bool, resync: frozenset[str] = frozenset()) -> list[Command]:
    """Namespace (when asked), the three releases one by one in needs order, then the route.

    ``resync`` names releases that must be synced even under ``helmfile apply``: a failed release
    whose values did not change looks unchanged to helm-diff, which compares with that release."""
    steps: list[Command] = []
    ns = plan.namespace
    if create_namespace:
        steps.append(Command("kubectl", ("create", "namespace", ns), f"namespace {ns}"))
    for rel in plan.releases:  # infra -> gaie -> ms, the helmfile's needs order
        verb = "sync" if sync or rel.name in resync else "apply"
        chart = GENERATED_CHARTS[rel.key] if rel.generated else rel.chart.rsplit('/', 1)[-1]
        steps.append(helmfile(verb, ns, folder, rel.name, f"{rel.name} ({chart} {rel.version})", "--skip-needs"))
    if plan.generation == "helmfile":  # the router chart renders its own HTTPRoute
        steps.append(Command("kubectl", ("apply", "--namespace", ns, "--filename", "httproute.yaml"), f"HTTPRoute {plan.names['route']}", cwd=str(folder)))
    return steps


def diff_steps(plan: Plan, folder: Path) -> list[Command]:
    ns = plan.namespace
    steps = [
        # --detailed-exitcode: 0 no changes, 2 changes, 1 error
        helmfile("diff", ns, folder, None, f"releases of {plan.postfix}", "--skip-needs", "--detailed-exitcode", "--context", "3", ok_codes=(0, 2)),
    ]
    if plan.generation == "helmfile":
        # kubectl diff: 0 no differences, 1 differences, >1 error
        steps.append(Command("kubectl", ("diff", "--namespace", ns, "--filename", "httproute.yaml"), f"HTTPRoute {plan.names['route']}", cwd=str(folder), ok_codes=(0, 1)))
    return steps


def destroy_steps(namespace: str, postfix: str, present: "StackState", folder: Path | None) -> list[Command]:
    """Route first (it points at the Gateway and pool), then helmfile destroy of the kept bundle
    (ms, gaie, infra: reverse needs order). Releases it leaves behind are uninstalled afterwards."""
    names = stack_names(namespace, postfix)
    steps: list[Command] = []
    if present.route:
        steps.append(Command("kubectl", ("delete", "httproute", names["route"], "--namespace", namespace, "--ignore-not-found"), f"HTTPRoute {names['route']}"))
    if present.releases and folder is not None:
        steps.append(helmfile("destroy", namespace, folder, None, f"helmfile destroy {postfix}", "--skip-deps", "--skip-charts"))
    return steps


def uninstall_steps(namespace: str, postfix: str, present: "StackState") -> list[Command]:
    """helm uninstall for each of the stack's releases still present (either generation), dependents first."""
    names = release_names(postfix)
    return [
        Command("helm", ("uninstall", names[key], "--namespace", namespace), f"release {names[key]}")
        for key in reversed(ALL_RELEASE_KEYS) if names[key] in present.releases
    ]


# --- running steps ---------------------------------------------------------------------------


@dataclass
class StepReport:
    label: str
    command: str
    returncode: int
    seconds: float


def run_steps(
    box: Toolbox,
    steps: list[Command],
    *,
    say: Callable[[str], None],
    resume: str,
    cleanup: str | None,
) -> list[StepReport]:
    """Run steps in order with a status line each; the first failure stops the run.

    The error names the step, the command, the tail of its stderr, what is already done, and the
    commands to resume (steps are idempotent, so re-running converges) and to clean up.
    """
    done: list[StepReport] = []
    total = len(steps)
    for i, step in enumerate(steps, 1):
        say(f"[{i}/{total}] {step.label}: {step.display(box)}")
        started = time.monotonic()
        try:
            res = box.stream(step)
        except Interrupted as exc:
            raise Interrupted(
                _failure_text(f"step {i}/{total} {step.label} was interrupted", step, box, exc.stderr_tail, done),
                returncode=130, stderr_tail=exc.stderr_tail, hint=_next(resume, cleanup),
            ) from None
        seconds = time.monotonic() - started
        if res.returncode not in step.ok_codes:
            tail = res.stderr.strip().splitlines()[-20:]
            raise StepFailed(
                _failure_text(f"step {i}/{total} {step.label} failed (exit {res.returncode})", step, box, tail, done),
                returncode=res.returncode, stderr_tail=tail, hint=_next(resume, cleanup),
            )
        done.append(StepReport(step.label, step.display(box), res.returncode, seconds))
        say(f"      done: {step.label} ({seconds:.1f} s)")
    return done


def _failure_text(head: str, step: Command, box: Toolbox, tail: list[str], done: list[StepReport]) -> str:
    lines = [head, f"  command: {step.display(box)}"]
    if tail:
        lines.append("  stderr (last lines):")
        lines += [f"    {t}" for t in tail]
    lines.append("  already done: " + (", ".join(d.label for d in done) if done else "nothing"))
    return "\n".join(lines)


def _next(resume: str, cleanup: str | None) -> str:
    text = f"fix the cause, then resume with: {resume}"
    if cleanup:
        text += f"\n  or clean up with: {cleanup}"
    return text


# --- the commands ----------------------------------------------------------------------------


@dataclass
class UI:
    """How a command talks to the user; the CLI passes stderr writers and a prompt."""

    say: Callable[[str], None]
    confirm: Callable[[str], bool]


def namespace_exists(box: Toolbox, namespace: str) -> bool:
    out = box.query(Command("kubectl", ("get", "namespace", namespace, "--ignore-not-found", "--output", "name"), f"namespace {namespace}"))
    return bool(out.strip())


def secret_exists(box: Toolbox, namespace: str, secret: str) -> bool:
    # -o name prints only kind/name: the token never crosses this boundary
    out = box.query(Command("kubectl", ("get", "secret", secret, "--namespace", namespace, "--ignore-not-found", "--output", "name"), f"Secret {secret}"))
    return bool(out.strip())


def stuck_releases(state: StackState) -> dict[str, str]:
    """Releases a cut-off helm run left pending-*: they hold Helm's lock, and every helm run on them
    fails with "another operation is in progress" until they are rolled back or uninstalled."""
    return {name: str(rel.get("status")) for name, rel in state.releases.items() if str(rel.get("status", "")).startswith("pending-")}


def recover_steps(namespace: str, stuck: dict[str, str]) -> list[Command]:
    """A pending-install never finished, so uninstalling it loses nothing; a pending-upgrade or
    pending-rollback goes back to the revision before it, which helm kept."""
    return [Command("helm", ("uninstall", name, "--namespace", namespace, "--wait") if status == "pending-install"
                    else ("rollback", name, "--namespace", namespace, "--wait"), f"recover {name} ({status})")
            for name, status in stuck.items()]


def refuse_stuck_releases(state: StackState, namespace: str, recover: str | None = None) -> None:
    """Say so before running anything: a plain apply must not take over a lock another helm run
    may still hold. ``--recover`` (the user's word that none is running) clears it."""
    stuck = stuck_releases(state)
    if not stuck:
        return
    fixes = "; ".join(" ".join(("helm",) + c.args[:2]) + f" --namespace {namespace}" for c in recover_steps(namespace, stuck))
    raise LlmdctlError(
        "nothing was applied: " + ", ".join(f"{n} is {s}" for n, s in stuck.items())
        + " (a helm run was cut off and still holds the release lock)",
        hint=(f"if no other helm or llmdctl run is working on this stack, run: {recover}  (it does: {fixes})" if recover
              else f"clear it with: {fixes}") + "; a pending-install never finished, so uninstalling it loses nothing",
    )


WORKLOAD_KINDS = ("Deployment", "LeaderWorkerSet")


def deployments_query(plan: Plan) -> Command:
    """The roles' workloads: Deployments, and LeaderWorkerSets for instances over nodes (asked for
    only then: a cluster without the LWS CRD would fail the whole query)."""
    roles = [plan.roles[r] for r in sorted(plan.roles)]
    if all(r.workers == 1 for r in roles):
        return Command("kubectl", ("get", "deployment", *[r.deployment for r in roles], "--namespace", plan.namespace,
                                   "--ignore-not-found", "--output", "json"), "live Deployments")
    kinds = [f"{'deployment' if r.workers == 1 else 'leaderworkerset.leaderworkerset.x-k8s.io'}/{r.deployment}" for r in roles]
    return Command("kubectl", ("get", *kinds, "--namespace", plan.namespace, "--ignore-not-found", "--output", "json"),
                   "live Deployments and LeaderWorkerSets")


def live_drift(plan: Plan, listing: str) -> list[str]:
    """How the live prefill/decode Deployments differ from the plan (replicas, vLLM image): what a
    ``kubectl scale`` or ``kubectl set image`` leaves behind, which helm-diff cannot see because it
    compares with the last release, not with the cluster."""
    try:
        doc = json.loads(listing) if listing.strip() else {}
    except json.JSONDecodeError:
        return []
    items = doc.get("items", [doc] if doc.get("kind") in WORKLOAD_KINDS else []) if isinstance(doc, dict) else []
    live = {(d.get("metadata") or {}).get("name"): d for d in items if isinstance(d, dict)}
    drift = []
    for role in sorted(plan.roles):
        rp = plan.roles[role]
        dep = live.get(rp.deployment)
        if dep is None:
            continue  # not installed yet, or deleted: helm-diff sees a missing object itself
        spec = dep.get("spec") or {}
        low, high = rp.replica_range
        if not (isinstance(spec.get("replicas"), int) and low <= spec["replicas"] <= high):
            planned = f"{low}-{high} (HPA)" if rp.autoscale else str(rp.replicas)
            drift.append(f"{rp.deployment} has {spec.get('replicas')} replicas, the plan {planned}")
        # a LeaderWorkerSet's pods come from its worker template (the leader's is the same here)
        template = spec.get("template") or ((spec.get("leaderWorkerTemplate") or {}).get("workerTemplate")) or {}
        images = [c.get("image") for c in (template.get("spec") or {}).get("containers") or []]
        if rp.image not in images:
            drift.append(f"{rp.deployment} runs {', '.join(map(str, images)) or 'no container'}, the plan {rp.image}")
    return drift


def observed_drift(box: Toolbox, plan: Plan, ui: "UI") -> list[str]:
    """live_drift of the cluster; a context that may not read Deployments only loses the check."""
    try:
        return live_drift(plan, box.query(deployments_query(plan)))
    except StepFailed as exc:
        ui.say(f"note: could not read the live Deployments ({exc.stderr_tail[-1] if exc.stderr_tail else exc}); "
               "drift from the plan is not checked, so pass --sync if someone scaled or edited them")
        return []


def change_summary(plan: Plan, state: StackState, verb: str) -> list[str]:
    """One line per release and the route: install, upgrade (revision n -> n+1) or unchanged chart."""
    lines = []
    for rel in plan.releases:
        # not the path: with --charts (or a generated chart) the chart is a folder on disk
        pin = router_pin(plan.standalone) if rel.key == "router" else rel.key
        chart = GENERATED_CHARTS[rel.key] if rel.generated else chart_name(plan.release_info.charts[pin]["chart"])
        now = state.releases.get(rel.name)
        if not now:
            lines.append(f"install  {rel.name}: {chart} {rel.version}")
        else:
            current = str(now.get("chart") or "")
            move = f"{current} -> {chart}-{rel.version}" if current != f"{chart}-{rel.version}" else f"{chart}-{rel.version}"
            lines.append(f"{verb:<8} {rel.name}: {move} (revision {now.get('revision')}, {now.get('status')})")
    if plan.generation == "helmfile":
        route = plan.names["route"]
        lines.append(f"{'update' if state.route else 'create':<8} HTTPRoute {route} -> Gateway {plan.names['gateway']}, InferencePool {plan.names['pool']}")
    return lines


def apply_stack(
    plan: Plan,
    files: dict[str, str],
    box: Toolbox,
    folder: Path,
    *,
    ui: UI,
    yes: bool,
    sync: bool,
    create_namespace: bool,
    resume: str,
    cleanup: str,
    recover: bool = False,
    recover_command: str | None = None,
    force: bool = False,
) -> list[StepReport]:
    """Preflight (tools, namespace, Secret, current releases; the admission dry-run, quotas and
    placement doctor runs), summary and confirmation, then the bundle is written to ``folder`` and
    the steps run. Nothing is written or run before the yes, nor when the cluster would refuse the
    pods (unless ``force``)."""

    require_tools(box, ("helmfile", "helm", "kubectl"))
    if not sync and helm_diff_version(box) is None:
        ui.say("note: the helm-diff plugin is not installed, so llmdctl runs `helmfile sync` instead of `helmfile apply` "
               "(every release gets a new revision); install it with: helm plugin install https://github.com/databus23/helm-diff")
        sync = True
    ns = plan.namespace
    exists = namespace_exists(box, ns)
    if not exists and not create_namespace:
        raise LlmdctlError(
            f"namespace {ns} does not exist in context {box.context}; nothing was applied",
            hint=f"pass --create-namespace, or: kubectl create namespace {ns} && {hf_secret_command(ns, plan.hf_secret)}",
        )
    state = observe(box, ns, plan.postfix)
    stuck = stuck_releases(state) if recover else {}
    if not recover:
        refuse_stuck_releases(state, ns, recover=recover_command)
    resync = set(name for name, rel in state.releases.items() if rel.get("status") == "failed")
    drift = [] if sync or plan.names["ms"] not in state.releases else observed_drift(box, plan, ui)
    if drift:
        resync.add(plan.names["ms"])
    refuse_what_cannot_start(plan, box, ui, force=force)
    ui.say(f"target: context {box.context}, namespace {ns}{'' if exists else ' (will be created)'}, postfix {plan.postfix}")
    ui.say(f"bundle: {folder}/")
    for line in change_summary(plan, state, "sync" if sync else "upgrade"):
        ui.say("  " + line)
    if not exists or not secret_exists(box, ns, plan.hf_secret):
        ui.say(f"warning: Secret {plan.hf_secret} (key HF_TOKEN) is not in namespace {ns}; the vLLM pods will wait in "
               f"CreateContainerConfigError until it exists. Create it with:\n  {hf_secret_command(ns, plan.hf_secret)}")
    if not yes and not ui.confirm(f"Apply stack {plan.postfix} to {box.context}/{ns}?"):
        raise LlmdctlError("not applied (declined)", hint="nothing was written or run")
    write_bundle(files, folder)
    if stuck:
        ui.say("recovering: " + ", ".join(f"{n} is {st}" for n, st in stuck.items()))
        run_steps(box, recover_steps(ns, stuck), say=ui.say, resume=resume, cleanup=cleanup)
        state = observe(box, ns, plan.postfix)
        refuse_stuck_releases(state, ns)
        resync = {name for name, rel in state.releases.items() if rel.get("status") == "failed"} | (resync & set(state.releases))
    for name in sorted(resync):
        if state.releases[name].get("status") == "failed":
            ui.say(f"note: {name} is failed (revision {state.releases[name].get('revision')}): it is synced, because helmfile apply "
                   "compares with that failed release and would see no change")
    if drift:
        ui.say(f"note: the live objects of {plan.names['ms']} drifted from the plan ({'; '.join(drift)}): it is synced, because "
               "helmfile apply compares with the last release and would see no change")
    steps = apply_steps(plan, folder, sync=sync, create_namespace=create_namespace and not exists, resync=frozenset(resync))
    return run_steps(box, steps, say=ui.say, resume=resume, cleanup=cleanup)


def refuse_what_cannot_start(plan: Plan, box: Toolbox, ui: UI, *, force: bool) -> None:
    """doctor's fast checks (admission dry-run, quotas, placement: one pass, no waiting) before
    anything changes: a stack whose pods the cluster would refuse or cannot place is not applied."""
    workloads, note = rendered_workloads(plan, box)
    if note:
        ui.say(f"note: {note}")
    try:
        checks = preflight(kube_for(box), plan, workloads)
    except KubeError as exc:
        raise LlmdctlError(f"the pre-apply checks could not ask the API server: {exc.message}; nothing was applied",
                           hint=exc.hint or "llmdctl doctor shows what is reachable") from None
    failed = [c for c in checks if c.status == "fail"]
    if not failed:
        return
    lines = "".join(f"\n  {c.name}: {c.observed}" + (f"\n    fix: {c.hint}" if c.hint else "") for c in failed)
    if force:
        ui.say(f"warning: applying with --force although the cluster will not start the pods:{lines}")
        return
    raise LlmdctlError(f"the cluster would not start this stack's pods; nothing was applied:{lines}",
                       hint="fix the above and apply again (llmdctl doctor shows every check), or --force to install the releases anyway")


def refused_after_apply(plan: Plan, box: Toolbox, *, settle: float = 5.0) -> list:
    """After the releases are in: the stack's workloads whose pods the API server refused
    (FailedCreate), read until every workload has its pods or ``settle`` seconds pass."""
    kube = kube_for(box)
    deadline = time.monotonic() + settle
    while True:
        try:
            obs = observe_stack(kube, plan)
            # only workloads that exist can be short of pods for a reason the API server gives
            short = {name for name in missing_pods(plan, obs) if name in obs.deployments or name in obs.groups}
            refused = workload_refusals(kube, plan, short, obs.deployments) if short else []
        except KubeError:
            return []
        if refused or not short or time.monotonic() >= deadline:
            return refused
        time.sleep(0.5)


def destroy_stack(
    box: Toolbox,
    namespace: str,
    postfix: str,
    folder: Path,
    *,
    ui: UI,
    yes: bool,
    resume: str,
    force: bool = False,
) -> list[str]:
    """Remove one stack; returns what was removed (empty when there was nothing to remove). A
    stack whose Gateway other stacks route through is kept unless ``force``."""

    use_folder = folder if bundle_files_in(folder) is not None else None
    require_tools(box, ("helm", "kubectl") + (("helmfile",) if use_folder else ()))
    state = observe(box, namespace, postfix)
    if state.empty:
        _forget(folder)
        return []
    holder = next((k for k in ("gateway", "infra") if release_names(postfix)[k] in state.releases), None)
    if holder and not force:
        generation = "router" if holder == "gateway" else "helmfile"
        gateway = stack_names(namespace, postfix, generation=generation)["gateway"]
        routes = list_routes(box, namespace)
        users = attached_routes(routes or [], namespace, postfix, generation)
        if routes is None:
            ui.say(f"warning: cannot list HTTPRoutes, so whether other stacks route through Gateway {gateway} is not checked")
        if users:
            others = sorted({m.group(1) for u in users if (m := _ROUTE_NAME.fullmatch(u.split("/", 1)[1]))})
            raise LlmdctlError(
                f"not destroyed: Gateway {gateway} also carries HTTPRoute {', '.join(users)}; "
                "removing it would stop serving those models",
                hint=(f"destroy the stacks attached to it first (llmdctl destroy -n {namespace} --postfix {others[0]}), " if others else "detach those routes first, ")
                     + "or pass --force to remove the Gateway anyway")
    ui.say(f"target: context {box.context}, namespace {namespace}, postfix {postfix}; will remove:")
    for item in state.describe():
        ui.say(f"  {item}")
    ui.say("  (kept: the namespace, Secrets such as the HF token, and everything llmdctl did not create)")
    if not yes and not ui.confirm(f"Destroy stack {postfix} in {box.context}/{namespace}?"):
        raise LlmdctlError("not destroyed (declined)", hint="nothing was removed")
    run_steps(box, destroy_steps(namespace, postfix, state, use_folder), say=ui.say, resume=resume, cleanup=None)
    left = observe(box, namespace, postfix)
    if left.releases:  # not in the kept bundle, or helmfile left them: uninstall by exact name
        run_steps(box, uninstall_steps(namespace, postfix, left), say=ui.say, resume=resume, cleanup=None)
        left = observe(box, namespace, postfix)
    if not left.empty:
        raise LlmdctlError(
            "destroy ran but these are still present: " + "; ".join(left.describe()),
            hint=f"look at `helm status` and `kubectl get httproute -n {namespace}`, then run again: {resume}",
        )
    _forget(folder)
    return state.describe()


def _forget(folder: Path) -> None:
    """Drop the kept bundle of a stack that no longer exists, and its revisions: only what llmdctl wrote."""
    shutil.rmtree(folder / HISTORY, ignore_errors=True)
    remove_bundle(folder)


def diff_stack(plan: Plan, files: dict[str, str], box: Toolbox, *, ui: UI) -> bool | None:
    """helmfile diff of the releases and kubectl diff of the route, from a throw-away bundle (the
    kept one records what was applied). True when anything would change; None without the
    helm-diff plugin (the rollout plan, read through the API, is the diff then)."""
    require_tools(box, ("helmfile", "helm", "kubectl"))
    if helm_diff_version(box) is None:
        ui.say(f"note: the release-level diff needs the helm-diff plugin ({fmt_version(MINIMUMS['helm-diff'])}+), which is not installed "
               f"({INSTALL_HINTS['helm-diff']}); the rollout plan above was read from the cluster without it")
        return None
    tmp = Path(tempfile.mkdtemp(prefix="llmdctl-diff-"))
    try:
        folder = tmp / "bundle"
        write_bundle(files, folder)
        changed = False
        for step in diff_steps(plan, folder):
            ui.say(f"{step.label}: {step.display(box).replace(str(folder), '<bundle>')}")
            res = box.stream(step, prefix="", to_stdout=True)
            if res.returncode not in step.ok_codes:
                tail = res.stderr.strip().splitlines()[-20:]
                raise StepFailed(_failure_text(f"diff of {step.label} failed (exit {res.returncode})", step, box, tail, []),
                                 returncode=res.returncode, stderr_tail=tail)
            changed = changed or res.returncode != 0
        return changed
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# --- orchestration the CLI calls -------------------------------------------------------------


def state_dir(env: dict | None = None) -> Path:
    """Where applied bundles are kept, the same from every folder: ``$LLMDCTL_STATE_DIR``, else
    ``$XDG_STATE_HOME/llmdctl``, else ``~/.local/state/llmdctl`` (a bundle under the current
    folder was lost by an apply from elsewhere and left stale by a destroy from elsewhere)."""
    env = os.environ if env is None else env
    if env.get("LLMDCTL_STATE_DIR"):
        return Path(env["LLMDCTL_STATE_DIR"])
    base = env.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return Path(base) / "llmdctl"


def kept_bundle(explicit: Path | None, box: Toolbox, namespace: str, postfix: str) -> Path:
    """The folder apply keeps a stack's bundle in (``--bundle-dir`` wins)."""
    return explicit if explicit else bundle_dir(state_dir() / "bundles", box.context or "current-context", namespace, postfix)


def apply_dry_run(plan: Plan, files: dict[str, str], box: Toolbox, folder: Path, *, sync: bool, create_namespace: bool,
                  verify_command: str | None) -> str:
    """What apply would write and run, as text; nothing is written or run."""
    lines = [
        "# dry run: nothing is written or run",
        f"# context {box.context or '(none selected: apply would refuse)'}, namespace {plan.namespace}, postfix {plan.postfix}",
        f"# would write {folder}/: {', '.join(files)}",
        f"# would check: helmfile, helm, kubectl versions; helm-diff plugin; namespace; Secret {plan.hf_secret}; current releases",
    ]
    if not sync:
        # the run uses sync without helm-diff: show the commands it will run (asking helm which
        # plugins it has is local; no cluster is contacted)
        try:
            has_diff = helm_diff_version(box) is not None
        except (ToolMissing, OSError):
            has_diff = None
        if has_diff is False:
            lines.append("# the helm-diff plugin is not installed, so apply runs `helmfile sync` (install it for `helmfile apply`: "
                         "helm plugin install https://github.com/databus23/helm-diff)")
            sync = True
        elif has_diff is None:
            lines.append("# helm is not found here; with the helm-diff plugin apply runs these, without it `helmfile sync`")
    lines += [step.display(box) for step in apply_steps(plan, folder, sync=sync, create_namespace=create_namespace)]
    if verify_command:
        lines.append(verify_command)
    return "\n".join(lines) + "\n"


def destroy_dry_run(box: Toolbox, namespace: str, postfix: str, folder: Path) -> str:
    """The commands destroy would run if every object of the stack existed; nothing is run."""
    names = release_names(postfix)
    everything = StackState(releases={names[k]: {} for k in ALL_RELEASE_KEYS}, route=stack_names(namespace, postfix)["route"])
    kept = folder if bundle_files_in(folder) is not None else None
    lines = [f"# dry run: nothing is run; commands for context {box.context or '(none selected: destroy would refuse)'}, namespace {namespace}, postfix {postfix}"]
    lines += [step.display(box) for step in destroy_steps(namespace, postfix, everything, kept) + uninstall_steps(namespace, postfix, everything)]
    return "\n".join(lines) + "\n"
