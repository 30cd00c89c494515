"""Joint replay: a reference, not a continual method. The upper bound that shows the benchmark
has no built-in conflict between learning the target and keeping what the model knew.

Full fine-tuning of the tuned tower(s) (the trainable set of `fft`), where every session trains
on the session's target samples mixed with replayed clean pretraining-world data: the `train`
splits of the datasets the scenario's `replay:` key names (disjoint from every evaluated split).
A continual method never sees that data; this strategy does, so it bounds from above what a
method could reach while keeping the controls.

- **Replay draw.** Each session adds round(`replay_ratio` x its target samples) replayed samples
  (at least one), drawn uniformly from the pooled replay splits with a generator seeded by the
  run seed and the session number, without replacement while the pool lasts (the pool is
  permuted again when a session needs more). The draw is added to the session's training set
  (Avalanche's `adapted_dataset`), so the batches mix target and replayed images.
- **Joint head.** The training loss (FLYP's captions, or cross-entropy) uses a head over the joint
  class space: the target's classes, then the replayed classes the target does not name (a
  replayed class named like a target class, as proxy-clean's, shares its id). It is registered
  on the classifier as `JOINT_HEAD` and made the active head while a session trains only;
  evaluation always scores every eval set with its own head.

The runner gives the data through `set_replay` (a strategy knows nothing of scenarios); in a
plain Avalanche loop, call `plugin.set_replay(dataset, class_names, templates, seed=...)` first.
"""

from __future__ import annotations

from dataclasses import dataclass

from clbench.options import option
from clbench.strategies.config_base import TowerConfig
from clbench.strategies.declaration import Declaration, plugin_attributes


@dataclass
class JointReplayConfig(TowerConfig):
    replay_ratio: float = option(
        1.0, "replayed samples added to each session per target training sample (1.0: as many "
        "replayed images as the session's target images; drawn afresh each session with the "
        "run seed)", low=0.0, low_open=True, high=100.0)


STRATEGIES = (
    Declaration("joint-replay", JointReplayConfig, ".plugin:JointReplayPlugin",
                "reference, not a continual method: the upper bound with replay (full "
                "fine-tuning on each session mixed with the scenario's replayed clean data)",
                may_change=(r"clip\.visual\..*",), reference=True),
)

__getattr__ = plugin_attributes(__name__)
