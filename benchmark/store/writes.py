"""Building the records the store writes, and refusing values it must not record.

The functions here build ORM objects or change loaded ones; `Store` runs each call in its own
transaction.
"""

from __future__ import annotations

import os
import re
import socket
import uuid
from collections.abc import Iterable

from sqlalchemy import delete, select
from sqlalchemy.orm import Session as DbSession

from clbench.hashing import canonical_hash
from clbench.store.errors import InvalidRecord
from clbench.store.liveness import run_alive, stale_reason
from clbench.store.schema import (
    EVAL_FIELDS,
    RUN_COLUMNS,
    Evaluation,
    Prediction,
    Run,
    SessionRecord,
    UTCDateTime,
    Verification,
    utcnow,
)

_SUBSET_RE = re.compile(r"^(all|session:[1-9][0-9]*)$")


def new_run(*, strategy: str, strategy_config: dict, scenario: str,
            scenario_manifest_hash: str | None, model_arch: str, model_pretrained: str | None,
            model_checkpoint_sha256: str | None, seed: int, config: dict, config_hash: str,
            training_config: dict, provenance: dict) -> Run:
    """A new run, "running", started now by this process on this host."""
    now = utcnow()
    return Run(
        id=uuid.uuid4().hex,
        status="running",
        created_at=now,
        started_at=now,
        heartbeat_at=now,
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


def session_record(run_id: str, *, index: int, classes: list[str], sample_ids: list[str],
                   train_time_s: float, peak_memory_mb: float | None = None,
                   final_loss: float | None = None, trainable_params: int | None = None,
                   facts: dict | None = None) -> SessionRecord:
    if int(index) < 1:
        raise InvalidRecord(f"session index must be >= 1, got {index}")
    return SessionRecord(
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


def evaluation_records(run_id: str, rows: Iterable[dict]) -> list[Evaluation]:
    """Every row checked before any is recorded."""
    return [_evaluation(run_id, row) for row in rows]


def _evaluation(run_id: str, row: dict) -> Evaluation:
    missing = [k for k in EVAL_FIELDS if k not in row]
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


def prediction_records(run_id: str, rows: Iterable[dict]) -> list[Prediction]:
    """Per-sample predictions, every row checked first: equal lengths, class indices >= 0."""
    return [_prediction(run_id, row) for row in rows]


def _prediction(run_id: str, row: dict) -> Prediction:
    where = f"after session {row.get('after_session')}, {row.get('eval_set')}"
    predicted, labels = list(row.get("predicted") or []), list(row.get("labels") or [])
    if len(predicted) != len(labels):
        raise InvalidRecord(f"predictions ({where}): {len(predicted)} predicted classes for "
                            f"{len(labels)} labels")
    if any(not isinstance(v, int) or isinstance(v, bool) or v < 0 for v in predicted + labels):
        raise InvalidRecord(f"predictions ({where}): class indices must be integers >= 0")
    return Prediction(run_id=run_id, after_session=int(row["after_session"]),
                      eval_set=str(row["eval_set"]), predicted=predicted, labels=labels)


def verification(run_id: str, *, reproduction_id: str | None, verifier: str, host: str,
                 max_difference: float, tolerance: float, within_tolerance: bool,
                 independent: bool) -> Verification:
    return Verification(run_id=run_id, reproduction_id=reproduction_id, created_at=utcnow(),
                        verifier=verifier, host=host, max_difference=float(max_difference),
                        tolerance=float(tolerance), within_tolerance=bool(within_tolerance),
                        independent=bool(independent))


_TIMES = [c.key for c in Run.__table__.columns if isinstance(c.type, UTCDateTime)]


def add_imported(session: DbSession, run: dict) -> None:
    """A completed run from a bundle, its sessions, evaluations and predictions (checked by
    the caller; the records' own checks apply again here)."""
    from datetime import datetime

    fields = {k: run.get(k) for k in RUN_COLUMNS}
    for key in _TIMES:
        if isinstance(fields[key], str):
            fields[key] = datetime.fromisoformat(fields[key])
    if session.get(Run, fields["id"]) is not None:
        raise InvalidRecord(f"run {fields['id']} is already in the store")
    session.add(Run(**fields))
    session.flush()  # the run first: the other rows point at it
    for s in run.get("sessions", []):
        session.add(session_record(fields["id"], **{k: v for k, v in s.items()}))
    session.add_all(evaluation_records(fields["id"], run.get("evaluations", [])))
    session.add_all(prediction_records(fields["id"], run.get("predictions", [])))


def complete(run: Run, *, summary: dict, total_time_s: float) -> None:
    run.status = "completed"
    run.error = None
    run.summary = summary
    run.total_time_s = float(total_time_s)
    run.finished_at = utcnow()


def fail(run: Run, error: str) -> None:
    run.status = "failed"
    run.error = str(error)
    run.finished_at = utcnow()


def mark_stale(session: DbSession) -> int:
    """Mark failed the "running" runs that `liveness.run_alive` says are gone; returns how
    many. Their finished_at is the time this was noticed, the best the store knows."""
    marked = 0
    now = utcnow()
    for run in session.scalars(select(Run).where(Run.status == "running")).all():
        if run_alive(run, now):
            continue
        fail(run, stale_reason(run, now))
        marked += 1
    return marked


def beat(run: Run) -> None:
    """The run's heartbeat: it is still being worked on."""
    run.heartbeat_at = utcnow()


def drop_sessions_after(session: DbSession, run_id: str, after_session: int) -> None:
    """Delete a run's session, evaluation and prediction rows of sessions after
    `after_session`."""
    session.execute(delete(SessionRecord).where(SessionRecord.run_id == run_id,
                                                SessionRecord.index > after_session))
    for table in (Evaluation, Prediction):
        session.execute(delete(table).where(table.run_id == run_id,
                                            table.after_session > after_session))


def reopen(run: Run, note: dict) -> None:
    """A failed run running again in this process; `note` joins its config's `resumes`."""
    run.status = "running"
    run.error = None
    run.finished_at = None
    run.summary = None
    run.heartbeat_at = utcnow()
    run.pid = os.getpid()
    run.hostname = socket.gethostname()
    config = dict(run.config or {})
    config["resumes"] = [*config.get("resumes", []), note]
    run.config = config  # a new object: SQLAlchemy does not see changes inside a JSON value
