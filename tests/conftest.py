"""Shared fixtures: a shortened proxy scenario, a temporary results database, and a fresh
PostgreSQL database (a failure under CI when none is running, a skip elsewhere); and the test
tiers: a test with a second-tier marker (pyproject's `markers`) is also marked `tier2`, which the
default run leaves out and `.ci/run` runs in full."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

SECOND_TIER = ("slow", "spawns", "multirun", "postgres", "browser", "install")


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects by marker
def pytest_collection_modifyitems(items):
    for item in items:
        if "pg_url" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.postgres)
        if any(item.get_closest_marker(name) for name in SECOND_TIER):
            item.add_marker(pytest.mark.tier2)


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


@pytest.fixture(autouse=True)
def own_cache_folder(tmp_path: Path, monkeypatch):
    """Each test its own zero-shot cache (`clbench.training.eval_cache`): runs of one test may reuse each
    other's zero-shot evaluation, never another test's, and nothing lands in ~/.cache."""
    monkeypatch.setenv("CLBENCH_CACHE_DIR", str(tmp_path / "clbench-cache"))


@pytest.fixture
def tiny_scenario(tmp_path: Path) -> Path:
    path = tmp_path / "proxy-tiny.yaml"
    path.write_text(TINY_SCENARIO)
    return path


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "results.db"


@pytest.fixture
def pg_url():
    """A fresh, empty PostgreSQL database for one test (dropped afterwards)."""
    base = os.environ.get("CLBENCH_TEST_PG_URL")
    if not base:
        message = ("CLBENCH_TEST_PG_URL is not set: start PostgreSQL with "
                   "`eval \"$(bash scripts/postgres.sh start)\"`")
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = f"clbench_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"CREATE DATABASE {name}"))
    yield make_url(base).set(database=name).render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.execute(text(f"DROP DATABASE {name} WITH (FORCE)"))
    admin.dispose()
