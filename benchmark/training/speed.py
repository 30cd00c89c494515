"""Speed switches: how a run computes, never what it computes (`TrainingConfig`).

* `grad_checkpointing`: activation checkpointing of the image tower's transformer blocks
  (open_clip's `visual.set_grad_checkpointing`; not `clip.set_grad_checkpointing`, which also
  checkpoints the text tower). The blocks' activations are recomputed in the backward pass
  (torch.utils.checkpoint, non-reentrant): the same loss and gradients for every strategy, since
  strategies change weights (parametrizations, masked gradients, requires-grad flags), never
  activations, and the recomputation reads the same weights.
* `channels_last`: the image tower's 4-D weights (the patch embedding) and its input batches in
  channels-last memory format (a forward pre-hook on the tower: evaluation batches too).
* `compile`: `torch.compile` of the image tower in place (`nn.Module.compile`, default mode: the
  state dict keeps its names, a deep copy runs eagerly). Compilation happens at the first
  batches; a failure stops the run with a `CompileFailed` naming `training.compile`, and on the
  CPU a missing C++ compiler is reported before the run starts.
* `sdpa`: nn.MultiheadAttention's inference fast path (no gradients, eval mode) computes
  attention with unfused matmuls and softmax on the CPU; with the switch the image tower runs
  with it turned off (only while it runs), so evaluation uses
  `F.scaled_dot_product_attention` as training always does.
* `workers`: DataLoader workers of the training sessions (`loader_options`, the keyword
  arguments Avalanche's `train` hands to its DataLoader), and of evaluation while it decodes
  images (`SessionEvaluation.loader_options`: an eval set not in the image cache). Batches are
  the same: the sampler draws in the main process, and workers are started per epoch as the
  main process's iterator is, so the global RNG advances as with none.

`apply_speed_switches` sets the model-side switches once the classifier is on its device,
before any strategy patches it (the runner calls it in `prepare`).
"""

from __future__ import annotations

import os
from typing import Any

import torch
from torch import nn

from clbench.errors import ConfigError, UserError

__all__ = ["CompileFailed", "apply_speed_switches", "loader_options", "workers_for"]

# the backend of `training.compile` (torch.compile's default); tests use a cheaper one
COMPILE_BACKEND: Any = "inductor"


class CompileFailed(UserError):
    """torch.compile could not compile the image tower (raised at its first batches)."""


def workers_for(training, device: torch.device) -> int:
    """`training.workers`, or when unset 0 on the CPU (workers would take the cores the model
    computes on) and min(4, CPU count) on CUDA."""
    if training.workers is not None:
        return training.workers
    return min(4, os.cpu_count() or 1) if device.type == "cuda" else 0


def loader_options(training, device: torch.device) -> dict[str, Any]:
    """The DataLoader keyword arguments of a training session, for `SessionTrainer.train`."""
    return {"num_workers": workers_for(training, device), "pin_memory": device.type == "cuda"}


def apply_speed_switches(classifier: nn.Module, training, device: torch.device) -> list[str]:
    """Set the model-side speed switches of `training` on `classifier` (a CLIPClassifier on
    `device`); returns the names of those set. ConfigError when a switch cannot apply."""
    visual = classifier.clip.visual
    applied = []
    if training.grad_checkpointing:
        _checkpoint_blocks(visual)
        applied.append("grad_checkpointing")
    if training.channels_last:
        visual.to(memory_format=torch.channels_last)
        visual.register_forward_pre_hook(_channels_last_input)
        applied.append("channels_last")
    if training.sdpa:
        _fused_attention(visual)
        applied.append("sdpa")
    if training.compile:
        _compile(visual, device)
        applied.append("compile")
    return applied


def _checkpoint_blocks(visual: nn.Module) -> None:
    setter = getattr(visual, "set_grad_checkpointing", None)
    if callable(setter):
        setter(True)
    # open_clip's VisionTransformer flags its `transformer`, a timm tower its `trunk`
    holder = getattr(visual, "transformer", None)
    if holder is None:
        holder = getattr(visual, "trunk", None)
    if not getattr(holder, "grad_checkpointing", False):
        raise ConfigError(f"training.grad_checkpointing: the image tower "
                          f"({type(visual).__name__}) has no activation checkpointing",
                          hint="leave training.grad_checkpointing off for this model")


def _channels_last_input(module: nn.Module, args: tuple) -> tuple | None:
    if args and isinstance(args[0], torch.Tensor) and args[0].dim() == 4:
        return (args[0].contiguous(memory_format=torch.channels_last), *args[1:])
    return None


def _fused_attention(visual: nn.Module) -> None:
    """nn.MultiheadAttention's fast path off while `visual` runs (the flag is process-wide:
    it is put back after every call, an exception included)."""
    saved: list[bool] = []

    def before(module, args):
        if not torch.compiler.is_compiling():
            saved.append(torch.backends.mha.get_fastpath_enabled())
            torch.backends.mha.set_fastpath_enabled(False)

    def after(module, args, output):
        if saved:
            torch.backends.mha.set_fastpath_enabled(saved.pop())

    visual.register_forward_pre_hook(before)
    visual.register_forward_hook(after, always_call=True)


def _compile(visual: nn.Module, device: torch.device) -> None:
    from torch._dynamo.eval_frame import is_dynamo_supported

    if not is_dynamo_supported():
        raise ConfigError("training.compile: torch.compile is not supported with this Python "
                          "and PyTorch", hint="leave training.compile off")
    if COMPILE_BACKEND == "inductor" and device.type == "cpu":
        _require_cpp_compiler()
    visual.compile(backend=COMPILE_BACKEND)
    compiled = visual._compiled_call_impl  # what nn.Module.compile set: wrap its failures

    def call(*args, **kwargs):
        try:
            return compiled(*args, **kwargs)
        except Exception as err:
            if not _from_compiler(err):
                raise
            inner = getattr(err, "inner_exception", None) or err
            first = (str(inner).strip().splitlines() or [""])[0][:300]
            raise CompileFailed(
                f"training.compile: torch.compile of the image encoder failed "
                f"({type(inner).__name__}: {first})",
                hint="run without it (training.compile=false); TORCH_LOGS=+dynamo shows "
                     "torch's details") from err

    visual._compiled_call_impl = call


def _from_compiler(err: BaseException) -> bool:
    """A failure of torch.compile itself, not one of the traced code (TorchRuntimeError: the
    forward would fail eagerly as well, e.g. images of the wrong size; raised as it is)."""
    from torch._dynamo.exc import TorchDynamoException, TorchRuntimeError

    if isinstance(err, TorchRuntimeError):
        return False
    module = type(err).__module__ or ""
    return isinstance(err, TorchDynamoException) or module.startswith(
        ("torch._dynamo", "torch._inductor"))


def _require_cpp_compiler() -> None:
    """Inductor on the CPU compiles C++: say so before the run starts when no compiler is found
    (the check is torch's own; skipped where torch's internals differ)."""
    try:
        from torch._inductor.cpp_builder import get_cpp_compiler
        from torch._inductor.exc import InvalidCxxCompiler
    except ImportError:
        return
    try:
        get_cpp_compiler()
    except InvalidCxxCompiler:
        raise ConfigError("training.compile: torch.compile on the CPU needs a C++ compiler and "
                          "none was found", hint="install g++ (or point $CXX at one), or leave "
                          "training.compile off") from None
