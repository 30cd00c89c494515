"""One view of a transformer block, whatever tower or library built it.

Strategies address the same pieces of every block: the q, k, v projections (usually row blocks of
one fused in-projection), the attention output projection Wo, the MLP's fc1 and fc2, the two
LayerNorms, the head count and head width. `blocks(clip, tower)` finds them in

* open_clip's native towers (`clip.visual.transformer.resblocks`, `clip.transformer.resblocks` or
  `clip.text.transformer.resblocks`): `attn` is `nn.MultiheadAttention` or open_clip's own
  `Attention`, both with a fused `in_proj_weight` (3D x D, rows [q; k; v]) and `out_proj`; the MLP
  is `mlp.c_fc` then `mlp.c_proj`; norms `ln_1`, `ln_2`;
* timm trunks (open_clip `TimmModel`, `clip.visual.trunk.blocks`): ViT `Attention` and EVA
  `EvaAttention` with a fused `attn.qkv` Linear (same [q; k; v] layout; EVA keeps separate
  `q_bias`/`v_bias` and a zero `k_bias` buffer) or separate `q_proj`/`k_proj`/`v_proj` (EVA02);
  `attn.proj` is Wo; the MLP is `fc1`/`fc2` (`Mlp`, `GluMlp`) or `fc1_g` + `fc1_x` then `fc2`
  (`SwiGLU`); norms `norm1`, `norm2`.

Each addressable weight is a `Slot`: the module holding the tensor, the attribute name (for
`torch.nn.utils.parametrize`) and the row block it covers.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from clbench.errors import ConfigError
from clbench.strategies.config_base import QKV, TARGETS  # noqa: F401 - TARGETS: re-exported


class UnsupportedArchitecture(ConfigError):
    """The model's blocks are not of a kind clbench knows how to address."""


@dataclass(frozen=True, eq=False)
class Slot:
    """A row block `rows` of the weight `owner.<attr>` (the whole weight when rows covers it)."""

    owner: nn.Module
    attr: str
    rows: slice

    @property
    def tensor(self) -> torch.Tensor:
        return getattr(self.owner, self.attr)

    @property
    def out_features(self) -> int:
        return self.rows.stop - self.rows.start

    @property
    def in_features(self) -> int:
        return self.tensor.shape[1]


@dataclass(eq=False)
class BlockView:
    index: int
    block: nn.Module
    num_heads: int
    head_dim: int
    out_proj: nn.Linear
    fc1: nn.Linear
    fc2: nn.Linear
    norms: list[nn.Module]
    qkv_owner: nn.Module | None  # holder of the fused q/k/v weight; None for separate q/k/v
    qkv_attr: str | None
    slots: dict[str, list[Slot]] = field(default_factory=dict)  # target name -> weight slots

    @property
    def qkv_weight(self) -> torch.Tensor | None:
        return getattr(self.qkv_owner, self.qkv_attr) if self.qkv_owner is not None else None

    @property
    def qkv_bias(self) -> torch.Tensor | None:
        attn = self.block.attn
        if hasattr(attn, "in_proj_weight"):
            return attn.in_proj_bias
        if getattr(attn, "q_bias", None) is not None:  # EVA: k has a zero buffer, no parameter
            return torch.cat((attn.q_bias, attn.k_bias, attn.v_bias))
        if getattr(attn, "qkv", None) is not None:
            return attn.qkv.bias
        return None


def head_rows(view: BlockView, part: str, head: int) -> slice:
    """Rows of head `head` of q, k or v in the tensor of `view.slots[part][0]`.

    For a fused in-projection that is the fused (3D x D) weight: q's head h at h*Dh, k's at
    D + h*Dh, v's at 2D + h*Dh.
    """
    if part not in QKV:
        raise ValueError(f"part must be one of {QKV}, got {part!r}")
    if not 0 <= head < view.num_heads:
        raise ValueError(f"head {head} out of range [0, {view.num_heads - 1}]")
    start = view.slots[part][0].rows.start + head * view.head_dim
    return slice(start, start + view.head_dim)


def _whole(linear: nn.Linear) -> Slot:
    return Slot(linear, "weight", slice(0, linear.weight.shape[0]))


def _native_view(index: int, block: nn.Module) -> BlockView:
    attn = block.attn
    heads = attn.num_heads
    attn_dim = attn.in_proj_weight.shape[0] // 3
    slots = {part: [Slot(attn, "in_proj_weight", slice(i * attn_dim, (i + 1) * attn_dim))]
             for i, part in enumerate(QKV)}
    slots.update(out_proj=[_whole(attn.out_proj)], fc1=[_whole(block.mlp.c_fc)],
                 fc2=[_whole(block.mlp.c_proj)])
    return BlockView(index, block, heads, attn_dim // heads, attn.out_proj, block.mlp.c_fc,
                     block.mlp.c_proj, [block.ln_1, block.ln_2], attn, "in_proj_weight", slots)


