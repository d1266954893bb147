"""GitOps output (issue 29): the objects that make Argo CD or Flux deploy a bundle's releases.

Neither controller reads a helmfile, so ``render --gitops argocd|flux`` writes, beside it, one
controller object per helmfile release, read from the same plan the helmfile is written from (chart,
repository, version, values and ``needs`` come from the catalog through ``Plan.releases``; nothing
here knows a chart name):

- **Argo CD** (``gitops/argocd/``): an Application per release under ``apps/``, ordered by the
  ``argocd.argoproj.io/sync-wave`` annotation (a release's wave is one more than the highest wave of
  the releases it ``needs``), and ``root.yaml``, the app-of-apps whose sync applies those waves in
  order. Upstream charts come from their registry at the pinned version (an ``oci://`` chart as
  Argo CD's native OCI source, >= v3.1; a chart repository as ``repoURL`` + ``chart``) with the
  values inline (``helm.valuesObject``, the same map as the bundle's values file); the charts
  llmdctl generates (``charts/ms``, ``charts/gateway``) and the helmfile era's ``httproute.yaml``
  come from the Git repository the bundle is committed to (``--repo-url``, ``--path``). Argo CD
  assesses no Application health since v1.8 (so waves would not wait) and knows neither the
  InferencePool nor the LeaderWorkerSet: ``argocd-cm.patch.yaml`` adds those health checks.
- **Flux** (``gitops/flux/``): a ``GitRepository`` for the bundle, and per release an
  ``OCIRepository`` or ``HelmRepository`` (upstream charts) plus a ``HelmRelease`` with
  ``dependsOn`` mirroring ``needs``. ``releaseName`` is the helmfile's release name, so Helm's
  records (``helm list``, ``llmdctl status|verify``) look as after ``helmfile apply``.

Secrets are referenced, never written: the HF token stays a Secret name inside the values, and the
controller's own credentials for a private repository live where each controller keeps them.
Output is deterministic: equal plans and flags give byte-identical files.
"""

from __future__ import annotations

import posixpath
import re
from typing import NamedTuple

from .. import __version__
from ..base.errors import InputError
from ..base.yamlio import dump
from ..plan.stack import Plan, ReleasePlan

CONTROLLERS = ("argocd", "flux")
ARGOCD_NAMESPACE = "argocd"  # where Argo CD's Applications and argocd-cm live in its standard install
IN_CLUSTER = "https://kubernetes.default.svc"
WAVE = "argocd.argoproj.io/sync-wave"
HELM_CHART_LAYER = "application/vnd.cncf.helm.chart.content.v1.tar+gzip"
_SHA = re.compile(r"[0-9a-f]{40}")


class GitOps(NamedTuple):
    """Where the controller finds the bundle: the repository it is committed to, the folder inside
    it (posix, "" for the root) and the branch (or commit) to follow."""

    controller: str  # argocd | flux
    repo_url: str
    path: str
    revision: str

    def flags(self) -> list[str]:
        """The render flags that reproduce this output (for the command the bundle records)."""
        out = ["--gitops", self.controller, "--repo-url", self.repo_url]
        if self.path:
            out += ["--path", self.path]
        if self.revision != "main":
            out += ["--revision", self.revision]
        return out

    def in_repo(self, rel_path: str) -> str:
        """A file of the bundle as a path from the repository's root."""
        return posixpath.normpath(posixpath.join(self.path or ".", rel_path))


