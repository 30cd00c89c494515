"""Where a result came from: code version, package versions and hardware, stored with each run.

A number on the leaderboard is only comparable with another if both came from the same code and
comparable machines, so every run records the git commit of the clbench checkout (and whether it
had uncommitted changes), the versions of the packages that shape the numbers, and the hardware;
a third-party strategy adds its package, version, commit and a hash of its source files
(`strategy_source`), which `clbench reproduce` compares with the code it runs now.

Collecting this must never fail a run: every probe returns None (or leaves a key out) when it
cannot answer. `collect_provenance` does not import torch, so the quick CLI commands stay quick;
the run loop, which has torch loaded anyway, adds the device facts with `hardware_with_torch`.
"""

from __future__ import annotations

import json
import os
import platform
import re
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

# Distributions whose versions can change results; names as pip knows them.
TRACKED_PACKAGES = (
    "clbench",
    "torch",
    "torchvision",
    "avalanche-lib",
    "open_clip_torch",
    "sqlalchemy",
    "numpy",
    "timm",
    "pyyaml",
)
_GIT_TIMEOUT_S = 5.0
_SHA_RE = re.compile(r"^[0-9a-f]{40}$")


def collect_provenance() -> dict[str, Any]:
    """The provenance of a run about to start: keys git_sha, git_dirty, packages, hardware."""
    git_sha, git_dirty = git_state(_clbench_source_dir())
    return {
        "git_sha": git_sha,
        "git_dirty": git_dirty,
        "packages": package_versions(),
        "hardware": collect_hardware(),
    }


def _clbench_source_dir() -> Path:
    import clbench  # the package itself is light; imported here to keep the module standalone

    return Path(clbench.__file__).resolve().parent


