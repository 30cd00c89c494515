"""Content hashes: of JSON-like objects (config hashes) and of files (checkpoints, datasets).

One home for both, so a run's config hash, a checkpoint's sha256 and a prepared dataset's file
checksums are computed the same way wherever they are read or written. Pure standard library.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

__all__ = ["canonical_hash", "file_sha256"]


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
