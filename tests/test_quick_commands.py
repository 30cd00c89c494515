"""Quick commands, and `clbench run` with a wrong strategy name or value, must not import the
training stack (torch, avalanche, open_clip): seconds of imports before a one-line error."""

from __future__ import annotations

import subprocess
import sys

import pytest

HEAVY = ("torch", "avalanche", "open_clip")


RUN = ["run", "--scenario", "proxy-20shot"]


@pytest.mark.parametrize("argv", [
    ["--help"], ["run", "--help"], ["list", "strategies"], ["list", "strategies", "-v"],
    ["list", "scenarios"],
    ["list", "models"], ["list", "datasets"], ["runs"],
    [*RUN, "--strategy", "lorsuu"], [*RUN, "--strategy", "lorsu", "--set", "strategy.rank=0"],
    [*RUN, "--strategy", "lorsu-official", "--set", "strategy.rankk=3"],
    [*RUN, "--strategy", "gated-lora", "--set", "strategy.tau=0.5"],
    [*RUN, "--strategy", "llu", "--set", "strategy.sides=left"],
], ids=lambda argv: " ".join(argv))
def test_quick_command_imports_no_training_stack(argv, tmp_path):
    code = (
        "import sys\n"
        "from clbench.cli import main\n"
        f"try:\n    print('RC', main({argv!r}))\nexcept SystemExit as exit:\n"
        "    print('RC', exit.code)\n"
        f"heavy = [m for m in {HEAVY!r} if m in sys.modules]\n"
        "print('HEAVY', heavy)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=tmp_path, timeout=60)
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
