"""Model loading: any open_clip architecture by pretrained tag or checkpoint path.

Users with weights run the paper's backbones (`--model ViT-L-14 --pretrained openai`, or
`EVA01-g-14` with `laion400m_s11b_b41k`, or `--checkpoint PATH`); everything that must run
offline uses the embedded proxy CLIP (`proxy-vit-tiny`), an open_clip model config of clbench's
own (`model_configs/`) whose default checkpoint is committed (`checkpoints/`).
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

from clbench.backbones import PROXY_ARCH
from clbench.config.run_config import ModelConfig
from clbench.errors import UserError
from clbench.hashing import file_sha256
from clbench.models.configs import (
    DEFAULT_CHECKPOINTS,
    canonical_arch,
    preprocess_cfg,
    quiet_open_clip,
    register_model_configs,
)
from clbench.models.tokenizer import WordTokenizer
from clbench.names import unknown_name_message

Tokenizer = Callable[[list[str]], torch.Tensor]


@dataclass
class ModelBundle:
    clip: nn.Module
    tokenizer: Tokenizer
    transform: Callable[[Any], torch.Tensor]
    arch: str
    pretrained: str | None
    checkpoint_sha256: str | None
    image_size: int


class CheckpointNotFound(UserError, FileNotFoundError):
    """A checkpoint path that is not a file (a UserError for the CLI, a FileNotFoundError too)."""


def make_transform(image_size: int, mean: tuple[float, ...], std: tuple[float, ...],
                   pil_preprocess: Callable | None = None) -> Callable[[Any], torch.Tensor]:
    """Tensor in [0, 1] (one image or a batch) -> resized and normalised; PIL image -> the model's
    own preprocess.

    A PIL image goes through two stages that the transform also exposes, so that an image cache
    can store what lies between them (`clbench.training.image_cache`): `pil_geometry` (decode, resize,
    crop: a uint8 [3, H, W] tensor) and `finish` (to float in [0, 1], normalise). The PIL path is
    `finish(pil_geometry(image))` itself, so a cached image gives bit-identical input. Both are
    None when the model's preprocess cannot be split there (no ToTensor step)."""
    mean_t = torch.tensor(mean).view(3, 1, 1)
    std_t = torch.tensor(std).view(3, 1, 1)

    def transform(item: Any) -> torch.Tensor:
        if isinstance(item, torch.Tensor):
            x = item.float()
            if x.shape[-1] != image_size or x.shape[-2] != image_size:
                batch = x if x.ndim == 4 else x.unsqueeze(0)
                batch = torch.nn.functional.interpolate(
                    batch, size=(image_size, image_size), mode="bilinear",
                    align_corners=False, antialias=True)
                x = batch if x.ndim == 4 else batch.squeeze(0)
            return (x - mean_t.to(x.device)) / std_t.to(x.device)
        if transform.pil_geometry is not None:
            return transform.finish(transform.pil_geometry(item))
        return pil_preprocess(item)

    transform.pil_geometry, transform.finish = _pil_stages(image_size, pil_preprocess, transform)
    # what the preprocessing is, in words that stay the same across processes (a cache key)
    transform.description = (f"tensor: bilinear antialiased resize to {image_size}, mean "
                             f"{tuple(mean)}, std {tuple(std)}; PIL: {pil_preprocess!r}")
    return transform


def _pil_stages(image_size: int, pil_preprocess: Callable | None, on_tensor: Callable):
    """(PIL -> uint8 [3, H, W], uint8 [3, H, W] -> model input), split at the preprocess's
    ToTensor step (which divides uint8 values by 255 in the default float dtype); (None, None)
    when it has none."""
    from torchvision.transforms import Compose, ToTensor
    from torchvision.transforms.functional import pil_to_tensor

    def as_uint8(image) -> torch.Tensor:
        if image.mode != "RGB":
            raise ValueError(f"the preprocess gave a {image.mode} image, not RGB")
        return pil_to_tensor(image)

    def to_unit(pixels: torch.Tensor) -> torch.Tensor:
        return pixels.to(torch.get_default_dtype()).div(255)

    if pil_preprocess is None:  # no preprocess of the model's own: resize, then as a tensor
        return (lambda image: as_uint8(image.resize((image_size, image_size))),
                lambda pixels: on_tensor(to_unit(pixels)))
    steps = list(getattr(pil_preprocess, "transforms", ()))
    at = next((i for i, step in enumerate(steps) if isinstance(step, ToTensor)), None)
    if at is None:
        return None, None
    before, after = Compose(steps[:at]), Compose(steps[at + 1:])
    return (lambda image: as_uint8(before(image)),
            lambda pixels: after(to_unit(pixels)))


def model_transform(clip: nn.Module) -> Callable[[Any], torch.Tensor]:
    """The transform of a model built by open_clip, from its `visual.preprocess_cfg`."""
    import open_clip
    from open_clip.transform import PreprocessCfg, image_transform_v2

    cfg = dict(getattr(clip.visual, "preprocess_cfg", None) or {})
    mean = tuple(cfg.get("mean", open_clip.OPENAI_DATASET_MEAN))
    std = tuple(cfg.get("std", open_clip.OPENAI_DATASET_STD))
    pil_preprocess = image_transform_v2(PreprocessCfg(**cfg), is_train=False) if cfg else None
    return make_transform(image_size(clip), mean, std, pil_preprocess)


def image_size(clip: nn.Module) -> int:
    size = getattr(clip.visual, "image_size", 224)
    return int(size[0] if isinstance(size, (tuple, list)) else size)


