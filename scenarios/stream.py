"""Continual streams on Avalanche: class-incremental few-shot sessions and the offline variant.

Protocol (LoRSU paper, section 5): the target dataset's classes are split into sessions of
disjoint classes (declared order, or a permutation seeded by the run seed; uneven group sizes
are declared explicitly, since Avalanche's `num_experiences` silently drops classes when they do
not divide evenly); each session draws K shots per class with the run seed, and the drawn sample
ids are part of the result. The offline variant is one session with the whole training split.
Evaluation uses the target's full test set (all classes) and each control set.

Validation (what `clbench tune` selects on; never the test split): every scenario carves a
validation split out of the target's *training* data with the run seed, declared by its
`validation:` key (`manifest_types.DEFAULT_VALIDATION` when absent). Few-shot: V images per class
of each session's classes, drawn after the shots from the images not drawn as shots (the shots
are exactly those drawn without validation, so adding it changed no stored run's shots).
Offline: a fraction F of each class held out of the one training session. The controls'
validation data is their dataset's own `val` split. `load_scenario(..., evaluate_on=
"validation")` swaps the eval sets for these: the test splits are then not even loaded.

Multi-dataset streams (MTIL, Zheng et al., ICCV 2023; `protocol: multi-dataset`): each session
is a whole dataset of the scenario's `datasets:` (all its training images, or K shots per class
with `shots:`), trained with that dataset's own head (class names and templates); every
dataset's test set is an eval set, evaluated after every session and before any (the zero-shot
row), trained or not, so the evaluator fills the whole matrix A[i][j]. With `head:
task-agnostic` (X-TAIL, Xu et al. 2024) each test set is classified among the classes of every
dataset of the stream at once, with no hint of which dataset an image comes from.

Base-to-new (CoOp, Zhou et al. IJCV 2022; `protocol: base-to-new`): the target's classes are
split as CoOp splits them (base = the first ceil(C/2) labels, new = the rest); one session
trains K shots per base class; the target's test set is evaluated as two eval sets,
`<target>:base` (base images among the base classes) and `<target>:new` (new images among the
new classes), the first being the target and the second a control.

Replay (the `joint-replay` reference): a scenario's `replay:` key names datasets whose `train`
split is clean pretraining-world data, disjoint from every evaluated split. It is loaded only for
a strategy that asks for it (`load_scenario(..., replay_for=NAME)`; other runs never render or
read it), and `Scenario.replay_data` gives it as one dataset in the joint class space.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.utils.data import Dataset

from clbench.errors import ConfigError, UserError
from clbench.scenarios.datasets import ImageSplitDataset, SplitData, load_split
from clbench.scenarios.manifests import (
    BASE_TO_NEW,
    MULTI_DATASET,
    TASK_AGNOSTIC_HEAD,
    ScenarioManifest,
    load_dataset_manifest,
    load_scenario_manifest,
)


@dataclass
class Session:
    index: int  # 1-based
    class_ids: list[int]
    class_names: list[str]
    sample_indices: list[int]  # into the session's train split
    sample_ids: list[str]
    # multi-dataset: the session's own train split and the head it trains with (its dataset's
    # name); None: the scenario's `train` and its target's head
    train: SplitData | None = field(default=None, repr=False)
    head: str | None = None


@dataclass
class EvalSet:
    name: str
    data: SplitData
    is_target: bool
    # task-agnostic (X-TAIL): the heads whose classes, in this order, the set is classified
    # among (its own among them); empty: its own head only
    label_space: tuple[str, ...] = ()


@dataclass
class Scenario:
    manifest: ScenarioManifest
    train: SplitData
    sessions: list[Session]
    eval_sets: list[EvalSet]  # the target test set first, then the controls
    dataset_hashes: dict[str, str]  # dataset name -> hash of its YAML declaration
    validation_indices: list[int] | None = None  # into `train`; None: no validation split
    evaluate_on: str = "test"  # "test", or "validation" (a tuning run: eval sets swapped)
    # the `train` splits of the scenario's `replay:` datasets, loaded only for a strategy that
    # replays (`load_scenario(..., replay_for=...)`); empty otherwise
    replay: list[SplitData] = field(default_factory=list)

    def replay_data(self, transform: Callable[[Any], torch.Tensor]
                    ) -> tuple[ReplayDataset, list[str], list[str]]:
        """The replayed samples as one dataset in the joint class space, its class names and
        prompt templates. The joint classes are the target's (same ids), then every replay class
        the target does not name, in order; a replay class named like a target class (proxy-clean
        renders the target's classes cleanly) takes that class's id. The templates are the
        target's, then any other template of a replay dataset."""
        names = list(self.train.class_names)
        templates = list(self.train.templates)
        index = {name: i for i, name in enumerate(names)}
        mappings = []
        for split in self.replay:
            for name in split.class_names:
                if name not in index:
                    index[name] = len(names)
                    names.append(name)
            mappings.append([index[n] for n in split.class_names])
            templates += [t for t in split.templates if t not in templates]
        return ReplayDataset(self.replay, mappings, transform), names, templates

    def replay_record(self) -> dict[str, Any] | None:
        """What a stored run keeps about the replayed data: the split and each dataset's size
        (the draw per session is the strategy's, recorded beside it by the runner)."""
        if not self.replay:
            return None
        return {"split": "train", "datasets": {s.dataset: len(s) for s in self.replay},
                "samples": sum(len(s) for s in self.replay)}

    def validation_record(self) -> dict[str, Any] | None:
        """What a stored run keeps about its validation split: the rule and the drawn ids."""
        if self.validation_indices is None:
            return None
        return {"rule": dict(self.manifest.validation or {}), "evaluated_on": self.evaluate_on,
                "sample_ids": [self.train.sample_ids[i] for i in self.validation_indices],
                "controls": {e.name: e.data.split for e in self.eval_sets[1:]}
                if self.evaluate_on == "validation" else {}}

    def data_record(self) -> dict[str, dict[str, Any]]:
        """What a stored run keeps about the data beyond the YAML hashes: the sha256 of each
        dataset's file index (`manifest.json`; stored as `prepared_manifest_sha256`), the subset
        rule of a subset eval set, the files skipped."""
        record: dict[str, dict[str, Any]] = {}
        trains = [s.train for s in self.sessions if s.train is not None] or [self.train]
        for split in [*trains, *(e.data for e in self.eval_sets), *self.replay]:
            entry = record.setdefault(split.dataset, {"prepared_manifest_sha256": None,
                                                      "skipped_files": []})
            entry["prepared_manifest_sha256"] = split.prepared_sha256
            entry["skipped_files"] = sorted({*entry["skipped_files"], *split.skipped})
        for eval_set in self.eval_sets:
            subset = load_dataset_manifest(eval_set.data.dataset).subset
            if subset:
                record[eval_set.data.dataset]["subset"] = dict(subset)
        return record

    @property
    def name(self) -> str:
        return self.manifest.name

    @property
    def target(self) -> EvalSet:
        return self.eval_sets[0]

    @property
    def datasets(self) -> list[str]:
        """A multi-dataset stream's datasets in training order ([] for other protocols)."""
        return list(self.manifest.datasets)

    def session_test(self, session: Session) -> SplitData:
        """The test split a session's classes are evaluated on: its dataset's (multi-dataset)
        or the target's."""
        if session.head is None:
            return self.target.data
        return next(e.data for e in self.eval_sets if e.name == session.head)

    def to_avalanche(self, transform: Callable[[Any], torch.Tensor]):
        """Avalanche benchmark: one train experience per session and, aligned with it, the
        test samples of that session's classes (what Avalanche's forgetting and BWT metrics
        read)."""
        from avalanche.benchmarks.scenarios.dataset_scenario import benchmark_from_datasets
        from avalanche.benchmarks.scenarios.supervised import with_classes_timeline
        from avalanche.benchmarks.utils.utils import as_classification_dataset

        train_sets, test_sets = [], []
        for session in self.sessions:
            train_sets.append(as_classification_dataset(ImageSplitDataset(
                session.train or self.train, transform, session.sample_indices)))
            test = self.session_test(session)
            wanted = set(session.class_ids)
            test_idx = [i for i, y in enumerate(test.targets.tolist()) if y in wanted]
            test_sets.append(as_classification_dataset(
                ImageSplitDataset(test, transform, test_idx)))
        return with_classes_timeline(benchmark_from_datasets(train=train_sets, test=test_sets))


class ReplayDataset(Dataset):
    """(preprocessed image, joint label) pairs of the replayed splits, one after another;
    `targets` (joint labels) and `sample_ids` per sample."""

    def __init__(self, splits: list[SplitData], mappings: list[list[int]],
                 transform: Callable[[Any], torch.Tensor]):
        self.splits = list(splits)
        self.transform = transform
        self.items = [(k, i) for k, split in enumerate(self.splits) for i in range(len(split))]
        self.targets = [mappings[k][int(self.splits[k].targets[i])] for k, i in self.items]
        self.sample_ids = [self.splits[k].sample_ids[i] for k, i in self.items]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        k, index = self.items[i]
        return self.transform(self.splits[k].load(index)), self.targets[i]


def _class_order(manifest: ScenarioManifest, class_names: list[str], seed: int) -> list[int]:
    order = manifest.class_order
    if order == "dataset":
        return list(range(len(class_names)))
    if order == "seeded":
        g = torch.Generator().manual_seed(seed)
        return torch.randperm(len(class_names), generator=g).tolist()
    if isinstance(order, list):
        index = {name: i for i, name in enumerate(class_names)}
        unknown = [n for n in order if n not in index]
        if unknown:
            raise ConfigError(f"{manifest.path}: sessions.order names unknown classes: "
                              f"{', '.join(map(str, unknown[:5]))}")
        if len(set(order)) != len(order):
            raise ConfigError(f"{manifest.path}: sessions.order repeats a class")
        return [index[n] for n in order]
    raise ConfigError(f"{manifest.path}: sessions.order must be 'dataset', 'seeded' or a list")


def draw_shots(train: SplitData, class_ids: list[int], shots: int,
               generator: torch.Generator) -> list[int]:
    """K indices per class, drawn without replacement; all of them if a class has fewer."""
    targets = train.targets
    chosen: list[int] = []
    for c in class_ids:
        pool = torch.nonzero(targets == c).flatten()
        perm = torch.randperm(len(pool), generator=generator)[:shots]
        chosen += sorted(pool[perm].tolist())
    return chosen


def _group_sessions(manifest: ScenarioManifest, train: SplitData, seed: int) -> list[Session]:
    """Sessions of source groups (the official LoRSU code's TSI grouping of actions): each
    session holds the classes its groups map to, and K shots per class are drawn among the
    samples of the session's groups only."""
    if train.groups is None:
        raise ConfigError(f"{manifest.path}: sessions.by: group needs a dataset whose files "
                          "record their source group (TSI with the file index written by "
                          "`clbench data prepare tsi`)")
    order = list(manifest.class_order)
    known = set(train.groups)
    unknown = [g for g in order if g not in known]
    if unknown:
        raise ConfigError(f"{manifest.path}: sessions.order names groups with no training "
                          f"samples: {', '.join(map(str, unknown[:5]))}")
    sizes = list(manifest.session_sizes)
    if sum(sizes) > len(order):
        raise ConfigError(f"{manifest.path}: sessions.sizes add up to {sum(sizes)} groups but "
                          f"sessions.order lists {len(order)}")
    generator = torch.Generator().manual_seed(seed)
    groups = train.groups
    targets = train.targets.tolist()
    sessions, start = [], 0
    for number, size in enumerate(sizes, start=1):
        wanted = set(order[start:start + size])
        start += size
        members = [i for i, g in enumerate(groups) if g in wanted]
        class_ids = list(dict.fromkeys(targets[i] for i in members))
        chosen: list[int] = []
        for c in class_ids:
            pool = torch.tensor([i for i in members if targets[i] == c])
            perm = torch.randperm(len(pool), generator=generator)[:manifest.shots or 0]
            chosen += sorted(pool[perm].tolist())
        sessions.append(Session(number, class_ids, [train.class_names[c] for c in class_ids],
                                chosen, [train.sample_ids[i] for i in chosen]))
    return sessions


def build_sessions(manifest: ScenarioManifest, train: SplitData, seed: int) -> list[Session]:
    """The scenario's sessions with their drawn samples; refused before any training when a
    session would have no training image at all (e.g. `--skip-corrupt` left out every file of
    its classes), rather than failing in the middle of a run. A class with fewer images than
    shots (or none, beside others that have some) trains on what there is."""
    sessions = _draw_sessions(manifest, train, seed)
    for session in sessions:
        if not session.sample_indices:
            shown = ", ".join(map(repr, session.class_names[:5]))
            raise UserError(
                f"{manifest.path}: session {session.index} ({shown}"
                f"{' ...' if len(session.class_names) > 5 else ''}) has no training image",
                hint="with --skip-corrupt, files left out can empty a session: repair them "
                     f"(`clbench data check {manifest.target}` lists them); otherwise check "
                     "the scenario's sessions")
    return sessions


def _draw_sessions(manifest: ScenarioManifest, train: SplitData, seed: int) -> list[Session]:
    names = train.class_names
    if manifest.protocol != "offline" and manifest.session_by == "group":
        return _group_sessions(manifest, train, seed)
    if manifest.protocol == "offline":
        all_ids = list(range(len(names)))
        idx = list(range(len(train)))
        return [Session(1, all_ids, names, idx, [train.sample_ids[i] for i in idx])]
    order = _class_order(manifest, names, seed)
    sizes = list(manifest.session_sizes)
    if sum(sizes) > len(order):
        raise ConfigError(f"{manifest.path}: sessions.sizes add up to {sum(sizes)} classes but "
                          f"the target dataset has {len(order)}")
    generator = torch.Generator().manual_seed(seed)
    sessions, start = [], 0
    for number, size in enumerate(sizes, start=1):
        class_ids = order[start:start + size]
        start += size
        idx = draw_shots(train, class_ids, manifest.shots or 0, generator)
        sessions.append(Session(number, class_ids, [names[c] for c in class_ids], idx,
                                [train.sample_ids[i] for i in idx]))
    return sessions


VALIDATION_SPLIT = "val"  # the split a control dataset declares for validation


def _validation_generator(seed: int) -> torch.Generator:
    """A generator of its own for the validation draw (the shots' stream stays untouched)."""
    digest = hashlib.sha256(f"clbench-validation:{seed}".encode()).hexdigest()
    return torch.Generator().manual_seed(int(digest[:15], 16))


def draw_validation(manifest: ScenarioManifest, train: SplitData, sessions: list[Session],
                    seed: int) -> list[int] | None:
    """The validation indices into `train` (sorted per class, classes in session order), or
    None for a scenario declared without validation. Few-shot: `per_class` images of every
    class of the sessions, among that class's images drawn as shots in no session. Offline:
    round(fraction x count) images of each class (at least one of a class with two or more);
    the caller removes them from the training session."""
    rule = manifest.validation
    if not rule:
        return None
    generator = _validation_generator(seed)
    targets = train.targets
    # offline: the one session holds the whole split until the held-out part is removed
    shots = {i for s in sessions for i in s.sample_indices} if "per_class" in rule else set()
    class_ids = list(dict.fromkeys(c for s in sessions for c in s.class_ids))
    chosen: list[int] = []
    for c in class_ids:
        pool = [i for i in torch.nonzero(targets == c).flatten().tolist() if i not in shots]
        if "per_class" in rule:
            n = min(int(rule["per_class"]), len(pool))
        else:
            n = max(1, round(float(rule["fraction"]) * len(pool))) if len(pool) >= 2 else 0
        perm = torch.randperm(len(pool), generator=generator)[:n].tolist()
        chosen += sorted(pool[k] for k in perm)
    return chosen


def split_view(data: SplitData, indices: list[int], split: str) -> SplitData:
    """The samples `indices` of `data` as a split of their own (no copy of the images)."""
    load = data.load
    return SplitData(dataset=data.dataset, split=split, class_names=list(data.class_names),
                     templates=list(data.templates), targets=data.targets[indices],
                     sample_ids=[data.sample_ids[i] for i in indices],
                     load=lambda i: load(indices[i]),
                     groups=None if data.groups is None else [data.groups[i] for i in indices],
                     prepared_sha256=data.prepared_sha256, skipped=list(data.skipped))


def class_view(data: SplitData, class_ids: list[int], split: str) -> SplitData:
    """The samples of `class_ids` as a split of their own whose labels index `class_ids` (the
    class names are those classes', in that order): CoOp's base and new halves."""
    position = {c: k for k, c in enumerate(class_ids)}
    indices = [i for i, y in enumerate(data.targets.tolist()) if y in position]
    view = split_view(data, indices, split)
    view.class_names = [data.class_names[c] for c in class_ids]
    view.targets = torch.tensor([position[int(y)] for y in view.targets.tolist()],
                                dtype=torch.long)
    return view


def no_validation_error(manifest: ScenarioManifest) -> UserError:
    return UserError(f"scenario '{manifest.name}' has no validation split (validation: false "
                     f"in {manifest.path})",
                     hint="declare one in the scenario YAML, e.g. `validation: {per_class: 10}` "
                          "(few-shot) or `validation: {fraction: 0.1}` (offline); settings are "
                          "never selected on test data")


def _load_replay(manifest: ScenarioManifest, strategy: str, data_root: str | None,
                 skip_corrupt: bool) -> tuple[list[SplitData], dict[str, str]]:
    """The `train` splits of the scenario's `replay:` datasets (and their YAML hashes) for
    `strategy`, which replays; a scenario without them is a UserError."""
    if not manifest.replay:
        raise UserError(f"strategy '{strategy}' replays clean pretraining-world data, but scenario "
                        f"'{manifest.name}' declares none (no `replay:` key in {manifest.path})",
                        hint="use a scenario with a replay: key (proxy-20shot, proxy-offline, "
                             "proxy-hand-20shot, proxy-hand-offline and the 50-shot ones), or add "
                             "`replay: [DATASET, ...]` naming datasets with a train split")
    splits, hashes = [], {}
    for name in manifest.replay:
        dataset = load_dataset_manifest(name)
        if "train" not in dataset.splits:
            raise UserError(f"{manifest.path}: replay: dataset '{name}' has no train split (it "
                            f"has: {', '.join(dataset.splits)})",
                            hint=f"declare a train split in {dataset.path} (disjoint from its "
                                 "evaluated splits), or replay another dataset")
        splits.append(load_split(dataset, "train", data_root, skip_corrupt))
        hashes[name] = dataset.hash
    return splits, hashes


def _require_split(dataset, split: str, scenario: ScenarioManifest) -> None:
    """A UserError naming the splits it has, when a multi-dataset stream's dataset lacks
    `split`."""
    if split not in dataset.splits:
        raise UserError(f"{scenario.path}: dataset '{dataset.name}' has no '{split}' split (it "
                        f"has: {', '.join(dataset.splits)}); every dataset of a multi-dataset "
                        "stream is trained on its train split and evaluated on its test split",
                        hint=f"declare both in {dataset.path}, or leave it out of `datasets:`")


def _load_controls(manifest: ScenarioManifest, controls: list[str] | None, data_root,
                   skip_corrupt: bool, tuning: bool = False
                   ) -> tuple[list[EvalSet], dict[str, str]]:
    """The scenario's control eval sets (`controls` instead when given) and their hashes: each
    control's validation split when tuning, else its test split, else its last. Tuning refuses
    a control without a validation split before any is loaded."""
    names = list(manifest.eval_sets if controls is None else controls)
    control_manifests = [load_dataset_manifest(c) for c in names]
    if tuning:
        for control, control_manifest in zip(names, control_manifests):
            if VALIDATION_SPLIT not in control_manifest.splits:
                raise UserError(
                    f"control '{control}' has no '{VALIDATION_SPLIT}' split (it has: "
                    f"{', '.join(control_manifest.splits)}), so tuning could only score it on "
                    "its test split", hint=f"declare a '{VALIDATION_SPLIT}' split in "
                    f"{control_manifest.path}, or tune with --controls naming sets that have one")
    eval_sets, hashes = [], {}
    for control, control_manifest in zip(names, control_manifests):
        if tuning:
            split = VALIDATION_SPLIT
        else:
            split = "test" if "test" in control_manifest.splits else control_manifest.splits[-1]
        eval_sets.append(EvalSet(control, load_split(control_manifest, split, data_root,
                                                     skip_corrupt), False))
        hashes[control] = control_manifest.hash
    return eval_sets, hashes


def _check_same_classes(name: str, train: SplitData, test: SplitData) -> None:
    if train.class_names != test.class_names:
        raise ConfigError(f"dataset '{name}': train and test class lists differ")


def _refuse_replay(manifest: ScenarioManifest, replay_for: str | None) -> None:
    if replay_for:
        raise UserError(f"strategy '{replay_for}' replays clean pretraining-world data into one "
                        f"target's class space, which a {manifest.protocol} scenario "
                        f"('{manifest.name}') does not have",
                        hint="run it on a class-incremental scenario (e.g. proxy-20shot)")


def _load_multi_dataset(manifest: ScenarioManifest, seed: int, data_root: str | None,
                        skip_corrupt: bool, controls: list[str] | None) -> Scenario:
    """MTIL: one session per dataset of `datasets:` (its whole train split, or `shots` per
    class drawn with the run seed), every dataset's test set an eval set (classified among
    every dataset's classes with `head: task-agnostic`), then the controls."""
    generator = torch.Generator().manual_seed(seed)
    task_agnostic = manifest.head == TASK_AGNOSTIC_HEAD
    sessions, eval_sets, hashes = [], [], {}
    for number, name in enumerate(manifest.datasets, start=1):
        dataset = load_dataset_manifest(name)
        for split in ("train", "test"):
            _require_split(dataset, split, manifest)
        train = load_split(dataset, "train", data_root, skip_corrupt)
        test = load_split(dataset, "test", data_root, skip_corrupt)
        _check_same_classes(name, train, test)
        class_ids = list(range(len(train.class_names)))
        indices = (draw_shots(train, class_ids, manifest.shots, generator) if manifest.shots
                   else list(range(len(train))))
        if not indices:
            raise UserError(f"{manifest.path}: dataset '{name}' (session {number}) has no "
                            "training image", hint=f"`clbench data check {name}` lists its files")
        sessions.append(Session(number, class_ids, list(train.class_names), indices,
                                [train.sample_ids[i] for i in indices], train=train, head=name))
        eval_sets.append(EvalSet(name, test, False,
                                 tuple(manifest.datasets) if task_agnostic else ()))
        hashes[name] = dataset.hash
    control_sets, control_hashes = _load_controls(manifest, controls, data_root, skip_corrupt)
    return Scenario(manifest, sessions[0].train, sessions, eval_sets + control_sets,
                    {**hashes, **control_hashes})


def base_classes(class_count: int) -> int:
    """How many of a dataset's classes are base classes: CoOp's first ceil(C/2) labels."""
    return math.ceil(class_count / 2)


def _load_base_to_new(manifest: ScenarioManifest, seed: int, data_root: str | None,
                      skip_corrupt: bool, controls: list[str] | None) -> Scenario:
    """CoOp's base-to-new: one session of K shots per base class; the target's test set as
    `<target>:base` (the target, among the base classes) and `<target>:new` (a control, among
    the new classes), then the controls (cross-dataset transfer)."""
    target = load_dataset_manifest(manifest.target)
    train = load_split(target, "train", data_root, skip_corrupt)
    test = load_split(target, "test", data_root, skip_corrupt)
    _check_same_classes(manifest.target, train, test)
    count = len(train.class_names)
    if count < 2:
        raise UserError(f"{manifest.path}: dataset '{manifest.target}' has {count} class; "
                        "base-to-new needs two or more")
    base = list(range(base_classes(count)))
    new = list(range(len(base), count))
    indices = draw_shots(train, base, manifest.shots or 0, torch.Generator().manual_seed(seed))
    session = Session(1, base, [train.class_names[c] for c in base], indices,
                      [train.sample_ids[i] for i in indices])
    base_name, new_name = manifest.stream_eval_sets
    halves = [EvalSet(base_name, class_view(test, base, "test"), True),
              EvalSet(new_name, class_view(test, new, "test"), False)]
    control_sets, hashes = _load_controls(manifest, controls, data_root, skip_corrupt)
    return Scenario(manifest, train, [session], halves + control_sets,
                    {manifest.target: target.hash, **hashes})


def load_scenario(name_or_path: str, seed: int, data_root: str | None = None,
                  skip_corrupt: bool = False, controls: list[str] | None = None,
                  evaluate_on: str = "test", replay_for: str | None = None) -> Scenario:
    """Read the declarations and the data, draw the sessions and the validation split. Fails
    early on missing data, and on missing or corrupt files unless `skip_corrupt` (then they are
    left out and recorded). `controls` replaces the scenario's control eval sets (e.g.
    `imagenet-10pc` for speed). `evaluate_on="validation"` (tuning): the target is evaluated
    on its validation split and each control on its `val` split, and no test split is loaded;
    a scenario without validation, or a control without `val`, is a UserError. `replay_for`
    (the name of a strategy that replays) also loads the `replay:` datasets' train splits; a
    scenario without them is a UserError, refused before any data is read."""
    if evaluate_on not in ("test", "validation"):
        raise ValueError(f"evaluate_on must be 'test' or 'validation', got {evaluate_on!r}")
    tuning = evaluate_on == "validation"
    manifest = load_scenario_manifest(name_or_path)
    if tuning and not manifest.validation:
        raise no_validation_error(manifest)
    if manifest.protocol in (MULTI_DATASET, BASE_TO_NEW):
        _refuse_replay(manifest, replay_for)
        load = _load_multi_dataset if manifest.is_multi_dataset else _load_base_to_new
        return load(manifest, seed, data_root, skip_corrupt, controls)
    if replay_for and not manifest.replay:
        _load_replay(manifest, replay_for, data_root, skip_corrupt)  # raises: nothing to replay
    target_manifest = load_dataset_manifest(manifest.target)
    train = load_split(target_manifest, "train", data_root, skip_corrupt)
    sessions = build_sessions(manifest, train, seed)
    validation = draw_validation(manifest, train, sessions, seed)
    if validation is not None and manifest.protocol == "offline":
        held_out = set(validation)
        for session in sessions:
            keep = [i for i in session.sample_indices if i not in held_out]
            session.sample_indices = keep
            session.sample_ids = [train.sample_ids[i] for i in keep]
    if tuning:
        if not validation:
            raise no_validation_error(manifest)
        target_data = split_view(train, validation, "validation")
    else:
        target_data = load_split(target_manifest, "test", data_root, skip_corrupt)
    _check_same_classes(manifest.target, train, target_data)
    control_sets, control_hashes = _load_controls(manifest, controls, data_root, skip_corrupt,
                                                  tuning)
    eval_sets = [EvalSet(manifest.target, target_data, True), *control_sets]
    hashes = {manifest.target: target_manifest.hash, **control_hashes}
    replay: list[SplitData] = []
    if replay_for:
        replay, replay_hashes = _load_replay(manifest, replay_for, data_root, skip_corrupt)
        hashes.update(replay_hashes)
        evaluated = {i for e in eval_sets for i in e.data.sample_ids}
        shared = [i for split in replay for i in split.sample_ids if i in evaluated]
        if shared:
            raise ConfigError(f"{manifest.path}: replayed samples are also evaluated (e.g. "
                              f"{shared[0]}); replay must be disjoint from every eval set")
    return Scenario(manifest, train, sessions, eval_sets, hashes, validation, evaluate_on,
                    replay)
