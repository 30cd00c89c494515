"""Tiny open_clip models, data and training helpers shared by the strategy tests.

`tiny_clip` (native open_clip ViT) and `tiny_timm_clip` (timm trunk) build frozen towers small
enough for CPU; `classifier` puts one under a zero-shot head; `TinyImages` is a seeded random
image set; `train_stream` and `trainer` run sessions through clbench's own training loop;
`snapshot` copies a state dict for bit-identity checks.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import open_clip
import torch
from avalanche.benchmarks.scenarios.dataset_scenario import benchmark_from_datasets
from avalanche.benchmarks.utils.utils import as_classification_dataset
from avalanche.training.plugins import EvaluationPlugin
from open_clip.model import CLIPTextCfg, CLIPVisionCfg
from timm.models.vision_transformer import VisionTransformer
from torch import nn

from clbench.classifier import CLIPClassifier
from clbench.config import TrainingConfig
from clbench.loop import SessionTrainer

WIDTH, HEADS, DH = 64, 4, 16


def text_cfg(layers: int = 1) -> CLIPTextCfg:
    """The tiny text tower: width 32, 4 heads, context 16 over a 100-token vocabulary."""
    return CLIPTextCfg(context_length=16, vocab_size=100, width=32, heads=4, layers=layers)


def tiny_clip(layers: int = 2, text_layers: int = 1) -> nn.Module:
    """Native open_clip ViT: `layers` blocks of width 64, 4 heads of 16; frozen."""
    torch.manual_seed(0)
    clip = open_clip.CLIP(
        embed_dim=32,
        vision_cfg=CLIPVisionCfg(layers=layers, width=WIDTH, head_width=DH, patch_size=8,
                                 image_size=32),
        text_cfg=text_cfg(text_layers))
    return clip.requires_grad_(False)


def tiny_timm_clip() -> nn.Module:
    """open_clip's TimmModel with a 2-block timm ViT trunk (width 192, 3 heads of 64); frozen."""
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
