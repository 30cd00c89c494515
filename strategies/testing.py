"""Deprecated alias of `clbench.training.strategy_kit` (the strategy test kit moved there).

Plugin packages written against the earlier docs import `clbench.strategies.testing`; this
module keeps them working and says where the kit lives now. Nothing in clbench imports it (the
layer test places it in the `compat` layer, which no module may import).
"""

import warnings

from clbench.training.strategy_kit import *  # noqa: F403
from clbench.training.strategy_kit import __all__  # noqa: F401

warnings.warn("clbench.strategies.testing moved to clbench.training.strategy_kit; "
              "import it from there", DeprecationWarning, stacklevel=2)
