"""What a run carries from one session to the next, captured and put back in one place.

A run's session checkpoints (`clbench.run.checkpoints`) and the strategy test kit's
crash-and-resume check (`clbench.training.strategy_kit.check_resume`) both use these functions,
so the kit proves what a real `clbench run --resume` does: the classifier's weights (through the
strategy's `prepare_for_load`), the strategy's `resume_state()`, and every random generator a
later session draws from. torch is imported on use (the CLI's quick commands import the
checkpoint module).
"""

from __future__ import annotations

import random
from typing import Any


def capture(classifier, plugin, trainer) -> dict[str, Any]:
    """The state after a session: `model` (the state dict), `strategy` (`resume_state()`) and
    `random`. Its tensors are the live ones: save it before training goes on."""
    return {"model": classifier.state_dict(), "strategy": plugin.resume_state(),
            "random": random_state(trainer)}


def restore_model(state: dict[str, Any], classifier, plugin, device=None) -> None:
    """Put a captured state's weights and strategy state into a freshly built classifier and
    plugin (the random generators come back with `restore_random_state`, once the trainer
    exists)."""
    model_state = state["model"]
    plugin.prepare_for_load(classifier, model_state)
    classifier.load_state_dict(model_state)
    if device is not None:
        classifier.to(device)
    plugin.load_resume_state(state.get("strategy", {}))


def random_state(trainer) -> dict[str, Any]:
    """Every generator a later session draws from: torch's (batch order, dropout), CUDA's,
    NumPy's, Python's, and the trainer's caption-template generator."""
    import numpy as np
    import torch

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
    import numpy as np
    import torch

    torch.set_rng_state(state["torch"])
    numpy = state["numpy"]
    np.random.set_state((numpy["kind"], numpy["keys"].numpy().astype(np.uint32), numpy["pos"],
                         numpy["has_gauss"], numpy["cached"]))
    random.setstate(_tupled(state["python"]))
    trainer.template_generator.set_state(state["templates"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
