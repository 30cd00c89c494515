"""The results database: runs, their sessions, and the evaluations after every session.

Every run of the benchmark is recorded here, and the leaderboard app and the quick CLI commands
(`clbench runs`, `clbench show`) read it back. It is a plain SQLAlchemy 2.x ORM over an SQLite
file by default; any SQLAlchemy URL works (e.g. PostgreSQL for a shared leaderboard).

Two promises shape the code:

- A run's status is always true. Writes happen call by call, each in its own transaction, so a
  crash loses at most the session in flight; a run whose process died without saying so (SIGKILL,
  OOM killer, power loss) is marked failed by `mark_stale_runs`, which readers call first.
- Opening is cheap. This module must not import torch, avalanche or open_clip, so that
  `clbench runs` answers in well under two seconds.

The schema is versioned in `schema_info`; a database written by another schema version is
refused with a message saying what was found, what is expected and what to do about it.
"""

from __future__ import annotations

import json
import os
import re
import socket
import sys
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    create_engine,
    event,
    inspect,
    select,
    update,
)
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.exc import ArgumentError, IntegrityError, NoSuchModuleError, SQLAlchemyError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

from clbench.errors import UserError
from clbench.hashing import canonical_hash
from clbench.names import closest

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = [
    "DEFAULT_DB",
    "SCHEMA_VERSION",
    "InvalidRecord",
    "Store",
    "StoreError",
    "UnknownRun",
    "resolve_db_url",
]

DEFAULT_DB = "clbench.db"
SCHEMA_VERSION = 1
RUN_STATUSES = ("running", "completed", "failed")

_DB_HINT = "pass --db PATH (or set CLBENCH_DB) to use a results database at a writable location"
_SUBSET_RE = re.compile(r"^(all|session:[1-9][0-9]*)$")
# A pid counts as reused when its process started this long after the run did (clock slack).
_PID_REUSE_SLACK_S = 60.0


class StoreError(UserError):
    """The results database cannot be opened, read or written as asked."""


class UnknownRun(StoreError):
    """No run has the id (or id prefix) that was asked for."""


class InvalidRecord(StoreError, ValueError):
    """A value the store refuses to record (e.g. an accuracy outside [0, 1]).

    It is also a ValueError because it usually means a bug in the caller, not a user mistake.
    """


def resolve_db_url(db: str | None = None) -> str:
    """The database URL to use: the `db` argument, else env CLBENCH_DB, else ./clbench.db.

    A plain path (anything without "://") becomes an SQLite URL with the absolute path, so the
    same run recorded from two working directories lands in the file the user named.
    """
    chosen = db or os.environ.get("CLBENCH_DB") or DEFAULT_DB
    if "://" in chosen:
        return chosen
    return "sqlite:///" + str(Path(chosen).expanduser().absolute())


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _json_default(obj: Any) -> Any:
    """Make numpy scalars/arrays, paths and sets JSON-able without importing numpy here."""
    if hasattr(obj, "tolist"):  # numpy scalars and arrays, torch tensors
        return obj.tolist()
    if isinstance(obj, (set, frozenset)):
        return sorted(obj, key=str)
    return str(obj)


def _json_dumps(obj: Any) -> str:
    return json.dumps(obj, default=_json_default)


