"""Serving the leaderboard with `clbench app` in tests: a free local port, the command started
on it, and waiting until its health endpoint answers (on 127.0.0.1 only; no network)."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_app(db: Path, port: int) -> subprocess.Popen:
    """`clbench app` on `db`, bound to 127.0.0.1:`port`, its output discarded."""
    return subprocess.Popen([sys.executable, "-m", "clbench", "app", "--db", str(db), "--port",
                             str(port), "--address", "127.0.0.1"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def wait_healthy(port: int, proc: subprocess.Popen, timeout: float = 60) -> None:
    # no proxy handler: an http_proxy in the environment must not send a loopback request out
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"clbench app exited with {proc.returncode}")
        try:
            with opener.open(f"http://127.0.0.1:{port}/_stcore/health", timeout=2):
                return
        except OSError:
            time.sleep(0.3)
    raise TimeoutError(f"the app did not answer on port {port} in {timeout:.0f} s")
