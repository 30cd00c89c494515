"""Quick commands, and `clbench run` with a wrong strategy name or value, must not import the
training stack (torch, avalanche, open_clip): seconds of imports before a one-line error."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import pytest

HEAVY = ("torch", "avalanche", "open_clip")


RUN = ["run", "--scenario", "proxy-20shot"]


def python(code: str, timeout: int, cwd=None) -> subprocess.CompletedProcess:
    """`code` run by this Python in a fresh process (nothing imported yet), output captured."""
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=cwd, timeout=timeout)


@pytest.mark.parametrize("argv", [
    ["--help"], ["run", "--help"], ["list", "strategies"], ["list", "strategies", "-v"],
    ["list", "scenarios"],
    ["list", "models"], ["list", "datasets"], ["runs"],
    [*RUN, "--strategy", "lorsuu"], [*RUN, "--strategy", "lorsu", "--set", "strategy.rank=0"],
    [*RUN, "--strategy", "lorsu-official", "--set", "strategy.rankk=3"],
    [*RUN, "--strategy", "gated-lora", "--set", "strategy.tau=0.5"],
    [*RUN, "--strategy", "llu", "--set", "strategy.sides=left"],
], ids=lambda argv: " ".join(argv))
@pytest.mark.spawns
def test_quick_command_imports_no_training_stack(argv, tmp_path):
    code = (
        "import sys\n"
        "from clbench.cli.main import main\n"
        f"try:\n    print('RC', main({argv!r}))\nexcept SystemExit as exit:\n"
        "    print('RC', exit.code)\n"
        f"heavy = [m for m in {HEAVY!r} if m in sys.modules]\n"
        "print('HEAVY', heavy)\n"
    )
    result = python(code, 60, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "HEAVY []" in result.stdout
    if argv[0] == "run" and "--help" not in argv:  # refused in one line, exit 2
        assert "RC 2" in result.stdout and result.stderr.startswith("error: "), result.stderr


def test_every_built_in_declares_the_config_class_its_plugin_uses():
    """`registry.check_params` validates with the light declaration; it must be the class the
    plugin itself builds its config with."""
    from clbench.strategies import registry

    for name in [*registry.BUILTIN, *registry.PRESETS]:
        assert registry.config_class(name) is registry.load_class(name).config_class, name


@pytest.mark.spawns
def test_avalanche_leaves_wandb_and_gdown_unloaded_until_used():
    """Avalanche imports wandb and gdown on import, and timm (under open_clip) imports wandb;
    under clbench their code runs only when something uses them, and then they are the whole
    package. In the order of a run: open_clip, then Avalanche, so wandb is imported twice."""
    code = (
        "import importlib.metadata, inspect, sys\n"
        "import clbench  # first, as in every clbench command\n"
        "import open_clip  # timm imports wandb\n"
        "import clbench.strategies.base  # imports avalanche, which imports it again\n"
        "import avalanche.evaluation.metrics.confusion_matrix as cm\n"
        "inspect.getmodule(open_clip.create_model)  # reads every module's __file__\n"
        "import wandb, gdown\n"
        "print('ALIKE', repr(wandb).startswith(\"<module 'wandb' from \"), gdown.__name__)\n"
        "loaded = sorted(m for m in sys.modules if m.startswith(('wandb.', 'gdown.')))\n"
        "print('LOADED', loaded)\n"
        "print('TYPE', type(cm.wandb).__name__)\n"
        "print('USED', wandb.__version__ == importlib.metadata.version('wandb'),\n"
        "      callable(gdown.download), 'wandb.sdk' in sys.modules,\n"
        "      type(sys.modules['wandb']).__name__)\n"
    )
    done = python(code, 120)
    assert done.returncode == 0, done.stderr
    assert "ALIKE True gdown" in done.stdout  # repr and metadata read without running them
    assert "LOADED []" in done.stdout  # no submodule: the packages' code has not run
    assert "TYPE _DeferredModule" in done.stdout
    assert "USED True True True module" in done.stdout


def test_setting_an_attribute_on_a_deferred_package_runs_it_first():
    """What a user sets survives: the package's code runs before the attribute is set."""
    code = ("import sys\n"
            "import clbench\n"
            "import wandb\n"
            "wandb.login = 'mine'\n"
            "print('SET', wandb.login, 'wandb.sdk' in sys.modules)\n"
            "del wandb.login\n"
            "print('GONE', hasattr(wandb, 'login'))\n")
    done = python(code, 120)
    assert done.returncode == 0, done.stderr
    assert "SET mine True" in done.stdout and "GONE False" in done.stdout


