"""Opening a results database: the engine, creating a new SQLite file whole, and checking that
what is found is a clbench database of this schema version before anything is written.

A database that is not clbench's (another application's SQLite file, an empty file someone
made) is refused before any DDL, so `--db` pointing at the wrong file never changes it.
"""

from __future__ import annotations

import os
import uuid
import weakref
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event, inspect, select, update
from sqlalchemy.engine import URL, Connection, Engine
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError

from clbench.store.errors import StoreError
from clbench.store.location import DB_HINT
from clbench.store.schema import (
    SCHEMA_VERSION,
    Base,
    SchemaInfo,
    json_dumps,
)

# How long an SQLite connection waits for another writer's lock before "database is locked"
# (then `Store` retries the whole transaction a few times).
SQLITE_BUSY_TIMEOUT_S = 30.0


# every engine made, while it lives: `close_all` looks for connections that no open Store can
# close (an engine kept alive only by a reference cycle, such as a handled error's frames)
ENGINES: weakref.WeakSet[Engine] = weakref.WeakSet()


def make_engine(parsed: URL, where: str) -> Engine:
    kwargs: dict[str, Any] = {"json_serializer": json_dumps}
    sqlite = parsed.get_backend_name() == "sqlite"
    if sqlite:
        # Wait for a concurrent writer (another run, a reader marking stale runs) instead of
        # failing at once with "database is locked".
        kwargs["connect_args"] = {"timeout": SQLITE_BUSY_TIMEOUT_S}
    try:
        engine = create_engine(parsed, **kwargs)
    except (NoSuchModuleError, ImportError, ArgumentError) as exc:
        raise StoreError(
            f"cannot open the results database {where}: {exc}",
            hint="install the database driver, or " + DB_HINT,
        ) from exc
    if sqlite:
        event.listen(engine, "connect", _enable_sqlite_foreign_keys)
    ENGINES.add(engine)
    return engine


def _enable_sqlite_foreign_keys(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def create_tables(conn: Connection) -> None:
    """A new store, whole, at the current schema (and its migration revision)."""
    from clbench.store.migrations import stamp_head

    Base.metadata.create_all(conn)
    conn.execute(SchemaInfo.__table__.insert().values(
        key="schema_version", value=str(SCHEMA_VERSION)))
    stamp_head(conn)


def create_sqlite_file(path: Path) -> None:
    """A new store file at `path`, appearing whole: built under a temporary name next to it and
    linked into place. Other processes thus see no file or a complete store, never an empty
    file, so an existing empty file can be refused as not clbench's. If another process got
    there first, its file is kept. The file is in WAL mode (a setting stored in it): readers, the
    leaderboard among them, never block a run's writes, nor a run their reads."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.new")
    engine = make_engine(URL.create("sqlite", database=str(tmp)), str(path))
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA journal_mode=WAL")
        with engine.begin() as conn:
            create_tables(conn)
        engine.dispose()
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass  # another run created it meanwhile
        except OSError:
            # No hard links on this file system: rename, unless the file appeared meanwhile.
            if not path.exists():
                os.replace(tmp, path)
    except SQLAlchemyError as exc:
        detail = str(getattr(exc, "orig", None) or exc).strip()
        raise StoreError(
            f"cannot write the results database at {path}: {detail}", hint=DB_HINT
        ) from exc
    finally:
        engine.dispose()
        for leftover in (tmp, *(tmp.with_name(tmp.name + end) for end in ("-journal", "-wal",
                                                                              "-shm"))):
            try:
                leftover.unlink()
            except FileNotFoundError:
                pass


def open_schema(engine: Engine, where: str, *, create: bool, file_backed: bool) -> None:
    """Create the tables of a new database if `create` (a server or in-memory database; a new
    SQLite file was created whole by `create_sqlite_file`), then insist on this schema version.

    A database without clbench's `schema_info` is refused before any change when it is a file
    (another program's, or an empty file) or when it has tables of its own.
    """
    with engine.begin() as conn:
        if create and engine.dialect.name == "sqlite":
            # Take the write lock first: two runs starting on a fresh database would otherwise
            # both try to create the tables, and pysqlite would commit DDL piecemeal.
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        tables = set(inspect(conn).get_table_names())
        if "schema_info" not in tables:
            if not create or file_backed or tables:
                raise StoreError(_not_clbench(where, tables), hint=DB_HINT)
            create_tables(conn)
        found = conn.execute(
            select(SchemaInfo.value).where(SchemaInfo.key == "schema_version")
        ).scalar_one_or_none()
        check_version(where, found)
        if create:
            # Tables that exist already need no write, so write once to prove we can, now
            # rather than at the end of the first training session.
            conn.execute(
                update(SchemaInfo)
                .where(SchemaInfo.key == "schema_version")
                .values(value=str(SCHEMA_VERSION))
            )


def _not_clbench(where: str, tables: set[str]) -> str:
    if "runs" in tables:
        return f"{where} has a runs table but no schema version; it was not written by clbench"
    if tables:
        shown = ", ".join(sorted(tables)[:5]) + (" ..." if len(tables) > 5 else "")
        return (f"{where} is not a clbench results database (no schema_info table; it holds "
                f"tables {shown}); it was left unchanged")
    return (f"{where} is not a clbench results database (no schema_info table; it is empty, "
            "not written by clbench); it was left unchanged")


def check_version(where: str, found: str | None) -> None:
    try:
        version = int(found) if found is not None else None
    except ValueError:
        version = None
    if version == SCHEMA_VERSION:
        return
    if version is None:
        raise StoreError(
            f"{where} has no readable schema version (found {found!r}); "
            f"this clbench expects schema version {SCHEMA_VERSION}",
            hint=DB_HINT,
        )
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"{where} has results schema version {version}, newer than the version "
            f"{SCHEMA_VERSION} this clbench expects",
            hint="upgrade clbench to read it, or " + DB_HINT,
        )
    raise StoreError(
        f"{where} has results schema version {version}, older than the version "
        f"{SCHEMA_VERSION} this clbench expects; it was left unchanged",
        hint=f"upgrade it (keeps every run; back the file up first if you like): clbench db "
             f"upgrade --db {where}",
    )


# SQLite's refusals of a file it cannot open for writing, nor read without writing (a WAL store
# whose -shm file cannot be made): by error name (Python >= 3.11), else by their text
_READ_ONLY_ERRORS = ("SQLITE_CANTOPEN", "SQLITE_READONLY")
_READ_ONLY_TEXTS = ("unable to open database file", "readonly database")


def refused_as_read_only(exc: SQLAlchemyError) -> bool:
    """Whether SQLite refused to open a file in a way a read-only location explains."""
    orig = getattr(exc, "orig", None)
    name = getattr(orig, "sqlite_errorname", None)
    if name:
        return name.startswith(_READ_ONLY_ERRORS)
    text = str(orig or exc).lower()
    return any(words in text for words in _READ_ONLY_TEXTS)


def open_error(exc: SQLAlchemyError, where: str, verb: str) -> StoreError:
    detail = str(getattr(exc, "orig", None) or exc).strip()
    if "not a database" in detail:
        return StoreError(f"{where} is not an SQLite database ({detail})", hint=DB_HINT)
    return StoreError(f"cannot {verb} the results database at {where}: {detail}", hint=DB_HINT)
