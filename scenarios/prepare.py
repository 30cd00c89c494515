"""`clbench data prepare NAME`: turn a user's copy of a paper dataset into clbench's layout and
write its file index `manifest.json` (per-file sha256, counts per split and class; see
`integrity.py`). Which function prepares a dataset is decided by its kind (`loaders.py`).

* TSI from the Toyota Smarthome trimmed clips (LoRSU paper, appendix D; `tsi.py` defines the
  frame rule): one JPEG per clip, `<out>/<split>/<caption>/<clip name>.jpg`.
* DALL-E images of the 22 actions (appendix A.2): a `<caption>/<file>` folder, validated and
  copied unchanged to `<out>/test/<caption>/`.
* GTSRB through torchvision's `GTSRB` (which downloads where there is network): the files stay
  in torchvision's layout; only the file index is written.
* ImageNet validation images in `val/<wnid>/` folders, or any `folder` dataset already in place:
  only the file index is written.

The output folder is checked before anything is written: an existing file, a path under a file
or a folder that cannot be written is a one-line error and nothing is created. A source that is
rejected (unknown caption folders, undecodable images) also leaves the output untouched.

Outputs are byte-for-byte reproducible: inputs are processed in sorted order, JPEGs are encoded
with fixed settings from frames decoded single-threaded, and the index has no timestamps or
absolute paths (error texts of unreadable clips name them relative to the clip folder). (Across
machines this holds for the same PyAV/FFmpeg and Pillow builds, whose versions the index
records.)
"""

from __future__ import annotations

import os
import shutil
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from clbench.errors import UserError
from clbench.hashing import file_sha256
from clbench.names import closest
from clbench.scenarios import tsi
from clbench.scenarios.datasets import IMAGE_SUFFIXES, gtsrb_samples
from clbench.scenarios.integrity import FileRecord, decodes, read_index, write_index
from clbench.scenarios.manifest_types import DatasetManifest

JPEG_SETTINGS = {"format": "JPEG", "quality": 95, "subsampling": 0, "optimize": False}

Report = dict[str, Any]


def check_output_folder(folder: Path, what: str = "--out") -> None:
    """Fail, before anything is written, unless `folder` is or can be made a writable folder:
    it must not be a file or lie under one, and it (or, if missing, the nearest existing folder
    above it) must be writable."""
    existing = folder
    while not existing.exists() and existing.parent != existing:
        existing = existing.parent
    if existing.exists() and not existing.is_dir():
        where = "is a file" if existing == folder else f"lies under a file ({existing})"
        raise UserError(f"{what} {folder} {where}; it must be a folder",
                        hint="pass another folder; nothing was written")
    if not os.access(existing, os.W_OK | os.X_OK):
        whose = "" if existing == folder else f" ({existing}, where it would be created)"
        raise UserError(f"{what} {folder}: folder not writable{whose}",
                        hint="pass a writable folder; nothing was written")


def _relative_text(text: str, paths: dict[Path, str]) -> str:
    """`text` with each path in `paths` (also in its resolved form) replaced by its short name,
    so error texts stored in the file index carry no absolute or machine-specific paths."""
    for path, short in paths.items():
        for form in sorted({str(path), str(path.resolve())}, key=len, reverse=True):
            text = text.replace(form, short)
    return text


def _versions() -> dict[str, str]:
    import PIL

    out = {"pillow": PIL.__version__}
    try:
        import av

        out["av"] = av.__version__
        out["ffmpeg"] = ".".join(map(str, av.library_versions.get("libavcodec", ())))
    except ImportError:
        pass
    return out


# --------------------------------------------------------------------------- TSI


def _extract_one(job: tuple[str, str, str]) -> tuple[str, int, int, str | None]:
    """Worker: write one clip's middle frame; (sha256, frame index, frame count, error). An
    error names the clip by its path relative to the clip folder (`rel`)."""
    clip, target, rel = job
    try:
        image, index, count = tsi.extract_middle_frame(Path(clip))
    except Exception as err:  # noqa: BLE001 - an unreadable clip is reported, not fatal
        return "", -1, 0, _relative_text(f"{type(err).__name__}: {err}", {Path(clip): rel})
    Path(target).parent.mkdir(parents=True, exist_ok=True)
    image.convert("RGB").save(target, **JPEG_SETTINGS)
    return file_sha256(Path(target)), index, count, None


