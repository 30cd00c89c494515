"""The import graph follows the data flow: CLI → config → scenario / model / strategy → loop →
store → app, with no edge against it and no cycle.

The graph is read from the source (every `import`, including those inside functions, since a
lazy import is still a dependency), so the test needs no import of torch and fails on the edge
that breaks the layering, naming both modules. A new module must be placed in a layer below
(`LAYERS`); docs/contributing.md explains the layers.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
ROOT = Path(__file__).resolve().parents[1]

# Layer -> (what it is, the packages and modules it holds). A package holds its submodules; a
# module named exactly is placed on its own. There is no catch-all: the root package `clbench`
# (folder `benchmark/`) is the core layer module by module, so a new module anywhere must be
# placed here or `test_every_module_has_a_layer` fails. Listed in data-flow order; the contributor
# guide (docs/contributing.md) shows this table as `layer_table()` renders it (checked).
LAYERS: dict[str, tuple[str, tuple[str, ...]]] = {
    "core": ("helpers every layer may use: errors, names, hashes, files, options, metrics, "
             "published numbers",
             ("clbench", "clbench.errors", "clbench.names", "clbench.hashing", "clbench.files",
              "clbench.options", "clbench.schedules", "clbench.yaml_files",
              "clbench.deferred_imports", "clbench.backbones", "clbench.metrics",
              "clbench.caches", "clbench.published")),
    "config": ("what a run is: RunConfig, typed, validated, hashed (no torch)",
               ("clbench.config",)),
    "scenarios": ("streams, dataset kinds and loaders, preparation, the proxy world",
                  ("clbench.scenarios", "clbench.data_manifests")),
    "models": ("open_clip models, the proxy's architecture, the CLIP classifier and its losses",
               ("clbench.models",)),
    "strategies": ("strategy plugins; they know nothing of runs, configs or the CLI",
                   ("clbench.strategies",)),
    "training": ("a session's training loop and evaluation, their caches, the strategy test kit",
                 ("clbench.training",)),
    "store": ("the results database", ("clbench.store",)),
    "run": ("one run top to bottom: checkpoints, resume, provenance, report, tune, bundles",
            ("clbench.run",)),
    "sweep": ("grids of runs, executed locally or on SLURM", ("clbench.sweep",)),
    "bench": ("`clbench bench`: speed figures against references", ("clbench.bench",)),
    "cli": ("the command line: one module per command family",
            ("clbench.cli", "clbench.__main__")),
    "app_pure": ("leaderboard tables and figures as pure functions",
                 ("clbench.leaderboard_app.tables", "clbench.leaderboard_app.figures")),
    "app_io": ("the leaderboard's reads of the store", ("clbench.leaderboard_app.data",)),
    "app": ("the Streamlit leaderboard", ("clbench.leaderboard_app",)),
    "compat": ("deprecated aliases of moved public modules; nothing may import them",
               ("clbench.strategies.testing",)),
}

_BELOW_TRAINING = {"core", "config", "scenarios", "models", "strategies", "training"}
_BELOW_RUN = _BELOW_TRAINING | {"store", "run"}
# Layer -> the layers it may import (its own included where listed).
ALLOWED: dict[str, set[str]] = {
    "core": {"core"},
    "config": {"core", "config"},
    "scenarios": {"core", "config", "scenarios"},
    "models": {"core", "config", "models"},
    "strategies": {"core", "strategies"},
    "training": _BELOW_TRAINING,
    "store": {"core", "store"},
    "run": _BELOW_RUN,
    "sweep": _BELOW_RUN | {"sweep"},
    "bench": _BELOW_RUN | {"bench"},
    "cli": _BELOW_RUN | {"sweep", "bench", "cli"},
    "app_pure": {"core", "app_pure"},
    "app_io": {"core", "store", "app_pure", "app_io"},
    "app": {"core", "store", "app_pure", "app_io", "app"},
    "compat": _BELOW_TRAINING,
}


def layer_table() -> str:
    """The layers as a Markdown table, in data-flow order (docs/contributing.md holds it)."""
    rows = ["| layer | holds | packages and modules | may import |", "| --- | --- | --- | --- |"]
    for layer, (what, members) in LAYERS.items():
        allowed = ", ".join(other for other in LAYERS if other in ALLOWED[layer] and other != layer)
        rows.append(f"| {layer} | {what} | {', '.join(f'`{m}`' for m in members)} | "
                    f"{allowed or '—'} |")
    return "\n".join(rows)


def package_dirs() -> dict[str, Path]:
    """Import package -> folder, from pyproject's setuptools `packages` and `package-dir`."""
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    mapping = setuptools["package-dir"]
    dirs = {}
    for package in setuptools["packages"]:
        base = max((p for p in mapping if package == p or package.startswith(p + ".")), key=len)
        rest = package[len(base):].lstrip(".").replace(".", "/")
        dirs[package] = ROOT / mapping[base] / rest
    return dirs


