"""A results store on a read-only disk (a leaderboard's file shipped in a read-only volume or
container): readers (`clbench runs`, `show`, `export`, the app) read it, writers are refused
with a clear error, and a store published with changes still in its write-ahead log is named
as such, with the command that fixes it.

This machine's tests may run as root, whom `chmod` does not stop, so the default tier makes the
disk read-only for SQLite itself: its connect refuses what SQLite refuses on a read-only folder
(the same error text) unless the URI is immutable, and `os.access` denies writing there. The
second tier mounts the folder read-only for real (`unshare`: a user and mount namespace) and runs
the command line in it.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import sqlite3.dbapi2
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote

import pytest

from clbench.cli.main import main
from clbench.store import Store, StoreError, resolve_db_url

PROVENANCE = {"git_sha": "a" * 40, "git_dirty": False, "packages": {}, "hardware": {}}


def record_run(store: Store, seed: int = 1) -> str:
    """A completed run with a session, evaluations and predictions (what `export` needs)."""
    run_id = store.create_run(
        strategy="ln", strategy_config={}, scenario="proxy-20shot", scenario_manifest_hash="m",
        model_arch="tiny", model_pretrained=None, model_checkpoint_sha256=None, seed=seed,
        config={"strategy": {"name": "ln"}}, config_hash=f"h{seed}", training_config={},
        provenance=PROVENANCE)
    store.add_session(run_id, index=1, classes=["a", "b"], sample_ids=["x", "y"],
                      train_time_s=1.0)
    store.add_evaluations(run_id, [
        {"after_session": s, "eval_set": "proxy-clean", "subset": "all", "accuracy": 0.5,
         "n": 2} for s in (0, 1)])
    store.add_predictions(run_id, [{"after_session": 1, "eval_set": "proxy-clean",
                                    "predicted": [0, 1], "labels": [0, 0]}])
    store.complete_run(run_id, summary={"final_accuracy": 0.5}, total_time_s=1.0)
    return run_id


def published(folder: Path) -> tuple[Path, str]:
    """A store with one completed run in `folder`, closed (its log folded into the file)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "results.db"
    with Store(resolve_db_url(str(path))) as store:
        run_id = record_run(store)
    assert sorted(p.name for p in folder.iterdir()) == ["results.db"]
    return path, run_id


def published_mid_write(folder: Path) -> tuple[Path, str]:
    """A copy of a store taken while a run's rows were still in its write-ahead log."""
    live = folder / "live"
    live.mkdir(parents=True)
    with Store(resolve_db_url(str(live / "results.db"))) as store:
        run_id = record_run(store)
        copy = folder / "copy"
        copy.mkdir()
        for name in ("results.db", "results.db-wal"):  # what a careless `cp` publishes
            shutil.copy(live / name, copy / name)
    assert (copy / "results.db-wal").stat().st_size > 0
    return copy / "results.db", run_id


@pytest.fixture
def read_only_disk(monkeypatch):
    """`read_only_disk(folder, message)`: SQLite refuses to open a file in `folder` as it does
    on a read-only folder (a WAL store cannot make its -shm file) unless the URI is immutable,
    and `os.access` says nothing there can be written."""
    real_connect, real_access = sqlite3.dbapi2.connect, os.access
    folders: list[tuple[str, str]] = []

    def refused(database: object) -> str | None:
        name = unquote(str(database))
        for folder, message in folders:
            if folder in name and "immutable=1" not in name:
                return message
        return None

    def connect(database, *args, **kwargs):
        message = refused(database)
        if message:
            raise sqlite3.OperationalError(message)
        return real_connect(database, *args, **kwargs)

    def access(path, mode, *args, **kwargs):
        if mode & os.W_OK and any(str(Path(path)).startswith(f) for f, _ in folders):
            return False
        return real_access(path, mode, *args, **kwargs)

    monkeypatch.setattr(sqlite3.dbapi2, "connect", connect)
    monkeypatch.setattr(os, "access", access)

    def make(folder: Path, message: str = "unable to open database file") -> None:
        folders.append((str(folder), message))

    return make


