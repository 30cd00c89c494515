"""End to end: `clbench app` on a free port, in headless Chromium at 1600x1000: every page
opens (also from a link), the default ranking is checked on a store where the method with
the highest target gain forgets most, a click on a row opens its preset, and each page is
saved as a screenshot (the docs' pictures come from the same function,
`scripts/leaderboard_screenshots.py`).

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
from urllib.parse import quote_plus

import pytest
from app_server import free_port, start_app, wait_healthy
from leaderboard_seed import TRADEOFF_ORDER, seed_tradeoff_store

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
DRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
CHROMIUM_FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking", "--no-proxy-server",
                  "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
                  "--window-size=1600,1000")
# page -> plots it draws (the seeded stores); the app's PAGES in order
PAGE_PLOTS = {"Leaderboard": 1, "Forgetting curves": 1, "Per-session comparison": 1,
              "Trade-off": 1, "Presets": 2, "Runs": 1}
HEADER_PX, ROW_PX = 35, 35  # the table's header and row heights, as drawn (for clicks)


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch):
    """The app and chromedriver are on 127.0.0.1: an http_proxy in the environment must not
    carry selenium's requests to the driver out of the machine."""
    for name in ("no_proxy", "NO_PROXY"):
        monkeypatch.setenv(name, "127.0.0.1,localhost")


def _need_browser() -> None:
    missing = [p for p in (CHROMIUM, DRIVER) if not Path(p).exists()]
    if not missing:
        return
    message = f"{', '.join(missing)} not installed (apt-get install -y chromium chromium-driver)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def _wait_until(driver, condition, timeout: float) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, timeout, poll_frequency=0.05).until(condition)


def _script_done(driver) -> bool:
    """The script has finished once the status widget no longer says it is running."""
    return "Running" not in driver.execute_script(
        "return document.querySelector('[data-testid=\"stStatusWidget\"]')?.innerText || ''")


def _wait_for_table(driver, timeout: float) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec

    _wait_until(driver, ec.visibility_of_element_located(
        (By.CSS_SELECTOR, '[data-testid="stDataFrame"] canvas')), timeout)
    _wait_until(driver, _script_done, timeout)


class Browser:
    """`clbench app` on `db` and a headless Chromium looking at it (a context manager)."""

    def __init__(self, db: Path, timeout: float = 60, size: tuple[int, int] = (1600, 1000)):
        self.db, self.timeout, self.size = db, timeout, size

    def __enter__(self) -> Browser:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        self.port = free_port()
        self.proc = start_app(self.db, self.port)
        self.profile = tempfile.mkdtemp(prefix="clbench-chromium-")
        self.driver = None
        try:
            wait_healthy(self.port, self.proc)
            options = webdriver.ChromeOptions()
            options.binary_location = CHROMIUM
            for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={self.profile}"):
                options.add_argument(flag)
            self.driver = webdriver.Chrome(options=options, service=Service(DRIVER))
            self.driver.set_window_size(*self.size)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *_exc) -> None:
        if self.driver is not None:
            self.driver.quit()
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        shutil.rmtree(self.profile, ignore_errors=True)

    def open(self, page: str, query: str = "") -> None:
        """Load the app at ?page=PAGE&QUERY (a shared link) and wait until it is drawn."""
        url = f"http://127.0.0.1:{self.port}/?page={quote_plus(page)}" + \
            (f"&{query}" if query else "")
        self.driver.get(url)
        self.wait_for_page(page)

    def wait_for_page(self, page: str) -> None:
        _wait_until(self.driver, lambda d: page in self.headers(), self.timeout)
        _wait_until(self.driver, _script_done, self.timeout)
        if page == "Leaderboard":
            _wait_for_table(self.driver, self.timeout)
            _wait_until(self.driver, lambda d: self.table_rows(), self.timeout)
        time.sleep(1.0)  # plots and the grid paint just after they appear

    def headers(self) -> list[str]:
        from selenium.webdriver.common.by import By

        return [h.text for h in self.driver.find_elements(By.CSS_SELECTOR, "h2")]

    def count(self, css: str) -> int:
        from selenium.webdriver.common.by import By

        return len(self.driver.find_elements(By.CSS_SELECTOR, css))

    def table_rows(self) -> list[list[str]]:
        """The leaderboard's cells as its accessible table gives them (header row first)."""
        return self.driver.execute_script(
            "return Array.from(document.querySelectorAll("
            "'[data-testid=\"stDataFrame\"] table tr')).map("
            "r => Array.from(r.querySelectorAll('td, th')).map(c => c.innerText.trim()))")

    def main_selectbox_value(self) -> str:
        """What the page's first selectbox (not the sidebar's) shows as chosen."""
        return self.driver.execute_script(
            "return document.querySelector('[data-testid=\"stMain\"] "
            "[data-testid=\"stSelectbox\"] input').value")

    def click_row(self, index: int) -> None:
        """Tick the selection box of the leaderboard's row `index` (0 = first row)."""
        from selenium.webdriver.common.action_chains import ActionChains
        from selenium.webdriver.common.by import By

        canvas = self.driver.find_element(By.CSS_SELECTOR, '[data-testid="stDataFrame"] canvas')
        box = canvas.rect
        ActionChains(self.driver).move_to_element_with_offset(
            canvas, -box["width"] / 2 + 15,
            -box["height"] / 2 + HEADER_PX + ROW_PX * index + ROW_PX / 2).click().perform()

    def shot(self, path: Path) -> Path:
        self.driver.save_screenshot(str(path))
        return path


