"""Stand-in helmfile, helm and kubectl for the lifecycle tests.

Installed by the tests under all three names (argv[0] says which tool it is). It keeps a small
cluster model in $FAKE_STATE (JSON): per context and namespace the helm releases, HTTPRoutes,
Secrets and whether the namespace exists. Every call is appended to $FAKE_LOG as one JSON line
(tool, argv, cwd, KUBECONFIG). Answers are shaped like the real tools' (helm list -o json, exit
codes of diff, "not found" errors), and rules in the state make a matching call fail or hang.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sys
import time
from pathlib import Path

STATE = Path(os.environ["FAKE_STATE"])
LOG = Path(os.environ["FAKE_LOG"])


def load() -> dict:
    return json.loads(STATE.read_text())


def save(state: dict) -> None:
    tmp = STATE.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=1, sort_keys=True))
    tmp.replace(STATE)


def log(entry: dict) -> None:
    with LOG.open("a") as fh:
        fh.write(json.dumps(entry) + "\n")


def die(msg: str, code: int = 1) -> None:
    sys.stderr.write(msg + "\n")
    sys.exit(code)


def take(args: list[str], *names: str, flag: bool = False):
    """Remove a flag (and its value) from args; return the value (or True for a bare flag)."""
    for i, a in enumerate(args):
        for n in names:
            if a == n:
                if flag:
                    del args[i]
                    return True
                value = args[i + 1]
                del args[i : i + 2]
                return value
            if a.startswith(n + "=") and not flag:
                del args[i]
                return a.split("=", 1)[1]
    return None


def ns_state(state: dict, ctx: str, ns: str, create: bool = False) -> dict | None:
    cluster = state["contexts"].setdefault(ctx, {"namespaces": {}})
    if ns not in cluster["namespaces"]:
        if not create:
            return None
        cluster["namespaces"][ns] = {"releases": {}, "routes": {}, "secrets": []}
    return cluster["namespaces"][ns]


def read_yaml(path: Path):
    from ruamel.yaml import YAML

    return YAML(typ="safe").load(path.read_text())


def read_yaml_all(path: Path) -> list:
    from ruamel.yaml import YAML

    return list(YAML(typ="safe").load_all(path.read_text()))


HELM_RELEASE = "meta.helm.sh/release-name"


def store_workload(nstate: dict, release: str, ns: str, obj: dict) -> None:
    """Keep a Deployment or LeaderWorkerSet as the API server would: with helm's ownership annotations."""
    obj = json.loads(json.dumps(obj))
    obj.setdefault("metadata", {}).setdefault("annotations", {}).update({HELM_RELEASE: release, "meta.helm.sh/release-namespace": ns})
    obj["metadata"]["namespace"] = ns
    nstate.setdefault("workloads", {})[f"{obj['kind']}/{obj['metadata']['name']}"] = obj


def drop_workloads(nstate: dict, release: str) -> None:
    for name in [n for n, o in nstate.get("workloads", {}).items() if o["metadata"]["annotations"][HELM_RELEASE] == release]:
        del nstate["workloads"][name]


def modelservice_deployment(release: str, role: str, spec: dict) -> dict:
    """The Deployment llm-d-modelservice renders for a role: chart labels on the object, the role on
    its pods, and vLLM's args with --tensor-parallel-size only above 1 (as the chart injects it)."""
    tensor = int((spec.get("parallelism") or {}).get("tensor", 1))
    containers = [{"name": c.get("name", "vllm"), "image": c.get("image"),
                   "command": ["vllm", "serve", "some/model"],
                   "args": ["--port", "8000", *(["--tensor-parallel-size", str(tensor)] if tensor > 1 else []), *[str(a) for a in c.get("args") or []]]}
                  for c in spec.get("containers") or []]
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": f"{release}-llm-d-modelservice-{role}", "labels": {"helm.sh/chart": "llm-d-modelservice"}},
            "spec": {"replicas": spec.get("replicas", 1),
                     "template": {"metadata": {"labels": {"llm-d.ai/role": role}}, "spec": {"containers": containers}}}}


def now() -> str:
    return "2026-11-22 10:00:00.000000 +0000 UTC"


# --- helm ----------------------------------------------------------------------------------


