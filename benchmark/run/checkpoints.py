"""Session checkpoints: what a run needs to continue after a crash, written after every session.

A run's checkpoint folder holds one state file (`session-K.pt`, the state after session K) and
`checkpoint.json`, which names it with its sha256. Both are written under a temporary name,
flushed to disk and renamed into place, the JSON last: a reader sees the previous complete
checkpoint or the new one, never a torn file, however the writer died. The state is a plain
dict of tensors, numbers, strings and lists, loaded with `torch.load(weights_only=True)`, so a
checkpoint can never run code on load.

What a checkpoint holds after session K: the classifier's weights (with whatever structure the
strategy added: unmerged adapters, gate scores, LLU's memories), the strategy's own state across
sessions (`StrategyPlugin.resume_state`; none for the built-ins, whose masks and chosen heads
are recomputed at the start of every session), every random generator the rest of the run draws
from (these three captured by `clbench.training.session_state`, as the strategy test kit's
`check_resume` captures them), the largest trainable count so far and the time spent. The
optimizer is not in it: clbench builds a new one at the start of every session
(`SessionTrainer`), so at a session boundary there is no optimizer state to carry. The drawn
sample ids and the config hash are in it to check, on resume, that the run would continue on
the same data and protocol. `SessionCheckpoints` writes one after every session;
`clbench.run.resume` reads it back.

Where: `--checkpoint-dir`, else $CLBENCH_CHECKPOINT_DIR, else beside an SQLite store
(`results.db` -> `results.checkpoints/`), else (a database server) ~/.cache/clbench/checkpoints.
On a cluster, point it at storage every node sees.

A run whose strategy plugin does not declare how it resumes
(`clbench.strategies.base.resume_problem`) is not checkpointed: its run records why, and
`--resume` refuses it. Only the latest session's checkpoint is kept; a completed run's folder
is deleted unless the run was asked to keep it. This module does not import torch at import
time (the CLI's quick commands import it to check a folder).
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clbench.errors import UserError
from clbench.files import write_atomically
from clbench.hashing import file_sha256

FORMAT = 1
MANIFEST = "checkpoint.json"
ENV_DIR = "CLBENCH_CHECKPOINT_DIR"


class CheckpointError(UserError):
    """A checkpoint cannot be written (disk full, unwritable folder) or read (missing, corrupt)."""


@dataclass(frozen=True)
class CheckpointPolicy:
    """Whether and where a run checkpoints, and whether a completed run keeps its checkpoint."""

    base: Path | None  # None: no checkpoints
    keep: bool = False

    def folder(self, run_id: str) -> Path | None:
        return None if self.base is None else self.base / run_id


def default_base(db_url: str) -> Path:
    """The checkpoint base folder for a store at `db_url` when none is configured."""
    if os.environ.get(ENV_DIR):
        return Path(os.environ[ENV_DIR]).expanduser().absolute()
    from clbench.store.location import parse_url, sqlite_path

    path = sqlite_path(parse_url(db_url))
    if path is not None:
        return path.expanduser().absolute().with_suffix(".checkpoints")
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "clbench" / "checkpoints"


def policy(db_url: str, *, directory: str | None = None, enabled: bool = True,
           keep: bool = False) -> CheckpointPolicy:
    """The policy of `clbench run` flags (`--checkpoint-dir`, `--no-checkpoint`,
    `--keep-checkpoint`), with the base folder checked writable at once."""
    if not enabled:
        return CheckpointPolicy(None)
    base = Path(directory).expanduser().absolute() if directory else default_base(db_url)
    check_writable(base)
    return CheckpointPolicy(base, keep)


_HINT = ("choose a writable folder with --checkpoint-dir DIR (or $CLBENCH_CHECKPOINT_DIR), "
         "or run without checkpoints (--no-checkpoint: a crash then loses the whole run)")


def _reason(err: OSError) -> str:
    return os.strerror(err.errno) if err.errno else str(err)


def check_writable(base: Path) -> None:
    """Refuse, before a run starts, a checkpoint folder that cannot be created or written."""
    existing = base
    while not existing.exists():
        if existing.parent == existing:
            break
        existing = existing.parent
    if not existing.is_dir():
        raise CheckpointError(f"cannot write checkpoints under {base}: {existing} is not a "
                              "folder", hint=_HINT)
    if not os.access(existing, os.W_OK | os.X_OK):
        raise CheckpointError(f"cannot write checkpoints under {base}: {existing} is not "
                              "writable", hint=_HINT)


def save(folder: Path, after_session: int, state: dict[str, Any]) -> Path:
    """Write the state after session `after_session` and make it the folder's checkpoint;
    the previous state file is removed once the new one is committed."""
    import torch

    try:
        folder.mkdir(parents=True, exist_ok=True)
        previous = _manifest(folder)
        name = f"session-{after_session}.pt"
        write_atomically(folder / name, lambda handle: torch.save(state, handle))
        manifest = {"format": FORMAT, "after_session": after_session, "file": name,
                    "sha256": file_sha256(folder / name)}
        write_atomically(folder / MANIFEST,
                          lambda handle: handle.write(json.dumps(manifest).encode()))
    except OSError as err:
        full = err.errno in (errno.ENOSPC, errno.EDQUOT)
        raise CheckpointError(
            f"cannot write the checkpoint of session {after_session} to {folder}: "
            f"{_reason(err)}",
            hint=("free space there, or " if full else "") + _HINT) from err
    if previous and previous.get("file") != name:
        try:
            (folder / previous["file"]).unlink()
        except (OSError, KeyError, TypeError):
            pass
    return folder / name


def _manifest(folder: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((folder / MANIFEST).read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def find(folder: Path) -> dict[str, Any] | None:
    """The folder's committed checkpoint {after_session, file, sha256}, or None if it has none
    (raises CheckpointError when the manifest is unreadable)."""
    manifest = _manifest(folder)
    if manifest is None:
        return None
    if manifest.get("format") != FORMAT or not isinstance(manifest.get("after_session"), int) \
            or not isinstance(manifest.get("file"), str):
        raise CheckpointError(f"the checkpoint manifest {folder / MANIFEST} is corrupt",
                              hint="the run cannot be resumed; start it again")
    return manifest


def load(folder: Path) -> tuple[int, dict[str, Any]]:
    """(after_session, state) of the folder's checkpoint, its content hash checked, loaded
    without unpickling arbitrary objects."""
    import torch

    manifest = find(folder)
    if manifest is None:
        raise CheckpointError(f"no checkpoint in {folder}",
                              hint="the run cannot be resumed; start it again")
    path = folder / manifest["file"]
    try:
        digest = file_sha256(path)
    except OSError as err:
        raise CheckpointError(f"cannot read the checkpoint {path}: {_reason(err)}",
                              hint="the run cannot be resumed; start it again") from err
    if digest != manifest.get("sha256"):
        raise CheckpointError(f"the checkpoint {path} is corrupt (its sha256 is not the one "
                              "recorded when it was written)",
                              hint="the run cannot be resumed; start it again")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unreadable content is a corrupt checkpoint
        raise CheckpointError(f"the checkpoint {path} cannot be loaded: {err}",
                              hint="the run cannot be resumed; start it again") from err
    return manifest["after_session"], state


def delete(folder: Path) -> None:
    """Remove a run's checkpoint folder (and its base folder if that is left empty)."""
    shutil.rmtree(folder, ignore_errors=True)
    try:
        folder.parent.rmdir()
    except OSError:
        pass


