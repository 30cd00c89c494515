"""LoRA / DoRA / gated low-rank updates as weight parametrizations.

`nn.MultiheadAttention` reads `in_proj_weight` and `out_proj.weight` directly instead of calling
its Linear modules, so adapters cannot replace modules there. Instead each adapted tensor gets one
`torch.nn.utils.parametrize` parametrization, `WeightAdapters`, that maps the frozen W to the
effective weight: every adapter owns a row block (q, k, v of a fused in-projection, or a whole
Linear weight) and rewrites only those rows. The same code then serves open_clip's fused
in-projection, `out_proj`, `c_fc`, `c_proj` and timm's Linears.

* LoRA (Hu et al. 2021): W' = W + (alpha/r) B A; A (r x in) Kaiming-uniform(a=sqrt 5) and B zero,
  as HF peft initialises them, so W' = W at init.
* DoRA (Liu et al. 2024): W' = m (W + dW) / ||W + dW|| with the norm per output row, m
  initialised to ||W|| row-wise; the norm is detached from the graph (DoRA section 4.3, and what
  peft's `DoraLinearLayer` does).
* Gate (the Selective Low Rank Adaptation paper, eqs. 2-3, after TAPS): a scalar score s per
  adapter, W' = W + I_tau(s) (adapted(W) - W) with I_tau(s) = [s >= tau] in the forward pass and
  the identity in the backward pass (straight-through estimator). A closed gate gives W exactly.

Merging (`merge_adapters`) is `parametrize.remove_parametrizations(leave_parametrized=True)`:
the effective weight is written into the original Parameter, which stays the same object.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn.utils import parametrize


class LowRankDelta(nn.Module):
    """One LoRA or DoRA adapter on rows `rows` of a weight, optionally gated by a score."""

    def __init__(self, weight_rows: torch.Tensor, rows: slice, rank: int, alpha: float, *,
                 dora: bool = False, gate: tuple[float, float] | None = None):
        super().__init__()
        out_features, in_features = weight_rows.shape
        self.rows = rows
        self.rank, self.scaling, self.dora = rank, alpha / rank, dora
        kwargs = {"device": weight_rows.device, "dtype": weight_rows.dtype}
        self.lora_A = nn.Parameter(torch.empty(rank, in_features, **kwargs))
        self.lora_B = nn.Parameter(torch.zeros(out_features, rank, **kwargs))
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))
        if dora:
            self.magnitude = nn.Parameter(torch.linalg.norm(weight_rows.detach(), dim=1))
        self.tau = None
        if gate is not None:
            self.tau, score_init = gate
            self.score = nn.Parameter(torch.tensor(float(score_init), **kwargs))

    @property
    def gated(self) -> bool:
        return self.tau is not None

    @property
    def active(self) -> bool:
        return not self.gated or bool(self.score.detach() >= self.tau)

    def delta(self) -> torch.Tensor:
        return self.scaling * (self.lora_B @ self.lora_A)

    def gate(self) -> torch.Tensor:
        """I_tau(s) forward, identity backward: [s >= tau] + s - s.detach() (exactly 0 or 1)."""
        hard = (self.score >= self.tau).to(self.score.dtype)
        return hard + (self.score - self.score.detach())

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        if not self.dora:
            delta = self.delta()
            return weight + (self.gate() * delta if self.gated else delta)
        adapted = weight + self.delta()
        # the norm is a constant for the gradient (DoRA 4.3; peft detaches it as well)
        norm = torch.linalg.norm(adapted, dim=1, keepdim=True).detach()
        adapted = (self.magnitude.unsqueeze(1) / norm) * adapted
        return weight + self.gate() * (adapted - weight) if self.gated else adapted


class WeightAdapters(nn.Module):
    """The parametrization of one tensor: adapters on disjoint row blocks, by target name."""

    def __init__(self, adapters: dict[str, LowRankDelta]):
        super().__init__()
        self.adapters = nn.ModuleDict(adapters)
        spans = sorted((a.rows.start, a.rows.stop) for a in self.adapters.values())
        if any(prev[1] > nxt[0] for prev, nxt in zip(spans, spans[1:])):
            raise ValueError(f"adapter row blocks overlap: {spans}")

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        pieces, start = [], 0
        for adapter in sorted(self.adapters.values(), key=lambda a: a.rows.start):
            if adapter.rows.start > start:
                pieces.append(weight[start:adapter.rows.start])
            pieces.append(adapter(weight[adapter.rows]))
            start = adapter.rows.stop
        if start < weight.shape[0]:
            pieces.append(weight[start:])
        return pieces[0] if len(pieces) == 1 else torch.cat(pieces)


def attach(owner: nn.Module, attr: str, adapters: dict[str, LowRankDelta]) -> WeightAdapters:
    """Parametrize `owner.<attr>` with the adapters (the effective weight equals W at init)."""
    if parametrize.is_parametrized(owner, attr):
        raise ValueError(f"{type(owner).__name__}.{attr} is already parametrized (adapters from "
                         "another strategy?); merge_adapters() first")
    module = WeightAdapters(adapters)
    parametrize.register_parametrization(owner, attr, module)
    return module


def _adapted_tensors(model: nn.Module) -> list[tuple[nn.Module, str]]:
    found = []
    for module in model.modules():
        if not parametrize.is_parametrized(module):
            continue
        for attr, plist in module.parametrizations.items():
            ours = [isinstance(p, WeightAdapters) for p in plist]
            if any(ours) and not all(ours):
                raise ValueError(f"{type(module).__name__}.{attr} mixes clbench adapters with "
                                 "other parametrizations; refusing to merge it")
            if any(ours):
                found.append((module, attr))
    return found


def merge_adapters(model: nn.Module) -> int:
    """Write every adapter into its weight and remove it, leaving a plain model.

    Returns the number of tensors merged. The original Parameter objects are kept (their data is
    replaced), so optimizers and `requires_grad` flags still refer to the right tensors.
    """
    tensors = _adapted_tensors(model)
    for module, attr in tensors:
        parametrize.remove_parametrizations(module, attr, leave_parametrized=True)
    return len(tensors)


def adapters_of(model: nn.Module) -> list[LowRankDelta]:
    return [m for m in model.modules() if isinstance(m, LowRankDelta)]


def adapter_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The adapter tensors only (factors, magnitudes, scores), keyed as in `model.state_dict()`.

    Loading: attach the same adapters to a fresh model, then `load_state_dict(state,
    strict=False)`.
    """
    names = {id(p) for m in model.modules() if isinstance(m, WeightAdapters)
             for p in m.parameters()}
    return {k: v.detach().clone() for k, v in model.state_dict(keep_vars=True).items()
            if id(v) in names}
