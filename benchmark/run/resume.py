"""Continuing a failed or killed run from its last session checkpoint (`clbench run --resume`).

The run is rebuilt from what the store recorded (its resolved config, data options and purpose),
its checkpoint loaded (content hash checked, no arbitrary unpickling), and refused, before
anything is written, when it is not failed, has no usable checkpoint, when its strategy plugin
does not declare how it resumes (`clbench.strategies.base.resume_problem`: a plugin keeping
state outside the checkpoint would resume to other numbers, silently), or when its code, config
or data changed since it started (unless forced; the forced reasons are recorded). Then, in one
transaction, rows of sessions after the checkpoint are dropped and the run is "running" again;
training goes on from the next session with every generator where it was, so the stored rows
end exactly as an uninterrupted run with the same seed would leave them.
"""

from __future__ import annotations

import getpass
import socket
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from clbench.errors import UserError
from clbench.run import checkpoints


def _refuse_status(run: dict) -> None:
    run_id, status = run["id"], run["status"]
    if status == "completed":
        raise UserError(f"run {run_id} is completed: there is nothing to resume",
                        hint=f"see its results with `clbench show {run_id[:12]}`")
    if status == "running":
        raise UserError(f"run {run_id} is still running (its heartbeat is recent, from "
                        f"{run.get('hostname')} pid {run.get('pid')})",
                        hint="if its process is gone, it is marked failed once its heartbeat "
                             "is older than $CLBENCH_STALE_AFTER_S (60 s by default); resume "
                             "it then")


_NOT_RESUMABLE_HINT = (
    "a resumed run could store other numbers than an uninterrupted one without any sign of it; "
    "start the run again with the same `clbench run` command (a sweep starts it again by "
    "itself). `clbench.training.strategy_kit.check_resume` checks a plugin's resume "
    "(docs/writing-a-strategy.md, 'Resuming a run')")


def _refuse_undeclared(run: dict) -> None:
    """Refuse a run whose strategy plugin, as installed now, does not declare how it resumes
    (a run recorded before clbench asked, whose checkpoint may lack the plugin's state)."""
    from clbench.strategies import registry
    from clbench.strategies.base import resume_problem

    name = ((run.get("config") or {}).get("strategy") or {}).get("name") or run["strategy"]
    problem = resume_problem(registry.load_class(name))
    if problem:
        raise UserError(f"run {run['id']} cannot be resumed: {problem}",
                        hint=_NOT_RESUMABLE_HINT)


def checkpoint_folder(run: dict, directory: str | None = None) -> Path:
    """Where `run`'s checkpoint is: under `directory` if given, else where the run wrote it."""
    run_id = run["id"]
    config = run.get("config") or {}
    if config.get("plugins"):
        raise UserError(f"run {run_id} added Avalanche plugins ("
                        f"{', '.join(p.get('class', '?') for p in config['plugins'])}), whose "
                        "state clbench cannot checkpoint safely: it has no checkpoint",
                        hint="start it again with the same `clbench run` command")
    if config.get("not_resumable"):  # recorded at its start; it wrote no checkpoint
        raise UserError(f"run {run_id} cannot be resumed: {config['not_resumable']}",
                        hint=_NOT_RESUMABLE_HINT)
    base = directory or config.get("checkpoint_dir")
    if not base:
        raise UserError(f"run {run_id} was run without checkpoints (--no-checkpoint)",
                        hint="start it again with the same `clbench run` command")
    folder = Path(base).expanduser().absolute() / run_id
    if checkpoints.find(folder) is None:
        raise checkpoints.CheckpointError(
            f"run {run_id} has no checkpoint in {folder}",
            hint="it failed before its first session ended, or the checkpoint was deleted or "
                 "moved (pass --checkpoint-dir DIR for another base folder); otherwise start "
                 "it again")
    return folder


def _changes(run: dict, state: dict[str, Any], prepared) -> list[str]:
    """What differs between the run as it started and as it would continue now."""
    from clbench.run.provenance import code_fingerprint
    from clbench.run.runner import resolved_config

    changes = []
    config = prepared.config
    stored = run.get("config") or {}
    now = resolved_config(config, prepared.plugin)
    differing = sorted(k for k in now if now[k] != stored.get(k))
    if differing:
        changes.append(f"the config resolves differently now ({', '.join(differing)}: a "
                       "parameter was added, renamed or removed)")
    code = code_fingerprint(config.strategy)
    for key, before in state.get("code", {}).items():
        if code.get(key) != before:
            changes.append(f"the code changed ({key})")
    scenario, bundle = prepared.scenario, prepared.bundle
    if scenario.manifest.hash != run.get("scenario_manifest_hash"):
        changes.append("the scenario manifest changed")
    if scenario.dataset_hashes != stored.get("dataset_manifest_hashes"):
        changes.append("a dataset manifest changed")
    if bundle.checkpoint_sha256 != run.get("model_checkpoint_sha256"):
        changes.append("the model checkpoint file changed")
    drawn = [s.sample_ids for s in scenario.sessions]
    if [list(map(str, s)) for s in drawn] != [list(map(str, s)) for s in state["sample_ids"]]:
        changes.append("the sessions draw other samples (the data changed)")
    return changes


