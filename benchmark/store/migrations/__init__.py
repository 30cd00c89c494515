"""Schema migrations of the results database (Alembic).

`clbench db upgrade` brings a store written by an earlier clbench to the current schema;
`clbench db current` says where a store stands. A store is never changed silently: opening one
at an older schema version is refused with the command to run (`opening.check_version`).

Revisions (`versions/`), one per schema version, each with the `schema_info` version it
reaches:
- 0001: schema 1, the tables as clbench first wrote them (runs, sessions, evaluations);
- 0002: schema 2, per-sample predictions and reproduction records (tables), and the runs'
  heartbeat (`runs.heartbeat_at`).
A store of schema 1 carries no Alembic revision: it is stamped 0001 first, then upgraded. A new
store is created whole at the head and stamped there (`stamp_head`).
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import (
    Column,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    inspect,
    select,
    update,
)
from sqlalchemy.engine import Connection

HERE = Path(__file__).resolve().parent
# schema_info version -> the revision that reaches it
REVISION_OF_VERSION = {1: "0001", 2: "0002"}
VERSION_TABLE = "alembic_version"  # where Alembic keeps a store's revision


def _config(conn: Connection):
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(HERE))
    config.attributes["connection"] = conn  # env.py runs the migrations on this connection
    return config


def head() -> str:
    from alembic.script import ScriptDirectory

    return ScriptDirectory(str(HERE)).get_current_head()


def current(conn: Connection) -> str | None:
    """The store's Alembic revision; for a schema-1 store (none recorded) that of its
    `schema_info` version."""
    from alembic.runtime.migration import MigrationContext

    revision = MigrationContext.configure(conn).get_current_revision()
    return revision or REVISION_OF_VERSION.get(_schema_version(conn) or 0)


def _schema_version(conn: Connection) -> int | None:
    from clbench.store.schema import SchemaInfo

    if not inspect(conn).has_table("schema_info"):
        return None
    found = conn.execute(select(SchemaInfo.value).where(
        SchemaInfo.key == "schema_version")).scalar_one_or_none()
    try:
        return int(found) if found is not None else None
    except ValueError:
        return None


def stamp_head(conn: Connection) -> None:
    """Record a store created whole at the current schema as being at the head revision.

    Written here as `alembic stamp head` writes it into a new store (its version table, one
    row), without importing Alembic: 0.36 s of the first command on a new store. The test
    suite checks that the row and table are Alembic's and that the revision is its head."""
    from clbench.store.schema import SCHEMA_VERSION

    version = Table(VERSION_TABLE, MetaData(), Column("version_num", String(32), nullable=False),
                    PrimaryKeyConstraint("version_num", name=f"{VERSION_TABLE}_pkc"))
    version.create(conn)
    conn.execute(version.insert().values(version_num=REVISION_OF_VERSION[SCHEMA_VERSION]))


def upgrade(conn: Connection) -> tuple[str | None, str]:
    """Upgrade the store to the head revision, in the connection's transaction; returns
    (revision before, revision after)."""
    from alembic import command
    from alembic.runtime.migration import MigrationContext

    from clbench.store.schema import SCHEMA_VERSION, SchemaInfo

    before = current(conn)
    if MigrationContext.configure(conn).get_current_revision() is None and before:
        command.stamp(_config(conn), before)  # a schema-1 store: where its version says
    command.upgrade(_config(conn), "head")
    conn.execute(update(SchemaInfo).where(SchemaInfo.key == "schema_version")
                 .values(value=str(SCHEMA_VERSION)))
    return before, head()
