"""`clbench db upgrade|current`: the results database's schema, and bringing an older one up to
date (`clbench.store.migrations`).

  clbench db current [--db URL]     where the store stands: schema version, migration revision
  clbench db upgrade [--db URL]     migrate it to this clbench's schema, keeping every run
"""

from __future__ import annotations

import argparse

from clbench.errors import UserError


def add_parser(sub, add_db) -> None:
    db = sub.add_parser("db", help="the results database's schema: where it stands, upgrade it",
                        description="A store written by an older clbench is refused until it "
                        "is upgraded; `clbench db upgrade` migrates it in one transaction, "
                        "keeping every run.")
    actions = db.add_subparsers(dest="db_command", metavar="ACTION")
    for name, text in (("current", "schema version and migration revision of the store"),
                       ("upgrade", "migrate the store to this clbench's schema")):
        add_db(actions.add_parser(name, help=text))


def _engine(db: str | None):
    from clbench.store.location import parse_url, raise_if_missing, resolve_db_url, sqlite_path
    from clbench.store.opening import make_engine

    url = resolve_db_url(db)
    parsed = parse_url(url)
    path = sqlite_path(parsed)
    if path is not None:
        raise_if_missing(path)
    where = str(path) if path is not None else parsed.render_as_string()
    return make_engine(parsed, where), where


def cmd_db(args: argparse.Namespace) -> int:
    from sqlalchemy.exc import SQLAlchemyError

    import clbench.store.migrations as migrations
    from clbench.store.opening import open_error
    from clbench.store.schema import SCHEMA_VERSION

    if args.db_command not in ("current", "upgrade"):
        raise UserError("no db action given", hint="clbench db current|upgrade [--db URL]")
    engine, where = _engine(args.db)
    try:
        with engine.begin() as conn:
            found = migrations.current(conn)
            if found is None:
                raise UserError(f"{where} is not a clbench results database (no schema "
                                "version)", hint="give the store's path or URL with --db")
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
