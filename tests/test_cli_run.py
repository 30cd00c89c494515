"""End to end: `clbench run` on a shortened proxy scenario, then `runs` and `show` read it back."""

from __future__ import annotations

import json
from statistics import fmean

import pytest

from clbench.cli.main import main
from clbench.store import Store


def test_run_stores_sessions_and_evaluations(tiny_scenario, db_path, capsys):
    code = main(["run", "--strategy", "fft", "--scenario", str(tiny_scenario), "--db",
                 str(db_path), "--seed", "3", "--no-progress"])
    out = capsys.readouterr().out
    assert code == 0
    assert "after session 3/3" in out and "completed" in out

    store = Store(f"sqlite:///{db_path}", create=False)
    runs = store.list_runs()
    assert len(runs) == 1 and runs[0]["status"] == "completed"
    run = store.get_run(runs[0]["id"])
    assert run["strategy"] == "fft" and run["seed"] == 3
    assert run["config"]["training"]["epochs"] == 1  # the scenario's training block applied
    assert run["config"]["training"]["warmup"] == 0.2  # with its per-strategy settings for fft
    assert run["config"]["strategy"] == {"name": "fft", "towers": "vision"}
    assert len(run["config_hash"]) == 16 and run["model_checkpoint_sha256"]
    assert run["packages"]["torch"] == "2.14.1"

    # 3 sessions of 2 disjoint classes, 3 shots each, with their sample ids
    assert [s["index"] for s in run["sessions"]] == [1, 2, 3]
    classes = [c for s in run["sessions"] for c in s["classes"]]
    assert len(classes) == 6 == len(set(classes))
    assert all(len(s["sample_ids"]) == 6 for s in run["sessions"])
    assert all(s["trainable_params"] > 0 and s["train_time_s"] > 0 for s in run["sessions"])

    evals = run["evaluations"]
    keys = {(e["after_session"], e["eval_set"], e["subset"]) for e in evals}
    acc = {(e["after_session"], e["eval_set"], e["subset"]): e["accuracy"] for e in evals}
    for after in range(4):
        assert (after, "proxy", "all") in keys and (after, "proxy-clean", "all") in keys
    # every session's classes are evaluated after every session (0 = zero-shot): j <= i is the
    # accuracy matrix of the classes seen so far, j > i the classes not yet trained (transfer)
    assert {(i, "proxy", f"session:{j}") for i in range(4) for j in (1, 2, 3)} <= keys
    assert not any(s.startswith("session:") for a, n, s in keys if n == "proxy-clean")
    assert run["summary"]["transfer_by_session"] == [pytest.approx(fmean(
        acc[(i, "proxy", f"session:{j}")] for j in range(i + 1, 4))) for i in range(3)]
    assert run["summary"]["average_incremental_accuracy"] == pytest.approx(
        fmean(acc[(i, "proxy", "all")] for i in (1, 2, 3)))
    assert all(0.0 <= e["accuracy"] <= 1.0 and e["n"] > 0 for e in evals)
    full = {e["eval_set"]: e["n"] for e in evals if e["subset"] == "all"}
    per_session = [e["n"] for e in evals if e["after_session"] == 3 and e["subset"] != "all"]
    assert sum(per_session) < full["proxy"]  # 6 of the 20 classes were trained

    summary = run["summary"]
    assert summary["final_accuracy"] == next(
        e["accuracy"] for e in evals if (e["after_session"], e["eval_set"], e["subset"])
        == (3, "proxy", "all"))
    assert set(summary["controls"]) == {"proxy-clean"}
    assert summary["seeds_required"] == 3  # the scenario's `seeds:` (the leaderboard's rule)

    assert main(["runs", "--json", "--db", str(db_path)]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed[0]["id"] == run["id"]
    assert set(listed[0]) == {"id", "status", "strategy", "scenario", "model", "seed",
                              "created_at", "purpose", "source"}
    assert listed[0]["source"] == "built-in"
    assert listed[0]["purpose"] is None  # a run, not a tuning trial
    validation = run["config"]["data"]["validation"]
    assert validation["rule"] == {"per_class": 10} and validation["evaluated_on"] == "test"
    shots = {i for s in run["sessions"] for i in s["sample_ids"]}
    assert len(validation["sample_ids"]) == 60 and not shots & set(validation["sample_ids"])

    assert main(["show", run["id"][:8], "--json", "--db", str(db_path)]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["id"] == run["id"] and shown["provenance"]["packages"]["torch"] == "2.14.1"
    assert set(shown["evaluations"][0]) == {"after_session", "eval_set", "subset", "accuracy",
                                            "n"}
    assert len(shown["evaluations"]) == len(evals)

    assert main(["show", run["id"][:8], "--db", str(db_path)]) == 0
    text = capsys.readouterr().out
    assert "zero-shot" in text and "session 3" in text


def test_zeroshot_run_changes_nothing(tiny_scenario, db_path):
    assert main(["run", "--strategy", "zeroshot", "--scenario", str(tiny_scenario), "--db",
                 str(db_path), "--quiet", "--set", "training.lr=0.25"]) == 0
    run = Store(f"sqlite:///{db_path}", create=False).list_runs()[0]
    run = Store(f"sqlite:///{db_path}", create=False).get_run(run["id"])
    # --set beats the scenario's per-strategy block, which beats its training block
    assert run["training_config"]["lr"] == 0.25 and run["training_config"]["epochs"] == 2
    by_set = {}
    for e in run["evaluations"]:
        if e["subset"] == "all":
            by_set.setdefault(e["eval_set"], set()).add(e["accuracy"])
    assert all(len(values) == 1 for values in by_set.values())  # identical after every session
    assert run["summary"]["target_gain"] == 0.0
    assert all(s["trainable_params"] == 0 for s in run["sessions"])


def test_controls_replace_the_scenarios_eval_sets(tiny_scenario, db_path, capsys):
    assert main(["run", "--strategy", "zeroshot", "--scenario", str(tiny_scenario), "--db",
                 str(db_path), "--quiet", "--controls", "proxy-generic"]) == 0
    store = Store(f"sqlite:///{db_path}", create=False)
    run = store.get_run(store.list_runs()[0]["id"])
    assert {e["eval_set"] for e in run["evaluations"]} == {"proxy", "proxy-generic"}
    assert run["config"]["controls"] == ["proxy-generic"]
    assert "proxy-generic" in run["config"]["dataset_manifest_hashes"]
    capsys.readouterr()
    assert main(["run", "--strategy", "zeroshot", "--scenario", str(tiny_scenario), "--db",
                 str(db_path), "--controls", "proxy-genric"]) == 2
    assert "did you mean: proxy-generic" in capsys.readouterr().err
    assert len(store.list_runs()) == 1  # the failed choice stored nothing


def test_the_command_ends_without_pythons_teardown_once_its_work_is_done(monkeypatch):
    """After a command that imported torch, `console` runs the exit handlers, flushes and
    ends the process (`os._exit`) with main's code; while another Python thread runs it exits
    the ordinary way, which waits for that thread."""
    import atexit
    import threading

    import torch  # noqa: F401 - the command imported the training stack

    from clbench.cli import main as cli

    handlers, ended = [], []
    monkeypatch.setattr(cli, "main", lambda: 3)
    monkeypatch.setattr(atexit, "_run_exitfuncs", lambda: handlers.append("ran"))
    monkeypatch.setattr(cli.os, "_exit", ended.append)
    monkeypatch.setattr(threading, "active_count", lambda: 1)  # the main thread alone
    cli.console()
    assert handlers == ["ran"] and ended == [3]

    monkeypatch.setattr(threading, "active_count", lambda: 2)  # a thread still running
    with pytest.raises(SystemExit) as exited:
        cli.console()
    assert exited.value.code == 3 and ended == [3] and handlers == ["ran"]


def test_qpsolvers_warning_without_a_solver_is_not_shown():
    """Avalanche imports qpsolvers, which warns when no solver package is installed."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", "import clbench, warnings; warnings.warn("
                           "'no QP solver found on your system, you can install solvers')"],
                          capture_output=True, text=True, check=True)
    assert done.stderr == ""
    other = subprocess.run([sys.executable, "-c", "import clbench, warnings; "
                            "warnings.warn('another warning')"], capture_output=True, text=True)
    assert "another warning" in other.stderr  # only that one is silenced
