"""What a store offers engines that share it: the refine lease and the deletion log, over the store's own cells."""

from __future__ import annotations

from typing import Protocol

from expscale_core.store.deletion_log import Deletion
from expscale_core.store.lease import LeaseCell, acquire, release

__all__ = ["Coordinated", "DeletionLog"]


class DeletionLog(Protocol):
    def note_deletion(self, deletion: Deletion) -> None: ...

    def deletions(self) -> list[Deletion]: ...


class Coordinated:
    """Mixed into a store: ``_leases`` and ``_deletions`` are where it keeps them (in memory for a store one
    process owns, in a side collection on a Qdrant server)."""

    _leases: LeaseCell
    _deletions: DeletionLog

    def acquire_lease(self, name: str, holder: str, ttl_s: float) -> int | None:
        return acquire(self._leases, name, holder, ttl_s)

    def release_lease(self, name: str, holder: str, epoch: int) -> None:
        release(self._leases, name, holder, epoch)

    def note_deletion(self, deletion: Deletion) -> None:
        self._deletions.note_deletion(deletion)

    def deletions(self) -> list[Deletion]:
        return self._deletions.deletions()
