"""Dataset kinds: one registry that says how each kind of dataset is listed, loaded, checked,
prepared and described. A dataset declaration names its kind with `loader: KIND`.

A new kind is one class here (or in a plugin module that is imported first). Its preparation is
declared beside it, once: the flags `clbench data prepare` takes for it (help, type, default,
whether required) and the function that reads them. The CLI builds its `data prepare` options,
`clbench data prepare NAME --help` and the refusal of flags the kind does not take from that
declaration, so a new kind is prepared from the command line with no edit anywhere else:

    def prepare_mine(manifest, args, log):  # args.source: the flag's value; args.folder: the
        ...                                 # dataset's folder under the data root
        return prepare_in_place(manifest, args.folder)  # writes the file index

    @register_loader("mykind")
    class MyKind(FolderKind):
        summary = "..."
        preparation = Preparation(
            flags=[Flag("--from", "folder of ... images", dest="source", required=True)],
            run=prepare_mine)

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

More built-in kinds live in modules of their own, imported on the first lookup (`_KIND_MODULES`):
`torchvision_kinds.py` (torchvision's layouts of MTIL's and CoOp's datasets, with CoOp's split
files) and `imagenet_kinds.py` (ImageNet with its train split, its shifts, ImageNet-100, the DALL·E
stream's split).

This module imports neither torch nor PIL (the CLI's parser reads the flags from it); each
method and preparation function imports what it needs.
"""

from __future__ import annotations

import keyword
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from clbench.errors import ConfigError, UserError
from clbench.names import closest, unknown_name_message

if TYPE_CHECKING:
    from clbench.scenarios.check import CheckResult
    from clbench.scenarios.datasets import Listing, SplitData
    from clbench.scenarios.integrity import PreparedIndex
    from clbench.scenarios.manifest_types import DatasetManifest

_KINDS: dict[str, DatasetKind] = {}

Report = dict[str, Any]
Log = Callable[[str], None]


def register_loader(name: str) -> Callable[[type[DatasetKind]], type[DatasetKind]]:
    """Class decorator: register a `DatasetKind` subclass under `name` (the `loader:` value).

    A flag that other kinds declare too must have their type: the CLI parses it once for all."""

    def add(cls: type[DatasetKind]) -> type[DatasetKind]:
        if name in _KINDS:
            raise ValueError(f"dataset kind '{name}' is registered twice")
        preparation = cls.preparation
        if preparation is not None and not isinstance(preparation, Preparation):
            raise TypeError(f"dataset kind '{name}': `preparation` must be a Preparation")
        for flag in preparation.flags if preparation else ():
            for other, same in prepare_flags().get(flag.name, []):
                if same.type is not flag.type:
                    raise ValueError(
                        f"dataset kind '{name}' declares {flag.name} as {flag.type.__name__}, "
                        f"kind '{other}' as {same.type.__name__}: a flag has one type across "
                        "kinds (`clbench data prepare` parses it once)")
        kind = cls()
        kind.name = name
        _KINDS[name] = kind
        return cls

    return add


def unregister_loader(name: str) -> None:
    """Remove a registered kind (a test's kind, or a plugin's before it registers its own)."""
    get_kind(name)
    del _KINDS[name]


# Modules of further built-in kinds (torchvision's layouts of MTIL's and CoOp's datasets, the
# ImageNet family): they import this module to register, so they are imported on the first
# lookup rather than at the top here.
_KIND_MODULES = ("clbench.scenarios.torchvision_kinds", "clbench.scenarios.imagenet_kinds")
_kind_modules_loaded = False


def _registered() -> dict[str, DatasetKind]:
    """Every registered kind, the built-in kind modules imported first."""
    global _kind_modules_loaded
    if not _kind_modules_loaded:
        import importlib

        _kind_modules_loaded = True
        for module in _KIND_MODULES:
            importlib.import_module(module)
    return _KINDS


def kinds() -> list[str]:
    return sorted(_registered())


def get_kind(name: str, where: str = "") -> DatasetKind:
    """The registered kind `name`; an unknown one is a ConfigError suggesting the closest."""
    if name not in _registered():
        message = unknown_name_message("dataset kind (loader)", str(name), _KINDS)
        raise ConfigError(f"{where}: {message}" if where else message,
                          hint=f"dataset kinds: {', '.join(kinds())} (`clbench list datasets` "
                               "shows each dataset's kind)")
    return _KINDS[name]


