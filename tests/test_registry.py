"""The strategy registry lists, suggests, validates parameters and accepts plugin packages;
built-ins are found as folders (adding one is checked by doing it), and their stored config
hashes stay put."""

from __future__ import annotations

import dataclasses
import importlib
import subprocess
import sys
import textwrap
from importlib.metadata import EntryPoint

import pytest
from plugin_packages import PLUGIN_SOURCE, fake_distribution

import clbench.strategies
from clbench.cli.main import main
from clbench.config.run_config import RunConfig
from clbench.errors import ConfigError, UserError
from clbench.hashing import canonical_hash
from clbench.options import build_dataclass
from clbench.strategies import registry
from clbench.strategies.base import StrategyPlugin
from clbench.strategies.config_base import StrategyConfig
from clbench.strategies.declaration import Declaration, Preset


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
    from clbench.run.provenance import package_sources_sha256, strategy_source

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
                      "git_sha": head, "git_dirty": False,
                      "sources_sha256": package_sources_sha256("plug_mine")}
    (checkout / "plug_mine.py").write_text(PLUGIN_SOURCE.format(cls="Mine") + "# changed\n")
    assert strategy_source("mine")["git_dirty"] is True
    assert strategy_source("fft") == {"source": "built-in"}


# ------------------------------------------------------------------ stored hashes stay put
# name -> (strategy_config_hash, RunConfig.hash()) of every built-in strategy and preset at its
# defaults: the stored strategy config (every parameter explicit, as `clbench run` stores it)
# and the run config carrying those parameters on proxy-20shot. Computed before the built-ins
# became folders (issue 25); the store groups runs by them, so they must never move.
PINNED_HASHES = {
    "dora": ("7cfc787b11a592fa", "250dd3c0db7c7718"),
    "dora-qkv-split": ("eeab5190f99a4bf9", "213d06105643f123"),
    "fft": ("b455b9334490056d", "63f377852b04737d"),
    "gated-dora": ("326907b562dea6b6", "4ff84661a687e87e"),
    "gated-dora-taps": ("0d9a40abc3edfe3b", "c62a3f61c2a55b28"),
    "gated-lora": ("326907b562dea6b6", "e34c2b0afceceaba"),
    "gated-lora-taps": ("0d9a40abc3edfe3b", "b5167f254c961ef4"),
    "joint-replay": ("72631e4cf1e99acb", "8b6bb835d4ebb266"),
    "llu": ("68acd1a103785253", "6e5dd4354332772e"),
    "llu-literal": ("17a780746b0679b0", "ab3e97d10b06cd76"),
    "ln": ("b455b9334490056d", "c8800a612bc5a46e"),
    "lora": ("7cfc787b11a592fa", "344afac5a1bcae84"),
    "lora-qkv-split": ("eeab5190f99a4bf9", "f290f4ea4c24feca"),
    "lorsu": ("299e7cb94a7f0c74", "08c97534f0918425"),
    "lorsu-official": ("d899241726b5cf54", "68ea3d22c0484fa0"),
    "lorsu-per-head": ("6be353728eb2af76", "92527bbc720c9056"),
    "spu": ("9093851753e91ff1", "b3028606e7e5b3da"),
    "spu-official": ("fe9ce14cd98b4818", "e7a93d2983164557"),
    "zeroshot": ("44136fa355b3678a", "0b94fd771a7e3ecb"),
}


def test_every_built_in_keeps_its_name_and_its_stored_hashes():
    """Both ways a strategy's parameters are resolved (the torch-free check's config class and
    the plugin `clbench run` builds) give the pinned hashes, for the same set of names."""
    got = {}
    for name, info in registry.built_ins().items():
        light = dataclasses.asdict(build_dataclass(registry.config_class(name), info.preset,
                                                   "strategy."))
        stored = registry.resolved_params(registry.create(name))
        assert light == stored, name
        run = RunConfig(strategy=name, scenario="proxy-20shot", strategy_params=stored)
        got[name] = (canonical_hash(stored), run.hash())
    assert got == PINNED_HASHES


