"""The block adapter finds q/k/v/heads, Wo, fc1, fc2 and norms in native and timm towers."""

from __future__ import annotations

import copy

import open_clip
import pytest
import torch
from open_clip.model import CLIPVisionCfg
from timm.models.eva import Eva
from timm.models.vision_transformer import VisionTransformer
from tiny_models import HEADS, WIDTH, text_cfg, tiny_clip
from torch import nn

from clbench.strategies.blocks import (
    TARGETS,
    UnsupportedArchitecture,
    blocks,
    head_rows,
    view_blocks,
)


# Not tiny_models.tiny_timm_clip: this one keeps the real 12-block vit_tiny trunk or takes any.
def tiny_timm_clip(trunk: nn.Module | None = None) -> nn.Module:
    """A real open_clip TimmModel; optionally with a smaller timm trunk of the same width."""
    torch.manual_seed(0)
    clip = open_clip.CLIP(
        embed_dim=32,
        vision_cfg=CLIPVisionCfg(timm_model_name="vit_tiny_patch16_224",
                                 timm_model_pretrained=False, timm_pool="token",
                                 timm_proj="linear", image_size=224),
        text_cfg=text_cfg())
    if trunk is not None:
        clip.visual.trunk = trunk
    return clip


def tiny_eva(**kwargs) -> Eva:
    torch.manual_seed(0)
    return Eva(img_size=32, patch_size=8, embed_dim=WIDTH, depth=2, num_heads=HEADS,
               num_classes=0, **kwargs)


def tiny_vit() -> VisionTransformer:
    torch.manual_seed(0)
    return VisionTransformer(img_size=32, patch_size=8, embed_dim=WIDTH, depth=2,
                             num_heads=HEADS, num_classes=0)


def attention_heads_out(view, x: torch.Tensor) -> torch.Tensor:
    """The concatenated per-head attention outputs (Wo set to the identity on a copy)."""
    attn = copy.deepcopy(view.block.attn)
    proj = attn.out_proj if hasattr(attn, "out_proj") else attn.proj
    with torch.no_grad():
        proj.weight.copy_(torch.eye(proj.weight.shape[0]))
        proj.bias.zero_()
        if isinstance(attn, nn.MultiheadAttention):
            return attn(x, x, x, need_weights=False)[0]
        return attn(x)


def perturbed(view, part: str, head: int):
    """The view of a copy of the block whose `part` rows of head `head` are perturbed."""
    copied = view_blocks([copy.deepcopy(view.block)])[0]
    with torch.no_grad():
        copied.slots[part][0].tensor[head_rows(copied, part, head)] += 0.5
    return copied


def _views(kind: str):
    if kind == "native":
        return blocks(tiny_clip(text_layers=2), "vision")
    if kind == "timm-vit":
        return blocks(tiny_timm_clip(tiny_vit()), "vision")
    if kind == "timm-eva":
        return blocks(tiny_timm_clip(tiny_eva()), "vision")
    return blocks(tiny_timm_clip(tiny_eva(qkv_fused=False, swiglu_mlp=True, scale_mlp=True)),
                  "vision")


@pytest.mark.parametrize("kind", ["native", "timm-vit", "timm-eva", "timm-eva-separate"])
@pytest.mark.parametrize("part", ["q", "k", "v"])
def test_head_rows_address_exactly_one_head(kind, part):
    views = _views(kind)
    assert len(views) == 2
    view = views[0]
    assert (view.num_heads, view.head_dim) == (HEADS, WIDTH // HEADS)
    torch.manual_seed(1)
    x = torch.randn(2, 5, WIDTH)
    base = attention_heads_out(view, x)
    head = 2
    out = attention_heads_out(perturbed(view, part, head), x)
    dh = view.head_dim
    for h in range(view.num_heads):
        cols = slice(h * dh, (h + 1) * dh)
        if h == head:
            assert not torch.allclose(out[..., cols], base[..., cols], atol=1e-4)
        else:
            torch.testing.assert_close(out[..., cols], base[..., cols], rtol=0, atol=1e-6)


def test_native_view_points_into_fused_in_proj():
    clip = tiny_clip(text_layers=2)
    for tower, width in (("vision", WIDTH), ("text", 32)):
        for view in blocks(clip, tower):
            block = view.block
            assert view.qkv_weight is block.attn.in_proj_weight
            assert view.qkv_bias is block.attn.in_proj_bias
            assert [view.slots[p][0].rows for p in "qkv"] == [
                slice(0, width), slice(width, 2 * width), slice(2 * width, 3 * width)]
            assert view.out_proj is block.attn.out_proj
            assert (view.fc1, view.fc2) == (block.mlp.c_fc, block.mlp.c_proj)
            assert view.norms == [block.ln_1, block.ln_2]
            assert set(view.slots) == set(TARGETS)
            assert head_rows(view, "v", 1) == slice(2 * width + view.head_dim,
                                                    2 * width + 2 * view.head_dim)


def test_timm_views():
    vit = blocks(tiny_timm_clip(), "vision")  # the real vit_tiny trunk of a TimmModel
    assert len(vit) == 12 and vit[0].num_heads == 3 and vit[0].head_dim == 64
    assert vit[0].qkv_weight is vit[0].block.attn.qkv.weight
    assert vit[0].qkv_bias is vit[0].block.attn.qkv.bias
    assert vit[0].out_proj is vit[0].block.attn.proj

    eva = blocks(tiny_timm_clip(tiny_eva()), "vision")[0]
    attn = eva.block.attn
    assert eva.qkv_weight is attn.qkv.weight
    torch.testing.assert_close(eva.qkv_bias, torch.cat([attn.q_bias, torch.zeros(WIDTH),
                                                        attn.v_bias]))
    assert eva.norms == [eva.block.norm1, eva.block.norm2]

    sep = blocks(tiny_timm_clip(tiny_eva(qkv_fused=False, swiglu_mlp=True, scale_mlp=True)),
                 "vision")[0]
    assert sep.qkv_weight is None
    assert [s.owner for s in sep.slots["q"]] == [sep.block.attn.q_proj]
    assert [s.owner for s in sep.slots["fc1"]] == [sep.block.mlp.fc1_g, sep.block.mlp.fc1_x]
    assert head_rows(sep, "k", 3) == slice(48, 64)


def test_unsupported_architectures_raise_clearly():
    holder = nn.Module()
    holder.visual = nn.Linear(3, 3)
    with pytest.raises(UnsupportedArchitecture, match="no transformer blocks"):
        blocks(holder, "vision")
    with pytest.raises(UnsupportedArchitecture, match="neither an open_clip"):
        view_blocks([nn.Linear(3, 3)])
    with pytest.raises(ValueError, match="tower"):
        blocks(tiny_clip(text_layers=2), "audio")
