"""clbench: a continual few-shot benchmark for CLIP vision encoders.

The protocol follows Panos et al., "Imperfect Vision Encoders: Efficient and Robust Tuning for
Vision-Language Models" (LoRSU): a CLIP vision encoder is updated over sessions of disjoint
classes with few shots each, and evaluated after every session on the target data and on control
data that it must not forget.
"""

import warnings as _warnings

from clbench.deferred_imports import defer as _defer

__version__ = "0.1.0"

# Avalanche imports qpsolvers (for its GEM plugin) whenever it is imported, and qpsolvers warns
# then if no QP solver package is installed: nothing a clbench user can act on unless they add
# GEM (`--plugin avalanche:GEMPlugin`).
_warnings.filterwarnings("ignore", message="no QP solver found", category=UserWarning)
# Avalanche (and timm) also import wandb and gdown, which clbench never uses: they run on first
# use (0.66 s for wandb alone in `clbench run`).
_defer()