# ------------------------------------------------------------------ built-ins are folders
def test_built_ins_are_the_folders_of_the_strategies_package():
    """Each subpackage of `clbench.strategies` declares its strategies; the registry's
    built-ins are exactly those declarations and their presets, in torch-free `__init__`s."""
    import pkgutil

    declared = {}
    for found in pkgutil.iter_modules(clbench.strategies.__path__):
        if found.ispkg:
            package = importlib.import_module(f"clbench.strategies.{found.name}")
            for decl in package.STRATEGIES:
                declared[decl.name] = found.name
                declared.update({p.name: found.name for p in decl.presets})
    assert set(declared) == set(registry.built_ins())
    assert declared["gated-dora"] == declared["lora-qkv-split"] == "lora"
    assert registry.info("lorsu").target == "clbench.strategies.lorsu.plugin:LoRSUPlugin"
    assert sorted(registry.REFERENCE) == ["joint-replay", "zeroshot"]


@pytest.mark.spawns
def test_a_built_in_package_exports_its_config_without_torch_and_its_plugin_on_use():
    code = ("import sys, pkgutil, importlib\n"
            "import clbench.strategies as s\n"
            "for m in pkgutil.iter_modules(s.__path__, 'clbench.strategies.'):\n"
            "    importlib.import_module(m.name) if m.ispkg else None\n"
            "from clbench.strategies.lorsu import LoRSUConfig\n"
            "print('TORCH', 'torch' in sys.modules)\n"
            "from clbench.strategies.lorsu import LoRSUPlugin, count_trainable\n"
            "print('PLUGIN', LoRSUPlugin.config_class is LoRSUConfig, callable(count_trainable))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert "TORCH False" in done.stdout and "PLUGIN True True" in done.stdout, done.stderr
    with pytest.raises(ImportError, match="cannot import name 'NoSuchThing'"):
        from clbench.strategies.fft import NoSuchThing  # noqa: F401


def test_a_declaration_refuses_what_the_registry_could_not_use():
    with pytest.raises(ValueError, match="lower-case letters"):
        Declaration("My_Strategy", StrategyConfig, ".plugin:P", "s", may_change=())
    with pytest.raises(TypeError, match="StrategyConfig"):
        Declaration("mine", dict, ".plugin:P", "s", may_change=())
    with pytest.raises(ValueError, match="'module:Class'"):
        Declaration("mine", StrategyConfig, "plugin.P", "s", may_change=())
    with pytest.raises(TypeError, match="tuple of regular expressions"):
        Declaration("mine", StrategyConfig, ".plugin:P", "s", may_change=r"clip\..*")
    with pytest.raises(ValueError, match=r"unknown parameter\(s\) \['rank'\]"):
        Declaration("mine", StrategyConfig, ".plugin:P", "s", may_change=(),
                    presets=(Preset("mine-big", {"rank": 64}, "bigger"),))


# The worked trace of docs/contributing.md's "add a strategy": a new folder and nothing else.
NEW_STRATEGY_INIT = '''
"""ln-post: only the image tower's final LayerNorm trains (a test's worked example)."""

from dataclasses import dataclass
from typing import Literal

from clbench.options import option
from clbench.strategies.config_base import StrategyConfig
from clbench.strategies.declaration import Declaration, Preset, plugin_attributes


@dataclass
class LNPostConfig(StrategyConfig):
    which: Literal["both", "weight", "bias"] = option("both", "which of ln_post's tensors train")


STRATEGIES = (
    Declaration("ln-post", LNPostConfig, ".plugin:LNPostPlugin",
                "only the image tower's final LayerNorm trains",
                may_change=(r"clip\\.visual\\.ln_post\\.(weight|bias)",),
                presets=(Preset("ln-post-bias", {"which": "bias"}, "ln-post, its bias alone",
                                may_change=(r"clip\\.visual\\.ln_post\\.bias",)),)),
)

__getattr__ = plugin_attributes(__name__)
'''
NEW_STRATEGY_PLUGIN = '''
from clbench.strategies.base import StrategyPlugin
from clbench.strategies.lnpost import LNPostConfig


class LNPostPlugin(StrategyPlugin):
    config_class = LNPostConfig
    stateless_between_sessions = True  # it trains the model's own weights, nothing else

    def configure(self, classifier, strategy) -> None:
        norm = classifier.clip.visual.ln_post
        for name in ("weight", "bias"):
            if self.config.which in (name, "both"):
                getattr(norm, name).requires_grad_(True)
'''


def write_strategy_folder(root, name: str, init: str, plugin: str | None = None):
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "__init__.py").write_text(textwrap.dedent(init))
    if plugin is not None:
        (folder / "plugin.py").write_text(textwrap.dedent(plugin))
    return root


