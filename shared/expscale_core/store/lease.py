"""A lease held in the store itself, so that one refiner at a time works on a memory that many engines share.

Taking a lease is a conditional write: an insert-only write when nobody held it yet, else a write conditioned
on the epoch and holder just read. Qdrant reports a rejected conditional write as a success, so every write is
read back, and the lease is taken only if what is stored is exactly what was written. The epoch grows by one at
every takeover and is the fencing token: a holder checks, before each write, that the lease still carries its
epoch (:func:`acquire` again renews it), so a refiner that stalled past its lease writes nothing more.

Expiry uses wall clocks (``time.time``): hosts sharing one store need them roughly in sync (NTP), and a lease
should last well beyond the clock skew between them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from expscale_core.errors import ExpscaleError

__all__ = ["LeaseCell", "LeaseLost", "LeaseState", "MemoryLeaseCell", "acquire", "release"]


class LeaseLost(ExpscaleError):
    """The lease was taken over (it ran out while its holder stalled): the holder must write nothing more."""


@dataclass(frozen=True)
class LeaseState:
    holder: str
    epoch: int
    """Grows by one at every takeover: the fencing token."""
    revision: int
    """Grows by one at every write, renewals included: what a conditional write is conditioned on, so that of a
    renewal and a takeover racing from the same read, exactly one lands."""
    expires_at: float


class LeaseCell(Protocol):
    """Where one store keeps its leases; both writes may be rejected silently, as Qdrant's are."""

    def read(self, name: str) -> LeaseState | None: ...

    def insert(self, name: str, state: LeaseState) -> None:
        """Write ``state`` only if no lease ``name`` exists."""
        ...

    def replace(self, name: str, state: LeaseState, *, expected: LeaseState) -> None:
        """Write ``state`` only if the stored lease is still at ``expected``'s revision."""
        ...


def acquire(
    cell: LeaseCell, name: str, holder: str, ttl_s: float, *, clock: Callable[[], float] = time.time
) -> int | None:
    """Take lease ``name`` for ``holder``, or renew it; its epoch, or None while someone else holds it."""
    if ttl_s <= 0:
        raise ValueError(f"a lease needs a positive duration, got ttl_s={ttl_s!r}")
    now = clock()
    current = cell.read(name)
    if current is None:
        wanted = LeaseState(holder, 1, 1, now + ttl_s)
        cell.insert(name, wanted)
    elif current.holder == holder:
        wanted = LeaseState(holder, current.epoch, current.revision + 1, now + ttl_s)
        cell.replace(name, wanted, expected=current)
    elif current.expires_at <= now:
        wanted = LeaseState(holder, current.epoch + 1, current.revision + 1, now + ttl_s)
        cell.replace(name, wanted, expected=current)
    else:
        return None
    return wanted.epoch if cell.read(name) == wanted else None


def release(cell: LeaseCell, name: str, holder: str, epoch: int) -> None:
    """Let the lease go at once if ``holder`` still holds it at ``epoch``; else do nothing. Whoever takes it next,
    this holder included, gets the next epoch: every tenure has its own fencing token."""
    current = cell.read(name)
    if current is not None and current.holder == holder and current.epoch == epoch:
        cell.replace(name, LeaseState("", epoch, current.revision + 1, 0.0), expected=current)


class MemoryLeaseCell:
    """Leases of a store that only one process can open (Qdrant Edge locks its folder): every engine sharing
    it lives in this process, so the cell lives here too."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._leases: dict[str, LeaseState] = {}

    def read(self, name: str) -> LeaseState | None:
        with self._lock:
            return self._leases.get(name)

    def insert(self, name: str, state: LeaseState) -> None:
        with self._lock:
            self._leases.setdefault(name, state)

    def replace(self, name: str, state: LeaseState, *, expected: LeaseState) -> None:
        with self._lock:
            now = self._leases.get(name)
            if now is not None and now.revision == expected.revision:
                self._leases[name] = state
