"""Strategy registry: names -> plugin classes, built-in and third-party.

Listing never imports torch (the quick CLI commands use it). A built-in strategy is a subpackage
of `clbench.strategies` whose torch-free `__init__` declares it beside its config
(`STRATEGIES`, `clbench.strategies.declaration`); `built_ins` finds them by walking the package,
so adding one edits no list. Third-party strategies join through the `clbench.strategies`
entry-point group (`name = "package.module:PluginClass"` in their pyproject). A preset is a named
set of parameter overrides of a strategy (`lorsu-official`), declared with it; it is listed and
run like a strategy. An unknown name answers with the closest known names.

A third-party strategy is always reachable as `DISTRIBUTION:NAME` (`clbench-wiseft:wiseft`) and
also as plain `NAME` when no built-in, preset or other plugin claims that name: a plugin never
shadows a built-in silently, it is listed with the name it claims and run under its qualified
one. A plugin that fails to import is reported with its one-line error by the commands that
import it (`list strategies -v`, `params`, a run of that strategy) and never breaks the others.
"""

from __future__ import annotations

import copy
import pkgutil
from dataclasses import dataclass, field
from importlib import import_module
from importlib.metadata import entry_points
from typing import Any

from clbench.errors import ConfigError, UserError
from clbench.names import unknown_name_message
from clbench.strategies.declaration import Declaration

ENTRY_POINT_GROUP = "clbench.strategies"
DECLARATIONS = "STRATEGIES"  # what a built-in strategy package declares itself in
BUILT_IN = "built-in"
THIRD_PARTY = "third-party"


@dataclass(frozen=True)
class StrategyInfo:
    name: str
    target: str  # "module:Class"
    summary: str
    source: str = BUILT_IN  # or THIRD_PARTY
    preset: dict[str, Any] = field(default_factory=dict)
    # a reference row (zero-shot, the joint-replay upper bound), never ranked among methods
    reference: bool = False
    # third-party strategies: the installed distribution that registers it, and its version
    distribution: str | None = None
    version: str | None = None
    # the plain name a plugin claims when another strategy holds it (it runs as dist:name)
    claims: str | None = None
    # built-ins, from their declaration: a preset's strategy, the torch-free config class, and
    # what the strategy test matrix expects (state-dict keys that change, and those not compared)
    base: str | None = None
    config: type | None = None
    may_change: tuple[str, ...] = ()
    check_ignore: tuple[str, ...] = ()

    @property
    def origin(self) -> str:
        """Where it comes from, for listings: "built-in" or "third-party (dist 1.0)"."""
        if self.source == BUILT_IN:
            return BUILT_IN
        return f"{THIRD_PARTY} ({self.distribution or 'unknown package'}" \
            + (f" {self.version})" if self.version else ")")


def built_ins() -> dict[str, StrategyInfo]:
    """Every built-in strategy and preset by name, from the declarations of the subpackages of
    `clbench.strategies` (their torch-free `__init__`s; no plugin is imported).

    The package is walked on each call (a directory listing), so a strategy folder is found
    wherever the package's `__path__` reaches. A subpackage without `STRATEGIES`, or a name
    declared twice, is an error of clbench's own source and raises TypeError / ValueError."""
    import clbench.strategies as package

    infos: dict[str, StrategyInfo] = {}
    where: dict[str, str] = {}

    def add(info: StrategyInfo, package_name: str) -> None:
        if info.name in infos:
            raise ValueError(f"strategy name {info.name!r} is declared by both "
                             f"{where[info.name]} and {package_name}")
        infos[info.name], where[info.name] = info, package_name

    for found in sorted(pkgutil.iter_modules(package.__path__, f"{package.__name__}."),
                        key=lambda m: m.name):
        if not found.ispkg:
            continue
        declared = getattr(import_module(found.name), DECLARATIONS, None)
        if not (isinstance(declared, tuple) and declared
                and all(isinstance(d, Declaration) for d in declared)):
            raise TypeError(f"{found.name}: a built-in strategy package sets {DECLARATIONS}, a "
                            "non-empty tuple of clbench.strategies.declaration.Declaration "
                            "(see strategies/fft/__init__.py)")
        for decl in declared:
            target = decl.target(found.name)
            add(StrategyInfo(decl.name, target, decl.summary, reference=decl.reference,
                             config=decl.config, may_change=tuple(decl.may_change),
                             check_ignore=tuple(decl.check_ignore)), found.name)
            for preset in decl.presets:
                may_change = decl.may_change if preset.may_change is None else preset.may_change
                add(StrategyInfo(preset.name, target, preset.summary,
                                 preset=copy.deepcopy(dict(preset.params)), base=decl.name,
                                 reference=decl.reference, config=decl.config,
                                 may_change=tuple(may_change),
                                 check_ignore=tuple(decl.check_ignore)), found.name)
    return infos


def __getattr__(name: str) -> Any:
    """The earlier module constants, read from the declarations (PEP 562): `BUILTIN` (name ->
    (plugin target, summary)), `PRESETS` (name -> (base, parameter overrides, summary)) and
    `REFERENCE` (the reference strategies' names)."""
    if name == "BUILTIN":
        return {n: (i.target, i.summary) for n, i in built_ins().items() if i.base is None}
    if name == "PRESETS":
        return {n: (i.base, dict(i.preset), i.summary) for n, i in built_ins().items()
                if i.base is not None}
    if name == "REFERENCE":
        return frozenset(n for n, i in built_ins().items() if i.reference and i.base is None)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def available() -> dict[str, StrategyInfo]:
    """Every known strategy and preset by name, without importing any of them."""
    infos = built_ins()
    plugins = [_plugin_info(ep) for ep in entry_points(group=ENTRY_POINT_GROUP)]
    claimed: dict[str, int] = {}
    for plugin in plugins:
        claimed[plugin.name] = claimed.get(plugin.name, 0) + 1
    for plugin in plugins:
        qualified = f"{plugin.distribution}:{plugin.name}"
        if plugin.name in infos or claimed[plugin.name] > 1:  # taken: only the qualified name
            infos[qualified] = StrategyInfo(
                qualified, plugin.target, f"{plugin.summary}; claims the name '{plugin.name}', "
                f"which {_holder(plugin.name, infos, claimed)}: run it as '{qualified}'",
                source=THIRD_PARTY, distribution=plugin.distribution, version=plugin.version,
                claims=plugin.name)
        else:
            infos[plugin.name] = plugin
            infos[qualified] = plugin  # the explicit form always works
    return infos