def gitops_target(controller: str | None, repo_url: str | None, path: str | None, revision: str | None,
                  *, local_charts: bool = False) -> GitOps | None:
    """Check the --gitops flags; None when no GitOps output is asked for."""
    if controller is None:
        given = [f for f, v in (("--repo-url", repo_url), ("--path", path), ("--revision", revision)) if v is not None]
        if given:
            raise InputError(f"{', '.join(given)} only apply with --gitops", hint="add --gitops argocd or --gitops flux, or drop them")
        return None
    if controller not in CONTROLLERS:
        raise InputError(f"--gitops {controller!r}: expected argocd or flux")
    if not repo_url:
        raise InputError(
            f"--gitops {controller} needs --repo-url: the Git repository you commit this bundle to "
            f"({'Argo CD' if controller == 'argocd' else 'Flux'} reads the generated charts under charts/ from it)",
            hint=f"llmdctl render --gitops {controller} --repo-url https://git.example.com/platform/llm-d.git --path stacks/pd -o stacks/pd")
    if not re.fullmatch(r"(https?|ssh)://[^\s/@]+(@[^\s/@]+)?/\S*", repo_url):
        raise InputError(f"--repo-url {repo_url!r}: expected https://host/path, http://host/path or ssh://[user@]host/path",
                         hint="both controllers take these forms (Flux refuses scp-like git@host:path; write ssh://git@host/path)")
    if re.match(r"https?://[^/]*@", repo_url):
        raise InputError("--repo-url carries credentials; llmdctl never writes secrets into a bundle",
                         hint="give the URL without user:password@ and keep the credentials in the controller "
                              "(an Argo CD repository Secret; a Flux GitRepository secretRef)")
    path = (path or "").strip()
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if path.startswith("/") or "\\" in path or ".." in parts:
        raise InputError(f"--path {path!r}: expected the bundle's folder relative to the repository's root, e.g. stacks/pd")
    revision = "main" if revision is None else revision
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._/-]*", revision) or ".." in revision:
        raise InputError(f"--revision {revision!r}: expected a branch name or a 40-character commit SHA")
    if local_charts:
        raise InputError("--gitops with --charts: the controller fetches the charts itself and cannot read a folder on this machine",
                         hint="drop --charts (use --chart-repo to name a mirror the controller can reach)")
    return GitOps(controller, repo_url, "/".join(parts), revision)


# -- where each release's chart comes from --------------------------------------------------------

class ChartSource(NamedTuple):
    kind: str  # oci | helm | git
    url: str  # oci://host/path/chart, the chart repository's URL, or the path in the Git repository
    chart: str = ""  # the chart's name in a chart repository
    version: str = ""


def chart_source(rel: ReleasePlan, target: GitOps) -> ChartSource:
    """The helmfile release's chart as a controller addresses it."""
    if rel.generated:
        return ChartSource("git", target.in_repo(rel.chart))
    if rel.local:
        raise InputError(f"{rel.name}: chart {rel.chart} is a path on this machine; a GitOps controller cannot fetch it")
    if rel.chart.startswith("oci://"):
        return ChartSource("oci", rel.chart, rel.chart.rsplit("/", 1)[-1], rel.version)
    if rel.repository and "/" in rel.chart:
        return ChartSource("helm", rel.repository["url"], rel.chart.split("/", 1)[1], rel.version)
    raise InputError(f"{rel.name}: cannot tell where chart {rel.chart!r} comes from (no repository)")


def sync_waves(plan: Plan) -> dict[str, int]:
    """Release name -> wave: 0 without needs, else one more than the highest wave it needs (the
    order helmfile applies them in)."""
    waves: dict[str, int] = {}
    for rel in plan.releases:  # helmfile order: every release comes after what it needs
        waves[rel.name] = 1 + max((waves[n] for n in rel.needs if n in waves), default=-1)
    return waves


# -- files --------------------------------------------------------------------------------------

def gitops_files(plan: Plan, target: GitOps) -> dict[str, str]:
    """File name (relative to the bundle) -> text, for the controller ``target`` names."""
    return _argocd_files(plan, target) if target.controller == "argocd" else _flux_files(plan, target)


def _head(what: str) -> str:
    return (f"# Generated by llmdctl {__version__} from the plan this bundle's helmfile.yaml was written from: {what}.\n"
            "# Re-render rather than edit (see README.md, GitOps).\n")


def _docs(*docs: dict) -> str:
    return "---\n".join(dump(d) for d in docs)


def _labels(plan: Plan, rel_key: str | None = None) -> dict:
    labels = {"app.kubernetes.io/managed-by": "llmdctl", "llmdctl.llm-d.ai/stack": plan.postfix}
    if rel_key:
        labels["llmdctl.llm-d.ai/component"] = rel_key
    return labels


def _app_name(plan: Plan, release: str) -> str:
    return f"{plan.namespace}-{release}"


