"""What each speed switch (`clbench.training.speed`) buys: a switch on against off, same model, same batch.

`switches(arch, device, batch, repeats)` returns one figure per measurement, as dicts
`{name, value, reference, ratio, unit, what}` (value: switch on; reference: off; ratio =
on / off):

* `switch_<name>_step` for grad_checkpointing, channels_last and compile: the median training
  step of a LoRSU session (forward, FLYP loss, backward, optimizer step; `clbench.bench.timing.step_clock`),
  after the first step (warm-up; with compile the first batches compile);
* `switch_workers_epoch`: the median epoch of the same session with DataLoader workers (a step
  does not include loading a batch, an epoch does), min(4, CPU count) workers against none;
* `switch_sdpa_eval`: an evaluation pass over the batch (no gradients), the switch applied to
  the same model afterwards;
* `switch_grad_checkpointing_memory`: peak memory of a one-epoch LoRSU session in a fresh
  process (`clbench.bench.timing.session_peak_mb`).

The session is `clbench.bench.timing.timed_session`'s (2 classes, 2 batches of random images, lr 1e-5),
with the switches applied as `clbench run` applies them (`apply_speed_switches` on the
classifier, `loader_options` for the DataLoader). Avalanche and the model are imported only when it runs.
"""

from __future__ import annotations

import math
import os
import statistics
from typing import TYPE_CHECKING, Any

from clbench.bench.timing import bench_model, median_time, session_peak_mb, timed_session

if TYPE_CHECKING:
    import torch

__all__ = ["STEP_SWITCHES", "switches"]

# the switches timed per training step, with their "on" value
STEP_SWITCHES = {"grad_checkpointing": True, "channels_last": True, "compile": True}
STRATEGY = "lorsu"


def _after_first(times: list[float]) -> float:
    return statistics.median(times[1:] or times)


def _figure(name: str, value: float, reference: float, unit: str, what: str) -> dict[str, Any]:
    return {"name": name, "value": value, "reference": reference, "ratio": value / reference,
            "unit": unit, "what": what}


def _eval_sdpa(arch: str, device: torch.device, batch: int, repeats: int) -> dict[str, Any]:
    import torch

    from clbench.config.run_config import TrainingConfig
    from clbench.training.speed import apply_speed_switches

    model, size = bench_model(arch, device)
    x = torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(1)).to(device)

    @torch.no_grad()
    def evaluate():
        model.encode_image(x)
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    off = median_time(evaluate, repeats)
    apply_speed_switches(model, TrainingConfig(sdpa=True), device)
    on = median_time(evaluate, repeats)
    return _figure("switch_sdpa_eval", on, off, "s",
                   f"an evaluation pass with vs without sdpa ({arch}, batch {batch})")


def switches(arch: str, device: torch.device, batch: int, repeats: int) -> list[dict]:
    """Every speed switch on vs off (module docstring); `repeats` timed steps at least."""
    epochs = max(2, math.ceil((repeats + 1) / 2))  # 2 steps an epoch, the first one left out
    figures = []
    for name, value in STEP_SWITCHES.items():
        off = timed_session(STRATEGY, arch, device, batch, epochs, {})
        on = timed_session(STRATEGY, arch, device, batch, epochs, {name: value})
        figures.append(_figure(
            f"switch_{name}_step", _after_first(on.steps), _after_first(off.steps), "s",
            f"a {STRATEGY} training step with vs without {name} ({arch}, batch {batch})"))
    workers = min(4, os.cpu_count() or 1)
    off = timed_session(STRATEGY, arch, device, batch, epochs, {"workers": 0})
    on = timed_session(STRATEGY, arch, device, batch, epochs, {"workers": workers})
    figures.append(_figure(
        "switch_workers_epoch", _after_first(on.epochs), _after_first(off.epochs), "s",
        f"a {STRATEGY} epoch (2 batches, loading included) with {workers} DataLoader workers "
        f"vs none ({arch}, batch {batch})"))
    figures.append(_eval_sdpa(arch, device, batch, repeats))
    figures.append(_figure(
        "switch_grad_checkpointing_memory",
        session_peak_mb(arch, device, batch, STRATEGY, {"grad_checkpointing": True}),
        session_peak_mb(arch, device, batch, STRATEGY, {}), "MB",
        f"peak memory of a {STRATEGY} session with vs without grad_checkpointing ({arch}, "
        f"batch {batch}, fresh process)"))
    return figures
