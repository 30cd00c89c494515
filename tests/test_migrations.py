"""Schema migrations: a store written at every past schema version of this repository upgrades
to the current one with every run kept, is refused (unchanged) until it is, and then takes
what the new schema adds. Past versions: `tests/data/store_schema<N>.sql`, dumps of stores
written by that version's code."""

from __future__ import annotations

import hashlib
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from clbench.cli.main import main
from clbench.store import SCHEMA_VERSION, Store
from clbench.store.errors import StoreError

DATA = Path(__file__).parent / "data"
PAST_VERSIONS = sorted(int(p.stem.removeprefix("store_schema"))
                       for p in DATA.glob("store_schema*.sql"))


def restore(version: int, path: Path) -> Path:
    with closing(sqlite3.connect(path)) as con, con:
        con.executescript((DATA / f"store_schema{version}.sql").read_text())
    return path


def shape(path: Path) -> dict:
    """Tables with their columns (name, type, not null, primary key) and the indexes."""
    with closing(sqlite3.connect(path)) as con, con:
        tables = [r[0] for r in con.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
        return {"tables": {t: sorted(tuple(c[1:3]) + (c[3], c[5]) for c in
                                     con.execute(f"PRAGMA table_info({t})"))
                           for t in tables},
                "indexes": sorted(r[0] for r in con.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'index'"))}


def rows(path: Path, table: str) -> list[tuple]:
    with closing(sqlite3.connect(path)) as con, con:
        return con.execute(f"SELECT * FROM {table} ORDER BY 1").fetchall()


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_every_past_version_is_covered():
    assert list(range(1, SCHEMA_VERSION)) == PAST_VERSIONS


@pytest.mark.parametrize("version", PAST_VERSIONS)
def test_a_past_store_upgrades_keeping_every_run(version, tmp_path, capsys):
    old = restore(version, tmp_path / "old.db")
    runs_before = rows(old, "runs")
    evaluations_before = rows(old, "evaluations")
    unchanged = digest(old)
    # refused, untouched, with the command to run
    with pytest.raises(StoreError, match=f"schema version {version}, older") as refused:
        Store(f"sqlite:///{old}", create=False)
    assert f"clbench db upgrade --db {old}" in refused.value.hint
    assert main(["runs", "--db", str(old)]) == 2
    assert "clbench db upgrade" in capsys.readouterr().err
    assert digest(old) == unchanged

    assert main(["db", "upgrade", "--db", str(old)]) == 0
    assert "every run was kept" in capsys.readouterr().out
    fresh = tmp_path / "fresh.db"
    Store(f"sqlite:///{fresh}").close()
    assert shape(old) == shape(fresh)  # the same tables, columns and indexes as a new store
    # every row kept, each with the new column empty
    assert [r[:len(runs_before[0])] for r in rows(old, "runs")] == runs_before
    assert rows(old, "evaluations") == evaluations_before
    assert main(["db", "current", "--db", str(old)]) == 0
    assert "up to date" in capsys.readouterr().out
    assert main(["db", "upgrade", "--db", str(old)]) == 0  # a second upgrade changes nothing
    # the upgraded store takes what the new schema adds
    with Store(f"sqlite:///{old}") as store:
        run_id = store.list_runs()[0]["id"]
        store.beat(run_id)
        store.add_predictions(run_id, [{"after_session": 0, "eval_set": "syn",
                                        "predicted": [1, 0], "labels": [1, 1]}])
        assert store.predictions_of(run_id)[0]["labels"] == [1, 1]
        assert len(store.list_runs()) == len(runs_before)


def test_db_commands_say_what_is_wrong(tmp_path, capsys):
    assert main(["db", "current", "--db", str(tmp_path / "none.db")]) == 2
    assert "no results database" in capsys.readouterr().err.lower()
    other = tmp_path / "other.db"
    with closing(sqlite3.connect(other)) as con, con:
        con.execute("CREATE TABLE notes (text TEXT)")
    assert main(["db", "upgrade", "--db", str(other)]) == 2
    assert "is not a clbench results database" in capsys.readouterr().err
    assert main(["db"]) == 2
    new = tmp_path / "new.db"
    Store(f"sqlite:///{new}").close()
    assert main(["db", "current", "--db", str(new)]) == 0
    assert "up to date" in capsys.readouterr().out


def version_table(url: str) -> tuple[list, list]:
    """The columns (name, type, nullable, primary key) of Alembic's version table, and its rows."""
    from sqlalchemy import create_engine, inspect, text

    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            columns = inspect(conn).get_columns("alembic_version")
            key = inspect(conn).get_pk_constraint("alembic_version")
            rows = conn.execute(text("SELECT version_num FROM alembic_version")).all()
    finally:
        engine.dispose()
    return ([(c["name"], str(c["type"]), c["nullable"]) for c in columns] + [key],
            [tuple(r) for r in rows])


def alembic_stamped(url: str) -> tuple[list, list]:
    """What `alembic stamp head` itself writes into an empty database."""
    from alembic import command
    from sqlalchemy import create_engine

    from clbench.store import migrations

    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            command.stamp(migrations._config(conn), "head")
    finally:
        engine.dispose()
    return version_table(url)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_new_store_is_stamped_as_alembic_stamps_its_head(backend, tmp_path, request):
    """clbench writes the head revision itself (no Alembic import on a new store): the same
    table and row as Alembic's, at the revision Alembic computes as head."""
    from clbench.store import migrations

    if backend == "sqlite":
        url, empty = f"sqlite:///{tmp_path / 'new.db'}", f"sqlite:///{tmp_path / 'empty.db'}"
    else:
        url = request.getfixturevalue("pg_url")
        empty = url  # Alembic stamps the same database after the store's table is dropped
    with Store(url):
        pass
    ours = version_table(url)
    assert ours[1] == [(migrations.head(),)]
    if backend == "postgresql":
        from sqlalchemy import create_engine, text

        engine = create_engine(url)
        with engine.begin() as conn:
            conn.execute(text("DROP TABLE alembic_version"))
        engine.dispose()
    assert alembic_stamped(empty) == ours
