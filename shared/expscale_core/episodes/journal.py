"""Small durable notes beside the queue: counters, markers, and undo journals for all-or-nothing store writes."""

from __future__ import annotations

import socket
import sqlite3
from collections.abc import Mapping

from expscale_core.episodes.db import QueueDatabase, is_dead_owner

__all__ = ["Journal"]


class Journal(QueueDatabase):
    def add_meta_counts(self, deltas: dict[str, int]) -> None:
        """Add to persistent counters (LLM calls and tokens across processes)."""
        with self._tx() as db:
            for key, delta in deltas.items():
                row = db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
                total = (int(row[0]) if row else 0) + delta
                db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, str(total)))

    def get_meta(self, key: str) -> str | None:
        row = self._read(lambda db: db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone())
        return str(row[0]) if row else None

    def set_meta(self, key: str, value: str) -> None:
        with self._tx() as db:
            db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    # -- undo journal for store writes that must be all-or-nothing (import) -------------------

    def journal_begin(self, name: str, entries: Mapping[str, str | None]) -> None:
        """Durably note, before a multi-record store write starts, how to undo it: per record key, its
        previous state (None: it did not exist). A process killed midway leaves the note for the next one."""
        with self._tx() as db:
            db.execute("DELETE FROM journal WHERE name=? AND owner=?", (name, self._owner))
            db.executemany(
                "INSERT INTO journal (name, owner, key, value) VALUES (?, ?, ?, ?)",
                [(name, self._owner, key, value) for key, value in entries.items()],
            )

    def _journal_owners(self, db: sqlite3.Connection, name: str) -> list[str]:
        """This process, and processes on this host that died with a note open. Another live process's
        write in progress (a shared data dir) is not ours to undo."""
        owners = [r[0] for r in db.execute("SELECT DISTINCT owner FROM journal WHERE name=?", (name,))]
        host = socket.gethostname()
        return [o for o in owners if o == self._owner or is_dead_owner(o, host)]

    def journal(self, name: str) -> dict[str, str | None]:
        def read(db: sqlite3.Connection) -> dict[str, str | None]:
            out: dict[str, str | None] = {}
            for owner in self._journal_owners(db, name):
                sql = "SELECT key, value FROM journal WHERE name=? AND owner=?"
                out.update(db.execute(sql, (name, owner)).fetchall())
            return out

        return self._read(read)

    def journal_clear(self, name: str) -> None:
        """Forget the notes :meth:`journal` returned (the write finished, or it was undone)."""
        with self._tx() as db:
            for owner in self._journal_owners(db, name):
                db.execute("DELETE FROM journal WHERE name=? AND owner=?", (name, owner))
