"""The results store: round trips, true run statuses, refusals with useful messages.

Every test uses its own SQLite file under tmp_path; nothing here needs torch or a network.
"""

from __future__ import annotations

import math
import os
import socket
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from contextlib import closing
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace

import pytest

import clbench.store.liveness as liveness
import clbench.store.writes as store_writes
from clbench.errors import UserError
from clbench.hashing import canonical_hash
from clbench.store import (
    DEFAULT_DB,
    SCHEMA_VERSION,
    InvalidRecord,
    Store,
    StoreError,
    UnknownRun,
    check_writable,
    resolve_db_url,
)

PROVENANCE = {
    "git_sha": "a" * 40,
    "git_dirty": True,
    "packages": {"sqlalchemy": "2.1.0", "torch": "2.14.1"},
    "hardware": {"cpu_count": 2, "torch_device": {"device": "cpu", "torch_threads": 2}},
}


def run_kwargs(**overrides):
    kwargs = {
        "strategy": "lorsu",
        "strategy_config": {"rank": 64, "heads": {"top_k": 2, "layers": [1, 2, 3]}},
        "scenario": "tsi-20shot",
        "scenario_manifest_hash": "f00d",
        "model_arch": "ViT-B-16",
        "model_pretrained": "openai",
        "model_checkpoint_sha256": None,
        "seed": 7,
        "config": {"strategy": "lorsu", "epochs": 3, "nested": {"x": [1, 2.5, None]}},
        "config_hash": "c0ffee",
        "training_config": {"lr": 1e-5, "batch_size": 32},
        "provenance": PROVENANCE,
    }
    kwargs.update(overrides)
    return kwargs


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "results.db"


@pytest.fixture
def store(db_path: Path):
    s = Store(resolve_db_url(str(db_path)))
    yield s
    s.close()


def sql(db_path: Path, statement: str, params: tuple = ()) -> list[tuple]:
    """Change the file behind the store's back, as another program (or a crash) would."""
    with closing(sqlite3.connect(db_path)) as conn, conn:
        rows = conn.execute(statement, params).fetchall()
    conn.close()
    return rows


# -- round trip ---------------------------------------------------------------------------


def test_round_trip_keeps_every_value(db_path: Path, store: Store):
    run_id = store.create_run(**run_kwargs())
    store.set_params(run_id, trainable_params=1234, total_params=150_000_000)
    # Written out of order on purpose: reads come back ordered by index.
    store.add_session(
        run_id, index=2, classes=["dog", "cat"], sample_ids=["s3", "s4"], train_time_s=2.5,
        peak_memory_mb=812.0, final_loss=0.25, trainable_params=1234,
        facts={"heads": {"layer_11": [0, 3]}, "mask_density": 0.1},
    )
    store.add_session(
        run_id, index=1, classes=["stop sign"], sample_ids=["s1", "s2"], train_time_s=1.5
    )
    store.add_evaluations(run_id, [
        {"after_session": 1, "eval_set": "target", "subset": "session:1", "accuracy": 0.8, "n": 5},
        {"after_session": 0, "eval_set": "target", "subset": "all", "accuracy": 0.1, "n": 50},
        {"after_session": 1, "eval_set": "imagenet", "subset": "all", "accuracy": 0.7, "n": 20},
        {"after_session": 1, "eval_set": "target", "subset": "all", "accuracy": 0.6, "n": 50},
    ])
    summary = {"final_accuracy": {"target": 0.6}, "forgetting": None, "curve": [0.1, 0.6]}
    store.complete_run(run_id, summary=summary, total_time_s=12.5)
    store.close()

    # A fresh connection proves the values were committed, not just cached.
    with Store(resolve_db_url(str(db_path)), create=False) as reader:
        run = reader.get_run(run_id)

    expected = run_kwargs()
    for key in ("strategy", "strategy_config", "scenario", "scenario_manifest_hash",
                "model_arch", "model_pretrained", "model_checkpoint_sha256", "seed", "config",
                "config_hash", "training_config"):
        assert run[key] == expected[key], key
    for key in ("git_sha", "git_dirty", "packages", "hardware"):
        assert run[key] == PROVENANCE[key], key
    assert run["id"] == run_id and len(run_id) == 32
    assert run["status"] == "completed" and run["error"] is None
    assert run["summary"] == summary
    assert run["total_time_s"] == 12.5
    assert (run["trainable_params"], run["total_params"]) == (1234, 150_000_000)
    assert run["strategy_config_hash"] == canonical_hash(expected["strategy_config"])
    assert run["model"] == "ViT-B-16@openai"
    assert run["pid"] == os.getpid() and run["hostname"] == socket.gethostname()

    created = datetime.fromisoformat(run["created_at"])
    finished = datetime.fromisoformat(run["finished_at"])
    assert created.utcoffset() == timedelta(0)
    assert abs(datetime.now(timezone.utc) - created) < timedelta(minutes=5)
    assert run["started_at"] == run["created_at"] and finished >= created

    assert [s["index"] for s in run["sessions"]] == [1, 2]
    second = run["sessions"][1]
    assert second["classes"] == ["dog", "cat"] and second["sample_ids"] == ["s3", "s4"]
    assert second["facts"] == {"heads": {"layer_11": [0, 3]}, "mask_density": 0.1}
    assert (second["peak_memory_mb"], second["final_loss"]) == (812.0, 0.25)
    assert run["sessions"][0]["facts"] == {} and run["sessions"][0]["final_loss"] is None

    assert [(e["after_session"], e["eval_set"], e["subset"]) for e in run["evaluations"]] == [
        (0, "target", "all"),
        (1, "imagenet", "all"),
        (1, "target", "all"),
        (1, "target", "session:1"),
    ]
    assert run["evaluations"][0] == {
        "after_session": 0, "eval_set": "target", "subset": "all", "accuracy": 0.1, "n": 50
    }


