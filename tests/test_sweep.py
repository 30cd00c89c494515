"""`clbench sweep`: a sweep file expands into the runs `clbench run` would make, runs already
completed are skipped, the rest run in worker processes (local) or through submitit (the slurm
executor, tested through submitit's local executor), a failure ends one run only, `sweep status`
reports each run, and a bad file is refused before anything is written."""

from __future__ import annotations

import importlib.util
import io
import json
import re
from pathlib import Path

import pytest
import yaml

from clbench.cli.main import main
from clbench.store import Store
from clbench.sweep import executors as sweep_executors
from clbench.sweep.executors import LiveTable, SweepJob, load, local_threads, sbatch_script
from clbench.sweep.plan import load_sweep

ROOT = Path(__file__).resolve().parents[1]


def write(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def stored(db: Path) -> list[dict]:
    store = Store(f"sqlite:///{db}", create=False)
    return [store.get_run(r["id"]) for r in store.list_runs()]


# --------------------------------------------------------------------------- bad input

BASE = {"scenarios": ["proxy-20shot"], "strategies": ["lorsu"]}


@pytest.mark.parametrize("change, message", [
    ({"seed": [0]}, "unknown key 'seed' (did you mean 'seeds'"),
    ({"grid": {}}, "grid is empty"),
    ({"grid": {"training.lr": []}}, "grid.training.lr: empty list"),
    ({"strategies": ["lorsuu", "fft"]}, "unknown strategy 'lorsuu' (did you mean: lorsu"),
    ({"executor": {"kind": "slurm", "partition": "gpu", "timeout_min": 60,
                   "gpus_per_nodes": 1}},
     "executor.gpus_per_nodes: not a SLURM option that submitit knows (did you mean "
     "'gpus_per_node'"),
    ({"grid": {"training.lrr": [1.0e-4]}}, "unknown config key 'training.lrr'"),
    ({"strategies": [{"name": "fft", "rank": 8}]}, "strategy.rank"),
    ({"executor": {"kind": "local", "worker": 2}}, "unknown key 'worker' (did you mean "
                                                   "'workers'"),
    ({"set": {"seed": 1}}, "seed has an axis of its own"),
], ids=["unknown-key", "empty-grid", "empty-grid-values", "unknown-strategy",
        "unknown-slurm-option", "unknown-config-key", "unknown-strategy-param",
        "unknown-executor-key", "axis-in-set"])
def test_a_bad_sweep_file_is_refused_in_one_line_and_nothing_is_written(
        tmp_path, monkeypatch, capsys, change, message):
    monkeypatch.chdir(tmp_path)
    path = write(tmp_path / "bad.yaml", {**BASE, **change})
    assert main(["sweep", str(path), "--db", "results.db"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2 and err[0].startswith("error: ") and err[1].startswith("hint: ")
    assert message in err[0]
    if "SLURM" in message:  # the hint names the options it knows
        assert "partition" in err[1] and "timeout_min" in err[1]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.yaml"]


# --------------------------------------------------------------------------- expansion


def test_a_grid_expands_into_its_cartesian_product_per_strategy(tmp_path):
    path = write(tmp_path / "grid.yaml", {
        "scenarios": ["proxy-20shot"], "seeds": [0],
        "strategies": [{"name": "lora", "grid": {"strategy.rank": [4, 8]}}, "ln"],
        "grid": {"training.lr": [1.0e-4, 3.0e-4]}, "set": {"training.epochs": 2}})
    sweep = load(path)
    assert [(r.strategy, r.setting) for r in sweep.runs] == [
        ("lora", "training.lr=0.0001 strategy.rank=4"),
        ("lora", "training.lr=0.0001 strategy.rank=8"),
        ("lora", "training.lr=0.0003 strategy.rank=4"),
        ("lora", "training.lr=0.0003 strategy.rank=8"),
        ("ln", "training.lr=0.0001"), ("ln", "training.lr=0.0003")]
    config = sweep.configs[sweep.runs[1].key]
    assert (config.training.lr, config.training.epochs, config.strategy_params) == \
        (1.0e-4, 2, {"rank": 8})
    assert len({r.identity["config_hash"] for r in sweep.runs}) == 6


@pytest.mark.slow
def test_the_comparison_script_became_a_sweep_file():
    spec = importlib.util.spec_from_file_location(
        "compare_strategies", ROOT / "scripts" / "compare_strategies.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    sweep = load_sweep(ROOT / "sweeps" / "proxy-comparison.yaml")
    assert [r.strategy for r in sweep.runs[::3]] == script.COMPARED
    assert [r.seed for r in sweep.runs[:3]] == [0, 1, 2] and len(sweep.runs) == 33
    # the settings the scenario declares for each strategy (its `strategy_training` entries)
    llu = next(r for r in sweep.runs if r.strategy == "llu")
    assert sweep.configs[llu.key].strategy_params == {"lr": 0.0001}
    assert "sweeps/proxy-comparison.yaml" in script.__doc__


def test_the_docs_slurm_sweep_file_expands_and_renders_its_sbatch_script(tmp_path):
    text = (ROOT / "docs" / "sweeps.md").read_text(encoding="utf-8")
    section = text[text.index("## Sweeps"):]
    block = next(b for b in re.findall(r"```yaml\n(.*?)```", section, re.S)
                 if "kind: slurm" in b)
    sweep = load(write(tmp_path / "tsi.yaml", yaml.safe_load(block)))
    assert len(sweep.runs) == 15
    script = sbatch_script(sweep.executor, len(sweep.runs))
    flags = dict(re.findall(r"^#SBATCH --([\w-]+)=(.*)$", script, re.M))
    assert {k: flags[k] for k in ("partition", "gpus-per-node", "cpus-per-task", "mem", "time",
                                  "array", "job-name", "signal", "mail-type")} == {
        "partition": "gpu", "gpus-per-node": "1", "cpus-per-task": "8", "mem": "64GB",
        "time": "240", "array": "0-14%15", "job-name": "clbench-tsi-vitl14",
        "signal": "USR2@90", "mail-type": "FAIL"}
    assert flags["output"].endswith("logs/tsi-vitl14/%A_%a/%A_%a_0_log.out")
    assert "\n# setup\nmodule load cuda\n" in script
    assert "-m submitit.core._submit" in script
    # array_parallelism bounds the tasks at a time; one run is a plain job
    assert "--array=0-39%32" in sbatch_script(sweep.executor, 40)
    assert "--array" not in sbatch_script(sweep.executor, 1)
    assert not (tmp_path / "logs").exists()


def test_a_preempted_or_timed_out_job_is_resubmitted_as_the_same_run():
    job = SweepJob()
    resubmitted = job.checkpoint({"key": "k"}, {"db": "sqlite:///x.db"})
    assert resubmitted.function is job
    assert resubmitted.args == ({"key": "k"}, {"db": "sqlite:///x.db"})


def test_the_live_table_redraws_in_place_on_a_terminal(tmp_path):
    sweep = load_sweep(write(tmp_path / "s.yaml", {**BASE, "seeds": [0, 1]}))
    out = io.StringIO()
    live = LiveTable(sweep.runs, done_before=1, stream=out, tty=True)
    live.set(sweep.runs[0].key, "running")
    live.set(sweep.runs[0].key, "completed", " (run abc)")
    live.close()
    text = out.getvalue()
    assert "running #1 lorsu seed 0" in text and "completed #1 lorsu seed 0 (run abc)" in text
    assert "\x1b[2F\x1b[J" in text  # the two-line block erased before the event line
    assert text.rstrip().endswith("queued 1 | running 0 | completed 2 | failed 0")


# --------------------------------------------------------------------------- running


@pytest.mark.spawns
def test_a_local_sweep_skips_what_is_done_and_a_failure_ends_one_run_only(
        tiny_scenario, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    db = tmp_path / "results.db"
    # done before, by `clbench run`: the sweep must recognise it
    assert main(["run", "--strategy", "zeroshot", "--scenario", str(tiny_scenario),
                 "--db", str(db), "--quiet"]) == 0
    path = write(tmp_path / "sweep.yaml", {
        "name": "tiny", "scenarios": [str(tiny_scenario)], "seeds": [0], "db": str(db),
        "strategies": ["zeroshot", "ln", {"name": "fft", "set": {"training.lr": 1.0e+6}}],
        "executor": {"kind": "local", "workers": 2}})
    capsys.readouterr()
    assert main(["sweep", str(path)]) == 1  # one run failed
    out = capsys.readouterr().out
    threads = local_threads(load_sweep(path).executor)
    assert f"1 completed before (skipped); 2 to run (local: 2 worker(s) x {threads} thread(s))" \
        in out
    assert "completed #2 ln seed 0 (run " in out
    assert "failed #3 fft training.lr=1e+06 seed 0: TrainingDiverged: the loss became nan" in out
    assert "queued 0 | running 0 | completed 2 | failed 1" in out
    runs = {r["strategy"]: r for r in stored(db)}
    assert len(stored(db)) == 3  # zeroshot ran once, before the sweep
    assert runs["ln"]["status"] == "completed" and runs["fft"]["status"] == "failed"
    # each worker ran with its share of the cores
    assert runs["ln"]["hardware"]["torch_device"]["torch_threads"] == threads
    logs = tmp_path / "sweep-logs" / "tiny"
    assert "the loss became nan" in (logs / f"{load_sweep(path).runs[2].key}.log").read_text()

    assert main(["sweep", "status", str(path), "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["counts"] == {"queued": 0, "running": 0, "completed": 2, "failed": 1}
    failed = [r for r in status["runs"] if r["status"] == "failed"]
    assert len(failed) == 1 and "the loss became nan" in failed[0]["error"]
    assert failed[0]["run_id"] == runs["fft"]["id"]

    assert main(["sweep", "status", str(path)]) == 0
    table = capsys.readouterr().out
    assert "failures:\n  #3 fft training.lr=1e+06 seed 0 (run " in table
    assert main(["sweep", str(path), "--dry-run"]) == 0  # only the failed run would run again
    assert "2 completed before (skipped); 1 to run" in capsys.readouterr().out


@pytest.mark.spawns
def test_the_slurm_executor_runs_through_submitits_local_executor(
        tiny_scenario, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sweep_executors, "SUBMITIT_CLUSTER", "local")
    db = tmp_path / "slurm.db"
    path = write(tmp_path / "slurm.yaml", {
        "name": "on-slurm", "scenarios": [str(tiny_scenario)], "strategies": ["zeroshot"],
        "seeds": [1], "executor": {"kind": "slurm", "partition": "gpu", "cpus_per_task": 1,
                                   "mem_gb": 4, "timeout_min": 10, "array_parallelism": 4}})
    assert main(["sweep", str(path), "--db", str(db)]) == 0
    out = capsys.readouterr().out
    assert "submitted 1 run(s)" in out and "completed #1 zeroshot seed 1 (run " in out
    (run,) = stored(db)
    assert run["status"] == "completed" and run["seed"] == 1
    assert run["hardware"]["torch_device"]["torch_threads"] == 1  # cpus_per_task
    key = load_sweep(path).runs[0].key
    record = json.loads((tmp_path / "sweep-logs" / "on-slurm" / f"{key}.json").read_text())
    assert record["status"] == "completed" and record["run_id"] == run["id"]
    assert "Job completed successfully" in Path(record["log"]).with_suffix(".err").read_text()
    # run again: nothing to submit
    assert main(["sweep", str(path), "--db", str(db)]) == 0
    assert "1 completed before (skipped); 0 to run" in capsys.readouterr().out


@pytest.mark.spawns
def test_a_run_that_fails_before_the_store_has_it_is_reported_from_its_workers_record(
        tiny_scenario, tmp_path, monkeypatch, capsys):
    from clbench.sweep.executors import run_local
    from clbench.sweep.status import sweep_states

    monkeypatch.chdir(tmp_path)
    sweep = load(write(tmp_path / "gone.yaml", {
        "scenarios": [str(tiny_scenario)], "strategies": ["zeroshot"], "seeds": [0]}))
    tiny_scenario.unlink()  # gone by the time the worker reads it (a file missing on a node)
    url = f"sqlite:///{tmp_path / 'gone.db'}"
    Store(url).close()
    live = LiveTable(sweep.runs, 0, stream=io.StringIO())
    assert run_local(sweep.executor, sweep.runs, {"db": url, "manifests": []}, live) == \
        {sweep.runs[0].key: "failed"}
    (state,) = sweep_states(sweep, url).values()
    assert (state.status, state.source, state.run_id) == ("failed", "job", None)
    assert "scenario file not found" in state.error and Path(state.log).is_file()


def test_a_slurm_sweep_where_slurm_is_missing_is_refused_before_anything_is_written(
        tiny_scenario, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sweep_executors.shutil, "which", lambda name: None)
    path = write(tmp_path / "s.yaml", {
        "scenarios": [str(tiny_scenario)], "strategies": ["zeroshot"], "seeds": [0],
        "executor": {"kind": "slurm", "partition": "gpu", "timeout_min": 10}})
    assert main(["sweep", str(path), "--db", "r.db"]) == 2
    err = capsys.readouterr().err
    assert "not on PATH here: sbatch, srun" in err and "--dry-run" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["proxy-tiny.yaml", "s.yaml"]