def _application(name: str, labels: dict, wave: int | None, source: dict, namespace: str) -> dict:
    meta: dict = {"name": name, "namespace": ARGOCD_NAMESPACE, "labels": labels}
    if wave is not None:
        meta["annotations"] = {WAVE: str(wave)}
    # deleting the Application deletes what it deployed (helmfile destroy's counterpart)
    meta["finalizers"] = ["resources-finalizer.argocd.argoproj.io"]
    return {
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Application", "metadata": meta,
        "spec": {"project": "default", "source": source, "destination": {"server": IN_CLUSTER, "namespace": namespace},
                 "syncPolicy": {"automated": {"prune": True, "selfHeal": True}}},
    }


def argocd_source(rel: ReleasePlan, target: GitOps) -> dict:
    src = chart_source(rel, target)
    helm: dict = {"releaseName": rel.name}
    if rel.values_file:
        helm["valuesObject"] = rel.values  # the map the bundle's values file holds
    if src.kind == "oci":  # Argo CD's native OCI source (v3.1+): the chart is the artifact at "."
        return {"repoURL": src.url, "path": ".", "targetRevision": src.version, "helm": helm}
    if src.kind == "helm":
        return {"repoURL": src.url, "chart": src.chart, "targetRevision": src.version, "helm": helm}
    return {"repoURL": target.repo_url, "path": src.url, "targetRevision": target.revision, "helm": helm}


def _argocd_files(plan: Plan, target: GitOps) -> dict[str, str]:
    waves = sync_waves(plan)
    files: dict[str, str] = {}
    for rel in plan.releases:
        app = _application(_app_name(plan, rel.name), _labels(plan, rel.key), waves[rel.name], argocd_source(rel, target), plan.namespace)
        files[f"gitops/argocd/apps/{rel.name}.yaml"] = _head(f"release {rel.name}, sync wave {waves[rel.name]}") + dump(app)
    if plan.generation == "helmfile":  # the route is applied after every release, as the bundle README says
        wave = max(waves.values(), default=-1) + 1
        source = {"repoURL": target.repo_url, "path": target.in_repo("."), "targetRevision": target.revision,
                  "directory": {"include": "httproute.yaml"}}
        route = _application(_app_name(plan, f"httproute-{plan.postfix}"), _labels(plan, "route"), wave, source, plan.namespace)
        files["gitops/argocd/apps/httproute.yaml"] = _head(f"the HTTPRoute {plan.names['route']}, sync wave {wave}") + dump(route)
    root_source = {"repoURL": target.repo_url, "path": target.in_repo("gitops/argocd/apps"), "targetRevision": target.revision}
    root = _application(root_name(plan), _labels(plan), None, root_source, ARGOCD_NAMESPACE)
    files["gitops/argocd/root.yaml"] = (
        _head("the app-of-apps; apply it once: kubectl apply -n argocd -f gitops/argocd/root.yaml") + dump(root))
    files["gitops/argocd/argocd-cm.patch.yaml"] = _argocd_cm()
    return files


def root_name(plan: Plan) -> str:
    return f"llmd-{plan.namespace}-{plan.postfix}"


