"""The on-disk cache folder that later sessions and later runs read instead of recomputing.

Three kinds of entry live under it, each in its own subfolder: zero-shot evaluations
(`clbench.training.eval_cache`), preprocessed eval images (`clbench.training.image_cache`) and text heads
(`clbench.training.text_cache`). They share what this module gives:

- where: $CLBENCH_CACHE_DIR (`off` disables every cache), else $XDG_CACHE_HOME/clbench or
  ~/.cache/clbench;
- safe sharing: an entry is written to a temporary file and renamed (`write_atomically`), so
  concurrent runs see a whole entry or none, and two runs writing the same key write the same
  bytes;
- a bound: after every write the least recently used entries are deleted until the folder holds
  at most $CLBENCH_CACHE_MAX_GB (32 by default); a read refreshes an entry's time;
- never a failed run: an unwritable or full folder is one warning, and the run goes on uncached;
- integrity: a tensor entry (`save_tensors`/`load_tensors`) holds its key and the sha256 of its
  values; one that does not match is reported, deleted and computed again.

Session checkpoints can live under the same folder (`checkpoints/`); the bound never touches them.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from clbench.files import write_atomically
from clbench.hashing import tensors_sha256

ENV = "CLBENCH_CACHE_DIR"
LIMIT_ENV = "CLBENCH_CACHE_MAX_GB"
DEFAULT_LIMIT_GB = 32.0
KINDS = ("zero-shot", "images", "text")  # the subfolders the bound may evict from


def cache_base() -> Path | None:
    """The cache folder, or None when caching is switched off."""
    raw = os.environ.get(ENV)
    if raw is not None and raw.strip().lower() in ("off", "none", "0", ""):
        return None
    if raw:
        return Path(raw).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "clbench"


def warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


def limit_bytes() -> int:
    raw = os.environ.get(LIMIT_ENV, "").strip()
    try:
        gb = float(raw) if raw else DEFAULT_LIMIT_GB
        if gb < 0:
            raise ValueError
    except ValueError:
        warn(f"${LIMIT_ENV}={raw!r} is not a size in GB: using {DEFAULT_LIMIT_GB:g}")
        gb = DEFAULT_LIMIT_GB
    return int(gb * 2**30)


def _entries(base: Path) -> list[tuple[float, int, Path]]:
    """(last use, size, path) of every whole entry under the cache kinds' folders."""
    found = []
    for kind in KINDS:
        for path in (base / kind).glob("*"):
            if path.name.startswith("."):  # a temporary file being written
                continue
            try:
                stat = path.stat()
            except OSError:  # deleted by a concurrent run meanwhile
                continue
            found.append((stat.st_mtime, stat.st_size, path))
    return found


def enforce_limit(base: Path, limit: int, keep: Path | None = None) -> list[Path]:
    """Delete the least recently used entries until the kinds' folders hold at most `limit`
    bytes (never `keep`, the entry just written); returns what was deleted."""
    entries = sorted(_entries(base))
    total = sum(size for _, size, _ in entries)
    deleted = []
    for _, size, path in entries:
        if total <= limit:
            break
        if keep is not None and path == keep:
            continue
        try:
            path.unlink()
        except OSError:
            continue
        total -= size
        deleted.append(path)
    return deleted


_failed_bases: set[Path] = set()  # cache folders this process could not write (warned once)


class CacheArea:
    """One kind of entry (a subfolder of the cache folder): reading, writing, forgetting."""

    def __init__(self, base: Path | None, kind: str):
        assert kind in KINDS, kind
        self.base = base
        self.kind = kind
        unwritable = base is None or base in _failed_bases
        self.folder = None if unwritable else base / kind

    @property
    def enabled(self) -> bool:
        return self.folder is not None

    def path(self, name: str) -> Path | None:
        return self.folder / name if self.folder is not None else None

    def existing(self, name: str) -> Path | None:
        """The entry's path when it exists (its use time refreshed for the bound), else None."""
        path = self.path(name)
        if path is None or not path.exists():
            return None
        try:
            os.utime(path)
        except OSError:
            pass
        return path

    def write(self, name: str, write: Callable[[BinaryIO], object]) -> Path | None:
        """Write an entry atomically and keep the folder within its bound; on an unwritable or
        full folder: one warning, this cache switched off for the rest of the run, None."""
        if self.folder is None or self.base is None:
            return None
        path = self.folder / name
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            write_atomically(path, write)
        except OSError as err:
            self.disable(err)
            return None
        enforce_limit(self.base, limit_bytes(), keep=path)
        return path

    def disable(self, err: OSError) -> None:
        """Stop writing (and reading) this kind for the rest of the process; said once per
        cache folder, not once per kind."""
        if self.base not in _failed_bases:
            _failed_bases.add(self.base)
            reason = os.strerror(err.errno) if err.errno else str(err)
            warn(f"cannot write the cache under {self.base} ({reason}): this run goes on "
                 f"uncached (set ${ENV} to a writable folder, or 'off')")
        self.folder = None

    def discard(self, path: Path, why: str) -> None:
        """Report a corrupt entry and delete it, so that it is computed again."""
        warn(f"{why}: computed again")
        try:
            path.unlink()
        except OSError:
            pass


def save_tensors(area: CacheArea, key: str, tensors: dict, **info) -> None:
    """Store named tensors (and JSON-like `info`) as the entry `key`, with their sha256."""
    import torch

    stored = {"key": key, "tensors": tensors, "info": info,
              "sha256": tensors_sha256(sorted(tensors.items()))}
    area.write(f"{key}.pt", lambda handle: torch.save(stored, handle))


def load_tensors(area: CacheArea, key: str, what: str) -> tuple[dict, dict] | None:
    """(tensors, info) of the entry `key`; None when it is absent, or corrupt (`what` names it
    in the warning; the entry is deleted so that it is computed again)."""
    import torch

    path = area.existing(f"{key}.pt")
    if path is None:
        return None
    try:
        stored = torch.load(path, map_location="cpu", weights_only=True)
        tensors = stored["tensors"]
        intact = (stored["key"] == key
                  and stored["sha256"] == tensors_sha256(sorted(tensors.items())))
    except Exception:  # noqa: BLE001 - any unreadable entry is a corrupt one
        intact = False
    if not intact:
        area.discard(path, f"the cached {what} {path} is corrupt")
        return None
    return tensors, stored["info"]
