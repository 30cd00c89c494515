"""Reproducing a stored run: the same config, seed and drawn samples, run again, and every
stored accuracy compared.

The stored config is the resolved one (every strategy parameter and training setting
explicit), so it runs again without the scenario's defaults getting a say. The drawn sample
ids of every session must come out identical (the same data and the same seeded draw); if they
do not, the run is not a reproduction and this says so. The differences are the absolute
differences of every stored accuracy (each eval set and session subset, after each session)
in points. A reproduction is recorded with who, where and when; one within the tolerance on
another host, or of a run imported from someone else's bundle, marks the run verified.
Where the code that ran the reproduction is not the code that ran the run (clbench's commit,
a tracked package's version, a third-party strategy's version or source files: both runs'
stored provenance), `code_changes` says so, since a difference in the numbers may come from it.
"""

from __future__ import annotations

import getpass
import socket
from dataclasses import dataclass, field

from clbench.config import run_config as cfg
from clbench.errors import UserError
from clbench.metrics import REPRODUCTION


@dataclass
class Comparison:
    per_session: dict[int, float]  # after_session -> largest |difference| in points
    max_difference: float
    missing: list[tuple]  # (after_session, eval_set, subset) stored but not reproduced
    code_changes: list[str] = field(default_factory=list)  # `code_changes`: one line each


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


def _short(value) -> str:
    return str(value)[:12] if value else "none"


def _shown(key: str, value) -> str:
    """A recorded value as a line shows it: a commit or a hash shortened."""
    return _short(value) if key in ("git_sha", "sources_sha256") else str(value or "none")


def code_changes(original: dict, again: dict) -> list[str]:
    """How the code that ran `again` (the reproduction) differs from the code that ran
    `original`, from their stored records: clbench's commit (or uncommitted changes at the same
    commit), the tracked package versions, and a third-party strategy's package, version,
    commit and source files' hash. Empty when nothing recorded differs."""
    lines = []
    then_sha, now_sha = original.get("git_sha"), again.get("git_sha")
    if then_sha and now_sha and then_sha != now_sha:
        lines.append(f"clbench's code differs: commit {_short(then_sha)} then, "
                     f"{_short(now_sha)} now")
    elif then_sha and then_sha == now_sha and (original.get("git_dirty")
                                               or again.get("git_dirty")):
        state = {True: "uncommitted changes", False: "clean", None: "unknown"}
        lines.append(f"clbench's code may differ: commit {_short(then_sha)} both times, "
                     f"{state[original.get('git_dirty')]} then, "
                     f"{state[again.get('git_dirty')]} now")
    before, after = original.get("packages") or {}, again.get("packages") or {}
    moved = [f"{name} {before.get(name) or 'absent'} then, {after.get(name) or 'absent'} now"
             for name in sorted(set(before) | set(after)) if before.get(name) != after.get(name)]
    if moved:
        lines.append("package versions differ: " + "; ".join(moved))
    line = _strategy_change(original["strategy"],
                            (original.get("config") or {}).get("strategy_source") or {},
                            (again.get("config") or {}).get("strategy_source") or {})
    return lines + ([line] if line else [])


def _strategy_change(name: str, then: dict, now: dict) -> str | None:
    """The line saying how a third-party strategy's code differs, or None."""
    if not then or (then.get("source") == now.get("source") == "built-in"):
        return None  # a built-in's code is clbench's (above); an old run recorded nothing
    if then.get("source") != now.get("source"):
        return (f"the strategy '{name}' came from {then.get('source')} code then, from "
                f"{now.get('source')} code now")
    parts = []
    for key, label in (("distribution", "package"), ("version", "version"),
                       ("git_sha", "commit"), ("sources_sha256", "source files' sha256")):
        if then.get(key) and then.get(key) != now.get(key):
            parts.append(f"{label} {_shown(key, then.get(key))} then, "
                         f"{_shown(key, now.get(key))} now")
    if not parts:
        return None
    package = f"{then.get('distribution')} {then.get('version') or ''}".strip()
    return f"the code of strategy '{name}' ({package}) differs: " + "; ".join(parts)


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
    comparison.code_changes = code_changes(original, again)
    host = socket.gethostname()
    imported = bool((original.get("config") or {}).get("imported"))
    independent = imported or host != original.get("hostname")
    store.add_verification(
        original["id"], reproduction_id=result.run_id, verifier=verifier or getpass.getuser(),
        host=host, max_difference=comparison.max_difference, tolerance=tolerance,
        within_tolerance=comparison.max_difference <= tolerance and not comparison.missing,
        independent=independent)
    return original, comparison, independent
