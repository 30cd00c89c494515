"""`clbench app`: start the leaderboard (a Streamlit app) on a results database, with the
published numbers of `--published FILE` as reported rows beside the built-in ones.

Importing this module is cheap (no streamlit, pandas or torch), so that `clbench --help` stays
quick; streamlit is looked for only when the command runs.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import signal
import subprocess
import sys
from pathlib import Path

from clbench.errors import UserError

APP_EXTRA_HINT = 'pip install "clbench[app]" (streamlit and plotly)'


def app_script() -> Path:
    """The Streamlit script of the leaderboard (also what `streamlit run` deploys)."""
    spec = importlib.util.find_spec("clbench.leaderboard_app")
    if spec is None or not spec.submodule_search_locations:
        raise UserError("the clbench.leaderboard_app package is missing from this install",
                        hint='reinstall clbench: pip install -e ".[app]"')
    return Path(list(spec.submodule_search_locations)[0]) / "app.py"


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    app = sub.add_parser(
        "app", help="the leaderboard web app (Streamlit) on a results database",
        description="Start the leaderboard on a results database, read-only: it never writes "
        "to the database. Deploy it on its own with `streamlit run "
        "leaderboard_app/app.py -- --db URL`.")
    app.add_argument("--db", metavar="URL", help="results database: an SQLAlchemy URL or a "
                     "file path (default: $CLBENCH_DB, else ./clbench.db)")
    app.add_argument("--port", type=int, default=8501, help="port to serve on (default 8501)")
    app.add_argument("--address", metavar="HOST", help="address to bind (default: Streamlit's, "
                     "all interfaces)")
    app.add_argument("--published", metavar="FILE", action="append", default=[],
                     help="also show this file's published numbers as reported rows "
                     "(repeatable; checked before the server starts, as `clbench published "
                     "check FILE` does; the built-in ones are always shown)")
    return app


def streamlit_command(args: argparse.Namespace) -> list[str]:
    """The `python -m streamlit run ...` command line for these arguments."""
    from clbench.store import resolve_db_url

    if not 0 < args.port < 65536:
        raise UserError(f"--port must be between 1 and 65535, got {args.port}")
    command = [sys.executable, "-m", "streamlit", "run", str(app_script()),
               "--server.port", str(args.port), "--server.headless", "true",
               "--browser.gatherUsageStats", "false", "--client.toolbarMode", "viewer"]
    if args.address:
        command += ["--server.address", args.address]
    command += ["--", "--db", resolve_db_url(args.db)]
    for path in published_files(args):
        command += ["--published", str(path)]
    return command


def published_files(args: argparse.Namespace) -> list[Path]:
    """The --published files, each checked now (a mistake is a UserError naming the file and
    the entry, before any server starts) and passed on as an absolute path."""
    from clbench.published import load_file

    files = [Path(p).expanduser().resolve() for p in getattr(args, "published", None) or []]
    for path in files:
        load_file(path)
    return files


def cmd_app(args: argparse.Namespace) -> int:
    if importlib.util.find_spec("streamlit") is None or importlib.util.find_spec("plotly") is None:
        raise UserError("the leaderboard app needs streamlit and plotly, which are not installed",
                        hint=APP_EXTRA_HINT)
    from clbench.store import resolve_db_url

    command = streamlit_command(args)
    print(f"leaderboard on http://{args.address or 'localhost'}:{args.port} "
          f"(database {resolve_db_url(args.db)}, read-only); Ctrl-C stops it", file=sys.stderr)
    return serve(command)


def serve(command: list[str]) -> int:
    """Run the server so that stopping `clbench app` stops it. On POSIX the server replaces this
    process (exec): one process, which SIGINT and SIGTERM reach directly. Elsewhere it runs as a
    child to which both signals are forwarded, and this process waits for it."""
    sys.stdout.flush()
    sys.stderr.flush()
    if os.name == "posix":
        os.execv(command[0], command)  # does not return
    child = subprocess.Popen(command)

    def forward(signum, frame):
        child.send_signal(signum)

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, forward)
    return child.wait()
