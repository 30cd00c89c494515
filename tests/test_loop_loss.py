"""The training loop keeps each epoch's loss on the device and reads it once per epoch (a read
makes the host wait for the device): the session's `final_loss` is still the mean loss of its
last epoch, and a loss that stops being finite at any step still stops the run (at that epoch's
end, naming session and epoch). The progress bar reads the loss at most twice a second, and
never when it is not shown."""

from __future__ import annotations

import math
import sys

import pytest
import torch
from avalanche.core import SupervisedPlugin

from clbench.errors import TrainingDiverged
from clbench.strategies import registry
from clbench.training import loggers
from clbench.training import loop as loop_module
from clbench.training.strategy_kit import (
    TinyImages,
    classifier,
    tiny_clip,
    train_stream,
    trainer,
)


class StepLosses(SupervisedPlugin):
    """Every step's loss, read after the step (what the loop itself no longer reads)."""

    def __init__(self):
        super().__init__()
        self.epochs: list[list[float]] = []

    def before_training_epoch(self, strategy, **kwargs):
        self.epochs.append([])

    def after_training_iteration(self, strategy, **kwargs):
        self.epochs[-1].append(strategy.loss.item())


def test_final_loss_is_the_mean_of_the_last_epoch():
    model = classifier(tiny_clip(), templates=["a photo of a {}."])
    steps = StepLosses()
    loop = trainer(model, [registry.create("ln", {}), steps], epochs=3, batch_size=2, lr=1e-3)
    loop.train(train_stream(TinyImages(6, 0))[0], eval_streams=[])
    assert [len(e) for e in steps.epochs] == [3, 3, 3]
    last = steps.epochs[-1]
    assert loop.session_record["final_loss"] == pytest.approx(sum(last) / len(last), rel=1e-6)
    assert steps.epochs[0] != last  # it trained: the last epoch's losses are its own


def test_a_loss_that_is_not_finite_at_one_step_stops_the_run_at_that_epoch():
    model = classifier(tiny_clip(), templates=["a photo of a {}."])
    data = TinyImages(6, 0)
    data.x[5] = math.nan  # the third batch of every epoch
    steps = StepLosses()
    loop = trainer(model, [registry.create("ln", {}), steps], epochs=3, batch_size=2, lr=1e-3)
    with pytest.raises(TrainingDiverged, match=r"the loss became nan in session 1, epoch 1"):
        loop.train(train_stream(data)[0], eval_streams=[])
    assert len(steps.epochs) == 1 and any(math.isnan(v) for v in steps.epochs[0])


def tensor_reads(monkeypatch, module) -> list[str]:
    """The values read off tensors (`item`, a tensor's truth in an `if`) by `module`'s code."""
    reads = []

    def counting(original):
        def read(self):
            if sys._getframe(1).f_code.co_filename == module.__file__:
                reads.append(original.__name__)
            return original(self)
        return read

    for name in ("item", "__bool__"):
        monkeypatch.setattr(torch.Tensor, name, counting(getattr(torch.Tensor, name)))
    return reads


def test_the_loop_reads_a_tensor_once_per_epoch_not_per_step(monkeypatch):
    model = classifier(tiny_clip(), templates=["a photo of a {}."])
    loop = trainer(model, [registry.create("ln", {})], epochs=2, batch_size=2, lr=1e-3)
    stream = train_stream(TinyImages(8, 0))
    reads = tensor_reads(monkeypatch, loop_module)
    loop.train(stream[0], eval_streams=[])
    assert reads == ["item", "item"]  # 2 epochs of 4 steps


class ShownBar:
    """tqdm's bar as on a terminal, writing nowhere; keeps the postfixes it was given."""

    def __init__(self, *args, **kwargs):
        self.disable, self.postfixes, self.n = False, [], 0

    def set_postfix(self, **values):
        self.postfixes.append(values)

    def update(self, n):
        self.n += n

    def close(self):
        pass


@pytest.mark.parametrize("shown,every_s,loss_reads", [
    (False, 0.0, 0),  # not a terminal: never read
    (True, 0.0, 8),  # every step when the interval allows it
    (True, 1e9, 1),  # the first step only, within the interval
])
def test_the_progress_bar_reads_the_loss_at_most_once_an_interval(monkeypatch, shown, every_s,
                                                                    loss_reads):
    import tqdm.auto

    bars = []

    def make_bar(*args, **kwargs):
        bar = ShownBar()
        bar.disable = not shown
        bars.append(bar)
        return bar

    monkeypatch.setattr(tqdm.auto, "tqdm", make_bar)
    monkeypatch.setattr(loggers, "POSTFIX_EVERY_S", every_s)
    model = classifier(tiny_clip(), templates=["a photo of a {}."])
    bar = loggers.ProgressBar(total_sessions=1)
    loop = trainer(model, [registry.create("ln", {}), bar], epochs=2, batch_size=2, lr=1e-3)
    reads = tensor_reads(monkeypatch, loggers)
    loop.train(train_stream(TinyImages(8, 0))[0], eval_streams=[])
    assert len(bars) == 1 and bars[0].n == 8  # every step counted on the bar
    assert reads.count("item") == loss_reads == len(bars[0].postfixes)
    assert all(float(p["loss"]) > 0 for p in bars[0].postfixes)