def _git(args: list[str], cwd: Path) -> str | None:
    """Output of a git command, or None if git is missing, fails or hangs."""
    # Optional locks off: `git status` must not take the index lock from someone working there.
    env = {**os.environ, "GIT_OPTIONAL_LOCKS": "0", "LC_ALL": "C"}
    try:
        result = subprocess.run(
            ["git", *args],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=_GIT_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout if result.returncode == 0 else None


def git_state(source_dir: Path) -> tuple[str | None, bool | None]:
    """(HEAD sha, has uncommitted changes to tracked files) of the checkout holding `source_dir`.

    (None, None) unless `source_dir` holds files tracked by git: an installed copy of clbench in
    a virtualenv that happens to live inside some other repository must not report that
    repository's commit.
    """
    if not source_dir.is_dir():
        return None, None
    tracked = _git(["ls-files", "--", "."], source_dir)
    if not tracked or not tracked.strip():
        return None, None
    head = _git(["rev-parse", "--verify", "HEAD"], source_dir)
    sha = head.strip() if head else None
    if sha is None or not _SHA_RE.match(sha):
        return None, None
    status = _git(["status", "--porcelain", "--untracked-files=no"], source_dir)
    dirty = None if status is None else bool(status.strip())
    return sha, dirty


def strategy_source(name: str) -> dict[str, Any]:
    """Where a strategy's code comes from, stored with each run (`config.strategy_source`):
    built-in, or the third-party distribution, its version, the entry point's target, whether
    it is an editable install, for a plugin imported from a git checkout that checkout's commit
    and dirty flag, and a sha256 of its package's source files (`package_sources_sha256`), so
    that a number is traceable to the plugin's code as to clbench's."""
    from clbench.strategies import registry

    entry = registry.info(name)
    if entry.source == registry.BUILT_IN:
        return {"source": registry.BUILT_IN}
    record: dict[str, Any] = {"source": registry.THIRD_PARTY,
                              "distribution": entry.distribution, "version": entry.version,
                              "entry_point": entry.target,
                              "editable": _editable(entry.distribution)}
    module = entry.target.partition(":")[0]
    origin = _module_dir(module)
    record["git_sha"], record["git_dirty"] = git_state(origin) if origin else (None, None)
    # a version number and a commit (none outside a checkout) do not tell two states of the
    # plugin's code apart; this hash does, as clbench_sources_sha256 does for clbench's own
    record["sources_sha256"] = package_sources_sha256(module)
    return record


def package_sources_sha256(module: str) -> str | None:
    """One sha256 over the .py files of the top-level package holding `module` (every
    subfolder; sorted relative paths and contents), or of the module's file when it is a
    top-level module; None when it cannot be found. Nothing is imported."""
    import hashlib
    from importlib.util import find_spec

    top = module.split(".", 1)[0]
    try:
        spec = find_spec(top)
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    files: dict[str, Path] = {}
    if spec.submodule_search_locations:  # a package (a namespace package may span folders)
        for folder in map(Path, spec.submodule_search_locations):
            for path in folder.rglob("*.py"):
                if path.is_file():
                    files.setdefault(f"{top}/{path.relative_to(folder).as_posix()}", path)
    elif spec.origin and Path(spec.origin).is_file():
        files[Path(spec.origin).name] = Path(spec.origin)
    if not files:
        return None
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(f"{name}\0".encode())
        digest.update(files[name].read_bytes())
    return digest.hexdigest()


# The packages whose code decides a run's numbers (the leaderboard app does not).
_RESULT_PACKAGES = ("clbench", "clbench.store", "clbench.strategies", "clbench.scenarios",
                    "clbench.scenarios.proxy", "clbench.models", "clbench.data_manifests")


def sources_sha256(folders: list[Path]) -> str:
    """One sha256 over the .py and .yaml files directly in `folders` (names and contents)."""
    import hashlib

    digest = hashlib.sha256()
    for folder in folders:
        for path in sorted(folder.glob("*")):
            if path.suffix in (".py", ".yaml") and path.is_file():
                digest.update(f"{folder.name}/{path.name}\0".encode())
                digest.update(path.read_bytes())
    return digest.hexdigest()


def code_fingerprint(strategy: str) -> dict[str, Any]:
    """What identifies the code a run executes, to tell whether it changed between a run's
    start and its resumption: a hash of clbench's own sources (uncommitted edits included),
    the tracked package versions, and the strategy's source with, for a plugin package, a hash
    of its package's sources (`package_sources_sha256`)."""
    from importlib.util import find_spec

    folders = []
    for name in _RESULT_PACKAGES:
        spec = find_spec(name)
        folders += [Path(p) for p in (spec.submodule_search_locations or [])] if spec else []
    return {"clbench_sources_sha256": sources_sha256(folders), "packages": package_versions(),
            "strategy_source": strategy_source(strategy)}  # a plugin's with its sources' hash


def _editable(distribution: str | None) -> bool | None:
    """Whether pip installed the distribution in editable mode (its direct_url.json says so)."""
    if not distribution:
        return None
    try:
        text = metadata.distribution(distribution).read_text("direct_url.json")
    except metadata.PackageNotFoundError:
        return None
    if not text:
        return False
    try:
        return bool(json.loads(text).get("dir_info", {}).get("editable", False))
    except ValueError:
        return None


def _module_dir(module: str) -> Path | None:
    """The folder of an importable module's file (found without importing it)."""
    from importlib.util import find_spec

    try:
        spec = find_spec(module)
    except Exception:  # noqa: BLE001 - finding a submodule imports its package, which may raise
        return None
    return Path(spec.origin).resolve().parent if spec is not None and spec.origin else None


def package_versions(names: tuple[str, ...] = TRACKED_PACKAGES) -> dict[str, str]:
    """Installed versions of `names` from package metadata (no imports); missing ones left out."""
    versions: dict[str, str] = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def collect_hardware() -> dict[str, Any]:
    """The machine, without torch: platform, Python, CPU and memory; torch_device left None."""
    return {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        # What this process may actually use (cgroups/affinity), often fewer than cpu_count.
        "cpu_available": _cpus_available(),
        "memory_gb": _memory_gb(),
        "torch_device": None,
    }


def _read_text(path: str) -> str | None:
    try:
        return Path(path).read_text(errors="replace")
    except OSError:
        return None


def _cpu_model() -> str | None:
    cpuinfo = _read_text("/proc/cpuinfo")
    if cpuinfo:
        for line in cpuinfo.splitlines():
            key, _, value = line.partition(":")
            # x86 says "model name"; some ARM kernels only say "Hardware" or "Processor".
            if key.strip() in ("model name", "Hardware", "Processor") and value.strip():
                return value.strip()
    return platform.processor() or None


def _cpus_available() -> int | None:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count()


def _memory_gb() -> float | None:
    meminfo = _read_text("/proc/meminfo")
    if not meminfo:
        return None
    match = re.search(r"^MemTotal:\s+(\d+)\s+kB", meminfo, re.MULTILINE)
    return round(int(match.group(1)) / 1024**2, 1) if match else None


def hardware_with_torch(device: Any, hardware: dict[str, Any] | None = None) -> dict[str, Any]:
    """`hardware` (collected now if not given) with `torch_device` filled in for `device`.

    Imports torch, so only the run loop calls it. Returns a new dict; never raises.
    """
    out = dict(hardware if hardware is not None else collect_hardware())
    out["torch_device"] = _torch_device_facts(device)
    return out


def _torch_device_facts(device: Any) -> dict[str, Any]:
    facts: dict[str, Any] = {"device": str(device)}
    try:
        import torch

        dev = torch.device(device)
        facts.update(
            type=dev.type,
            torch=torch.__version__,
            torch_threads=torch.get_num_threads(),
            cuda_version=torch.version.cuda,
        )
        if dev.type == "cuda":
            facts["cuda_available"] = torch.cuda.is_available()
        if dev.type == "cuda" and torch.cuda.is_available():
            index = dev.index if dev.index is not None else torch.cuda.current_device()
            props = torch.cuda.get_device_properties(index)
            facts.update(
                name=props.name,
                capability=f"{props.major}.{props.minor}",
                memory_gb=round(props.total_memory / 1024**3, 1),
                cudnn=torch.backends.cudnn.version(),
            )
        elif dev.type == "cpu":
            facts["name"] = _cpu_model()
    # Provenance must never fail a run (odd device strings, broken CUDA installs): say why the
    # facts are incomplete instead.
    except Exception as exc:  # noqa: BLE001
        facts["error"] = f"{type(exc).__name__}: {exc}"
    return facts
