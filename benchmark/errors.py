"""Errors that the CLI turns into a one-line message and a non-zero exit, without a traceback."""

from __future__ import annotations


class UserError(Exception):
    """Something the user can fix: bad input, a missing dataset, an unwritable path.

    `hint` says what to do about it; the CLI prints `error: <message>` and, if given,
    `hint: <hint>`.
    """

    exit_code = 2

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.hint = hint


def report(err: UserError) -> int:
    """Print `error: ...` and `hint: ...` on stderr, as every command does; the exit status."""
    import sys

    print(f"error: {err}", file=sys.stderr)
    if err.hint:
        print(f"hint: {err.hint}", file=sys.stderr)
    return err.exit_code


class ConfigError(UserError):
    """A run configuration key is unknown or its value is invalid; the message names the key.

    Without an explicit hint it points to where the keys and their ranges are listed.
    """

    def __init__(self, message: str, hint: str | None = None):
        if hint is None:
            hint = ("`clbench list strategies -v` lists every strategy parameter with its range"
                    if message.startswith("strategy.") else
                    "`clbench run --help` lists the config keys; `--set key=value` overrides one")
        super().__init__(message, hint)


class TrainingDiverged(UserError):
    """The loss became NaN or infinite; the run is marked failed."""

    exit_code = 3
