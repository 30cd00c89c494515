"""The connection under a `Store`: opening, one committed transaction per call, retrying a
write that finds an SQLite file locked, and closing every store a process opened.

`StoreBase` is the plumbing the writing (`clbench.store.writer`) and reading
(`clbench.store.reader`) halves of `Store` share; nothing here knows a table.
"""

from __future__ import annotations

import functools
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from sqlalchemy.exc import IntegrityError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session as DbSession
from sqlalchemy.orm import sessionmaker

from clbench.store.errors import StoreError, UncheckpointedLog
from clbench.store.location import (
    DB_HINT,
    immutable_url,
    parse_url,
    raise_if_missing,
    raise_if_unwritable,
    read_only_url,
    sqlite_path,
    unwritable_reason,
    wal_bytes,
)
from clbench.store.opening import (
    ENGINES,
    create_sqlite_file,
    make_engine,
    open_error,
    open_schema,
    refused_as_read_only,
)

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine
    from typing_extensions import Self


_OPEN: weakref.WeakSet[StoreBase] = weakref.WeakSet()  # what `close_all` closes


def close_all() -> None:
    """Close every Store this process opened (the CLI does, before it returns)."""
    import gc

    # A connection can still be held by the frames of an error just handled (a reference
    # cycle through its traceback), or by an engine that such a cycle keeps alive after its
    # Store is gone: collect the cycles so that those connections close. Only then: a full
    # collection with torch and Avalanche loaded takes 0.25 s.
    open_engines = {id(store.engine) for store in _OPEN}
    if any(_holds_connections(engine, id(engine) in open_engines) for engine in ENGINES):
        gc.collect()
    for store in list(_OPEN):
        store.close()


def _holds_connections(engine: Engine, store_open: bool) -> bool:
    """Whether `engine` holds a connection that closing the open Stores would leave open: one
    checked out, or any at all when no open Store owns the engine (assumed so for a pool that
    does not count them)."""
    pool = engine.pool
    if not (hasattr(pool, "checkedout") and hasattr(pool, "checkedin")):
        return True
    return pool.checkedout() > 0 or (not store_open and pool.checkedin() > 0)


LOCK_RETRIES = 4  # attempts of a write that finds an SQLite file locked past the busy timeout


def _locked(exc: StoreError) -> bool:
    cause = exc.__cause__
    return isinstance(cause, OperationalError) and any(
        word in str(cause.orig).lower() for word in ("database is locked", "database is busy"))


def retried_when_locked(method):
    """A write transaction that still finds an SQLite file locked after the busy timeout (many
    runs writing at once, a long reader) is tried again, after 0.5, 1, 2 s, before its error
    is raised."""
    @functools.wraps(method)
    def retrying(self, *args, **kwargs):
        for attempt in range(LOCK_RETRIES):
            try:
                return method(self, *args, **kwargs)
            except StoreError as exc:
                if attempt + 1 >= LOCK_RETRIES or not _locked(exc):
                    raise
                time.sleep(0.5 * 2**attempt)
        raise AssertionError("unreachable")

    return retrying


