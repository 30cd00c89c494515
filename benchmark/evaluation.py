"""Evaluation after every session, as an Avalanche metric.

After each session (and once before any training: `after_session` 0, the zero-shot model) every
eval set is classified with its own zero-shot head: top-1 accuracy over all its classes, and, on
the target, the accuracy on the classes of each session so far (row i of the accuracy matrix).
Each image is encoded once per evaluation; every subset is read from the same predictions. The
zero-shot predictions are computed once across runs (`clbench.eval_cache`).
The values go to the loggers (the results store, the console) through Avalanche's
`EvaluationPlugin`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from avalanche.evaluation import PluginMetric
from avalanche.evaluation.metric_results import MetricValue
from torch.utils.data import DataLoader

from clbench.eval_cache import ZeroShotCache
from clbench.scenarios.datasets import ImageSplitDataset
from clbench.scenarios.stream import Scenario


@dataclass(frozen=True)
class SubsetAccuracy:
    after_session: int
    eval_set: str
    subset: str  # "all" or "session:<j>"
    accuracy: float
    n: int
    # on the "all" row: the predicted class index and the true label of every sample, in the
    # eval set's order (stored, so any metric can be recomputed and a bundle checked)
    predicted: tuple[int, ...] | None = field(default=None, compare=False, repr=False)
    labels: tuple[int, ...] | None = field(default=None, compare=False, repr=False)

    def as_row(self) -> dict:
        return {"after_session": self.after_session, "eval_set": self.eval_set,
                "subset": self.subset, "accuracy": self.accuracy, "n": self.n}

    def predictions_row(self) -> dict | None:
        if self.predicted is None:
            return None
        return {"after_session": self.after_session, "eval_set": self.eval_set,
                "predicted": list(self.predicted), "labels": list(self.labels or ())}


@torch.no_grad()
def predict(model, dataset, head: str, batch_size: int, device: torch.device,
            autocast_dtype: torch.dtype | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Predicted and true labels of a whole dataset under one head."""
    was_training = model.training
    model.eval()
    preds, labels = [], []
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=0)
    try:
        for x, y in loader:
            with torch.autocast(device_type=device.type, dtype=autocast_dtype or torch.float32,
                                enabled=autocast_dtype is not None):
                logits = model.logits(model.encode_image(x.to(device)), head)
            preds.append(logits.argmax(dim=1).cpu())
            labels.append(torch.as_tensor(y))
    finally:
        model.train(was_training)
    return torch.cat(preds), torch.cat(labels)


def subset_accuracies(preds: torch.Tensor, labels: torch.Tensor, after_session: int,
                      eval_set: str, session_classes: list[list[int]] | None) -> list:
    correct = preds == labels
    rows = [SubsetAccuracy(after_session, eval_set, "all", correct.float().mean().item(),
                           len(labels), tuple(preds.tolist()), tuple(labels.tolist()))]
    for j, classes in enumerate(session_classes or [], start=1):
        mask = torch.isin(labels, torch.tensor(classes))
        if mask.any():
            rows.append(SubsetAccuracy(after_session, eval_set, f"session:{j}",
                                       correct[mask].float().mean().item(), int(mask.sum())))
    return rows


class SessionEvaluation(PluginMetric):
    """Evaluates every eval set before training and after each training session."""

    def __init__(self, scenario: Scenario, transform, batch_size: int, device: torch.device,
                 autocast_dtype: torch.dtype | None = None, zero_shot: ZeroShotCache | None = None):
        super().__init__()
        self.scenario = scenario
        self.datasets = {e.name: ImageSplitDataset(e.data, transform) for e in scenario.eval_sets}
        self.batch_size = batch_size
        self.device = device
        self.autocast_dtype = autocast_dtype
        self.evaluated_before_training = False
        self.results: list[SubsetAccuracy] = []
        # the zero-shot predictions, computed once across runs (`clbench.eval_cache`)
        self.zero_shot = zero_shot or ZeroShotCache(None, None)
        self.zero_shot_keys = {e.name: self.zero_shot.key(e, scenario.dataset_hashes.get(
            e.data.dataset), transform) for e in scenario.eval_sets}

    def _predict(self, model, eval_set, after_session: int) -> tuple[torch.Tensor, torch.Tensor]:
        key = self.zero_shot_keys[eval_set.name] if after_session == 0 else None
        cached = self.zero_shot.load(key)
        if cached is not None:
            self.zero_shot.reused[eval_set.name] = key
            # A DataLoader draws its workers' base seed from torch's generator when iterated,
            # even without workers: draw it as `predict` would have, so that the run trains on
            # the same random stream whether it computed this evaluation or reused it.
            torch.empty((), dtype=torch.int64).random_()
            return cached
        preds, labels = predict(model, self.datasets[eval_set.name], eval_set.name,
                                self.batch_size, self.device, self.autocast_dtype)
        self.zero_shot.save(key, preds, labels)
        return preds, labels

    def evaluate(self, model, after_session: int) -> list[SubsetAccuracy]:
        rows = []
        sessions = [s.class_ids for s in self.scenario.sessions]  # every j, for transfer
        for eval_set in self.scenario.eval_sets:
            preds, labels = self._predict(model, eval_set, after_session)
            rows += subset_accuracies(preds, labels, after_session, eval_set.name,
                                      sessions if eval_set.is_target else None)
        self.results += rows
        return rows

    def _package(self, rows: list[SubsetAccuracy], x: int) -> list[MetricValue]:
        return [MetricValue(self, f"Top1_Acc/{r.eval_set}/{r.subset}/after_session{r.after_session}",
                            r, x) for r in rows]

    def before_training(self, strategy) -> list[MetricValue] | None:
        if self.evaluated_before_training:
            return None
        self.evaluated_before_training = True
        return self._package(self.evaluate(strategy.model, 0), 0)

    def after_training_exp(self, strategy) -> list[MetricValue]:
        session = strategy.experience.current_experience + 1
        return self._package(self.evaluate(strategy.model, session), session)

    # PluginMetric's abstract interface (results are pushed from the callbacks above)
    def result(self):
        return self.results

    def reset(self) -> None:
        pass
