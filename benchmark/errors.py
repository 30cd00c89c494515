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


class ConfigError(UserError):
    """A run configuration key is unknown or its value is invalid; the message names the key."""


class TrainingDiverged(UserError):
    """The loss became NaN or infinite; the run is marked failed."""

    exit_code = 3
