"""The writing half of `Store`: a run's life in the database, from "running" to "completed"
or "failed", session by session, each call one transaction (records built by `writes`)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from clbench.store import reads, writes
from clbench.store.base import StoreBase, retried_when_locked
from clbench.store.errors import StoreError, UnknownRun


class StoreWriter(StoreBase):
    """Writes of a `Store`: every one refused at once on a store opened read-only."""

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