class StoreBase:
    """An open results database (`Store` adds what it reads and writes). Each method of a
    `Store` is one transaction, committed before it returns.

    `Store(url)` opens a database to record runs, creating it if missing. `create=False` opens
    an existing one (never creates a file) and still marks stale runs failed when it can
    write. `read_only=True` is for readers that must never write (the leaderboard app): the
    file must exist, SQLite opens it through a `mode=ro` URI, no stale runs are marked and
    every write method raises StoreError. `shown_as` is how pages name the database (by
    default its file path or URL without password).

    A reader (`create=False` or `read_only=True`) of an SQLite file on a read-only disk, which
    SQLite cannot open because a WAL store needs -shm and -wal files beside it, opens the file
    as immutable instead when no write-ahead log is left beside it (nothing can be writing it),
    and is then read-only; with a log left, that holds rows the file may lack, it raises
    UncheckpointedLog saying how to fix the published file.
    """

    def __init__(self, url: str, create: bool = True, *, read_only: bool = False,
                 shown_as: str | None = None):
        self.url = url
        self.read_only = read_only
        self.create = create and not read_only
        parsed = parse_url(url)
        self._path = sqlite_path(parsed)
        self._where = str(self._path) if self._path is not None else parsed.render_as_string()
        self.shown_as = shown_as or self._where
        if self._path is not None:
            if self.create:
                raise_if_unwritable(self._path)
                if not self._path.exists():
                    create_sqlite_file(self._path)
            else:
                raise_if_missing(self._path)
        if read_only:
            parsed = parse_url(read_only_url(url))
        self._read_only_disk: str | None = None  # why, when opened immutable (a read-only disk)
        self.engine = self._open(parsed)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        _OPEN.add(self)
        self.writable = not self.read_only and (
            self.create or self._path is None or unwritable_reason(self._path) is None)

    def _open(self, parsed) -> Engine:
        """The engine, its schema checked; on a read-only disk, the immutable fallback."""
        try:
            return self._checked_engine(parsed, self.create, file_backed=self._path is not None)
        except SQLAlchemyError as exc:
            reason = self._read_only_location(exc)
            if reason is None:
                raise open_error(exc, self._where, "write" if self.create else "read") from exc
            return self._open_immutable(reason, exc)

    def _checked_engine(self, parsed, create: bool, file_backed: bool) -> Engine:
        """An engine on `parsed` whose schema `open_schema` accepted; disposed if it did not."""
        engine = make_engine(parsed, self._where)
        try:
            open_schema(engine, self._where, create=create, file_backed=file_backed)
        except BaseException:
            engine.dispose()
            raise
        return engine

    def _read_only_location(self, exc: SQLAlchemyError) -> str | None:
        """Why the file's location cannot be written, if that is why a reader could not open
        it (None for a writer, a server database or any other failure)."""
        if self.create or self._path is None or not refused_as_read_only(exc):
            return None
        return unwritable_reason(self._path)

    def _open_immutable(self, reason: str, cause: SQLAlchemyError) -> Engine:
        assert self._path is not None
        pending = wal_bytes(self._path)
        if pending:
            raise UncheckpointedLog(
                f"cannot read the results database {self._path}: its folder cannot be written "
                f"({reason}) and its write-ahead log {self._path.name}-wal holds {pending} "
                "bytes that may not be in the file yet (it was copied or published without a "
                "checkpoint)",
                hint="on a writable copy, fold the log into the file and publish the file "
                     "alone: clbench db checkpoint --db FILE (or sqlite3 FILE 'PRAGMA "
                     "wal_checkpoint(TRUNCATE)')") from cause
        try:
            engine = self._checked_engine(parse_url(immutable_url(self._path)), False,
                                          file_backed=True)
        except SQLAlchemyError as exc:
            raise open_error(exc, self._where, "read") from exc
        self.read_only, self._read_only_disk = True, reason
        return engine

    # -- plumbing -------------------------------------------------------------------------

    @contextmanager
    def _tx(self, what: str) -> Iterator[DbSession]:
        """One committed transaction; database failures become StoreErrors that say `what`."""
        try:
            with self._sessions.begin() as session:
                yield session
        except StoreError:
            raise
        except IntegrityError as exc:
            raise StoreError(f"cannot {what}: {exc.orig}") from exc
        except SQLAlchemyError as exc:
            detail = getattr(exc, "orig", None) or exc
            raise StoreError(f"cannot {what} in {self._where}: {detail}", hint=DB_HINT) from exc

    def _refuse_if_read_only(self, what: str) -> None:
        if self._read_only_disk:
            self._refuse_unwritable(what, self._read_only_disk)
        if self.read_only:
            raise StoreError(
                f"cannot {what}: the results database {self._where} was opened read-only",
                hint="open it with Store(url) (not read_only=True) to record runs")

    def _refuse_unwritable(self, what: str, reason: str) -> None:
        raise StoreError(f"cannot {what}: the results database {self._where} cannot be "
                         f"written ({reason})", hint=DB_HINT)

    def require_writable(self, what: str) -> None:
        """Raise the StoreError a write would meet, now: for a command that writes only after
        long work (`clbench run --resume` loads a model first)."""
        self._refuse_if_read_only(what)
        if not self.writable and self._path is not None:
            self._refuse_unwritable(what, unwritable_reason(self._path) or "read-only")

    @contextmanager
    def _write(self, what: str) -> Iterator[DbSession]:
        """A write transaction; refused at once on a store opened read-only."""
        self._refuse_if_read_only(what)
        with self._tx(what) as session:
            yield session

    def _read(self, query_and_fields: tuple[Any, list[str]], what: str) -> list[dict]:
        query, fields = query_and_fields
        with self._tx(what) as session:
            rows = session.connection().execute(query).all()
        return [dict(zip(fields, row)) for row in rows]

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self.engine.dispose()
