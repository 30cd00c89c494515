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

from sqlalchemy import select
from sqlalchemy.orm import Session as DbSession

from clbench.hashing import canonical_hash
from clbench.store.errors import InvalidRecord
from clbench.store.liveness import run_alive
from clbench.store.schema import EVAL_FIELDS, Evaluation, Run, SessionRecord, utcnow

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
    for run in session.scalars(select(Run).where(Run.status == "running")).all():
        if run_alive(run):
            continue
        fail(run, f"process {run.pid} ended without finishing the run (killed?)")
        marked += 1
    return marked
