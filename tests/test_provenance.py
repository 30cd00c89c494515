"""Provenance: what a run records about its code, packages and machine, and that it never fails."""

from __future__ import annotations

import platform
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy

from clbench.run.provenance import (
    collect_hardware,
    collect_provenance,
    git_state,
    hardware_with_torch,
    package_versions,
)

needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")


def git(repo: Path, *args: str) -> str:
    cmd = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args]
    return subprocess.run(cmd, cwd=repo, capture_output=True, text=True, check=True).stdout


def test_collect_provenance_shape():
    prov = collect_provenance()
    assert set(prov) == {"git_sha", "git_dirty", "packages", "hardware"}
    sha = prov["git_sha"]
    assert sha is None or re.fullmatch(r"[0-9a-f]{40}", sha)
    assert prov["git_dirty"] in (True, False, None)
    if sha is None:
        assert prov["git_dirty"] is None  # no checkout, no dirty flag
    assert prov["packages"]["sqlalchemy"] == sqlalchemy.__version__
    assert "clbench" in prov["packages"]
    hardware = prov["hardware"]
    for key in ("platform", "python", "cpu", "cpu_count", "memory_gb", "torch_device"):
        assert key in hardware, key
    assert hardware["python"] == platform.python_version()
    assert hardware["torch_device"] is None  # filled by the run loop, which has torch


def test_missing_packages_are_left_out():
    versions = package_versions(("sqlalchemy", "no-such-distribution-xyz"))
    assert versions == {"sqlalchemy": sqlalchemy.__version__}


def test_hardware_reads_proc_when_present():
    hardware = collect_hardware()
    assert isinstance(hardware["cpu_count"], int) and hardware["cpu_count"] >= 1
    if Path("/proc/meminfo").exists():
        assert hardware["memory_gb"] > 0
    if Path("/proc/cpuinfo").exists() and "model name" in Path("/proc/cpuinfo").read_text():
        assert hardware["cpu"]


def test_collect_provenance_does_not_import_torch():
    code = (
        "import sys; from clbench.run.provenance import collect_provenance; collect_provenance(); "
        "print([m for m in ('torch', 'avalanche', 'open_clip') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, check=True)
    assert out.stdout.strip() == "[]"


def test_not_a_checkout_gives_none(tmp_path: Path):
    assert git_state(tmp_path) == (None, None)
    assert git_state(tmp_path / "missing") == (None, None)


def test_git_missing_gives_none(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert git_state(Path(__file__).parent) == (None, None)


@needs_git
def test_git_state_of_a_checkout(tmp_path: Path):
    repo = tmp_path / "repo"
    (repo / "pkg").mkdir(parents=True)
    git(repo, "init", "-q")
    (repo / "pkg" / "mod.py").write_text("x = 1\n")
    git(repo, "add", "pkg/mod.py")
    git(repo, "commit", "-q", "-m", "first")
    head = git(repo, "rev-parse", "HEAD").strip()

    assert git_state(repo / "pkg") == (head, False)
    (repo / "pkg" / "untracked.py").write_text("")  # untracked files do not make it dirty
    assert git_state(repo / "pkg") == (head, False)
    (repo / "pkg" / "mod.py").write_text("x = 2\n")
    assert git_state(repo / "pkg") == (head, True)

    # An installed copy inside someone else's repository (e.g. a venv in a project) has no
    # tracked files, and must not claim that repository's commit.
    site = repo / ".venv" / "site-packages" / "clbench"
    site.mkdir(parents=True)
    (site / "__init__.py").write_text("")
    assert git_state(site) == (None, None)


def test_hardware_with_torch_fills_device_and_never_raises():
    pytest.importorskip("torch")
    base = {"cpu_count": 2, "torch_device": None}
    hardware = hardware_with_torch("cpu", base)
    assert base["torch_device"] is None  # the given dict is not changed
    device = hardware["torch_device"]
    assert device["device"] == "cpu" and device["type"] == "cpu"
    assert isinstance(device["torch_threads"], int) and device["torch_threads"] >= 1
    assert hardware["cpu_count"] == 2

    broken = hardware_with_torch("not-a-device", base)["torch_device"]
    assert broken["device"] == "not-a-device" and "error" in broken