def _known_arch(arch: str) -> str:
    import open_clip

    register_model_configs()
    arch = canonical_arch(arch)
    known = open_clip.list_models()
    if arch not in known:
        raise UserError(unknown_name_message("model", arch, known),
                        hint="`clbench list models` shows the paper's backbones")
    return arch


def build_clip(arch: str = PROXY_ARCH, device: str | torch.device = "cpu") -> nn.Module:
    """A randomly initialised CLIP of `arch` (from the global torch RNG): open_clip's
    `create_model`, with clbench's architectures registered and their preprocessing applied."""
    import open_clip

    arch = _known_arch(arch)
    with quiet_open_clip():
        return open_clip.create_model(arch, pretrained=None, device=device,
                                      force_preprocess_cfg=preprocess_cfg(arch) or None)


def tokenizer_for(arch: str) -> Tokenizer:
    import open_clip

    arch = _known_arch(arch)
    return WordTokenizer.for_arch(arch) or open_clip.get_tokenizer(arch)


def load_clip(checkpoint: str | Path | None = None,
              arch: str = PROXY_ARCH) -> tuple[nn.Module, Tokenizer, str | None]:
    """`arch` (float32, eval mode) with the weights of `checkpoint` (default: the architecture's
    committed checkpoint, if it has one, else random weights), its tokenizer, the file's sha256."""
    arch = _known_arch(arch)
    default, rebuild = DEFAULT_CHECKPOINTS.get(arch, (None, None))
    path = Path(checkpoint) if checkpoint is not None else default
    if path is not None and not path.is_file():
        what = "is a directory, not a checkpoint file" if path.is_dir() else "not found"
        if checkpoint is None:  # the committed checkpoint is missing from this install
            raise CheckpointNotFound(f"the {arch} checkpoint {what}: {path}",
                                     hint=f"run `{rebuild}` to create it")
        raise CheckpointNotFound(f"checkpoint {what}: {path}",
                                 hint="pass --checkpoint PATH to a checkpoint file" + (
                                     f", leave it out for the committed one, or write one with "
                                     f"`{rebuild} --out PATH`" if rebuild else ""))
    with torch.random.fork_rng(devices=[]):  # the random init is overwritten; keep caller's RNG
        clip = build_clip(arch)
    sha = None
    if path is not None:
        load_weights(clip, path, arch)
        sha = file_sha256(path)
    return clip.float().eval(), tokenizer_for(arch), sha


def load_weights(clip: nn.Module, path: Path, arch: str) -> None:
    """Load a checkpoint strictly (open_clip's loader, `weights_only=True`); a file that does not
    load gives a one-line UserError, never torch's traceback."""
    import open_clip

    rebuild = DEFAULT_CHECKPOINTS.get(arch, (None, None))[1]
    hint = (f"pass a checkpoint written by `{rebuild}`, or leave --checkpoint unset for the "
            "committed one" if rebuild else
            f"pass a state dict of the open_clip architecture {arch} (.pt, .bin, .safetensors), "
            "or --pretrained TAG")
    try:
        open_clip.load_checkpoint(clip, str(path), strict=True, weights_only=True)
    except Exception as err:
        lines = str(err).strip().splitlines()
        if _raised_while_reading(err):
            reason = ("it cannot be read as a PyTorch state dict (corrupt, truncated, or another "
                      f"kind of file: {type(err).__name__})")
        elif lines and lines[0].startswith("Error(s) in loading state_dict") and len(lines) > 1:
            reason = f"its tensors do not match the architecture ({lines[1].strip()[:160]})"
        else:
            reason = f"its tensors do not match the architecture ({type(err).__name__})"
        raise UserError(f"{path} is not a loadable checkpoint for {arch}: {reason}",
                        hint=hint) from None


def _raised_while_reading(err: BaseException) -> bool:
    """True when open_clip failed reading the file (torch.load, safetensors), not fitting it."""
    tb = err.__traceback__
    while tb is not None:
        code = tb.tb_frame.f_code
        if code.co_name == "load_state_dict" and Path(code.co_filename).match("open_clip/*.py"):
            return True
        tb = tb.tb_next
    return False


def load_model(config: ModelConfig) -> ModelBundle:
    arch = _known_arch(config.arch)
    if config.checkpoint or not config.pretrained:
        clip, tokenizer, sha = load_clip(config.checkpoint, arch)
    else:
        clip, tokenizer, sha = _load_pretrained_tag(arch, config.pretrained), tokenizer_for(arch), None
    return ModelBundle(clip, tokenizer, model_transform(clip), arch,
                       None if config.checkpoint else config.pretrained, sha, image_size(clip))


def _load_pretrained_tag(arch: str, tag: str) -> nn.Module:
    import open_clip

    tags = open_clip.list_pretrained_tags_by_model(arch)
    if not tags:
        raise UserError(f"{arch} has no pretrained tags (got '{tag}')",
                        hint="leave --pretrained unset, or pass --checkpoint PATH")
    if tag not in tags:
        raise UserError(unknown_name_message(f"pretrained tag for {arch}", tag, tags),
                        hint="or pass --checkpoint PATH to local weights")
    try:
        clip = open_clip.create_model(arch, pretrained=tag)
    except RuntimeError as err:
        if "download" in str(err).lower():
            raise UserError(
                f"could not download the '{tag}' weights of {arch}",
                hint="run once with network access (they are cached by huggingface_hub), or "
                     "pass --checkpoint PATH to a local file") from None
        raise
    return clip.eval()
