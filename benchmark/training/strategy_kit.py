"""The strategy test kit: clbench's own strategy checks, for built-ins and plugins alike.

A strategy's contract is checked by training it for two sessions through clbench's training
loop (`clbench.training.loop.SessionTrainer`: the same hooks, optimizer and loss as `clbench run`) on a
small CLIP, then comparing every tensor of the state dict bit for bit with a copy taken before
training. `check_strategy` asserts that the set of tensors that changed is exactly what the
strategy says it trains, that each of those groups did change, that the strategy plans its
trainable set on a weightless (meta-device) copy of the architecture as `clbench params` and
`clbench run`'s checks do, that a saved adapted model loads into a freshly built one
(after `prepare_for_load`) with the same outputs, and (`check_resume`) that a run crashed after
its first session and resumed from its checkpoint ends bit for bit where an uninterrupted one
does. `check_batch_invariance` asserts that the evaluator predicts every image the same at eval
batch 1 and 256, from images and from kept features. `tests/test_strategy_matrix.py` runs
`check_strategy` on every registered strategy (`tests/test_batch_invariance.py` the batch
check); a plugin package runs them on itself in its tests:

    from clbench.training.strategy_kit import check_strategy

    def test_mine_trains_only_layernorms():
        check_strategy("mine", [r"clip\\.visual\\..*ln_\\w+\\.(weight|bias)"])

The building blocks are public too: tiny open_clip models (`tiny_clip`, `tiny_timm_clip`), the
proxy architecture under a four-class head (`proxy_classifier`), seeded random images
(`TinyImages`), a two-session stream (`tiny_sessions`, `train_stream`), the batch check's
evaluation images (`eval_images`) and the training loop on the CPU (`trainer`). Importing
this module has no side effects (it imports torch, Avalanche and open_clip, as every strategy
does); the model builders seed torch's global RNG so that every call builds the same weights.
"""

from __future__ import annotations

import copy
import io
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import open_clip
import torch
from avalanche.benchmarks.scenarios.dataset_scenario import benchmark_from_datasets
from avalanche.benchmarks.utils.utils import as_classification_dataset
from avalanche.training.plugins import EvaluationPlugin
from open_clip.model import CLIPTextCfg, CLIPVisionCfg
from torch import nn

from clbench.config.run_config import TrainingConfig
from clbench.models.classifier import CLIPClassifier
from clbench.strategies.base import StrategyPlugin, resume_problem
from clbench.training import session_state
from clbench.training.evaluation import head_logits, predict, predict_from_features
from clbench.training.loop import SessionTrainer

__all__ = [
    "DH", "HEADS", "TOY_CLASSES", "TOY_TEMPLATES", "WIDTH", "TinyImages", "Trained",
    "changed_tensors", "check_batch_invariance", "check_resume", "check_save_load",
    "check_strategy", "check_weightless_configure",
    "classifier", "eval_images", "make_plugin", "proxy_classifier", "snapshot", "state_key",
    "text_cfg", "tiny_clip", "tiny_sessions", "tiny_timm_clip", "tokenize", "train_sessions",
    "train_stream", "trainer",
]

WIDTH, HEADS, DH = 64, 4, 16
# the head of `proxy_classifier`: four classes of the proxy world, two prompt templates
TOY_CLASSES = ("red star", "blue ring", "green heart", "pink cross")
TOY_TEMPLATES = ("a photo of a {}.", "a {} in the scene.")


# ------------------------------------------------------------------------------ tiny models
def text_cfg(layers: int = 1) -> CLIPTextCfg:
    """The tiny text tower: width 32, 4 heads, context 16 over a 100-token vocabulary."""
    return CLIPTextCfg(context_length=16, vocab_size=100, width=32, heads=4, layers=layers)


def tiny_clip(layers: int = 2, text_layers: int = 1) -> nn.Module:
    """Native open_clip ViT: `layers` blocks of width 64, 4 heads of 16; frozen. Seeds torch's
    global RNG with 0 first, so every call builds the same weights."""
    torch.manual_seed(0)
    clip = open_clip.CLIP(
        embed_dim=32,
        vision_cfg=CLIPVisionCfg(layers=layers, width=WIDTH, head_width=DH, patch_size=8,
                                 image_size=32),
        text_cfg=text_cfg(text_layers))
    return clip.requires_grad_(False)


