"""Model loading: open_clip architectures by pretrained tag or checkpoint path, and the proxy.

Users with weights run the paper's backbones (`--model ViT-L-14 --pretrained openai`, or
`EVA01-g-14` with `laion400m_s11b_b41k`, or `--checkpoint PATH`); everything that must run
offline uses the embedded proxy CLIP (`proxy-vit-tiny`), pretrained by clbench's own script.
Every bundle carries one `transform` that accepts either a PIL image (files on disk) or a float
tensor in [0, 1] (the procedurally rendered proxy data), so any model runs on any scenario.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from clbench.backbones import PROXY_ALIASES, PROXY_ARCH
from clbench.config import ModelConfig
from clbench.errors import UserError
from clbench.hashing import file_sha256
from clbench.names import unknown_name_message


@dataclass
class ModelBundle:
    clip: nn.Module
    tokenizer: Callable[[list[str]], torch.Tensor]
    transform: Callable[[Any], torch.Tensor]
    arch: str
    pretrained: str | None
    checkpoint_sha256: str | None
    image_size: int


def make_transform(image_size: int, mean: tuple[float, ...], std: tuple[float, ...],
                   pil_preprocess: Callable | None = None) -> Callable[[Any], torch.Tensor]:
    """Tensor in [0, 1] -> resized and normalised; PIL image -> the model's own preprocess."""
    mean_t = torch.tensor(mean).view(3, 1, 1)
    std_t = torch.tensor(std).view(3, 1, 1)

    def transform(item: Any) -> torch.Tensor:
        if isinstance(item, torch.Tensor):
            x = item.float()
            if x.shape[-1] != image_size or x.shape[-2] != image_size:
                x = torch.nn.functional.interpolate(
                    x.unsqueeze(0), size=(image_size, image_size), mode="bilinear",
                    align_corners=False, antialias=True).squeeze(0)
            return (x - mean_t) / std_t
        if pil_preprocess is not None:
            return pil_preprocess(item)
        from torchvision.transforms.functional import pil_to_tensor

        return transform(pil_to_tensor(item.resize((image_size, image_size))).float() / 255.0)

    return transform


def load_model(config: ModelConfig) -> ModelBundle:
    if config.arch in PROXY_ALIASES:
        return _load_proxy(config)
    return _load_open_clip(config)


def _load_proxy(config: ModelConfig) -> ModelBundle:
    from clbench.scenarios.proxy.model import IMAGE_MEAN, IMAGE_STD, load_proxy_clip

    if config.pretrained:
        raise UserError(f"the proxy model has no pretrained tags (got '{config.pretrained}')",
                        hint="leave --pretrained unset, or pass --checkpoint PATH")
    if config.checkpoint and not Path(config.checkpoint).is_file():
        raise UserError(f"checkpoint not found: {config.checkpoint}")
    try:
        clip, tokenizer, sha = load_proxy_clip(config.checkpoint)
    except FileNotFoundError as err:
        raise UserError(str(err), hint="run `clbench proxy pretrain` to rebuild it") from None
    size = _image_size(clip)
    return ModelBundle(clip, tokenizer, make_transform(size, IMAGE_MEAN, IMAGE_STD), PROXY_ARCH,
                       None, sha, size)


def _image_size(clip: nn.Module) -> int:
    size = getattr(clip.visual, "image_size", 224)
    return int(size[0] if isinstance(size, (tuple, list)) else size)


def _load_open_clip(config: ModelConfig) -> ModelBundle:
    import open_clip

    known = open_clip.list_models()
    if config.arch not in known:
        raise UserError(unknown_name_message("model", config.arch, [*known, PROXY_ARCH]),
                        hint="`clbench list models` shows the paper's backbones")
    pretrained, sha = None, None
    if config.checkpoint:
        if not Path(config.checkpoint).is_file():
            raise UserError(f"checkpoint not found: {config.checkpoint}")
        pretrained, sha = config.checkpoint, file_sha256(config.checkpoint)
    elif config.pretrained:
        tags = open_clip.list_pretrained_tags_by_model(config.arch)
        if config.pretrained not in tags:
            raise UserError(unknown_name_message(f"pretrained tag for {config.arch}",
                                                 config.pretrained, tags))
        pretrained = config.pretrained
    try:
        clip, _, preprocess = open_clip.create_model_and_transforms(config.arch,
                                                                    pretrained=pretrained)
    except RuntimeError as err:
        if "download" in str(err).lower():
            raise UserError(
                f"could not download the '{config.pretrained}' weights of {config.arch}",
                hint="run once with network access (they are cached by huggingface_hub), or "
                     "pass --checkpoint PATH to a local file") from None
        raise
    tokenizer = open_clip.get_tokenizer(config.arch)
    cfg = getattr(clip.visual, "preprocess_cfg", None) or {}
    mean = tuple(cfg.get("mean", open_clip.OPENAI_DATASET_MEAN))
    std = tuple(cfg.get("std", open_clip.OPENAI_DATASET_STD))
    size = _image_size(clip)
    clip.eval()
    return ModelBundle(clip, tokenizer, make_transform(size, mean, std, preprocess), config.arch,
                       None if config.checkpoint else config.pretrained, sha, size)
