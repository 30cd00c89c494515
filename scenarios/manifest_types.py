"""The declaration types ("manifests"): what `manifests.py` reads from a dataset's or a
scenario's YAML file. Kept apart from the reader so that the dataset code (`datasets.py`,
`check.py`, `prepare.py`) can name them without depending on the kind registry (`loaders.py`),
which sits above it: a `DatasetManifest` carries its kind object, so loading and checking
dispatch through `manifest.kind` without importing the registry.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from clbench.metrics import (  # noqa: F401 - the protocols re-exported to scenarios
    BASE,
    BASE_TO_NEW,
    DEFAULT_SEEDS,
    FEW_SHOT,
    MULTI_DATASET,
    NEW,
    OFFLINE,
)

BUILT_IN = "built-in"

# the validation split of a scenario that does not declare one, per protocol (None: the
# protocol has none; `clbench tune` then says so)
DEFAULT_VALIDATION: dict[str, dict[str, Any] | None] = {FEW_SHOT: {"per_class": 10},
                                                        OFFLINE: {"fraction": 0.1},
                                                        MULTI_DATASET: None,
                                                        BASE_TO_NEW: None}

# the head a multi-dataset stream evaluates each dataset with (`head:`): its own classes only
# (MTIL, task-incremental) or the union of every dataset's classes (X-TAIL, task-agnostic)
TASK_HEAD, TASK_AGNOSTIC_HEAD = "task", "task-agnostic"


@dataclass(frozen=True)
class DatasetManifest:
    name: str
    loader: str  # the dataset's kind (`loaders.py`)
    splits: tuple[str, ...]
    description: str = ""
    obtain: str = ""  # how a user gets the data
    layout: str = ""  # the expected folder layout under the data root
    subdir: str = ""  # folder name under the data root
    class_names: tuple[str, ...] = ()
    templates: tuple[str, ...] = ()
    # a fixed, seeded subset evaluated as its own eval set: {per_class: N, seed: S}
    subset: dict[str, int] | None = None
    expected: dict[str, int] = field(default_factory=dict)  # image count per split (as published)
    generation_prompts: dict[str, str] = field(default_factory=dict)  # DALL-E: caption -> prompt
    prepare: str = ""  # the `clbench data prepare` command that makes this dataset
    hash: str = ""
    path: str = ""
    origin: str = BUILT_IN  # "built-in" or the user manifest folder
    includes: tuple[str, ...] = ()
    # the registered kind named by `loader` (a `loaders.DatasetKind`), set by the reader
    kind: Any = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class ScenarioManifest:
    name: str
    target: str
    protocol: str
    eval_sets: tuple[str, ...]
    shots: int | None = None
    session_sizes: tuple[int, ...] = ()
    class_order: Any = "dataset"  # "dataset", "seeded", or a list of class names
    # "class": sessions.order lists classes; "group": it lists source classes (TSI actions),
    # several of which may share a class, so a class can recur in later sessions
    session_by: str = "class"
    training: dict[str, Any] = field(default_factory=dict)
    # strategy name -> training keys that override `training` for that strategy only, and
    # under `strategy:` that strategy's own parameters (as `clbench tune` chose them)
    strategy_training: dict[str, dict[str, Any]] = field(default_factory=dict)
    description: str = ""
    # the validation split carved from the target's training data (seeded by the run seed,
    # disjoint from the shots and from the test split): {per_class: V} for a few-shot stream
    # (V images per class of each session, never drawn as shots), {fraction: F} for offline (a
    # fraction of each class held out and not trained on); None when declared off
    # (`validation: false`). Defaults: `DEFAULT_VALIDATION`.
    validation: dict[str, Any] | None = None
    # datasets whose `train` split is clean pretraining-world data, replayed (mixed into the
    # training data) only by a strategy that asks for it (`StrategyPlugin.needs_replay`, e.g.
    # the `joint-replay` reference); () when the scenario declares none
    replay: tuple[str, ...] = ()
    # how many seeds a result needs: the leaderboard marks and hides, by default, presets run
    # on fewer (the papers report means over 3 seeds)
    seeds: int = DEFAULT_SEEDS
    # multi-dataset: the datasets in training order (one session each; `target` is the first)
    datasets: tuple[str, ...] = ()
    head: str = TASK_HEAD  # multi-dataset: TASK_HEAD or TASK_AGNOSTIC_HEAD
    hash: str = ""
    path: str = ""
    origin: str = BUILT_IN  # "built-in", the user manifest folder, or "file" (given by path)
    includes: tuple[str, ...] = ()  # files included, nearest first
    # the resolved declaration (includes applied), as read
    declaration: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)


    @property
    def is_multi_dataset(self) -> bool:
        return self.protocol == MULTI_DATASET

    @property
    def session_count(self) -> int:
        """Sessions of the stream: one per dataset (multi-dataset), one per declared size
        (few-shot), else one (offline, base-to-new)."""
        if self.is_multi_dataset:
            return len(self.datasets)
        return len(self.session_sizes) or 1

    @property
    def stream_eval_sets(self) -> tuple[str, ...]:
        """The eval sets the stream itself brings, before its controls: every dataset of a
        multi-dataset stream, the base and new halves of a base-to-new target, else the target."""
        if self.is_multi_dataset:
            return self.datasets
        if self.protocol == BASE_TO_NEW:
            return (f"{self.target}:{BASE}", f"{self.target}:{NEW}")
        return (self.target,)


STRATEGY_PARAMS_KEY = "strategy"  # in a strategy_training entry: the strategy's own parameters


def training_for(manifest: ScenarioManifest, *strategy_names: str) -> dict[str, Any]:
    """The scenario's training block with the per-strategy overrides of the first of
    `strategy_names` that has any (a caller passes a preset's base strategy after its name)."""
    own = next((manifest.strategy_training[n] for n in strategy_names
                if n in manifest.strategy_training), {})
    training = {**manifest.training, **own}
    training.pop(STRATEGY_PARAMS_KEY, None)
    return training


def strategy_params_for(manifest: ScenarioManifest, strategy_name: str) -> dict[str, Any]:
    """The strategy parameters the scenario declares for exactly `strategy_name` (its
    `strategy_training` entry's `strategy:` mapping). Unlike training keys they do not pass from
    a strategy to its presets: a preset is a fixed set of parameters, which these would undo."""
    entry = manifest.strategy_training.get(strategy_name, {})
    return dict(entry.get(STRATEGY_PARAMS_KEY) or {})