def helm(args: list[str], state: dict) -> None:
    take(args, "--kubeconfig")
    ctx = take(args, "--kube-context") or state.get("current")
    if args[:2] == ["version", "--short"]:
        print(state["versions"]["helm"] + "+g0123abc")
        return
    if args[:2] == ["plugin", "list"]:
        print("NAME\tVERSION\tDESCRIPTION")
        for name, version in sorted(state.get("plugins", {}).items()):
            print(f"{name}\t{version}\tPreview helm upgrade changes as a diff")
        return
    if args and args[0] == "list":
        all_ns = take(args, "--all-namespaces", "-A", flag=True)
        ns = take(args, "--namespace", "-n")
        take(args, "--all", "-a", flag=True)
        output = take(args, "--output", "-o")
        import re

        pattern = re.compile(take(args, "--filter") or "")
        rows = []
        for name_ns, nstate in sorted(state["contexts"].get(ctx, {"namespaces": {}})["namespaces"].items()):
            if not all_ns and name_ns != ns:
                continue
            for rel in sorted(nstate["releases"].values(), key=lambda r: r["name"]):
                if pattern.search(rel["name"]):
                    rows.append({k: rel[k] for k in ("name", "namespace", "revision", "updated", "status", "chart", "app_version")})
        assert output == "json", args
        print(json.dumps(rows))
        return
    if args and args[0] == "rollback":
        name = args[1]
        ns = take(args, "--namespace", "-n")
        nstate = ns_state(state, ctx, ns)
        if not nstate or name not in nstate["releases"]:
            die("Error: release: not found")
        rel = nstate["releases"][name]
        rel.update(status="deployed", revision=str(int(rel["revision"]) + 1))
        save(state)
        print("Rollback was a success! Happy Helming!")
        return
    if args and args[0] == "uninstall":
        name = args[1]
        ns = take(args, "--namespace", "-n")
        nstate = ns_state(state, ctx, ns)
        if not nstate or name not in nstate["releases"]:
            die(f"Error: uninstall: Release not loaded: {name}: release: not found")
        del nstate["releases"][name]
        drop_workloads(nstate, name)
        save(state)
        print(f'release "{name}" uninstalled')
        return
    die(f"fake helm: unsupported {args}", 64)


# --- helmfile ------------------------------------------------------------------------------


