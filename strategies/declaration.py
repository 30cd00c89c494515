"""What a built-in strategy declares about itself, beside its config, in its package's
`__init__.py` (torch-free).

A built-in strategy is one subpackage of `clbench.strategies`:

    strategies/<name>/__init__.py   the method's docstring (paper, defaults, presets), its config
                                    dataclass and `STRATEGIES`, a tuple of `Declaration`s
    strategies/<name>/plugin.py     the `StrategyPlugin` subclass(es) and their torch code

`clbench.strategies.registry` finds every such package by walking the `clbench.strategies`
package (no list to edit), so adding a strategy edits nothing outside its folder. One package
may declare several strategies that share code (`lora/`: lora, dora, gated-lora, gated-dora).
The `__init__` never imports torch, so `clbench list strategies` and the parameter checks of
`clbench run` stay quick; `plugin_attributes` lets it still export the plugin's names
(`from clbench.strategies.lorsu import LoRSUPlugin`), imported on first use (PEP 562).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib import import_module
from typing import Any

from clbench.strategies.config_base import StrategyConfig

# a strategy's name: lower case, digits and hyphens (":" is kept for `DISTRIBUTION:NAME`)
NAME = re.compile(r"[a-z][a-z0-9]*(-[a-z0-9]+)*")
TARGET = re.compile(r"\.?[A-Za-z_][\w.]*:[A-Za-z_]\w*")


def _check_name(name: str) -> None:
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise ValueError(f"strategy name {name!r}: use lower-case letters, digits and hyphens "
                         "(e.g. 'gated-lora')")


def _check_patterns(owner: str, patterns: tuple[str, ...]) -> None:
    if isinstance(patterns, str):
        raise TypeError(f"{owner}: give a tuple of regular expressions, not one string")
    for pattern in patterns:
        re.compile(pattern)


@dataclass(frozen=True)
class Preset:
    """A named reading of a strategy: overrides of its parameters (`lorsu-official`), listed and
    run like a strategy. `may_change` defaults to its strategy's."""

    name: str
    params: Mapping[str, Any]
    summary: str
    may_change: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        _check_name(self.name)
        if not self.params or not self.summary:
            raise ValueError(f"preset {self.name!r}: give the parameters it overrides and a "
                             "one-line summary")
        if self.may_change is not None:
            _check_patterns(f"preset {self.name!r}", self.may_change)


@dataclass(frozen=True)
class Declaration:
    """One built-in strategy, as its package declares it (`STRATEGIES = (Declaration(...),)`).

    - `name`: what `--strategy` takes; `summary`: its line in `clbench list strategies`.
    - `config`: its parameter dataclass (a `StrategyConfig`, torch-free: checked before torch
      is imported); it must be the plugin's `config_class`.
    - `plugin`: "module:Class" of its `StrategyPlugin`; a module starting with "." is relative to
      the declaring package (".plugin:LoRSUPlugin").
    - `may_change`: regular expressions over state-dict keys (parametrization wrappers
      stripped), the tensors two sessions of it may change and do change: the strategy test
      matrix (`tests/test_strategy_matrix.py`) checks exactly this with
      `clbench.training.strategy_kit.check_strategy`; `()` means nothing trains.
    - `check_ignore`: state-dict keys left out of that comparison (a buffer that is no weight).
    - `reference`: a reference row (zero-shot, the joint-replay bound), never ranked.
    - `presets`: its named readings.
    """

    name: str
    config: type
    plugin: str
    summary: str
    may_change: tuple[str, ...]
    check_ignore: tuple[str, ...] = ()
    reference: bool = False
    presets: tuple[Preset, ...] = field(default=())

    def __post_init__(self) -> None:
        _check_name(self.name)
        if not (isinstance(self.config, type) and dataclasses.is_dataclass(self.config)
                and issubclass(self.config, StrategyConfig)):
            raise TypeError(f"strategy {self.name!r}: config must be a dataclass derived from "
                            "clbench.strategies.config_base.StrategyConfig")
        if not TARGET.fullmatch(self.plugin):
            raise ValueError(f"strategy {self.name!r}: plugin {self.plugin!r} is not "
                             "'module:Class' (e.g. '.plugin:MyPlugin')")
        if not self.summary:
            raise ValueError(f"strategy {self.name!r}: give a one-line summary")
        _check_patterns(f"strategy {self.name!r}", self.may_change)
        _check_patterns(f"strategy {self.name!r}", self.check_ignore)
        for preset in self.presets:
            fields = {f.name for f in dataclasses.fields(self.config)}
            unknown = sorted(set(preset.params) - fields)
            if unknown:
                raise ValueError(f"preset {preset.name!r} of {self.name!r} sets unknown "
                                 f"parameter(s) {unknown}")

    def target(self, package: str) -> str:
        """The plugin's absolute "module:Class", its module resolved against `package`."""
        module, _, cls = self.plugin.partition(":")
        return f"{package}{module}:{cls}" if module.startswith(".") else self.plugin


def plugin_attributes(package: str, module: str = ".plugin") -> Callable[[str], Any]:
    """A strategy package's module `__getattr__` (PEP 562): a public name its torch-free
    `__init__` does not define is read from its plugin module, imported on first use. So the
    plugin's names keep their short import path while importing the config imports no torch."""

    def __getattr__(name: str) -> Any:
        if name.startswith("_"):  # dunder probes (`__wrapped__`, ...) never import torch
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        plugin = import_module(module, package)
        if name == module.lstrip("."):  # `from package import plugin`
            return plugin
        try:
            return getattr(plugin, name)
        except AttributeError:
            raise AttributeError(f"module {package!r} has no attribute {name!r}") from None

    return __getattr__
