"""The common base of every strategy: an Avalanche `SupervisedPlugin` that decides what trains.

Before each session the base freezes the whole model and calls `configure`, where a strategy
marks its trainable tensors (`requires_grad`), wraps modules (LoRA) or computes masks (SPU,
LoRSU). clbench's training loop then builds the optimizer over exactly the trainable set:
Avalanche's own `make_optimizer` hands every parameter of the model to the optimizer, and only
`requires_grad=False` really freezes (an optimizer with momentum or weight decay moves a tensor
whose gradient is zero; see `masking.py`).

A strategy is a dataclass config (every field with a help text and the paper's default) plus a
subclass of `StrategyPlugin`; a built-in is a package `strategies/<name>/` that declares itself
(`clbench.strategies.declaration`), a third-party package joins through the `clbench.strategies`
entry-point group. The contract, the hook order and how to test a plugin:
docs/writing-a-strategy.md in the repository.
"""

from __future__ import annotations

import copy
from typing import Any, ClassVar

import torch
from avalanche.core import SupervisedPlugin
from torch import nn

# re-exported: plugins subclass them from here (docs/writing-a-strategy.md)
from clbench.strategies.config_base import StrategyConfig, TowerConfig  # noqa: F401


def vision_parameters(clip: nn.Module) -> list[tuple[str, nn.Parameter]]:
    return [(f"visual.{n}", p) for n, p in clip.visual.named_parameters()]


def text_parameters(clip: nn.Module) -> list[tuple[str, nn.Parameter]]:
    """Every parameter outside the image tower except the logit scale/bias (kept frozen: FLYP)."""
    return [(n, p) for n, p in clip.named_parameters()
            if not n.startswith("visual.") and n not in ("logit_scale", "logit_bias")]


def tower_parameters(clip: nn.Module, towers: str) -> list[tuple[str, nn.Parameter]]:
    params = vision_parameters(clip)
    if towers == "both":
        params += text_parameters(clip)
    return params


def tower_modules(clip: nn.Module, towers: str) -> list[tuple[str, nn.Module]]:
    """Named submodules of the tuned tower(s), with names relative to the CLIP model."""
    modules = [(f"visual.{n}" if n else "visual", m) for n, m in clip.visual.named_modules()]
    if towers == "both":
        modules += [(n, m) for n, m in clip.named_modules()
                    if n and not n.startswith("visual") and m is not clip.visual]
    return modules


