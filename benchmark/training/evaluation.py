"""Evaluation after every session, as an Avalanche metric.

After each session (and once before any training: `after_session` 0, the zero-shot model) every
eval set is classified with its own zero-shot head: top-1 accuracy over all its classes, and, on
the target, the accuracy on the classes of each session (row i of the accuracy matrix). An eval
set of a task-agnostic multi-dataset stream (X-TAIL) is classified among the classes of every
head of its `label_space` at once: its predictions and labels are indices into that joint space
(its own labels shifted past the classes of the heads before it), so a prediction of another
dataset's class is wrong.
Each image is encoded once per evaluation; every subset is read from the same predictions.

Nothing that cannot have changed is computed again:
- the zero-shot predictions (and image features) are computed once across runs
  (`clbench.training.eval_cache`);
- image features are reused while the image tower is bit-for-bit unchanged
  (`CLIPClassifier.visual_sha256`): every session of a strategy that leaves the image encoder
  frozen (zero-shot, LLU) is evaluated from the features of the first evaluation;
- image files are decoded and preprocessed once (`clbench.training.image_cache`);
- text heads are computed once while the text side is frozen (`clbench.training.text_cache`).
Every reuse is recorded in the run's summary (`reused`). Reused features give the predictions
computing them would: the same per-batch operations on the same values.
The values go to the loggers (the results store, the console) through Avalanche's
`EvaluationPlugin`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from avalanche.evaluation import PluginMetric
from avalanche.evaluation.metric_results import MetricValue
from torch.utils.data import DataLoader, Dataset

from clbench.scenarios.datasets import ImageSplitDataset
from clbench.scenarios.stream import Scenario
from clbench.training.eval_cache import ZeroShotCache, ZeroShotEntry
from clbench.training.image_cache import ImageCache


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


def head_logits(model, image_features: torch.Tensor, head: str | tuple[str, ...]) -> torch.Tensor:
    """Logits of image features (before any image adapter) under one head, or under several
    side by side (a task-agnostic label space: every head's classes, in order)."""
    adapted = model.adapt_image(image_features)
    if isinstance(head, str):
        return model.logits(adapted, head)
    return torch.cat([model.logits(adapted, name) for name in head], dim=1)


def joint_labels(labels: torch.Tensor, space: tuple[str, ...], own: str, model) -> torch.Tensor:
    """An eval set's labels as indices into the joint label space of the heads `space` (every
    head's classes in order): shifted past the classes of the heads before its own."""
    offset = 0
    for name in space[:space.index(own)]:
        offset += len(model.heads[name].class_names)
    return labels + offset


@torch.no_grad()
def predict(model, dataset, head: str | tuple[str, ...], batch_size: int, device: torch.device,
            autocast_dtype: torch.dtype | None = None,
            features: list[torch.Tensor] | None = None,
            loader_options: dict | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Predicted and true labels of a whole dataset under `head` (a name, or several heads side
    by side: `head_logits`); the image features of the
    whole dataset (before any image adapter, on the CPU) are appended to `features` when it is
    given. `loader_options`: the DataLoader's workers and pinned memory (none by default).
    Predictions and features stay on the device until the end: reading them back per batch
    would make the host wait for the device at every batch."""
    was_training = model.training
    model.eval()
    preds, labels, kept = [], [], []
    options = {"num_workers": 0, **(loader_options or {})}
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, **options)
    try:
        for x, y in loader:
            with _autocast(device, autocast_dtype):
                raw = model.image_features(x.to(device, non_blocking=True))
                logits = head_logits(model, raw, head)
            preds.append(logits.argmax(dim=1))
            labels.append(torch.as_tensor(y))
            if features is not None:
                kept.append(raw)
    finally:
        model.train(was_training)
    if features is not None and kept:
        features.append(torch.cat(kept).cpu())
    return torch.cat(preds).cpu(), torch.cat(labels)


@torch.no_grad()
def predict_from_features(model, features: torch.Tensor, head: str | tuple[str, ...],
                          batch_size: int,
                          device: torch.device, autocast_dtype: torch.dtype | None = None
                          ) -> torch.Tensor:
    """The predictions `predict` makes from image features it kept: the same batches through
    the same image adapter and head."""
    was_training = model.training
    model.eval()
    preds = []
    try:
        for start in range(0, len(features), batch_size):
            with _autocast(device, autocast_dtype):
                raw = features[start:start + batch_size].to(device)
                logits = head_logits(model, raw, head)
            preds.append(logits.argmax(dim=1))
    finally:
        model.train(was_training)
    return torch.cat(preds).cpu()


def _autocast(device: torch.device, dtype: torch.dtype | None) -> torch.autocast:
    return torch.autocast(device_type=device.type, dtype=dtype or torch.float32,
                          enabled=dtype is not None)


def _draw_loader_seed() -> None:
    """A DataLoader draws its workers' base seed from torch's generator when iterated, even
    without workers: an evaluation that reuses instead of running `predict` draws it too, so
    that the run trains on the same random stream whether it computed or reused."""
    torch.empty((), dtype=torch.int64).random_()


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
                 autocast_dtype: torch.dtype | None = None, zero_shot: ZeroShotCache | None = None,
                 images: ImageCache | None = None, workers: int = 0):
        super().__init__()
        self.scenario = scenario
        self.transform = transform
        self.batch_size = batch_size
        self.device = device
        # DataLoader worker processes while images are decoded (an eval set not in the image
        # cache): a GPU would otherwise wait on one process decoding JPEGs
        self.workers = workers
        self.autocast_dtype = autocast_dtype
        self.evaluated_before_training = False
        self.results: list[SubsetAccuracy] = []
        # the zero-shot predictions, computed once across runs (`clbench.training.eval_cache`)
        self.zero_shot = zero_shot or ZeroShotCache(None, None)
        self.zero_shot_keys = {e.name: self.zero_shot.key(e, scenario.dataset_hashes.get(
            e.data.dataset), transform) for e in scenario.eval_sets}
        self.images = images or ImageCache(None)
        self._datasets: dict[str, Dataset] = {}
        # eval set -> (sha256 of the image tower, its image features, the labels)
        self.features: dict[str, tuple[str | None, torch.Tensor, torch.Tensor]] = {}
        # eval set -> the sessions it was evaluated after from kept features
        self.features_reused: dict[str, list[int]] = {}

    def dataset(self, eval_set) -> Dataset:
        """The eval set's images, from the image cache where it can hold them."""
        if eval_set.name not in self._datasets:
            data = eval_set.data
            key = self.images.key(data, self.scenario.dataset_hashes.get(data.dataset),
                                  self.transform)
            self._datasets[eval_set.name] = (self.images.dataset(eval_set.name, data,
                                                                 self.transform, key)
                                             or ImageSplitDataset(data, self.transform))
        return self._datasets[eval_set.name]

    def loader_options(self, dataset: Dataset) -> dict:
        """Workers only for images decoded from their files (the image cache's are read from
        one memory-mapped file); pinned memory on CUDA."""
        decodes = isinstance(dataset, ImageSplitDataset)
        return {"num_workers": self.workers if decodes else 0,
                "pin_memory": self.device.type == "cuda"}

    def _predict(self, model, eval_set, after_session: int,
                 visual: str) -> tuple[torch.Tensor, torch.Tensor]:
        """Predicted and true labels of an eval set: its own head's, or indices into its
        task-agnostic label space (`joint_labels`)."""
        space = eval_set.label_space
        preds, labels = self._predict_with(model, eval_set, space or eval_set.name,
                                           after_session, visual)
        if space:
            labels = joint_labels(labels, space, eval_set.name, model)
        return preds, labels

    def _predict_with(self, model, eval_set, head: str | tuple[str, ...], after_session: int,
                      visual: str) -> tuple[torch.Tensor, torch.Tensor]:
        """Predicted labels of an eval set under `head`, and its own labels: from the
        zero-shot cache, from kept image features, or computed (the features then kept)."""
        name = eval_set.name
        key = self.zero_shot_keys[name] if after_session == 0 else None
        cached = self.zero_shot.load(key)
        if cached is not None:
            self.zero_shot.reused[name] = key
            if cached.features is not None:
                self.features[name] = (cached.visual_sha256, cached.features, cached.labels)
            _draw_loader_seed()
            return cached.predicted, cached.labels
        kept = self.features.get(name)
        if kept is not None and kept[0] == visual:
            self.features_reused.setdefault(name, []).append(after_session)
            _draw_loader_seed()
            return predict_from_features(model, kept[1], head, self.batch_size, self.device,
                                         self.autocast_dtype), kept[2]
        features: list[torch.Tensor] = []
        dataset = self.dataset(eval_set)
        preds, labels = predict(model, dataset, head, self.batch_size, self.device,
                                self.autocast_dtype, features, self.loader_options(dataset))
        computed = torch.cat(features) if features else None
        if computed is not None:
            self.features[name] = (visual, computed, labels)
        self.zero_shot.save(key, ZeroShotEntry(preds, labels, computed, visual))
        return preds, labels

    def evaluate(self, model, after_session: int) -> list[SubsetAccuracy]:
        rows = []
        sessions = [s.class_ids for s in self.scenario.sessions]  # every j, for transfer
        visual = model.visual_sha256()  # once: no eval set changes the image tower
        for eval_set in self.scenario.eval_sets:
            preds, labels = self._predict(model, eval_set, after_session, visual)
            rows += subset_accuracies(preds, labels, after_session, eval_set.name,
                                      sessions if eval_set.is_target else None)
        self.results += rows
        return rows

    def reuse_record(self) -> dict:
        """What this run did not compute itself, for its summary (`reused`)."""
        record = {}
        if self.zero_shot.reused:
            record["zero_shot_predictions"] = dict(self.zero_shot.reused)
        if self.features_reused:
            record["image_features"] = {k: list(v) for k, v in self.features_reused.items()}
        if self.images.used:
            record["preprocessed_images"] = dict(self.images.used)
        return record

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