class UTCDateTime(TypeDecorator):
    """Timezone-aware UTC datetimes, stored as naive UTC (SQLite has no time zones)."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; use datetime.now(timezone.utc)")
        return value.astimezone(timezone.utc).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)


# SQL NULL (not the JSON text "null") for absent JSON values, so `IS NULL` queries work.
NullableJSON = JSON(none_as_null=True)


class Base(DeclarativeBase):
    pass


class SchemaInfo(Base):
    __tablename__ = "schema_info"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(255))


class Run(Base):
    __tablename__ = "runs"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    status: Mapped[str] = mapped_column(String(16), index=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    strategy: Mapped[str] = mapped_column(String(200), index=True)
    strategy_config: Mapped[Any] = mapped_column(JSON)
    strategy_config_hash: Mapped[str] = mapped_column(String(64))
    scenario: Mapped[str] = mapped_column(String(200), index=True)
    scenario_manifest_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    model_arch: Mapped[str] = mapped_column(String(200))
    model_pretrained: Mapped[str | None] = mapped_column(String(200), nullable=True)
    model_checkpoint_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    seed: Mapped[int] = mapped_column(Integer)
    config: Mapped[Any] = mapped_column(JSON)
    config_hash: Mapped[str] = mapped_column(String(64))
    training_config: Mapped[Any] = mapped_column(JSON)
    git_sha: Mapped[str | None] = mapped_column(String(64), nullable=True)
    git_dirty: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    packages: Mapped[Any] = mapped_column(NullableJSON, nullable=True)
    hardware: Mapped[Any] = mapped_column(NullableJSON, nullable=True)
    trainable_params: Mapped[int | None] = mapped_column(Integer, nullable=True)
    total_params: Mapped[int | None] = mapped_column(Integer, nullable=True)
    total_time_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    pid: Mapped[int] = mapped_column(Integer)
    hostname: Mapped[str] = mapped_column(String(255))
    summary: Mapped[Any] = mapped_column(NullableJSON, nullable=True)


class SessionRecord(Base):
    """One training session of a run (named so it does not clash with sqlalchemy's Session)."""

    __tablename__ = "sessions"
    __table_args__ = (UniqueConstraint("run_id", "index", name="uq_sessions_run_index"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    index: Mapped[int] = mapped_column(Integer)
    classes: Mapped[Any] = mapped_column(JSON)
    sample_ids: Mapped[Any] = mapped_column(JSON)
    train_time_s: Mapped[float] = mapped_column(Float)
    peak_memory_mb: Mapped[float | None] = mapped_column(Float, nullable=True)
    final_loss: Mapped[float | None] = mapped_column(Float, nullable=True)
    trainable_params: Mapped[int | None] = mapped_column(Integer, nullable=True)
    facts: Mapped[Any] = mapped_column(JSON)


class Evaluation(Base):
    __tablename__ = "evaluations"
    __table_args__ = (
        UniqueConstraint(
            "run_id", "after_session", "eval_set", "subset", name="uq_evaluations_key"
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    after_session: Mapped[int] = mapped_column(Integer)
    eval_set: Mapped[str] = mapped_column(String(200))
    subset: Mapped[str] = mapped_column(String(64))
    accuracy: Mapped[float] = mapped_column(Float)
    n: Mapped[int] = mapped_column(Integer)


_RUN_COLUMNS = [c.key for c in Run.__table__.columns]
_SESSION_FIELDS = [
    "index", "classes", "sample_ids", "train_time_s", "peak_memory_mb", "final_loss",
    "trainable_params", "facts",
]
_EVAL_FIELDS = ["after_session", "eval_set", "subset", "accuracy", "n"]
# What the leaderboard reads of every run: everything but config, packages and hardware.
_OVERVIEW_COLUMNS = [
    "id", "status", "created_at", "finished_at", "strategy", "strategy_config",
    "strategy_config_hash", "scenario", "model_arch", "model_pretrained", "seed",
    "training_config", "config_hash", "git_sha", "git_dirty", "trainable_params", "total_params",
    "total_time_s", "summary", "error",
]


def _model_label(run: Run) -> str:
    return f"{run.model_arch}@{run.model_pretrained}" if run.model_pretrained else run.model_arch


def _run_dict(run: Run) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in _RUN_COLUMNS:
        value = getattr(run, key)
        out[key] = _iso(value) if isinstance(value, datetime) else value
    out["model"] = _model_label(run)
    return out


def _sqlite_path(url: URL) -> Path | None:
    """The file behind an SQLite URL, or None for in-memory and URI-style databases."""
    if url.get_backend_name() != "sqlite":
        return None
    database = url.database
    if not database or database == ":memory:" or url.query.get("uri") or database.startswith(
        "file:"
    ):
        return None
    return Path(database).expanduser()


def _unwritable_reason(path: Path) -> str | None:
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
    if path.exists() and not os.access(path, os.W_OK):
        return f"no permission to write {path}"
    # SQLite writes its journal next to the file, so the directory must be writable too.
    if not os.access(parent, os.W_OK):
        return f"no permission to write in directory {parent}"
    return None


def _proc_stat(pid: int) -> tuple[str, float | None] | None:
    """(state letter, start time as Unix time) of process `pid` from Linux /proc; None if unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        # Fields after the parenthesised command name: state is field 3, starttime field 22
        # (clock ticks since boot).
        fields = stat.rsplit(")", 1)[1].split()
        state, start_ticks = fields[0], int(fields[19])
    except (OSError, ValueError, IndexError):
        return None
    boot_time = None
    try:
        for line in Path("/proc/stat").read_text().splitlines():
            if line.startswith("btime "):
                boot_time = int(line.split()[1])
                break
    except (OSError, ValueError, IndexError):
        pass
    started = None if boot_time is None else boot_time + start_ticks / os.sysconf("SC_CLK_TCK")
    return state, started


def _pid_alive(pid: int, since: datetime | None) -> bool:
    """Whether `pid` is still the process that started a run at `since`.

    Errs on the side of "alive": marking a live run failed would be worse than a late mark.
    """
    if pid == os.getpid():
        return True
    if os.name == "nt":  # os.kill(pid, 0) would terminate the process on Windows
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # exists, owned by someone else
    stat = _proc_stat(pid)
    if stat is None:
        return True
    state, started = stat
    if state in ("Z", "X"):
        return False  # exited, waiting for its parent to reap it
    if since is not None and started is not None:
        # A process that started well after the run did reused the pid of the run's process.
        return started <= since.timestamp() + _PID_REUSE_SLACK_S
    return True


class Store:
    """The results database. Each method is one transaction, committed before it returns."""

    def __init__(self, url: str, create: bool = True):
        self.url = url
        self.create = create
        try:
            parsed = make_url(url)
        except ArgumentError as exc:
            raise StoreError(f"not a database URL: {url!r} ({exc})", hint=_DB_HINT) from exc
        self._path = _sqlite_path(parsed)
        self._where = str(self._path) if self._path is not None else parsed.render_as_string()
        self._check_location()
        self.engine = self._make_engine(parsed)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        try:
            self._open_schema()
        except StoreError:
            self.engine.dispose()
            raise
        except SQLAlchemyError as exc:
            self.engine.dispose()
            raise self._open_error(exc) from exc
        self.writable = create or self._looks_writable()

    # -- opening --------------------------------------------------------------------------

    def _check_location(self) -> None:
        if self._path is None:
            return
        if not self.create:
            if not self._path.is_file():
                raise StoreError(
                    f"no results database at {self._path}; run `clbench run ...` first",
                    hint="or pass --db PATH / set CLBENCH_DB to the database you meant",
                )
            return
        reason = _unwritable_reason(self._path)
        if reason:
            raise StoreError(
                f"cannot write the results database at {self._path}: {reason}", hint=_DB_HINT
            )

    def _make_engine(self, parsed: URL) -> Engine:
        kwargs: dict[str, Any] = {"json_serializer": _json_dumps}
        if parsed.get_backend_name() == "sqlite":
            # Wait for a concurrent writer (another run, a reader marking stale runs) instead of
            # failing at once with "database is locked".
            kwargs["connect_args"] = {"timeout": 30}
        try:
            engine = create_engine(parsed, **kwargs)
        except (NoSuchModuleError, ImportError, ArgumentError) as exc:
            raise StoreError(
                f"cannot open the results database {self._where}: {exc}",
                hint="install the database driver, or " + _DB_HINT,
            ) from exc
        if parsed.get_backend_name() == "sqlite":
            event.listen(engine, "connect", _enable_sqlite_foreign_keys)
        return engine

    def _open_schema(self) -> None:
        """Create tables if asked, then insist on this module's schema version."""
        with self.engine.begin() as conn:
            if self.create and self.engine.dialect.name == "sqlite":
                # Take the write lock first: two runs starting on a fresh file would otherwise
                # both try to create the tables, and pysqlite would commit DDL piecemeal.
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            tables = set(inspect(conn).get_table_names())
            if "schema_info" not in tables:
                if not self.create:
                    raise StoreError(
                        f"{self._where} is not a clbench results database (no schema_info table)",
                        hint=_DB_HINT,
                    )
                if "runs" in tables:
                    raise StoreError(
                        f"{self._where} has a runs table but no schema version; it was not "
                        "written by clbench",
                        hint=_DB_HINT,
                    )
                Base.metadata.create_all(conn)
                conn.execute(
                    SchemaInfo.__table__.insert().values(
                        key="schema_version", value=str(SCHEMA_VERSION)
                    )
                )
            found = conn.execute(
                select(SchemaInfo.value).where(SchemaInfo.key == "schema_version")
            ).scalar_one_or_none()
            self._check_version(found)
            if self.create:
                # Tables that exist already need no write, so write once to prove we can, now
                # rather than at the end of the first training session.
                conn.execute(
                    update(SchemaInfo)
                    .where(SchemaInfo.key == "schema_version")
                    .values(value=str(SCHEMA_VERSION))
                )

    def _check_version(self, found: str | None) -> None:
        try:
            version = int(found) if found is not None else None
        except ValueError:
            version = None
        if version == SCHEMA_VERSION:
            return
        if version is None:
            raise StoreError(
                f"{self._where} has no readable schema version (found {found!r}); "
                f"this clbench expects schema version {SCHEMA_VERSION}",
                hint=_DB_HINT,
            )
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"{self._where} has results schema version {version}, newer than the version "
                f"{SCHEMA_VERSION} this clbench expects",
                hint="upgrade clbench to read it, or " + _DB_HINT,
            )
        raise StoreError(
            f"{self._where} has results schema version {version}, older than the version "
            f"{SCHEMA_VERSION} this clbench expects",
            hint="move the old database aside (or keep it for an older clbench), or " + _DB_HINT,
        )

    def _open_error(self, exc: SQLAlchemyError) -> StoreError:
        detail = str(getattr(exc, "orig", None) or exc).strip()
        if "not a database" in detail:
            return StoreError(f"{self._where} is not an SQLite database ({detail})", hint=_DB_HINT)
        verb = "write" if self.create else "read"
        return StoreError(
            f"cannot {verb} the results database at {self._where}: {detail}", hint=_DB_HINT
        )

    def _looks_writable(self) -> bool:
        if self._path is None:
            return True
        return _unwritable_reason(self._path) is None

    # -- plumbing -------------------------------------------------------------------------

    @contextmanager
    def _tx(self, what: str) -> Iterator[Session]:
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
            raise StoreError(f"cannot {what} in {self._where}: {detail}", hint=_DB_HINT) from exc

    def _run(self, session: Session, run_id: str) -> Run:
        run = session.get(Run, run_id)
        if run is None:
            raise UnknownRun(f"no run with id {run_id!r} in {self._where}")
        return run

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self.engine.dispose()

    # -- writing --------------------------------------------------------------------------

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
        now = _utcnow()
        run = Run(
            id=uuid.uuid4().hex,
            status="running",
            created_at=now,
            started_at=now,
            strategy=strategy,
            strategy_config=strategy_config,
            strategy_config_hash=canonical_hash(strategy_config),
            scenario=scenario,
            scenario_manifest_hash=scenario_manifest_hash,
            model_arch=model_arch,
            model_pretrained=model_pretrained,
            model_checkpoint_sha256=model_checkpoint_sha256,
            seed=int(seed),
            config=config,
            config_hash=config_hash,
            training_config=training_config,
            git_sha=provenance.get("git_sha"),
            git_dirty=provenance.get("git_dirty"),
            packages=provenance.get("packages"),
            hardware=provenance.get("hardware"),
            pid=os.getpid(),
            hostname=socket.gethostname(),
        )
        with self._tx("record the new run") as session:
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
        if int(index) < 1:
            raise InvalidRecord(f"session index must be >= 1, got {index}")
        record = SessionRecord(
            run_id=run_id,
            index=int(index),
            classes=list(classes),
            sample_ids=[str(s) for s in sample_ids],
            train_time_s=float(train_time_s),
            peak_memory_mb=None if peak_memory_mb is None else float(peak_memory_mb),
            final_loss=None if final_loss is None else float(final_loss),
            trainable_params=None if trainable_params is None else int(trainable_params),
            facts=dict(facts or {}),
        )
        with self._tx(f"record session {index} of run {run_id}") as session:
            self._run(session, run_id)
            session.add(record)

    def add_evaluations(self, run_id: str, rows: Iterable[dict]) -> None:
        """Record accuracies; all rows are checked first and written together, or none is."""
        records = [_evaluation(run_id, row) for row in rows]
        with self._tx(f"record evaluations of run {run_id}") as session:
            self._run(session, run_id)
            session.add_all(records)

    def set_params(self, run_id: str, *, trainable_params: int, total_params: int) -> None:
        with self._tx(f"record parameter counts of run {run_id}") as session:
            run = self._run(session, run_id)
            run.trainable_params = int(trainable_params)
            run.total_params = int(total_params)

    def complete_run(self, run_id: str, *, summary: dict, total_time_s: float) -> None:
        with self._tx(f"complete run {run_id}") as session:
            run = self._run(session, run_id)
            run.status = "completed"
            run.error = None
            run.summary = summary
            run.total_time_s = float(total_time_s)
            run.finished_at = _utcnow()

    def fail_run(self, run_id: str, error: str) -> None:
        """Mark a run failed with its error. Called from error handlers, so it only raises
        when the run does not exist; a database failure is reported on stderr instead."""
        try:
            with self._tx(f"mark run {run_id} failed") as session:
                run = self._run(session, run_id)
                run.status = "failed"
                run.error = str(error)
                run.finished_at = _utcnow()
        except UnknownRun:
            raise
        except StoreError as exc:
            print(f"warning: could not mark run {run_id} failed: {exc}", file=sys.stderr)

    def mark_stale_runs(self) -> int:
        """Mark failed the "running" runs of this host whose process is gone; returns how many.

        Their finished_at is the time this was noticed, the best the store knows.
        """
        host = socket.gethostname()
        marked = 0
        with self._tx("mark stale runs") as session:
            running = session.scalars(
                select(Run).where(Run.status == "running", Run.hostname == host)
            ).all()
            for run in running:
                if _pid_alive(run.pid, run.started_at):
                    continue
                run.status = "failed"
                run.error = f"process {run.pid} ended without finishing the run (killed?)"
                run.finished_at = _utcnow()
                marked += 1
        return marked

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
        query = select(Run).order_by(Run.created_at.desc(), Run.id)
        if limit is not None:
            query = query.limit(limit)
        with self._tx("list runs") as session:
            runs = session.scalars(query).all()
            return [
                {
                    "id": run.id,
                    "status": run.status,
                    "strategy": run.strategy,
                    "scenario": run.scenario,
                    "model": _model_label(run),
                    "seed": run.seed,
                    "created_at": _iso(run.created_at),
                    "finished_at": _iso(run.finished_at),
                    "total_time_s": run.total_time_s,
                    "error": run.error,
                    "summary": run.summary,
                }
                for run in runs
            ]

    def get_run(self, run_id_or_prefix: str) -> dict:
        """One run with its sessions and evaluations, found by id or unique id prefix."""
        self._refresh_statuses()
        with self._tx("read run") as session:
            run = self._find_run(session, run_id_or_prefix)
            out = _run_dict(run)
            sessions = session.scalars(
                select(SessionRecord)
                .where(SessionRecord.run_id == run.id)
                .order_by(SessionRecord.index)
            ).all()
            out["sessions"] = [{k: getattr(s, k) for k in _SESSION_FIELDS} for s in sessions]
            evaluations = session.scalars(
                select(Evaluation)
                .where(Evaluation.run_id == run.id)
                .order_by(Evaluation.after_session, Evaluation.eval_set, Evaluation.subset)
            ).all()
            out["evaluations"] = [{k: getattr(e, k) for k in _EVAL_FIELDS} for e in evaluations]
            return out

    # -- bulk reads (the leaderboard) --------------------------------------------------------
    # One query per table however many runs there are, and no status refresh: these never write,
    # so a read-only reader (the app) can call them on a database it must not touch.

    def runs_overview(self, statuses: Iterable[str] | None = None) -> list[dict]:
        """Every run (optionally only these statuses) without its heavy provenance columns."""
        query = select(*[Run.__table__.c[k] for k in _OVERVIEW_COLUMNS]).order_by(
            Run.created_at, Run.id)
        if statuses is not None:
            query = query.where(Run.status.in_(list(statuses)))
        return self._read(query, _OVERVIEW_COLUMNS, "read runs")

    def evaluations_of(self, statuses: Iterable[str] | None = None) -> list[dict]:
        """Evaluation rows {run_id, after_session, eval_set, subset, accuracy, n} of every run
        (optionally only runs with these statuses)."""
        fields = ["run_id", *_EVAL_FIELDS]
        table = Evaluation.__table__
        query = select(*[table.c[k] for k in fields])
        return self._read(self._of_status(query, table, statuses), fields, "read evaluations")

    def session_overview(self, statuses: Iterable[str] | None = None) -> list[dict]:
        """Per-session rows of every run (optionally only these statuses): counts of classes
        and samples instead of the lists, and no facts (`get_run` has them)."""
        from sqlalchemy import func

        table = SessionRecord.__table__
        fields = ["run_id", "index", "n_classes", "n_samples", "train_time_s", "peak_memory_mb",
                  "trainable_params"]
        query = select(table.c.run_id, table.c.index, func.json_array_length(table.c.classes),
                       func.json_array_length(table.c.sample_ids), table.c.train_time_s,
                       table.c.peak_memory_mb, table.c.trainable_params)
        return self._read(self._of_status(query, table, statuses), fields, "read sessions")

    @staticmethod
    def _of_status(query: Any, table: Any, statuses: Iterable[str] | None) -> Any:
        if statuses is None:
            return query
        runs = Run.__table__
        return query.join(runs, runs.c.id == table.c.run_id).where(
            runs.c.status.in_(list(statuses)))

    def _read(self, query: Any, fields: list[str], what: str) -> list[dict]:
        # Core rows, not ORM entities: a few times faster on tens of thousands of rows.
        with self._tx(what) as session:
            rows = session.connection().execute(query).all()
        return [dict(zip(fields, row)) for row in rows]

    def _find_run(self, session: Session, run_id_or_prefix: str) -> Run:
        # Accept the dashed uuid form and any case, as people paste ids from many places.
        prefix = run_id_or_prefix.strip().lower().replace("-", "")
        if not prefix:
            raise StoreError("empty run id", hint="`clbench runs` lists the run ids")
        run = session.get(Run, prefix)
        if run is not None:
            return run
        matches = session.scalars(
            select(Run.id).where(Run.id.startswith(prefix, autoescape=True)).order_by(Run.id)
        ).all()
        if len(matches) == 1:
            return self._run(session, matches[0])
        if matches:
            shown = ", ".join(matches[:10]) + (" ..." if len(matches) > 10 else "")
            raise StoreError(
                f"run id prefix {run_id_or_prefix!r} is ambiguous: {len(matches)} runs match "
                f"({shown})",
                hint="give more characters of the id",
            )
        known = session.scalars(select(Run.id)).all()
        if not known:
            raise UnknownRun(
                f"no run {run_id_or_prefix!r}: {self._where} holds no runs yet",
                hint="record one with `clbench run ...`",
            )
        suggestions = _closest_ids(prefix, known)
        raise UnknownRun(
            f"no run {run_id_or_prefix!r} (closest: {', '.join(suggestions)})",
            hint="`clbench runs` lists the run ids",
        )


def _closest_ids(prefix: str, known: list[str], n: int = 3) -> list[str]:
    """Ids sharing the longest leading run of characters with `prefix` (a typo'd paste),
    falling back to fuzzy similarity of the same length of id."""

    def common(run_id: str) -> int:
        k = 0
        while k < min(len(prefix), len(run_id)) and prefix[k] == run_id[k]:
            k += 1
        return k

    fuzzy = closest(prefix, [i[: len(prefix)] for i in known], n=len(known))
    rank = {head: r for r, head in enumerate(fuzzy)}
    ordered = sorted(known, key=lambda i: (-common(i), rank.get(i[: len(prefix)], len(known)), i))
    return ordered[:n]


def _evaluation(run_id: str, row: dict) -> Evaluation:
    missing = [k for k in _EVAL_FIELDS if k not in row]
    if missing:
        raise InvalidRecord(f"evaluation row {row!r} lacks {', '.join(missing)}")
    accuracy = float(row["accuracy"])
    if not 0.0 <= accuracy <= 1.0:  # also rejects NaN
        raise InvalidRecord(
            f"accuracy must be in [0, 1], got {accuracy} "
            f"(after session {row['after_session']}, {row['eval_set']}, {row['subset']})"
        )
    n = int(row["n"])
    if n < 0:
        raise InvalidRecord(f"sample count n must be >= 0, got {n}")
    after = int(row["after_session"])
    if after < 0:
        raise InvalidRecord(f"after_session must be >= 0, got {after}")
    subset = str(row["subset"])
    if not _SUBSET_RE.match(subset):
        raise InvalidRecord(f"subset must be 'all' or 'session:<j>', got {subset!r}")
    eval_set = str(row["eval_set"])
    if not eval_set:
        raise InvalidRecord("eval_set must be a non-empty name")
    return Evaluation(
        run_id=run_id,
        after_session=after,
        eval_set=eval_set,
        subset=subset,
        accuracy=accuracy,
        n=n,
    )


def _enable_sqlite_foreign_keys(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()
