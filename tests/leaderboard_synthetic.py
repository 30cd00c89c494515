"""Synthetic runs for the leaderboard's tests and its 1,000-run benchmark
(`scripts/leaderboard_render.py`); test data, not real results, so not part of the package.

Runs are written through the public `Store` API, as `clbench run` writes them, with accuracies
from a simple deterministic formula, so that tests can compute the expected leaderboard by hand.
Accuracy of run (strategy s, preset p, seed k) after session i (T sessions, 0 = zero-shot):

    target:  ZERO_TARGET + gain * i / T + SEED_STEP * k
    control: zero_c - drop * i / T      (per control c)

and on the classes of session j <= i: ZERO_TARGET + gain * (1 - forget * (i - j) / T) - each
number kept in [0, 1].
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import event

from clbench.metrics import summarize
from clbench.store import Store

ZERO_TARGET = 0.10
CONTROLS = {"ctrl-a": 0.80, "ctrl-b": 0.60}
SEED_STEP = 0.01
TOTAL_PARAMS = 1_000_000
PLUGIN_SOURCE = {"source": "third-party", "distribution": "clbench-synthetic-plugin",
                 "version": "1.0", "entry_point": "synthetic_plugin:Plugin", "editable": False,
                 "git_sha": None, "git_dirty": None}


@dataclass(frozen=True)
class Spec:
    strategy: str
    gain: float  # target accuracy gained over all sessions
    drop: float  # control accuracy lost over all sessions
    forget: float = 0.2
    lr: float = 1e-4
    trainable: int = 10_000
    scenario: str = "syn-4shot"
    model_arch: str = "ViT-B-16"
    model_pretrained: str | None = "openai"
    shots: int = 4
    sessions: int = 3
    git_dirty: bool = False
    third_party: bool = False  # stored as a plugin package's strategy


def _clip(x: float) -> float:
    return min(1.0, max(0.0, x))


def evaluation_rows(spec: Spec, seed: int) -> list[dict]:
    """Every evaluation a run of `spec` with `seed` records, by the module's formula."""
    T = spec.sessions
    rows = []
    for i in range(T + 1):
        target = _clip(ZERO_TARGET + spec.gain * i / T + SEED_STEP * seed)
        rows.append({"after_session": i, "eval_set": "syn", "subset": "all",
                     "accuracy": target, "n": 100})
        for j in range(1, i + 1):
            acc = _clip(ZERO_TARGET + spec.gain * (1 - spec.forget * (i - j) / T))
            rows.append({"after_session": i, "eval_set": "syn", "subset": f"session:{j}",
                         "accuracy": acc, "n": 20})
        for name, zero in CONTROLS.items():
            rows.append({"after_session": i, "eval_set": name, "subset": "all",
                         "accuracy": _clip(zero - spec.drop * i / T), "n": 100})
    return rows


def add_run(store: Store, spec: Spec, seed: int, status: str = "completed") -> str:
    """One synthetic run; status "completed", "failed" (after its sessions) or "running"."""
    strategy_config = {"rank": 8} if spec.strategy != "zeroshot" else {}
    training = {"lr": spec.lr, "epochs": 2}
    run_id = store.create_run(
        strategy=spec.strategy, strategy_config=strategy_config, scenario=spec.scenario,
        scenario_manifest_hash="synthetic", model_arch=spec.model_arch,
        model_pretrained=spec.model_pretrained, model_checkpoint_sha256=None, seed=seed,
        config={"strategy": {"name": spec.strategy, **strategy_config},
                "scenario": spec.scenario, "seed": seed, "training": training,
                "dataset_manifest_hashes": {"syn": "synthetic"},
                "strategy_source": PLUGIN_SOURCE if spec.third_party else {"source": "built-in"}},
        config_hash=f"{spec.strategy}-{spec.lr}-{seed}", training_config=training,
        provenance={"git_sha": "0" * 40, "git_dirty": spec.git_dirty,
                    "packages": {"clbench": "synthetic"}, "hardware": {"cpu": "synthetic"}})
    rows = evaluation_rows(spec, seed)
    for i in range(1, spec.sessions + 1):
        classes = [f"class {i}.{c}" for c in range(2)]
        store.add_session(run_id, index=i, classes=classes,
                          sample_ids=[f"syn/{seed}/{i}/{k}" for k in range(2 * spec.shots)],
                          train_time_s=1.0 + i, peak_memory_mb=100.0,
                          trainable_params=spec.trainable, facts={"active_blocks": i})
    store.add_evaluations(run_id, rows)
    store.set_params(run_id, trainable_params=spec.trainable, total_params=TOTAL_PARAMS)
    if status == "completed":
        summary = summarize(rows, "syn", list(CONTROLS), spec.sessions)
        summary["trainable_percent"] = 100.0 * spec.trainable / TOTAL_PARAMS
        store.complete_run(run_id, summary=summary, total_time_s=10.0)
    elif status == "failed":
        store.fail_run(run_id, "RuntimeError: synthetic failure")
    return run_id


def fast_writes(store: Store) -> None:
    """Skip fsync on an SQLite scratch store (seeding 1,000 runs; never for real results)."""
    if store.engine.dialect.name != "sqlite":
        return

    def _no_sync(dbapi_connection, _record):
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA synchronous=OFF")
        cursor.close()

    event.listen(store.engine, "connect", _no_sync)
    store.engine.dispose()  # later connections are new ones, with the pragma
