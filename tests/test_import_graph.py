"""The import graph follows the data flow: CLI → config → scenario / model / strategy → loop →
store → app, with no edge against it and no cycle.

The graph is read from the source (every `import`, including those inside functions, since a
lazy import is still a dependency), so the test needs no import of torch and fails on the edge
that breaks the layering, naming both modules. A new module must be placed in a layer below
(`LAYERS`); CONTRIBUTING.md explains the layers.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
ROOT = Path(__file__).resolve().parents[1]

# Layer -> module-name prefixes (the longest matching prefix wins).
LAYERS: dict[str, tuple[str, ...]] = {
    "core": ("clbench", "clbench.errors", "clbench.names", "clbench.hashing", "clbench.files",
             "clbench.options",
             "clbench.schedules", "clbench.backbones", "clbench.metrics", "clbench.caches"),
    "config": ("clbench.config",),
    "scenarios": ("clbench.scenarios", "clbench.data_manifests"),
    "models": ("clbench.models",),
    "strategies": ("clbench.strategies",),
    "classifier": ("clbench.classifier",),
    "loop": ("clbench.loop", "clbench.evaluation", "clbench.eval_cache", "clbench.loggers",
             "clbench.image_cache", "clbench.text_cache", "clbench.speed",
             "clbench.strategies.testing"),  # the strategy test kit runs the training loop
    "store": ("clbench.store",),
    "run": ("clbench.runner", "clbench.report", "clbench.provenance", "clbench.tune",
            "clbench.settings", "clbench.bundles", "clbench.reproduce",
            "clbench.scenarios.proxy.pretrain",
            "clbench.sweep", "clbench.sweep_status", "clbench.sweep_executors",
            "clbench.checkpoints", "clbench.run_state", "clbench.resume", "clbench.bench_timing",
            "clbench.bench",
            "clbench.bench_switches"),
    # command modules: what one `clbench COMMAND` prints (nothing below may import them)
    "cli": ("clbench.cli", "clbench.cli_app", "clbench.cli_data", "clbench.cli_results",
            "clbench.cli_db",
            "clbench.cli_sweep", "clbench.cli_bench",
            "clbench.__main__",
            "clbench.params", "clbench.catalog"),
    "app_pure": ("clbench.leaderboard_app.tables", "clbench.leaderboard_app.figures"),
    "app_io": ("clbench.leaderboard_app.data",),
    "app": ("clbench.leaderboard_app",),
}

# Layer -> the layers it may import (its own included where listed).
ALLOWED: dict[str, set[str]] = {
    "core": {"core"},
    "config": {"core"},
    "scenarios": {"core", "config", "scenarios"},
    "models": {"core", "config", "models"},
    "strategies": {"core", "strategies"},  # a plugin knows nothing of runs, configs or the CLI
    "classifier": {"core"},
    "loop": {"core", "config", "scenarios", "models", "strategies", "classifier", "loop"},
    "store": {"core", "store"},
    "run": {"core", "config", "scenarios", "models", "strategies", "classifier", "loop", "store",
            "run"},
    "cli": {"core", "config", "scenarios", "models", "strategies", "classifier", "loop", "store",
            "run", "cli"},
    "app_pure": {"core", "app_pure"},  # tables and figures are pure: no store, no I/O
    "app_io": {"core", "store", "app_pure", "app_io"},
    "app": {"core", "store", "app_pure", "app_io", "app"},
}


def package_dirs() -> dict[str, Path]:
    """Import package -> folder, from pyproject's setuptools package-dir (the source of truth)."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    mapping = pyproject["tool"]["setuptools"]["package-dir"]
    return {package: ROOT / folder for package, folder in mapping.items()}


def source_modules() -> dict[str, Path]:
    """Every clbench module name -> its file."""
    modules: dict[str, Path] = {}
    dirs = package_dirs()
    for package, folder in dirs.items():
        for path in folder.glob("*.py"):
            name = package if path.stem == "__init__" else f"{package}.{path.stem}"
            modules[name] = path
    return modules


def layer_of(module: str) -> str | None:
    best, best_len = None, -1
    for layer, prefixes in LAYERS.items():
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best_len:
                best, best_len = layer, len(prefix)
    return best


def imports_of(name: str, source: str, known: set[str], is_package: bool = False) -> set[str]:
    """The clbench modules that `source` (module `name`) imports, resolved to known modules."""
    package = name if is_package else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, base]) if base else ".".join(parts)
            # `from pkg import sub` imports the submodule when there is one
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base
                       for a in node.names]
        else:
            continue
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target.startswith("clbench") and target != name:
                found.add(target)
    return found


def import_graph() -> dict[str, set[str]]:
    modules = source_modules()
    known = set(modules)
    return {name: imports_of(name, path.read_text(encoding="utf-8"), known,
                             is_package=path.stem == "__init__")
            for name, path in modules.items()}


def wrong_way_edges(graph: dict[str, set[str]]) -> list[str]:
    problems = []
    for module, targets in sorted(graph.items()):
        layer = layer_of(module)
        for target in sorted(targets):
            target_layer = layer_of(target)
            if target_layer not in ALLOWED[layer]:
                problems.append(f"{module} ({layer}) imports {target} ({target_layer})")
    return problems


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Elementary cycles found by depth-first search (one per back edge)."""
    found, state, stack = [], {}, []

    def visit(node: str) -> None:
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                found.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node)
    return found


def test_every_module_has_a_layer():
    unplaced = [m for m in source_modules() if layer_of(m) is None]
    assert not unplaced, f"place these modules in a layer of tests/test_import_graph.py: {unplaced}"


def test_no_import_against_the_data_flow():
    problems = wrong_way_edges(import_graph())
    assert not problems, "imports against the data flow:\n" + "\n".join(problems)


def test_no_import_cycle():
    found = cycles(import_graph())
    assert not found, "import cycles:\n" + "\n".join(" -> ".join(c) for c in found)


def test_the_checks_catch_a_wrong_edge_and_a_cycle():
    """The checker itself: a strategy importing the config and a two-module cycle are flagged."""
    known = {"clbench.config", "clbench.strategies.fake", "clbench.store.a", "clbench.store.b"}
    graph = {
        "clbench.strategies.fake": imports_of(
            "clbench.strategies.fake", "def f():\n    from clbench.config import RunConfig\n",
            known),
        "clbench.store.a": imports_of("clbench.store.a", "import clbench.store.b\n", known),
        "clbench.store.b": imports_of("clbench.store.b", "from clbench.store import a\n",
                                      known | {"clbench.store"}),
    }
    assert graph["clbench.strategies.fake"] == {"clbench.config"}
    assert wrong_way_edges(graph) == [
        "clbench.strategies.fake (strategies) imports clbench.config (config)"]
    graph["clbench.store.b"] = {"clbench.store.a"}
    assert cycles(graph) == [["clbench.store.a", "clbench.store.b", "clbench.store.a"]]


@pytest.mark.parametrize("module, layer", [
    ("clbench.scenarios.proxy.pretrain", "run"), ("clbench.scenarios.proxy.world", "scenarios"),
    ("clbench.leaderboard_app.tables", "app_pure"), ("clbench.leaderboard_app.app", "app"),
    ("clbench.store.schema", "store"), ("clbench", "core"),
])
def test_longest_prefix_decides_the_layer(module, layer):
    assert layer_of(module) == layer
