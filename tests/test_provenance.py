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
from plugin_packages import PLUGIN_SOURCE, fake_distribution

from clbench.run.provenance import (
    code_fingerprint,
    collect_hardware,
    collect_provenance,
    git_state,
    hardware_with_torch,
    package_versions,
    strategy_source,
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


@pytest.fixture
def plugin_package(tmp_path, monkeypatch):
    """The package `plug_l2sp` of an installed-looking distribution clbench-l2sp 0.1.0 (not a
    git checkout): the entry point's module, and a subpackage it does not name; its modules
    are forgotten afterwards."""
    root = fake_distribution(tmp_path / "site", "clbench-l2sp", "0.1.0",
                             {"l2sp": "plug_l2sp.plugin:L2SP"}, {})
    package = root / "plug_l2sp"
    (package / "core").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "plugin.py").write_text(PLUGIN_SOURCE.format(cls="L2SP"))
    (package / "core" / "__init__.py").write_text("")
    (package / "core" / "penalty.py").write_text("STRENGTH = 1.0\n")
    monkeypatch.syspath_prepend(str(root))
    yield package
    for name in [m for m in sys.modules if m.startswith("plug_l2sp")]:
        del sys.modules[name]


def test_a_plugin_records_a_hash_of_its_package_sources(plugin_package):
    """Issue 27: two states of a plugin's code both recorded `clbench-l2sp 0.1.0` with
    `git_sha: null`; the hash of its package's .py files tells them apart."""
    first = strategy_source("l2sp")
    assert (first["distribution"], first["version"], first["git_sha"]) == (
        "clbench-l2sp", "0.1.0", None)
    assert re.fullmatch(r"[0-9a-f]{64}", first.get("sources_sha256") or "")
    assert strategy_source("l2sp") == first  # the same code, the same record
    (plugin_package / "core" / "notes.txt").write_text("not code\n")
    assert strategy_source("l2sp") == first
    # a module of the package that the entry point does not name
    (plugin_package / "core" / "penalty.py").write_text("STRENGTH = 2.0\n")
    second = strategy_source("l2sp")
    assert second["sources_sha256"] != first["sources_sha256"]
    assert {**second, "sources_sha256": None} == {**first, "sources_sha256": None}
    (plugin_package / "core" / "penalty.py").rename(plugin_package / "penalties.py")
    assert strategy_source("l2sp")["sources_sha256"] not in (first["sources_sha256"],
                                                             second["sources_sha256"])
    # `clbench run --resume` compares the same record
    assert code_fingerprint("l2sp")["strategy_source"] == strategy_source("l2sp")
    assert "sources_sha256" not in strategy_source("fft")  # a built-in's code is clbench's
