"""Is a "running" run still being worked on? The one decision `Store.mark_stale_runs` asks.

Today it looks at the run's process on this host (psutil); runs of other hosts are taken as
alive, since their processes cannot be seen from here (a cross-machine heartbeat would go into
`run_alive`). Every doubt counts as alive: marking a live run failed would be worse than
marking a dead one late.
"""

from __future__ import annotations

import os
import socket
from datetime import datetime

import psutil

from clbench.store.schema import Run

# A pid counts as reused when its process started this long after the run did (clock slack).
PID_REUSE_SLACK_S = 60.0


def run_alive(run: Run) -> bool:
    """Whether the "running" run `run` may still be in progress."""
    if run.hostname != socket.gethostname():
        return True  # its process is on another machine: nothing here says it is gone
    return pid_alive(run.pid, run.started_at)


def pid_alive(pid: int, since: datetime | None) -> bool:
    """Whether `pid` is still the process that started a run at `since` (None: unknown)."""
    if pid == os.getpid():
        return True
    try:
        if not psutil.pid_exists(pid):
            return False
        process = psutil.Process(pid)
        if process.status() in (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD):
            return False  # exited, waiting for its parent to reap it
        started = process.create_time()
    except psutil.ZombieProcess:
        return False
    except psutil.NoSuchProcess:
        return False
    except (psutil.Error, OSError, ValueError):
        return True  # exists but cannot be inspected (another user's, a restricted platform)
    if since is not None:
        # A process that started well after the run did reused the pid of the run's process.
        return started <= since.timestamp() + PID_REUSE_SLACK_S
    return True
