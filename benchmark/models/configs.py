"""clbench's own architectures as open_clip model configs, and the data files that go with them.

`model_configs/` holds open_clip model configs (the same keys as open_clip's own
`model_configs/*.json`), registered with `open_clip.add_model_config`, so that
`open_clip.create_model("proxy-vit-tiny")` builds the proxy CLIP like any architecture. Beside a
config, `<arch>.preprocess.json` holds the image statistics (open_clip `PreprocessCfg` keys,
applied as `force_preprocess_cfg`) and `<arch>.vocab.json` the word list of a word-level
tokenizer (instead of CLIP's BPE). `checkpoints/` holds the default weights of these
architectures with their provenance (`<arch>.json`, written by the pretraining).
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterator
from pathlib import Path

from clbench.backbones import PROXY_ALIASES, PROXY_ARCH

CONFIG_DIR = Path(__file__).with_name("model_configs")
CHECKPOINT_DIR = Path(__file__).with_name("checkpoints")

PROXY_CHECKPOINT = CHECKPOINT_DIR / f"{PROXY_ARCH}.pt"
# Architecture -> (default checkpoint, the command that rebuilds it).
DEFAULT_CHECKPOINTS: dict[str, tuple[Path, str]] = {
    PROXY_ARCH: (PROXY_CHECKPOINT, "clbench proxy pretrain"),
}

_registered = False


def register_model_configs(rescan: bool = False) -> None:
    """Make open_clip know clbench's architectures (idempotent; `rescan` after editing a file)."""
    global _registered
    if _registered and not rescan:
        return
    import open_clip

    open_clip.add_model_config(CONFIG_DIR)
    _registered = True


def canonical_arch(arch: str) -> str:
    return PROXY_ARCH if arch in PROXY_ALIASES else arch


def config_path(arch: str) -> Path:
    return CONFIG_DIR / f"{arch}.json"


def vocabulary_path(arch: str) -> Path:
    return CONFIG_DIR / f"{arch}.vocab.json"


def preprocess_cfg(arch: str) -> dict:
    """open_clip preprocessing overrides (mean, std, ...) of one of clbench's architectures."""
    path = CONFIG_DIR / f"{arch}.preprocess.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def read_vocabulary(arch: str) -> list[str] | None:
    path = vocabulary_path(arch)
    return json.loads(path.read_text()) if path.is_file() else None


def write_vocabulary(arch: str, words: list[str]) -> bool:
    """Store a word-level tokenizer's vocabulary and size the text tower's embedding to it.

    Token ids: 0 pad, 1 start, 2 unknown, then the words, then end-of-text (the highest id, where
    the text tower pools). Returns True when a file changed (an older checkpoint no longer fits).
    """
    if read_vocabulary(arch) == list(words):
        return False
    cfg = json.loads(config_path(arch).read_text())
    cfg["text_cfg"].update(vocab_size=len(words) + 4, pad_id=0, eos_id=len(words) + 3)
    config_path(arch).write_text(json.dumps(cfg, indent=4) + "\n")
    vocabulary_path(arch).write_text(json.dumps(list(words), indent=0) + "\n")
    register_model_configs(rescan=True)
    return True


@contextlib.contextmanager
def quiet_open_clip() -> Iterator[None]:
    """Silence open_clip's "no pretrained weights loaded" warning: weights are loaded after."""
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        yield
    finally:
        logging.disable(previous)
