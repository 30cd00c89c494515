"""clbench.models: CLIP models as open_clip architectures, with clbench's own among them.

`load_model(ModelConfig)` gives a `ModelBundle` (model, tokenizer, transform, provenance) for any
open_clip architecture or the embedded proxy `proxy-vit-tiny`, whose architecture is an open_clip
model config (`model_configs/`), registered with open_clip on first use.
"""

from clbench.models.configs import PROXY_CHECKPOINT, register_model_configs
from clbench.models.loading import (
    CheckpointNotFound,
    ModelBundle,
    build_clip,
    load_clip,
    load_model,
    make_transform,
    model_transform,
    tokenizer_for,
)
from clbench.models.meta import build_on_meta
from clbench.models.tokenizer import ProxyTokenizer, WordTokenizer

__all__ = [
    "PROXY_CHECKPOINT", "CheckpointNotFound", "ModelBundle", "ProxyTokenizer", "WordTokenizer",
    "build_clip", "build_on_meta", "load_clip", "load_model", "make_transform", "model_transform",
    "register_model_configs", "tokenizer_for",
]
