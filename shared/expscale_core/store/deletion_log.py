"""Deletions every engine sharing a store honours: each ``delete()`` is noted in the store before it runs.

An engine's own deletes win over its work in flight through its tombstones (:mod:`expscale_core.ops.deletion`).
Engines on other processes or machines learn of them here: they read the log before they distill an episode and
after every insert, and drop what a deletion covers. The note is written before the delete starts, so an engine
that inserts after the delete scanned the store reads the note after its insert and removes what it wrote.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime

from expscale_core.scope import Scope

__all__ = ["Deletion", "MemoryDeletionLog"]


@dataclass(frozen=True)
class Deletion:
    id: str
    episode_id: str | None
    scope: Scope | None
    at: datetime
    """When it was noted: it covers episodes that started before (a scope can be used again afterwards)."""
    requeue: tuple[str, ...] = ()
    """Episodes to distil again, wherever they are queued: the other sources of lessons a deleted episode reached."""


class MemoryDeletionLog:
    """The log of a store that only one process can open (Qdrant Edge): its engines all live in this process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: list[Deletion] = []

    def note_deletion(self, deletion: Deletion) -> None:
        with self._lock:
            self._items.append(deletion)

    def deletions(self) -> list[Deletion]:
        with self._lock:
            return list(self._items)