def unlisted_package_dirs() -> list[Path]:
    """Folders with an `__init__.py` under a listed package that `packages` does not name (they
    would not be installed, and their modules would escape this test)."""
    dirs = package_dirs()
    listed = {folder.resolve() for folder in dirs.values()}
    return sorted(init.parent for folder in dirs.values() for init in folder.glob("*/__init__.py")
                  if init.parent.resolve() not in listed)


def source_modules() -> dict[str, Path]:
    """Every clbench module name -> its file."""
    modules: dict[str, Path] = {}
    for package, folder in package_dirs().items():
        for path in folder.glob("*.py"):
            name = package if path.stem == "__init__" else f"{package}.{path.stem}"
            modules[name] = path
    return modules


def layer_of(module: str) -> str | None:
    """The layer of the longest listed name that is `module` or a package above it; the root
    package `clbench` places only itself (its modules are placed one by one)."""
    best, best_len = None, -1
    for layer, (_, members) in LAYERS.items():
        for member in members:
            holds = module == member or (member != "clbench" and module.startswith(member + "."))
            if holds and len(member) > best_len:
                best, best_len = layer, len(member)
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


def unplaced(modules) -> list[str]:
    return sorted(m for m in modules if layer_of(m) is None)


def test_every_module_has_a_layer():
    found = unplaced(source_modules())
    assert not found, f"place these modules in a layer of tests/test_import_graph.py: {found}"


def test_every_package_folder_is_listed():
    assert not unlisted_package_dirs(), (
        f"add these packages to pyproject's [tool.setuptools] packages: {unlisted_package_dirs()}")


def test_no_import_against_the_data_flow():
    problems = wrong_way_edges(import_graph())
    assert not problems, "imports against the data flow:\n" + "\n".join(problems)


def test_no_import_cycle():
    found = cycles(import_graph())
    assert not found, "import cycles:\n" + "\n".join(" -> ".join(c) for c in found)


def test_an_unplaced_module_is_caught():
    """A module added at the root (or in a new subpackage) belongs to no layer until placed."""
    modules = [*source_modules(), "clbench.new_helper", "clbench.newlayer.thing"]
    assert unplaced(modules) == ["clbench.new_helper", "clbench.newlayer.thing"]
    assert layer_of("clbench.errors") == "core"  # placed by its exact name, not by a prefix


def test_the_checks_catch_a_wrong_edge_and_a_cycle():
    """The checker itself: a strategy importing the config, a core helper importing the run
    layer, a module importing a compat alias and a two-module cycle are flagged."""
    known = {"clbench.config.run_config", "clbench.strategies.fake", "clbench.store.a",
             "clbench.store.b", "clbench.hashing", "clbench.run.runner",
             "clbench.strategies.testing", "clbench.cli.main"}
    graph = {
        "clbench.strategies.fake": imports_of(
            "clbench.strategies.fake",
            "def f():\n    from clbench.config.run_config import RunConfig\n", known),
        "clbench.hashing": imports_of("clbench.hashing", "from clbench.run import runner\n",
                                      known | {"clbench.run"}),
        "clbench.cli.main": imports_of("clbench.cli.main",
                                       "import clbench.strategies.testing\n", known),
        "clbench.store.a": imports_of("clbench.store.a", "import clbench.store.b\n", known),
        "clbench.store.b": imports_of("clbench.store.b", "from clbench.store import a\n",
                                      known | {"clbench.store"}),
    }
    assert graph["clbench.strategies.fake"] == {"clbench.config.run_config"}
    assert wrong_way_edges(graph) == [
        "clbench.cli.main (cli) imports clbench.strategies.testing (compat)",
        "clbench.hashing (core) imports clbench.run.runner (run)",
        "clbench.strategies.fake (strategies) imports clbench.config.run_config (config)"]
    graph["clbench.store.b"] = {"clbench.store.a"}
    assert cycles(graph) == [["clbench.store.a", "clbench.store.b", "clbench.store.a"]]


@pytest.mark.parametrize("module, layer", [
    ("clbench.run.proxy_pretrain", "run"), ("clbench.scenarios.proxy.world", "scenarios"),
    ("clbench.leaderboard_app.tables", "app_pure"), ("clbench.leaderboard_app.app", "app"),
    ("clbench.store.schema", "store"), ("clbench", "core"), ("clbench.__main__", "cli"),
    ("clbench.strategies.testing", "compat"), ("clbench.strategies.lorsu", "strategies"),
])
def test_longest_name_decides_the_layer(module, layer):
    assert layer_of(module) == layer


def test_contributing_shows_the_layer_table():
    """docs/contributing.md's layer table is this file's table (`python tests/test_import_graph.py`
    prints it to paste)."""
    text = (ROOT / "docs" / "contributing.md").read_text(encoding="utf-8")
    assert layer_table() in text, ("docs/contributing.md's layer table differs from LAYERS: "
                                   "paste the output of `python tests/test_import_graph.py`")


if __name__ == "__main__":
    print(layer_table())
