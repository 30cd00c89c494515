"""The joint-replay reference's plugin: the replay draw and the joint head (the method: this
package's docstring)."""

from __future__ import annotations

import hashlib
from typing import Any

import torch
from torch.utils.data import Dataset, Subset

from clbench.errors import UserError
from clbench.strategies.base import StrategyPlugin, set_trainable, tower_parameters
from clbench.strategies.joint_replay import JointReplayConfig

JOINT_HEAD = "joint-replay"  # the classifier head over the joint class space (training only)


class JointReplayPlugin(StrategyPlugin):
    """Full fine-tuning on target samples mixed with replayed pretraining-world samples."""

    config_class = JointReplayConfig
    needs_replay = True
    # the replay data comes again from `set_replay` when a run is rebuilt, each session's draw
    # is seeded by the run seed and the session, the joint head is only active during training
    stateless_between_sessions = True

    def __init__(self, config: JointReplayConfig | None = None):
        super().__init__(config)
        self.replay_dataset: Dataset | None = None
        self.replay_targets: list[int] = []
        self.class_names: list[str] = []
        self.templates: list[str] = []
        self.seed = 0
        self._previous_head: str | None = None
        self._drawn: list[int] = []  # indices into the replay dataset, this session

    # ---- the replay data (from the runner, or the caller of a plain loop)
    def set_replay(self, dataset: Dataset, class_names: list[str], templates: list[str], *,
                   seed: int = 0) -> None:
        targets = [int(y) for y in dataset.targets]
        if not len(dataset) or len(targets) != len(dataset):
            raise ValueError("set_replay: the replay dataset must be non-empty and have one "
                             "`targets` entry per sample")
        if max(targets) >= len(class_names) or min(targets) < 0:
            raise ValueError("set_replay: every replay label must index class_names (the joint "
                             "class space)")
        self.replay_dataset, self.replay_targets = dataset, targets
        self.class_names, self.templates, self.seed = list(class_names), list(templates), seed

    def replay_count(self, target_samples: int) -> int:
        """Replayed samples added to a session of `target_samples` target training samples."""
        if not target_samples:
            return 0
        return max(1, round(self.config.replay_ratio * target_samples))

    def planned_replay(self, session_sizes: list[int]) -> list[int]:
        return [self.replay_count(n) for n in session_sizes]

    def draw(self, session: int, count: int) -> list[int]:
        """`count` indices into the replay dataset for session `session` (0-based), seeded by
        the run seed and the session: a permutation of the pool, then another, as needed."""
        digest = hashlib.sha256(f"clbench-replay:{self.seed}:{session}".encode()).hexdigest()
        generator = torch.Generator().manual_seed(int(digest[:15], 16))
        chosen: list[int] = []
        while len(chosen) < count:
            chosen += torch.randperm(len(self.replay_targets), generator=generator).tolist()
        return chosen[:count]

    # ---- what trains: fft's set
    def configure(self, classifier, strategy) -> None:
        set_trainable(tower_parameters(classifier.clip, self.config.towers))

    def session_facts(self) -> dict[str, Any]:
        labels = {self.replay_targets[i] for i in self._drawn}
        return {"replay_samples": len(self._drawn), "replay_classes": len(labels),
                "replay_pool": len(self.replay_targets)}

    # ---- Avalanche callbacks
    def after_train_dataset_adaptation(self, strategy: Any, **kwargs: Any) -> None:
        """Mix this session's replay draw into the training set."""
        from avalanche.benchmarks.utils.utils import as_classification_dataset

        if self.replay_dataset is None:
            raise UserError("joint-replay has no replay data",
                            hint="`clbench run` gives it the scenario's replay: datasets; in a "
                                 "loop of your own call plugin.set_replay(dataset, class_names, "
                                 "templates, seed=...) first")
        session = strategy.experience.current_experience
        self._drawn = self.draw(session, self.replay_count(len(strategy.adapted_dataset)))
        replayed = Subset(self.replay_dataset, self._drawn)
        replayed.targets = [self.replay_targets[i] for i in self._drawn]
        strategy.adapted_dataset = strategy.adapted_dataset.concat(
            as_classification_dataset(replayed))

    def before_training_exp(self, strategy: Any, **kwargs: Any) -> None:
        super().before_training_exp(strategy, **kwargs)
        classifier = strategy.model
        classifier.register_head(JOINT_HEAD, self.class_names, self.templates)
        self._previous_head = classifier.active_head
        classifier.active_head = JOINT_HEAD  # the training loss's head, this session only

    def after_training_exp(self, strategy: Any, **kwargs: Any) -> None:
        if self._previous_head is not None:
            strategy.model.active_head = self._previous_head
            self._previous_head = None
