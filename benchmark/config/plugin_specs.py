"""`--plugin SPEC` entries of a run's config, as plain data (no import of the plugins).

A run may combine its strategy with any Avalanche `SupervisedPlugin` (EWC, LwF, replay, SI,
MAS, ...): SPEC is `avalanche:ClassName` (looked up in `avalanche.training.plugins`) or
`package.module:ClassName`. Its keyword arguments come from the config's `plugin:` section
(`--set plugin.KEY=VALUE` with one plugin, `--set plugin.CLASS.KEY=VALUE` with several).
`normalise` checks the shape of those keys without importing anything, so that a typo fails
before torch is imported; `clbench.training.extra_plugins` imports and builds the plugins.
"""

from __future__ import annotations

from typing import Any

from clbench.errors import ConfigError
from clbench.names import closest

AVALANCHE = "avalanche"
AVALANCHE_MODULE = "avalanche.training.plugins"
SPEC_HINT = ("SPEC is avalanche:ClassName (a class of avalanche.training.plugins, e.g. "
             "avalanche:EWCPlugin) or package.module:ClassName (any Avalanche SupervisedPlugin)")
# the `--set` entry that carries the `--plugin` flags' specs (`clbench.cli.plugin_option`)
PLUGINS_OVERRIDE = "plugins="


def split_spec(spec: str) -> tuple[str, str]:
    """`avalanche:EWCPlugin` -> (avalanche.training.plugins, EWCPlugin); `pkg.mod:Cls` and
    `pkg.mod.Cls` -> (pkg.mod, Cls). Raises ConfigError on anything else."""
    text = spec.strip()
    module, sep, attr = text.partition(":")
    if not sep:
        module, _, attr = text.rpartition(".")
    if module == AVALANCHE:
        module = AVALANCHE_MODULE
    if not (module and attr.isidentifier()
            and all(part.isidentifier() for part in module.split("."))):
        raise ConfigError(f"plugins: {spec!r} is not avalanche:ClassName or "
                          "package.module:ClassName", hint=SPEC_HINT)
    return module, attr


def class_name(spec: str) -> str:
    """The class name of a plugin spec: what `plugin.CLASS.KEY` names it by."""
    return split_spec(spec)[1]


def normalise(plugins: Any, args: Any) -> list[dict[str, Any]]:
    """The config's `plugins:` list (specs, or {class, args} mappings as a stored run's config
    holds them) with the `plugin:` section's arguments handed out, as [{class, args}].

    Only the shape is checked here (no import): the specs, duplicates, and which plugin each
    argument is for. `plugin.KEY` needs exactly one plugin; `plugin.CLASS.KEY` names it."""
    if plugins is None:
        plugins = []
    if isinstance(plugins, (str, dict)):
        plugins = [plugins]
    if not isinstance(plugins, list):
        raise ConfigError(f"plugins: expected a list of plugin classes, got {plugins!r}",
                          hint="for example --plugin avalanche:EWCPlugin (repeatable)")
    entries: list[dict[str, Any]] = []
    for item in plugins:
        given: Any = {}
        if isinstance(item, dict):
            unknown = sorted(set(item) - {"class", "args", "package", "version"})
            if unknown:
                raise ConfigError(f"plugins: unknown key '{unknown[0]}' in {item!r}",
                                  hint="a plugin entry is a SPEC string or a mapping with "
                                       "class and args")
            spec, given = item.get("class"), item.get("args") or {}
            if not isinstance(given, dict):
                raise ConfigError(f"plugins: args of {spec!r} must be a mapping, got {given!r}")
        else:
            spec = item
        if not isinstance(spec, str) or not spec.strip():
            raise ConfigError(f"plugins: expected a plugin class, got {spec!r}", hint=SPEC_HINT)
        split_spec(spec)
        entries.append({"class": spec.strip(), "args": dict(given)})
    names = [class_name(e["class"]) for e in entries]
    for name in names:
        if names.count(name) > 1:
            raise ConfigError(f"plugins: {name} is given twice",
                              hint="add each plugin class once per run")
    if args is None:
        args = {}
    if not isinstance(args, dict):
        raise ConfigError(f"plugin: expected plugin arguments (plugin.KEY=VALUE), got {args!r}")
    if args and not entries:
        key = next(iter(args))
        raise ConfigError(f"plugin.{key}: no plugin to pass it to",
                          hint="add the plugin with --plugin SPEC, e.g. --plugin "
                               "avalanche:EWCPlugin --set plugin.ewc_lambda=100")
    by_name = dict(zip(names, entries))
    for key, value in args.items():
        if key in by_name and isinstance(value, dict):  # plugin.CLASS.KEY
            by_name[key]["args"].update(value)
        elif len(entries) == 1:
            entries[0]["args"][key] = value
        elif isinstance(value, dict):
            near = closest(key, names)
            did = f" (did you mean: {', '.join(near)}?)" if near else ""
            raise ConfigError(f"plugin.{key}: the run has no plugin {key}{did}",
                              hint=f"the run's plugins: {', '.join(names)}")
        else:
            raise ConfigError(f"plugin.{key}: the run has {len(entries)} plugins; name the one "
                              "it is for", hint=f"--set plugin.CLASS.{key}=VALUE with CLASS one "
                                                f"of {', '.join(names)}")
    return entries
