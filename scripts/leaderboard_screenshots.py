"""The docs' leaderboard pictures: the app on a results database, in headless Chromium
1600 px wide (1000 px for the leaderboard, taller where a page's plot would be cut), one PNG per
page, taken by the same code as the browser test (`tests/test_leaderboard_browser.py`).

    python scripts/compare_strategies.py compare --scenario proxy-20shot --seeds 0 1 2 --db cmp.db
    python scripts/leaderboard_screenshots.py --db cmp.db --out docs

Needs Debian's chromium and chromium-driver.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parent.parent / "tests"
sys.path.insert(0, str(TESTS))  # the browser driving code lives with its test

from test_leaderboard_browser import screenshot_pages  # noqa: E402

# page -> (the rest of its link, window height): what docs/leaderboard.md shows of each page
PAGES = {"Leaderboard": ("scenario=proxy-20shot", 1000),
         "Forgetting curves": ("scenario=proxy-20shot", 1000),
         "Trade-off": ("scenario=proxy-20shot", 1050),
         "Presets": ("scenario=proxy-20shot&preset=lorsu&compare=fft", 2700)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", required=True, help="results database (file path or URL)")
    parser.add_argument("--out", type=Path, default=Path("docs"), help="folder for the PNGs")
    args = parser.parse_args()
    for page, (query, height) in PAGES.items():
        for name, path in screenshot_pages(Path(args.db), args.out, {page: query},
                                           size=(1600, height)).items():
            print(f"{name}: {path}")


if __name__ == "__main__":
    main()
