"""A results database that disappears in the middle of a run (PostgreSQL behind a TCP relay the
test cuts): the run stops with a clear error, stores no half of the session in flight, is marked
failed by the first reader once the database is back, and resumes from its last checkpoint to
the rows of an uninterrupted run."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading

from sqlalchemy.engine import make_url
from test_resume import _wait_for_checkpoint, scenario, stored_rows, uninterrupted  # noqa: F401

from clbench.store import Store


class Relay:
    """A TCP relay to the database that the test can cut (every connection closed, new ones
    closed at once, as when a server or its network goes away) and restore."""

    def __init__(self, host: str, port: int):
        self.target = (host, port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.up = True
        self.open: list[socket.socket] = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if not self.up:
                client.close()
                continue
            server = socket.create_connection(self.target)
            with self.lock:
                self.open += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.close()
                except OSError:
                    pass

    def cut(self) -> None:
        self.up = False
        with self.lock:
            for s in self.open:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            self.open = []

    def restore(self) -> None:
        self.up = True


def test_a_store_that_disappears_mid_run(pg_url, scenario, tmp_path, monkeypatch):  # noqa: F811
    url = make_url(pg_url)
    relay = Relay(url.host or "127.0.0.1", url.port or 5432)
    via_relay = url.set(host="127.0.0.1", port=relay.port).render_as_string(hide_password=False)
    Store(via_relay).close()
    base = tmp_path / "checkpoints"
    proc = subprocess.Popen(
        [sys.executable, "-m", "clbench", "run", "--strategy", "lorsu", "--scenario",
         str(scenario), "--seed", "3", "--db", via_relay, "--checkpoint-dir", str(base),
         "--no-progress", "--quiet"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "CLBENCH_STALE_AFTER_S": "60"})
    folder = _wait_for_checkpoint(base, 1, proc)
    relay.cut()  # the database goes away while session 2 trains
    _, err = proc.communicate(timeout=300)
    run_id = folder.name
    assert proc.returncode == 2, err[-3000:]
    assert "Traceback" not in err
    assert "error: cannot record session 2 of run" in err
    assert f"hint: the results database could not be reached to mark run {run_id} failed" in err
    assert f"`clbench run --resume {run_id}`" in err

    relay.restore()
    monkeypatch.setenv("CLBENCH_STALE_AFTER_S", "0")  # no need to wait a minute here
    with Store(pg_url, create=False) as store:
        run = store.get_run(run_id)  # the first reader marks it failed
    assert run["status"] == "failed" and "no heartbeat" in run["error"]
    assert [s["index"] for s in run["sessions"]] == [1]  # nothing of session 2
    assert {e["after_session"] for e in run["evaluations"]} == {0, 1}

    resumed = subprocess.run(
        [sys.executable, "-m", "clbench", "run", "--resume", run_id, "--db", pg_url,
         "--no-progress", "--quiet"], capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert stored_rows(pg_url, run_id) == uninterrupted("lorsu", scenario, tmp_path)
