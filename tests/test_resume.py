"""Resume after a crash: a run killed with SIGKILL in the middle of session 3 and resumed ends
with exactly the stored rows of an uninterrupted run with the same seed, on SQLite and on
PostgreSQL; every built-in strategy resumes to the same rows; checkpoints are written
atomically, loaded without unpickling, deleted after completion unless kept; a plugin that
does not declare how it resumes is never resumed; and every bad `--resume` is one line, exit 2,
with nothing lost."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from clbench.run import checkpoints
from clbench.store import Store

RESUME_SCENARIO = """\
name: proxy-resume
description: proxy stream for the kill-and-resume tests (4 sessions of 2 classes, 4 shots)
target: proxy
protocol: few-shot
shots: 4
sessions:
  sizes: [2, 2, 2, 2]
  order: dataset
eval_sets: [proxy-clean]
training:
  epochs: 8
  batch_size: 4
  lr: 1.0e-4
"""
# what varies between two runs of the same seed: times and memory, the checkpoints' cost, and
# whether the zero-shot evaluation was computed or reused from the cache (same numbers)
VARYING_SESSION = ("train_time_s", "peak_memory_mb")
VARYING_SUMMARY = ("checkpoint_cost", "reused")


@pytest.fixture(scope="module")
def scenario(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("scenario") / "proxy-resume.yaml"
    path.write_text(RESUME_SCENARIO)
    return path


def config_for(strategy: str, scenario: Path, **params):
    from clbench.run.settings import resolve_for_scenario
    from clbench.scenarios.manifests import load_scenario_manifest

    raw = {"strategy": {"name": strategy, **params}, "scenario": str(scenario), "seed": 3}
    return resolve_for_scenario(raw, load_scenario_manifest(str(scenario)))


def stored_rows(url: str, run_id: str) -> dict:
    """Everything a run stored that an uninterrupted run with the same seed must match."""
    with Store(url, create=False) as store:
        run = store.get_run(run_id)
        predictions = sorted(store.predictions_of(run_id),
                             key=lambda p: (p["after_session"], p["eval_set"]))
    sessions = [{k: v for k, v in s.items() if k not in VARYING_SESSION}
                for s in run["sessions"]]
    summary = {k: v for k, v in (run["summary"] or {}).items() if k not in VARYING_SUMMARY}
    return {"status": run["status"], "sessions": sessions, "evaluations": run["evaluations"],
            "predictions": predictions, "summary": summary,
            "trainable_params": run["trainable_params"]}


def uninterrupted(strategy: str, scenario: Path, tmp_path: Path, **params) -> dict:
    from clbench.run.runner import run

    url = f"sqlite:///{tmp_path / 'uninterrupted.db'}"
    result = run(config_for(strategy, scenario, **params), Store(url), progress=False,
                 quiet=True)
    return stored_rows(url, result.run_id)


# --------------------------------------------------------------------------- kill and resume


def _clbench(*args: str, env: dict | None = None, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "clbench", *args],
                            env={**os.environ, **(env or {})}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kwargs)


def _wait_for_checkpoint(base: Path, after_session: int, proc: subprocess.Popen) -> Path:
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        for manifest in base.glob(f"*/{checkpoints.MANIFEST}"):
            try:
                if json.loads(manifest.read_text())["after_session"] == after_session:
                    return manifest.parent
            except (OSError, ValueError, KeyError):
                pass  # being replaced this instant
        if proc.poll() is not None:
            raise AssertionError(f"the run ended before session {after_session}'s checkpoint: "
                                 f"{proc.stderr.read()[-2000:]}")
        time.sleep(0.01)
    raise AssertionError(f"no checkpoint of session {after_session} within 300 s")


def kill_in_session_3_and_resume(url: str, scenario: Path, base: Path) -> tuple[str, dict]:
    """SIGKILL `clbench run` in session 3 (after session 2's checkpoint, before session 3's
    rows), then `clbench run --resume`; (run id, what the store held at the kill)."""
    proc = _clbench("run", "--strategy", "lorsu", "--scenario", str(scenario), "--seed", "3",
                    "--db", url, "--checkpoint-dir", str(base), "--no-progress", "--quiet")
    folder = _wait_for_checkpoint(base, 2, proc)
    time.sleep(0.15)  # into session 3's training
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    run_id = folder.name
    with Store(url, create=False) as store:
        at_kill = store.get_run(run_id)
    resumed = _clbench("run", "--resume", run_id[:10], "--db", url, "--no-progress",
                       env={"CLBENCH_STALE_AFTER_S": "0"})  # the killed run is stale at once
    out, err = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, err[-3000:]
    assert "resuming after session 2/4" in out
    return run_id, at_kill


def check_killed_and_resumed(url: str, scenario: Path, tmp_path: Path) -> None:
    base = tmp_path / "checkpoints"
    run_id, at_kill = kill_in_session_3_and_resume(url, scenario, base)
    # killed in session 3: sessions 1 and 2 stored, nothing of session 3; the first reader on
    # this host marks it failed at once, its process being gone
    assert at_kill["status"] == "failed" and "is gone" in at_kill["error"]
    assert [s["index"] for s in at_kill["sessions"]] == [1, 2]
    assert {e["after_session"] for e in at_kill["evaluations"]} == {0, 1, 2}
    resumed = stored_rows(url, run_id)
    reference = uninterrupted("lorsu", scenario, tmp_path)
    assert resumed == reference  # same numbers, same facts, no duplicate or partial session
    assert [s["index"] for s in resumed["sessions"]] == [1, 2, 3, 4]
    assert len(resumed["evaluations"]) == 5 * (1 + 4 + 1)  # after 0..4: all + 4 sessions, control
    assert len(resumed["predictions"]) == 5 * 2  # after 0..4: target and control
    with Store(url, create=False) as store:
        note, = store.get_run(run_id)["config"]["resumes"]
    assert note["after_session"] == 2 and "forced" not in note
    assert not (base / run_id).exists()  # deleted once the run completed


@pytest.mark.spawns
def test_sigkill_in_session_3_and_resume_equals_an_uninterrupted_run_on_sqlite(scenario,
                                                                             tmp_path):
    check_killed_and_resumed(f"sqlite:///{tmp_path / 'killed.db'}", scenario, tmp_path)


@pytest.mark.spawns
def test_sigkill_in_session_3_and_resume_equals_an_uninterrupted_run_on_postgres(
        scenario, tmp_path, pg_url):
    check_killed_and_resumed(pg_url, scenario, tmp_path)


# --------------------------------------------------------------------------- every strategy


class SimulatedCrash(RuntimeError):
    pass


def crash_after_checkpoint(monkeypatch, session: int) -> None:
    """The run dies right after session `session`'s checkpoint is committed."""
    from clbench.run.checkpoints import SessionCheckpoints

    save = SessionCheckpoints.save

    def saving_then_crashing(self, after_session, session_start, state):
        save(self, after_session, session_start, state)
        if after_session == session:
            raise SimulatedCrash(f"simulated crash after session {session}")

    monkeypatch.setattr(SessionCheckpoints, "save", saving_then_crashing)


