"""Is a "running" run still being worked on? The one decision `Store.mark_stale_runs` asks.

A run in progress writes a heartbeat (`runs.heartbeat_at`) every `HEARTBEAT_S` seconds from a
background thread (`Heartbeat`), whatever machine runs it. Any reader, on any host, takes a
"running" run whose last heartbeat (before the first one: its start) is older than the stale
time as dead, and marks it failed with that reason, as Optuna's database storage does with
stale trials. Nothing looks at processes, so runs of many machines sharing one PostgreSQL
store are judged alike. The stale time, `CLBENCH_STALE_AFTER_S` (default 60 s), is several
heartbeats, so a slow database write or a busy machine does not kill a live run.
"""

from __future__ import annotations

import os
import threading
from datetime import datetime, timezone

from clbench.store.schema import Run

HEARTBEAT_S = 10.0  # how often a run in progress says so
DEFAULT_STALE_AFTER_S = 60.0


def stale_after_s() -> float:
    """Seconds without a heartbeat after which a run counts as dead ($CLBENCH_STALE_AFTER_S)."""
    raw = os.environ.get("CLBENCH_STALE_AFTER_S")
    try:
        value = float(raw) if raw else DEFAULT_STALE_AFTER_S
    except ValueError:
        value = DEFAULT_STALE_AFTER_S
    return max(value, 0.0)


def last_sign_of_life(run: Run) -> datetime | None:
    return run.heartbeat_at or run.started_at or run.created_at


def silent_for(run: Run, now: datetime | None = None) -> float:
    """Seconds since the run last said it was alive."""
    last = last_sign_of_life(run)
    if last is None:
        return float("inf")
    return ((now or datetime.now(timezone.utc)) - last).total_seconds()


def run_alive(run: Run, now: datetime | None = None) -> bool:
    """Whether the "running" run `run` may still be in progress: it beat recently enough."""
    return silent_for(run, now) <= stale_after_s()


def stale_reason(run: Run, now: datetime | None = None) -> str:
    last = last_sign_of_life(run)
    when = last.isoformat(timespec="seconds") if last else "never"
    return (f"no heartbeat for {silent_for(run, now):.0f} s (the last at {when}, from "
            f"{run.hostname} pid {run.pid}): the process was killed or its machine is gone")


class Heartbeat:
    """While the `with` block runs, `beat()` every `every_s` seconds from a daemon thread.
    A failed beat (the database briefly unreachable) is skipped, never raised: the run goes
    on, and a reader marks it dead only after the stale time."""

    def __init__(self, beat, every_s: float = HEARTBEAT_S):
        self._beat, self._every = beat, every_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="clbench-heartbeat",
                                        daemon=True)

    def _loop(self) -> None:
        while not self._stop.wait(self._every):
            try:
                self._beat()
            except Exception:  # noqa: BLE001 - a missed beat must not stop the run
                continue

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