def cli(argv: list[str], capsys) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


# -- readers read it --------------------------------------------------------------------------


@pytest.mark.parametrize("message", ["unable to open database file",
                                     "attempt to write a readonly database"])
def test_readers_read_a_store_on_a_read_only_disk(tmp_path, read_only_disk, capsys, message):
    path, run_id = published(tmp_path / "volume")
    read_only_disk(path.parent, message)

    code, out, err = cli(["runs", "--db", str(path)], capsys)
    assert (code, err) == (0, "")
    assert run_id[:8] in out and "completed" in out
    code, out, err = cli(["show", run_id[:8], "--db", str(path)], capsys)
    assert (code, err) == (0, "") and run_id in out
    bundle = tmp_path / "bundle.json"
    code, out, err = cli(["export", run_id[:8], "--db", str(path), "--out", str(bundle)],
                         capsys)
    assert (code, err) == (0, "") and bundle.is_file()
    with Store(resolve_db_url(str(path)), read_only=True) as reader:  # the leaderboard's way
        assert [r["id"] for r in reader.runs_overview()] == [run_id]
    assert sorted(p.name for p in path.parent.iterdir()) == ["results.db"]


def test_the_leaderboard_opens_a_store_on_a_read_only_disk(tmp_path, read_only_disk):
    from clbench.leaderboard_app.data import open_store

    path, run_id = published(tmp_path / "volume")
    read_only_disk(path.parent)
    with open_store(str(path)) as store:
        assert [r["id"] for r in store.runs_overview()] == [run_id]


def test_a_read_only_disk_is_no_excuse_for_other_open_failures(tmp_path, read_only_disk):
    """Only SQLite's refusals of a read-only location fall back to the immutable open."""
    path, _ = published(tmp_path / "volume")
    read_only_disk(path.parent, "database disk image is malformed")
    with pytest.raises(StoreError, match="database disk image is malformed"):
        Store(resolve_db_url(str(path)), create=False)


def test_a_writable_location_that_cannot_be_opened_keeps_sqlites_error(tmp_path, monkeypatch):
    """An open refused although the folder can be written is not a read-only disk."""
    path, _ = published(tmp_path / "volume")
    real_connect = sqlite3.dbapi2.connect

    def connect(database, *args, **kwargs):
        if "immutable=1" not in str(database):
            raise sqlite3.OperationalError("unable to open database file")
        return real_connect(database, *args, **kwargs)

    monkeypatch.setattr(sqlite3.dbapi2, "connect", connect)
    with pytest.raises(StoreError, match="unable to open database file"):
        Store(resolve_db_url(str(path)), create=False)


# -- writers are refused -----------------------------------------------------------------------


def test_writers_on_a_read_only_disk_get_a_clear_error(tmp_path, read_only_disk, capsys):
    path, run_id = published(tmp_path / "volume")
    read_only_disk(path.parent)
    before = path.read_bytes()

    with Store(resolve_db_url(str(path)), create=False) as store:  # a reader, then a write
        assert not store.writable
        with pytest.raises(StoreError, match="cannot be written") as refused:
            store.fail_run(run_id, "no")
        assert "--db" in refused.value.hint
    with pytest.raises(StoreError, match="cannot write the results database"):
        Store(resolve_db_url(str(path)))

    code, out, err = cli(["run", "--resume", run_id[:8], "--db", str(path)], capsys)
    assert code == 2 and "Traceback" not in err
    assert err.startswith(f"error: cannot resume run {run_id[:8]}: the results database "
                          f"{path} cannot be written")
    assert "hint: pass --db PATH" in err
    assert path.read_bytes() == before


# -- a store published with its log ------------------------------------------------------------


