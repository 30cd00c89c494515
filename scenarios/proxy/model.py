"""The proxy CLIP: a tiny open_clip ``CLIP`` (native ViT + text transformer) for offline runs.

It keeps open_clip's module layout (``nn.MultiheadAttention`` with fused ``in_proj_weight``, MLP
``c_fc``/``c_proj``), which strategies such as LoRSU, SPU and LoRA address by name, at a size
that fine-tunes on two CPU cores in seconds. The committed checkpoint is produced by
``python -m clbench.scenarios.proxy.pretrain`` (see ``proxy_clip.json`` for its provenance).
"""

from __future__ import annotations

from pathlib import Path

import open_clip
import torch

from clbench.hashing import file_sha256
from clbench.scenarios.proxy.tokenizer import ProxyTokenizer
from clbench.scenarios.proxy.world import IMAGE_SIZE

PROXY_ARCH = "proxy-vit-tiny"
CHECKPOINT_PATH = Path(__file__).with_name("proxy_clip.pt")
# Per-channel statistics of clean pretraining renders (rounded), used like CLIP's OpenAI stats.
IMAGE_MEAN: tuple[float, float, float] = (0.47, 0.47, 0.47)
IMAGE_STD: tuple[float, float, float] = (0.34, 0.34, 0.34)

EMBED_DIM = 96
VISION_CFG = dict(layers=4, width=128, head_width=32, mlp_ratio=4.0, patch_size=8,
                  image_size=IMAGE_SIZE)
TEXT_CFG = dict(layers=3, width=96, heads=4, mlp_ratio=4.0, pool_type="argmax")


def build_proxy_clip(tokenizer: ProxyTokenizer | None = None) -> open_clip.CLIP:
    """A randomly initialised proxy CLIP (uses the global torch RNG for its initialisation)."""
    tok = tokenizer or ProxyTokenizer()
    text_cfg = dict(TEXT_CFG, context_length=tok.context_length, vocab_size=tok.vocab_size,
                    pad_id=tok.PAD, eos_id=tok.eot)
    return open_clip.CLIP(embed_dim=EMBED_DIM, vision_cfg=VISION_CFG, text_cfg=text_cfg)


def load_proxy_clip(
    checkpoint: str | Path | None = None,
) -> tuple[open_clip.CLIP, ProxyTokenizer, str]:
    """The pretrained proxy CLIP (float32, eval mode), its tokenizer and the checkpoint's sha256."""
    path = Path(checkpoint) if checkpoint is not None else CHECKPOINT_PATH
    if not path.is_file():
        raise FileNotFoundError(
            f"proxy CLIP checkpoint not found at {path}; run `clbench proxy pretrain` "
            "(or `python -m clbench.scenarios.proxy.pretrain`) to create it"
        )
    tok = ProxyTokenizer()
    with torch.random.fork_rng(devices=[]):  # the random init is overwritten; keep caller's RNG
        model = build_proxy_clip(tok)
    state = torch.load(path, map_location="cpu", weights_only=True)
    model.load_state_dict({k: v.float() for k, v in state.items()})
    return model.float().eval(), tok, file_sha256(path)
