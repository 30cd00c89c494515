"""The README's leaderboard pictures: the app on a results database, in headless Chromium at
1600x1000, one PNG per page, taken by the same code as the browser test
(`tests/test_leaderboard_browser.py`).

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

# page -> the rest of its link: what the README shows of each page
PAGES = {"Leaderboard": "scenario=proxy-20shot",
         "Forgetting curves": "scenario=proxy-20shot",
         "Trade-off": "scenario=proxy-20shot",
         "Presets": "scenario=proxy-20shot&preset=lorsu&compare=fft"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", required=True, help="results database (file path or URL)")
    parser.add_argument("--out", type=Path, default=Path("docs"), help="folder for the PNGs")
    args = parser.parse_args()
    for page, path in screenshot_pages(Path(args.db), args.out, PAGES).items():
        print(f"{page}: {path}")


if __name__ == "__main__":
    main()