def test_a_deferred_package_that_is_missing_fails_as_usual():
    code = ("import clbench.deferred_imports as d\n"
            "d.DEFERRED = ('clbench_no_such_package',)\n"
            "try:\n    import clbench_no_such_package\n"
            "except ModuleNotFoundError as error:\n    print('MISSING', error.name)\n")
    done = python(code, 60)
    assert "MISSING clbench_no_such_package" in done.stdout, done.stderr


def test_a_deferred_package_whose_code_fails_fails_at_first_use_as_an_import_would(tmp_path):
    (tmp_path / "clbench_broken_package").mkdir()
    (tmp_path / "clbench_broken_package" / "__init__.py").write_text(
        "raise RuntimeError('broken on import')\n")
    code = ("import sys\n"
            f"sys.path.insert(0, {str(tmp_path)!r})\n"
            "import clbench.deferred_imports as d\n"
            "d.DEFERRED = ('clbench_broken_package',)\n"
            "import clbench_broken_package as p  # nothing runs yet\n"
            "for attempt in (1, 2):\n"
            "    try:\n"
            "        import clbench_broken_package as p\n"
            "        p.anything\n"
            "    except RuntimeError as error:\n"
            "        print('FAILED', attempt, error, 'clbench_broken_package' in sys.modules)\n")
    done = python(code, 60)
    assert "FAILED 1 broken on import False" in done.stdout, done.stderr
    assert "FAILED 2 broken on import False" in done.stdout, done.stderr


def test_list_strategies_v_finds_the_strategies_once(monkeypatch, capsys):
    """Issue 27: `clbench list strategies -v` took 7.3 s with no plugin installed: for every
    name it listed it found all strategies again (the strategy folders walked, every installed
    package's entry points read). Once is enough, and every parameter is still listed."""
    from clbench.cli.main import main
    from clbench.strategies import registry

    calls = {"built_ins": 0, "entry_points": 0}

    def counted(name, function):
        def call(*args, **kwargs):
            calls[name] += 1
            return function(*args, **kwargs)
        return call

    monkeypatch.setattr(registry, "built_ins", counted("built_ins", registry.built_ins))
    monkeypatch.setattr(registry, "entry_points", counted("entry_points", registry.entry_points))
    assert main(["list", "strategies", "-v"]) == 0
    out = capsys.readouterr().out
    assert calls == {"built_ins": 1, "entry_points": 1}
    infos = registry.available()
    for name in registry.listed_names(infos):
        assert f"\n{name} " in f"\n{out}", name
        for field in dataclasses.fields(infos[name].config) if infos[name].config else ():
            assert f"\n    {field.name} " in out, (name, field.name)


@pytest.mark.spawns
def test_list_strategies_v_imports_no_strategy_code_without_a_plugin_package(tmp_path):
    """Without a third-party package, `list strategies -v` reads every built-in's parameters
    from its torch-free declaration: no plugin module and no training stack is imported."""
    code = (
        "import sys\n"
        "from importlib.metadata import entry_points\n"
        "from clbench.cli.main import main\n"
        "print('PACKAGES', len(entry_points(group='clbench.strategies')))\n"
        "print('RC', main(['list', 'strategies', '-v']))\n"
        f"print('HEAVY', [m for m in {HEAVY!r} if m in sys.modules])\n"
        "print('PLUGINS', sorted(m for m in sys.modules\n"
        "                        if m.startswith('clbench.strategies.') and m.endswith('.plugin')))\n"
    )
    result = python(code, 60, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    if "PACKAGES 0" not in result.stdout:
        pytest.skip("a third-party strategy package is installed here: -v imports it")
    assert "RC 0" in result.stdout and "towers" in result.stdout
    assert "HEAVY []" in result.stdout and "PLUGINS []" in result.stdout, result.stdout[-500:]