class StrategyPlugin(SupervisedPlugin):
    """Base plugin. Subclasses set `config_class` and implement `configure`; the registry gives
    them their name."""

    config_class: ClassVar[type[StrategyConfig]] = StrategyConfig
    # a strategy whose method prescribes its loss (e.g. LLU's cross-entropy) sets it here
    required_loss: ClassVar[str | None] = None
    # a strategy that trains on replayed pretraining-world data besides the session's (the
    # joint-replay reference) sets this: the runner then calls `set_replay` before training,
    # and refuses a scenario without a `replay:` key
    needs_replay: ClassVar[bool] = False
    # how a run of this strategy resumes after a crash: True declares that it carries nothing
    # from one session to the next outside the model's weights (what it keeps on itself is
    # recomputed every session, as masks and chosen heads); a strategy that does carry
    # something implements `resume_state` and `load_resume_state` instead. Read from the
    # plugin's own class body, never inherited (`resume_problem`): a subclass may add state
    stateless_between_sessions: ClassVar[bool] = False

    def __init__(self, config: StrategyConfig | None = None):
        super().__init__()
        self.config = config if config is not None else self.config_class()

    @property
    def replaces_trainable_tensors(self) -> bool:
        """Whether the strategy merges what it trained into the weights after a session and
        trains new tensors the next (LoRSU; LoRA with `merge_each_session`): a penalty on named
        parameters added with `--plugin` (EWC, MAS, SI) could not follow it."""
        return False

    # ---- what a strategy implements
    def configure(self, classifier: nn.Module, strategy: Any) -> None:
        """Mark what trains this session (the model arrives fully frozen)."""

    def session_facts(self) -> dict[str, Any]:
        """Strategy facts stored per session (chosen heads, mask density, ...)."""
        return {}

    def planned_trainable(self, clip: nn.Module) -> int:
        """Entries this strategy trains in a session, from the architecture alone.

        Works on a model built on the meta device (no weights, no memory): `clbench params`.
        The default configures a frozen copy-free holder and counts what became trainable;
        strategies whose choice depends on data (masks) override it with their formula.
        """
        holder = nn.Module()
        holder.clip = clip
        holder.embedding_adapters = nn.ModuleDict()
        for p in clip.parameters():
            p.requires_grad_(False)
        copy.deepcopy(self).configure(holder, None)  # a copy: the plugin's own state stays fresh
        return sum(p.numel() for p in holder.parameters() if p.requires_grad)

    def prepare_for_load(self, classifier: nn.Module, state: dict[str, torch.Tensor]) -> None:
        """Give a freshly built classifier the structure this strategy adds (adapters), so that
        `classifier.load_state_dict(state)` of a saved adapted model fits. Plain models (full
        fine-tuning, masks, merged LoRSU) need nothing."""

    def resume_state(self) -> dict[str, Any]:
        """State this strategy carries from one session to the next outside the model's
        weights, saved in the run's checkpoint after every session: tensors, numbers, strings,
        lists and dicts only (a checkpoint is loaded with `torch.load(weights_only=True)`).
        The built-ins carry none (they declare `stateless_between_sessions`): adapters and gate
        scores are in the model, masks and chosen heads are recomputed at the start of each
        session. A strategy that overrides it overrides `load_resume_state` too."""
        return {}

    def load_resume_state(self, state: dict[str, Any]) -> None:
        """Take back what `resume_state` returned, when a run resumes from a checkpoint (after
        `prepare_for_load` and the model's weights, on the run's device)."""

    def optimizer_groups(self) -> list[dict[str, Any]]:
        """Optimizer parameter groups with their own settings (e.g. gate scores' learning rate);
        every other trainable tensor goes to the default group at the training lr."""
        return []

    def frozen_entries(self) -> int:
        """Entries of `requires_grad` tensors that a mask keeps frozen (SPU, LoRSU): subtracted
        from the trainable count, which otherwise counts whole tensors."""
        return 0

    def set_replay(self, dataset: torch.utils.data.Dataset, class_names: list[str],
                   templates: list[str], *, seed: int = 0) -> None:
        """Replay data for a strategy with `needs_replay`: a dataset of (image tensor, label)
        with a `targets` list, its labels indexing `class_names`, the joint class space (the
        target's classes with their own ids first, then the replayed classes), the prompt
        templates of its captions, and the run seed for drawing from it."""
        raise NotImplementedError(f"{type(self).__name__} does not replay (needs_replay is False)")

    def planned_replay(self, session_sizes: list[int]) -> list[int]:
        """Replayed samples this strategy will add to each session of `session_sizes` target
        training samples (stored with the run); none unless it replays."""
        return [0] * len(session_sizes)

    # ---- Avalanche callbacks
    def before_training_exp(self, strategy: Any, **kwargs: Any) -> None:
        classifier = strategy.model
        for p in classifier.parameters():
            p.requires_grad_(False)
        self.configure(classifier, strategy)
        # A plain Avalanche training loop (`Naive`) updated its optimizer before the plugins ran
        # (`check_model_and_optimizer` precedes `before_training_exp`), so tensors created just
        # now (adapters) would never train and merged ones would linger: refresh it. clbench's
        # training loop builds its optimizer after the plugins, from the trainable set.
        if (not getattr(strategy, "builds_optimizer_after_plugins", False)
                and getattr(strategy, "optimizer", None) is not None
                and hasattr(strategy, "optimized_param_id")):
            strategy.make_optimizer(remove_params=True)


def resume_problem(plugin: StrategyPlugin | type[StrategyPlugin]) -> str | None:
    """Why a run of this plugin cannot be resumed from a checkpoint, naming the class and what
    to implement; None when its class declares how it resumes.

    A checkpoint holds the model's weights, the random generators and `resume_state()`: a
    plugin that keeps anything else on itself (a copy of the zero-shot weights) would resume
    with it lost, and its run would silently store other numbers than an uninterrupted one.
    So the class itself must say which case it is (inherited declarations do not count: a
    subclass may add state), and clbench refuses to resume a run of one that does not."""
    cls = plugin if isinstance(plugin, type) else type(plugin)
    own = vars(cls)
    name = f"{cls.__module__}.{cls.__qualname__}"
    if own.get("stateless_between_sessions") is True:
        return None
    defined = [m for m in ("resume_state", "load_resume_state") if m in own]
    if len(defined) == 2:
        return None
    if defined:
        missing = ({"resume_state", "load_resume_state"} - set(defined)).pop()
        return (f"the strategy plugin {name} defines `{defined[0]}` but not `{missing}`: "
                f"implement `{missing}` in {cls.__name__} as well, so that what one saves the "
                "other takes back")
    return (f"the strategy plugin {name} declares no resume behaviour, so clbench cannot tell "
            "whether a resumed run would equal an uninterrupted one: implement "
            f"`resume_state()` and `load_resume_state(state)` in {cls.__name__} (returning and "
            "taking back everything it carries from one session to the next outside the "
            "model's weights), or, if it carries nothing, set `stateless_between_sessions = "
            f"True` in {cls.__name__}'s class body")


def effective_training(training, plugins: list) -> Any:
    """The training config with the loss a strategy prescribes, if any (stored as run)."""
    import dataclasses

    for plugin in plugins:
        required = getattr(plugin, "required_loss", None)
        if isinstance(plugin, StrategyPlugin) and required and training.loss != required:
            return dataclasses.replace(training, loss=required)
    return training


def set_trainable(params: list[tuple[str, nn.Parameter]]) -> None:
    for _, p in params:
        p.requires_grad_(True)