def screenshot_pages(db: Path, out: Path, pages: dict[str, str],
                     size: tuple[int, int] = (1600, 1000)) -> dict[str, Path]:
    """Each page (name -> extra query) of the app on `db` saved as `out/leaderboard-<page>.png`,
    the browser window `size` pixels large."""
    out.mkdir(parents=True, exist_ok=True)
    saved = {}
    with Browser(db, size=size) as browser:
        for page, query in pages.items():
            browser.open(page, query)
            name = page.lower().replace(" ", "-")
            saved[page] = browser.shot(out / f"leaderboard-{name}.png")
    return saved


def screenshot_leaderboard(db: Path, out: Path, timeout: float = 60) -> tuple[float, float]:
    """Serve the app on `db`, wait until the leaderboard table is drawn, save a PNG at `out`.

    Returns seconds from navigation to the drawn table on the first load (fresh server) and on
    a reload (warm server); the benchmark uses it.
    """
    with Browser(db, timeout) as browser:
        times = []
        for _ in range(2):
            start = time.monotonic()
            browser.driver.get(f"http://127.0.0.1:{browser.port}/")
            _wait_for_table(browser.driver, timeout)
            times.append(time.monotonic() - start)
        time.sleep(1.0)  # the grid paints its cells on the canvas just after it appears
        browser.shot(out)
        return times[0], times[1]


def _not_blank(path: Path) -> None:
    from PIL import Image, ImageStat

    image = Image.open(path).convert("RGB")
    assert image.size[0] >= 1200 and image.size[1] >= 600
    # many colours, and a real share of non-white pixels (text, table, plots, sidebar)
    assert len(image.getcolors(maxcolors=1 << 20) or []) > 200, path
    grey = image.convert("L")
    dark = sum(grey.histogram()[:200]) / (image.size[0] * image.size[1])
    assert dark > 0.01, f"{path}: only {dark:.2%} of the screenshot is not near-white"
    assert max(ImageStat.Stat(grey).stddev) > 10


@pytest.mark.browser
def test_leaderboard_in_chromium(tmp_path):
    """The default view answers the question on a store where ranking by target gain would
    put the forgetting-heavy method first; every page opens from a link; a row opens its
    preset."""
    _need_browser()
    db = seed_tradeoff_store(tmp_path / "results.db")
    out = Path(os.environ.get("CLBENCH_SCREENSHOTS") or tmp_path / "shots")
    out.mkdir(parents=True, exist_ok=True)
    with Browser(db) as browser:
        for page, plots in PAGE_PLOTS.items():
            browser.open(page)
            assert not browser.count('[data-testid="stException"]'), page
            assert browser.count(".js-plotly-plot") == plots, page
            _not_blank(browser.shot(out / f"leaderboard-{page.lower().replace(' ', '-')}.png"))
        browser.open("Leaderboard")
        header, *rows = browser.table_rows()
        assert header[:4] == ["#", "strategy", "preset", "seeds"]
        methods = [r[1] for r in rows if r[0] not in ("", "–", "None")]
        assert methods == TRADEOFF_ORDER  # balanced score, not target gain
        assert "lucky" not in {r[1] for r in rows}  # one seed of three: hidden by default
        browser.click_row(TRADEOFF_ORDER.index("careful"))
        browser.wait_for_page("Presets")
        assert "preset=careful" in browser.driver.current_url  # the link says what is shown
        shared = browser.driver.current_url
        browser.driver.get("about:blank")
        browser.driver.get(shared)
        browser.wait_for_page("Presets")
        assert browser.main_selectbox_value() == "careful"


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
