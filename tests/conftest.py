"""Shared fixtures: a shortened proxy scenario and a temporary results database."""

from __future__ import annotations

from pathlib import Path

import pytest

TINY_SCENARIO = """\
name: proxy-tiny
description: shortened proxy-20shot for tests (3 sessions of 2 classes, 3 shots)
target: proxy
protocol: few-shot
shots: 3
sessions:
  sizes: [2, 2, 2]
  order: dataset
eval_sets: [proxy-clean]
training:
  epochs: 1
  batch_size: 4
  lr: 1.0e-4
strategy_training:
  fft: {warmup: 0.2}
  zeroshot: {lr: 5.0e-3, epochs: 2}
"""


@pytest.fixture
def tiny_scenario(tmp_path: Path) -> Path:
    path = tmp_path / "proxy-tiny.yaml"
    path.write_text(TINY_SCENARIO)
    return path


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "results.db"
