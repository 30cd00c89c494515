"""The results database: runs, their sessions, and the evaluations after every session.

Every run of the benchmark is recorded here, and the leaderboard app and the quick CLI commands
(`clbench runs`, `clbench show`) read it back. It is a plain SQLAlchemy 2.x ORM over an SQLite
file by default; any SQLAlchemy URL works (e.g. PostgreSQL for a shared leaderboard).

Two promises shape the code:

- A run's status is always true. Writes happen call by call, each in its own transaction, so a
  crash loses at most the session in flight; a run whose process died without saying so (SIGKILL,
  OOM killer, power loss, a lost machine) stops its heartbeat and is marked failed by
  `mark_stale_runs`, which readers call first, on any host (on the run's own host at once, when
  its process is gone).
- Opening is cheap. This package must not import torch, avalanche or open_clip, so that
  `clbench runs` answers in well under two seconds.

The schema is versioned in `schema_info`; a database written by another schema version is
refused with a message saying what was found, what is expected and what to do about it, and a
database that is not clbench's is refused before anything in it changes.

Modules, one job each: `schema` (tables, version, stored types), `location` (URLs, the SQLite
file and whether it can be written), `opening` (engine, creating and checking the schema),
`liveness` (is a "running" run still alive), `writes` (records and their validation), `reads`
(listings, bulk reads, finding runs by id prefix); `base` (the connection, transactions, lock
retries, `close_all`), `writer` and `reader` (the two halves of `Store`). `Store`, here, is
those halves together.
"""

from __future__ import annotations

from clbench.store.base import close_all
from clbench.store.errors import InvalidRecord, StoreError, UncheckpointedLog, UnknownRun
from clbench.store.location import (
    DEFAULT_DB,
    check_writable,
    read_only_url,
    resolve_db_url,
)
from clbench.store.reader import StoreReader
from clbench.store.schema import SCHEMA_VERSION
from clbench.store.writer import StoreWriter

__all__ = [
    "DEFAULT_DB",
    "SCHEMA_VERSION",
    "InvalidRecord",
    "Store",
    "StoreError",
    "UncheckpointedLog",
    "UnknownRun",
    "LazyStore",
    "check_writable",
    "close_all",
    "read_only_url",
    "resolve_db_url",
]


class Store(StoreWriter, StoreReader):
    """The results database. Each method is one transaction, committed before it returns.

    `Store(url)` opens a database to record runs, creating it if missing. `create=False` opens
    an existing one (never creates a file) and still marks stale runs failed when it can
    write. `read_only=True` is for readers that must never write (the leaderboard app): the
    file must exist, SQLite opens it through a `mode=ro` URI, no stale runs are marked and
    every write method raises StoreError. `shown_as` is how pages name the database (by
    default its file path or URL without password). A reader of a store on a read-only disk
    opens it as immutable (see `StoreBase`).
    """


class LazyStore:
    """A results database that is checked now and opened (the file created) on first use.

    `clbench run` and `clbench tune` check the location at once, so an unwritable path fails
    before any work, but create nothing until a run passes every check on the user's input
    and is about to be recorded: a refused run leaves no empty database behind. Calling the
    object opens the store once and returns it.
    """

    def __init__(self, url: str):
        check_writable(url)
        self.url = url
        self._store: Store | None = None

    def __call__(self) -> Store:
        if self._store is None:
            self._store = Store(self.url)
        return self._store
