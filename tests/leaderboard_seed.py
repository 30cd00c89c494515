"""A results store seeded with synthetic runs for the leaderboard tests (see
`leaderboard_synthetic` for the formula the expected numbers come from)."""

from __future__ import annotations

from pathlib import Path

from leaderboard_synthetic import Spec, add_run
from sqlalchemy import create_engine, text

from clbench.store import Store

ALPHA = Spec("alpha", gain=0.5, drop=0.1, lr=1e-4, trainable=10_000)
ALPHA_HIGH_LR = Spec("alpha", gain=0.3, drop=0.05, lr=1e-3, trainable=10_000)
BETA = Spec("beta", gain=0.2, drop=0.3, trainable=500_000)
BETA_DIRTY = Spec("beta", gain=0.2, drop=0.3, trainable=500_000, git_dirty=True)
GAMMA = Spec("gamma", gain=0.9, drop=0.0)  # only failed and running runs: never on the board
ALPHA_8SHOT = Spec("alpha", gain=0.4, drop=0.1, scenario="syn-8shot", shots=8)


# The question's trap: the method with the highest target gain forgets most of the controls.
# Balanced scores (target change + mean control change): middle 40 - 10 = 30, careful
# 30 - 2 = 28, forgetful 60 - 45 = 15; ranked by target gain, forgetful would come first.
TRADEOFF = (Spec("forgetful", gain=0.6, drop=0.45, trainable=1_000_000),
            Spec("careful", gain=0.3, drop=0.02, trainable=5_000),
            Spec("middle", gain=0.4, drop=0.1, trainable=20_000))
TRADEOFF_ORDER = ["middle", "careful", "forgetful"]


def seed_tradeoff_store(path: Path) -> Path:
    """Three methods on three seeds each (what the scenario asks for), plus one single-seed
    run that the leaderboard hides by default."""
    with Store(f"sqlite:///{path}") as store:
        for spec in TRADEOFF:
            for seed in (0, 1, 2):
                add_run(store, spec, seed)
        add_run(store, Spec("lucky", gain=0.9, drop=0.0), 0)
    return path


def seed_store(path: Path) -> dict[str, list[str]]:
    """Write the fixture runs to a new store at `path`; returns run ids by kind."""
    ids: dict[str, list[str]] = {"completed": [], "failed": [], "running": []}
    with Store(f"sqlite:///{path}") as store:
        for seed in (0, 1, 2):
            ids["completed"].append(add_run(store, ALPHA, seed))
        ids["completed"].append(add_run(store, ALPHA_HIGH_LR, 0))
        for seed in (0, 1):
            ids["completed"].append(add_run(store, BETA, seed))
        ids["completed"].append(add_run(store, BETA_DIRTY, 2))
        ids["completed"].append(add_run(store, ALPHA_8SHOT, 0))
        ids["failed"].append(add_run(store, GAMMA, 0, status="failed"))
        ids["failed"].append(add_run(store, ALPHA, 3, status="failed"))
        ids["running"].append(add_run(store, GAMMA, 1, status="running"))
    # The running run's process is gone (no heartbeat for an hour): a writer would mark it
    # failed, the app must not.
    engine = create_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        conn.execute(text("UPDATE runs SET heartbeat_at = '2000-01-01 00:00:00' WHERE id = :id"),
                     {"id": ids["running"][0]})
    engine.dispose()
    return ids


def old_schema_store(path: Path) -> Path:
    """A store file that claims schema version 0 (what an older clbench would have written)."""
    Store(f"sqlite:///{path}").close()
    engine = create_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        conn.execute(text("UPDATE schema_info SET value = '0' WHERE key = 'schema_version'"))
    engine.dispose()
    return path
