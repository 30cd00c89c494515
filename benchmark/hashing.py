"""Content hashes: of JSON-like objects (config hashes), of files (checkpoints, datasets) and of
tensors (the weights a cached feature or text head was computed with).

One home for all, so a run's config hash, a checkpoint's sha256, a prepared dataset's file
checksums and a tower's weight fingerprint are computed the same way wherever they are read or
written. Standard library; `tensors_sha256` reads tensors (torch is imported by their caller).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

__all__ = ["canonical_hash", "file_sha256", "tensors_sha256"]


def canonical_hash(obj: Any) -> str:
    """A short, stable hash of a JSON-like object: equal configs hash equal whatever the key order.

    Used for every config hash in clbench, so that runs with the same settings can be grouped.
    """
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def file_sha256(path: str | Path) -> str:
    """The hex sha256 of a file's bytes, read in 1 MiB blocks (checkpoints can be GBs)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def tensors_sha256(named, extra: str = "") -> str:
    """The hex sha256 of named tensors: each name, dtype, shape and the bytes of its values (on
    any device, in any dtype), in the order given, after `extra`. Equal only for bit-identical
    tensors, which is what reusing anything computed from them needs."""
    import torch

    digest = hashlib.sha256(extra.encode())
    for name, tensor in named:
        flat = tensor.detach().contiguous().reshape(-1)
        digest.update(f"{name}|{flat.dtype}|{tuple(tensor.shape)};".encode())
        digest.update(flat.view(torch.uint8).cpu().numpy().data)
    return digest.hexdigest()