def kind_of(manifest: DatasetManifest) -> DatasetKind:
    """The kind of a declared dataset (what `manifest.kind` holds)."""
    return manifest.kind or get_kind(manifest.loader, manifest.path)


def prepare_flags() -> dict[str, list[tuple[str, Flag]]]:
    """Every flag a registered kind declares, by name, with the kinds that declare it: what
    the CLI's `data prepare` parser accepts (each kind then refuses the ones it does not take)."""
    out: dict[str, list[tuple[str, Flag]]] = {}
    for name, kind in _registered().items():
        for flag in kind.preparation.flags if kind.preparation else ():
            out.setdefault(flag.name, []).append((name, flag))
    return out


# --------------------------------------------------------------------------- preparation

_METAVARS = {Path: "DIR", str: "TEXT", int: "N", float: "X", bool: ""}
_TYPE_WORDS = {Path: "a path", str: "a text", int: "an integer", float: "a number"}
RESERVED_FLAGS = ("--data-root", "--help")  # every `clbench data prepare` has these
RESERVED_DESTS = ("folder", "data_root")  # what `PrepareArgs` itself holds


@dataclass(frozen=True)
class Flag:
    """One option of `clbench data prepare` that a kind reads. Declared once, it is the parser's
    option, its line in `clbench data prepare NAME --help` and the value the kind's preparation
    receives (`args.<dest>`)."""

    name: str  # "--videos"
    help: str
    type: type = Path  # Path, str, int or float; bool: a switch, True when given
    default: Any = None  # the value when not given (a switch: False)
    required: bool = False
    metavar: str = ""  # default: DIR for a Path, N for an int, X for a float, TEXT for a str
    dest: str = ""  # the attribute `run` reads; default: the name without "--", "-" as "_"

    def __post_init__(self) -> None:
        if not re.fullmatch(r"--[a-z][a-z0-9-]*", self.name):
            raise ValueError(f"flag '{self.name}': a flag is '--' and lower-case words, "
                             "e.g. --videos or --skip-corrupt")
        if self.name in RESERVED_FLAGS:
            raise ValueError(f"flag {self.name}: every `clbench data prepare` has it already")
        if self.type not in _METAVARS:
            raise ValueError(f"flag {self.name}: type must be one of "
                             f"{', '.join(t.__name__ for t in _METAVARS)}")
        if self.type is bool and (self.required or self.default not in (None, False)):
            raise ValueError(f"flag {self.name}: a switch is off unless given")
        dest = self.dest or self.name[2:].replace("-", "_")
        if not dest.isidentifier() or keyword.iskeyword(dest) or dest in RESERVED_DESTS:
            raise ValueError(f"flag {self.name}: '{dest}' cannot be an attribute name; pass dest=")
        object.__setattr__(self, "dest", dest)
        object.__setattr__(self, "metavar", self.metavar or _METAVARS[self.type])
        if self.type is bool:
            object.__setattr__(self, "default", False)

    @property
    def switch(self) -> bool:
        return self.type is bool

    def read(self, value: Any) -> Any:
        """`value` as the declared type (the CLI's are already); a wrong one names the flag."""
        if self.switch:
            if isinstance(value, bool):
                return value
            raise UserError(f"{self.name} is a switch (given or not), got {value!r}")
        try:
            return value if isinstance(value, self.type) else self.type(value)
        except (TypeError, ValueError):
            raise UserError(f"{self.name}: expected {_TYPE_WORDS[self.type]}, got {value!r}",
                            hint=f"{self.name} {self.metavar}: {self.help}") from None