def crashed_run(strategy: str, scenario: Path, tmp_path: Path, monkeypatch, *, session: int = 2,
                **params) -> tuple[str, str, Path]:
    """(store url, run id, checkpoint base) of a run that crashed after `session`."""
    from clbench.run.runner import run

    url = f"sqlite:///{tmp_path / 'crashed.db'}"
    base = tmp_path / "checkpoints"
    with monkeypatch.context() as patch:
        crash_after_checkpoint(patch, session)
        with pytest.raises(SimulatedCrash):
            run(config_for(strategy, scenario, **params), Store(url), progress=False,
                quiet=True, checkpoints=checkpoints.CheckpointPolicy(base))
    with Store(url, create=False) as store:
        run_id, = [r["id"] for r in store.list_runs()]
    return url, run_id, base


# lorsu in the default tier (the `--resume` path end to end); every other strategy in the second
@pytest.mark.parametrize("strategy,params", [
    ("lorsu", {}), *(pytest.param(s, p, marks=pytest.mark.multirun) for s, p in [
        ("zeroshot", {}), ("fft", {}), ("ln", {}), ("lora", {}),
        ("lora", {"merge_each_session": True}), ("dora", {}), ("gated-lora", {}), ("spu", {}),
        ("llu", {})]),
], ids=lambda v: v if isinstance(v, str) else ",".join(f"{k}={x}" for k, x in v.items()))
def test_every_strategy_resumes_to_the_rows_of_an_uninterrupted_run(strategy, params, scenario,
                                                                     tmp_path, monkeypatch):
    from clbench.run.resume import resume

    url, run_id, _ = crashed_run(strategy, scenario, tmp_path, monkeypatch, **params)
    with Store(url, create=False) as store:
        assert store.get_run(run_id)["status"] == "failed"
        resume(run_id, store, progress=False, quiet=True)
    assert stored_rows(url, run_id) == uninterrupted(strategy, scenario, tmp_path, **params)