def tiny_timm_clip() -> nn.Module:
    """open_clip's TimmModel with a 2-block timm ViT trunk (width 192, 3 heads of 64); frozen.
    Seeds torch's global RNG with 0 first."""
    from timm.models.vision_transformer import VisionTransformer

    torch.manual_seed(0)
    clip = open_clip.CLIP(
        embed_dim=32,
        vision_cfg=CLIPVisionCfg(timm_model_name="vit_tiny_patch16_224",
                                 timm_model_pretrained=False, timm_pool="token",
                                 timm_proj="linear", image_size=224),
        text_cfg=text_cfg())
    clip.visual.trunk = VisionTransformer(img_size=32, patch_size=8, embed_dim=192, depth=2,
                                          num_heads=3, num_classes=0)
    return clip.requires_grad_(False)


def tokenize(texts: list[str]) -> torch.Tensor:
    """A character tokenizer for the tiny text tower (EOT 99 is the highest id)."""
    ids = torch.zeros(len(texts), 16, dtype=torch.long)
    for row, text in enumerate(texts):
        codes = [1 + ord(c) % 98 for c in text[:15]] + [99]
        ids[row, :len(codes)] = torch.tensor(codes)
    return ids


class TinyImages(torch.utils.data.Dataset):
    """`n` seeded random images labelled 0, 1, ..., classes - 1, 0, ... in turn, or with the
    given `labels`; Gaussian pixels, or uniform in [0, 1) with `uniform=True`."""

    def __init__(self, n: int | None = None, seed: int = 0, *, classes: int = 2,
                 labels: Sequence[int] | None = None, size: int = 32, uniform: bool = False):
        self.targets = list(labels) if labels is not None else [i % classes for i in range(n)]
        draw = torch.rand if uniform else torch.randn
        self.x = draw(len(self.targets), 3, size, size,
                      generator=torch.Generator().manual_seed(seed))

    def __len__(self):
        return len(self.targets)

    def __getitem__(self, i):
        return self.x[i], self.targets[i]


def classifier(clip: nn.Module, classes: Sequence[str] = ("cat", "dog"),
               templates: Sequence[str] = ("a photo of a {}.", "a {}.", "my {}"),
               tokenizer: Callable[[list[str]], torch.Tensor] = tokenize) -> CLIPClassifier:
    """`clip` as a zero-shot classifier with one head, "toy", over `classes`."""
    model = CLIPClassifier(clip, tokenizer)
    model.register_head("toy", list(classes), list(templates))
    return model


def proxy_classifier(seed: int | None = None) -> CLIPClassifier:
    """The proxy CLIP's architecture (`proxy-vit-tiny`: width 128, 4 blocks of 4 heads) with
    random weights from torch's global RNG (seeded with `seed` first when given), under a
    "toy" head over `TOY_CLASSES`. Wide enough for every built-in strategy at its defaults
    (rank-64 presets included); the committed checkpoint is not loaded."""
    from clbench.models import ProxyTokenizer, build_clip

    if seed is not None:
        torch.manual_seed(seed)
    return classifier(build_clip(), TOY_CLASSES, TOY_TEMPLATES, ProxyTokenizer())


# ------------------------------------------------------------------------------ sessions
def tiny_sessions() -> list[TinyImages]:
    """Two sessions of two classes of `TOY_CLASSES` each (0, 1 then 2, 3), 4 images per class,
    uniform random pixels (32 px)."""
    return [TinyImages(labels=[0, 1] * 4, seed=1, uniform=True),
            TinyImages(labels=[2, 3] * 4, seed=2, uniform=True)]


def train_stream(*datasets: torch.utils.data.Dataset):
    """One Avalanche training experience per dataset (a session each)."""
    return benchmark_from_datasets(
        train=[as_classification_dataset(d) for d in datasets]).train_stream


def trainer(model: nn.Module, plugins: list, seed: int = 0, **training) -> SessionTrainer:
    """clbench's training loop on the CPU with `TrainingConfig(**training)` and no loggers."""
    return SessionTrainer(model=model, training=TrainingConfig(**training),
                          device=torch.device("cpu"), seed=seed, plugins=plugins,
                          evaluator=EvaluationPlugin(loggers=[]))


def snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    """A detached copy of every tensor of the state dict (for bit-identity checks)."""
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def state_key(key: str) -> str:
    """A state-dict key without torch's parametrization wrappers (`.parametrizations.`,
    `.original`), so that a masked or reparametrized tensor keeps its plain name."""
    return key.replace(".parametrizations.", ".").replace(".original", "")


# ------------------------------------------------------------------------------ the checks
def make_plugin(strategy: str | StrategyPlugin,
                params: dict[str, Any] | None = None) -> StrategyPlugin:
    """A configured plugin: a registered name (built-in, preset or entry point) with optional
    parameters, validated as `--set strategy.KEY=VALUE` would be, or a plugin instance as is."""
    if isinstance(strategy, StrategyPlugin):
        if params:
            raise TypeError("params apply to a strategy name; configure the instance instead")
        return strategy
    from clbench.strategies import registry

    return registry.create(strategy, params)


def _fresh(strategy: str | StrategyPlugin, params: dict[str, Any] | None) -> StrategyPlugin:
    """A new plugin with the same configuration (no state from a training)."""
    if isinstance(strategy, StrategyPlugin):
        return type(strategy)(copy.deepcopy(strategy.config))
    return make_plugin(strategy, params)


def _label(strategy: str | StrategyPlugin) -> str:
    return strategy if isinstance(strategy, str) else type(strategy).__name__


@dataclass
class Trained:
    """A classifier after `train_sessions`, with the copy of its state taken before training."""

    label: str
    model: CLIPClassifier
    plugin: StrategyPlugin
    before: dict[str, torch.Tensor]
    trainable_params: list[int]  # per session, as `clbench run` stores them
    facts: list[dict[str, Any]] = field(default_factory=list)  # `session_facts()` per session
    # with `checkpoint_after=K`: K, and the run's state after session K as a checkpoint holds it
    checkpoint_after: int | None = None
    checkpoint: dict[str, Any] | None = None

    def after(self) -> dict[str, torch.Tensor]:
        """The state now, keyed by `state_key`."""
        return {state_key(k): v for k, v in snapshot(self.model).items()}

    def changed(self, ignore: Iterable[str] = ()) -> set[str]:
        """Keys (by `state_key`) of the tensors that are new or differ in any bit from before
        training, except those fully matching a regular expression of `ignore`."""
        skip = [re.compile(p) for p in ignore]
        changed = {k for k, v in self.after().items()
                   if k not in self.before or not torch.equal(self.before[k], v)}
        return {k for k in changed if not any(p.fullmatch(k) for p in skip)}


def _give_replay(plugin: StrategyPlugin, model: CLIPClassifier, seed: int) -> None:
    """Replayed images of the same four classes for a strategy that replays (joint-replay)."""
    if plugin.needs_replay:
        head = model.heads[model.active_head]
        plugin.set_replay(TinyImages(labels=list(range(len(head.class_names))), seed=4,
                                     uniform=True), head.class_names, head.templates, seed=seed)


