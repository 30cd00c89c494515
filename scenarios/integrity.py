"""The file index of a prepared dataset (`manifest.json` beside the images) and integrity checks.

Names: a *manifest* is a YAML declaration in `data_manifests/` (`manifests.py`); the JSON file
that `clbench data prepare NAME` writes into the dataset's folder is the *file index*
(`PreparedIndex`, `write_index`, `read_index`). The file keeps its name `manifest.json`, so data
prepared by earlier versions keeps working, and stored runs keep recording its sha256 as
`data.datasets.<name>.prepared_manifest_sha256`.

The index lists every image with its split, class and sha256, plus counts per split and class.
It is written deterministically (sorted keys and files, no timestamps, no absolute paths: every
path and every error text in it is relative to the dataset folder or the source folder), so
preparing the same source twice gives the same bytes, and its own sha256 identifies the exact
data a run used (stored with every run). `clbench data check NAME` and every run verify the
files against it; a dataset without one is checked by decoding each image instead.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from clbench.hashing import file_sha256

INDEX_NAME = "manifest.json"  # the file index (historical file name, kept)
FORMAT = 1


@dataclass(frozen=True)
class FileRecord:
    path: str  # relative to the dataset folder, POSIX separators
    split: str
    label: str  # the class as the dataset's files name it (caption, GTSRB label, wnid)
    sha256: str
    group: str | None = None  # the source class, where several map to one label (TSI action)
    source: str | None = None  # what it was made from (a clip file name)
    frame: int | None = None  # TSI: index of the chosen frame in the clip


@dataclass
class Problems:
    missing: list[str] = field(default_factory=list)
    corrupt: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.missing or self.corrupt)

    def all(self) -> list[str]:
        return sorted(self.missing + self.corrupt)

    def summary(self, limit: int = 10) -> str:
        parts = []
        for kind, files in (("missing", self.missing), ("corrupt", self.corrupt)):
            if files:
                shown = ", ".join(files[:limit]) + (" ..." if len(files) > limit else "")
                parts.append(f"{len(files)} {kind}: {shown}")
        return "; ".join(parts)


def decodes(path: Path, thorough: bool = True) -> bool:
    """True if the image is usable.

    `thorough` decodes every pixel (what `clbench data check` does). The quick form, used when a
    run starts on data without a file index (decoding 50,000 ImageNet images would take minutes),
    reads the header and checks that a JPEG or PNG ends with its end marker, which catches the
    usual damage, a truncated copy; other formats are small enough to decode fully.
    """
    from PIL import Image

    try:
        with Image.open(path) as image:
            fmt = image.format
            if thorough or fmt not in ("JPEG", "PNG"):
                image.load()
                return True
        with open(path, "rb") as handle:
            handle.seek(0, 2)
            handle.seek(max(0, handle.tell() - 32))
            tail = handle.read()
        return b"\xff\xd9" in tail if fmt == "JPEG" else b"IEND" in tail[-12:]
    except Exception:  # noqa: BLE001 - any decoder error means the file is unusable
        return False


def counts(records: list[FileRecord]) -> dict[str, dict[str, int]]:
    per_split: dict[str, Counter] = {}
    for r in records:
        per_split.setdefault(r.split, Counter())[r.label] += 1
    return {split: dict(sorted(c.items())) for split, c in sorted(per_split.items())}


def write_index(folder: Path, dataset: str, records: list[FileRecord],
                info: dict[str, Any] | None = None) -> Path:
    """Write the file index `folder/manifest.json`; byte-identical for identical inputs."""
    records = sorted(records, key=lambda r: r.path)
    body = {
        "dataset": dataset,
        "format": FORMAT,
        "counts": counts(records),
        "totals": {s: sum(c.values()) for s, c in counts(records).items()},
        "files": [{k: v for k, v in asdict(r).items() if v is not None} for r in records],
        "info": info or {},
    }
    path = folder / INDEX_NAME
    path.write_text(json.dumps(body, indent=1, sort_keys=True, ensure_ascii=False) + "\n",
                    encoding="utf-8")
    return path


@dataclass
class PreparedIndex:
    """A dataset's file index as read back."""

    dataset: str
    records: list[FileRecord]
    counts: dict[str, dict[str, int]]
    info: dict[str, Any]
    sha256: str  # of the index file itself: what a stored run records


def read_index(folder: Path) -> PreparedIndex | None:
    """The file index in `folder`, or None when it has none."""
    path = folder / INDEX_NAME
    if not path.is_file():
        return None
    from clbench.errors import UserError

    try:
        body = json.loads(path.read_text(encoding="utf-8"))
        records = [FileRecord(**f) for f in body["files"]]
    except (ValueError, KeyError, TypeError) as err:
        raise UserError(f"{path} is not a clbench file index ({type(err).__name__})",
                        hint="re-create it with `clbench data prepare`") from None
    return PreparedIndex(body.get("dataset", ""), records, body.get("counts", {}),
                         body.get("info", {}), file_sha256(path))


def verify_records(folder: Path, records: list[FileRecord]) -> Problems:
    """Every listed file is present and has its recorded sha256."""
    problems = Problems()
    for r in records:
        path = folder / r.path
        if not path.is_file():
            problems.missing.append(r.path)
        elif file_sha256(path) != r.sha256:
            problems.corrupt.append(r.path)
    return problems


def verify_decodable(folder: Path, paths: list[Path], thorough: bool = True) -> Problems:
    """Without a file index: every file must exist and decode (see `decodes`)."""
    problems = Problems()
    for path in paths:
        rel = path.relative_to(folder).as_posix() if path.is_relative_to(folder) else str(path)
        if not path.is_file():
            problems.missing.append(rel)
        elif not decodes(path, thorough):
            problems.corrupt.append(rel)
    return problems