def test_numpy_like_values_are_stored_as_plain_json(store: Store):
    class Scalar:  # stands in for a numpy scalar: JSON-able only through .tolist()
        def __init__(self, value):
            self.value = value

        def tolist(self):
            return self.value

    run_id = store.create_run(**run_kwargs())
    store.add_session(run_id, index=1, classes=["a"], sample_ids=[1, 2], train_time_s=1.0,
                      facts={"density": Scalar(0.5), "path": Path("/x")})
    session = store.get_run(run_id)["sessions"][0]
    assert session["facts"] == {"density": 0.5, "path": "/x"}
    assert session["sample_ids"] == ["1", "2"]


def test_list_runs_newest_first_with_listing_fields(store: Store):
    ids = []
    for seed in range(3):
        ids.append(store.create_run(**run_kwargs(seed=seed, model_pretrained=None)))
        time.sleep(0.002)  # distinct timestamps even on coarse clocks
    store.fail_run(ids[0], "boom")

    runs = store.list_runs()
    assert [r["id"] for r in runs] == ids[::-1]
    assert set(runs[0]) == {"id", "status", "strategy", "scenario", "model", "seed",
                            "created_at", "finished_at", "total_time_s", "error", "summary",
                            "strategy_source"}
    assert runs[0]["model"] == "ViT-B-16"  # no "@" without a pretrained tag
    assert runs[-1]["status"] == "failed" and runs[-1]["error"] == "boom"
    assert [r["id"] for r in store.list_runs(limit=2)] == ids[:0:-1]


def test_fail_run_keeps_error_and_sets_status(store: Store):
    run_id = store.create_run(**run_kwargs())
    store.add_session(run_id, index=1, classes=["a"], sample_ids=["x"], train_time_s=1.0)
    assert store.get_run(run_id)["status"] == "running"
    store.fail_run(run_id, "TrainingDiverged: loss is nan at session 2")

    run = store.get_run(run_id)
    assert run["status"] == "failed"
    assert run["error"] == "TrainingDiverged: loss is nan at session 2"
    assert run["finished_at"] is not None
    assert len(run["sessions"]) == 1  # what was written before the failure stays

    with pytest.raises(UnknownRun):
        store.fail_run("0" * 32, "no such run")


# -- refusals -----------------------------------------------------------------------------


@pytest.mark.parametrize("accuracy", [1.5, -0.01, math.nan])
def test_accuracy_outside_unit_interval_is_rejected(store: Store, accuracy: float):
    run_id = store.create_run(**run_kwargs())
    good = {"after_session": 0, "eval_set": "target", "subset": "all", "accuracy": 0.5, "n": 4}
    bad = {**good, "subset": "session:1", "accuracy": accuracy}
    with pytest.raises(InvalidRecord, match="accuracy"):
        store.add_evaluations(run_id, [good, bad])
    # All or nothing: the valid row before the bad one was not written either.
    assert store.get_run(run_id)["evaluations"] == []
    assert issubclass(InvalidRecord, StoreError) and issubclass(InvalidRecord, ValueError)


