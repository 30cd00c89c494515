"""`clbench data prepare NAME`: turn a user's copy of a paper dataset into clbench's layout and
write its `manifest.json` (per-file sha256, counts per split and class).

* TSI from the Toyota Smarthome trimmed clips (LoRSU paper, appendix D; `tsi.py` defines the
  frame rule): one JPEG per clip, `<out>/<split>/<caption>/<clip name>.jpg`.
* DALL-E images of the 22 actions (appendix A.2): a `<caption>/<file>` folder, validated and
  copied unchanged to `<out>/test/<caption>/`.
* GTSRB through torchvision's `GTSRB` (which downloads where there is network): the files stay
  in torchvision's layout; only the manifest is written.
* ImageNet validation images in `val/<wnid>/` folders: only the manifest is written.

Outputs are byte-for-byte reproducible: inputs are processed in sorted order, JPEGs are encoded
with fixed settings from frames decoded single-threaded, and the manifest has no timestamps or
absolute paths. (Across machines this holds for the same PyAV/FFmpeg and Pillow builds, whose
versions the manifest records.)
"""

from __future__ import annotations

import shutil
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from clbench.errors import UserError
from clbench.names import closest
from clbench.scenarios import tsi
from clbench.scenarios.datasets import IMAGE_SUFFIXES, gtsrb_samples
from clbench.hashing import file_sha256
from clbench.scenarios.integrity import FileRecord, decodes, write_prepared
from clbench.scenarios.manifests import DatasetManifest

JPEG_SETTINGS = {"format": "JPEG", "quality": 95, "subsampling": 0, "optimize": False}

Report = dict[str, Any]


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


def _extract_one(job: tuple[str, str]) -> tuple[str, int, int, str | None]:
    """Worker: write one clip's middle frame; (sha256, frame index, frame count, error)."""
    clip, target = job
    try:
        image, index, count = tsi.extract_middle_frame(Path(clip))
    except Exception as err:  # noqa: BLE001 - an unreadable clip is reported, not fatal
        return "", -1, 0, f"{type(err).__name__}: {err}"
    Path(target).parent.mkdir(parents=True, exist_ok=True)
    image.convert("RGB").save(target, **JPEG_SETTINGS)
    return file_sha256(Path(target)), index, count, None


def prepare_tsi(videos: Path, out: Path, workers: int = 1,
                log: Callable[[str], None] = print) -> Report:
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
    targets = [out / split / caption / f"{clip.stem}.jpg" for clip, split, caption in jobs]
    work = [(str(clip.path), str(t)) for (clip, _, _), t in zip(jobs, targets)]
    if workers > 1:
        with ProcessPoolExecutor(workers) as pool:  # map keeps the input order
            results = list(pool.map(_extract_one, work, chunksize=8))
    else:
        results = [_extract_one(w) for w in work]
    records, unreadable = [], []
    for (clip, split, caption), target, (digest, index, _, error) in zip(jobs, targets, results):
        if error:
            unreadable.append(f"{clip.path.name}: {error}")
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
    manifest = write_prepared(out, "tsi", records, info)
    return {"manifest": manifest, "records": records, "info": info}


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
    records, corrupt, ignored = [], [], []
    same_place = source.resolve() == (out / "test").resolve()
    for caption in captions:
        for path in sorted((source / caption).iterdir()):
            if path.suffix.lower() not in IMAGE_SUFFIXES:
                ignored.append(f"{caption}/{path.name}")
                continue
            if not decodes(path):
                corrupt.append(f"{caption}/{path.name}")
                continue
            target = out / "test" / caption / path.name
            if not same_place:
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(path, target)
            records.append(FileRecord(target.relative_to(out).as_posix(), "test", caption,
                                      file_sha256(target)))
    if corrupt and not skip_corrupt:
        raise UserError(f"{len(corrupt)} image(s) under {source} do not decode: "
                        f"{', '.join(corrupt[:10])}{' ...' if len(corrupt) > 10 else ''}",
                        hint="replace them, or pass --skip-corrupt to leave them out")
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
    return {"manifest": write_prepared(out, "dalle", records, info), "records": records,
            "info": info}


# --------------------------------------------------------------------------- GTSRB, ImageNet


def prepare_gts(folder: Path, manifest: DatasetManifest, download: bool = False) -> Report:
    """List both splits through torchvision's GTSRB (downloading if asked) and hash them."""
    records = []
    for split in ("train", "test"):
        for path, label in sorted(gtsrb_samples(folder, split, download)):
            records.append(FileRecord(path.relative_to(folder).as_posix(), split,
                                      manifest.class_names[label], file_sha256(path)))
    info = {"source": "GTSRB via torchvision.datasets.GTSRB"}
    return {"manifest": write_prepared(folder, "gts", records, info), "records": records,
            "info": info}


def prepare_imagenet(folder: Path) -> Report:
    """Hash `val/<wnid>/<image>` (torchvision ImageFolder layout of the validation set)."""
    root = folder / "val"
    if not root.is_dir():
        raise UserError(f"no ImageNet validation folder at {root}",
                        hint="arrange the 50,000 validation images as val/<wnid>/<image>")
    records = [FileRecord(p.relative_to(folder).as_posix(), "val", wnid.name, file_sha256(p))
               for wnid in sorted(d for d in root.iterdir() if d.is_dir())
               for p in sorted(wnid.iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES]
    info = {"source": "ImageNet ILSVRC2012 validation set"}
    return {"manifest": write_prepared(folder, "imagenet", records, info), "records": records,
            "info": info}