class PrepareArgs:
    """What a kind's preparation reads: `args.<dest>` for each flag it declares (its default when
    not given), `args.data_root` and `args.folder`, the dataset's own folder ($CLBENCH_DATA_<NAME>,
    else `<data root>/<subdir>`)."""

    def __init__(self, manifest: DatasetManifest, values: Mapping[str, Any],
                 data_root: str | None = None):
        self._manifest, self._values, self.data_root = manifest, dict(values), data_root

    def __getattr__(self, name: str) -> Any:
        values = self.__dict__.get("_values", {})
        if name not in values:
            raise AttributeError(f"no flag of `clbench data prepare` has dest '{name}' "
                                 f"(declared: {', '.join(values) or 'none'})")
        return values[name]

    @property
    def folder(self) -> Path:
        from clbench.scenarios.datasets import dataset_dir

        return dataset_dir(self._manifest, self.data_root)


@dataclass(frozen=True)
class Preparation:
    """How `clbench data prepare NAME` makes a dataset of a kind: the flags it takes and
    `run(manifest, args, log)`, which reads them as `args.<dest>` (a `PrepareArgs`), writes the
    dataset's file index and returns its report: `index` (the file written), `records` (its
    `FileRecord`s) and `info` (what it skipped, under `skipped`)."""

    flags: tuple[Flag, ...]
    run: Callable[[DatasetManifest, PrepareArgs, Log], Report]

    def __post_init__(self) -> None:
        object.__setattr__(self, "flags", tuple(self.flags))
        for attr in ("name", "dest"):
            seen = [getattr(f, attr) for f in self.flags]
            twice = sorted({x for x in seen if seen.count(x) > 1})
            if twice:
                raise ValueError(f"preparation flags: {attr} {', '.join(twice)} declared twice")


# Flags that several kinds declare (the kind modules import them: defined before the first
# kind registers, which imports those modules)
ROOT_FLAG = Flag("--root", "the dataset's folder, whose files are indexed in place (default: "
                "its folder under the data root)")
_OUT = Flag("--out", "output folder (default: the dataset's folder under the data root)")
DALLE_FLAGS = [  # `dalle` and the stream drawn from its files prepare from the same folder
    Flag("--from", "folder of generated images, <caption>/<file>", dest="source", required=True),
    _OUT,
    Flag("--skip-corrupt", "leave out images that do not decode (listed in the file index) "
         "instead of failing", type=bool),
]


class DatasetKind:
    """Base: a dataset of image files under its folder, optionally with a file index."""

    name: str = ""
    summary: str = ""
    has_files: bool = True
    preparation: Preparation | None = None  # how `clbench data prepare` makes it; None: it can't

    @property
    def can_prepare(self) -> bool:
        return self.preparation is not None

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
    def prepare(self, manifest: DatasetManifest, given: Mapping[str, Any] | None = None,
                data_root: str | None = None, log: Log = print) -> Report:
        """Prepare `manifest` from the flags given, by name (`{"--videos": "clips/"}`), as its
        declared preparation says: a flag it does not take is refused (naming the closest it
        does, before anything is read or written), a required one missing is asked for with how
        to obtain the data, the others get their defaults."""
        command = f"clbench data prepare {manifest.name}"
        if self.preparation is None:
            raise UserError(f"dataset '{manifest.name}' (kind {self.name}) has nothing to "
                            "prepare")
        flags = {f.name: f for f in self.preparation.flags}
        given = {k: v for k, v in (given or {}).items() if v is not None}
        unused = [g for g in given if g not in flags]
        if unused:
            bare = [f[2:] for f in flags]  # the "--" would make any two flags look alike
            near = sorted({f"--{n}" for g in unused for n in closest(g[2:], bare, n=1)})
            also = f"; did you mean {' or '.join(near)}?" if near else ""
            raise UserError(f"{' '.join(unused)}: not used by `{command}` (kind {self.name}; "
                            f"it takes {', '.join(flags) or 'no options'}){also}",
                            hint=f"`{command} --help` lists its options")
        for flag in flags.values():
            if flag.required and flag.name not in given:
                obtain = f"{manifest.obtain.strip()} " if manifest.obtain.strip() else ""
                raise UserError(f"`{command}` needs {flag.name} {flag.metavar} ({flag.help})",
                                hint=f"{obtain}`{command} --help` lists its options")
        values = {f.dest: None if (v := given.get(f.name, f.default)) is None else f.read(v)
                  for f in flags.values()}
        return self.preparation.run(manifest, PrepareArgs(manifest, values, data_root), log)


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