def _timm_view(index: int, block: nn.Module) -> BlockView:
    attn, mlp = block.attn, block.mlp
    heads = attn.num_heads
    head_dim = getattr(attn, "head_dim", None)
    if getattr(attn, "qkv", None) is not None:
        attn_dim = attn.qkv.weight.shape[0] // 3
        slots = {part: [Slot(attn.qkv, "weight", slice(i * attn_dim, (i + 1) * attn_dim))]
                 for i, part in enumerate(QKV)}
        owner, attr = attn.qkv, "weight"
    elif all(getattr(attn, f"{p}_proj", None) is not None for p in QKV):
        attn_dim = attn.q_proj.weight.shape[0]
        slots = {p: [_whole(getattr(attn, f"{p}_proj"))] for p in QKV}
        owner, attr = None, None
    else:
        raise UnsupportedArchitecture(f"block {index}: attention {type(attn).__name__} has neither "
                                      "a fused qkv nor q_proj/k_proj/v_proj")
    if getattr(mlp, "fc1", None) is not None:
        fc1s = [mlp.fc1]
    elif getattr(mlp, "fc1_g", None) is not None:  # SwiGLU: two input projections
        fc1s = [mlp.fc1_g, mlp.fc1_x]
    else:
        raise UnsupportedArchitecture(f"block {index}: MLP {type(mlp).__name__} has no fc1")
    slots["out_proj"] = [_whole(attn.proj)]
    slots["fc1"] = [_whole(f) for f in fc1s]
    slots["fc2"] = [_whole(mlp.fc2)]
    return BlockView(index, block, heads, head_dim or attn_dim // heads, attn.proj, fc1s[0],
                     mlp.fc2, [block.norm1, block.norm2], owner, attr, slots)


def view_blocks(module_list: nn.ModuleList | list[nn.Module]) -> list[BlockView]:
    """Views of a list of blocks (`resblocks` of an open_clip transformer or timm `blocks`)."""
    views = []
    for i, block in enumerate(module_list):
        attn = getattr(block, "attn", None)
        if attn is not None and hasattr(attn, "in_proj_weight") and hasattr(block, "mlp") \
                and hasattr(block.mlp, "c_fc"):
            views.append(_native_view(i, block))
        elif attn is not None and hasattr(attn, "proj") and hasattr(block, "norm1"):
            views.append(_timm_view(i, block))
        else:
            raise UnsupportedArchitecture(
                f"block {i} ({type(block).__name__}) is neither an open_clip residual attention "
                "block nor a timm ViT/EVA block")
    return views


def blocks(clip: nn.Module, tower: str = "vision") -> list[BlockView]:
    """The transformer blocks of the vision or text tower of an open_clip model."""
    if tower == "vision":
        visual = clip.visual
        if hasattr(visual, "transformer"):
            return view_blocks(visual.transformer.resblocks)
        trunk = getattr(visual, "trunk", None)
        if trunk is not None and hasattr(trunk, "blocks"):
            return view_blocks(trunk.blocks)
        raise UnsupportedArchitecture(
            f"vision tower {type(visual).__name__} has no transformer blocks clbench can address "
            "(supported: open_clip VisionTransformer, timm ViT/EVA trunks)")
    if tower == "text":
        text = getattr(clip, "text", clip)  # CustomTextCLIP keeps the text tower in `.text`
        transformer = getattr(text, "transformer", None)
        if transformer is not None and hasattr(transformer, "resblocks"):
            return view_blocks(transformer.resblocks)
        raise UnsupportedArchitecture(
            f"text tower of {type(clip).__name__} has no open_clip transformer blocks "
            "(Hugging Face text towers are not supported)")
    raise ValueError(f"tower must be 'vision' or 'text', got {tower!r}")


def tower_blocks(clip: nn.Module, towers: str) -> list[tuple[str, BlockView]]:
    """(tower name, view) for every block of the tuned towers (`vision` or `both`)."""
    names = ["vision"] + (["text"] if towers == "both" else [])
    return [(name, view) for name in names for view in blocks(clip, name)]


def image_projection(clip: nn.Module, key: str) -> tuple[nn.Module, str]:
    """The image tower's output projection as (owner, attribute): open_clip's `visual.proj`, a
    timm tower's `head.proj`, or (EVA-CLIP) the trunk's own head, re-sized by open_clip to the
    embedding width. `key` names the option that needs it, for the error."""
    from torch.nn.utils import parametrize

    visual = clip.visual
    if isinstance(getattr(visual, "proj", None), nn.Parameter) or \
            parametrize.is_parametrized(visual, "proj"):
        return visual, "proj"
    for linear in (getattr(getattr(visual, "head", None), "proj", None),
                   getattr(getattr(visual, "trunk", None), "head", None)):
        if isinstance(linear, nn.Linear):
            return linear, "weight"
    raise ConfigError(f"{key}: the image tower has no projection")
