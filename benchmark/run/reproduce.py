"""Reproducing a stored run: the same config, seed and drawn samples, run again, and every
stored accuracy compared.

The stored config is the resolved one (every strategy parameter and training setting
explicit), so it runs again without the scenario's defaults getting a say. The drawn sample
ids of every session must come out identical (the same data and the same seeded draw); if they
do not, the run is not a reproduction and this says so. The differences are the absolute
differences of every stored accuracy (each eval set and session subset, after each session)
in points. A reproduction is recorded with who, where and when; one within the tolerance on
another host, or of a run imported from someone else's bundle, marks the run verified.
"""

from __future__ import annotations

import getpass
import socket
from dataclasses import dataclass

from clbench.config import run_config as cfg
from clbench.errors import UserError
from clbench.metrics import REPRODUCTION


@dataclass
class Comparison:
    per_session: dict[int, float]  # after_session -> largest |difference| in points
    max_difference: float
    missing: list[tuple]  # (after_session, eval_set, subset) stored but not reproduced


def config_of(run: dict) -> cfg.RunConfig:
    """The RunConfig a stored run ran with (its resolved config's own keys)."""
    stored = run.get("config") or {}
    raw = {k: stored[k] for k in cfg.TOP_LEVEL_KEYS if k in stored}
    return cfg.resolve(raw)


def compare(original: list[dict], again: list[dict]) -> Comparison:
    key = lambda e: (e["after_session"], e["eval_set"], e["subset"])  # noqa: E731
    new = {key(e): e["accuracy"] for e in again}
    per_session: dict[int, float] = {}
    missing = []
    for e in original:
        if key(e) not in new:
            missing.append(key(e))
            continue
        diff = 100 * abs(new[key(e)] - e["accuracy"])
        per_session[e["after_session"]] = max(per_session.get(e["after_session"], 0.0), diff)
    return Comparison(per_session, max(per_session.values(), default=0.0), missing)


def check_samples(original: dict, again: dict) -> None:
    for a, b in zip(original["sessions"], again["sessions"]):
        if a["sample_ids"] != b["sample_ids"]:
            raise UserError(f"session {a['index']} drew other samples than the stored run: "
                            "the data or the sampling changed, so this is not a reproduction",
                            hint="check the dataset files (`clbench data check`) and the "
                            "scenario manifest hash")


def reproduce(store, run_id: str, *, tolerance: float, verifier: str | None = None,
              data_root: str | None = None, progress: bool = True) -> tuple[dict, Comparison,
                                                                             bool]:
    """Run `run_id` again into `store`, compare, record the reproduction. Returns (the
    original run, the comparison, whether it counts as independent)."""
    from clbench.run.runner import run as run_config

    original = store.get_run(run_id)
    if original["status"] != "completed":
        raise UserError(f"run {original['id']} is {original['status']}: only completed runs "
                        "can be reproduced")
    result = run_config(config_of(original), store, data_root=data_root, progress=progress,
                        quiet=True, purpose=REPRODUCTION,
                        extra_config={"reproduces": original["id"]})
    again = store.get_run(result.run_id)
    check_samples(original, again)
    comparison = compare(original["evaluations"], again["evaluations"])
    host = socket.gethostname()
    imported = bool((original.get("config") or {}).get("imported"))
    independent = imported or host != original.get("hostname")
    store.add_verification(
        original["id"], reproduction_id=result.run_id, verifier=verifier or getpass.getuser(),
        host=host, max_difference=comparison.max_difference, tolerance=tolerance,
        within_tolerance=comparison.max_difference <= tolerance and not comparison.missing,
        independent=independent)
    return original, comparison, independent
