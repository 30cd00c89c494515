"""Third-party packages that Avalanche imports on import but clbench never uses, loaded on
first use instead.

`avalanche/__init__.py` imports every subpackage. Among them, its confusion-matrix metric
imports wandb (to draw the matrix in Weights & Biases) and its CUB-200 dataset imports gdown
(to download it): 0.46 s of every `clbench` command that trains, for modules no clbench run
touches. `defer()` puts a finder first on `sys.meta_path` that gives these packages the standard
library's `importlib.util.LazyLoader`: `import wandb` binds a module whose code runs at its first
attribute access. Anything that does use them (an Avalanche W&B logger added as a plugin, a user
script) gets the whole package at that moment, as with a plain import.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import sys

# only packages that Avalanche imports with a bare `import NAME` at module level: a
# `from NAME import x` reads an attribute at once, which would load the package anyway
DEFERRED = ("wandb", "gdown")


class _DeferringFinder(importlib.abc.MetaPathFinder):
    """Finds the packages of `DEFERRED` where Python would, and loads them lazily."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname not in DEFERRED:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or not hasattr(spec.loader, "exec_module"):
            return None  # not installed, or not a loader LazyLoader can wrap: the usual path
        spec.loader = importlib.util.LazyLoader(spec.loader)
        return spec


def defer() -> None:
    """Install the finder once (idempotent); packages already imported stay as they are."""
    if not any(isinstance(finder, _DeferringFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, _DeferringFinder())
