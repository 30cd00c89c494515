"""The plugin contract, end to end: the example package `examples/wiseft` (WiSE-FT) is installed
as a user would install it, and clbench finds it, runs it and stores its numbers.

The package is installed with pip into a temporary folder (no network, no build isolation, the
project's virtualenv untouched) and clbench runs in subprocesses with that folder on PYTHONPATH,
so its `clbench.strategies` entry point is found exactly as after `pip install -e
examples/wiseft`: the `clbench` command lists it, and one process passes five `clbench run`
command lines in turn to `clbench.cli.main.main` (the function the `clbench` command calls, so the
runs share one import of torch) on a shortened proxy scenario (2 sessions of 2 classes, 4 shots,
2 epochs), with one thread (bit-identical numbers whatever the load); the fifth is interrupted
after session 1 and resumed with `clbench run --resume`. The example's own tests
run in a third process; all start together, while the in-process checks of the strategy test
kit and of the documented hook order run.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "wiseft"
GUIDE = ROOT / "docs" / "writing-a-strategy.md"

# proxy-20shot in miniature, with no per-strategy settings: fft and wiseft train alike
SCENARIO = """\
name: proxy-wiseft-check
description: proxy-20shot shortened for the example plugin's test (2 sessions, 4 shots)
target: proxy
protocol: few-shot
shots: 4
sessions:
  sizes: [2, 2]
  order: dataset
eval_sets: [proxy-clean]
training:
  epochs: 2
  batch_size: 4
  lr: 1.0e-4
"""

RUNS = {  # name -> (strategy, extra arguments); the refused one first, it is quick
    "bad": ("wiseft", ["--set", "strategy.alpha=1.5"]),
    "alpha05": ("wiseft", []),  # the default, 0.5
    "alpha1": ("wiseft", ["--set", "strategy.alpha=1.0"]),
    "fft": ("fft", []),
    "crashed": ("wiseft", []),  # alpha05 again, interrupted after session 1's checkpoint
}

# runs command lines through clbench's CLI entry point, each with its own stdout, stderr and
# exit status, and prints them as JSON; a name in CRASH_AFTER is interrupted (as by Ctrl-C) right
# after that session's checkpoint, "<name>-resumed" then runs `clbench run --resume` on it
DRIVER = """\
import contextlib, io, json, sys
from clbench.cli.main import main
from clbench.run.checkpoints import SessionCheckpoints
from clbench.store import Store
save = SessionCheckpoints.save
def interrupting(session):
    def saving(self, after_session, session_start, state):
        save(self, after_session, session_start, state)
        if after_session == session:
            raise KeyboardInterrupt(f"interrupted after session {session}")
    return saving
argvs, crash_after = json.loads(sys.argv[1]), json.loads(sys.argv[2])
for name in crash_after:
    argvs[name + "-resumed"] = None
results = {}
for name, argv in argvs.items():
    SessionCheckpoints.save = interrupting(crash_after[name]) if name in crash_after else save
    if argv is None:  # resume the only run of the crashed one's store
        crashed = argvs[name.removesuffix("-resumed")]
        db = crashed[crashed.index("--db") + 1]
        with Store("sqlite:///" + db, create=False) as store:
            (run,) = store.list_runs()
        argv = ["run", "--resume", run["id"], "--db", db, "--no-progress"]
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exit:
            code = exit.code
    results[name] = {"returncode": code, "stdout": out.getvalue(), "stderr": err.getvalue()}
