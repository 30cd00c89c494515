"""What the benchmarks (`clbench.bench`, `clbench.bench_switches`) time with: the median of
repeats after a warm-up, a ViT classifier of random weights, and a clock of a session's steps."""

from __future__ import annotations

import statistics
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

__all__ = ["bench_model", "median_time", "step_clock"]


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

    from clbench.config import ModelConfig
    from clbench.models import load_model
    from clbench.strategies.testing import classifier

    torch.manual_seed(0)
    bundle = load_model(ModelConfig(arch=arch))
    names = [f"class {i}" for i in range(classes)]
    model = classifier(bundle.clip, names, ["a photo of a {}.", "a {}."], bundle.tokenizer)
    model.transform = bundle.transform
    return model.to(device).eval(), bundle.image_size


def step_clock():
    """An Avalanche plugin timing a session: from its start to the first batch (the
    strategy's selection), each training step, each epoch. (Made here: Avalanche is imported
    only when a benchmark runs.)"""
    from avalanche.core import SupervisedPlugin

    class _StepClock(SupervisedPlugin):

        def __init__(self):
            super().__init__()
            self.session_start = self.first_epoch = 0.0
            self.steps: list[float] = []
            self.epochs: list[float] = []
            self._step = self._epoch = 0.0

        def before_training_exp(self, strategy, **kwargs):
            self.session_start = time.perf_counter()

        def before_training_epoch(self, strategy, **kwargs):
            self._epoch = time.perf_counter()
            if not self.first_epoch:
                self.first_epoch = self._epoch

        def after_training_epoch(self, strategy, **kwargs):
            self.epochs.append(time.perf_counter() - self._epoch)

        def before_training_iteration(self, strategy, **kwargs):
            self._step = time.perf_counter()

        def after_training_iteration(self, strategy, **kwargs):
            self.steps.append(time.perf_counter() - self._step)

    return _StepClock()
