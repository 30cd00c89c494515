"""`clbench db upgrade|current|checkpoint`: the results database's schema, bringing an older one
up to date (`clbench.store.migrations`), and making an SQLite store one file to publish.

  clbench db current [--db URL]     where the store stands: schema version, migration revision
  clbench db upgrade [--db URL]     migrate it to this clbench's schema, keeping every run
  clbench db checkpoint [--db FILE] fold the write-ahead log into the file (before publishing
                                    it, e.g. on a read-only volume, where readers cannot)
"""

from __future__ import annotations

import argparse
from pathlib import Path

from clbench.errors import UserError


def add_parser(sub, add_db) -> None:
    db = sub.add_parser("db", help="the results database's schema: where it stands, upgrade it",
                        description="A store written by an older clbench is refused until it "
                        "is upgraded; `clbench db upgrade` migrates it in one transaction, "
                        "keeping every run.")
    actions = db.add_subparsers(dest="db_command", metavar="ACTION")
    for name, text in (("current", "schema version and migration revision of the store"),
                       ("upgrade", "migrate the store to this clbench's schema"),
                       ("checkpoint", "fold an SQLite store's write-ahead log into the file, "
                        "to publish the file alone")):
        add_db(actions.add_parser(name, help=text))


def _engine(db: str | None, sqlite_only: bool = False):
    """(engine, where it is) of the store `db`; `sqlite_only` refuses a server database."""
    from clbench.store.location import parse_url, raise_if_missing, resolve_db_url, sqlite_path
    from clbench.store.opening import make_engine

    url = resolve_db_url(db)
    parsed = parse_url(url)
    path = sqlite_path(parsed)
    if path is None and sqlite_only:
        raise UserError("only an SQLite file has a write-ahead log to fold in",
                        hint="give the store's file with --db FILE")
    if path is not None:
        raise_if_missing(path)
    where = str(path) if path is not None else parsed.render_as_string()
    return make_engine(parsed, where), where


def _not_a_store(where: str) -> UserError:
    return UserError(f"{where} is not a clbench results database (no schema version)",
                     hint="give the store's path or URL with --db")


def cmd_db(args: argparse.Namespace) -> int:
    from sqlalchemy.exc import SQLAlchemyError

    import clbench.store.migrations as migrations
    from clbench.store.opening import open_error
    from clbench.store.schema import SCHEMA_VERSION

    if args.db_command not in ("current", "upgrade", "checkpoint"):
        raise UserError("no db action given",
                        hint="clbench db current|upgrade|checkpoint [--db URL]")
    if args.db_command == "checkpoint":
        return _checkpoint(args.db)
    engine, where = _engine(args.db)
    try:
        with engine.begin() as conn:
            found = migrations.current(conn)
            if found is None:
                raise _not_a_store(where)
            if args.db_command == "current" or found == migrations.head():
                state = "up to date" if found == migrations.head() else \
                    "older: run `clbench db upgrade`"
                print(f"{where}: revision {found} (this clbench: schema {SCHEMA_VERSION}, "
                      f"revision {migrations.head()}), {state}")
                return 0
            if found not in migrations.REVISION_OF_VERSION.values():
                raise UserError(f"{where} is at revision {found}, unknown to this clbench "
                                "(written by a newer one?)", hint="upgrade clbench")
            before, after = migrations.upgrade(conn)
    except SQLAlchemyError as exc:
        raise open_error(exc, where, "upgrade") from exc
    finally:
        engine.dispose()
    print(f"{where}: upgraded from revision {before} to {after} (schema {SCHEMA_VERSION}); "
          "every run was kept")
    return 0


def _checkpoint(db: str | None) -> int:
    """Fold the write-ahead log into the file. A store copied with its -wal file is refused
    by readers on a read-only disk, which cannot do this themselves."""
    from sqlalchemy.exc import SQLAlchemyError

    import clbench.store.migrations as migrations
    from clbench.store.opening import open_error

    engine, where = _engine(db, sqlite_only=True)
    try:
        with engine.connect() as conn:
            if migrations.current(conn) is None:
                raise _not_a_store(where)
            busy, _, _ = conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)").one()
    except SQLAlchemyError as exc:
        raise open_error(exc, where, "checkpoint") from exc
    finally:
        engine.dispose()  # the last connection closed: SQLite removes the -wal and -shm files
    if busy:
        raise UserError(f"{where} is being written (a run in progress?): its log could not be "
                        "folded in whole", hint="run `clbench db checkpoint` again once it ends")
    print(f"{where}: the write-ahead log is folded into the file; publish {Path(where).name} "
          "alone")
    return 0
