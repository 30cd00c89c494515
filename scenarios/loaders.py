"""Dataset kinds: one registry that says how each kind of dataset is listed, loaded, checked,
prepared and described. A dataset declaration names its kind with `loader: KIND`.

A new kind is one class here (or in a plugin module that is imported first):

    @register_loader("mykind")
    class MyKind(DatasetKind):
        summary = "..."
        def list_files(self, manifest, split, folder, index): ...

Built-in kinds:

* `proxy`: the embedded proxy world, generated on the fly (no files).
* `folder`: `<dataset folder>/<split>/<class name>/<image>`, class names from the declaration;
  `clbench data prepare NAME` writes the file index of the files in place.
* `tsi`: a `folder` dataset made from the Toyota Smarthome clips by `clbench data prepare tsi`.
* `dalle`: a `folder` dataset with one `test` split, copied from `<caption>/<file>` folders by
  `clbench data prepare dalle`.
* `gtsrb`: torchvision's GTSRB layout; prepare writes the file index in place (downloads on
  request).
* `imagenet`: the validation set as `val/<wnid>/<image>`; prepare writes the file index in place.

This module imports neither torch nor PIL; each method imports what it needs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from clbench.errors import ConfigError, UserError
from clbench.names import unknown_name_message

if TYPE_CHECKING:
    from clbench.scenarios.check import CheckResult
    from clbench.scenarios.datasets import Listing, SplitData
    from clbench.scenarios.integrity import PreparedIndex
    from clbench.scenarios.manifest_types import DatasetManifest

_KINDS: dict[str, DatasetKind] = {}


def register_loader(name: str) -> Callable[[type[DatasetKind]], type[DatasetKind]]:
    """Class decorator: register a `DatasetKind` subclass under `name` (the `loader:` value)."""

    def add(cls: type[DatasetKind]) -> type[DatasetKind]:
        if name in _KINDS:
            raise ValueError(f"dataset kind '{name}' is registered twice")
        kind = cls()
        kind.name = name
        _KINDS[name] = kind
        return cls

    return add


def kinds() -> list[str]:
    return sorted(_KINDS)


def get_kind(name: str, where: str = "") -> DatasetKind:
    """The registered kind `name`; an unknown one is a ConfigError suggesting the closest."""
    if name not in _KINDS:
        message = unknown_name_message("dataset kind (loader)", str(name), _KINDS)
        raise ConfigError(f"{where}: {message}" if where else message,
                          hint=f"dataset kinds: {', '.join(kinds())} (`clbench list datasets` "
                               "shows each dataset's kind)")
    return _KINDS[name]


def kind_of(manifest: DatasetManifest) -> DatasetKind:
    """The kind of a declared dataset (what `manifest.kind` holds)."""
    return manifest.kind or get_kind(manifest.loader, manifest.path)


@dataclass
class PrepareRequest:
    """What `clbench data prepare` was given; each kind reads the options it declares."""

    data_root: str | None = None
    out: str | None = None  # --out
    root: str | None = None  # --root
    source: str | None = None  # --from
    videos: str | None = None  # --videos
    download: bool = False
    workers: int = 1
    skip_corrupt: bool = False

    def given(self) -> list[str]:
        """The options set to something other than their default, as CLI flags."""
        flags = {"out": "--out", "root": "--root", "source": "--from", "videos": "--videos",
                 "download": "--download", "skip_corrupt": "--skip-corrupt"}
        out = [flag for attr, flag in flags.items() if getattr(self, attr)]
        return out + (["--workers"] if self.workers != 1 else [])


Report = dict[str, Any]


class DatasetKind:
    """Base: a dataset of image files under its folder, optionally with a file index."""

    name: str = ""
    summary: str = ""
    has_files: bool = True
    prepare_options: tuple[str, ...] = ()  # CLI flags its `prepare` reads; None: cannot prepare
    can_prepare: bool = False

    # ------------------------------------------------------------------ description
    def default_layout(self, manifest: DatasetManifest) -> str:
        return f"<data root>/{manifest.subdir}/<split>/<class name>/<image files>"

    def layout_text(self, manifest: DatasetManifest) -> str:
        return manifest.layout.strip() or self.default_layout(manifest)

    # ------------------------------------------------------------------ reading
    def list_files(self, manifest: DatasetManifest, split: str, folder: Path,
                   index: PreparedIndex | None) -> Listing:
        raise NotImplementedError

    def load_split(self, manifest: DatasetManifest, split: str, data_root: str | None,
                   skip_corrupt: bool) -> SplitData:
        from clbench.scenarios.datasets import load_file_split

        return load_file_split(manifest, split, data_root, skip_corrupt)

    def check(self, manifest: DatasetManifest, data_root: str | None) -> CheckResult:
        from clbench.scenarios.check import check_files

        return check_files(manifest, data_root)

    # ------------------------------------------------------------------ preparing
    def prepare(self, manifest: DatasetManifest, request: PrepareRequest,
                log: Callable[[str], None] = print) -> Report:
        raise UserError(f"dataset '{manifest.name}' (kind {self.name}) has nothing to prepare")

    def _reject_unused(self, manifest: DatasetManifest, request: PrepareRequest) -> None:
        unused = [f for f in request.given() if f not in self.prepare_options]
        if unused:
            takes = ", ".join(self.prepare_options) or "no options"
            raise UserError(f"{' '.join(unused)}: not used by `clbench data prepare "
                            f"{manifest.name}` (kind {self.name}; it takes {takes})")

    def _folder(self, manifest: DatasetManifest, request: PrepareRequest) -> Path:
        from clbench.scenarios.datasets import dataset_dir

        return dataset_dir(manifest, request.data_root)


@register_loader("proxy")
class ProxyKind(DatasetKind):
    summary = "the embedded proxy world, generated on the fly"
    has_files = False

    def default_layout(self, manifest: DatasetManifest) -> str:
        return "(generated; no files)"

    def load_split(self, manifest, split, data_root, skip_corrupt):
        from clbench.scenarios.datasets import SplitData
        from clbench.scenarios.proxy.data import make_split

        proxy = make_split(manifest.name, split)
        images = proxy.images
        return SplitData(dataset=manifest.name, split=split, class_names=list(proxy.class_names),
                         templates=list(proxy.templates), targets=proxy.targets.long(),
                         sample_ids=list(proxy.sample_ids), load=lambda i: images[i])

    def check(self, manifest, data_root):
        from clbench.scenarios.check import CheckResult

        return CheckResult(manifest.name, Path("(embedded)"), None, nothing_to_check=(
            "embedded proxy data, generated on the fly; nothing to check"))


@register_loader("folder")
class FolderKind(DatasetKind):
    summary = "<split>/<class name>/<image> folders"
    prepare_options = ("--root",)
    can_prepare = True

    def list_files(self, manifest, split, folder, index):
        from clbench.scenarios.datasets import list_folder, listing_from_index

        if index is not None:
            return listing_from_index(manifest, split, folder, index)
        return list_folder(manifest, split, folder)

    def prepare(self, manifest, request, log=print):
        """Write the file index of the files already in place (`--root`: the dataset folder)."""
        from clbench.scenarios.prepare import prepare_in_place

        self._reject_unused(manifest, request)
        folder = Path(request.root) if request.root else self._folder(manifest, request)
        return prepare_in_place(manifest, folder)


@register_loader("tsi")
class TsiKind(FolderKind):
    summary = "folder made from Toyota Smarthome clips (`clbench data prepare tsi`)"
    prepare_options = ("--videos", "--out", "--workers")

    def prepare(self, manifest, request, log=print):
        from clbench.scenarios.prepare import prepare_tsi

        self._reject_unused(manifest, request)
        if not request.videos:
            raise UserError("tsi needs --videos DIR (the Toyota Smarthome trimmed clips)",
                            hint=manifest.obtain.strip())
        out = Path(request.out) if request.out else self._folder(manifest, request)
        return prepare_tsi(Path(request.videos), out, workers=max(1, request.workers), log=log,
                           dataset=manifest.name)


@register_loader("dalle")
class DalleKind(FolderKind):
    summary = "folder copied from <caption>/<file> folders (`clbench data prepare dalle`)"
    prepare_options = ("--from", "--out", "--skip-corrupt")

    def prepare(self, manifest, request, log=print):
        from clbench.scenarios.prepare import prepare_dalle

        self._reject_unused(manifest, request)
        if not request.source:
            raise UserError(f"{manifest.name} needs --from DIR (generated images as "
                            "<caption>/<file>)",
                            hint=f"`clbench data show {manifest.name}` lists the captions and "
                                 "prompts")
        out = Path(request.out) if request.out else self._folder(manifest, request)
        return prepare_dalle(Path(request.source), out, manifest,
                             skip_corrupt=request.skip_corrupt, log=log)


@register_loader("gtsrb")
class GtsrbKind(DatasetKind):
    summary = "torchvision's GTSRB layout"
    prepare_options = ("--root", "--download")
    can_prepare = True

    def default_layout(self, manifest):
        return (f"<data root>/{manifest.subdir}/GTSRB/Training/<label>/*.ppm and "
                f"<data root>/{manifest.subdir}/GTSRB/Final_Test/Images/*.ppm")

    def list_files(self, manifest, split, folder, index):
        from clbench.scenarios.datasets import list_gtsrb, listing_from_index

        if index is not None:
            return listing_from_index(manifest, split, folder, index)
        return list_gtsrb(manifest, split, folder)

    def prepare(self, manifest, request, log=print):
        from clbench.scenarios.prepare import prepare_gts

        self._reject_unused(manifest, request)
        folder = (Path(request.root) / "gtsrb" if request.root
                  else self._folder(manifest, request))
        return prepare_gts(folder, manifest, download=request.download)


@register_loader("imagenet")
class ImagenetKind(DatasetKind):
    summary = "ImageNet validation set, val/<wnid>/<image>"
    prepare_options = ("--root",)
    can_prepare = True

    def default_layout(self, manifest):
        return f"<data root>/{manifest.subdir}/val/<wnid>/<image files>"

    def list_files(self, manifest, split, folder, index):
        from clbench.scenarios.datasets import list_imagenet

        return list_imagenet(manifest, split, folder, index)

    def prepare(self, manifest, request, log=print):
        from clbench.scenarios.prepare import prepare_imagenet

        self._reject_unused(manifest, request)
        return prepare_imagenet(Path(request.root) if request.root
                                else self._folder(manifest, request), dataset=manifest.subdir)