def test_a_log_not_checkpointed_before_publishing_is_named_with_the_fix(tmp_path,
                                                                        read_only_disk, capsys):
    path, run_id = published_mid_write(tmp_path)
    read_only_disk(path.parent)

    code, out, err = cli(["runs", "--db", str(path)], capsys)
    assert code == 2 and out == "" and "Traceback" not in err
    pending = (path.parent / "results.db-wal").stat().st_size
    first = err.splitlines()[0]
    assert first.startswith(f"error: cannot read the results database {path}: its folder "
                            "cannot be written (no permission to write ")
    assert first.endswith(f") and its write-ahead log results.db-wal holds {pending} bytes that "
                          "may not be in the file yet (it was copied or published without a "
                          "checkpoint)")
    assert err.splitlines()[1] == (
        "hint: on a writable copy, fold the log into the file and publish the file alone: "
        "clbench db checkpoint --db FILE (or sqlite3 FILE 'PRAGMA wal_checkpoint(TRUNCATE)')")

    from clbench.leaderboard_app.data import StoreProblem, open_store

    with pytest.raises(StoreProblem) as problem:
        open_store(str(path))
    assert problem.value.title == "Results database published without a checkpoint"
    assert "clbench db checkpoint" in problem.value.todo


def test_db_checkpoint_folds_the_log_into_the_file(tmp_path, read_only_disk, capsys):
    path, run_id = published_mid_write(tmp_path)
    code, out, err = cli(["db", "checkpoint", "--db", str(path)], capsys)
    assert (code, err) == (0, "")
    assert out.strip() == (f"{path}: the write-ahead log is folded into the file; publish "
                           "results.db alone")
    assert sorted(p.name for p in path.parent.iterdir()) == ["results.db"]

    read_only_disk(path.parent)  # now it reads from a read-only disk, every row there
    code, out, err = cli(["show", run_id[:8], "--db", str(path)], capsys)
    assert (code, err) == (0, "") and run_id in out


def test_db_checkpoint_refuses_a_server_database(capsys):
    code, _, err = cli(["db", "checkpoint", "--db", "postgresql://user@host/clbench"], capsys)
    assert code == 2 and "only an SQLite file has a write-ahead log" in err


# -- for real: a read-only mount ---------------------------------------------------------------


def _can_mount_read_only() -> bool:
    if not sys.platform.startswith("linux") or shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "-rm", "true"], capture_output=True, check=False)
    return probe.returncode == 0


def in_read_only_mount(source: Path, mount: Path, *argv: str) -> subprocess.CompletedProcess:
    """`python -m clbench ARGV` with `source` mounted read-only at `mount`, as a container's
    read-only volume would be (a user and mount namespace: no root needed)."""
    script = ('mount --bind "$1" "$2" && mount -o remount,bind,ro "$2" && '
              '! touch "$2/probe" 2>/dev/null && shift 2 && exec "$@"')
    return subprocess.run(
        ["unshare", "-rm", "sh", "-c", script, "sh", str(source), str(mount), sys.executable,
         "-m", "clbench", *argv], capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.spawns
def test_the_command_line_reads_a_store_on_a_read_only_mount(tmp_path):
    if not _can_mount_read_only():
        pytest.skip("needs Linux user and mount namespaces (unshare -rm) to mount a folder "
                    "read-only")
    path, run_id = published(tmp_path / "volume")
    mount = tmp_path / "mnt"
    mount.mkdir()
    db = str(mount / "results.db")

    listed = in_read_only_mount(path.parent, mount, "runs", "--db", db)
    assert listed.returncode == 0, listed.stderr
    assert run_id[:8] in listed.stdout
    shown = in_read_only_mount(path.parent, mount, "show", run_id[:8], "--db", db)
    assert shown.returncode == 0, shown.stderr
    assert run_id in shown.stdout
    resumed = in_read_only_mount(path.parent, mount, "run", "--resume", run_id[:8], "--db", db)
    assert resumed.returncode == 2 and "Traceback" not in resumed.stderr
    assert "is on a read-only file system" in resumed.stderr

    copy, copied_id = published_mid_write(tmp_path / "careless")
    refused = in_read_only_mount(copy.parent, mount, "runs", "--db", db)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert "it was copied or published without a checkpoint" in refused.stderr
    assert sorted(p.name for p in path.parent.iterdir()) == ["results.db"]
