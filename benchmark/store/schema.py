"""The schema of the results database: the tables, their version and how values are stored.

`SCHEMA_VERSION` is written to `schema_info` when a database is created; a database written by
another version is refused when it is opened (see `opening.py`), and one written by an older
version is brought up to date by `clbench db upgrade` (the migrations in `migrations/`, one
revision per version: a change here needs a new revision there and a bump here).
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

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
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

SCHEMA_VERSION = 2


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _json_default(obj: Any) -> Any:
    """Make numpy scalars/arrays, paths and sets JSON-able without importing numpy here."""
    if hasattr(obj, "tolist"):  # numpy scalars and arrays, torch tensors
        return obj.tolist()
    if isinstance(obj, (set, frozenset)):
        return sorted(obj, key=str)
    return str(obj)


def json_dumps(obj: Any) -> str:
    """The engine's JSON serialiser."""
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
    # written every few seconds while the run is in progress, from whatever host runs it: a
    # "running" run without a recent one is taken as dead by any reader (`liveness`)
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class SessionRecord(Base):
    """One training session of a run (not a database session: those are `DbSession`)."""

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


class Prediction(Base):
    """The predicted class index of every sample of one evaluation (an eval set after a
    session), with the true labels, in the eval set's order: any metric can be recomputed
    from a stored result, and an imported one is checked against its accuracies."""

    __tablename__ = "predictions"
    __table_args__ = (
        UniqueConstraint("run_id", "after_session", "eval_set", name="uq_predictions_key"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    after_session: Mapped[int] = mapped_column(Integer)
    eval_set: Mapped[str] = mapped_column(String(200))
    predicted: Mapped[Any] = mapped_column(JSON)
    labels: Mapped[Any] = mapped_column(JSON)


class Verification(Base):
    """A reproduction of a run (`clbench reproduce`): who, where and when, the largest
    difference of any stored accuracy, and whether it was within the declared tolerance.
    A run reproduced within tolerance on another host or by another person is "verified"."""

    __tablename__ = "verifications"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    reproduction_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    verifier: Mapped[str] = mapped_column(String(255))
    host: Mapped[str] = mapped_column(String(255))
    max_difference: Mapped[float] = mapped_column(Float)  # accuracy points
    tolerance: Mapped[float] = mapped_column(Float)  # accuracy points
    within_tolerance: Mapped[bool] = mapped_column(Boolean)
    independent: Mapped[bool] = mapped_column(Boolean)  # another host or another person


RUN_COLUMNS = [c.key for c in Run.__table__.columns]
SESSION_FIELDS = [
    "index", "classes", "sample_ids", "train_time_s", "peak_memory_mb", "final_loss",
    "trainable_params", "facts",
]
EVAL_FIELDS = ["after_session", "eval_set", "subset", "accuracy", "n"]
PREDICTION_FIELDS = ["after_session", "eval_set", "predicted", "labels"]
VERIFICATION_FIELDS = ["reproduction_id", "created_at", "verifier", "host", "max_difference",
                       "tolerance", "within_tolerance", "independent"]