# --------------------------------------------------------------------------- undeclared state

UNDECLARED = "the strategy plugin plug_stateful.Stateful declares no resume behaviour"


@pytest.fixture
def stateful(tmp_path, monkeypatch):
    """The strategy `stateful` of an installed-looking package (no pip), forgotten after."""
    from plugin_packages import STATEFUL_PLUGIN, fake_distribution

    monkeypatch.syspath_prepend(str(fake_distribution(
        tmp_path / "site", "clbench-stateful", "0.1", {"stateful": "plug_stateful:Stateful"},
        {"plug_stateful": STATEFUL_PLUGIN})))
    yield "stateful"
    sys.modules.pop("plug_stateful", None)


def crash_in_session(monkeypatch, session: int) -> None:
    """The run dies as session `session` starts, checkpointed or not."""
    from clbench.training.loop import SessionTrainer

    train = SessionTrainer.train

    def crashing(self, experience, *args, **kwargs):
        if experience.current_experience + 1 == session:
            raise SimulatedCrash(f"simulated crash in session {session}")
        return train(self, experience, *args, **kwargs)

    monkeypatch.setattr(SessionTrainer, "train", crashing)


def test_resume_refuses_a_plugin_that_declares_no_resume_state(stateful, scenario, tmp_path,
                                                               monkeypatch, capsys):
    """Its run is recorded as not resumable when it starts (with a warning) and writes no
    checkpoint; `--resume` refuses it, naming the plugin and what to implement, with nothing
    changed; a sweep starts it again instead, saying why. (Crashed as session 1 starts: where
    it crashes does not matter, it has no checkpoint; the next test crashes one after a
    session.)"""
    from clbench.run.runner import run
    from clbench.sweep.executors import _resume

    url = f"sqlite:///{tmp_path / 'stateful.db'}"
    base = tmp_path / "checkpoints"
    with monkeypatch.context() as patch:
        crash_in_session(patch, 1)
        with pytest.raises(SimulatedCrash):
            run(config_for(stateful, scenario), Store(url), progress=False, quiet=True,
                checkpoints=checkpoints.CheckpointPolicy(base))
    warned = capsys.readouterr().err
    with Store(url, create=False) as store:
        (failed,) = store.list_runs()
        run_id = failed["id"]
        recorded = store.get_run(run_id)["config"]
    err = refused(["run", "--resume", run_id, "--db", url], capsys, url, run_id, base / run_id)
    assert f"run {run_id} cannot be resumed: {UNDECLARED}" in err
    for what in ("`resume_state()`", "`load_resume_state(state)`",
                 "`stateless_between_sessions = True`", "check_resume"):
        assert what in err
    assert UNDECLARED in recorded["not_resumable"] and recorded["checkpoint_dir"] is None
    assert not base.exists()
    assert f"warning: run {run_id[:12]} is not checkpointed and cannot be resumed" in warned
    assert _resume(run_id, url, {}) is None  # a sweep: not resumed, started again
    said = capsys.readouterr().out
    assert f"the failed attempt {run_id[:12]} is not resumed: run {run_id} cannot be resumed: " \
        f"{UNDECLARED}" in said and "starting the run again from its first session" in said


@pytest.mark.slow
def test_resume_refuses_a_checkpointed_run_whose_plugin_declares_nothing(stateful, scenario,
                                                                       tmp_path, monkeypatch,
                                                                       capsys):
    """A run checkpointed after session 2 while its plugin declared itself stateless (or
    before clbench asked: it resumed such runs silently, to other numbers) is refused once the
    installed plugin declares nothing, its checkpoint kept."""
    from clbench.strategies import registry

    plugin_class = registry.load_class(stateful)
    with monkeypatch.context() as patch:
        patch.setattr(plugin_class, "stateless_between_sessions", True, raising=False)
        url, run_id, base = crashed_run(stateful, scenario, tmp_path, monkeypatch)
    assert checkpoints.find(base / run_id)["after_session"] == 2
    err = refused(["run", "--resume", run_id, "--db", url], capsys, url, run_id, base / run_id)
    assert f"run {run_id} cannot be resumed: {UNDECLARED}" in err


