"""The training loop of a session: FLYP loss, a per-session optimizer, AMP, guards.

`SessionTrainer` is an Avalanche `SupervisedTemplate` subclass that follows the training protocol
of the LoRSU paper (appendix B): Adam, cosine schedule with warm-up stepped per batch, a fresh
optimizer each session built over exactly the tensors the strategy left trainable (Avalanche's
own `make_optimizer` would take every parameter). A NaN or infinite loss at any step stops the
run with an error at that epoch's end instead of training on garbage (the loss is summed on the
device and read once per epoch, so no step waits for the device). With nothing trainable
(zero-shot) the session is skipped.

Strategies read a few of its attributes (Avalanche's `model`, `device`, `train_mb_size`,
`adapted_dataset`, plus `training`, `template_generator`, `use_amp`, `amp_dtype`) and enter its
`autocast()` context to score parameters exactly as training computes the loss.

Avalanche plugins added to the strategy (`extra_plugins`: EWC, LwF, replay, SI, MAS, ...) run
right after it, so they see the trainable set it chose, and get what Avalanche's own template
gives them: `mb_x`, `mb_y`, `mb_output` (during training too, the logits over the target's
classes; without added plugins it is left as the image features the loss needs, which is
cheaper), `loss` (the term each one adds is measured and stored per session as a fact),
`_criterion` (cross-entropy on the logits: the classifier's likelihood, which EWC's importances
use), `optimizer`, `experience`, `clock`, and experiences whose samples are all in task 0 (LwF
and the replay buffers read task labels; `in_one_task`). A penalty on named parameters (EWC,
SI, MAS) is refused when the strategy replaced the tensors it trains between sessions (merged
adapters), and a plugin whose whole effect is its loss term stops the run when it added exactly
nothing in a session after the first: either would store the strategy alone under the plugin's
name.
"""

from __future__ import annotations

import math
import resource
import time
from typing import Any

import torch
from avalanche.training.templates import SupervisedTemplate

from clbench.config.run_config import TrainingConfig
from clbench.errors import TrainingDiverged, UserError
from clbench.schedules import warmup_cosine
from clbench.strategies.base import StrategyPlugin, effective_training
from clbench.training.extra_plugins import acts_through_loss, regularises_parameters


