"""The strategy registry lists, suggests, validates parameters and accepts plugin packages."""

from __future__ import annotations

import sys
from importlib.metadata import EntryPoint

import pytest

from clbench.errors import ConfigError, UserError
from clbench.strategies import registry
from clbench.strategies.base import StrategyPlugin


def test_builtins_are_listed():
    assert {"zeroshot", "fft", "ln"} <= set(registry.available())


def test_unknown_name_suggests_the_closest():
    with pytest.raises(UserError, match="did you mean: fft"):
        registry.info("ffft")


def test_parameters_are_validated_by_the_strategy_config():
    assert registry.create("ln", {"towers": "both"}).config.towers == "both"
    with pytest.raises(ConfigError, match="strategy.towers"):
        registry.create("ln", {"towers": "text"})
    with pytest.raises(ConfigError, match="unknown config key 'strategy.tower'"):
        registry.create("fft", {"tower": "both"})


def test_third_party_entry_point(tmp_path, monkeypatch):
    (tmp_path / "my_cl_plugin.py").write_text(
        "from clbench.strategies.base import StrategyPlugin\n"
        "class Mine(StrategyPlugin):\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    point = EntryPoint(name="mine", value="my_cl_plugin:Mine", group=registry.ENTRY_POINT_GROUP)
    monkeypatch.setattr(registry, "entry_points", lambda group: [point])
    assert registry.available()["mine"].source.startswith("plugin")
    plugin = registry.create("mine")
    assert isinstance(plugin, StrategyPlugin) and type(plugin).__name__ == "Mine"
    sys.modules.pop("my_cl_plugin", None)


def test_entry_point_that_is_not_a_plugin_is_refused(tmp_path, monkeypatch):
    (tmp_path / "not_a_plugin.py").write_text("class Thing:\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    point = EntryPoint(name="thing", value="not_a_plugin:Thing", group=registry.ENTRY_POINT_GROUP)
    monkeypatch.setattr(registry, "entry_points", lambda group: [point])
    with pytest.raises(UserError, match="not a clbench StrategyPlugin"):
        registry.create("thing")


def test_every_preset_is_a_labelled_reading_of_its_base():
    """A preset overrides declared fields of its base strategy with values that differ from the
    base's defaults (the default is the paper's reading, the preset another one)."""
    import dataclasses

    for name, (base, overrides, summary) in registry.PRESETS.items():
        assert base in registry.BUILTIN and overrides and summary, name
        preset, default = registry.create(name).config, registry.create(base).config
        fields = {f.name for f in dataclasses.fields(default)}
        assert set(overrides) <= fields, name
        assert any(getattr(preset, k) != getattr(default, k) for k in overrides), name
        assert registry.strategy_and_base(name) == (name, base)
    assert {"lora-qkv-split", "dora-qkv-split", "lorsu-per-head", "gated-lora-taps",
            "gated-dora-taps", "llu-literal", "lorsu-official", "spu-official"} <= set(
        registry.PRESETS)