# --------------------------------------------------------------------------- checkpoint files


def test_a_checkpoint_is_committed_by_its_manifest_and_keeps_only_the_latest(tmp_path):
    import torch

    folder = tmp_path / "run"
    checkpoints.save(folder, 1, {"w": torch.ones(3)})
    checkpoints.save(folder, 2, {"w": torch.full((3,), 2.0)})
    assert sorted(p.name for p in folder.iterdir()) == ["checkpoint.json", "session-2.pt"]
    after, state = checkpoints.load(folder)
    assert after == 2 and state["w"].tolist() == [2.0, 2.0, 2.0]


def test_a_checkpoint_holding_a_pickled_object_is_refused_on_load(tmp_path):
    """weights_only: a state file that would run code on unpickling is never loaded."""
    import torch

    folder = tmp_path / "run"
    checkpoints.save(folder, 1, {"w": torch.ones(1)})
    evil = folder / "session-1.pt"
    torch.save({"w": SimulatedCrash("an arbitrary object")}, evil)
    manifest = json.loads((folder / checkpoints.MANIFEST).read_text())
    manifest["sha256"] = checkpoints.file_sha256(evil)  # even with a matching hash
    (folder / checkpoints.MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(checkpoints.CheckpointError, match="cannot be loaded"):
        checkpoints.load(folder)


@pytest.mark.multirun
def test_a_full_disk_fails_the_run_with_a_clear_error_and_the_previous_checkpoint_resumes(
        scenario, tmp_path, monkeypatch):
    """Writing session 2's checkpoint hits ENOSPC halfway: the run is failed with the error,
    no temporary file is left, session 1's checkpoint still commits, and the run resumes from
    it to the rows of an uninterrupted run."""
    import errno

    import torch

    from clbench.run.resume import resume
    from clbench.run.runner import run

    real_save = torch.save
    calls = {"n": 0}

    def filling_the_disk(obj, handle, *args, **kwargs):
        calls["n"] += "model" in obj  # a session checkpoint (not a zero-shot cache entry)
        if "model" in obj and calls["n"] == 2:  # session 2's state file
            handle.write(b"\0" * 4096)
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_save(obj, handle, *args, **kwargs)

    url = f"sqlite:///{tmp_path / 'full.db'}"
    base = tmp_path / "checkpoints"
    with monkeypatch.context() as patch:
        patch.setattr(torch, "save", filling_the_disk)
        with pytest.raises(checkpoints.CheckpointError) as caught:
            run(config_for("lorsu", scenario), Store(url), progress=False, quiet=True,
                checkpoints=checkpoints.CheckpointPolicy(base))
    assert "No space left on device" in str(caught.value) and "free space" in caught.value.hint
    with Store(url, create=False) as store:
        failed, = store.list_runs()
        detail = store.get_run(failed["id"])
    assert failed["status"] == "failed" and "No space left on device" in detail["error"]
    assert [s["index"] for s in detail["sessions"]] == [1, 2]  # whole sessions, never half
    folder = base / failed["id"]
    assert sorted(p.name for p in folder.iterdir()) == ["checkpoint.json", "session-1.pt"]
    with Store(url, create=False) as store:
        resume(failed["id"], store, progress=False, quiet=True)
    assert stored_rows(url, failed["id"]) == uninterrupted("lorsu", scenario, tmp_path)


@pytest.mark.slow
def test_keep_checkpoints_keeps_the_last_one(scenario, tmp_path):
    from clbench.cli.main import main

    db = tmp_path / "kept.db"
    assert main(["run", "--strategy", "ln", "--scenario", str(scenario), "--db", str(db),
                 "--no-progress", "--quiet", "--keep-checkpoints"]) == 0
    folder, = (tmp_path / "kept.checkpoints").iterdir()  # beside the store by default
    assert checkpoints.find(folder)["after_session"] == 4


def test_no_checkpoints_writes_none_and_cannot_be_resumed(scenario, tmp_path, monkeypatch,
                                                          capsys):
    from clbench.cli.main import main
    from clbench.run.runner import run

    url = f"sqlite:///{tmp_path / 'none.db'}"
    with monkeypatch.context() as patch:
        patch.setattr("clbench.training.loop.SessionTrainer._after_training_exp",
                      lambda self, **kw: (_ for _ in ()).throw(SimulatedCrash("boom")))
        with pytest.raises(SimulatedCrash):
            run(config_for("ln", scenario), Store(url), progress=False, quiet=True)
    assert not (tmp_path / "none.checkpoints").exists()
    with Store(url, create=False) as store:
        run_id = store.list_runs()[0]["id"]
    assert main(["run", "--resume", run_id, "--db", url]) == 2
    assert "without checkpoints" in capsys.readouterr().err


# --------------------------------------------------------------------------- bad --resume


def _snapshot(url: str, run_id: str, folder: Path | None) -> tuple:
    with Store(url, create=False) as store:
        run = store.get_run(run_id)
    files = ({p.name: p.read_bytes() for p in folder.iterdir()}
             if folder is not None and folder.exists() else None)
    return run["status"], run["error"], run["sessions"], run["evaluations"], files


@pytest.fixture
def crashed(scenario, tmp_path, monkeypatch):
    return crashed_run("lorsu", scenario, tmp_path, monkeypatch)


def refused(argv: list[str], capsys, url: str, run_id: str, folder: Path | None) -> str:
    """Run the CLI, expect exit 2 with a one-line error and nothing changed; the error."""
    from clbench.cli.main import main

    before = _snapshot(url, run_id, folder)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err
    assert _snapshot(url, run_id, folder) == before
    return err


def test_resume_refuses_an_unknown_id_naming_the_closest(crashed, capsys):
    url, run_id, base = crashed
    wrong = ("0" if run_id[0] != "0" else "1") + run_id[1:12]
    err = refused(["run", "--resume", wrong, "--db", url], capsys, url, run_id, base / run_id)
    assert wrong in err


@pytest.mark.slow
def test_resume_refuses_a_completed_run(scenario, tmp_path, capsys):
    from clbench.run.runner import run

    url = f"sqlite:///{tmp_path / 'done.db'}"
    run_id = run(config_for("ln", scenario), Store(url), progress=False, quiet=True).run_id
    err = refused(["run", "--resume", run_id, "--db", url], capsys, url, run_id, None)
    assert "is completed: there is nothing to resume" in err


@pytest.mark.slow
def test_resume_refuses_a_run_still_running(crashed, capsys):
    url, run_id, base = crashed
    with Store(url, create=False) as store:  # as if its process were alive and beating
        store.reopen_run(run_id, after_session=2, note={"test": "alive"})
    err = refused(["run", "--resume", run_id, "--db", url], capsys, url, run_id, base / run_id)
    assert "still running" in err


@pytest.mark.slow
def test_resume_refuses_a_missing_checkpoint(crashed, capsys):
    url, run_id, base = crashed
    checkpoints.delete(base / run_id)
    err = refused(["run", "--resume", run_id, "--db", url], capsys, url, run_id, None)
    assert "has no checkpoint in" in err


@pytest.mark.slow
def test_resume_refuses_a_corrupt_checkpoint(crashed, capsys):
    url, run_id, base = crashed
    state = base / run_id / "session-2.pt"
    data = bytearray(state.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte in the middle of the weights
    state.write_bytes(bytes(data))
    err = refused(["run", "--resume", run_id, "--db", url], capsys, url, run_id, base / run_id)
    assert "is corrupt" in err


@pytest.mark.multirun
def test_resume_refuses_changed_code_unless_forced_and_records_it(crashed, capsys,
                                                                 monkeypatch):
    from clbench.cli.main import main
    from clbench.run import provenance

    url, run_id, base = crashed
    real = provenance.code_fingerprint
    monkeypatch.setattr(provenance, "code_fingerprint", lambda strategy: {
        **real(strategy), "clbench_sources_sha256": "edited since"})
    err = refused(["run", "--resume", run_id, "--db", url], capsys, url, run_id, base / run_id)
    assert "the code changed (clbench_sources_sha256)" in err and "--force" in err
    assert main(["run", "--resume", run_id, "--db", url, "--force", "--quiet",
                 "--no-progress"]) == 0
    with Store(url, create=False) as store:
        run = store.get_run(run_id)
    assert run["status"] == "completed"
    assert run["config"]["resumes"][0]["forced"] == ["the code changed (clbench_sources_sha256)"]


@pytest.mark.slow
def test_resume_refuses_a_changed_config(crashed, capsys):
    """A strategy parameter the stored config lacks (as when one is added to the code)."""
    from sqlalchemy import create_engine, text

    url, run_id, base = crashed
    with Store(url, create=False) as store:
        config = store.get_run(run_id)["config"]
    del config["strategy"]["rank"]
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE runs SET config = :c WHERE id = :i"),
                     {"c": json.dumps(config), "i": run_id})
    engine.dispose()
    err = refused(["run", "--resume", run_id, "--db", url], capsys, url, run_id, base / run_id)
    assert "the config resolves differently now (strategy" in err


@pytest.mark.slow
def test_resume_refuses_config_flags(crashed, capsys):
    url, run_id, base = crashed
    err = refused(["run", "--resume", run_id, "--db", url, "--strategy", "fft", "--set",
                   "training.lr=1"], capsys, url, run_id, base / run_id)
    assert "--strategy, --set cannot change it" in err


def test_force_without_resume_is_refused(scenario, capsys):
    from clbench.cli.main import main

    assert main(["run", "--strategy", "ln", "--scenario", str(scenario), "--force"]) == 2
    assert "--force only applies to --resume" in capsys.readouterr().err


def test_an_unwritable_checkpoint_folder_refuses_the_run_before_recording_it(scenario, tmp_path,
                                                                            capsys):
    from clbench.cli.main import main

    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    db = tmp_path / "never.db"
    assert main(["run", "--strategy", "ln", "--scenario", str(scenario), "--db", str(db),
                 "--checkpoint-dir", str(blocker / "sub")]) == 2
    err = capsys.readouterr().err
    assert "cannot write checkpoints under" in err and "is not a folder" in err
    assert not db.exists()


# --------------------------------------------------------------------------- sweeps


@pytest.mark.spawns
def test_a_sweep_resumes_a_crashed_run_instead_of_starting_it_again(scenario, tmp_path,
                                                                   monkeypatch, capsys):
    import yaml

    from clbench.cli.main import main
    from clbench.sweep.plan import load_sweep

    url, run_id, base = crashed_run("lorsu", scenario, tmp_path, monkeypatch)
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump({
        "name": "resuming", "scenarios": [str(scenario)], "strategies": ["lorsu"], "seeds": [3],
        "db": url, "executor": {"kind": "local", "workers": 1}}))
    assert main(["sweep", str(path)]) == 0
    assert "completed #1 lorsu seed 3 (run " in capsys.readouterr().out
    with Store(url, create=False) as store:
        (only,) = store.list_runs()  # the crashed run itself, not a new one
    assert only["id"] == run_id and only["status"] == "completed"
    log = tmp_path / "sweep-logs" / "resuming" / f"{load_sweep(path).runs[0].key}.log"
    assert f"resuming the failed attempt {run_id[:12]} after session 2" in log.read_text()
    assert stored_rows(url, run_id) == uninterrupted("lorsu", scenario, tmp_path)
    assert not (base / run_id).exists()


