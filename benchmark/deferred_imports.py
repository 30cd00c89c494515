"""Third-party packages that Avalanche (and timm, under open_clip) import on import but clbench
never uses, loaded on first use instead.

`avalanche/__init__.py` imports every subpackage. Among them, its confusion-matrix metric
imports wandb (to draw the matrix in Weights & Biases) and its CUB-200 dataset imports gdown
(to download it); timm's `utils.summary` imports wandb too. No clbench run touches them. `defer()`
puts a finder first on `sys.meta_path` that gives these packages a module that has not run its
code yet: `import wandb` binds it, and its code runs at the first read of anything but the
metadata that the import system and `inspect.getmodule` read of every module (`__spec__`,
`__file__`, ...). The standard library's `importlib.util.LazyLoader` is not enough here: in
Python 3.11 a second `import wandb` (timm's, then Avalanche's) reads `__spec__`, which makes it
run the package. Anything that does use them (an Avalanche W&B logger added as a plugin, a user
script) gets the whole package at that moment, as with a plain import.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
import threading
import types

# only packages imported with a bare `import NAME` at module level: a `from NAME import x`
# reads an attribute at once, which would load the package anyway
DEFERRED = ("wandb", "gdown")

# read without running the package: by `import` itself (is it initialising?), by submodule
# imports, and by `inspect.getmodule`, which scans every module in `sys.modules`
_METADATA = frozenset({"__name__", "__spec__", "__loader__", "__package__", "__file__",
                       "__cached__", "__class__"})
_RUNNING = threading.RLock()


class _DeferredModule(types.ModuleType):
    """A module whose code has not run yet; reading or setting anything else runs it."""

    def __getattribute__(self, attr):
        if attr in _METADATA:
            return super().__getattribute__(attr)
        _run(self)
        return getattr(self, attr)

    def __setattr__(self, attr, value):
        _run(self)  # first, so that the package's own code cannot overwrite what is set
        setattr(self, attr, value)

    def __delattr__(self, attr):
        _run(self)
        delattr(self, attr)


def _run(module: types.ModuleType) -> None:
    with _RUNNING:
        if type(module) is not _DeferredModule:
            return  # another thread ran it meanwhile
        spec = types.ModuleType.__getattribute__(module, "__spec__")
        # from here, a plain module being initialised (not through `__setattr__`, which runs)
        object.__setattr__(module, "__class__", types.ModuleType)
        try:
            spec.loader.exec_module(module)
        except BaseException:
            sys.modules.pop(spec.name, None)  # as a failed import leaves it: the next import
            raise  # tries again and raises the same error, not a half-run module's


class _DeferringLoader(importlib.abc.Loader):
    """Creates the module as Python would and runs nothing: the real loader runs it later."""

    def __init__(self, loader: importlib.machinery.SourceFileLoader):
        self.loader = loader

    def create_module(self, spec):
        return None  # the default module, which `exec_module` turns into a deferred one

    def exec_module(self, module):
        module.__spec__.loader = module.__loader__ = self.loader  # what `_run` will call
        module.__class__ = _DeferredModule


class _DeferringFinder(importlib.abc.MetaPathFinder):
    """Finds the packages of `DEFERRED` where Python would, and defers running them."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname not in DEFERRED:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or not isinstance(spec.loader, importlib.machinery.SourceFileLoader):
            return None  # not installed, or not plain Python source: the usual path
        spec.loader = _DeferringLoader(spec.loader)
        return spec


def defer() -> None:
    """Install the finder once (idempotent); packages already imported stay as they are."""
    if not any(isinstance(finder, _DeferringFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, _DeferringFinder())