def test_malformed_evaluation_rows_are_rejected(store: Store):
    run_id = store.create_run(**run_kwargs())
    row = {"after_session": 0, "eval_set": "target", "subset": "all", "accuracy": 0.5, "n": 4}
    with pytest.raises(InvalidRecord, match="subset"):
        store.add_evaluations(run_id, [{**row, "subset": "session-1"}])
    with pytest.raises(InvalidRecord, match="lacks n"):
        store.add_evaluations(run_id, [{k: v for k, v in row.items() if k != "n"}])
    with pytest.raises(UnknownRun):
        store.add_evaluations("f" * 32, [row])


def test_duplicates_and_unknown_runs_are_refused(store: Store):
    run_id = store.create_run(**run_kwargs())
    store.add_session(run_id, index=1, classes=["a"], sample_ids=["x"], train_time_s=1.0)
    with pytest.raises(StoreError, match="session 1"):
        store.add_session(run_id, index=1, classes=["a"], sample_ids=["x"], train_time_s=1.0)
    with pytest.raises(InvalidRecord):
        store.add_session(run_id, index=0, classes=["a"], sample_ids=["x"], train_time_s=1.0)
    with pytest.raises(UnknownRun):
        store.add_session("e" * 32, index=1, classes=["a"], sample_ids=["x"], train_time_s=1.0)
    row = {"after_session": 0, "eval_set": "t", "subset": "all", "accuracy": 0.5, "n": 4}
    store.add_evaluations(run_id, [row])
    with pytest.raises(StoreError):
        store.add_evaluations(run_id, [row])
    assert len(store.get_run(run_id)["evaluations"]) == 1


# -- finding runs by prefix ---------------------------------------------------------------


def test_prefix_lookup_unique_ambiguous_unknown(store: Store, monkeypatch):
    fixed = iter(["abc1" + "0" * 28, "abc2" + "0" * 28, "ff00" + "1" * 28])
    monkeypatch.setattr(
        store_writes, "uuid", SimpleNamespace(uuid4=lambda: SimpleNamespace(hex=next(fixed)))
    )
    first, second, third = (store.create_run(**run_kwargs(seed=s)) for s in range(3))

    assert store.get_run("abc1")["id"] == first
    assert store.get_run(second)["id"] == second
    assert store.get_run("FF00")["id"] == third  # case does not matter
    assert store.get_run("abc1-0000-0000")["id"] == first  # dashed uuid form pasted

    with pytest.raises(StoreError, match="ambiguous") as ambiguous:
        store.get_run("abc")
    assert first in str(ambiguous.value) and second in str(ambiguous.value)
    assert third not in str(ambiguous.value)

    with pytest.raises(UnknownRun) as unknown:
        store.get_run("abd9")
    message = str(unknown.value)
    assert "abd9" in message and "closest" in message
    # The ids sharing the longest leading part come first.
    assert message.index(first) < message.index(third)
    assert unknown.value.hint and "clbench runs" in unknown.value.hint


def test_unknown_run_in_empty_store_says_so(store: Store):
    with pytest.raises(UnknownRun, match="no runs yet"):
        store.get_run("abc")


# -- locating the database ----------------------------------------------------------------


