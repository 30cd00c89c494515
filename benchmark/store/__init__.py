"""The results database: runs, their sessions, and the evaluations after every session.

Every run of the benchmark is recorded here, and the leaderboard app and the quick CLI commands
(`clbench runs`, `clbench show`) read it back. It is a plain SQLAlchemy 2.x ORM over an SQLite
file by default; any SQLAlchemy URL works (e.g. PostgreSQL for a shared leaderboard).

Two promises shape the code:

- A run's status is always true. Writes happen call by call, each in its own transaction, so a
  crash loses at most the session in flight; a run whose process died without saying so (SIGKILL,
  OOM killer, power loss, a lost machine) stops its heartbeat and is marked failed by
  `mark_stale_runs`, which readers call first, on any host.
- Opening is cheap. This package must not import torch, avalanche or open_clip, so that
  `clbench runs` answers in well under two seconds.

The schema is versioned in `schema_info`; a database written by another schema version is
refused with a message saying what was found, what is expected and what to do about it, and a
database that is not clbench's is refused before anything in it changes.

Modules, one job each: `schema` (tables, version, stored types), `location` (URLs, the SQLite
file and whether it can be written), `opening` (engine, creating and checking the schema),
`liveness` (is a "running" run still alive), `writes` (records and their validation), `reads`
(listings, bulk reads, finding runs by id prefix). `Store`, here, ties them together.
"""

from __future__ import annotations

import functools
import time
import weakref
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from sqlalchemy.exc import IntegrityError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session as DbSession
from sqlalchemy.orm import sessionmaker

from clbench.store import reads, writes
from clbench.store.errors import InvalidRecord, StoreError, UnknownRun
from clbench.store.location import (
    DB_HINT,
    DEFAULT_DB,
    check_writable,
    parse_url,
    raise_if_missing,
    raise_if_unwritable,
    read_only_url,
    resolve_db_url,
    sqlite_path,
    unwritable_reason,
)
from clbench.store.opening import (
    ENGINES,
    create_sqlite_file,
    make_engine,
    open_error,
    open_schema,
)
from clbench.store.schema import SCHEMA_VERSION

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine
    from typing_extensions import Self

__all__ = [
    "DEFAULT_DB",
    "SCHEMA_VERSION",
    "InvalidRecord",
    "Store",
    "StoreError",
    "UnknownRun",
    "LazyStore",
    "check_writable",
    "close_all",
    "read_only_url",
    "resolve_db_url",
]


_OPEN: weakref.WeakSet[Store] = weakref.WeakSet()  # what `close_all` closes


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


