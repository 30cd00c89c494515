"""The strategy registry lists, suggests, validates parameters and accepts plugin packages."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import EntryPoint

import pytest
from plugin_packages import PLUGIN_SOURCE, fake_distribution

from clbench.cli.main import main
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
    assert registry.available()["mine"].source == registry.THIRD_PARTY
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


@pytest.fixture
def forget_modules():
    """Fixture modules imported by a test are dropped afterwards (other tests reuse names)."""
    before = set(sys.modules)
    yield
    for name in set(sys.modules) - before:
        if name.startswith(("plug_", "broken_")):
            sys.modules.pop(name, None)


def test_a_plugin_claiming_a_built_in_name_never_shadows_it(tmp_path, monkeypatch, capsys,
                                                            forget_modules):
    monkeypatch.syspath_prepend(str(fake_distribution(
        tmp_path, "evil-plug", "2.0", {"lora": "plug_evil:Lora", "dup": "plug_evil:Lora"},
        {"plug_evil": PLUGIN_SOURCE.format(cls="Lora")})))
    monkeypatch.syspath_prepend(str(fake_distribution(
        tmp_path / "other", "other-plug", "1.0", {"dup": "plug_other:Dup"},
        {"plug_other": PLUGIN_SOURCE.format(cls="Dup")})))
    infos = registry.available()
    assert infos["lora"].source == registry.BUILT_IN  # the built-in keeps its name
    claim = infos["evil-plug:lora"]
    assert claim.claims == "lora" and "run it as 'evil-plug:lora'" in claim.summary
    assert "dup" not in infos  # two packages claim it: only the qualified names run
    assert {"evil-plug:dup", "other-plug:dup"} <= set(infos)
    assert type(registry.create("evil-plug:lora")).__name__ == "Lora"
    assert main(["list", "strategies"]) == 0
    listing = capsys.readouterr().out
    assert "evil-plug:lora" in listing and "claims the name 'lora'" in listing
    assert "[third-party (evil-plug 2.0)]" in listing
    assert "evil-plug's strategies (test fixture)" in listing  # the package's own summary
    from clbench.cli.main import _note_claimants

    _note_claimants("lora")  # what `clbench run --strategy lora` prints before it starts
    assert "evil-plug also registers a strategy 'lora'; this run uses the built-in" in \
        capsys.readouterr().err


def test_a_broken_plugin_breaks_nothing_else(tmp_path, monkeypatch, capsys, forget_modules):
    monkeypatch.syspath_prepend(str(fake_distribution(
        tmp_path, "broken-plug", "0.1",
        {"gone": "broken_missing_module:X", "raises": "broken_raises:X"},
        {"broken_raises": "raise RuntimeError('cannot start: no licence file')\n"})))
    assert main(["list", "strategies", "-v"]) == 0
    out = capsys.readouterr().out
    assert "BROKEN: strategy 'raises' could not be loaded from broken_raises:X: RuntimeError: " \
        "cannot start: no licence file" in out
    assert "BROKEN: strategy 'gone' could not be loaded" in out and "ModuleNotFoundError" in out
    assert "towers" in out  # the built-ins' parameters are still listed
    assert main(["params", "--model", "proxy-vit-tiny"]) == 0
    table = capsys.readouterr().out
    assert "lorsu" in table and "broken" in table
    for args in (["params", "--model", "proxy-vit-tiny", "--strategy", "raises"],
                 ["run", "--strategy", "raises", "--scenario", "proxy-20shot",
                  "--db", str(tmp_path / "r.db")]):
        assert main(args) == 2
        err = capsys.readouterr().err
        assert "RuntimeError: cannot start: no licence file" in err and "Traceback" not in err
        assert "pip uninstall broken-plug" in err
    assert not (tmp_path / "r.db").exists()  # no run was started, nothing stored
    # another strategy's run builds its plugin as before (`clbench run` calls registry.create)
    assert type(registry.create("fft")).__name__ == "FullFineTuningPlugin"


def test_a_third_party_run_records_its_package_and_checkout(tmp_path, monkeypatch,
                                                            forget_modules):
    from clbench.run.provenance import strategy_source

    checkout = tmp_path / "checkout"
    monkeypatch.syspath_prepend(str(fake_distribution(
        checkout, "clbench-mine", "0.3.1", {"mine": "plug_mine:Mine"},
        {"plug_mine": PLUGIN_SOURCE.format(cls="Mine")}, editable=True)))
    git = ["git", "-C", str(checkout), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "plug_mine.py"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "plugin"], check=True)
    head = subprocess.run([*git, "rev-parse", "HEAD"], check=True, capture_output=True,
                          text=True).stdout.strip()
    record = strategy_source("mine")
    assert record == {"source": "third-party", "distribution": "clbench-mine",
                      "version": "0.3.1", "entry_point": "plug_mine:Mine", "editable": True,
                      "git_sha": head, "git_dirty": False}
    (checkout / "plug_mine.py").write_text(PLUGIN_SOURCE.format(cls="Mine") + "# changed\n")
    assert strategy_source("mine")["git_dirty"] is True
    assert strategy_source("fft") == {"source": "built-in"}
