"""Reading runs back: listings, one run in full, bulk reads for the leaderboard, and finding a
run by id or id prefix (with the closest ids when nothing matches)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session as DbSession

from clbench.names import closest
from clbench.store.errors import StoreError, UnknownRun
from clbench.store.schema import (
    EVAL_FIELDS,
    PREDICTION_FIELDS,
    RUN_COLUMNS,
    SESSION_FIELDS,
    VERIFICATION_FIELDS,
    Evaluation,
    Prediction,
    Run,
    SessionRecord,
    Verification,
    iso,
)

# What the leaderboard reads of every run: everything but config, packages and hardware.
OVERVIEW_COLUMNS = [
    "id", "status", "created_at", "finished_at", "strategy", "strategy_config",
    "strategy_config_hash", "scenario", "model_arch", "model_pretrained", "seed",
    "training_config", "config_hash", "git_sha", "git_dirty", "trainable_params", "total_params",
    "total_time_s", "summary", "error",
]
SESSION_OVERVIEW_FIELDS = ["run_id", "index", "n_classes", "n_samples", "train_time_s",
                           "peak_memory_mb", "trainable_params"]


def model_label(run: Run) -> str:
    return f"{run.model_arch}@{run.model_pretrained}" if run.model_pretrained else run.model_arch


def run_by_id(session: DbSession, run_id: str, where: str) -> Run:
    run = session.get(Run, run_id)
    if run is None:
        raise UnknownRun(f"no run with id {run_id!r} in {where}")
    return run


def list_runs(session: DbSession, limit: int | None = None) -> list[dict]:
    """Runs, newest first, with the fields a listing shows."""
    query = select(Run).order_by(Run.created_at.desc(), Run.id)
    if limit is not None:
        query = query.limit(limit)
    return [
        {
            "id": run.id,
            "status": run.status,
            "strategy": run.strategy,
            "scenario": run.scenario,
            "model": model_label(run),
            "seed": run.seed,
            "created_at": iso(run.created_at),
            "finished_at": iso(run.finished_at),
            "total_time_s": run.total_time_s,
            "error": run.error,
            "summary": run.summary,
            "strategy_source": (run.config or {}).get("strategy_source"),
        }
        for run in session.scalars(query).all()
    ]


def run_detail(session: DbSession, run_id_or_prefix: str, where: str) -> dict:
    """One run with its sessions and evaluations, found by id or unique id prefix."""
    run = find_run(session, run_id_or_prefix, where)
    out: dict[str, Any] = {}
    for key in RUN_COLUMNS:
        value = getattr(run, key)
        out[key] = iso(value) if isinstance(value, datetime) else value
    out["model"] = model_label(run)
    sessions = session.scalars(
        select(SessionRecord).where(SessionRecord.run_id == run.id).order_by(SessionRecord.index)
    ).all()
    out["sessions"] = [{k: getattr(s, k) for k in SESSION_FIELDS} for s in sessions]
    evaluations = session.scalars(
        select(Evaluation)
        .where(Evaluation.run_id == run.id)
        .order_by(Evaluation.after_session, Evaluation.eval_set, Evaluation.subset)
    ).all()
    out["evaluations"] = [{k: getattr(e, k) for k in EVAL_FIELDS} for e in evaluations]
    return out


# -- bulk reads (the leaderboard) -----------------------------------------------------------
# One query per table however many runs there are. Each returns a Core query and its field
# names; Core rows, not ORM entities, are a few times faster on tens of thousands of rows.


def runs_overview_query(statuses: Iterable[str] | None) -> tuple[Any, list[str]]:
    table = Run.__table__
    # where the strategy's code came from, out of the (heavy) config: built-in or third-party
    source = table.c.config["strategy_source"]["source"].as_string()
    submitter = table.c.config["imported"]["submitter"]  # a bundle's declared fields
    query = select(*[table.c[k] for k in OVERVIEW_COLUMNS], source, submitter).order_by(
        Run.created_at, Run.id)
    if statuses is not None:
        query = query.where(Run.status.in_(list(statuses)))
    return query, [*OVERVIEW_COLUMNS, "strategy_source", "submitter"]


def evaluations_query(statuses: Iterable[str] | None) -> tuple[Any, list[str]]:
    fields = ["run_id", *EVAL_FIELDS]
    table = Evaluation.__table__
    query = select(*[table.c[k] for k in fields])
    return _of_status(query, table, statuses), fields


def session_overview_query(statuses: Iterable[str] | None) -> tuple[Any, list[str]]:
    table = SessionRecord.__table__
    query = select(table.c.run_id, table.c.index, func.json_array_length(table.c.classes),
                   func.json_array_length(table.c.sample_ids), table.c.train_time_s,
                   table.c.peak_memory_mb, table.c.trainable_params)
    return _of_status(query, table, statuses), SESSION_OVERVIEW_FIELDS


def _of_status(query: Any, table: Any, statuses: Iterable[str] | None) -> Any:
    if statuses is None:
        return query
    runs = Run.__table__
    return query.join(runs, runs.c.id == table.c.run_id).where(
        runs.c.status.in_(list(statuses)))


# -- predictions and verifications ----------------------------------------------------------


def predictions_of(session: DbSession, run_id: str) -> list[dict]:
    """A run's per-sample predictions, in evaluation order ([] if none were recorded)."""
    rows = session.scalars(select(Prediction).where(Prediction.run_id == run_id)
                           .order_by(Prediction.after_session, Prediction.eval_set)).all()
    return [{k: getattr(p, k) for k in PREDICTION_FIELDS} for p in rows]


def verifications_of(session: DbSession, run_id: str) -> list[dict]:
    rows = session.scalars(select(Verification).where(Verification.run_id == run_id)
                           .order_by(Verification.created_at)).all()
    return [{k: iso(v) if isinstance(v, datetime) else v
             for k in VERIFICATION_FIELDS for v in [getattr(r, k)]} for r in rows]


def verified_run_ids(session: DbSession) -> set[str]:
    """Runs reproduced within tolerance on another host or by another person."""
    return set(session.scalars(select(Verification.run_id).where(
        Verification.within_tolerance.is_(True), Verification.independent.is_(True))).all())


def duplicate_of(session: DbSession, run: dict) -> str | None:
    """A stored run that ran the same protocol: same config hash, scenario manifest hash,
    model (architecture, tag, checkpoint) and seed."""
    keys = ("config_hash", "scenario_manifest_hash", "model_arch", "model_pretrained",
            "model_checkpoint_sha256", "seed")
    query = select(Run.id).where(*[
        getattr(Run, k).is_(None) if run.get(k) is None else getattr(Run, k) == run[k]
        for k in keys])
    return session.scalars(query.limit(1)).first()


# -- finding a run --------------------------------------------------------------------------


def find_run(session: DbSession, run_id_or_prefix: str, where: str) -> Run:
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
        return run_by_id(session, matches[0], where)
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
            f"no run {run_id_or_prefix!r}: {where} holds no runs yet",
            hint="record one with `clbench run ...`",
        )
    suggestions = closest_ids(prefix, list(known))
    raise UnknownRun(
        f"no run {run_id_or_prefix!r} (closest: {', '.join(suggestions)})",
        hint="`clbench runs` lists the run ids",
    )


def closest_ids(prefix: str, known: list[str], n: int = 3) -> list[str]:
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