# Argo CD health checks (Lua, resource.customizations.health.<group>_<Kind> in argocd-cm).
# Application: Argo CD's documented check for app-of-apps, removed from the defaults in v1.8;
# without it the parent does not wait for one wave's Applications before the next.
_APPLICATION_HEALTH = """\
hs = {}
hs.status = "Progressing"
hs.message = ""
if obj.status ~= nil and obj.status.health ~= nil then
  hs.status = obj.status.health.status
  if obj.status.health.message ~= nil then
    hs.message = obj.status.health.message
  end
end
return hs
"""
# InferencePool: a Gateway that takes the pool writes status.parents[].conditions (Accepted,
# ResolvedRefs). A standalone pool (Envoy in the EPP pod) has no parent and is healthy as is.
_POOL_HEALTH = """\
hs = {status = "Healthy", message = "no Gateway parent: standalone (Envoy in the EPP pod)"}
if obj.status ~= nil and obj.status.parents ~= nil then
  for _, parent in ipairs(obj.status.parents) do
    for _, c in ipairs(parent.conditions or {}) do
      if (c.type == "Accepted" or c.type == "ResolvedRefs") and c.status == "False" then
        return {status = "Degraded", message = c.type .. ": " .. (c.message or c.reason or "False")}
      end
      if (c.type == "Accepted" or c.type == "ResolvedRefs") and c.status ~= "True" then
        hs = {status = "Progressing", message = "waiting for the Gateway: " .. c.type .. " " .. (c.reason or "Unknown")}
      end
    end
  end
  if hs.status == "Healthy" and #obj.status.parents > 0 then
    hs.message = "accepted by its Gateway"
  end
end
return hs
"""
# LeaderWorkerSet: healthy when every group (spec.replicas) is ready on the current template.
_LWS_HEALTH = """\
local want = 1
if obj.spec ~= nil and obj.spec.replicas ~= nil then
  want = obj.spec.replicas
end
if obj.status == nil then
  return {status = "Progressing", message = "no status yet"}
end
for _, c in ipairs(obj.status.conditions or {}) do
  if c.type == "Failed" and c.status == "True" then
    return {status = "Degraded", message = c.message or "Failed"}
  end
end
local ready = obj.status.readyReplicas or 0
local updated = obj.status.updatedReplicas or 0
local msg = ready .. " of " .. want .. " groups ready, " .. updated .. " updated"
if ready >= want and updated >= want then
  return {status = "Healthy", message = msg}
end
return {status = "Progressing", message = msg}
"""
HEALTH_CHECKS = {
    "argoproj.io_Application": _APPLICATION_HEALTH,
    "inference.networking.k8s.io_InferencePool": _POOL_HEALTH,
    "inference.networking.x-k8s.io_InferencePool": _POOL_HEALTH,  # GAIE's alpha group (inferencepool < v1.0)
    "leaderworkerset.x-k8s.io_LeaderWorkerSet": _LWS_HEALTH,
}


def _argocd_cm() -> str:
    data = {f"resource.customizations.health.{k}": v for k, v in HEALTH_CHECKS.items()}
    # annotation tracking (the v3 default) leaves the charts' app.kubernetes.io/instance labels alone,
    # so selectors stay what helmfile would deploy
    data["application.resourceTrackingMethod"] = "annotation"
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "argocd-cm", "namespace": ARGOCD_NAMESPACE}, "data": data}
    return ("# Health checks Argo CD needs for this bundle, as a patch of its argocd-cm ConfigMap (merged, nothing else changes):\n"
            "#   kubectl patch configmap argocd-cm -n argocd --type merge --patch-file gitops/argocd/argocd-cm.patch.yaml\n"
            "# Application: lets the app-of-apps wait for each sync wave (Argo CD dropped this check in v1.8).\n"
            "# InferencePool: Degraded when its Gateway refuses it; healthy standalone. LeaderWorkerSet: every group ready.\n"
            + dump(cm))


def gitrepository_name(plan: Plan) -> str:
    return f"llmd-{plan.postfix}"


def _flux_files(plan: Plan, target: GitOps) -> dict[str, str]:
    ns = plan.namespace
    ref = {"commit": target.revision} if _SHA.fullmatch(target.revision) else {"branch": target.revision}
    git = {"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "GitRepository",
           "metadata": {"name": gitrepository_name(plan), "namespace": ns, "labels": _labels(plan)},
           "spec": {"interval": "5m", "url": target.repo_url, "ref": ref}}
    files = {"gitops/flux/gitrepository.yaml": _head("the Git repository the generated charts come from") + dump(git)}
    needed = {n for rel in plan.releases for n in rel.needs}
    for rel in plan.releases:
        src = chart_source(rel, target)
        meta = {"name": rel.name, "namespace": ns, "labels": _labels(plan, rel.key)}
        docs: list[dict] = []
        spec: dict = {"interval": "10m", "releaseName": rel.name, "timeout": "20m"}
        if src.kind == "oci":
            docs.append({"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "OCIRepository", "metadata": meta,
                         "spec": {"interval": "1h", "url": src.url, "ref": {"tag": src.version},
                                  "layerSelector": {"mediaType": HELM_CHART_LAYER, "operation": "copy"}}})
            spec["chartRef"] = {"kind": "OCIRepository", "name": rel.name}
        elif src.kind == "helm":
            docs.append({"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "HelmRepository", "metadata": meta,
                         "spec": {"interval": "1h", "url": src.url}})
            spec["chart"] = {"spec": {"chart": src.chart, "version": src.version, "sourceRef": {"kind": "HelmRepository", "name": rel.name}}}
        else:  # reconcileStrategy Revision: a new commit of the generated chart is a new chart (its version stays)
            spec["chart"] = {"spec": {"chart": f"./{src.url}", "sourceRef": {"kind": "GitRepository", "name": gitrepository_name(plan)},
                                      "reconcileStrategy": "Revision"}}
        if rel.needs:
            spec["dependsOn"] = [{"name": n} for n in rel.needs]
        if rel.name not in needed:  # nothing waits for it: do not hold the release open while vLLM loads a model
            spec["install"] = {"disableWait": True}
            spec["upgrade"] = {"disableWait": True}
        if rel.values_file:
            spec["values"] = rel.values  # the map the bundle's values file holds
        docs.append({"apiVersion": "helm.toolkit.fluxcd.io/v2", "kind": "HelmRelease", "metadata": meta, "spec": spec})
        after = f", after {', '.join(rel.needs)}" if rel.needs else ""
        files[f"gitops/flux/{rel.name}.yaml"] = _head(f"release {rel.name}{after}") + _docs(*docs)
    if plan.generation == "helmfile":
        route = {**plan.route, "metadata": {**plan.route["metadata"], "namespace": ns}}
        files["gitops/flux/httproute.yaml"] = (_head("the HTTPRoute; it names the Gateway and the InferencePool, and is "
                                                      "accepted once their releases are in") + dump(route))
    return files


