"""Avalanche loggers and the progress bar: results go to the store and to the console.

`StoreLogger` writes each session to the results database as soon as it is evaluated, in one
transaction (a crash loses at most the session in flight, and never leaves half of one);
`ConsoleLogger` prints the accuracy table after each session (the target's accuracy on the
classes of each session trained so far, then on those not yet trained); `ProgressBar` shows a
bar per session with samples/s and the running loss.
"""

from __future__ import annotations

import math
import sys
import time
from typing import Any

from avalanche.core import SupervisedPlugin
from avalanche.logging import BaseLogger

from clbench.training.evaluation import SubsetAccuracy


class _CollectingLogger(BaseLogger):
    def __init__(self):
        super().__init__()
        self.pending: list[SubsetAccuracy] = []

    def log_single_metric(self, name, value, x_plot) -> None:
        if isinstance(value, SubsetAccuracy):
            self.pending.append(value)

    def take(self) -> list[SubsetAccuracy]:
        rows, self.pending = self.pending, []
        return rows


class StoreLogger(_CollectingLogger):
    def __init__(self, store, run_id: str, scenario, strategy_plugin):
        super().__init__()
        self.store, self.run_id = store, run_id
        self.scenario, self.strategy_plugin = scenario, strategy_plugin

    def before_training(self, strategy, metric_values) -> None:
        rows = self.take()
        if rows:
            self._write(None, rows)

    def _write(self, session: dict | None, rows: list[SubsetAccuracy]) -> None:
        predictions = [p for p in (r.predictions_row() for r in rows) if p is not None]
        self.store.record_session(self.run_id, session=session,
                                  evaluations=[r.as_row() for r in rows], predictions=predictions)

    def after_training_exp(self, strategy, metric_values) -> None:
        index = strategy.experience.current_experience + 1
        session = self.scenario.sessions[index - 1]
        record = strategy.session_record
        self._write({"index": index, "classes": session.class_names,
                     "sample_ids": session.sample_ids, "train_time_s": record["train_time_s"],
                     "peak_memory_mb": record["peak_memory_mb"],
                     "final_loss": record["final_loss"],
                     "trainable_params": record["trainable_params"],
                     "facts": self.strategy_plugin.session_facts()}, self.take())


def _pct(value: float | None) -> str:
    return "   -  " if value is None else f"{100 * value:5.1f}%"


class ConsoleLogger(_CollectingLogger):
    """Prints, after each session, every eval set's accuracy and the target's matrix row."""

    def __init__(self, scenario, stream=None):
        super().__init__()
        self.scenario = scenario
        self.stream = stream or sys.stdout

    def _print(self, title: str) -> None:
        rows = self.take()
        if not rows:
            return
        overall = "  ".join(f"{r.eval_set} {_pct(r.accuracy)}" for r in rows if r.subset == "all")
        per_session = [r for r in rows if r.subset != "all"]
        print(f"{title}: {overall}", file=self.stream)
        if per_session:
            def cells(part):
                return "  ".join(f"S{r.subset.split(':')[1]} {_pct(r.accuracy)}" for r in part)

            after = per_session[0].after_session
            seen = [r for r in per_session if int(r.subset.split(":")[1]) <= after]
            ahead = [r for r in per_session if int(r.subset.split(":")[1]) > after]
            line = f"    {self.scenario.target.name} by session classes: {cells(seen)}"
            if ahead:
                line += f"{'  |  ' if seen else ''}not yet trained: {cells(ahead)}"
            print(line, file=self.stream)
        self.stream.flush()

    def before_training(self, strategy, metric_values) -> None:
        self._print("zero-shot (before training)")

    def after_training_exp(self, strategy, metric_values) -> None:
        index = strategy.experience.current_experience + 1
        record = strategy.session_record
        self._print(f"after session {index}/{len(self.scenario.sessions)} "
                    f"({record['train_time_s']:.1f}s)")


POSTFIX_EVERY_S = 0.5


class ProgressBar(SupervisedPlugin):
    def __init__(self, total_sessions: int, enabled: bool = True):
        super().__init__()
        self.total_sessions = total_sessions
        self.enabled = enabled
        self.bar: Any = None
        self.samples = 0
        self.start = 0.0
        self.shown = -math.inf  # when the loss was last shown

    def before_training_epoch(self, strategy, **kwargs) -> None:
        # the optimizer is built after the strategy configured the session; None = zero-shot
        if not self.enabled or self.bar is not None or strategy.optimizer is None:
            return
        from tqdm.auto import tqdm

        index = strategy.experience.current_experience + 1
        steps = strategy.train_epochs * len(strategy.dataloader)
        self.bar = tqdm(total=steps, desc=f"session {index}/{self.total_sessions}",
                        unit="batch", leave=False, dynamic_ncols=True,
                        disable=None)  # None: no bar when output is not a terminal
        self.samples, self.start, self.shown = 0, time.perf_counter(), -math.inf

    def after_training_iteration(self, strategy, **kwargs) -> None:
        if self.bar is None:
            return
        self.samples += len(strategy.mb_y)
        now = time.perf_counter()
        # Reading the loss makes the host wait for the device: at most twice a second, and
        # never for a bar that is not shown (output to a file, as in a batch job).
        if not self.bar.disable and now - self.shown >= POSTFIX_EVERY_S:
            self.shown = now
            rate = self.samples / max(1e-9, now - self.start)
            self.bar.set_postfix(epoch=strategy.clock.train_exp_epochs + 1,
                                 loss=f"{strategy.loss.item():.3f}", samples_s=f"{rate:.0f}")
        self.bar.update(1)

    def after_training_exp(self, strategy, **kwargs) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
