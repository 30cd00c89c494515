"""The reading half of `Store`: listings and one run in full (after marking stale runs failed
when the store can write), and the leaderboard's bulk reads (queries built by `reads`)."""

from __future__ import annotations

from collections.abc import Iterable

from clbench.store import reads
from clbench.store.base import StoreBase
from clbench.store.errors import StoreError


class StoreReader(StoreBase):
    """Reads of a `Store`. A listing first marks stale runs failed (`StoreWriter.mark_stale_runs`,
    the other half of `Store`) when the store can write, so that no status it shows is stale."""

    def _refresh_statuses(self) -> None:
        """Keep statuses true before a read; a reader that cannot write just reads."""
        if not self.writable:
            return
        try:
            self.mark_stale_runs()
        except StoreError:
            pass

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
