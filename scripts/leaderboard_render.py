"""How long the leaderboard takes on a store of 1,000 runs (synthetic, written to a temp file).

    python scripts/leaderboard_render.py [--runs 1000] [--repeat 5] [--browser]

Prints, best of `--repeat`, each from a freshly opened store and with the app's caches cleared:
- reference: `Store.list_runs()`, the raw read behind `clbench runs`;
- data: the leaderboard's bulk queries (runs, sessions) into pandas frames (`data.load`);
- table: the leaderboard table from those frames (`tables.leaderboard`);
- page: the whole Streamlit script for the Leaderboard page (Streamlit's AppTest, no browser):
  store opening, queries, table and the dataframe element sent to the browser;
- with --browser: seconds from loading the page in headless Chromium to the table being drawn,
  first on a store of one run (the fixed cost of the Streamlit frontend and server), then on
  the big store; each on a fresh server (first load), then reloaded (warm server, the store
  read cached for 30 s as in the app); needs Debian's chromium and chromium-driver.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from clbench.store import Store

TESTS = Path(__file__).resolve().parent.parent / "tests"
sys.path.insert(0, str(TESTS))  # the synthetic runs are test data: tests/leaderboard_synthetic.py

from leaderboard_synthetic import Spec, add_run, fast_writes  # noqa: E402

STRATEGIES = ("fft", "ln", "lora", "dora", "gated-lora", "gated-dora", "spu", "lorsu", "llu",
              "zeroshot")


def seed(path: Path, n_runs: int) -> None:
    """n_runs completed runs: 10 strategies x 5 learning rates x seeds, 5 sessions each."""
    store = Store(f"sqlite:///{path}")
    fast_writes(store)
    lrs = (1e-5, 2e-5, 1e-4, 3e-4, 1e-3)
    for k in range(n_runs):
        strategy = STRATEGIES[k % len(STRATEGIES)]
        lr = lrs[(k // len(STRATEGIES)) % len(lrs)]
        run_seed = k // (len(STRATEGIES) * len(lrs))
        spec = Spec(strategy, gain=0.05 + 0.04 * (k % 10), drop=0.02 * (k % 7), lr=lr,
                    sessions=5, shots=20, scenario="syn-20shot")
        add_run(store, spec, run_seed)
    store.close()


def best_of(repeat: int, fn) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--browser", action="store_true", help="also time headless Chromium")
    args = parser.parse_args()

    import streamlit as st
    from streamlit.testing.v1 import AppTest

    from clbench.cli.app import app_script
    from clbench.leaderboard_app import data as lb_data
    from clbench.leaderboard_app import tables

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "results.db"
        start = time.perf_counter()
        seed(path, args.runs)
        print(f"seeded {args.runs} runs in {time.perf_counter() - start:.1f} s "
              f"({path.stat().st_size / 1e6:.1f} MB)")

        def reference():
            with Store(f"sqlite:///{path}", create=False) as store:
                assert len(store.list_runs()) == args.runs

        loaded = {}

        def data():
            store = lb_data.open_store(str(path))
            loaded["data"] = lb_data.load(store)
            store.close()

        def table():
            runs = loaded["data"].runs
            loaded["table"] = tables.leaderboard(runs, tables.Filters(
                scenario="syn-20shot", backbone="ViT-B-16@openai"))

        os.environ["CLBENCH_DB"] = str(path)
        AppTest.from_file(str(app_script()), default_timeout=120).run()  # imports, once

        def page():
            st.cache_resource.clear()
            st.cache_data.clear()
            at = AppTest.from_file(str(app_script()), default_timeout=120).run()
            assert not at.exception and len(at.dataframe[0].value) == len(loaded["table"])

        results = {"reference (Store.list_runs)": best_of(args.repeat, reference),
                   "data (2 bulk queries -> frames)": best_of(args.repeat, data),
                   "table (leaderboard from frames)": best_of(args.repeat, table)}
        results["page (Streamlit script, cold caches)"] = best_of(args.repeat, page)
        print(f"leaderboard rows: {len(loaded['table'])} (presets + zero-shot), "
              f"best of {args.repeat}:")
        for name, seconds in results.items():
            print(f"  {name:<44} {seconds * 1000:8.0f} ms")
        if args.browser:
            from test_leaderboard_browser import screenshot_leaderboard

            small = Path(tmp) / "one-run.db"
            seed(small, 1)
            for name, db in (("browser, 1 run (frontend baseline)", small),
                             (f"browser, {args.runs} runs", path)):
                first, reload = screenshot_leaderboard(db, Path(tmp) / "shot.png")
                print(f"  {name + ', first load':<44} {first * 1000:8.0f} ms")
                print(f"  {name + ', reload':<44} {reload * 1000:8.0f} ms")


if __name__ == "__main__":
    main()
