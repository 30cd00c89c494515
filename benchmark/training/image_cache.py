"""Eval images decoded and preprocessed once, kept as uint8 pixels in a memory-mapped file.

Every session evaluates every eval set again; for image files that means decoding each JPEG and
resizing it again, after every session of every run. The pixels between the model's geometric
preprocessing (decode, resize, crop: `transform.pil_geometry`) and its normalisation
(`transform.finish`) are uint8, so they are stored exactly, once per (data, preprocessing), in
the `images/` subfolder of the cache folder (`clbench.caches`: location, atomic writes, bound).
A cached image gives bit-identical model input, since the uncached path is
`finish(pil_geometry(image))` too.

The key is the sha256 of the dataset's identity (name, split, YAML hash, the sha256 of its file
index, the sample ids) and the preprocessing's description; only data with a file index
(`clbench data prepare`) is cached, since only then does the key vouch for the files' content.
The file holds a JSON header (key, shape, the sha256 of every block of `BLOCK` images) and the
pixels. Each block is checked the first time a process reads it; a corrupt block is reported,
decoded again from the source files and written back in place (in memory when the file cannot
be written).
"""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from clbench.caches import CacheArea, warn

MAGIC = b"CLBIMG01"
BLOCK = 256  # images per checksummed block
FORMAT = 1


def _blocks(count: int) -> int:
    return (count + BLOCK - 1) // BLOCK


def _header_room(count: int) -> int:
    """Bytes reserved for the magic, the header's length and the header (page-aligned)."""
    need = 1024 + 72 * _blocks(count)
    return (need + 4095) // 4096 * 4096


class CachedImages(Dataset):
    """(preprocessed image, label) pairs of a split read from a cache file (a drop-in for
    `ImageSplitDataset` over the whole split)."""

    def __init__(self, path: Path, header: dict, offset: int, data, transform):
        self.path = path
        self.data = data
        self.finish = transform.finish
        self.geometry = transform.pil_geometry
        self.shape = tuple(header["shape"])
        self.block_sha256 = header["blocks"]
        self.offset = offset
        self.pixels = np.memmap(path, dtype=np.uint8, mode="r", offset=offset,
                                shape=(header["count"], *self.shape))
        self.targets = data.targets.tolist()
        self.checked: set[int] = set()
        self.repaired: dict[int, np.ndarray] = {}  # blocks decoded again, when unwritable

    def __len__(self) -> int:
        return len(self.targets)

    def _check(self, block: int) -> None:
        self.checked.add(block)
        part = self.pixels[block * BLOCK:(block + 1) * BLOCK]
        if hashlib.sha256(part.data).hexdigest() == self.block_sha256[block]:
            return
        warn(f"the cached images {self.path} are corrupt (images {block * BLOCK}–"
             f"{block * BLOCK + len(part) - 1}): decoded again")
        fresh = np.stack([self.geometry(self.data.load(i)).numpy()
                          for i in range(block * BLOCK, block * BLOCK + len(part))])
        try:
            with open(self.path, "r+b") as handle:
                handle.seek(self.offset + block * BLOCK * fresh[0].nbytes)
                handle.write(fresh.tobytes())
        except OSError:
            self.repaired[block] = fresh

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        block = i // BLOCK
        if block not in self.checked:
            self._check(block)
        source = self.repaired[block][i % BLOCK] if block in self.repaired else self.pixels[i]
        return self.finish(torch.from_numpy(np.array(source))), self.targets[i]


class ImageCache:
    """The image cache of a run: which eval sets it read or built (for the run's record)."""

    def __init__(self, base: Path | None):
        self.area = CacheArea(base, "images")
        self.used: dict[str, str] = {}  # eval set -> "read" | "built"

    def key(self, data, dataset_hash: str | None, transform: Any) -> str | None:
        """The key of a split's preprocessed pixels, or None when they cannot be cached."""
        if (not self.area.enabled or not data.prepared_sha256
                or getattr(transform, "pil_geometry", None) is None):
            return None
        fields = {"format": FORMAT, "dataset": data.dataset, "split": data.split,
                  "dataset_hash": dataset_hash, "prepared_sha256": data.prepared_sha256,
                  "sample_ids": hashlib.sha256("\n".join(map(str, data.sample_ids))
                                               .encode()).hexdigest(),
                  "preprocessing": transform.description}
        return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()

    def dataset(self, name: str, data, transform, key: str | None) -> CachedImages | None:
        """The split from the cache, built now when absent; None when it cannot be cached."""
        if key is None:
            return None
        path = self.area.existing(f"{key}.u8")
        status = "read"
        opened = self._open(path, key, data, transform) if path is not None else None
        if opened is None:
            path, status = self._build(key, data, transform), "built"
            opened = self._open(path, key, data, transform) if path is not None else None
        if opened is not None:
            self.used[name] = status
        return opened

    def _open(self, path: Path, key: str, data, transform) -> CachedImages | None:
        try:
            with open(path, "rb") as handle:
                magic, length = struct.unpack("<8sQ", handle.read(16))
                header = json.loads(handle.read(length)) if magic == MAGIC else {}
            offset = _header_room(len(data))
            whole = (header.get("key") == key and header.get("count") == len(data)
                     and path.stat().st_size == offset + len(data) * int(np.prod(header["shape"])))
        except (OSError, ValueError, KeyError, struct.error):
            whole = False
        if not whole:
            self.area.discard(path, f"the cached images {path} are not a whole entry")
            return None
        return CachedImages(path, header, offset, data, transform)

    def _build(self, key: str, data, transform) -> Path | None:
        """Decode and preprocess every image of the split into a new entry (atomically)."""
        count = len(data)
        room = _header_room(count)
        blocks: list[str] = []
        shape: list[int] = []

        def write(handle) -> None:
            handle.write(b"\0" * room)
            for start in range(0, count, BLOCK):
                part = [transform.pil_geometry(data.load(i)).numpy()
                        for i in range(start, min(count, start + BLOCK))]
                if any(p.shape != part[0].shape for p in part) or (
                        shape and list(part[0].shape) != shape):
                    raise _Unsized
                shape[:] = list(part[0].shape)
                raw = np.stack(part).tobytes()
                blocks.append(hashlib.sha256(raw).hexdigest())
                handle.write(raw)
            header = json.dumps({"key": key, "count": count, "shape": shape,
                                 "block": BLOCK, "blocks": blocks}).encode()
            handle.seek(0)
            handle.write(struct.pack("<8sQ", MAGIC, len(header)) + header)

        try:
            return self.area.write(f"{key}.u8", write)
        except _Unsized:  # a preprocess without a fixed output size cannot fill one array
            return None


class _Unsized(Exception):
    """The preprocessed images of a split are not all the same size."""