def readme_section(plan: Plan, target: GitOps) -> str:
    """What the bundle README says about committing the bundle and pointing the controller at it."""
    where = f"`{target.path}/`" if target.path else "the root"
    commit = (f"Commit this folder as {where} of `{target.repo_url}` on `{target.revision}` "
              "(the controller reads the generated charts from there), then:\n\n")
    if target.controller == "argocd":
        order = " -> ".join(f"`{r.name}` (wave {w})" for r, w in zip(plan.releases, sync_waves(plan).values()))
        if plan.generation == "helmfile":
            order += f" -> `{plan.names['route']}` (the HTTPRoute)"
        return ("\n## GitOps: Argo CD\n\n" + commit +
                "```sh\n"
                "kubectl patch configmap argocd-cm -n argocd --type merge --patch-file gitops/argocd/argocd-cm.patch.yaml\n"
                "kubectl apply -n argocd -f gitops/argocd/root.yaml\n"
                "```\n\n"
                f"`root.yaml` is an app-of-apps (`{root_name(plan)}`) over `gitops/argocd/apps/`: one Application per release, "
                f"synced in the order helmfile's `needs` gives: {order}. The argocd-cm patch adds the health checks those "
                "waves wait on (Application, InferencePool, LeaderWorkerSet). Argo CD renders the charts with `helm template` "
                "and applies the objects itself, so there are no Helm releases: `helm list`, `llmdctl status` and `llmdctl "
                "verify` (which read Helm's records) do not see the stack; check it with `kubectl` or "
                f"`argocd app get {_app_name(plan, plan.releases[-1].name)}`. The Secret `{plan.hf_secret}` (key `HF_TOKEN`) "
                "is referenced, never written: create it in the namespace yourself. A private repository needs an Argo CD "
                "repository Secret.\n\n")
    return ("\n## GitOps: Flux\n\n" + commit +
            "```sh\n"
            f"flux create kustomization llmd-{plan.postfix} --source=GitRepository/flux-system "
            f"--path=./{target.in_repo('gitops/flux')} --prune=true --interval=10m\n"
            f"# or, when the bundle is in another repository than Flux's own: kubectl apply -f gitops/flux/gitrepository.yaml, then\n"
            f"#   --source=GitRepository/{gitrepository_name(plan)}.{plan.namespace} --path=./{target.in_repo('gitops/flux')} above\n"
            "```\n\n"
            f"`gitops/flux/` holds the GitRepository `{gitrepository_name(plan)}` (the generated charts), and per release its "
            "chart source (OCIRepository or HelmRepository at the pinned version) and a HelmRelease whose `dependsOn` "
            "mirrors helmfile's `needs`. The HelmReleases keep the helmfile's release names, so `helm list`, "
            "`llmdctl status` and `llmdctl verify` see the stack as after `helmfile apply`. The Secret "
            f"`{plan.hf_secret}` (key `HF_TOKEN`) is referenced, never written: create it in the namespace yourself. A "
            f"private repository needs `secretRef` on the GitRepository.\n\n")
