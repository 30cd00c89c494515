"""End to end: `clbench app` on a free port, loaded in headless Chromium until the leaderboard
table is drawn, then a screenshot that must not be blank.

Needs Debian's `chromium` and `chromium-driver` (installed by `.ci/run`). Under CI (the CI
environment variable set) their absence is a failure, elsewhere a skip.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from app_server import free_port, start_app, wait_healthy
from leaderboard_seed import seed_store

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
DRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
CHROMIUM_FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
                  "--window-size=1400,1000")


def _need_browser() -> None:
    missing = [p for p in (CHROMIUM, DRIVER) if not Path(p).exists()]
    if not missing:
        return
    message = f"{', '.join(missing)} not installed (apt-get install -y chromium chromium-driver)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def _wait_for_table(driver, timeout: float) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, timeout, poll_frequency=0.05).until(ec.visibility_of_element_located(
        (By.CSS_SELECTOR, '[data-testid="stDataFrame"] canvas')))
    # the script has finished once the status widget no longer says it is running
    WebDriverWait(driver, timeout, poll_frequency=0.05).until(
        lambda d: "Running" not in d.execute_script(
            "return document.querySelector('[data-testid=\"stStatusWidget\"]')?.innerText"
            " || ''"))


def screenshot_leaderboard(db: Path, out: Path, timeout: float = 60) -> tuple[float, float]:
    """Serve the app on `db`, wait until the leaderboard table is drawn, save a PNG at `out`.

    Returns seconds from navigation to the drawn table on the first load (fresh server) and on
    a reload (warm server); the benchmark and the README picture use it too.
    """
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    port = free_port()
    proc = start_app(db, port)
    profile = tempfile.mkdtemp(prefix="clbench-chromium-")
    driver = None
    try:
        wait_healthy(port, proc)
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile}"):
            options.add_argument(flag)
        driver = webdriver.Chrome(options=options, service=Service(DRIVER))
        times = []
        for _ in range(2):
            start = time.monotonic()
            driver.get(f"http://127.0.0.1:{port}/")
            _wait_for_table(driver, timeout)
            times.append(time.monotonic() - start)
        time.sleep(1.0)  # the grid paints its cells on the canvas just after it appears
        driver.save_screenshot(str(out))
        return times[0], times[1]
    finally:
        if driver is not None:
            driver.quit()
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(profile, ignore_errors=True)


def test_leaderboard_in_chromium(tmp_path):
    _need_browser()
    from PIL import Image, ImageStat

    db = tmp_path / "results.db"
    seed_store(db)
    shot = tmp_path / "leaderboard.png"
    screenshot_leaderboard(db, shot)
    image = Image.open(shot).convert("RGB")
    assert image.size[0] >= 800 and image.size[1] >= 600
    # not blank: many colours, and a real share of non-white pixels (text, table, sidebar)
    assert len(image.getcolors(maxcolors=1 << 20) or []) > 200
    grey = image.convert("L")
    dark = sum(grey.histogram()[:200]) / (image.size[0] * image.size[1])
    assert dark > 0.01, f"only {dark:.2%} of the screenshot is not near-white"
    assert max(ImageStat.Stat(grey).stddev) > 10


@pytest.mark.parametrize(("ci", "outcome"), [("1", pytest.fail.Exception),
                                              (None, pytest.skip.Exception)])
def test_missing_browser_fails_under_ci_and_skips_elsewhere(monkeypatch, tmp_path, ci, outcome):
    import test_leaderboard_browser as module

    monkeypatch.setattr(module, "CHROMIUM", str(tmp_path / "no-chromium"))
    if ci is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", ci)
    with pytest.raises(outcome, match="apt-get install -y chromium chromium-driver"):
        module._need_browser()
