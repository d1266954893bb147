"""The shape of the package: data flows one way, the CLI is a skin, render stays lean.

Folders, left to right, may import only from their own folder and folders to their left:
base -> inputs -> catalog -> plan -> compose -> effects -> cli.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "llmdctl"
ORDER = ["base", "inputs", "catalog", "plan", "compose", "sizing", "effects", "cli"]


def _modules() -> dict[str, ast.Module]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        name = ".".join(rel.parts)
        if name.endswith(".__init__"):
            name = name[: -len(".__init__")]
        out[name] = ast.parse(path.read_text(), str(path))
    return out


def _resolve(module: str, node: ast.ImportFrom, is_package: bool) -> list[str]:
    if node.level:
        base = module.split(".") if is_package else module.split(".")[:-1]
        base = base[: len(base) - (node.level - 1)]
        target = ".".join(base + ([node.module] if node.module else []))
    else:
        target = node.module or ""
    if not target.startswith("llmdctl"):
        return []
    # `from . import x` may name a submodule
    return [f"{target}.{a.name}" if node.module is None else target for a in node.names]


def _imports(modules: dict[str, ast.Module]) -> dict[str, list[tuple[str, ast.AST, bool]]]:
    """module -> [(imported llmdctl module, node, inside a function)]"""
    found: dict[str, list] = {}
    for name, tree in modules.items():
        is_package = (PACKAGE.parent / Path(*name.split(".")) / "__init__.py").exists()
        items = []
        funcs = [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
        inner = {id(n) for f in funcs for n in ast.walk(f) if n is not f}
        for node in ast.walk(tree):
            targets: list[str] = []
            if isinstance(node, ast.ImportFrom):
                targets = _resolve(name, node, is_package)
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names if a.name.startswith("llmdctl")]
            for t in targets:
                while t not in modules and "." in t:
                    t = t.rsplit(".", 1)[0]
                items.append((t, node, id(node) in inner))
        found[name] = items
    return found


def _layer(module: str) -> int | None:
    parts = module.split(".")
    return ORDER.index(parts[1]) if len(parts) > 1 and parts[1] in ORDER else None


def test_every_module_lives_in_a_flow_folder():
    loose = [m for m in _modules() if m.count(".") == 1 and _layer(m) is None and m not in ("llmdctl.__main__",)]
    assert loose == [], f"modules outside base/inputs/catalog/plan/compose/effects/cli: {loose}"


def test_imports_go_one_way():
    wrong = []
    for module, items in _imports(_modules()).items():
        src = _layer(module)
        for target, node, _ in items:
            dst = _layer(target)
            if src is not None and dst is not None and dst > src:
                wrong.append(f"{module}:{node.lineno} imports {target} ({ORDER[dst]} is right of {ORDER[src]})")
    assert wrong == []


def test_no_import_cycle():
    graph = {m: {t for t, _, _ in items if t != m} for m, items in _imports(_modules()).items()}
    state: dict[str, int] = {}
    cycles = []

    def visit(m, path):
        state[m] = 1
        for t in graph.get(m, ()):
            if state.get(t) == 1:
                cycles.append(" -> ".join(path[path.index(t):] + [t]) if t in path else f"{m} -> {t}")
            elif t not in state:
                visit(t, path + [t])
        state[m] = 2

    for m in graph:
        if m not in state:
            visit(m, [m])
    assert cycles == []


def test_no_function_level_imports_of_llmdctl_modules():
    hidden = [f"{m}:{node.lineno} {t}" for m, items in _imports(_modules()).items() for t, node, inner in items if inner]
    assert hidden == [], "function-level imports hide the real dependency graph"


def test_the_cli_holds_no_kubernetes_or_helm_logic():
    forbidden_modules = {"subprocess", "kubernetes", "urllib3", "urllib.request"}
    forbidden_names = {"Command", "Kube", "Resource", "run_steps", "helmfile"}
    problems = []
    for module, tree in _modules().items():
        if not module.startswith("llmdctl.cli"):
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                problems += [f"{module} imports {a.name}" for a in node.names if a.name in forbidden_modules]
            elif isinstance(node, ast.ImportFrom):
                if (node.module or "") in forbidden_modules:
                    problems.append(f"{module} imports {node.module}")
                problems += [f"{module} imports {a.name}" for a in node.names if a.name in forbidden_names]
    assert problems == []


def test_the_cli_stays_a_skin():
    """No handler is long: orchestration belongs below the CLI."""
    long = []
    for module, tree in _modules().items():
        if module.startswith("llmdctl.cli") and module != "llmdctl.cli.parser":
            for node in ast.walk(tree):
                if isinstance(node, ast.FunctionDef) and node.end_lineno - node.lineno > 30:
                    long.append(f"{module}.{node.name}: {node.end_lineno - node.lineno} lines")
    assert long == []


def test_render_loads_no_cluster_code_and_no_heavy_library(tmp_path):
    code = (
        "import sys\n"
        "from llmdctl.cli.main import main\n"
        f"code = main(['render', '-o', {str(tmp_path / 'b')!r}])\n"
        "print(repr({'code': code, 'modules': sorted(sys.modules)}))\n"  # repr: importing json here would hide a leak
    )
    env = dict(os.environ, LLMDCTL_CACHE_DIR=str(tmp_path / "cache"))
    for _ in range(2):  # the first run fills the catalog cache (and may import json to parse schemas)
        res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=PACKAGE.parent, check=True, env=env)
    doc = ast.literal_eval(res.stdout.strip().splitlines()[-1])
    assert doc["code"] == 0
    loaded = set(doc["modules"])
    for heavy in ("jsonschema", "jinja2", "typer", "click", "pydantic", "rich", "kubernetes", "urllib3", "dataclasses",
                  "llmdctl.effects.kube", "llmdctl.effects.health", "llmdctl.effects.doctor", "llmdctl.effects.diagnosis", "llmdctl.effects.lifecycle", "llmdctl.effects.tools",
                  "llmdctl.cli.cluster", "subprocess", "pathlib", "hashlib", "json", "shutil", "tempfile"):
        assert heavy not in loaded, f"render imported {heavy}"
    assert "llmdctl.effects.bundle" in loaded  # the check above looked at a real render


def test_help_loads_no_yaml_or_catalog():
    code = "import sys\nfrom llmdctl.cli.main import main\nmain(['--help'])\nprint(sorted(sys.modules))"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=PACKAGE.parent, check=True)
    assert "Usage: llmdctl" in res.stdout
    assert "'ruamel.yaml'" not in res.stdout and "'llmdctl.catalog.catalog'" not in res.stdout


def test_the_tests_run_the_working_tree():
    """README's test command must test the files being edited, not an installed copy."""
    import llmdctl
    from llmdctl.base.data import data_root

    assert Path(llmdctl.__file__).resolve().parent == PACKAGE
    assert Path(data_root()).resolve() == PACKAGE.parent  # and the working tree's catalog