# One preparation function per kind, next to it: each imports what it needs (torch, PyAV) only
# when it runs.


def _prepare_folder(manifest: DatasetManifest, args: PrepareArgs, log: Log) -> Report:
    """Write the file index of the files already in place."""
    from clbench.scenarios.prepare import prepare_in_place

    return prepare_in_place(manifest, args.root or args.folder)


@register_loader("folder")
class FolderKind(DatasetKind):
    summary = "<split>/<class name>/<image> folders"
    preparation = Preparation(flags=[ROOT_FLAG], run=_prepare_folder)

    def list_files(self, manifest, split, folder, index):
        from clbench.scenarios.datasets import list_folder, listing_from_index

        if index is not None:
            return listing_from_index(manifest, split, folder, index)
        return list_folder(manifest, split, folder)


def _prepare_tsi(manifest: DatasetManifest, args: PrepareArgs, log: Log) -> Report:
    from clbench.scenarios.prepare import prepare_tsi

    return prepare_tsi(args.videos, args.out or args.folder, workers=max(1, args.workers),
                       log=log, dataset=manifest.name)


@register_loader("tsi")
class TsiKind(FolderKind):
    summary = "folder made from Toyota Smarthome clips (`clbench data prepare tsi`)"
    preparation = Preparation(flags=[
        Flag("--videos", "folder of Toyota Smarthome trimmed clips "
             "(<Action>_<subject>_<recording>_<video>_<camera>.mp4)", required=True),
        _OUT,
        Flag("--workers", "parallel decoding processes (output is identical for any number)",
             type=int, default=1),
    ], run=_prepare_tsi)


def _prepare_dalle(manifest: DatasetManifest, args: PrepareArgs, log: Log) -> Report:
    from clbench.scenarios.prepare import prepare_dalle

    return prepare_dalle(args.source, args.out or args.folder, manifest,
                         skip_corrupt=args.skip_corrupt, log=log)


@register_loader("dalle")
class DalleKind(FolderKind):
    summary = "folder copied from <caption>/<file> folders (`clbench data prepare dalle`)"
    preparation = Preparation(flags=DALLE_FLAGS, run=_prepare_dalle)


def _prepare_gtsrb(manifest: DatasetManifest, args: PrepareArgs, log: Log) -> Report:
    from clbench.scenarios.prepare import prepare_gts

    return prepare_gts(args.root / "gtsrb" if args.root else args.folder, manifest,
                       download=args.download)


@register_loader("gtsrb")
class GtsrbKind(DatasetKind):
    summary = "torchvision's GTSRB layout"
    preparation = Preparation(flags=[
        Flag("--root", "folder holding torchvision's gtsrb/ (default: the one holding the "
             "dataset's folder)"),
        Flag("--download", "let torchvision download GTSRB (needs network)", type=bool),
    ], run=_prepare_gtsrb)

    def default_layout(self, manifest):
        return (f"<data root>/{manifest.subdir}/GTSRB/Training/<label>/*.ppm and "
                f"<data root>/{manifest.subdir}/GTSRB/Final_Test/Images/*.ppm")

    def list_files(self, manifest, split, folder, index):
        from clbench.scenarios.datasets import list_gtsrb, listing_from_index

        if index is not None:
            return listing_from_index(manifest, split, folder, index)
        return list_gtsrb(manifest, split, folder)


def _prepare_imagenet(manifest: DatasetManifest, args: PrepareArgs, log: Log) -> Report:
    from clbench.scenarios.prepare import prepare_imagenet

    return prepare_imagenet(args.root or args.folder, dataset=manifest.subdir)


@register_loader("imagenet")
class ImagenetKind(DatasetKind):
    summary = "ImageNet validation set, val/<wnid>/<image>"
    preparation = Preparation(flags=[
        Flag("--root", "folder holding val/<wnid>/ (default: the dataset's folder under the "
             "data root)"),
    ], run=_prepare_imagenet)

    def default_layout(self, manifest):
        return f"<data root>/{manifest.subdir}/val/<wnid>/<image files>"

    def list_files(self, manifest, split, folder, index):
        from clbench.scenarios.datasets import list_imagenet

        return list_imagenet(manifest, split, folder, index)