@dataclass
class Plan:
    """A failed run checked and loaded, ready to be taken up (nothing written yet)."""

    run_id: str
    folder: Path
    after_session: int
    state: dict[str, Any]
    prepared: Any
    changes: list[str]


def plan(run_id: str, store, *, force: bool = False, checkpoint_dir: str | None = None,
         data_root: str | None = None) -> Plan:
    """Every check of `--resume RUN` (id or unique prefix), with the checkpoint loaded and the
    run rebuilt; UserError on any refusal. Writes nothing."""
    from clbench.run.reproduce import config_of
    from clbench.run.runner import prepare

    run = store.get_run(run_id)  # marks a run with a stale heartbeat failed first
    _refuse_status(run)
    folder = checkpoint_folder(run, checkpoint_dir)
    _refuse_undeclared(run)
    after_session, state = checkpoints.load(folder)
    facts = state.get("run_facts", {})
    prepared = prepare(config_of(run), data_root=data_root,
                       skip_corrupt=bool(facts.get("skip_corrupt")),
                       evaluate_on=facts.get("evaluate_on", "test"))
    changes = _changes(run, state, prepared)
    if changes and not force:
        raise UserError(f"run {run['id']} cannot be resumed as it started: {'; '.join(changes)}",
                        hint="its sessions so far would not be comparable with the rest; start "
                             "it again, or pass --force to resume anyway (the changes are "
                             "recorded with the run)")
    return Plan(run["id"], folder, after_session, state, prepared, changes)


def take_up(planned: Plan, store, *, progress: bool = True, quiet: bool = False,
            keep_checkpoint: bool = False):
    """Put the checkpoint's state back, reopen the run in the store (dropping rows of later
    sessions, recording the resumption) and train it to the end; the runner's RunResult."""
    from clbench.run.checkpoints import Resumed, SessionCheckpoints
    from clbench.run.runner import train
    from clbench.training.session_state import restore_model

    prepared, state = planned.prepared, planned.state
    # weights (after `prepare_for_load`), then the strategy's `load_resume_state`: as the
    # strategy test kit's `check_resume` does
    restore_model(state, prepared.classifier, prepared.plugin, prepared.device)
    note = {"after_session": planned.after_session,
            "at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "host": socket.gethostname(), "user": getpass.getuser(),
            **({"forced": planned.changes} if planned.changes else {})}
    store.reopen_run(planned.run_id, after_session=planned.after_session, note=note)
    stored = store.get_run(planned.run_id)
    resumed = Resumed(folder=planned.folder, after_session=planned.after_session,
                      random_state=state["random"], max_trainable=int(state["max_trainable"]),
                      elapsed_s=float(state["elapsed_s"]), evaluations=stored["evaluations"])
    facts = state.get("run_facts", {})
    saving = SessionCheckpoints(planned.folder, keep=keep_checkpoint, run_facts=facts)
    if not quiet:
        forced = f" despite: {'; '.join(planned.changes)}" if planned.changes else ""
        print(f"run {planned.run_id[:12]}: {prepared.config.strategy} on "
              f"{prepared.scenario.name}, resumed{forced}")
    return train(prepared, store, planned.run_id, progress=progress, quiet=quiet,
                 purpose=facts.get("purpose"), saving=saving, resumed=resumed)


def resume(run_id: str, store, *, force: bool = False, checkpoint_dir: str | None = None,
           data_root: str | None = None, progress: bool = True, quiet: bool = False,
           keep_checkpoint: bool = False):
    """Continue the failed run `run_id` (id or unique prefix) in `store` from its checkpoint;
    returns the runner's RunResult. Refusals are UserErrors raised before anything changes."""
    planned = plan(run_id, store, force=force, checkpoint_dir=checkpoint_dir,
                   data_root=data_root)
    return take_up(planned, store, progress=progress, quiet=quiet,
                   keep_checkpoint=keep_checkpoint)
