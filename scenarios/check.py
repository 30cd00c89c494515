"""`clbench data check NAME`: is a dataset present, complete and intact?

Presence (the expected layout, or the layout and how to obtain the data when it is missing),
counts per split and class (against the file index and the published sizes), and checksums
(every file's sha256 against the file index `manifest.json`; without one, every image must
decode). What a dataset's check does is up to its kind (`loaders.py`); `check_files` serves the
kinds made of image files.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from clbench.scenarios.integrity import INDEX_NAME, Problems
from clbench.scenarios.manifest_types import DatasetManifest


@dataclass
class CheckResult:
    dataset: str
    folder: Path
    prepared_sha256: str | None
    counts: dict[str, int] = field(default_factory=dict)  # images per split
    classes: dict[str, int] = field(default_factory=dict)  # classes per split
    problems: Problems = field(default_factory=Problems)
    notes: list[str] = field(default_factory=list)
    nothing_to_check: str | None = None  # why a dataset without files was not checked

    @property
    def ok(self) -> bool:
        return not self.problems

    def lines(self) -> list[str]:
        if self.nothing_to_check:
            return [f"{self.dataset}: {self.nothing_to_check}"]
        how = (f"sha256 against {INDEX_NAME}" if self.prepared_sha256
               else f"decoded every image (no file index {INDEX_NAME}: run `clbench data "
                    "prepare` to pin checksums)")
        out = [f"{self.dataset}: {self.folder}",
               *(f"  {s}: {n} images, {self.classes[s]} classes" for s, n in self.counts.items()),
               f"  checked: {how}"]
        if self.prepared_sha256:
            out.append(f"  file index sha256: {self.prepared_sha256}")
        out += [f"  note: {n}" for n in self.notes]
        for kind, files in (("missing", self.problems.missing),
                            ("corrupt", self.problems.corrupt)):
            out += [f"  {kind}: {f}" for f in files]
        out.append("  OK" if self.ok else
                   f"  FAILED: {len(self.problems.missing)} missing, "
                   f"{len(self.problems.corrupt)} corrupt")
        return out


def check_dataset(manifest: DatasetManifest, data_root: str | None = None) -> CheckResult:
    return manifest.kind.check(manifest, data_root)


def check_files(manifest: DatasetManifest, data_root: str | None = None) -> CheckResult:
    """Check a dataset of image files: every split listed, verified and counted."""
    from clbench.scenarios.datasets import dataset_dir, list_files, seeded_subset
    from clbench.scenarios.integrity import verify_decodable, verify_records

    folder = dataset_dir(manifest, data_root)
    result = CheckResult(manifest.name, folder, None)
    for split in manifest.splits:
        listing = list_files(manifest, split, folder)  # raises with the layout if absent
        if manifest.subset:
            listing = seeded_subset(listing, **manifest.subset)
        result.prepared_sha256 = listing.prepared.sha256 if listing.prepared else None
        found = (verify_records(folder, [f.record for f in listing]) if listing.prepared
                 else verify_decodable(folder, [folder / f.rel for f in listing]))
        result.problems.missing += found.missing
        result.problems.corrupt += found.corrupt
        result.counts[split] = len(listing)
        labels = {f.label for f in listing}
        result.classes[split] = len(labels)
        if len(labels) < len(listing.class_names):
            result.notes.append(f"{split}: {len(listing.class_names) - len(labels)} class(es) "
                                "have no images")
        if listing.prepared:
            on_disk = _image_files(folder / split) if (folder / split).is_dir() else set()
            indexed = {r.path for r in listing.prepared.records}
            extra = sorted(on_disk - indexed)
            if extra:
                result.notes.append(f"{split}: {len(extra)} file(s) not in the file index "
                                    f"are ignored, e.g. {extra[0]}")
        published = manifest.expected.get(split)
        if published and not manifest.subset and published != len(listing):
            result.notes.append(f"{split}: {len(listing)} images; the published set has "
                                f"{published}")
    return result


def _image_files(root: Path) -> set[str]:
    from clbench.scenarios.datasets import IMAGE_SUFFIXES

    base = root.parent
    return {p.relative_to(base).as_posix() for p in root.rglob("*")
            if p.suffix.lower() in IMAGE_SUFFIXES}