def helmfile(args: list[str], state: dict) -> None:
    ctx = take(args, "--kube-context") or state.get("current")
    take(args, "--helm-binary")
    file = take(args, "--file", "-f") or "helmfile.yaml"
    ns = take(args, "--namespace", "-n")
    selector = take(args, "--selector", "-l")
    if args == ["--version"]:
        print(f"helmfile version {state['versions']['helmfile']}")
        return
    verb = args[0]
    doc = read_yaml(Path(file))
    releases = doc["releases"]
    if verb == "template":
        # the charts the bundle carries (llmdctl's generated ones) render as their files; the
        # upstream charts are not here, so their objects are left out
        for rel in releases:
            chart = Path(str(rel.get("chart", "")))
            if (chart / "templates").is_dir():
                for f in sorted((chart / "templates").glob("*.yaml")):
                    print("---\n" + f.read_text())
        return
    if selector:
        key, _, value = selector.partition("=")
        assert key == "name", selector
        releases = [r for r in releases if r["name"] == value]
        if not releases:
            die(f'err: no releases found that matches specified selector ({selector}) and environment (default), in any helmfile', 3)
    if verb in ("apply", "sync"):
        if verb == "apply" and "diff" not in state.get("plugins", {}):
            die('Error: plugin "diff" not found', 1)
        nstate = ns_state(state, ctx, ns, create=True)  # helmDefaults.createNamespace is true
        for rel in releases:
            chart = rel["chart"].rsplit("/", 1)[-1]
            meta = Path(file).parent / rel["chart"] / "Chart.yaml"
            if meta.is_file():  # a chart in the bundle: helm records the name and version of its Chart.yaml
                chart_doc = read_yaml(meta)
                chart, rel = chart_doc["name"], {**rel, "version": chart_doc["version"]}
            # what helm-diff compares: the values, and for a chart in the bundle (llmdctl's generated ones) its objects
            local = Path(file).parent / rel["chart"] / "templates"
            texts = [Path(v).read_text() for v in rel.get("values", [])] + ([p.read_text() for p in sorted(local.glob("*.yaml"))] if local.is_dir() else [])
            digest = hashlib.sha256("".join(texts).encode()).hexdigest()
            current = nstate["releases"].get(rel["name"])
            print(f"Upgrading release={rel['name']}, chart={rel['chart']}, namespace={ns}")
            if current and verb == "apply" and current["digest"] == digest and current["chart"] == f"{chart}-{rel.get('version', 'local')}":
                print(f"Release {rel['name']} is up to date")
                continue
            nstate["releases"][rel["name"]] = {
                "name": rel["name"], "namespace": ns, "revision": str(int(current["revision"]) + 1 if current else 1),
                "updated": now(), "status": "deployed", "chart": f"{chart}-{rel.get('version', 'local')}",
                "app_version": "v0.4.0", "digest": digest,
            }
            if chart == "llm-d-modelservice":  # the Deployments the chart makes, as an upgrade leaves them
                values = read_yaml(Path(rel["values"][0]))
                for role in ("prefill", "decode"):
                    spec = values.get(role) or {}
                    if spec.get("create", True) is not False:
                        nstate.setdefault("deployments", {})[f"{rel['name']}-llm-d-modelservice-{role}"] = {
                            "replicas": spec.get("replicas", 1), "images": [c.get("image") for c in spec.get("containers") or []]}
                        store_workload(nstate, rel["name"], ns, modelservice_deployment(rel["name"], role, spec))
            elif (Path(file).parent / rel["chart"] / "templates").is_dir():  # llmdctl's generated chart: its objects as written
                for path in sorted((Path(file).parent / rel["chart"] / "templates").glob("*.yaml")):
                    for obj in read_yaml_all(path):
                        if isinstance(obj, dict) and obj.get("kind") in ("Deployment", "LeaderWorkerSet"):
                            store_workload(nstate, rel["name"], ns, obj)
        save(state)
        print("UPDATED RELEASES:")
        return
    if verb == "destroy":
        nstate = ns_state(state, ctx, ns) or {"releases": {}}
        for rel in reversed(releases):
            if rel["name"] in nstate["releases"]:
                del nstate["releases"][rel["name"]]
                for dep in [d for d in nstate.get("deployments", {}) if d.startswith(rel["name"] + "-llm-d-modelservice-")]:
                    del nstate["deployments"][dep]
                drop_workloads(nstate, rel["name"])
                print(f"Deleting {rel['name']}")
        save(state)
        return
    if verb == "diff":
        if "diff" not in state.get("plugins", {}):
            die('Error: plugin "diff" not found', 1)
        nstate = ns_state(state, ctx, ns) or {"releases": {}}
        changed = False
        for rel in releases:
            chart = rel["chart"].rsplit("/", 1)[-1]
            current = nstate["releases"].get(rel["name"])
            print(f"Comparing release={rel['name']}, chart={rel['chart']}, namespace={ns}")
            if not current or current["chart"] != f"{chart}-{rel['version']}":
                print(f"{ns}, {rel['name']}, Deployment (apps) has been added/changed")
                changed = True
        sys.exit(2 if changed and "--detailed-exitcode" in args else 0)
    die(f"fake helmfile: unsupported {args}", 64)


# --- kubectl -------------------------------------------------------------------------------