class Store:
    """The results database. Each method is one transaction, committed before it returns.

    `Store(url)` opens a database to record runs, creating it if missing. `create=False` opens
    an existing one (never creates a file) and still marks stale runs failed when it can
    write. `read_only=True` is for readers that must never write (the leaderboard app): the
    file must exist, SQLite opens it through a `mode=ro` URI, no stale runs are marked and
    every write method raises StoreError. `shown_as` is how pages name the database (by
    default its file path or URL without password).
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
        self.engine = make_engine(parsed, self._where)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        try:
            open_schema(self.engine, self._where, create=self.create,
                        file_backed=self._path is not None)
        except StoreError:
            self.engine.dispose()
            raise
        except SQLAlchemyError as exc:
            self.engine.dispose()
            raise open_error(exc, self._where, "write" if self.create else "read") from exc
        _OPEN.add(self)
        self.writable = not read_only and (
            self.create or self._path is None or unwritable_reason(self._path) is None)

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
        if self.read_only:
            raise StoreError(
                f"cannot {what}: the results database {self._where} was opened read-only",
                hint="open it with Store(url) (not read_only=True) to record runs")

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

    # -- writing --------------------------------------------------------------------------

    @retried_when_locked
    def create_run(
        self,
        *,
        strategy: str,
        strategy_config: dict,
        scenario: str,
        scenario_manifest_hash: str | None,
        model_arch: str,
        model_pretrained: str | None,
        model_checkpoint_sha256: str | None,
        seed: int,
        config: dict,
        config_hash: str,
        training_config: dict,
        provenance: dict,
    ) -> str:
        """Record a new run as "running", started now by this process; returns its id."""
        run = writes.new_run(
            strategy=strategy, strategy_config=strategy_config, scenario=scenario,
            scenario_manifest_hash=scenario_manifest_hash, model_arch=model_arch,
            model_pretrained=model_pretrained, model_checkpoint_sha256=model_checkpoint_sha256,
            seed=seed, config=config, config_hash=config_hash, training_config=training_config,
            provenance=provenance,
        )
        with self._write("record the new run") as session:
            session.add(run)
        return run.id

    def add_session(
        self,
        run_id: str,
        *,
        index: int,
        classes: list[str],
        sample_ids: list[str],
        train_time_s: float,
        peak_memory_mb: float | None = None,
        final_loss: float | None = None,
        trainable_params: int | None = None,
        facts: dict | None = None,
    ) -> None:
        """Record one finished training session (1-based `index`) of a run."""
        self.record_session(run_id, session={
            "index": index, "classes": classes, "sample_ids": sample_ids,
            "train_time_s": train_time_s, "peak_memory_mb": peak_memory_mb,
            "final_loss": final_loss, "trainable_params": trainable_params, "facts": facts},
            evaluations=())

    @retried_when_locked
    def record_session(self, run_id: str, *, session: dict | None, evaluations: Iterable[dict],
                       predictions: Iterable[dict] = ()) -> None:
        """Record what one session produced in one transaction: its session row (`add_session`'s
        fields; None for the zero-shot evaluation before training), its evaluations and
        predictions. All of it is stored or, on any failure, none: never a half-written
        session."""
        records: list[Any] = []
        what = "evaluations"
        if session is not None:
            records.append(writes.session_record(run_id, **session))
            what = f"session {session['index']}"
        records += writes.evaluation_records(run_id, evaluations)
        records += writes.prediction_records(run_id, predictions)
        with self._write(f"record {what} of run {run_id}") as db:
            reads.run_by_id(db, run_id, self._where)
            db.add_all(records)

    @retried_when_locked
    def reopen_run(self, run_id: str, *, after_session: int, note: dict) -> None:
        """Take up a failed run again from its checkpoint after session `after_session`, in one
        transaction: rows of later sessions (written before the crash but after the
        checkpoint) are deleted, the run is "running" again from this process with a fresh
        heartbeat, and `note` is appended to its config's `resumes` list. Refused unless the
        run is failed, so two processes cannot both take it up."""
        with self._write(f"resume run {run_id}") as db:
            run = reads.run_by_id(db, run_id, self._where)
            if run.status != "failed":
                raise StoreError(f"run {run_id} is {run.status}, not failed: another process "
                                 "took it up", hint=f"see `clbench show {run_id}`")
            writes.drop_sessions_after(db, run_id, after_session)
            writes.reopen(run, note)

    def add_evaluations(self, run_id: str, rows: Iterable[dict]) -> None:
        """Record accuracies; all rows are checked first and written together, or none is."""
        self.record_session(run_id, session=None, evaluations=rows)

    def add_predictions(self, run_id: str, rows: Iterable[dict]) -> None:
        """Record per-sample predictions {after_session, eval_set, predicted, labels}."""
        self.record_session(run_id, session=None, evaluations=(), predictions=rows)

    @retried_when_locked
    def add_verification(self, run_id: str, **fields: Any) -> None:
        """Record a reproduction of a run (`Verification`'s fields)."""
        with self._write(f"record the reproduction of run {run_id}") as session:
            reads.run_by_id(session, run_id, self._where)
            session.add(writes.verification(run_id, **fields))

    @retried_when_locked
    def import_runs(self, runs: list[dict]) -> None:
        """Record complete runs (a bundle's: run fields, sessions, evaluations, predictions)
        in one transaction: all of them or, on any error, none."""
        with self._write("import runs") as session:
            for run in runs:
                writes.add_imported(session, run)

    @retried_when_locked
    def set_params(self, run_id: str, *, trainable_params: int, total_params: int) -> None:
        with self._write(f"record parameter counts of run {run_id}") as session:
            run = reads.run_by_id(session, run_id, self._where)
            run.trainable_params = int(trainable_params)
            run.total_params = int(total_params)

    @retried_when_locked
    def complete_run(self, run_id: str, *, summary: dict, total_time_s: float) -> None:
        with self._write(f"complete run {run_id}") as session:
            run = reads.run_by_id(session, run_id, self._where)
            writes.complete(run, summary=summary, total_time_s=total_time_s)

    def fail_run(self, run_id: str, error: str) -> bool:
        """Mark a run failed with its error; whether that was recorded. Called from error
        handlers, so it only raises when the run does not exist (or the store is read-only);
        on a database failure it returns False and the caller says what happens next."""
        self._refuse_if_read_only(f"mark run {run_id} failed")
        try:
            self._mark_failed(run_id, error)
        except UnknownRun:
            raise
        except StoreError:
            return False
        return True

    @retried_when_locked
    def _mark_failed(self, run_id: str, error: str) -> None:
        with self._write(f"mark run {run_id} failed") as session:
            writes.fail(reads.run_by_id(session, run_id, self._where), error)

    @retried_when_locked
    def beat(self, run_id: str) -> None:
        """A run in progress says it is alive (`liveness.Heartbeat` calls this)."""
        with self._write(f"record the heartbeat of run {run_id}") as session:
            writes.beat(reads.run_by_id(session, run_id, self._where))

    def heartbeat(self, run_id: str, every_s: float | None = None):
        """A context manager beating for `run_id` every few seconds while a run works."""
        from clbench.store.liveness import HEARTBEAT_S, Heartbeat

        return Heartbeat(lambda: self.beat(run_id), every_s or HEARTBEAT_S)

    @retried_when_locked
    def mark_stale_runs(self) -> int:
        """Mark failed the "running" runs without a recent heartbeat (`liveness.run_alive`),
        with that reason; returns how many."""
        with self._write("mark stale runs") as session:
            return writes.mark_stale(session)

    def _refresh_statuses(self) -> None:
        """Keep statuses true before a read; a reader that cannot write just reads."""
        if not self.writable:
            return
        try:
            self.mark_stale_runs()
        except StoreError:
            pass

    # -- reading --------------------------------------------------------------------------

    def list_runs(self, limit: int | None = None) -> list[dict]:
        """Runs, newest first, with the fields a listing shows."""
        self._refresh_statuses()
        with self._tx("list runs") as session:
            return reads.list_runs(session, limit)

    def get_run(self, run_id_or_prefix: str) -> dict:
        """One run with its sessions and evaluations, found by id or unique id prefix."""
        self._refresh_statuses()
        with self._tx("read run") as session:
            return reads.run_detail(session, run_id_or_prefix, self._where)

    def predictions_of(self, run_id: str) -> list[dict]:
        """A run's per-sample predictions ([] for runs stored before they were recorded)."""
        with self._tx("read predictions") as session:
            return reads.predictions_of(session, reads.find_run(session, run_id,
                                                                self._where).id)

    def verifications_of(self, run_id: str) -> list[dict]:
        with self._tx("read verifications") as session:
            return reads.verifications_of(session, reads.find_run(session, run_id,
                                                                  self._where).id)

    def verified_run_ids(self) -> set[str]:
        """Runs reproduced within tolerance on another host or by another person."""
        with self._tx("read verifications") as session:
            return reads.verified_run_ids(session)

    def find_duplicate(self, run: dict) -> str | None:
        """The id of a stored run with the same config hash, manifest hash, model and seed."""
        with self._tx("look for a duplicate run") as session:
            return reads.duplicate_of(session, run)

    # -- bulk reads (the leaderboard) --------------------------------------------------------
    # One query per table however many runs there are, and no status refresh: these never write,
    # so a read-only reader (the app) can call them on a database it must not touch.

    def runs_overview(self, statuses: Iterable[str] | None = None) -> list[dict]:
        """Every run (optionally only these statuses) without its heavy provenance columns."""
        return self._read(reads.runs_overview_query(statuses), "read runs")

    def evaluations_of(self, statuses: Iterable[str] | None = None) -> list[dict]:
        """Evaluation rows {run_id, after_session, eval_set, subset, accuracy, n} of every run
        (optionally only runs with these statuses)."""
        return self._read(reads.evaluations_query(statuses), "read evaluations")

    def session_overview(self, statuses: Iterable[str] | None = None) -> list[dict]:
        """Per-session rows of every run (optionally only these statuses): counts of classes
        and samples instead of the lists, and no facts (`get_run` has them)."""
        return self._read(reads.session_overview_query(statuses), "read sessions")


class LazyStore:
    """A results database that is checked now and opened (the file created) on first use.

    `clbench run` and `clbench tune` check the location at once, so an unwritable path fails
    before any work, but create nothing until a run passes every check on the user's input
    and is about to be recorded: a refused run leaves no empty database behind. Calling the
    object opens the store once and returns it.
    """

    def __init__(self, url: str):
        check_writable(url)
        self.url = url
        self._store: Store | None = None

    def __call__(self) -> Store:
        if self._store is None:
            self._store = Store(self.url)
        return self._store