def _as_saved(state: dict[str, Any], label: str) -> dict[str, Any]:
    """`state` after a round trip through a file, as a run's checkpoint stores and loads it
    (`torch.load(weights_only=True)`): copies, and only what a checkpoint can hold."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    try:
        return torch.load(buffer, weights_only=True)
    except Exception as err:  # noqa: BLE001 - whatever weights_only refuses
        raise AssertionError(
            f"{label}: its checkpoint cannot be loaded back ({type(err).__name__}): "
            "resume_state() must return tensors, numbers, strings, lists and dicts only"
        ) from None


def train_sessions(strategy: str | StrategyPlugin, params: dict[str, Any] | None = None, *,
                   model_factory: Callable[[], CLIPClassifier] = proxy_classifier,
                   sessions: Sequence[torch.utils.data.Dataset] | None = None, seed: int = 0,
                   epochs: int = 2, batch_size: int = 4, lr: float = 1e-2,
                   checkpoint_after: int | None = None, **training: Any) -> Trained:
    """Train `strategy` (a registered name with `params`, or a plugin instance, which is
    trained as it is: pass a new one to each call) on the sessions
    (default `tiny_sessions()`) through clbench's training loop: torch seeded with `seed`, the
    model from `model_factory` (default `proxy_classifier`), Adam at `lr` for `epochs` per
    session, other `TrainingConfig` fields from `training` (e.g. `loss="ce"`). A strategy that
    replays (`needs_replay`) is given seeded images of the same four classes. With
    `checkpoint_after=K`, the state a run's checkpoint holds after session K is kept in
    `Trained.checkpoint` (for `check_resume`)."""
    torch.manual_seed(seed)
    model = model_factory()
    before = snapshot(model)
    plugin = make_plugin(strategy, params)
    _give_replay(plugin, model, seed)
    loop = trainer(model, [plugin], seed=seed, epochs=epochs, batch_size=batch_size, lr=lr,
                   **training)
    counts, facts, checkpoint = [], [], None
    stream = train_stream(*(sessions if sessions is not None else tiny_sessions()))
    for done, experience in enumerate(stream, start=1):
        loop.train(experience, eval_streams=[])
        counts.append(loop.session_record["trainable_params"])
        facts.append(copy.deepcopy(plugin.session_facts()))
        if done == checkpoint_after:  # what `clbench run` saves after this session
            checkpoint = _as_saved(session_state.capture(model, plugin, loop), _label(strategy))
    return Trained(_label(strategy), model, plugin, before, counts, facts,
                   checkpoint_after if checkpoint is not None else None, checkpoint)


def changed_tensors(strategy: str | StrategyPlugin, params: dict[str, Any] | None = None, *,
                    ignore: Iterable[str] = (), **kwargs: Any) -> set[str]:
    """The state-dict keys (by `state_key`) that two sessions of `strategy` changed or added
    (`train_sessions`' keyword arguments apply), except those matching `ignore`."""
    return train_sessions(strategy, params, **kwargs).changed(ignore)


def check_save_load(trained: Trained, strategy: str | StrategyPlugin,
                    params: dict[str, Any] | None = None, *,
                    model_factory: Callable[[], CLIPClassifier] = proxy_classifier,
                    atol: float = 1e-6) -> None:
    """Save the trained classifier's state, build a fresh classifier from other random weights,
    let a fresh plugin `prepare_for_load` it, load the state strictly: same outputs."""
    images = TinyImages(labels=[0, 1, 2, 3], seed=3, uniform=True).x
    model = trained.model
    model.eval()
    with torch.no_grad():
        expected = model(images)
    state = _as_saved(model.state_dict(), _label(strategy))
    torch.manual_seed(123)  # different random base weights: everything must come from the file
    fresh = model_factory()
    _fresh(strategy, params).prepare_for_load(fresh, state)
    fresh.load_state_dict(state)  # strict: the structure matches exactly
    fresh.eval()
    with torch.no_grad():
        got = fresh(images)
    if not torch.allclose(got, expected, atol=atol):
        raise AssertionError(f"{trained.label}: the reloaded model's outputs differ (max "
                             f"{(got - expected).abs().max().item():.3g})")


def check_weightless_configure(strategy: str | StrategyPlugin,
                               params: dict[str, Any] | None = None, *,
                               arch: str = "proxy-vit-tiny") -> int:
    """What `clbench params` and `clbench run`'s checks do before any weight exists: the
    strategy plans its trainable set on `arch` built on the meta device (`configure` with
    `strategy=None` on a weightless copy, unless the plugin overrides `planned_trainable`).
    Returns the planned count; raises if the plan fails or is not a non-negative integer."""
    from clbench.models import build_on_meta

    plugin = _fresh(strategy, params)
    planned = plugin.planned_trainable(build_on_meta(arch))
    if isinstance(planned, bool) or not isinstance(planned, int) or planned < 0:
        raise AssertionError(f"{_label(strategy)}: planned_trainable returned {planned!r}, "
                             "not a count")
    return planned


def _differences(got: dict[str, torch.Tensor], expected: dict[str, torch.Tensor]) -> list[str]:
    keys = sorted(set(got) | set(expected))
    return [k for k in keys if k not in got or k not in expected
            or got[k].shape != expected[k].shape or not torch.equal(got[k], expected[k])]


def check_resume(strategy: str | StrategyPlugin, params: dict[str, Any] | None = None, *,
                 after: int = 1, trained: Trained | None = None,
                 model_factory: Callable[[], CLIPClassifier] = proxy_classifier,
                 sessions: Sequence[torch.utils.data.Dataset] | None = None, seed: int = 0,
                 epochs: int = 2, batch_size: int = 4, lr: float = 1e-2,
                 **training: Any) -> None:
    """clbench's crash-and-resume check: a run that crashes after session `after` and is
    resumed from its checkpoint must end exactly where an uninterrupted run ends.

    The uninterrupted run (`train_sessions`, whose keyword arguments apply; or `trained`, made
    with `checkpoint_after=after`) keeps the state `clbench run` checkpoints after session
    `after`, through the same functions (`clbench.training.session_state`) and a round trip
    through `torch.load(weights_only=True)`. Then, as `clbench run --resume` does, a fresh
    plugin and a classifier built from other random weights take that state back
    (`prepare_for_load`, the weights, `load_resume_state`, the random generators) and train the
    remaining sessions. Every tensor of the two models must be equal bit for bit, and so must
    the trainable counts and `session_facts()` of the resumed sessions. Finally the plugin's
    class must declare how it resumes (`clbench.strategies.base.resume_problem`): clbench
    refuses to resume a run of one that does not. Raises AssertionError naming the strategy."""
    label = _label(strategy)
    sessions = list(sessions if sessions is not None else tiny_sessions())
    if not 0 < after < len(sessions):
        raise ValueError(f"check_resume: after={after} must leave a session on both sides of "
                         f"the crash (1 to {len(sessions) - 1} for {len(sessions)} sessions)")
    settings = dict(seed=seed, epochs=epochs, batch_size=batch_size, lr=lr, **training)
    if trained is None:
        trained = train_sessions(_fresh(strategy, params), model_factory=model_factory,
                                 sessions=sessions, checkpoint_after=after, **settings)
    if trained.checkpoint_after != after:
        raise ValueError(f"check_resume: `trained` must be made with checkpoint_after={after}")
    state = trained.checkpoint

    # the crash: everything is built again, from other random weights and generators
    torch.manual_seed(seed + 1)
    model = model_factory()
    plugin = _fresh(strategy, params)
    _give_replay(plugin, model, seed)
    session_state.restore_model(state, model, plugin)
    loop = trainer(model, [plugin], **settings)
    session_state.restore_random_state(state["random"], loop)
    counts, facts = [], []
    for experience in list(train_stream(*sessions))[after:]:
        loop.train(experience, eval_streams=[])
        counts.append(loop.session_record["trainable_params"])
        facts.append(copy.deepcopy(plugin.session_facts()))

    problem = resume_problem(plugin)
    differing = _differences({state_key(k): v for k, v in snapshot(model).items()},
                             trained.after())
    if differing:
        if problem:
            why = problem
        elif vars(type(plugin)).get("stateless_between_sessions") is True:
            why = (f"{type(plugin).__name__} declares `stateless_between_sessions = True` but "
                   "keeps state between sessions outside the model's weights: implement "
                   "`resume_state()` and `load_resume_state(state)` instead")
        else:
            why = ("it keeps state between sessions that `resume_state()` does not return or "
                   "`load_resume_state(state)` does not take back")
        raise AssertionError(
            f"{label}: a run resumed after session {after} differs from an uninterrupted one "
            f"in {len(differing)} tensor(s): {differing[:5]}" + (
                f" (and {len(differing) - 5} more)" if len(differing) > 5 else "")
            + f"; {why}")
    resumed_facts = trained.facts[after:]
    if counts != trained.trainable_params[after:] or facts != resumed_facts:
        raise AssertionError(
            f"{label}: a run resumed after session {after} trains the same weights but stores "
            f"other session rows (trainable counts {counts} instead of "
            f"{trained.trainable_params[after:]}, facts {facts} instead of {resumed_facts}): "
            "what session_facts() reports must come back with load_resume_state")
    if problem:
        raise AssertionError(f"{label}: resumed equal here, but `clbench run --resume` refuses "
                             f"its runs: {problem}")


def eval_images() -> TinyImages:
    """The images `check_batch_invariance` predicts: two of each class of `TOY_CLASSES`,
    uniform random pixels (32 px), drawn apart from the training sessions' images."""
    return TinyImages(labels=[0, 1, 2, 3] * 2, seed=5, uniform=True)


@dataclass
class _EvalPath:
    """One way the evaluator predicts the images: `predict` at `batch` (features None), or
    `predict_from_features` at `batch` from the features `predict` kept at `kept_at`."""

    batch: int
    features: torch.Tensor | None = None
    kept_at: int | None = None

    def __str__(self) -> str:
        if self.features is None:
            return f"predict at eval batch {self.batch}"
        return (f"predict_from_features at eval batch {self.batch} (features kept at eval "
                f"batch {self.kept_at})")

    @torch.no_grad()
    def logits(self, model: CLIPClassifier, images: torch.utils.data.Dataset,
               head: str) -> torch.Tensor:
        """The logits behind this path's predictions, batch by batch as it computes them (for
        the failure message: whether a flip is a rounding tie or a real dependence)."""
        was_training = model.training
        model.eval()
        try:
            if self.features is None:
                batches = [model.image_features(x) for x, _ in torch.utils.data.DataLoader(
                    images, batch_size=self.batch, shuffle=False)]
            else:
                batches = list(self.features.split(self.batch))
            return torch.cat([head_logits(model, f, head) for f in batches])
        finally:
            model.train(was_training)


def _batch_dependence(label: str, model: CLIPClassifier, images: torch.utils.data.Dataset,
                      labels: torch.Tensor, reference: _EvalPath, expected: torch.Tensor,
                      path: _EvalPath, got: torch.Tensor) -> str:
    """The failure message: the first image predicted differently, both predictions, and how
    far apart the two paths' logits are."""
    head = model.active_head
    names = model.heads[head].class_names
    differ = (got != expected).nonzero().flatten().tolist()
    i = differ[0]
    ref_logits = reference.logits(model, images, head)
    path_logits = path.logits(model, images, head)
    top2 = ref_logits[i].topk(min(2, len(names))).values
    gap = (top2[0] - top2[-1]).item()
    shift = (path_logits[i] - ref_logits[i]).abs().max().item()
    close = torch.allclose(path_logits, ref_logits)
    if gap <= 2 * shift and close:  # two logits that each moved by `shift` crossed
        why = ("its top two logits are a near-tie that float rounding flipped (clbench "
               "requires equal predictions all the same: report it with these numbers)")
    else:
        why = ("a prediction must be computed from its own image alone at evaluation: no "
               "statistic over the batch (a batch mean or norm, BatchNorm left in training "
               "mode, a prompt, key or adapter chosen once per batch)")
    return (f"{label}: its predictions depend on the evaluation batch: evaluation image {i} "
            f"(of {len(expected)}, true class {int(labels[i])}) is predicted class "
            f"{int(expected[i])} ({names[int(expected[i])]!r}) by {reference} but class "
            f"{int(got[i])} ({names[int(got[i])]!r}) by {path}; {len(differ)} of "
            f"{len(expected)} predictions differ. Its logits move by up to {shift:.3g} (its "
            f"top two are {gap:.3g} apart); over all images by up to "
            f"{(path_logits - ref_logits).abs().max().item():.3g} (torch.allclose: "
            f"{'yes' if close else 'no'}): {why}")


def check_batch_invariance(strategy: str | StrategyPlugin, params: dict[str, Any] | None = None,
                           *, trained: Trained | None = None,
                           images: torch.utils.data.Dataset | None = None,
                           batch_sizes: Sequence[int] = (1, 256),
                           sessions: Sequence[torch.utils.data.Dataset] | None = None,
                           epochs: int = 1, **kwargs: Any) -> torch.Tensor:
    """clbench's batch-invariance check: a model's prediction for an image must not depend on
    the other images of its evaluation batch, or its numbers change with
    `training.eval_batch_size` (and so with the device's memory) and with the eval set's order.
    The known case is batch-wise prompt selection: the reference code of L2P (Wang et al.,
    "Learning to Prompt for Continual Learning", CVPR 2022) and DualPrompt (Wang et al., ECCV
    2022) has a `batchwise_prompt` option that gives every test image of a batch the prompts
    most of the batch chose, so a test image borrows its neighbours' task identity.

    Trains `strategy` for one short session (`train_sessions` with the first of
    `tiny_sessions()` and `epochs=1` unless `sessions` and `epochs` say otherwise; its other
    keyword arguments apply), or takes `trained`. Then predicts `images` (default
    `eval_images()`) under the model's active head through the evaluator's own functions
    (`clbench.training.evaluation`), on the CPU: `predict` at every size of `batch_sizes`,
    keeping the image features, and `predict_from_features` at every size from the features
    kept at every size (the evaluator reuses features while the image tower is unchanged).
    Every prediction must equal `predict`'s at the first size, exactly: predictions are
    argmaxes, so float rounding only flips a near-tie, and the message says when that is what
    happened (the two paths' largest logit difference, `torch.allclose`, the image's top-two
    gap). Raises AssertionError naming the strategy, the first image predicted differently and
    both predictions; returns the predictions."""
    label = _label(strategy)
    sizes = list(batch_sizes)
    if len(sizes) < 2 or any(isinstance(b, bool) or not isinstance(b, int) or b < 1
                             for b in sizes):
        raise ValueError(f"check_batch_invariance: batch_sizes={batch_sizes!r} must hold two "
                         "positive integers or more (the default is (1, 256))")
    images = images if images is not None else eval_images()
    if len(images) < 2:
        raise ValueError("check_batch_invariance: give two images or more (one image is the "
                         "same batch at every size)")
    if trained is None:
        trained = train_sessions(strategy, params, epochs=epochs,
                                 sessions=sessions if sessions is not None
                                 else tiny_sessions()[:1], **kwargs)
    model, cpu = trained.model, torch.device("cpu")
    head = model.active_head

    paths: list[tuple[_EvalPath, torch.Tensor]] = []
    kept: dict[int, torch.Tensor] = {}
    for size in sizes:
        features: list[torch.Tensor] = []
        predicted, labels = predict(model, images, head, size, cpu, features=features)
        paths.append((_EvalPath(size), predicted))
        kept[size] = features[0]
    for kept_at, features in kept.items():
        for size in sizes:
            paths.append((_EvalPath(size, features, kept_at),
                          predict_from_features(model, features, head, size, cpu)))

    reference, expected = paths[0]
    for path, got in paths[1:]:
        if not torch.equal(got, expected):
            raise AssertionError(_batch_dependence(label, model, images, labels, reference,
                                                   expected, path, got))
    return expected


def check_strategy(strategy: str | StrategyPlugin, may_change: Sequence[str],
                   params: dict[str, Any] | None = None, *, ignore: Iterable[str] = (),
                   model_factory: Callable[[], CLIPClassifier] = proxy_classifier,
                   resume: bool = True, **kwargs: Any) -> set[str]:
    """clbench's strategy check: two sessions through the training loop (`train_sessions`,
    whose keyword arguments apply), then

    - every tensor that changed (or was added) matches one of the regular expressions of
      `may_change` (full match over `state_key` names; `[]` means nothing may change),
    - every expression of `may_change` matches at least one tensor that changed,
    - the plan on a weightless copy of the architecture works (`check_weightless_configure`),
    - the saved state loads strictly into a fresh classifier with the same outputs
      (`check_save_load`),
    - a run crashed after its first session and resumed from its checkpoint ends bit for bit
      where this one did, and the plugin declares how it resumes (`check_resume`, with two
      sessions or more; skip it with `resume=False` only to look at the other checks first).

    `ignore` lists expressions of tensors left out of the comparison (e.g. a buffer of stored
    features). Raises AssertionError naming the strategy; returns the changed keys."""
    label = _label(strategy)
    allowed = [re.compile(p) for p in may_change]
    check_weightless_configure(strategy, params)
    sessions = kwargs.get("sessions")
    resume = resume and (sessions is None or len(sessions) > 1)
    trained = train_sessions(strategy, params, model_factory=model_factory,
                             checkpoint_after=1 if resume else None, **kwargs)
    changed = trained.changed(ignore)
    outside = sorted(k for k in changed if not any(p.fullmatch(k) for p in allowed))
    if outside:
        raise AssertionError(f"{label} changed tensors its card keeps frozen: {outside[:5]}"
                             + (f" (and {len(outside) - 5} more)" if len(outside) > 5 else ""))
    for pattern in allowed:  # the card's trainable groups did train
        if not any(pattern.fullmatch(k) for k in changed):
            raise AssertionError(f"{label}: nothing matching {pattern.pattern!r} changed")
    check_save_load(trained, strategy, params, model_factory=model_factory)
    if resume:
        check_resume(strategy, params, after=1, trained=trained, model_factory=model_factory,
                     **kwargs)
    return changed
