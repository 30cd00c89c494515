"""What each speed switch (`clbench.speed`) buys: a switch on against off, same model, same batch.

`switches(arch, device, batch, repeats)` returns one figure per measurement, as dicts
`{name, value, reference, ratio, unit, what}` (value: switch on; reference: off; ratio =
on / off):

* `switch_<name>_step` for grad_checkpointing, channels_last and compile: the median training
  step of a LoRSU session (forward, FLYP loss, backward, optimizer step; `bench_timing.step_clock`),
  after the first step (warm-up; with compile the first batches compile);
* `switch_workers_epoch`: the median epoch of the same session with DataLoader workers (a step
  does not include loading a batch, an epoch does), min(4, CPU count) workers against none;
* `switch_sdpa_eval`: an evaluation pass over the batch (no gradients), the switch applied to
  the same model afterwards;
* `switch_grad_checkpointing_memory`: peak memory of a one-epoch LoRSU session in a fresh
  process (as `bench._peak_mb`).

The session is `bench._session_times`'s (2 classes, 2 batches of random images, lr 1e-5), with
the switches applied as `clbench run` applies them (`apply_speed_switches` on the classifier,
`loader_options` for the DataLoader). Avalanche and the model are imported only when it runs.
"""

from __future__ import annotations

import json
import math
import os
import statistics
import subprocess
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

__all__ = ["STEP_SWITCHES", "switches"]

# the switches timed per training step, with their "on" value
STEP_SWITCHES = {"grad_checkpointing": True, "channels_last": True, "compile": True}
STRATEGY = "lorsu"


def _session(arch: str, device: torch.device, batch: int, epochs: int,
             speed: dict[str, Any]):
    """The step clock (`bench_timing.step_clock`) of one LoRSU session of `epochs` epochs over 2
    batches, with the speed switches `speed` (TrainingConfig fields) applied."""
    import torch
    from avalanche.training.plugins import EvaluationPlugin

    from clbench.bench_timing import bench_model, step_clock
    from clbench.config import TrainingConfig
    from clbench.loop import SessionTrainer
    from clbench.speed import apply_speed_switches, loader_options
    from clbench.strategies import registry
    from clbench.strategies.testing import TinyImages, train_stream

    model, size = bench_model(arch, device)
    training = TrainingConfig(epochs=epochs, batch_size=batch, lr=1e-5, **speed)
    apply_speed_switches(model, training, device)
    model.train()
    clock = step_clock()
    trainer = SessionTrainer(model=model, training=training, device=device, seed=0,
                             plugins=[clock, registry.create(STRATEGY, {})],
                             evaluator=EvaluationPlugin(loggers=[]))
    data = TinyImages(2 * batch, seed=3, classes=2, size=size)
    # warm, as in `bench._session_times`: a run has evaluated through the model before
    x = torch.stack([data[i][0] for i in range(batch)]).to(device)
    model.clip.encode_image(x).float().sum().backward()
    model.zero_grad(set_to_none=True)
    trainer.train(train_stream(data)[0], eval_streams=[], **loader_options(training, device))
    return clock


def _after_first(times: list[float]) -> float:
    return statistics.median(times[1:] or times)


def _figure(name: str, value: float, reference: float, unit: str, what: str) -> dict[str, Any]:
    return {"name": name, "value": value, "reference": reference, "ratio": value / reference,
            "unit": unit, "what": what}


_MEMORY_SCRIPT = """
import json, sys, torch
from clbench import bench_switches
arch, device, batch = sys.argv[1], torch.device(sys.argv[2]), int(sys.argv[3])
bench_switches._session(arch, device, batch, 1, json.loads(sys.argv[4]))
from clbench.loop import peak_memory_mb
print(json.dumps(peak_memory_mb(device)))
"""


def _peak_mb(arch: str, device: torch.device, batch: int, speed: dict[str, Any]) -> float:
    """Peak memory (MB) of a fresh process training one LoRSU session with `speed`."""
    done = subprocess.run([sys.executable, "-c", _MEMORY_SCRIPT, arch, str(device), str(batch),
                           json.dumps(speed)], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"the memory probe failed: {done.stderr[-2000:]}")
    return float(done.stdout.strip().splitlines()[-1])


def _eval_sdpa(arch: str, device: torch.device, batch: int, repeats: int) -> dict[str, Any]:
    import torch

    from clbench.bench_timing import bench_model, median_time
    from clbench.config import TrainingConfig
    from clbench.speed import apply_speed_switches

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
        off = _session(arch, device, batch, epochs, {})
        on = _session(arch, device, batch, epochs, {name: value})
        figures.append(_figure(
            f"switch_{name}_step", _after_first(on.steps), _after_first(off.steps), "s",
            f"a {STRATEGY} training step with vs without {name} ({arch}, batch {batch})"))
    workers = min(4, os.cpu_count() or 1)
    off = _session(arch, device, batch, epochs, {"workers": 0})
    on = _session(arch, device, batch, epochs, {"workers": workers})
    figures.append(_figure(
        "switch_workers_epoch", _after_first(on.epochs), _after_first(off.epochs), "s",
        f"a {STRATEGY} epoch (2 batches, loading included) with {workers} DataLoader workers "
        f"vs none ({arch}, batch {batch})"))
    figures.append(_eval_sdpa(arch, device, batch, repeats))
    figures.append(_figure(
        "switch_grad_checkpointing_memory",
        _peak_mb(arch, device, batch, {"grad_checkpointing": True}),
        _peak_mb(arch, device, batch, {}), "MB",
        f"peak memory of a {STRATEGY} session with vs without grad_checkpointing ({arch}, "
        f"batch {batch}, fresh process)"))
    return figures