print(json.dumps(results))
"""


def clbench_command() -> list[str]:
    script = Path(sys.executable).with_name("clbench")
    return [str(script)] if script.exists() else [sys.executable, "-m", "clbench"]


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> dict:
    """The example installed into a temporary site folder; the environment that finds it."""
    tmp = tmp_path_factory.mktemp("wiseft")
    source = tmp / "clbench-wiseft"  # a copy: pip's in-tree build writes build/ and egg-info
    shutil.copytree(EXAMPLE, source, ignore=shutil.ignore_patterns(
        "build", "*.egg-info", "__pycache__", ".pytest_cache"))
    site = tmp / "site"
    done = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation",
         "--no-index", "--quiet", "--target", str(site), str(source)],
        capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLBENCH_")}
    env.update(PYTHONPATH=os.pathsep.join([str(site), *filter(None, [
        os.environ.get("PYTHONPATH")])]), OMP_NUM_THREADS="1")
    (tmp / "scenario.yaml").write_text(SCENARIO)
    return {"tmp": tmp, "site": site, "source": source, "env": env}


class Processes:
    """Commands started at once, read when a test needs them."""

    def __init__(self):
        self.started: dict[str, subprocess.Popen] = {}
        self.done: dict[str, subprocess.CompletedProcess] = {}

    def start(self, name: str, args: list[str], cwd: Path, env: dict) -> None:
        self.started[name] = subprocess.Popen(args, cwd=cwd, env=env, text=True,
                                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def result(self, name: str) -> subprocess.CompletedProcess:
        if name not in self.done:
            proc = self.started[name]
            out, err = proc.communicate(timeout=600)
            self.done[name] = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
        return self.done[name]

    def stop(self) -> None:
        for proc in self.started.values():
            if proc.poll() is None:
                proc.kill()
                proc.communicate()


@pytest.fixture(scope="module")
def runs(installed):
    """The four `clbench run`s (one process) and the example's own tests, started together."""
    procs = Processes()
    tmp, env = installed["tmp"], installed["env"]
    argvs = {name: ["run", "--strategy", strategy, "--scenario", str(tmp / "scenario.yaml"),
                    "--seed", "1", "--db", str(tmp / f"{name}.db"), "--no-progress", *extra]
             for name, (strategy, extra) in RUNS.items()}
    procs.start("cli", [sys.executable, "-c", DRIVER, json.dumps(argvs),
                        json.dumps({"crashed": 1})], tmp, env)
    # the example's tests, from outside its folder: they import the installed copy
    source = installed["source"]
    procs.start("pytest", [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "--rootdir", str(source), str(source / "tests" / "test_wiseft.py")],
                tmp, env)
    yield procs
    procs.stop()


def cli(runs, name: str) -> subprocess.CompletedProcess:
    """One `clbench run` of the driver process: its exit status, stdout and stderr."""
    done = runs.result("cli")
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])[name]
    return subprocess.CompletedProcess(name, result["returncode"], result["stdout"],
                                       result["stderr"])


def stored(installed, name: str) -> dict:
    from clbench.store import Store

    store = Store(f"sqlite:///{installed['tmp'] / f'{name}.db'}", create=False)
    (run,) = store.list_runs()
    return store.get_run(run["id"])


def accuracies(run: dict) -> dict[tuple, float]:
    return {(e["after_session"], e["eval_set"], e["subset"]): e["accuracy"]
            for e in run["evaluations"]}


# ------------------------------------------------------------------ the installed package
@pytest.mark.install
def test_clbench_lists_the_plugin(installed, runs):
    listing = subprocess.run([*clbench_command(), "list", "strategies"], cwd=installed["tmp"],
                             env=installed["env"], capture_output=True, text=True, timeout=120)
    assert listing.returncode == 0, listing.stderr
    (line,) = [ln for ln in listing.stdout.splitlines() if ln.split()[:1] == ["wiseft"]]
    assert "WiSE-FT (weight-space ensembles" in line  # the package's own description
    assert "[third-party (clbench-wiseft 0.1.0)]" in line
    assert not (ROOT / "examples" / "wiseft" / "build").exists()  # the repository stays clean


# ------------------------------------------------------------------ in-process checks
def test_the_kit_rejects_a_wrong_card():
    """check_strategy fails both ways: a tensor outside the card, a card group that never
    trained (the strength of the strategy matrix, which calls it for every built-in)."""
    from clbench.training.strategy_kit import changed_tensors, check_strategy

    with pytest.raises(AssertionError, match="keeps frozen"):
        check_strategy("fft", [r"clip\.visual\.ln_post\..*"])
    with pytest.raises(AssertionError, match="nothing matching"):
        check_strategy("ln", [r"clip\.visual\..*ln_\w+\.(weight|bias)", r"clip\.visual\.proj"])
    assert changed_tensors("zeroshot") == set()


@pytest.fixture
def wiseft_module(monkeypatch):
    """The example's plugin module, imported from its folder (no install), forgotten after."""
    import importlib

    monkeypatch.syspath_prepend(str(EXAMPLE))
    yield importlib.import_module("clbench_wiseft.plugin")
    for name in [n for n in sys.modules if n.startswith("clbench_wiseft")]:
        del sys.modules[name]