@dataclass
class Resumed:
    """Where a resumed run starts: its checkpoint's state and the rows already stored."""

    folder: Path
    after_session: int
    random_state: dict[str, Any]
    max_trainable: int
    elapsed_s: float
    evaluations: list[dict]  # the stored evaluation rows of sessions 0..after_session


@dataclass
class SessionCheckpoints:
    """Saves a run's state after each session into its folder, and measures what that costs
    against the session's own time (training, evaluation and storing)."""

    folder: Path
    keep: bool = False
    run_facts: dict[str, Any] = field(default_factory=dict)  # runner options a resume reuses
    cost: list[tuple[float, float]] = field(default_factory=list)  # (save s, session s)
    _code: dict[str, Any] | None = None

    def code(self, strategy: str) -> dict[str, Any]:
        if self._code is None:
            from clbench.run.provenance import code_fingerprint

            self._code = code_fingerprint(strategy)
        return self._code

    def save(self, after_session: int, session_start: float, state: dict[str, Any]) -> None:
        began = time.perf_counter()
        save(self.folder, after_session, {**state, "run_facts": self.run_facts})
        self.cost.append((time.perf_counter() - began, began - session_start))

    def cost_summary(self) -> dict[str, float]:
        saving = sum(c[0] for c in self.cost)
        session = sum(c[1] for c in self.cost)
        return {"sessions": len(self.cost), "seconds": saving,
                "fraction_of_session_time": saving / session if session else 0.0}

    def finish(self) -> None:
        """The run completed: its checkpoint goes, unless it was asked to be kept."""
        if not self.keep:
            delete(self.folder)
