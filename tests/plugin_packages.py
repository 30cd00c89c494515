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