def test_the_example_resumes_to_the_uninterrupted_run_and_its_old_self_did_not(wiseft_module):
    """The kit's crash-and-resume check passes on WiSE-FT, which returns its zero-shot copy
    from `resume_state`, and fails on it as it was before (the copy never saved): resumed, it
    mixed with the weights it resumed with (issue 27: +19.3 target instead of +11.1)."""
    from clbench.training.strategy_kit import check_resume

    plugin = wiseft_module.WiSEFTPlugin
    check_resume(plugin())

    class OldWiSEFT(plugin):
        def resume_state(self):
            return {}

        def load_resume_state(self, state):
            pass

    with pytest.raises(AssertionError, match=r"OldWiSEFT: a run resumed after session 1 differs "
                       r"from an uninterrupted one in \d+ tensor\(s\): \['clip\.visual\..*it "
                       r"keeps state between sessions that `resume_state\(\)` does not return"):
        check_resume(OldWiSEFT())


def test_the_kit_fails_a_plugin_that_keeps_state_without_declaring_it():
    """A plugin keeping state on itself (the zero-shot weights) that declares nothing fails
    the kit naming what to implement; one that claims to be stateless fails it too."""
    from plugin_packages import stateful_plugin_class

    from clbench.training.strategy_kit import check_resume

    KeepsZeroShot = stateful_plugin_class("KeepsZeroShot")

    with pytest.raises(AssertionError, match=r"KeepsZeroShot: a run resumed after session 1 "
                       r"differs .* declares no resume behaviour.*implement `resume_state\(\)` "
                       r"and `load_resume_state\(state\)` in KeepsZeroShot"):
        check_resume(KeepsZeroShot())

    class ClaimsNoState(KeepsZeroShot):
        stateless_between_sessions = True

    with pytest.raises(AssertionError, match=r"ClaimsNoState declares `stateless_between_"
                       r"sessions = True` but keeps state between sessions"):
        check_resume(ClaimsNoState())


def documented_hooks() -> list[str]:
    """The hook names of the guide's numbered hook-order list, in order."""
    text = GUIDE.read_text(encoding="utf-8")
    section = re.split(r"^## .*The hook order.*$", text, maxsplit=1, flags=re.M)[1]
    section = section.split("\n## ", 1)[0]
    names = []
    for line in section.splitlines():
        item = re.match(r"\s*\d+\.\s+(.*)", line)
        if item:
            names += re.findall(r"`(before_\w+|after_\w+|configure)`", item.group(1))
    return names


def test_the_hook_order_is_the_documented_one():
    """clbench's loop (`SessionTrainer`) calls a strategy's hooks in the order the guide lists,
    configures before building the optimizer, and evaluates after `after_training_exp`."""
    from avalanche.core import SupervisedPlugin
    from avalanche.evaluation import PluginMetric

    from clbench.strategies.fft import FullFineTuningPlugin
    from clbench.training.strategy_kit import TinyImages, proxy_classifier, train_stream, trainer

    log: list[str] = []

    class Recorder(FullFineTuningPlugin):
        def configure(self, classifier, strategy) -> None:
            log.append("configure")
            super().configure(classifier, strategy)

    for hook in dir(SupervisedPlugin):
        if hook.startswith(("before_", "after_")):  # eval hooks too: none may run
            def record(self, strategy, _hook=hook, **kwargs):
                log.append(_hook)
                inherited = getattr(FullFineTuningPlugin, _hook, None)
                return inherited(self, strategy, **kwargs) if inherited else None
            setattr(Recorder, hook, record)

    class Evaluation(PluginMetric):  # where clbench's SessionEvaluation scores every eval set
        def after_training_exp(self, strategy):
            log.append("evaluation")

        def result(self):
            return None

        def reset(self):
            pass

    model = proxy_classifier(seed=0)
    loop = trainer(model, [Recorder()], epochs=1, batch_size=8, lr=1e-4)
    loop.evaluator.metrics.append(Evaluation())
    build = loop.make_optimizer

    def make_optimizer(**kwargs):
        log.append("optimizer")
        return build(**kwargs)

    loop.make_optimizer = make_optimizer
    one_batch = [TinyImages(labels=[0, 1], seed=1, uniform=True),  # one batch per session
                 TinyImages(labels=[2, 3], seed=2, uniform=True)]
    for experience in train_stream(*one_batch):
        log.append("session")
        loop.train(experience, eval_streams=[])

    starts = [i for i, event in enumerate(log) if event == "session"]
    sessions = [log[a + 1:b] for a, b in zip(starts, [*starts[1:], len(log)])]
    assert len(sessions) == 2 and sessions[0] == sessions[1]  # every session alike
    order = sessions[0]
    assert order.index("configure") < order.index("optimizer") < order.index(
        "before_training_epoch")  # the optimizer is built over what configure left trainable
    assert order.index("after_training_exp") < order.index("evaluation") < order.index(
        "after_training")
    hooks = [h for h in order if h not in ("optimizer", "evaluation")]
    assert hooks == documented_hooks()