def _plugin_info(ep) -> StrategyInfo:
    """A plugin's entry, read from its package metadata without importing it: the summary
    is the package's own (`description` in its pyproject), else its entry point."""
    dist = getattr(ep, "dist", None)
    name = dist.name if dist is not None else "unknown"
    version = dist.version if dist is not None else None
    summary = (dist.metadata.get("Summary") or "").strip() if dist is not None else ""
    return StrategyInfo(ep.name, ep.value, summary or f"third-party strategy ({ep.value})",
                        source=THIRD_PARTY, distribution=name, version=version)


def _holder(name: str, infos: dict[str, StrategyInfo], claimed: dict[str, int]) -> str:
    held = infos.get(name)
    if held is not None and held.source == BUILT_IN:
        return "is a built-in preset" if held.base else "is a built-in strategy"
    return f"{claimed.get(name, 0)} installed packages claim"


def listed_names(infos: dict[str, StrategyInfo]) -> list[str]:
    """Names to list: each strategy once (a plugin under its plain name when it has one)."""
    plain = {i.target for n, i in infos.items() if i.source == THIRD_PARTY and ":" not in n}
    return sorted(n for n, i in infos.items()
                  if not (":" in n and i.claims is None and i.target in plain))


def claimants(name: str) -> list[StrategyInfo]:
    """Plugins that claim `name` but run under their qualified name (a built-in holds it)."""
    return [i for i in available().values() if i.claims == name]


def strategy_and_base(strategy: Any) -> tuple[str, ...]:
    """A config's strategy name, then a preset's base strategy: the keys a scenario's
    per-strategy training settings are looked up by."""
    name = strategy.get("name") if isinstance(strategy, dict) else strategy
    if not name:
        return ()
    held = built_ins().get(name)
    return (str(name), held.base) if held is not None and held.base else (str(name),)


def info(name: str) -> StrategyInfo:
    infos = available()
    if name not in infos:
        raise UserError(unknown_name_message("strategy", name, infos),
                        hint="`clbench list strategies` shows them all")
    return infos[name]


def load_class(name: str) -> type:
    """Import the plugin class of a strategy (or preset) by name."""
    entry = info(name)
    module_name, _, attr = entry.target.partition(":")
    try:
        cls = getattr(import_module(module_name), attr)
    except Exception as err:  # noqa: BLE001 - a plugin may raise anything at import
        what = f"{type(err).__name__}: {err}".strip().splitlines()[0]
        hint = (f"the package {entry.distribution} {entry.version or ''} is installed but its "
                f"strategy does not import: fix or uninstall it (pip uninstall "
                f"{entry.distribution}); other strategies are not affected"
                if entry.source == THIRD_PARTY else "reinstall clbench")
        raise UserError(f"strategy '{name}' could not be loaded from {entry.target}: {what}",
                        hint=hint) from None
    from clbench.strategies.base import StrategyPlugin

    if not (isinstance(cls, type) and issubclass(cls, StrategyPlugin)):
        raise UserError(f"strategy '{name}' ({entry.target}) is not a clbench StrategyPlugin")
    if entry.config is not None and cls.config_class is not entry.config:
        # the parameters are checked with the declared class before the plugin is imported
        raise TypeError(f"strategy '{name}': {entry.target} builds its config with "
                        f"{cls.config_class.__name__}, its declaration says "
                        f"{entry.config.__name__}; set `config_class = {entry.config.__name__}`")
    return cls


def config_class(name: str) -> type:
    """The parameter dataclass of a strategy (or preset): a built-in's without importing its
    plugin (nor torch), a third-party plugin's from its class."""
    entry = info(name)
    if entry.source == BUILT_IN and entry.config is not None:
        return entry.config
    return load_class(name).config_class


def check_params(name: str, params: dict[str, Any] | None = None) -> None:
    """Raise the UserError a run of strategy `name` with `params` would raise for an unknown
    name, an unknown parameter or a bad value (the checks that need the model's architecture
    come later, on a weightless copy)."""
    from clbench.options import build_dataclass

    merged = {**info(name).preset, **(params or {})}
    try:
        build_dataclass(config_class(name), merged, "strategy.")
    except ConfigError as err:
        raise ConfigError(f"{err} [strategy {name}]", hint=err.hint) from None


def create(name: str, params: dict[str, Any] | None = None):
    """A configured plugin instance; parameters are validated by the strategy's config class."""
    from clbench.options import build_dataclass

    entry = info(name)
    cls = load_class(name)
    merged = {**entry.preset, **(params or {})}
    try:
        config = build_dataclass(cls.config_class, merged, "strategy.")
    except ConfigError as err:
        raise ConfigError(f"{err} [strategy {name}]", hint=err.hint) from None
    return cls(config)


def resolved_params(plugin) -> dict[str, Any]:
    """The full parameter set of a configured plugin (defaults included), for storing."""
    import dataclasses

    return dataclasses.asdict(plugin.config)
