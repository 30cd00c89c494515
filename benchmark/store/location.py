"""Where the results database lives: URL resolution, the SQLite file behind a URL, and whether
that file can be written, checked without creating anything."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import quote

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from clbench.store.errors import StoreError

DEFAULT_DB = "clbench.db"
DB_HINT = "pass --db PATH (or set CLBENCH_DB) to use a results database at a writable location"


def resolve_db_url(db: str | None = None) -> str:
    """The database URL to use: the `db` argument, else env CLBENCH_DB, else ./clbench.db.

    A plain path (anything without "://") becomes an SQLite URL with the absolute path, so the
    same run recorded from two working directories lands in the file the user named.
    """
    chosen = db or os.environ.get("CLBENCH_DB") or DEFAULT_DB
    if "://" in chosen:
        return chosen
    return "sqlite:///" + str(Path(chosen).expanduser().absolute())


def parse_url(url: str) -> URL:
    try:
        return make_url(url)
    except ArgumentError as exc:
        raise StoreError(f"not a database URL: {url!r} ({exc})", hint=DB_HINT) from exc


def sqlite_path(url: URL) -> Path | None:
    """The file behind an SQLite URL, or None for in-memory and URI-style databases."""
    if url.get_backend_name() != "sqlite":
        return None
    database = url.database
    if not database or database == ":memory:" or url.query.get("uri") or database.startswith(
        "file:"
    ):
        return None
    return Path(database).expanduser()


def read_only_url(url: str) -> str:
    """The same database as `url`, opened read-only where the backend allows it (SQLite: a
    `mode=ro` URI, with which SQLite refuses writes and never creates a missing file)."""
    if not url.startswith("sqlite:///") or "mode=ro" in url:
        return url
    path = url[len("sqlite:///"):]
    if not path or path.startswith(":memory:") or path.startswith("file:") or "?" in path:
        return url
    return f"sqlite:///file:{quote(path)}?mode=ro&uri=true"


def immutable_url(path: Path) -> str:
    """An SQLite file opened as immutable: read without locks and without the -shm and -wal
    files a WAL store needs, which a read-only disk cannot hold. Only right for a file nothing
    writes (a store published on a read-only disk, with no log left beside it)."""
    return f"sqlite:///file:{quote(str(path))}?mode=ro&immutable=1&uri=true"


def wal_bytes(path: Path) -> int:
    """The size of the write-ahead log beside an SQLite file (0 if there is none)."""
    try:
        return Path(f"{path}-wal").stat().st_size
    except OSError:
        return 0


def _read_only_file_system(folder: Path) -> bool:
    try:
        return bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
    except (AttributeError, OSError):  # no statvfs (Windows), or it cannot say
        return False


def unwritable_reason(path: Path) -> str | None:
    """Why an SQLite file cannot be created or written at `path` (None if it looks fine)."""
    if path.is_dir():
        return f"{path} is a directory"
    parent = path.parent
    if not parent.exists():
        # A file somewhere up the chain makes "does not exist" misleading; name it instead.
        for ancestor in parent.parents:
            if ancestor.exists():
                if not ancestor.is_dir():
                    return f"{ancestor} is a file, not a directory"
                break
        return f"directory {parent} does not exist"
    if not parent.is_dir():
        return f"{parent} is a file, not a directory"
    if _read_only_file_system(parent):  # root may write anywhere else: not there
        return f"{parent} is on a read-only file system"
    if path.exists() and not os.access(path, os.W_OK):
        return f"no permission to write {path}"
    # SQLite writes its journal next to the file, so the directory must be writable too.
    if not os.access(parent, os.W_OK):
        return f"no permission to write in directory {parent}"
    return None


def raise_if_unwritable(path: Path) -> None:
    reason = unwritable_reason(path)
    if reason:
        raise StoreError(f"cannot write the results database at {path}: {reason}", hint=DB_HINT)


def check_writable(url: str) -> None:
    """Raise the StoreError `Store(url)` would raise for an unwritable location, without
    creating or touching anything (so a run can fail early and create the file only when it
    is about to record). Only SQLite files can be checked this way; other URLs pass."""
    path = sqlite_path(parse_url(url))
    if path is not None:
        raise_if_unwritable(path)


def raise_if_missing(path: Path) -> None:
    """For readers: there must already be a database file at `path`."""
    if not path.is_file():
        raise StoreError(
            f"no results database at {path}; run `clbench run ...` first",
            hint="or pass --db PATH / set CLBENCH_DB to the database you meant",
        )