# ------------------------------------------------------------------ end to end on the proxy
@pytest.mark.install
def test_default_alpha_runs_end_to_end(installed, runs):
    done = cli(runs, "alpha05")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "after session 2/2" in done.stdout and "completed" in done.stdout
    run = stored(installed, "alpha05")
    assert run["status"] == "completed" and run["strategy"] == "wiseft"
    assert run["config"]["strategy"] == {"name": "wiseft", "towers": "vision", "alpha": 0.5}
    # where the strategy's code came from is stored with the run (provenance of a plugin)
    source = run["config"]["strategy_source"]
    assert source["source"] == "third-party" and source["distribution"] == "clbench-wiseft"
    assert source["version"] == "0.1.0"
    assert source["entry_point"] == "clbench_wiseft.plugin:WiSEFTPlugin"
    assert stored(installed, "fft")["config"]["strategy_source"] == {"source": "built-in"}
    facts = [s["facts"] for s in run["sessions"]]
    assert [f["alpha"] for f in facts] == [0.5, 0.5]
    assert all(0.0 < f["relative_drift"] < 1.0 for f in facts)


@pytest.mark.install
def test_alpha_one_stores_exactly_the_numbers_of_fft(installed, runs):
    for name in ("alpha1", "fft", "alpha05"):
        done = cli(runs, name)
        assert done.returncode == 0, done.stderr[-2000:]
    mixed, fft, half = (stored(installed, n) for n in ("alpha1", "fft", "alpha05"))
    assert mixed["config"]["training"] == fft["config"]["training"]
    assert accuracies(mixed) == accuracies(fft)  # every eval set, subset and session: exactly
    assert mixed["summary"]["final_accuracy"] == fft["summary"]["final_accuracy"]
    # alpha 0.5 starts from the same zero-shot numbers and ends elsewhere
    zero_shot = {k: v for k, v in accuracies(half).items() if k[0] == 0}
    assert zero_shot == {k: v for k, v in accuracies(fft).items() if k[0] == 0}
    trained = {k: v for k, v in accuracies(half).items() if k[0] > 0}
    assert trained != {k: v for k, v in accuracies(fft).items() if k[0] > 0}


@pytest.mark.install
def test_an_interrupted_run_resumes_to_exactly_the_numbers_of_an_uninterrupted_one(installed,
                                                                                   runs):
    """`clbench run` of the installed example, interrupted right after session 1's checkpoint,
    then `clbench run --resume`: every stored accuracy and session fact is the uninterrupted
    run's (WiSE-FT mixes with the zero-shot weights its checkpoint kept, issue 27)."""
    interrupted = cli(runs, "crashed")
    assert interrupted.returncode == 130, interrupted.stderr[-2000:]
    assert "not checkpointed" not in interrupted.stderr  # it declares its resume state
    resumed = cli(runs, "crashed-resumed")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "resuming after session 1/2" in resumed.stdout
    run, reference = stored(installed, "crashed"), stored(installed, "alpha05")
    assert run["status"] == "completed" and [n["after_session"] for n in
                                             run["config"]["resumes"]] == [1]
    assert accuracies(run) == accuracies(reference)
    assert [s["facts"] for s in run["sessions"]] == [s["facts"] for s in reference["sessions"]]


@pytest.mark.install
def test_a_bad_alpha_is_one_line_and_exit_2(installed, runs):
    done = cli(runs, "bad")
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    errors = [ln for ln in lines if ln.startswith("error:")]
    assert len(errors) == 1 and "strategy.alpha" in errors[0] and "1.5" in errors[0]
    assert "Traceback" not in done.stderr
    assert not (installed["tmp"] / "bad.db").exists()  # refused before anything was written


@pytest.mark.install
def test_the_examples_own_tests_pass(runs):
    done = runs.result("pytest")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert re.search(r"\b\d+ passed\b", done.stdout) and "failed" not in done.stdout
