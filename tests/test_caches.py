"""The cache folder: where it is, its bound (least recently used entries go first, session
checkpoints never), and one warning when it cannot be written."""

from __future__ import annotations

import os
from pathlib import Path

from clbench import caches
from clbench.caches import CacheArea, cache_base, enforce_limit


def test_where_the_cache_folder_is(monkeypatch, tmp_path):
    monkeypatch.setenv("CLBENCH_CACHE_DIR", "off")
    assert cache_base() is None
    monkeypatch.setenv("CLBENCH_CACHE_DIR", str(tmp_path / "c"))
    assert cache_base() == tmp_path / "c"
    monkeypatch.delenv("CLBENCH_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_base() == tmp_path / "xdg" / "clbench"


def _entry(folder: Path, name: str, size: int, used: float) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(b"x" * size)
    os.utime(path, (used, used))
    return path


def test_the_bound_deletes_the_least_recently_used_entries_first(tmp_path):
    old = _entry(tmp_path / "images", "old.u8", 400, 1000)
    middle = _entry(tmp_path / "zero-shot", "middle.pt", 400, 2000)
    recent = _entry(tmp_path / "text", "recent.pt", 400, 3000)
    checkpoint = _entry(tmp_path / "checkpoints" / "run", "session-1.pt", 5000, 10)
    writing = _entry(tmp_path / "images", ".new.u8.tmp", 5000, 10)  # another run's, unfinished
    assert enforce_limit(tmp_path, 900) == [old]
    assert not old.exists() and middle.exists() and recent.exists()
    assert enforce_limit(tmp_path, 0, keep=recent) == [middle]
    assert recent.exists() and checkpoint.exists() and writing.exists()


def test_a_read_refreshes_an_entry_and_a_write_keeps_the_bound(tmp_path, monkeypatch):
    area = CacheArea(tmp_path, "text")
    first = _entry(tmp_path / "text", "first.pt", 600, 1000)
    second = _entry(tmp_path / "text", "second.pt", 600, 2000)
    assert area.existing("first.pt") == first  # used now: the most recent
    monkeypatch.setenv("CLBENCH_CACHE_MAX_GB", str(1500 / 2**30))
    written = area.write("third.pt", lambda handle: handle.write(b"y" * 600))
    assert written.exists() and first.exists() and not second.exists()


def test_a_bad_bound_warns_and_uses_the_default(monkeypatch, capsys):
    monkeypatch.setenv("CLBENCH_CACHE_MAX_GB", "lots")
    assert caches.limit_bytes() == int(caches.DEFAULT_LIMIT_GB * 2**30)
    assert "$CLBENCH_CACHE_MAX_GB='lots' is not a size in GB" in capsys.readouterr().err


def test_an_unwritable_folder_is_said_once_for_every_kind(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    areas = [CacheArea(blocker / "cache", kind) for kind in caches.KINDS]
    for area in areas:
        assert area.write("entry.pt", lambda handle: handle.write(b"z")) is None
        assert not area.enabled
    err = capsys.readouterr().err
    assert err.count("cannot write the cache under") == 1 and "goes on uncached" in err
    assert not CacheArea(blocker / "cache", "text").enabled  # a later area of the same folder