@pytest.fixture
def extra_strategies(tmp_path, monkeypatch):
    """A folder on the `clbench.strategies` package's path, as if it were `strategies/`; the
    packages imported from it are forgotten afterwards."""
    root = tmp_path / "more_strategies"
    root.mkdir()
    monkeypatch.setattr(clbench.strategies, "__path__", [*clbench.strategies.__path__, str(root)])
    importlib.invalidate_caches()
    yield root
    for name, module in list(sys.modules.items()):
        if str(getattr(module, "__file__", None) or "").startswith(str(root)):
            del sys.modules[name]
            parent, _, child = name.rpartition(".")
            vars(sys.modules[parent]).pop(child, None) if parent in sys.modules else None


def test_adding_a_strategy_is_one_folder(extra_strategies, capsys):
    """Listed, its parameters checked, its presets run, and clbench's strategy check passes on
    it with the expectations of its own declaration: no edit anywhere else."""
    from clbench.training.strategy_kit import check_strategy

    write_strategy_folder(extra_strategies, "lnpost", NEW_STRATEGY_INIT, NEW_STRATEGY_PLUGIN)
    assert main(["list", "strategies", "-v"]) == 0
    listing = capsys.readouterr().out
    assert "ln-post " in listing and "only the image tower's final LayerNorm trains" in listing
    assert "ln-post-bias" in listing and "which of ln_post's tensors train" in listing
    registry.check_params("ln-post", {"which": "bias"})
    with pytest.raises(ConfigError, match=r"strategy.which: 'bais' .*\(did you mean 'bias'"):
        registry.check_params("ln-post", {"which": "bais"})
    with pytest.raises(ConfigError, match="unknown config key 'strategy.whih'"):
        registry.check_params("ln-post-bias", {"whih": "weight"})
    assert registry.strategy_and_base("ln-post-bias") == ("ln-post-bias", "ln-post")
    for name in ("ln-post", "ln-post-bias"):
        info = registry.info(name)
        changed = check_strategy(name, list(info.may_change), ignore=list(info.check_ignore))
        assert changed == ({"clip.visual.ln_post.weight", "clip.visual.ln_post.bias"}
                           if name == "ln-post" else {"clip.visual.ln_post.bias"})


@pytest.mark.spawns
def test_an_added_strategy_keeps_the_quick_commands_free_of_torch(extra_strategies):
    write_strategy_folder(extra_strategies, "lnpost", NEW_STRATEGY_INIT, NEW_STRATEGY_PLUGIN)
    code = ("import sys\n"
            "import clbench.strategies as s\n"
            f"s.__path__.append({str(extra_strategies)!r})\n"
            "from clbench.cli.main import main\n"
            "print('LIST', main(['list', 'strategies', '-v']))\n"
            "try:\n"
            "    main(['run', '--scenario', 'proxy-20shot', '--strategy', 'ln-post', '--set',\n"
            "          'strategy.which=left'])\n"
            "except SystemExit as exit:\n"
            "    print('RUN', exit.code)\n"
            "print('HEAVY', [m for m in ('torch', 'avalanche', 'open_clip') if m in sys.modules])\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, cwd=extra_strategies)
    assert "LIST 0" in done.stdout and "ln-post-bias" in done.stdout, done.stderr
    assert "HEAVY []" in done.stdout, done.stdout
    assert "strategy.which: 'left'" in done.stderr


def test_a_folder_without_declarations_or_a_name_declared_twice_is_refused(extra_strategies):
    write_strategy_folder(extra_strategies, "halfdone", "\"\"\"No STRATEGIES yet.\"\"\"\n")
    with pytest.raises(TypeError, match="clbench.strategies.halfdone: a built-in strategy "
                                        "package sets STRATEGIES"):
        registry.available()
    (extra_strategies / "halfdone" / "__init__.py").write_text(
        NEW_STRATEGY_INIT.replace('"ln-post"', '"fft"'))
    sys.modules.pop("clbench.strategies.halfdone", None)
    with pytest.raises(ValueError, match="'fft' is declared by both clbench.strategies.fft and "
                                         "clbench.strategies.halfdone"):
        registry.available()


def test_a_plugin_must_build_the_config_its_declaration_names(extra_strategies):
    """`clbench run` checks parameters with the declared class before importing the plugin;
    a plugin building another class would be checked against the wrong parameters."""
    write_strategy_folder(extra_strategies, "lnpost", NEW_STRATEGY_INIT,
                          NEW_STRATEGY_PLUGIN.replace("    config_class = LNPostConfig\n", ""))
    with pytest.raises(TypeError, match="builds its config with StrategyConfig, its declaration "
                                        "says LNPostConfig"):
        registry.create("ln-post")
