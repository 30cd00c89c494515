"""A corpus of bad inputs and faults, each run through the CLI as a user would type it.

Every case must end in one `error:` line that says what is wrong, a `hint:` that says what to
do, a non-zero exit, no traceback, and nothing created or changed on disk: the working
directory (where the default ./clbench.db would appear) and every file the case prepared are
compared byte for byte before and after. Faults during a run (signals, a crash inside a
session) are in `test_faults_*` below: there the run must be stored as failed with its error.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from clbench.cli.main import main
from clbench.store import Store

FFT = ["run", "--strategy", "fft", "--scenario", "proxy-20shot"]


@dataclass
class Case:
    id: str
    argv: list[str]  # "{tmp}" is replaced by the case's temporary directory
    message: str  # a fragment of the error line
    setup: Callable[[Path], None] | None = None
    code: int = 2
    hint: str = ""  # a fragment of the hint, when it matters
    env: dict[str, str] = field(default_factory=dict)


def write(name: str, data: bytes | str) -> Callable[[Path], None]:
    def make(tmp: Path) -> None:
        path = tmp / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data.encode() if isinstance(data, str) else data)
    return make


def foreign_sqlite(name: str) -> Callable[[Path], None]:
    def make(tmp: Path) -> None:
        with closing(sqlite3.connect(tmp / name)) as conn, conn:
            conn.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)")
            conn.execute("INSERT INTO users (name) VALUES ('ada')")
    return make


def newer_store(name: str) -> Callable[[Path], None]:
    def make(tmp: Path) -> None:
        Store(f"sqlite:///{tmp / name}").close()
        with closing(sqlite3.connect(tmp / name)) as conn, conn:
            conn.execute("UPDATE schema_info SET value = '99' WHERE key = 'schema_version'")
    return make


def stored_store(name: str) -> Callable[[Path], None]:
    def make(tmp: Path) -> None:
        Store(f"sqlite:///{tmp / name}").close()
    return make


def dalle_source_and_file(tmp: Path) -> None:
    """A DALL-E source folder with every caption (one tiny PNG each) and a file at --out."""
    from PIL import Image

    from clbench.scenarios.manifests import load_dataset_manifest

    for caption in load_dataset_manifest("dalle").class_names:
        (tmp / "src" / caption).mkdir(parents=True)
        Image.new("RGB", (8, 8)).save(tmp / "src" / caption / "1.png")
    write("out.txt", "x")(tmp)


def scenario(text: str) -> Callable[[Path], None]:
    return write("scenario.yaml", text)


GOOD_SCENARIO = """\
name: tiny
target: proxy
protocol: few-shot
shots: 3
sessions: {sizes: [2, 2]}
eval_sets: [proxy-clean]
"""

CASES = [
    # ---- names
    Case("strategy-typo", ["run", "--strategy", "lorsuu", "--scenario", "proxy-20shot"],
         "unknown strategy 'lorsuu' (did you mean: lorsu"),
    Case("scenario-typo", ["run", "--strategy", "fft", "--scenario", "proxy-20shots"],
         "did you mean: proxy-20shot"),
    Case("model-typo", [*FFT, "--model", "ViT-B-61"], "did you mean: ViT-B-16"),
    Case("pretrained-typo", [*FFT, "--model", "ViT-B-16", "--pretrained", "opneai"],
         "did you mean: openai"),
    Case("proxy-with-tag", [*FFT, "--pretrained", "openai"], "has no pretrained tags"),
    Case("no-scenario", ["run", "--strategy", "fft"], "no scenario given"),
    Case("no-strategy", ["run", "--scenario", "proxy-20shot"], "strategy: missing"),
    Case("control-typo", [*FFT, "--controls", "proxy-cleen"], "proxy-clean"),
    Case("control-empty-list", [*FFT, "--set", "controls=[]"], "controls"),
    Case("params-model-typo", ["params", "--model", "ViT-B-61"], "did you mean: ViT-B-16"),
    Case("params-strategy-typo", ["params", "--strategy", "lorsuu"], "unknown strategy"),
    Case("data-unknown-dataset", ["data", "check", "imagenett"], "imagenet"),
    Case("data-show-unknown", ["data", "show", "tsii"], "tsi"),
    # ---- typed values
    Case("lr-text", [*FFT, "--set", "training.lr=abc"], "training.lr: expected a number"),
    Case("lr-negative", [*FFT, "--set", "training.lr=-1e-4"], "training.lr: -0.0001 is outside"),
    Case("lr-zero", [*FFT, "--set", "training.lr=0"], "training.lr: 0"),
    Case("lr-nan", [*FFT, "--set", "training.lr=nan"], "training.lr: expected a finite number"),
    Case("lr-inf", [*FFT, "--set", "training.lr=.inf"], "training.lr: expected a finite number"),
    Case("lr-list", [*FFT, "--set", "training.lr=[1, 2]"], "training.lr"),
    Case("epochs-zero", [*FFT, "--set", "training.epochs=0"], "training.epochs: 0 is outside"),
    Case("epochs-fraction", [*FFT, "--set", "training.epochs=1.5"],
         "training.epochs: expected an integer"),
    Case("epochs-bool", [*FFT, "--set", "training.epochs=true"],
         "training.epochs: expected an integer"),
    Case("batch-zero", [*FFT, "--set", "training.batch_size=0"], "training.batch_size: 0"),
    Case("optimizer-typo", [*FFT, "--set", "training.optimizer=adan"], "did you mean 'adam'"),
    Case("scheduler-unknown", [*FFT, "--set", "training.scheduler=linear"],
         "training.scheduler"),
    Case("warmup-above-one", [*FFT, "--set", "training.warmup=2"], "training.warmup: 2"),
    Case("precision-unknown", [*FFT, "--set", "training.precision=fp8"], "training.precision"),
    Case("loss-unknown", [*FFT, "--set", "training.loss=mse"], "training.loss"),
    Case("grad-clip-zero", [*FFT, "--set", "training.grad_clip=0"], "training.grad_clip"),
    Case("key-typo", [*FFT, "--set", "training.lrr=1e-4"], "did you mean 'training.lr'"),
    Case("top-level-typo", [*FFT, "--set", "trainig.lr=1e-4"], "did you mean 'training'"),
    Case("set-without-equals", [*FFT, "--set", "training.lr"], "--set expects key=value"),
    Case("set-empty-key", [*FFT, "--set", "=5"], "--set expects key=value"),
    Case("section-as-value", [*FFT, "--set", "training=5"], "training: expected a mapping"),
    Case("seed-negative", [*FFT, "--seed", "-1"], "seed: -1 is outside the allowed range"),
    Case("seed-too-large", [*FFT, "--set", "seed=4294967296"], "seed: 4294967296 is outside"),
    Case("seed-text", [*FFT, "--set", "seed=abc"], "seed: expected an integer"),
    Case("device-unknown", [*FFT, "--device", "gpu"], "device: 'gpu'"),
    Case("device-cuda-missing", [*FFT, "--device", "cuda:0"], "CUDA is not available"),
    Case("strategy-param-unknown", [*FFT, "--set", "strategy.rnak=4"], "strategy.rnak"),
    Case("strategy-towers", [*FFT, "--set", "strategy.towers=text"], "strategy.towers",
         hint="clbench list strategies -v"),
    Case("lora-rank-zero", ["run", "--strategy", "lora", "--scenario", "proxy-20shot", "--set",
                            "strategy.rank=0"], "strategy.rank: 0 is outside"),
    Case("lora-rank-above-width", ["run", "--strategy", "lora", "--scenario", "proxy-20shot",
                                   "--set", "strategy.rank=4096"], "strategy.rank: 4096"),
    Case("spu-sparsity", ["run", "--strategy", "spu", "--scenario", "proxy-20shot", "--set",
                          "strategy.sparsity=1.5"], "strategy.sparsity: 1.5 is outside"),
    Case("lorsu-top-k", ["run", "--strategy", "lorsu", "--scenario", "proxy-20shot", "--set",
                         "strategy.top_k_heads=9"], "strategy.top_k_heads: 9 is outside"),
    # ---- YAML encodings and shapes
    Case("config-missing", ["run", "--config", "{tmp}/nope.yaml"], "config file not found"),
    Case("config-directory", ["run", "--config", "{tmp}/confdir"], "is a directory",
         setup=write("confdir/keep", "")),
    Case("config-latin1", ["run", "--config", "{tmp}/run.yaml"], "is not UTF-8",
         setup=write("run.yaml", "strategy: fft\nscenario: caf\xe9\n".encode("latin-1"))),
    Case("config-utf16", ["run", "--config", "{tmp}/run.yaml"], "is not UTF-8",
         setup=write("run.yaml", "strategy: fft\n".encode("utf-16"))),
    Case("config-malformed", ["run", "--config", "{tmp}/run.yaml"], "malformed YAML",
         setup=write("run.yaml", "strategy: fft\nscenario: [proxy-20shot\n"), hint="line"),
    Case("config-tab-indent", ["run", "--config", "{tmp}/run.yaml"], "malformed YAML",
         setup=write("run.yaml", "training:\n\tlr: 1\n")),
    Case("config-list", ["run", "--config", "{tmp}/run.yaml"], "expected a mapping",
         setup=write("run.yaml", "- strategy\n- fft\n")),
    Case("config-scalar", ["run", "--config", "{tmp}/run.yaml"], "expected a mapping",
         setup=write("run.yaml", "fft\n")),
    Case("config-empty", ["run", "--config", "{tmp}/run.yaml"], "no scenario given",
         setup=write("run.yaml", "")),
    Case("config-strategy-list", ["run", "--config", "{tmp}/run.yaml"], "strategy",
         setup=write("run.yaml", "strategy: [fft, ln]\nscenario: proxy-20shot\n")),
    Case("config-unknown-key", ["run", "--config", "{tmp}/run.yaml"], "unknown config key",
         setup=write("run.yaml", "strategy: fft\nscenario: proxy-20shot\nepochs: 3\n")),
    Case("scenario-missing-file", ["run", "--strategy", "fft", "--scenario", "{tmp}/no.yaml"],
         "no.yaml"),
    Case("scenario-latin1", ["run", "--strategy", "fft", "--scenario", "{tmp}/scenario.yaml"],
         "UTF-8", setup=write("scenario.yaml", "name: caf\xe9\n".encode("latin-1"))),
    Case("scenario-list", ["run", "--strategy", "fft", "--scenario", "{tmp}/scenario.yaml"],
         "mapping", setup=scenario("- a\n- b\n")),
    Case("scenario-sizes-words", ["run", "--strategy", "fft", "--scenario",
                                  "{tmp}/scenario.yaml"], "sizes",
         setup=scenario(GOOD_SCENARIO.replace("[2, 2]", "[four, 4]"))),
    Case("scenario-zero-shots", ["run", "--strategy", "fft", "--scenario",
                                 "{tmp}/scenario.yaml"], "shots",
         setup=scenario(GOOD_SCENARIO.replace("shots: 3", "shots: 0"))),
    Case("scenario-empty-session", ["run", "--strategy", "fft", "--scenario",
                                    "{tmp}/scenario.yaml"], "session",
         setup=scenario(GOOD_SCENARIO.replace("[2, 2]", "[2, 0]"))),
    Case("scenario-too-many-classes", ["run", "--strategy", "fft", "--scenario",
                                       "{tmp}/scenario.yaml"], "class",
         setup=scenario(GOOD_SCENARIO.replace("[2, 2]", "[200, 2]"))),
    Case("scenario-unknown-target", ["run", "--strategy", "fft", "--scenario",
                                     "{tmp}/scenario.yaml"], "proxyy",
         setup=scenario(GOOD_SCENARIO.replace("target: proxy", "target: proxyy"))),
    Case("scenario-include-missing", ["run", "--strategy", "fft", "--scenario",
                                      "{tmp}/scenario.yaml"], "nonexistent-base",
         setup=scenario("include: nonexistent-base\nshots: 5\n")),
    Case("scenario-include-cycle", ["run", "--strategy", "fft", "--scenario",
                                    "{tmp}/scenario.yaml"], "scenario.yaml",
         setup=scenario("include: scenario.yaml\nshots: 5\n")),
    Case("missing-dataset", ["run", "--strategy", "zeroshot", "--scenario", "tsi-20shot",
                             "--data-root", "{tmp}/no-data"], "no-data/tsi",
         hint="--data-root"),
    # ---- tune: grids, and scoring on validation data only
    Case("tune-empty-grid", ["tune", "--strategy", "fft", "--scenario", "proxy-20shot"],
         "no grid given", hint="--grid"),
    Case("tune-empty-value", ["tune", "--strategy", "fft", "--scenario", "proxy-20shot",
                              "--grid", "training.lr="], "--grid training.lr: empty value"),
    Case("tune-key-typo", ["tune", "--strategy", "fft", "--scenario", "proxy-20shot",
                           "--grid", "training.lrr=1e-5,1e-4"], "did you mean 'training.lr'"),
    Case("tune-untunable-key", ["tune", "--strategy", "fft", "--scenario", "proxy-20shot",
                                "--grid", "seed=0,1"], "--grid seed", hint="--seeds"),
    Case("tune-strategy-param-unknown", ["tune", "--strategy", "fft", "--scenario",
                                         "proxy-20shot", "--grid", "strategy.rnak=4,8"],
         "strategy.rnak"),
    Case("tune-lr-outside", ["tune", "--strategy", "fft", "--scenario", "proxy-20shot",
                             "--grid", "training.lr=1e-4,-1"], "training.lr: -1"),
    Case("tune-rank-above-width", ["tune", "--strategy", "lora", "--scenario", "proxy-20shot",
                                   "--grid", "strategy.rank=8,4096"], "strategy.rank: 4096"),
    Case("tune-no-validation", ["tune", "--strategy", "fft", "--scenario", "{tmp}/scenario.yaml",
                                "--grid", "training.lr=1e-5,1e-4"], "no validation split",
         setup=scenario(GOOD_SCENARIO + "validation: false\n"), hint="validation:"),
    Case("tune-control-without-val", ["tune", "--strategy", "fft", "--scenario",
                                      "{tmp}/scenario.yaml", "--grid", "training.lr=1e-5"],
         "control 'dalle' has no 'val' split",
         setup=scenario(GOOD_SCENARIO.replace("[proxy-clean]", "[dalle]"))),
    Case("replay-strategy-without-replay", ["run", "--strategy", "joint-replay", "--scenario",
                                            "{tmp}/scenario.yaml"],
         "strategy 'joint-replay' replays clean pretraining-world data, but scenario 'tiny'",
         setup=scenario(GOOD_SCENARIO), hint="replay: [DATASET, ...]"),
    # ---- checkpoints
    Case("checkpoint-missing", [*FFT, "--checkpoint", "{tmp}/none.pt"], "checkpoint not found"),
    Case("checkpoint-random-bytes", [*FFT, "--checkpoint", "{tmp}/random.pt"], "random.pt",
         setup=write("random.pt", os.urandom(4096))),
    Case("checkpoint-empty", [*FFT, "--checkpoint", "{tmp}/empty.pt"], "empty.pt",
         setup=write("empty.pt", b"")),
    Case("checkpoint-directory", [*FFT, "--checkpoint", "{tmp}/ckdir"], "ckdir",
         setup=write("ckdir/keep", "")),
    # ---- databases: paths that are files, directories, read-only or full; foreign files
    Case("db-is-directory", [*FFT, "--db", "{tmp}/dbdir"], "is a directory",
         setup=write("dbdir/keep", "")),
    Case("db-parent-is-file", [*FFT, "--db", "{tmp}/afile/results.db"], "is a file",
         setup=write("afile", "x")),
    Case("db-parent-missing", [*FFT, "--db", "{tmp}/no/such/dir/results.db"], "does not exist"),
    Case("db-read-only-fs", [*FFT, "--db", "/proc/clbench-results.db"], "clbench-results.db"),
    Case("db-full-device", [*FFT, "--db", "/dev/full"], "/dev/full"),
    Case("db-foreign-sqlite", [*FFT, "--db", "{tmp}/app.db"], "not a clbench results database",
         setup=foreign_sqlite("app.db")),
    Case("db-text-file", [*FFT, "--db", "{tmp}/notes.db"], "notes.db",
         setup=write("notes.db", "these are my notes, not a database\n" * 40)),
    Case("db-newer-schema", [*FFT, "--db", "{tmp}/new.db"], "newer than", setup=newer_store(
        "new.db")),
    Case("db-bad-url", [*FFT, "--db", "nosuchdialect://host/db"], "nosuchdialect"),
    Case("show-no-database", ["show", "abc"], "no results database"),
    Case("show-unknown-run", ["show", "abc", "--db", "{tmp}/r.db"], "abc",
         setup=stored_store("r.db")),
    Case("show-empty-id", ["show", " ", "--db", "{tmp}/r.db"], "empty run id",
         setup=stored_store("r.db")),
    Case("show-foreign-db", ["show", "abc", "--db", "{tmp}/app.db"], "not a clbench",
         setup=foreign_sqlite("app.db")),
    Case("runs-foreign-db", ["runs", "--db", "{tmp}/app.db"], "not a clbench",
         setup=foreign_sqlite("app.db")),
    Case("runs-negative-limit", ["runs", "--limit", "-1"], "--limit"),
    # ---- data preparation outputs
    Case("prepare-out-is-file", ["data", "prepare", "dalle", "--from", "{tmp}/src", "--out",
                                 "{tmp}/out.txt"], "out.txt", setup=dalle_source_and_file),
    Case("prepare-from-missing", ["data", "prepare", "dalle", "--from", "{tmp}/nothing"],
         "nothing"),
    # ---- proxy pretraining outputs
    Case("pretrain-out-is-directory", ["proxy", "pretrain", "--out", "{tmp}/outdir",
                                       "--steps", "1"], "outdir", setup=write("outdir/keep", "")),
    Case("pretrain-out-under-file", ["proxy", "pretrain", "--out", "{tmp}/afile/proxy.pt",
                                     "--steps", "1"], "afile", setup=write("afile", "x")),
]


def tree(root: Path) -> dict[str, str]:
    """Every file under `root` with a hash of its bytes (directories as entries too)."""
    out = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        out[rel] = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "dir"
    return out


def test_the_corpus_is_large_and_unique():
    assert len(CASES) >= 60
    assert len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case: Case, tmp_path: Path, monkeypatch, capsys):
    work = tmp_path / "work"  # the working directory: ./clbench.db would land here
    work.mkdir()
    files = tmp_path / "files"
    files.mkdir()
    if case.setup:
        case.setup(files)
    monkeypatch.chdir(work)
    monkeypatch.delenv("CLBENCH_DB", raising=False)
    monkeypatch.delenv("CLBENCH_DATA", raising=False)
    for key, value in case.env.items():
        monkeypatch.setenv(key, value)
    before = tree(tmp_path)

    try:
        code = main([a.replace("{tmp}", str(files)) for a in case.argv])
    except SystemExit as exit_:  # argparse's own errors
        code = exit_.code
    err = capsys.readouterr().err

    assert "Traceback" not in err, err
    assert code == case.code, err
    lines = [line for line in err.strip().splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error:") or ": error:" in line]
    assert len(errors) == 1, err
    assert case.message in errors[0], err
    hints = [line for line in lines if line.startswith("hint:")]
    assert hints, f"no hint in: {err}"
    assert case.hint in "\n".join(lines[lines.index(hints[0]):]), err
    assert tree(tmp_path) == before, "files were created or changed"


# --------------------------------------------------------------------------- faults in a run


def _run_in_subprocess(args: list[str], cwd: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "clbench", *args], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _interrupt_on_call(target, attr: str, call: int, monkeypatch) -> None:
    """Make `target.attr` raise KeyboardInterrupt (what a SIGTERM or Ctrl-C becomes in a run)
    on its `call`-th call."""
    original = getattr(target, attr)
    calls = {"n": 0}

    def interrupted(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == call:
            raise KeyboardInterrupt("terminated by signal 15")
        return original(*args, **kwargs)

    monkeypatch.setattr(target, attr, interrupted)


@pytest.mark.parametrize("stage", ["scenario", "model"])
def test_faults_before_the_run_is_stored_leave_no_file(stage, tiny_scenario, tmp_path,
                                                       monkeypatch, capsys):
    import clbench.models
    import clbench.scenarios.stream

    target = {"scenario": (clbench.scenarios.stream, "load_scenario"),
              "model": (clbench.models, "load_model")}[stage]
    _interrupt_on_call(*target, 1, monkeypatch)
    db = tmp_path / "runs.db"
    code = main(["run", "--strategy", "fft", "--scenario", str(tiny_scenario), "--db", str(db),
                 "--quiet"])
    assert code == 130 and "Traceback" not in capsys.readouterr().err
    assert not db.exists()


@pytest.mark.parametrize("stage, call, sessions_kept", [
    ("training", 1, 0), ("training", 2, 1), ("evaluation", 1, 0), ("evaluation", 3, 1),
])
def test_faults_during_a_run_mark_it_failed(stage, call, sessions_kept, tiny_scenario, tmp_path,
                                            monkeypatch, capsys):
    """An interrupt in session k's training (call k; the zero-shot evaluation runs inside the
    first) or in an evaluation (call 1 is zero-shot, call k + 1 follows session k): the run is
    stored as failed with the signal, finished sessions stay with their evaluations, and the
    interrupted session is not half written (its record is stored with its evaluation)."""
    from clbench.training.evaluation import SessionEvaluation
    from clbench.training.loop import SessionTrainer

    if stage == "training":
        _interrupt_on_call(SessionTrainer, "train", call, monkeypatch)
    else:  # call 1 is the zero-shot evaluation before training
        _interrupt_on_call(SessionEvaluation, "evaluate", call, monkeypatch)
    db = tmp_path / "runs.db"
    code = main(["run", "--strategy", "fft", "--scenario", str(tiny_scenario), "--db", str(db),
                 "--quiet"])
    assert code == 130 and "Traceback" not in capsys.readouterr().err
    store = Store(f"sqlite:///{db}", create=False)
    (listed,) = store.list_runs()
    run = store.get_run(listed["id"])
    assert run["status"] == "failed" and "signal 15" in run["error"]
    assert run["finished_at"] is not None
    assert [s["index"] for s in run["sessions"]] == list(range(1, sessions_kept + 1))
    evaluated = {e["after_session"] for e in run["evaluations"]}
    assert evaluated == (set(range(sessions_kept + 1)) if call > 1 else set())


@pytest.mark.spawns
def test_a_real_sigterm_during_training_marks_the_run_failed(tiny_scenario, tmp_path):
    db = tmp_path / "runs.db"
    proc = _run_in_subprocess(["run", "--strategy", "fft", "--scenario", str(tiny_scenario),
                               "--db", str(db), "--set", "training.epochs=200",
                               "--no-progress"], tmp_path)
    for line in proc.stdout:  # the zero-shot line is printed once the run is stored
        if line.startswith("zero-shot"):
            break
    proc.send_signal(15)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "Traceback" not in err
    (run,) = Store(f"sqlite:///{db}", create=False).list_runs()
    assert run["status"] == "failed" and "signal 15" in run["error"]


def test_a_closed_pipe_ends_quietly(tmp_path):
    proc = _run_in_subprocess(["list", "strategies", "-v"], tmp_path)
    proc.stdout.readline()
    proc.stdout.close()  # `| head -1`
    err = proc.stderr.read()
    proc.wait(timeout=120)
    assert proc.returncode in (0, 141) and "Traceback" not in err and "Error" not in err
