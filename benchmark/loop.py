"""The training loop of a session: FLYP loss, a per-session optimizer, AMP, guards.

`SessionTrainer` is an Avalanche `SupervisedTemplate` subclass that follows the training protocol
of the LoRSU paper (appendix B): Adam, cosine schedule with warm-up stepped per batch, a fresh
optimizer each session built over exactly the tensors the strategy left trainable (Avalanche's
own `make_optimizer` would take every parameter). A NaN or infinite loss stops the run with an
error instead of training on garbage. With nothing trainable (zero-shot) the session is skipped.

Strategies read a few of its attributes (Avalanche's `model`, `device`, `train_mb_size`,
`adapted_dataset`, plus `training`, `template_generator`, `use_amp`, `amp_dtype`) and enter its
`autocast()` context to score parameters exactly as training computes the loss.
"""

from __future__ import annotations

import resource
import time
from typing import Any

import torch
from avalanche.training.templates import SupervisedTemplate

from clbench.config import TrainingConfig
from clbench.errors import TrainingDiverged
from clbench.schedules import warmup_cosine
from clbench.strategies.base import StrategyPlugin, effective_training


def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    # ru_maxrss is in KiB on Linux: the process's peak resident memory so far
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class SessionTrainer(SupervisedTemplate):
    """Avalanche's `SupervisedTemplate` (subclassed) running one clbench session per `train()`."""

    # strategies need not refresh the optimizer: it is built per session after they configure
    builds_optimizer_after_plugins = True

    def __init__(self, *, model, training: TrainingConfig, device: torch.device, seed: int,
                 plugins=None, evaluator=None):
        placeholder = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.0)
        super().__init__(model=model, optimizer=placeholder, criterion=torch.nn.CrossEntropyLoss(),
                         train_mb_size=training.batch_size, train_epochs=training.epochs,
                         eval_mb_size=training.eval_batch_size, device=device, plugins=plugins,
                         evaluator=evaluator)
        self.training = effective_training(training, plugins or [])
        # draws the prompt template of each image's caption for the FLYP loss
        self.template_generator = torch.Generator().manual_seed(seed)
        self.scheduler = None
        self.scaler = None
        self.mb_features = None
        self.session_record: dict[str, Any] = {}
        self._session_start = 0.0
        self._epoch_losses: list[float] = []
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
        self.model.invalidate_text_cache()
        super()._before_training_exp(**kwargs)  # the strategy plugin configures the model here
        self.model.invalidate_text_cache()  # the strategy may have changed the text side
        self.make_optimizer()

    def _after_training_exp(self, **kwargs):
        trainable = sum(p.numel() for p in self.model.parameters() if p.requires_grad) - sum(
            p.frozen_entries() for p in self.plugins if isinstance(p, StrategyPlugin))
        self.session_record = {
            "train_time_s": time.perf_counter() - self._session_start,
            "peak_memory_mb": peak_memory_mb(self.device),
            "final_loss": (sum(self._epoch_losses) / len(self._epoch_losses)
                           if self._epoch_losses else None),
            "trainable_params": trainable,
        }
        self.model.invalidate_text_cache()  # evaluation must see this session's text side
        super()._after_training_exp(**kwargs)

    # ---------------------------------------------------------------- the batch loop
    def training_epoch(self, **kwargs):
        self._epoch_losses = []
        if self.optimizer is None:  # nothing trainable: zero-shot
            return
        super().training_epoch(**kwargs)

    def autocast(self) -> torch.autocast:
        """The mixed-precision context of the forward pass and the loss (disabled in fp32 and
        on CPU); strategies scoring parameters enter it to compute the loss as training does."""
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype,
                              enabled=self.use_amp)

    def forward(self):
        with self.autocast():
            if self.is_training:
                self.mb_features = self.model.encode_image(self.mb_x)
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
        if not torch.isfinite(loss):
            exp = self.experience.current_experience + 1 if self.experience is not None else "?"
            raise TrainingDiverged(
                f"the loss became {loss.item()} in session {exp}, epoch "
                f"{self.clock.train_exp_epochs + 1}",
                hint=f"lower the learning rate (now training.lr={self.training.lr:g}) or set "
                     "training.grad_clip")
        self._epoch_losses.append(loss.item())
        return loss

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