def prepare_tsi(videos: Path, out: Path, workers: int = 1,
                log: Callable[[str], None] = print, dataset: str = "tsi") -> Report:
    if not videos.is_dir():
        raise UserError(f"no folder of Smarthome clips at {videos}",
                        hint="pass --videos DIR with the trimmed clips (e.g. "
                             "Cook.Cleandishes_p02_r00_v02_c03.mp4)")
    clips = sorted((p for p in videos.rglob("*") if p.suffix.lower() in tsi.VIDEO_SUFFIXES),
                   key=lambda p: (p.name, str(p)))
    if not clips:
        raise UserError(f"no video clips ({', '.join(tsi.VIDEO_SUFFIXES)}) under {videos}")
    dropped: Counter = Counter()
    unnamed, unknown_action, unknown_subject, duplicates = [], [], [], []
    jobs: list[tuple[tsi.Clip, str, str]] = []
    seen: set[str] = set()
    for path in clips:
        clip = tsi.parse_clip_name(path)
        if clip is None:
            unnamed.append(path.name)
        elif clip.action in tsi.DROPPED_ACTIONS:
            dropped[clip.action] += 1
        elif clip.action not in tsi.ACTION_CAPTIONS:
            unknown_action.append(path.name)
        elif tsi.split_of(clip.subject) is None:
            unknown_subject.append(path.name)
        elif clip.stem in seen:
            duplicates.append(path.name)
        else:
            seen.add(clip.stem)
            jobs.append((clip, tsi.split_of(clip.subject), tsi.ACTION_CAPTIONS[clip.action]))
    log(f"found {len(clips)} clips under {videos}: {len(jobs)} usable, "
        f"{sum(dropped.values())} of ambiguous actions dropped (table 6), "
        f"{len(unnamed) + len(unknown_action) + len(unknown_subject) + len(duplicates)} skipped")
    check_output_folder(out)
    targets = [out / split / caption / f"{clip.stem}.jpg" for clip, split, caption in jobs]
    work = [(str(clip.path), str(t), clip.path.relative_to(videos).as_posix())
            for (clip, _, _), t in zip(jobs, targets)]
    if workers > 1:
        with ProcessPoolExecutor(workers) as pool:  # map keeps the input order
            results = list(pool.map(_extract_one, work, chunksize=8))
    else:
        results = [_extract_one(w) for w in work]
    records, unreadable = [], []
    for (clip, split, caption), target, (digest, index, _, error) in zip(jobs, targets, results):
        if error:
            unreadable.append(f"{clip.path.name}: {_relative_text(error, {out: '<out>'})}")
            continue
        records.append(FileRecord(target.relative_to(out).as_posix(), split, caption, digest,
                                  group=clip.action, source=clip.path.name, frame=index))
    info = {
        "source": "Toyota Smarthome trimmed clips",
        "frame_rule": "2 fps samples t_k = k/2 < D; keep sample n//2; source frame on screen "
                      "then (clbench.scenarios.tsi)",
        "jpeg": {k: v for k, v in JPEG_SETTINGS.items() if k != "format"},
        "versions": _versions(),
        "dropped_actions": dict(sorted(dropped.items())),
        "skipped": {"unparsed_names": unnamed, "unknown_actions": unknown_action,
                    "unknown_subjects": unknown_subject, "duplicates": duplicates,
                    "unreadable": unreadable},
    }
    split_sizes = Counter(r.split for r in records)
    log(f"TSI: {split_sizes['train']} train and {split_sizes['test']} test images "
        "(the paper reports about 10k train and 5k test)")
    out.mkdir(parents=True, exist_ok=True)
    return {"index": write_index(out, dataset, records, info), "records": records, "info": info}


# --------------------------------------------------------------------------- DALL-E


