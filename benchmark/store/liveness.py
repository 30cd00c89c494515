"""Is a "running" run still being worked on? The one decision `Store.mark_stale_runs` asks.

A run in progress writes a heartbeat (`runs.heartbeat_at`) every `HEARTBEAT_S` seconds from a
background thread (`Heartbeat`), whatever machine runs it. Any reader, on any host, takes a
"running" run whose last heartbeat (before the first one: its start) is older than the stale
time as dead, and marks it failed with that reason, as Optuna's database storage does with
stale trials. The stale time, `CLBENCH_STALE_AFTER_S` (default 60 s), is several heartbeats, so
a slow database write or a busy machine does not kill a live run.

A reader on the run's own host need not wait that long: when no process has the run's pid any
more (or the process that has it started after the run last beat, so the pid was reused), the
run's process is gone and the run is failed at once, so that `clbench run --resume` right after
`kill -9` works. Runs of other hosts are judged by their heartbeat alone: their pids mean
nothing here. "This host" is the host name (never "localhost"), so two machines (or containers
with their own process ids) that share a host name and a store would misjudge each other's
runs; give them distinct names. Without psutil, a pid that exists counts as the run's (no
reuse check: the heartbeat rule then decides).
"""

from __future__ import annotations

import os
import socket
import threading
from datetime import datetime, timezone

from clbench.store.schema import Run

HEARTBEAT_S = 10.0  # how often a run in progress says so
DEFAULT_STALE_AFTER_S = 60.0
# how much later than the run's last sign of life its pid's process may seem to have started and
# still be taken as the run's: process start times are known to about a second
START_SLACK_S = 2.0
# host names that many machines and containers share: they name no host, so pids mean nothing
ANONYMOUS_HOSTS = frozenset({"", "localhost", "localhost.localdomain"})


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
    """Whether the "running" run `run` may still be in progress: it beat recently enough and,
    if it runs on this host, its process is still there."""
    return silent_for(run, now) <= stale_after_s() and not process_gone(run)


def process_gone(run: Run) -> bool:
    """Whether `run` ran on this host and no process of its pid can be the run's: none has
    the pid, it is a zombie, or it started after the run last said it was alive (the pid was
    reused). False whenever that cannot be known (another host, no pid, no permission)."""
    if (run.hostname != socket.gethostname() or run.hostname in ANONYMOUS_HOSTS
            or not run.pid or run.pid <= 0):
        return False
    try:
        import psutil
    except ImportError:
        return _pid_missing(run.pid)
    try:
        process = psutil.Process(run.pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return True
        started = process.create_time()
    except psutil.NoSuchProcess:
        return True
    except psutil.Error:  # AccessDenied: someone's process, maybe the run's
        return False
    alive_at = latest_sign_of_life(run)
    return alive_at is not None and started > alive_at.timestamp() + START_SLACK_S


def _pid_missing(pid: int) -> bool:
    """No psutil: whether no process has `pid` (POSIX only; elsewhere unknown, so False)."""
    if os.name != "posix":
        return False
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return True
    except OSError:  # PermissionError: it exists, as another user's
        return False
    return False


def latest_sign_of_life(run: Run) -> datetime | None:
    """The latest time the process with the run's pid is known to have existed. The latest of
    the three: a resumed run's start was written by an earlier process, its heartbeat by the
    one that has its pid now."""
    times = [t for t in (run.heartbeat_at, run.started_at, run.created_at) if t is not None]
    return max(times) if times else None


def stale_reason(run: Run, now: datetime | None = None) -> str:
    last = last_sign_of_life(run)
    when = last.isoformat(timespec="seconds") if last else "never"
    if silent_for(run, now) <= stale_after_s() and process_gone(run):
        return (f"its process (pid {run.pid} on this host, {run.hostname}) is gone: it was "
                f"killed or crashed (the last heartbeat at {when})")
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
