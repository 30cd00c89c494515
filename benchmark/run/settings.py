"""A run's config from what the user gave and what the scenario declares for the strategy.

Precedence: defaults < the scenario's `training` block < its `strategy_training` entry for the
strategy (training keys; for a preset, its base strategy's entry when the preset has none) <
--config < flags < --set. The entry's `strategy:` mapping (strategy parameters `clbench tune`
chose) fills only parameters the user did not set, and only for the strategy it names.
Kept free of torch so that a bad config fails before anything heavy is imported.
"""

from __future__ import annotations

from typing import Any

from clbench.config import run_config as cfg
from clbench.scenarios.manifests import ScenarioManifest, strategy_params_for, training_for
from clbench.strategies.registry import strategy_and_base


def resolve_for_scenario(raw: dict[str, Any], manifest: ScenarioManifest) -> cfg.RunConfig:
    """`cfg.resolve` with the scenario's settings for the raw config's strategy."""
    names = strategy_and_base(raw.get("strategy"))
    return cfg.resolve(raw, training_for(manifest, *names),
                       strategy_params_for(manifest, names[0]) if names else None)
