"""The episode queue's SQLite file: schema, one connection, and transactions that commit buffered captures first."""

from __future__ import annotations

import os
import socket
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

from expscale_core.episode import Episode, EpisodeDraft
from expscale_core.episodes.group_commit import GroupCommit
from expscale_core.errors import QueueError

__all__ = ["PROCESSING", "QueueDatabase", "is_dead_owner"]

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS episodes (
    id TEXT PRIMARY KEY,
    namespace TEXT NOT NULL, tenant TEXT, agent TEXT, user TEXT,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    not_before REAL NOT NULL,
    lease_until REAL,
    owner TEXT,
    payload TEXT NOT NULL,
    error TEXT,
    raw_output TEXT,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS episodes_status ON episodes(status, not_before);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS early_outcomes (
    episode_id TEXT PRIMARY KEY, payload TEXT NOT NULL, received_at REAL, scope TEXT
);
CREATE TABLE IF NOT EXISTS served (
    episode_id TEXT NOT NULL,
    experience_id TEXT NOT NULL,
    served_at REAL NOT NULL,
    similarity REAL NOT NULL DEFAULT 1.0,
    verdict INTEGER NOT NULL DEFAULT 0,
    applied INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (episode_id, experience_id)
);
CREATE TABLE IF NOT EXISTS dead_letters (
    id TEXT NOT NULL, namespace TEXT, tenant TEXT, agent TEXT, user TEXT,
    error TEXT NOT NULL, input TEXT, at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS journal (
    name TEXT NOT NULL, owner TEXT NOT NULL, key TEXT NOT NULL, value TEXT, PRIMARY KEY (name, owner, key)
);
"""

PROCESSING = "processing"  # internal: claimed by a worker under a lease


class QueueDatabase:
    """One SQLite connection in WAL mode with ``secure_delete``; every write is one transaction that commits
    the captures buffered for group commit first, so no operation reads around them."""

    def __init__(self, path: str | Path, *, commit_interval_s: float, clock: Callable[[], float]) -> None:
        self.path = str(path)
        self._clock = clock
        self._buffer = GroupCommit(self.flush, commit_interval_s)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
            self._set_up()
        except sqlite3.Error as exc:
            raise QueueError(f"cannot open the episode queue at {self.path}: {exc}; check EXPSCALE_DATA_DIR") from exc
        self._lock = threading.Lock()
        self._owner = f"{socket.gethostname()}:{os.getpid()}"

    def _set_up(self) -> None:
        """WAL mode, the schema and its migrations. Processes that open a new data dir at the same moment race
        here: switching to WAL can report "locked" at once, without waiting out the busy timeout, and two
        processes can both add a missing column. Both are retried or taken as done, for up to 30 s."""
        deadline = time.monotonic() + 30
        while True:
            try:
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA secure_delete=ON")  # deleted rows are overwritten, not left in free pages
                self._db.execute("PRAGMA synchronous=NORMAL")
                self._db.executescript(_SCHEMA)
                columns = {row[1] for row in self._db.execute("PRAGMA table_info(early_outcomes)")}
                for column, kind in (("received_at", "REAL"), ("scope", "TEXT")):  # a 0.2.0 queue; before scopes
                    if column not in columns:
                        self._add_column("early_outcomes", column, kind)
                return
            except sqlite3.OperationalError as exc:
                if ("locked" not in str(exc) and "busy" not in str(exc)) or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def _add_column(self, table: str, column: str, kind: str) -> None:
        try:
            self._db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")
        except sqlite3.OperationalError as exc:
            if "duplicate column" not in str(exc):  # another process added it first: done
                raise

    def flush(self) -> None:
        """Commit everything captured so far."""
        if self._buffer:
            with self._tx():
                pass

    def _insert(self, db: sqlite3.Connection, episodes: Sequence[Episode | EpisodeDraft]) -> None:
        raise NotImplementedError  # the queue knows how an episode is stored

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """One transaction; buffered captures are committed in it first, so every operation sees them."""
        with self._lock:
            batch = self._buffer.drain()
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    if batch:
                        self._insert(self._db, batch)
                    yield self._db
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
                self._db.execute("COMMIT")
            except BaseException as exc:
                self._buffer.give_back(batch)  # not committed: keep them for the next try
                if isinstance(exc, sqlite3.Error):
                    raise QueueError(f"episode queue at {self.path} failed: {exc}") from exc
                raise

    def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        if self._buffer:
            self.flush()
        with self._lock:
            try:
                return fn(self._db)
            except sqlite3.Error as exc:
                raise QueueError(f"episode queue at {self.path} failed: {exc}") from exc

    def checkpoint(self) -> None:
        """Move the WAL into the database and truncate it, so deleted text survives in neither file."""
        self.flush()
        with self._lock:
            try:
                self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.Error as exc:
                raise QueueError(f"episode queue at {self.path} failed: {exc}") from exc


def is_dead_owner(owner: str | None, host: str) -> bool:
    if not owner or ":" not in owner:
        return False
    owner_host, _, pid = owner.rpartition(":")
    if owner_host != host or not pid.isdigit() or int(pid) == os.getpid():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, but someone else's
        return False
    return False
