"""The experience store port."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Protocol, runtime_checkable

from expscale_core.experience import Experience, ExperienceStatus
from expscale_core.scope import Scope
from expscale_core.store.deletion_log import Deletion

__all__ = ["Embedding", "ExperienceStore", "Keys", "Vector"]

Vector = list[float]
Keys = list[Vector]
"""A record's retrieval keys: its own vector first (what reads return, and what clustering and duplicate checks
compare), then one per request phrasing it applies to (:meth:`Experience.retrieval_keys`)."""
Embedding = Vector | Keys
"""What a write takes: one vector, or a record's retrieval keys."""


@runtime_checkable
class ExperienceStore(Protocol):
    """Persists experiences with their vectors and answers scoped similarity queries.

    Contracts:
        - ids are the experiences' own ids and are stable across restarts;
        - every read takes a scope and applies it inside the query (never by filtering results);
          ``scope=None`` searches every scope (an operator's view, never a prompt's);
          ``exact_scope=True`` matches only records written to exactly that scope (unset fields unset too),
          which is what every write path (distillation, merge, caps) uses; ``as_reader=True`` (serving a prompt)
          sees what a reader in ``scope`` may read instead: its own line of scopes, what is shared with its
          namespace and what is published to it (:func:`expscale_core.store._records.reader_lines`);
        - ``search`` similarity is cosine in [-1, 1], higher is better, results best first; a record written with
          several keys scores by its best key (a store created before retrieval keys keeps the first key only);
        - reads with vectors give each record's own vector (the first key);
        - ``update`` rewrites payloads only, vectors are kept;
        - every write gives the record a new ``revision``; ``write_if`` writes only over the revision it was given;
        - errors are raised as :class:`~expscale_core.errors.StoreError`.
    """

    def ensure_collection(self, dimension: int) -> None:
        """Create the collection, or check an existing one has ``dimension`` and cosine distance."""
        ...

    def upsert(self, items: Sequence[tuple[Experience, Embedding]]) -> None: ...

    def update(self, experiences: Sequence[Experience]) -> None: ...

    def insert_new(self, items: Sequence[tuple[Experience, Embedding]]) -> dict[str, Experience]:
        """Insert the records whose ids do not exist yet; never overwrite one that does. Returns the records
        inserted, by id (read back: two writers inserting one id at once, exactly one of them gets it)."""
        ...

    def write_if(self, items: Sequence[tuple[Experience, Embedding | None]]) -> dict[str, Experience]:
        """Write each record only if the stored one is still at the record's ``revision`` (what the writer read):
        its payload, and its vector (or keys) when given. Returns the records written, by id, with their new
        revisions; an id missing from it was changed or deleted meanwhile and was not written (read it again).
        Qdrant rejects a conditional write silently, so implementations read back what they wrote."""
        ...

    def search(
        self,
        vector: Vector,
        *,
        scope: Scope | None,
        limit: int,
        min_similarity: float | None = None,
        statuses: Sequence[ExperienceStatus] = (ExperienceStatus.ACTIVE,),
        exact_scope: bool = False,
        as_reader: bool = False,
    ) -> list[tuple[Experience, float]]: ...

    def get(self, ids: Sequence[str], *, with_vectors: bool = False) -> list[tuple[Experience, Vector | None]]:
        """The records that exist among ``ids``, in the order given; missing ids are skipped."""
        ...

    def scan(
        self,
        *,
        scope: Scope | None = None,
        statuses: Sequence[ExperienceStatus] | None = None,
        with_vectors: bool = False,
    ) -> Iterator[tuple[Experience, Vector | None]]:
        """Every record in ``scope`` (all scopes when None) with one of ``statuses`` (all when None)."""
        ...

    def count(self, *, scope: Scope | None = None, statuses: Sequence[ExperienceStatus] | None = None) -> int: ...

    def delete(self, ids: Sequence[str]) -> None: ...

    def delete_scope(self, scope: Scope) -> int:
        """Delete every record a read with ``scope`` would see; return how many."""
        ...

    def compact(self) -> None:
        """Make deletions physical: afterwards no file of the store holds a deleted record's text. May do
        nothing where the backend does this by itself (a Qdrant server vacuums on its own schedule)."""
        ...

    def maintain(self) -> bool:
        """Background housekeeping (index building, compaction) when it is due; the engine calls it from its
        worker, never on a caller's thread. Returns True when it did something. May do nothing."""
        ...

    def acquire_lease(self, name: str, holder: str, ttl_s: float) -> int | None:
        """Take lease ``name`` for ``holder`` for ``ttl_s`` seconds, or renew it: its epoch, which grows at every
        takeover, or None while another holder's lease runs. Engines sharing the store refine one at a time
        through it (:mod:`expscale_core.store.lease`)."""
        ...

    def release_lease(self, name: str, holder: str, epoch: int) -> None:
        """End the lease now if ``holder`` still holds it at ``epoch``; otherwise do nothing."""
        ...

    def note_deletion(self, deletion: Deletion) -> None:
        """Record, before a delete runs, what it deletes, for every engine sharing the store
        (:mod:`expscale_core.store.deletion_log`)."""
        ...

    def deletions(self) -> list[Deletion]:
        """Every deletion noted so far, by any engine."""
        ...

    def close(self) -> None: ...