def kubectl(args: list[str], state: dict) -> None:
    take(args, "--kubeconfig")
    ctx = take(args, "--context") or state.get("current")
    if args[:2] == ["version", "--client"]:
        print(json.dumps({"clientVersion": {"gitVersion": state["versions"]["kubectl"]}, "kustomizeVersion": "v5.4.2"}))
        return
    ns = take(args, "--namespace", "-n")
    ignore = take(args, "--ignore-not-found", flag=True)
    output = take(args, "--output", "-o")
    if args[:2] == ["create", "namespace"]:
        if ns_state(state, ctx, args[2]):
            die(f'Error from server (AlreadyExists): namespaces "{args[2]}" already exists')
        ns_state(state, ctx, args[2], create=True)
        save(state)
        print(f"namespace/{args[2]} created")
        return
    if args[:2] == ["get", "namespace"]:
        if ns_state(state, ctx, args[2]):
            print(f"namespace/{args[2]}")
        elif not ignore:
            die(f'Error from server (NotFound): namespaces "{args[2]}" not found')
        return
    nstate = ns_state(state, ctx, ns)
    if args[:1] == ["get"] and args[1] in ("secret", "httproute"):
        kind, name = args[1], args[2]
        present = nstate is not None and (name in nstate["secrets"] if kind == "secret" else name in nstate["routes"])
        assert output == "name", "the fake only answers -o name"
        if present:
            print(f"{kind}/{name}")
        elif not ignore:
            die(f'Error from server (NotFound): {kind} "{name}" not found')
        return
    if args[:1] == ["get"] and args[1] in ("deployments", "deployments,leaderworkersets.leaderworkerset.x-k8s.io"):
        everywhere = take(args, "--all-namespaces", "-A", flag=True)
        assert output == "json", "the fake answers workload listings only -o json"
        if "leaderworkersets" in args[1] and state.get("noLeaderWorkerSetCRD"):
            die('error: the server doesn\'t have a resource type "leaderworkersets"')
        spaces = state["contexts"].get(ctx, {"namespaces": {}})["namespaces"]
        scope = sorted(spaces) if everywhere else [ns]
        items = [o for n in scope for _, o in sorted((spaces.get(n) or {}).get("workloads", {}).items())
                 if o["kind"] == "Deployment" or "leaderworkersets" in args[1]]
        print(json.dumps({"apiVersion": "v1", "kind": "List", "items": items}))
        return
    if args[:2] == ["get", "deployment"]:
        assert output == "json" and ignore, "the fake answers only --ignore-not-found -o json"
        deps = (nstate or {}).get("deployments", {})
        items = [{"kind": "Deployment", "metadata": {"name": n, "namespace": ns},
                  "spec": {"replicas": deps[n]["replicas"], "template": {"spec": {"containers": [{"name": "vllm", "image": i} for i in deps[n]["images"]]}}}}
                 for n in args[2:] if n in deps]
        print(json.dumps({"apiVersion": "v1", "kind": "List", "items": items}) if items else "")
        return
    if args[:1] in (["apply"], ["diff"]):
        filename = take(args, "--filename", "-f")
        route = read_yaml(Path(filename))
        name = route["metadata"]["name"]
        if args[0] == "diff":
            same = nstate is not None and nstate["routes"].get(name) == route
            if not same:
                print(f"+ httproute {name}")
            sys.exit(0 if same else 1)
        if nstate is None:
            die(f'Error from server (NotFound): namespaces "{ns}" not found')
        verb = "unchanged" if nstate["routes"].get(name) == route else ("configured" if name in nstate["routes"] else "created")
        nstate["routes"][name] = route
        save(state)
        print(f"httproute.gateway.networking.k8s.io/{name} {verb}")
        return
    if args[:2] == ["delete", "httproute"]:
        name = args[2]
        if nstate and name in nstate["routes"]:
            del nstate["routes"][name]
            save(state)
            print(f'httproute.gateway.networking.k8s.io "{name}" deleted')
        elif not ignore:
            die(f'Error from server (NotFound): httproutes.gateway.networking.k8s.io "{name}" not found')
        return
    die(f"fake kubectl: unsupported {args}", 64)


def main(tool: str) -> None:
    args = sys.argv[1:]
    log({"tool": tool, "argv": args, "cwd": os.getcwd(), "KUBECONFIG": os.environ.get("KUBECONFIG")})
    state = load()
    joined = " ".join(args)
    for rule in state.get("fail", []):
        if rule["tool"] == tool and all(part in joined for part in rule["contains"]):
            if rule.get("hang"):
                def stop(signum, frame):
                    log({"tool": tool, "signal": signal.Signals(signum).name})
                    sys.exit(130)

                signal.signal(signal.SIGINT, stop)
                signal.signal(signal.SIGTERM, stop)
                print("working...", flush=True)
                time.sleep(30)
                sys.exit(0)
            if rule.get("garbage"):  # bytes that are not UTF-8, on both streams, more than a pipe buffer holds
                sys.stdout.flush()
                sys.stderr.flush()
                os.write(1, b"\xff\xfe bytes \xc3\x28\n" * rule["garbage"])
                os.write(2, b"\xe9t\xe9 \xff\n" * rule["garbage"])
                if rule.get("exit", 1) == 0:  # a tool that succeeds despite its odd output does its work
                    break
            sys.stderr.write(rule.get("stderr", "Error: boom") + "\n")
            sys.exit(rule.get("exit", 1))
    {"helm": helm, "helmfile": helmfile, "kubectl": kubectl}[tool](list(args), state)


if __name__ == "__main__":
    main(Path(sys.argv[0]).name)
