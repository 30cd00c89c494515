"""What a run's checkpoint holds, and putting it back.

After session K the state a run needs to continue is: the classifier's weights (with whatever
structure the strategy added: unmerged adapters, gate scores, LLU's memories), the strategy's
own state across sessions (`StrategyPlugin.resume_state`; none for the built-ins, whose masks and
chosen heads are recomputed at the start of every session), every random generator the rest of
the run draws from, the largest trainable count so far and the time spent. The optimizer is
not in it: clbench builds a new one at the start of every session (`SessionTrainer`), so at a
session boundary there is no optimizer state to carry. The drawn sample ids and the config hash
are in it to check, on resume, that the run would continue on the same data and protocol.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from clbench import checkpoints


def random_state(trainer) -> dict[str, Any]:
    """Every generator a later session draws from: torch's (batch order, dropout), CUDA's,
    NumPy's, Python's, and the trainer's caption-template generator."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {"torch": torch.get_rng_state(),
             "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)),
                       "pos": int(pos), "has_gauss": int(has_gauss), "cached": float(cached)},
             "python": _listed(random.getstate()),
             "templates": trainer.template_generator.get_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _listed(value: Any) -> Any:
    return [_listed(v) for v in value] if isinstance(value, (tuple, list)) else value


def _tupled(value: Any) -> Any:
    return tuple(_tupled(v) for v in value) if isinstance(value, list) else value


def restore_random_state(state: dict[str, Any], trainer) -> None:
    torch.set_rng_state(state["torch"])
    numpy = state["numpy"]
    np.random.set_state((numpy["kind"], numpy["keys"].numpy().astype(np.uint32), numpy["pos"],
                         numpy["has_gauss"], numpy["cached"]))
    random.setstate(_tupled(state["python"]))
    trainer.template_generator.set_state(state["templates"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


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
            from clbench.provenance import code_fingerprint

            self._code = code_fingerprint(strategy)
        return self._code

    def save(self, after_session: int, session_start: float, state: dict[str, Any]) -> None:
        began = time.perf_counter()
        checkpoints.save(self.folder, after_session, {**state, "run_facts": self.run_facts})
        self.cost.append((time.perf_counter() - began, began - session_start))

    def cost_summary(self) -> dict[str, float]:
        saving = sum(c[0] for c in self.cost)
        session = sum(c[1] for c in self.cost)
        return {"sessions": len(self.cost), "seconds": saving,
                "fraction_of_session_time": saving / session if session else 0.0}

    def finish(self) -> None:
        """The run completed: its checkpoint goes, unless it was asked to be kept."""
        if not self.keep:
            checkpoints.delete(self.folder)