def peak_memory_mb(device: torch.device) -> float:
    """This process's peak memory so far (MB): allocated on CUDA; on the CPU its own resident
    peak (Linux: VmHWM), not `getrusage`'s ru_maxrss, which a process started by another
    inherits from it (Linux keeps the maximum across fork and exec): a run started by a large
    parent (a sweep, a benchmark) would report the parent's peak."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:  # no /proc (macOS): ru_maxrss, in bytes there
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def in_one_task(benchmark):
    """`benchmark` with every sample labelled task 0 (a class-incremental stream is one task),
    as Avalanche's own benchmarks label theirs: plugins read `targets_task_labels` and
    `task_set` of an experience's dataset (LwF's record of the classes seen, the replay
    buffers). clbench's loop itself ignores task labels, so runs without added plugins keep
    the unlabelled datasets."""
    # _make_taskaware_classification_dataset: what Avalanche's own benchmark generators label
    # tasks with (exported by its module)
    from avalanche.benchmarks.scenarios.dataset_scenario import benchmark_from_datasets
    from avalanche.benchmarks.scenarios.supervised import with_classes_timeline
    from avalanche.benchmarks.utils.classification_dataset import (
        _make_taskaware_classification_dataset,
    )

    def labelled(stream):
        return [_make_taskaware_classification_dataset(e.dataset, task_labels=0) for e in stream]

    return with_classes_timeline(benchmark_from_datasets(
        train=labelled(benchmark.train_stream), test=labelled(benchmark.test_stream)))


class SessionTrainer(SupervisedTemplate):
    """Avalanche's `SupervisedTemplate` (subclassed) running one clbench session per `train()`."""

    # strategies need not refresh the optimizer: it is built per session after they configure
    builds_optimizer_after_plugins = True

    def __init__(self, *, model, training: TrainingConfig, device: torch.device, seed: int,
                 plugins=None, evaluator=None, extra_plugins=()):
        placeholder = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.0)
        # added Avalanche plugins go right after the strategy (which chooses what trains when
        # a session starts) and before clbench's progress bar and evaluator
        ordered = list(plugins or [])
        after = max((i + 1 for i, p in enumerate(ordered) if isinstance(p, StrategyPlugin)),
                    default=0)
        ordered[after:after] = list(extra_plugins)
        super().__init__(model=model, optimizer=placeholder, criterion=torch.nn.CrossEntropyLoss(),
                         train_mb_size=training.batch_size, train_epochs=training.epochs,
                         eval_mb_size=training.eval_batch_size, device=device, plugins=ordered,
                         evaluator=evaluator)
        self.extra_plugins = list(extra_plugins)
        # per added plugin: the sum of what it added to the loss this session, and the batches
        self._plugin_terms: dict[str, torch.Tensor] = {}
        self._plugin_batches = 0
        self.plugin_facts: dict[str, dict[str, float]] = {}
        # the tensors that trained in the previous session (kept only for a parameter penalty)
        self._trained_before: list[torch.nn.Parameter] | None = None
        self.training = effective_training(training, plugins or [])
        # draws the prompt template of each image's caption for the FLYP loss
        self.template_generator = torch.Generator().manual_seed(seed)
        self.scheduler = None
        self.scaler = None
        self.mb_features = None
        self.session_record: dict[str, Any] = {}
        self._session_start = 0.0
        # the epoch's summed loss, kept on the device: read once per epoch (see `criterion`)
        self._epoch_loss_sum: torch.Tensor | None = None
        self._epoch_steps = 0
        self._last_epoch_loss: float | None = None
        self.use_amp = device.type == "cuda" and training.precision != "fp32"
        self.amp_dtype = torch.bfloat16 if training.precision == "bf16" else torch.float16

    # ---------------------------------------------------------------- optimizer per session
    def check_model_and_optimizer(self, **kwargs):
        """The optimizer is built after the strategy has chosen what trains (see below)."""

    def make_optimizer(self, **kwargs):
        params = [p for p in self.model.parameters() if p.requires_grad]
        if not params:
            self.optimizer, self.scheduler = None, None
            return
        t = self.training
        params = self._param_groups(params)
        if t.optimizer == "adam":
            self.optimizer = torch.optim.Adam(params, lr=t.lr, weight_decay=t.weight_decay)
        elif t.optimizer == "adamw":
            self.optimizer = torch.optim.AdamW(params, lr=t.lr, weight_decay=t.weight_decay)
        else:
            self.optimizer = torch.optim.SGD(params, lr=t.lr, momentum=0.9,
                                             weight_decay=t.weight_decay)
        total = max(1, self.train_epochs * len(self.dataloader))
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, warmup_cosine(total, int(round(t.warmup * total)), t.scheduler == "cosine"))
        self.scaler = (torch.amp.GradScaler("cuda") if self.use_amp
                       and self.amp_dtype == torch.float16 else None)

    def _param_groups(self, params: list[torch.nn.Parameter]) -> list[dict]:
        """The strategies' own groups (trainable tensors only), the rest in the default group."""
        special = [{**g, "params": [p for p in g["params"] if p.requires_grad]}
                   for plugin in self.plugins if isinstance(plugin, StrategyPlugin)
                   for g in plugin.optimizer_groups()]
        special = [g for g in special if g["params"]]
        taken = {id(p) for g in special for p in g["params"]}
        rest = [p for p in params if id(p) not in taken]
        return ([{"params": rest}] if rest else []) + special

    def _before_training_exp(self, **kwargs):
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        self._session_start = time.perf_counter()
        # The text side is as the evaluation that closed the last session saw it (after
        # `_after_training_exp` invalidated everything): its fingerprint, which that evaluation
        # computed, stays valid for the strategy's selection pass (0.14 s of hashing a session
        # for ViT-B-16's text tower).
        self.model.clear_caption_table()
        super()._before_training_exp(**kwargs)  # the strategy plugin configures the model here
        self.model.invalidate_text_cache()  # the strategy may have changed the text side
        self._check_parameter_penalties()
        self._plugin_terms, self._plugin_batches = {}, 0
        self.make_optimizer()

    def _record_plugin_terms(self) -> None:
        """Each added plugin's mean loss term per batch this session (the session's facts);
        a plugin whose whole effect is its loss term (EWC, SI, MAS, LwF) and that added exactly
        nothing in a session after the first did nothing: the run stops rather than be stored
        as the combination."""
        batches = max(1, self._plugin_batches)
        self.plugin_facts = {}
        for plugin in self.extra_plugins:
            name = type(plugin).__name__
            total = float(self._plugin_terms.get(name, torch.zeros(())))
            self.plugin_facts[name] = {"loss_term": total / batches}
            if (total == 0.0 and self._plugin_batches and self.clock.train_exp_counter > 0
                    and acts_through_loss(plugin)):
                raise UserError(
                    f"{name} added nothing to the loss in session "
                    f"{self.clock.train_exp_counter + 1}, so the run would be the strategy "
                    "alone stored as its combination with the plugin",
                    hint=f"check {name}'s weight (--set plugin.KEY=VALUE): at 0, or too small "
                         "to change the loss, leave the plugin out")

    def _check_parameter_penalties(self) -> None:
        """Refuse a penalty on named parameters (EWC, SI, MAS) once the strategy has replaced
        the tensors that trained in the previous session (LoRA-style adapters merged into the
        weights and started afresh): its penalty would hold tensors that no longer train."""
        before, self._trained_before = self._trained_before, None
        if not before:
            return
        present = {id(p) for p in self.model.parameters()}
        gone = sum(1 for p in before if id(p) not in present)
        if not gone:
            return
        names = ", ".join(type(p).__name__ for p in self.extra_plugins
                          if regularises_parameters(p))
        strategy = ", ".join(type(p).__name__ for p in self.plugins
                             if isinstance(p, StrategyPlugin))
        raise UserError(
            f"{names} penalises parameters by name, but the strategy ({strategy}) replaced "
            f"{gone} of the {len(before)} tensors it trained in the previous session (merged "
            "adapters), so the penalty would not reach what trains now",
            hint="combine it with a strategy that keeps training the same tensors (fft, ln, "
                 "lora, spu, llu), or use a plugin that acts on outputs or data (avalanche:"
                 "LwFPlugin, avalanche:ReplayPlugin)")

    def _after_training_exp(self, **kwargs):
        trainable = sum(p.numel() for p in self.model.parameters() if p.requires_grad) - sum(
            p.frozen_entries() for p in self.plugins if isinstance(p, StrategyPlugin))
        self.session_record = {
            "train_time_s": time.perf_counter() - self._session_start,
            "peak_memory_mb": peak_memory_mb(self.device),
            "final_loss": self._last_epoch_loss,
            "trainable_params": trainable,
        }
        if self.extra_plugins:
            self._record_plugin_terms()
        if any(regularises_parameters(p) for p in self.extra_plugins):
            self._trained_before = [p for p in self.model.parameters() if p.requires_grad]
        self.model.invalidate_text_cache()  # evaluation must see this session's text side
        super()._after_training_exp(**kwargs)

    # ---------------------------------------------------------------- the batch loop
    def training_epoch(self, **kwargs):
        self._epoch_loss_sum, self._epoch_steps, self._last_epoch_loss = None, 0, None
        if self.optimizer is None:  # nothing trainable: zero-shot
            return
        super().training_epoch(**kwargs)
        self._last_epoch_loss = self._epoch_mean_loss()

    def _epoch_mean_loss(self) -> float | None:
        """The epoch's mean loss; a loss that was not finite at any step stops the run."""
        if not self._epoch_steps:
            return None
        mean = self._epoch_loss_sum.item() / self._epoch_steps
        if not math.isfinite(mean):
            exp = self.experience.current_experience + 1 if self.experience is not None else "?"
            raise TrainingDiverged(
                f"the loss became {mean} in session {exp}, epoch "
                f"{self.clock.train_exp_epochs + 1}",
                hint=f"lower the learning rate (now training.lr={self.training.lr:g}) or set "
                     "training.grad_clip")
        return mean

    def autocast(self) -> torch.autocast:
        """The mixed-precision context of the forward pass and the loss (disabled in fp32 and
        on CPU); strategies scoring parameters enter it to compute the loss as training does."""
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype,
                              enabled=self.use_amp)

    def forward(self):
        with self.autocast():
            if self.is_training:
                self.mb_features = self.model.encode_image(self.mb_x)
                if self.extra_plugins:  # Avalanche plugins read the logits (LwF distils them)
                    return self.model.logits(self.mb_features)
                return self.mb_features
            return self.model(self.mb_x)

    def criterion(self):
        if not self.is_training:
            return torch.nn.functional.cross_entropy(self.mb_output, self.mb_y)
        with self.autocast():
            if self.training.loss == "ce":
                loss = self.model.ce_loss(self.mb_features, self.mb_y)
            else:
                templates = self.model.random_templates(len(self.mb_y), self.template_generator)
                loss = self.model.flyp_loss(self.mb_features, self.mb_y, templates)
        # Summed on the device, not read: reading a step's loss (`.item()`, or `if` on a
        # tensor) makes the host wait for the device at every step, so a GPU idles while the
        # next batch is queued. A loss that is not finite at any step makes the sum so: the
        # epoch's end (`_epoch_mean_loss`) stops the run then, before the session is kept.
        value = loss.detach().float()
        total = self._epoch_loss_sum
        self._epoch_loss_sum = value if total is None else total + value
        self._epoch_steps += 1
        return loss

    def _before_backward(self, **kwargs):
        """The plugins' `before_backward`, where penalties join the loss; what each added
        plugin adds is summed for the session's facts, and a term that is not finite stops
        the run naming the plugin."""
        if not self.extra_plugins:
            return super()._before_backward(**kwargs)
        added = {id(p) for p in self.extra_plugins}
        for plugin in self.plugins:
            if not hasattr(plugin, "before_backward"):
                continue
            if id(plugin) not in added:
                plugin.before_backward(self, **kwargs)
                continue
            name = type(plugin).__name__
            before = self.loss.detach().clone()
            plugin.before_backward(self, **kwargs)
            term = (self.loss.detach() - before).float()
            self._plugin_terms[name] = self._plugin_terms.get(name, 0) + term
            if not torch.isfinite(self.loss):
                exp = self.experience.current_experience + 1 if self.experience else "?"
                raise TrainingDiverged(
                    f"the loss became {self.loss.item()} after {name} added its term in session "
                    f"{exp}", hint=f"lower {name}'s weight (--set plugin.KEY=VALUE) or "
                                   f"training.lr (now {self.training.lr:g})")
        self._plugin_batches += 1

    def backward(self):
        if self.scaler is not None:
            self.scaler.scale(self.loss).backward()
        else:
            self.loss.backward()

    def optimizer_step(self):
        params = [p for group in self.optimizer.param_groups for p in group["params"]]
        if self.scaler is not None:
            self.scaler.unscale_(self.optimizer)
        if self.training.grad_clip:
            torch.nn.utils.clip_grad_norm_(params, self.training.grad_clip)
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        self.scheduler.step()