def test_resolve_db_url_precedence(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CLBENCH_DB", raising=False)
    assert resolve_db_url() == f"sqlite:///{tmp_path / DEFAULT_DB}"

    monkeypatch.setenv("CLBENCH_DB", "from_env.db")
    assert resolve_db_url() == f"sqlite:///{tmp_path / 'from_env.db'}"
    assert resolve_db_url("sub/arg.db") == f"sqlite:///{tmp_path / 'sub' / 'arg.db'}"

    monkeypatch.setenv("CLBENCH_DB", "postgresql://user@host/clbench")
    assert resolve_db_url() == "postgresql://user@host/clbench"
    assert resolve_db_url("sqlite:///relative.db") == "sqlite:///relative.db"

    monkeypatch.setenv("CLBENCH_DB", "")  # set but empty counts as unset
    assert resolve_db_url() == f"sqlite:///{tmp_path / DEFAULT_DB}"


@pytest.mark.parametrize("where", ["missing_dir", "under_file", "is_dir"])
def test_unwritable_location_is_a_store_error(tmp_path: Path, where: str):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    path = {
        "missing_dir": tmp_path / "no" / "such" / "dir" / "r.db",
        "under_file": blocker / "r.db",
        "is_dir": tmp_path,
    }[where]
    with pytest.raises(StoreError) as excinfo:
        Store(resolve_db_url(str(path)))
    assert str(path) in str(excinfo.value)
    assert "--db" in excinfo.value.hint and "CLBENCH_DB" in excinfo.value.hint
    assert isinstance(excinfo.value, UserError)
    assert not (tmp_path / "no").exists()  # nothing was created on the way


def test_file_that_is_not_a_database_is_refused(tmp_path: Path):
    path = tmp_path / "notes.db"
    path.write_text("these are my notes, not SQLite " * 100)
    with pytest.raises(StoreError, match="not an SQLite database"):
        Store(resolve_db_url(str(path)))
    assert path.read_text().startswith("these are my notes")


def test_unknown_database_backend_is_a_store_error():
    with pytest.raises(StoreError, match="nosuchdb"):
        Store("nosuchdb://user@host/db")


def test_create_false_on_missing_file(tmp_path: Path):
    path = tmp_path / "absent.db"
    with pytest.raises(StoreError, match="no results database at") as excinfo:
        Store(resolve_db_url(str(path)), create=False)
    assert str(path) in str(excinfo.value) and "clbench run" in str(excinfo.value)
    assert not path.exists()


def test_create_false_on_foreign_sqlite_file(tmp_path: Path):
    path = tmp_path / "other.db"
    sql(path, "CREATE TABLE things (x INTEGER)")
    with pytest.raises(StoreError, match="not a clbench results database"):
        Store(resolve_db_url(str(path)), create=False)


@pytest.mark.parametrize(("version", "word"), [(SCHEMA_VERSION + 1, "newer"), (0, "older")])
@pytest.mark.parametrize("create", [True, False])
def test_schema_version_mismatch(db_path: Path, version: int, word: str, create: bool):
    Store(resolve_db_url(str(db_path))).close()
    sql(db_path, "UPDATE schema_info SET value = ? WHERE key = 'schema_version'", (str(version),))
    with pytest.raises(StoreError) as excinfo:
        Store(resolve_db_url(str(db_path)), create=create)
    message = str(excinfo.value)
    assert f"version {version}" in message and f"{SCHEMA_VERSION} this clbench expects" in message
    assert word in message
    assert excinfo.value.hint  # says what to do


def test_schema_version_is_recorded(db_path: Path):
    Store(resolve_db_url(str(db_path))).close()
    assert sql(db_path, "SELECT value FROM schema_info WHERE key = 'schema_version'") == [
        (str(SCHEMA_VERSION),)
    ]


def _digest(path: Path) -> bytes:
    return path.read_bytes()


@pytest.mark.parametrize("mode", ["create", "create=False", "read_only"])
def test_foreign_sqlite_file_is_refused_and_left_unchanged(tmp_path: Path, mode: str):
    path = tmp_path / "app.db"
    sql(path, "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)")
    sql(path, "INSERT INTO users (name) VALUES ('ada')")
    before = _digest(path)
    kwargs = {"create": {}, "create=False": {"create": False},
              "read_only": {"read_only": True}}[mode]
    with pytest.raises(StoreError, match="not a clbench results database") as excinfo:
        Store(resolve_db_url(str(path)), **kwargs)
    assert "users" in str(excinfo.value)
    assert _digest(path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["app.db"]  # no journal, no temp file


def test_empty_existing_file_is_refused_and_left_empty(tmp_path: Path):
    path = tmp_path / "empty.db"
    path.touch()
    with pytest.raises(StoreError, match="not a clbench results database"):
        Store(resolve_db_url(str(path)))
    assert path.stat().st_size == 0


def test_new_store_file_leaves_no_temporary_files(tmp_path: Path):
    Store(resolve_db_url(str(tmp_path / "r.db"))).close()
    assert [p.name for p in tmp_path.iterdir()] == ["r.db"]


def test_read_only_store_reads_but_refuses_writes(db_path: Path, store: Store):
    run_id = store.create_run(**run_kwargs())
    _silence(db_path, run_id, 3600)  # a stale run a writer would mark
    before = _digest(db_path)
    with Store(resolve_db_url(str(db_path)), read_only=True) as reader:
        assert reader.read_only and not reader.writable
        assert reader.list_runs()[0]["status"] == "running"  # no stale-run marking
        assert reader.get_run(run_id[:6])["id"] == run_id
        assert len(reader.runs_overview()) == 1
        writes = [
            lambda: reader.create_run(**run_kwargs()),
            lambda: reader.add_session(run_id, index=1, classes=["a"], sample_ids=["x"],
                                       train_time_s=1.0),
            lambda: reader.add_evaluations(run_id, []),
            lambda: reader.set_params(run_id, trainable_params=1, total_params=2),
            lambda: reader.complete_run(run_id, summary={}, total_time_s=1.0),
            lambda: reader.fail_run(run_id, "no"),
            reader.mark_stale_runs,
        ]
        for write in writes:
            with pytest.raises(StoreError, match="opened read-only"):
                write()
        # Below the store's own refusal, SQLite refuses too (the mode=ro URI).
        with reader.engine.connect() as conn, pytest.raises(Exception, match="readonly"):
            conn.exec_driver_sql("DELETE FROM runs")
    assert _digest(db_path) == before


def test_read_only_store_never_creates_a_file(tmp_path: Path):
    path = tmp_path / "absent.db"
    with pytest.raises(StoreError, match="no results database at"):
        Store(resolve_db_url(str(path)), read_only=True)
    assert not path.exists() and list(tmp_path.iterdir()) == []


def test_check_writable_accepts_a_good_location_without_creating_it(tmp_path: Path):
    path = tmp_path / "later.db"
    check_writable(resolve_db_url(str(path)))
    check_writable("postgresql://user@host/clbench")  # cannot be checked without connecting
    assert not path.exists()


@pytest.mark.parametrize("where", ["missing_dir", "under_file", "read_only_dir"])
def test_check_writable_refuses_without_creating_anything(tmp_path: Path, where: str,
                                                           monkeypatch):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    locked = tmp_path / "locked"
    locked.mkdir()
    if where == "read_only_dir":
        if os.name == "nt":
            pytest.skip("chmod does not make a directory read-only on Windows")
        locked.chmod(0o555)
        if os.geteuid() == 0:  # root writes anyway: have os.access answer as for a user
            access = os.access
            monkeypatch.setattr(os, "access", lambda p, mode: access(p, mode) and not (
                Path(p) == locked and mode & os.W_OK))
    path = {
        "missing_dir": tmp_path / "no" / "such" / "dir" / "r.db",
        "under_file": blocker / "r.db",
        "read_only_dir": locked / "r.db",
    }[where]
    try:
        with pytest.raises(StoreError) as excinfo:
            check_writable(resolve_db_url(str(path)))
        # The same refusal the constructor makes.
        with pytest.raises(StoreError) as constructed:
            Store(resolve_db_url(str(path)))
    finally:
        locked.chmod(0o755)
    assert str(excinfo.value) == str(constructed.value)
    assert "--db" in excinfo.value.hint
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file", "locked"]
    assert list(locked.iterdir()) == []


def test_check_writable_refuses_a_bad_url():
    with pytest.raises(StoreError, match="not a database URL"):
        check_writable("::not a url::")


# -- statuses stay true -------------------------------------------------------------------


def _silence(db_path: Path, run_id: str, seconds: float) -> None:
    """Make a run's last heartbeat `seconds` old, as if its process had stopped then."""
    then = datetime.now(timezone.utc).replace(tzinfo=None) - timedelta(seconds=seconds)
    sql(db_path, "UPDATE runs SET heartbeat_at = ? WHERE id = ?", (then.isoformat(" "), run_id))


@pytest.mark.spawns
def test_killed_run_is_marked_failed(db_path: Path, monkeypatch):
    url = resolve_db_url(str(db_path))
    Store(url).close()
    script = textwrap.dedent(f"""
        import os, signal
        from clbench.store import Store
        store = Store({url!r})
        store.create_run(strategy="ln", strategy_config={{}}, scenario="s",
                         scenario_manifest_hash=None, model_arch="tiny", model_pretrained=None,
                         model_checkpoint_sha256=None, seed=0, config={{}}, config_hash="h",
                         training_config={{}}, provenance={{}})
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    child = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, timeout=60, check=False
    )
    assert child.returncode == -9, child.stderr.decode()

    monkeypatch.setenv("CLBENCH_STALE_AFTER_S", "1")
    time.sleep(1.5)  # the killed run's process wrote its last heartbeat at its start
    with Store(url) as store:
        live = store.create_run(**run_kwargs())  # just started: its heartbeat is fresh
        runs = {r["id"]: r for r in store.list_runs()}
        assert runs[live]["status"] == "running"
        (dead,) = [r for r in runs.values() if r["id"] != live]
        pid = store.get_run(dead["id"])["pid"]
        assert dead["status"] == "failed"
        assert dead["error"].startswith("no heartbeat for ")
        assert f"pid {pid}): the process was killed or its machine is gone" in dead["error"]
        assert dead["finished_at"] is not None
        assert store.mark_stale_runs() == 0  # already marked


def test_stale_marking_judges_every_host_alike(db_path: Path, store: Store):
    here, elsewhere, recent = (store.create_run(**run_kwargs()) for _ in range(3))
    sql(db_path, "UPDATE runs SET hostname = 'another-host' WHERE id = ?", (elsewhere,))
    for run_id in (here, elsewhere):
        _silence(db_path, run_id, 600)
    _silence(db_path, recent, 10)  # a few missed beats: within the default 60 s
    assert store.mark_stale_runs() == 2
    assert store.get_run(here)["status"] == store.get_run(elsewhere)["status"] == "failed"
    assert "from another-host pid" in store.get_run(elsewhere)["error"]
    assert store.get_run(recent)["status"] == "running"


def test_reader_marks_stale_runs_when_it_can_write(db_path: Path, store: Store):
    run_id = store.create_run(**run_kwargs())
    _silence(db_path, run_id, 3600)
    with Store(resolve_db_url(str(db_path)), create=False) as reader:
        assert reader.writable
        assert reader.list_runs()[0]["status"] == "failed"
    assert store.get_run(run_id)["status"] == "failed"


@pytest.mark.slow
def test_the_heartbeat_keeps_a_long_run_alive(db_path: Path, store: Store, monkeypatch):
    monkeypatch.setenv("CLBENCH_STALE_AFTER_S", "0.6")
    run_id = store.create_run(**run_kwargs())
    with store.heartbeat(run_id, every_s=0.05):
        time.sleep(1.2)  # twice the stale time: alive only because it beats
        assert store.mark_stale_runs() == 0
        assert store.get_run(run_id)["status"] == "running"
    time.sleep(0.8)  # stopped beating (its process would be gone)
    assert store.mark_stale_runs() == 1
    assert store.get_run(run_id)["status"] == "failed"


def test_a_failed_beat_does_not_stop_the_run():
    calls = []

    def beat():
        calls.append(1)
        raise StoreError("database unreachable")

    with liveness.Heartbeat(beat, every_s=0.02):
        time.sleep(0.2)
    assert len(calls) >= 3  # it kept trying, and nothing was raised into the run


def test_stale_marking_uses_the_liveness_decision(db_path: Path, store: Store, monkeypatch):
    first = store.create_run(**run_kwargs())
    second = store.create_run(**run_kwargs(seed=8))
    monkeypatch.setattr(store_writes, "run_alive", lambda run, now=None: run.id != second)
    assert store.mark_stale_runs() == 1
    assert store.get_run(first)["status"] == "running"
    assert store.get_run(second)["status"] == "failed"


# -- a run killed on this host is failed at once --------------------------------------------


def _free_pid() -> int:
    """A process id that no process has now."""
    for pid in range(2**22 - 1, 2**22 - 1000, -1):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return pid
        except PermissionError:
            continue
    raise AssertionError("no free process id found")


def _set(db_path: Path, run_id: str, **columns) -> None:
    for column, value in columns.items():
        sql(db_path, f"UPDATE runs SET {column} = ? WHERE id = ?", (value, run_id))


def _days_ago(days: float) -> str:
    then = datetime.now(timezone.utc).replace(tzinfo=None) - timedelta(days=days)
    return then.isoformat(" ")


def test_a_run_whose_process_is_gone_from_this_host_is_failed_at_once(db_path: Path,
                                                                       store: Store):
    run_id = store.create_run(**run_kwargs())  # its heartbeat is fresh
    pid = _free_pid()
    _set(db_path, run_id, pid=pid)
    assert store.mark_stale_runs() == 1
    run = store.get_run(run_id)
    assert run["status"] == "failed"
    assert run["error"].startswith(f"its process (pid {pid} on this host, "
                                   f"{socket.gethostname()}) is gone: it was killed")


def test_a_run_of_another_host_is_judged_by_its_heartbeat_alone(db_path: Path, store: Store):
    run_id = store.create_run(**run_kwargs())
    _set(db_path, run_id, pid=_free_pid(), hostname="another-host")
    assert store.mark_stale_runs() == 0  # its pid means nothing here
    assert store.get_run(run_id)["status"] == "running"
    _silence(db_path, run_id, 600)
    assert store.mark_stale_runs() == 1
    assert store.get_run(run_id)["error"].startswith("no heartbeat for ")


def test_a_host_named_localhost_is_not_taken_for_this_one(db_path: Path, store: Store,
                                                          monkeypatch):
    """Many containers are all "localhost": a pid recorded there may be alive in another."""
    monkeypatch.setattr(socket, "gethostname", lambda: "localhost")
    run_id = store.create_run(**run_kwargs())
    _set(db_path, run_id, pid=_free_pid())
    assert store.mark_stale_runs() == 0
    assert store.get_run(run_id)["status"] == "running"


def test_a_reused_pid_does_not_keep_a_dead_run_alive(db_path: Path, store: Store,
                                                     monkeypatch):
    """The run's pid is now another process's (this one, started after the run last beat)."""
    monkeypatch.setenv("CLBENCH_STALE_AFTER_S", str(30 * 86400))  # the heartbeat rule is mute
    dead, alive = store.create_run(**run_kwargs()), store.create_run(**run_kwargs(seed=8))
    _set(db_path, dead, created_at=_days_ago(2), started_at=_days_ago(2),
         heartbeat_at=_days_ago(1))
    assert store.mark_stale_runs() == 1
    assert store.get_run(dead)["status"] == "failed"
    assert store.get_run(alive)["status"] == "running"  # same pid, started before the run


def test_without_psutil_a_missing_pid_still_fails_the_run(db_path: Path, store: Store,
                                                          monkeypatch):
    monkeypatch.setitem(sys.modules, "psutil", None)  # `import psutil` raises ImportError
    monkeypatch.setenv("CLBENCH_STALE_AFTER_S", str(30 * 86400))
    gone, old = store.create_run(**run_kwargs()), store.create_run(**run_kwargs(seed=8))
    _set(db_path, gone, pid=_free_pid())
    _set(db_path, old, heartbeat_at=_days_ago(1))  # without start times: taken as alive
    assert store.mark_stale_runs() == 1
    assert store.get_run(gone)["status"] == "failed"
    assert store.get_run(old)["status"] == "running"


@pytest.mark.spawns
def test_a_run_killed_on_this_host_is_failed_by_the_next_reader_at_once(db_path: Path,
                                                                        monkeypatch):
    monkeypatch.delenv("CLBENCH_STALE_AFTER_S", raising=False)  # the default 60 s
    url = resolve_db_url(str(db_path))
    Store(url).close()
    script = textwrap.dedent(f"""
        import os, signal
        from clbench.store import Store
        Store({url!r}).create_run(strategy="ln", strategy_config={{}}, scenario="s",
            scenario_manifest_hash=None, model_arch="tiny", model_pretrained=None,
            model_checkpoint_sha256=None, seed=0, config={{}}, config_hash="h",
            training_config={{}}, provenance={{}})
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    child = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=60,
                           check=False)
    assert child.returncode == -9, child.stderr.decode()
    with Store(url, create=False) as reader:  # at once: no waiting for the heartbeat
        (run,) = reader.list_runs()
        assert run["status"] == "failed"
        assert f"(pid {reader.get_run(run['id'])['pid']} on this host" in run["error"]


# -- small helpers and import weight ------------------------------------------------------


def test_canonical_hash_ignores_key_order():
    a = canonical_hash({"b": 1, "a": [1, {"y": 2, "x": 1}]})
    b = canonical_hash({"a": [1, {"x": 1, "y": 2}], "b": 1})
    assert a == b and len(a) == 16 and int(a, 16) >= 0
    assert canonical_hash({"a": 1}) != canonical_hash({"a": 2})
    assert canonical_hash({"p": Path("/x")}) == canonical_hash({"p": "/x"})


def test_importing_store_does_not_import_heavy_packages():
    code = (
        "import sys, clbench.store; "
        "print([m for m in ('torch', 'avalanche', 'open_clip') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, check=True)
    assert out.stdout.strip() == "[]"


def test_runs_starting_together_on_a_fresh_file_all_succeed(db_path: Path):
    # Each process creates the tables if missing; without a lock they raced ("table exists").
    url = resolve_db_url(str(db_path))
    code = f"from clbench.store import Store; Store({url!r}).close(); print('ok')"
    children = [
        subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
        for _ in range(4)
    ]
    outputs = [child.communicate(timeout=60) for child in children]
    assert [out.strip() for out, _ in outputs] == ["ok"] * 4, [err for _, err in outputs]
    assert sql(db_path, "SELECT value FROM schema_info") == [(str(SCHEMA_VERSION),)]


def test_a_new_sqlite_store_is_in_wal_mode(tmp_path: Path):
    path = tmp_path / "wal.db"
    Store(resolve_db_url(str(path))).close()
    with closing(sqlite3.connect(path)) as conn, conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    with Store(resolve_db_url(str(path)), read_only=True) as reader:  # the leaderboard's way
        assert reader.runs_overview() == []


def test_close_all_folds_the_log_back_and_collects_only_for_a_held_connection(
        tmp_path: Path, monkeypatch):
    """`close_all` (what the CLI calls before it returns) leaves no -wal file. A connection
    kept by a reference cycle (the frames of a handled error) is collected first; with none
    out, no full collection runs (0.25 s with torch loaded)."""
    import gc
    import weakref

    import clbench.store.base as store_module
    from clbench.store import opening

    # only this test's engines: one that an earlier test left alive (a Store never closed, held
    # by a cycle not yet collected) would also, rightly, make close_all collect
    engines = weakref.WeakSet()
    monkeypatch.setattr(opening, "ENGINES", engines)
    monkeypatch.setattr(store_module, "ENGINES", engines)
    collections = []
    real_collect = gc.collect
    monkeypatch.setattr(gc, "collect", lambda *a: collections.append(1) or real_collect(*a))
    wal = tmp_path / "held.db-wal"
    for held in (False, True):
        collections.clear()
        store = Store(resolve_db_url(str(tmp_path / "held.db")))
        store.create_run(**run_kwargs())
        gc.disable()
        try:
            if held:
                cycle = SimpleNamespace(connection=store.engine.connect())
                cycle.me = cycle
                cycle.connection.exec_driver_sql("SELECT 1")
                del cycle
            assert wal.exists()
            store_module.close_all()
        finally:
            gc.enable()
        assert not wal.exists()
        assert collections == ([1] if held else [])


def _locked_for(path: Path, seconds: float) -> threading.Thread:
    """Another process's exclusive lock on the file, released after `seconds`."""
    ready = threading.Event()

    def hold():
        conn = sqlite3.connect(path, isolation_level=None)
        conn.execute("BEGIN EXCLUSIVE")
        ready.set()
        time.sleep(seconds)
        conn.execute("COMMIT")
        conn.close()

    thread = threading.Thread(target=hold)
    thread.start()
    ready.wait()
    return thread


@pytest.mark.slow
def test_a_write_that_finds_the_file_locked_past_the_busy_timeout_is_retried(
        tmp_path: Path, monkeypatch):
    import clbench.store.base as store_module
    from clbench.store import opening

    monkeypatch.setattr(opening, "SQLITE_BUSY_TIMEOUT_S", 0.2)
    path = tmp_path / "busy.db"
    url = resolve_db_url(str(path))
    with Store(url) as store:
        holder = _locked_for(path, 1.0)  # longer than the busy timeout, shorter than retries
        run_id = store.create_run(**run_kwargs())
        holder.join()
        assert store.get_run(run_id)["status"] == "running"
        monkeypatch.setattr(store_module, "LOCK_RETRIES", 1)  # without retries: the error
        holder = _locked_for(path, 1.0)
        with pytest.raises(StoreError, match="database is locked"):
            store.create_run(**run_kwargs())
        holder.join()
