"""The store's errors: every failure a caller can act on is a StoreError (a UserError)."""

from __future__ import annotations

from clbench.errors import UserError


class StoreError(UserError):
    """The results database cannot be opened, read or written as asked."""


class UnknownRun(StoreError):
    """No run has the id (or id prefix) that was asked for."""


class UncheckpointedLog(StoreError):
    """A store on a read-only disk with a write-ahead log beside it: rows the file may lack,
    which no reader there can fold in (it was published without a checkpoint)."""


class InvalidRecord(StoreError, ValueError):
    """A value the store refuses to record (e.g. an accuracy outside [0, 1]).

    It is also a ValueError because it usually means a bug in the caller, not a user mistake.
    """
