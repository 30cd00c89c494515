"""Quick commands must not import the training stack (torch, avalanche, open_clip)."""

from __future__ import annotations

import subprocess
import sys

import pytest

HEAVY = ("torch", "avalanche", "open_clip")


@pytest.mark.parametrize("argv", [
    ["--help"], ["run", "--help"], ["list", "strategies"], ["list", "scenarios"],
    ["list", "models"], ["list", "datasets"], ["runs"],
])
def test_quick_command_imports_no_training_stack(argv, tmp_path):
    code = (
        "import sys\n"
        "from clbench.cli import main\n"
        f"try:\n    main({argv!r})\nexcept SystemExit:\n    pass\n"
        f"heavy = [m for m in {HEAVY!r} if m in sys.modules]\n"
        "print('HEAVY', heavy)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=tmp_path, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "HEAVY []" in result.stdout
