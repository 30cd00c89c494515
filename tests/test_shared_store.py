"""Many runs, one store: 8 `clbench run` processes at once on one SQLite file and on one
PostgreSQL database all complete with every row present; a new PostgreSQL store is created,
stamped and checked like an SQLite one.

PostgreSQL comes from Debian's `postgresql` package, started on 127.0.0.1 by
`scripts/postgres.sh` (`.ci/run` does it and sets CLBENCH_TEST_PG_URL). Under CI its absence
is a failure, elsewhere a skip.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import TINY_SCENARIO

from clbench.store import Store

RUNS = 8
SESSIONS, CLASSES_PER_SESSION, SHOTS = 3, 2, 3
# per run: after sessions 0..3, the target (all + each session's classes) and one control
EVALUATIONS = (SESSIONS + 1) * (1 + SESSIONS + 1)
PREDICTIONS = (SESSIONS + 1) * 2


def run_at_once(url: str, scenario: Path, count: int = RUNS) -> list[subprocess.CompletedProcess]:
    """`count` runs (seeds 0..count-1) started together, one thread each."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen(
        [sys.executable, "-m", "clbench", "run", "--strategy", "fft", "--scenario",
         str(scenario), "--seed", str(seed), "--db", url, "--no-progress", "--quiet"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for seed in range(count)]
    done = []
    for proc in procs:
        out, err = proc.communicate(timeout=900)
        done.append(subprocess.CompletedProcess(proc.args, proc.returncode, out, err))
    return done


def check_every_row(url: str) -> int:
    """Every run completed with all its rows; returns how many runs there are."""
    with Store(url, create=False) as store:
        runs = store.list_runs()
        assert len(runs) == RUNS and {r["status"] for r in runs} == {"completed"}
        assert sorted(r["seed"] for r in runs) == list(range(RUNS))
        for r in runs:
            run = store.get_run(r["id"])
            assert [s["index"] for s in run["sessions"]] == [1, 2, 3]
            assert all(len(s["sample_ids"]) == CLASSES_PER_SESSION * SHOTS
                       for s in run["sessions"])
            assert len(run["evaluations"]) == EVALUATIONS
            assert len(store.predictions_of(r["id"])) == PREDICTIONS
        return len(runs)


def _concurrent(url: str, tmp_path: Path) -> int:
    scenario = tmp_path / "proxy-tiny.yaml"
    scenario.write_text(TINY_SCENARIO)
    Store(url).close()  # the store exists before the runs race to it
    for done in run_at_once(url, scenario):
        assert done.returncode == 0, done.stderr[-2000:]
    return check_every_row(url)


@pytest.mark.multirun
def test_eight_runs_at_once_on_one_sqlite_file(tmp_path):
    assert _concurrent(f"sqlite:///{tmp_path / 'shared.db'}", tmp_path) == RUNS


def test_eight_runs_at_once_on_one_postgres_database(pg_url, tmp_path):
    assert _concurrent(pg_url, tmp_path) == RUNS


def test_a_postgres_store_is_created_stamped_and_checked(pg_url, capsys):
    from clbench.cli.main import main

    with Store(pg_url) as store:
        run_id = store.create_run(
            strategy="ln", strategy_config={}, scenario="s", scenario_manifest_hash=None,
            model_arch="tiny", model_pretrained=None, model_checkpoint_sha256=None, seed=0,
            config={"strategy_source": {"source": "built-in"}}, config_hash="h",
            training_config={}, provenance={})
        store.beat(run_id)
        store.add_predictions(run_id, [{"after_session": 0, "eval_set": "e",
                                        "predicted": [0, 1], "labels": [0, 0]}])
        assert store.runs_overview()[0]["strategy_source"] == "built-in"
    assert main(["db", "current", "--db", pg_url]) == 0
    assert "up to date" in capsys.readouterr().out