# --------------------------------------------------------------------------- kill -9, resume now


@pytest.mark.spawns
def test_a_run_killed_on_this_host_resumes_at_once(scenario, tmp_path):
    """`kill -9`, then `clbench run --resume` straight away with the default stale time (60 s):
    the run's process is gone from this host, so the run is failed at once and taken up."""
    env = {k: v for k, v in os.environ.items() if k != "CLBENCH_STALE_AFTER_S"}
    url, base = f"sqlite:///{tmp_path / 'killed.db'}", tmp_path / "checkpoints"
    proc = subprocess.Popen(
        [sys.executable, "-m", "clbench", "run", "--strategy", "ln", "--scenario", str(scenario),
         "--seed", "3", "--db", url, "--checkpoint-dir", str(base), "--no-progress", "--quiet"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    run_id = _wait_for_checkpoint(base, 1, proc).name
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    resumed = subprocess.run(  # at once: its heartbeat is seconds old
        [sys.executable, "-m", "clbench", "run", "--resume", run_id[:10], "--db", url,
         "--no-progress"], env=env, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming after session" in resumed.stdout
    with Store(url, create=False) as store:
        run = store.get_run(run_id)
    assert run["status"] == "completed"
    assert [note["after_session"] for note in run["config"]["resumes"]] == [
        int(resumed.stdout.split("resuming after session ")[1].split("/")[0])]
