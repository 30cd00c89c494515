"""Installed-looking plugin packages for the registry tests, without pip: a folder on sys.path
holding a module and a `<dist>-<version>.dist-info` with its `clbench.strategies` entry points,
which is all `importlib.metadata` reads."""

from __future__ import annotations

import json
from pathlib import Path

PLUGIN_SOURCE = """from clbench.strategies.fft import FullFineTuningPlugin


class {cls}(FullFineTuningPlugin):
    '''A third-party copy of full fine-tuning (test fixture).'''
"""


# a third-party plugin that keeps the zero-shot weights on itself and declares nothing about
# resuming: WiSE-FT before issue 27, whose resumed runs stored other numbers, silently
STATEFUL_PLUGIN = """
import torch

from clbench.strategies.base import StrategyPlugin, TowerConfig, set_trainable, tower_parameters


class Stateful(StrategyPlugin):
    config_class = TowerConfig

    def __init__(self, config=None):
        super().__init__(config)
        self.zero_shot = None

    def configure(self, classifier, strategy):
        set_trainable(tower_parameters(classifier.clip, self.config.towers))

    def before_training_exp(self, strategy, **kwargs):
        if self.zero_shot is None:
            self.zero_shot = {n: p.detach().clone()
                              for n, p in tower_parameters(strategy.model.clip, "vision")}
        super().before_training_exp(strategy, **kwargs)

    @torch.no_grad()
    def after_training_exp(self, strategy, **kwargs):
        for n, p in tower_parameters(strategy.model.clip, "vision"):
            p.copy_(0.5 * self.zero_shot[n] + 0.5 * p)
"""


def stateful_plugin_class(name: str) -> type:
    """`STATEFUL_PLUGIN`'s class, named `name`, without a package around it."""
    namespace: dict = {"__name__": "stateful_fixture"}
    exec(compile(STATEFUL_PLUGIN.replace("class Stateful(", f"class {name}("), "<stateful>",
                 "exec"), namespace)
    return namespace[name]


def fake_distribution(root: Path, dist: str, version: str, points: dict[str, str],
                      modules: dict[str, str], editable: bool | None = None) -> Path:
    """Write modules (name -> source) and a dist-info registering `points` (strategy name ->
    "module:Class") under `root`; returns `root` (prepend it to sys.path)."""
    root.mkdir(parents=True, exist_ok=True)
    for name, source in modules.items():
        (root / f"{name}.py").write_text(source)
    info = root / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n"
                                   f"Summary: {dist}'s strategies (test fixture)\n")
    (info / "entry_points.txt").write_text(
        "[clbench.strategies]\n" + "".join(f"{n} = {v}\n" for n, v in points.items()))
    if editable is not None:
        (info / "direct_url.json").write_text(json.dumps(
            {"url": root.as_uri(), "dir_info": {"editable": editable}}))
    return root
