"""Tiny open_clip models and data shared by the strategy tests (native and timm-trunk towers)."""

from __future__ import annotations

import open_clip
import torch
from open_clip.model import CLIPTextCfg, CLIPVisionCfg
from timm.models.vision_transformer import VisionTransformer
from torch import nn

from clbench.classifier import CLIPClassifier

WIDTH, HEADS, DH = 64, 4, 16
_TEXT = dict(context_length=16, vocab_size=100, width=32, heads=4, layers=1)


def tiny_clip() -> nn.Module:
    """Native open_clip ViT: 2 blocks of width 64, 4 heads of 16; frozen."""
    torch.manual_seed(0)
    clip = open_clip.CLIP(
        embed_dim=32,
        vision_cfg=CLIPVisionCfg(layers=2, width=WIDTH, head_width=DH, patch_size=8,
                                 image_size=32),
        text_cfg=CLIPTextCfg(**_TEXT))
    return clip.requires_grad_(False)


def tiny_timm_clip() -> nn.Module:
    """open_clip's TimmModel with a 2-block timm ViT trunk (width 192, 3 heads of 64); frozen."""
    torch.manual_seed(0)
    clip = open_clip.CLIP(
        embed_dim=32,
        vision_cfg=CLIPVisionCfg(timm_model_name="vit_tiny_patch16_224",
                                 timm_model_pretrained=False, timm_pool="token",
                                 timm_proj="linear", image_size=224),
        text_cfg=CLIPTextCfg(**_TEXT))
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
    def __init__(self, n: int, seed: int):
        self.x = torch.randn(n, 3, 32, 32, generator=torch.Generator().manual_seed(seed))
        self.targets = [i % 2 for i in range(n)]

    def __len__(self):
        return len(self.targets)

    def __getitem__(self, i):
        return self.x[i], self.targets[i]


def classifier(clip: nn.Module) -> CLIPClassifier:
    model = CLIPClassifier(clip, tokenize)
    model.register_head("toy", ["cat", "dog"], ["a photo of a {}.", "a {}.", "my {}"])
    return model