def prepare_dalle(source: Path, out: Path, manifest: DatasetManifest,
                  skip_corrupt: bool = False, log: Callable[[str], None] = print) -> Report:
    """Validate `<source>/<caption>/<image>` against the 22 captions and copy the images,
    unchanged, to `<out>/test/<caption>/`."""
    if not source.is_dir():
        raise UserError(f"no folder of DALL-E images at {source}",
                        hint="pass --from DIR holding one folder per caption")
    captions = list(manifest.class_names)
    folders = sorted(p.name for p in source.iterdir() if p.is_dir())
    unknown = [f for f in folders if f not in captions]
    if unknown:
        near = {f: closest(f, captions, n=1) for f in unknown}
        shown = "; ".join(f"'{f}'" + (f" (did you mean '{n[0]}'?)" if n else "")
                          for f, n in near.items())
        raise UserError(f"{len(unknown)} folder(s) under {source} are not TSI captions: {shown}",
                        hint="`clbench data show dalle` lists the captions and their prompts")
    missing = [c for c in captions if c not in folders]
    if missing:
        raise UserError(f"{len(missing)} caption folder(s) missing under {source}: "
                        f"{', '.join(missing)}")
    split = manifest.splits[0]
    keep, corrupt, ignored = [], [], []
    for caption in captions:
        for path in sorted((source / caption).iterdir()):
            if path.suffix.lower() not in IMAGE_SUFFIXES:
                ignored.append(f"{caption}/{path.name}")
            elif not decodes(path):
                corrupt.append(f"{caption}/{path.name}")
            else:
                keep.append((caption, path))
    if corrupt and not skip_corrupt:
        raise UserError(f"{len(corrupt)} image(s) under {source} do not decode: "
                        f"{', '.join(corrupt[:10])}{' ...' if len(corrupt) > 10 else ''}",
                        hint="replace them, or pass --skip-corrupt to leave them out")
    check_output_folder(out)
    same_place = source.resolve() == (out / split).resolve()
    records = []
    for caption, path in keep:
        target = out / split / caption / path.name
        if not same_place:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)
        records.append(FileRecord(target.relative_to(out).as_posix(), split, caption,
                                  file_sha256(target)))
    per_caption = Counter(r.label for r in records)
    expected = manifest.expected.get("per_class")
    off = {c: per_caption[c] for c in captions if expected and per_caption[c] != expected}
    info = {"source": "DALL-E images of the TSI actions (appendix A.2)",
            "generation_prompts": dict(sorted(manifest.generation_prompts.items())),
            "skipped": {"corrupt": corrupt, "not_images": ignored}}
    if off:
        log(f"note: the paper has {expected} images per caption; these differ: "
            + ", ".join(f"{c} {n}" for c, n in off.items()))
    out.mkdir(parents=True, exist_ok=True)
    return {"index": write_index(out, manifest.name, records, info), "records": records,
            "info": info}


# --------------------------------------------------------------------------- in place


def prepare_gts(folder: Path, manifest: DatasetManifest, download: bool = False) -> Report:
    """List both splits through torchvision's GTSRB (downloading if asked) and hash them."""
    check_output_folder(folder, "GTSRB folder")
    records = []
    for split in ("train", "test"):
        for path, label in sorted(gtsrb_samples(folder, split, download)):
            records.append(FileRecord(path.relative_to(folder).as_posix(), split,
                                      manifest.class_names[label], file_sha256(path)))
    info = {"source": "GTSRB via torchvision.datasets.GTSRB"}
    return {"index": write_index(folder, manifest.name, records, info), "records": records,
            "info": info}


def prepare_imagenet(folder: Path, dataset: str = "imagenet") -> Report:
    """Hash `val/<wnid>/<image>` (torchvision ImageFolder layout of the validation set)."""
    root = folder / "val"
    if not root.is_dir():
        raise UserError(f"no ImageNet validation folder at {root}",
                        hint="arrange the 50,000 validation images as val/<wnid>/<image>")
    check_output_folder(folder, "ImageNet folder")
    records = [FileRecord(p.relative_to(folder).as_posix(), "val", wnid.name, file_sha256(p))
               for wnid in sorted(d for d in root.iterdir() if d.is_dir())
               for p in sorted(wnid.iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES]
    info = {"source": "ImageNet ILSVRC2012 validation set"}
    # the folder's index is shared with imagenet-1k and -100, whose preparation records train/
    # as well: those records stay (an unreadable index is simply replaced)
    try:
        previous = read_index(folder)
    except UserError:
        previous = None
    kept = [r for r in previous.records if r.split != "val"] if previous else []
    if kept:
        records += kept
        info["source"] += f" (and {len(kept)} train records kept from the earlier index)"
    return {"index": write_index(folder, dataset, records, info), "records": records,
            "info": info}


def index_in_place(folder: Path, dataset: str, files: list[tuple[str, str, str]],
                   source: str, log: Callable[[str], None] | None = None) -> Report:
    """Hash `files` ((path relative to `folder`, split, class label) each, already listed, so
    that a layout error comes first) where they are, into `folder`'s file index."""
    check_output_folder(folder, "dataset folder")
    if log is not None:
        log(f"hashing {len(files)} images under {folder}")
    records = [FileRecord(rel, split, label, file_sha256(folder / rel))
               for rel, split, label in files]
    info = {"source": source}
    return {"index": write_index(folder, dataset, records, info), "records": records,
            "info": info}


def prepare_in_place(manifest: DatasetManifest, folder: Path) -> Report:
    """Hash the files of a `folder` dataset where they are (`<split>/<class name>/<image>`)."""
    from clbench.scenarios.datasets import list_folder

    files = [(f.rel, split, manifest.class_names[f.label]) for split in manifest.splits
             for f in list_folder(manifest, split, folder)]
    return index_in_place(folder, manifest.name, files, f"files in place ({manifest.name})")
