"""What the benchmarks (`clbench.bench.suite`, `clbench.bench.switches`) time with: the median of
repeats after a warm-up, a ViT classifier of random weights, a clock of a session's steps, one
timed session of a strategy through clbench's loop, and the peak memory of such a session in a
fresh process."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

__all__ = ["bench_model", "median_time", "session_peak_mb", "step_clock", "timed_session"]


def median_time(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench_model(arch: str, device: torch.device, classes: int = 10):
    """A classifier of `arch` (random weights unless it has a committed checkpoint) with one
    head of `classes` classes, and its image size; the model's preprocessing is its
    `transform` attribute."""
    import torch

    from clbench.config.run_config import ModelConfig
    from clbench.models import load_model
    from clbench.training.strategy_kit import classifier

    torch.manual_seed(0)
    bundle = load_model(ModelConfig(arch=arch))
    names = [f"class {i}" for i in range(classes)]
    model = classifier(bundle.clip, names, ["a photo of a {}.", "a {}."], bundle.tokenizer)
    model.transform = bundle.transform
    return model.to(device).eval(), bundle.image_size


def step_clock():
    """An Avalanche plugin timing sessions: from each session's start to its first batch (the
    strategy's selection), each training step, each epoch, and each epoch's gradient work (its
    steps' forward, loss and backward, without the optimizer step or a strategy's masking).
    (Made here: Avalanche is imported only when a benchmark runs.)"""
    from avalanche.core import SupervisedPlugin

    class _StepClock(SupervisedPlugin):

        def __init__(self):
            super().__init__()
            self.selections: list[float] = []  # a session's start to its first epoch
            self.steps: list[float] = []
            self.epochs: list[float] = []
            self.later_epochs: list[float] = []  # all but each session's first
            self.passes: list[float] = []  # each epoch's gradient work, its steps' summed
            self.later_passes: list[float] = []
            self._session = self._step = self._epoch = self._forward = self._passes = 0.0
            self._first = False

        def before_training_exp(self, strategy, **kwargs):
            self._session = time.perf_counter()
            self._first = True

        def before_training_epoch(self, strategy, **kwargs):
            self._epoch = time.perf_counter()
            self._passes = 0.0
            if self._first:
                self.selections.append(self._epoch - self._session)

        def after_training_epoch(self, strategy, **kwargs):
            self.epochs.append(time.perf_counter() - self._epoch)
            self.passes.append(self._passes)
            if not self._first:
                self.later_epochs.append(self.epochs[-1])
                self.later_passes.append(self._passes)
            self._first = False

        # `timed_session` makes the clock the first plugin: its hooks run before the
        # strategy's, so the masking that a strategy does after backward is left out
        def before_forward(self, strategy, **kwargs):
            self._forward = time.perf_counter()

        def after_backward(self, strategy, **kwargs):
            self._passes += time.perf_counter() - self._forward

        def before_training_iteration(self, strategy, **kwargs):
            self._step = time.perf_counter()

        def after_training_iteration(self, strategy, **kwargs):
            self.steps.append(time.perf_counter() - self._step)

    return _StepClock()


def timed_session(strategy: str, arch: str, device: torch.device, batch: int, epochs: int,
                  speed: dict[str, Any] | None = None, sessions: int = 1):
    """The clock (`step_clock`) of `sessions` sessions of `strategy` (each on the same 2
    classes, 2 batches of random images, lr 1e-5) through clbench's loop, with the speed
    switches `speed` (TrainingConfig fields) applied as `clbench run` applies them."""
    import torch
    from avalanche.training.plugins import EvaluationPlugin

    from clbench.config.run_config import TrainingConfig
    from clbench.strategies import registry
    from clbench.training.loop import SessionTrainer
    from clbench.training.speed import apply_speed_switches, loader_options
    from clbench.training.strategy_kit import TinyImages, train_stream
    from clbench.training.text_cache import TextHeadCache

    model, size = bench_model(arch, device)
    training = TrainingConfig(epochs=epochs, batch_size=batch, lr=1e-5, **(speed or {}))
    apply_speed_switches(model, training, device)
    model.train()
    clock = step_clock()
    trainer = SessionTrainer(model=model, training=training, device=device, seed=0,
                             plugins=[clock, registry.create(strategy, {})],
                             evaluator=EvaluationPlugin(loggers=[]))
    data = TinyImages(2 * batch, seed=3, classes=2, size=size)
    # warm, as a run is when a session starts: its evaluations and earlier sessions have run
    # through the model (so a session's selection never meets a cold allocator), and its
    # evaluation has just read the text head from the run's text store (`clbench run` gives
    # the classifier one), fingerprinting the text side
    model.text_store = TextHeadCache(None)

    @torch.no_grad()
    def evaluation_text_head():
        model.caption_embeddings(model.active_head)

    model.requires_grad_(False)  # the store serves a frozen text side, as in a run
    evaluation_text_head()
    model.requires_grad_(True)
    x = torch.stack([data[i][0] for i in range(batch)]).to(device)
    model.clip.encode_image(x).float().sum().backward()
    model.zero_grad(set_to_none=True)
    session = train_stream(data)[0]
    for number in range(sessions):
        if number:
            evaluation_text_head()
        trainer.train(session, eval_streams=[], **loader_options(training, device))
    return clock


_MEMORY_SCRIPT = """
import json, sys, torch
from clbench.bench.timing import bench_model, timed_session
from clbench.training.loop import peak_memory_mb
arch, device, batch, strategy = sys.argv[1], torch.device(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
if strategy == "-":
    bench_model(arch, device)
else:
    timed_session(strategy, arch, device, batch, 1, json.loads(sys.argv[5]))
print(json.dumps(peak_memory_mb(device)))
"""


def session_peak_mb(arch: str, device: torch.device, batch: int, strategy: str,
                    speed: dict[str, Any] | None = None) -> float:
    """Peak memory (MB: resident on the CPU, allocated on CUDA) of a fresh process that loads
    `arch` and, unless `strategy` is "-", trains one session of it (`timed_session`, 1 epoch)
    with the speed switches `speed`."""
    done = subprocess.run([sys.executable, "-c", _MEMORY_SCRIPT, arch, str(device), str(batch),
                           strategy, json.dumps(speed or {})], capture_output=True, text=True,
                          check=False)
    if done.returncode != 0:
        raise RuntimeError(f"the memory probe failed: {done.stderr[-2000:]}")
    return float(done.stdout.strip().splitlines()[-1])
