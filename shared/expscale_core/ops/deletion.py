"""Complete deletion: an episode's text leaves every experience it reached, and no file keeps a copy.

A merged experience carries text from all its source episodes, so deleting one episode deletes every experience
derived from it and sends the *other* sources back to be distilled again: what they taught comes back without
the deleted text. Afterwards the queue's WAL is checkpointed (SQLite runs with ``secure_delete``) and the
embedded store compacted, so the bytes are gone from disk when the call returns.
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import TypeVar

from expscale_core.episode import Episode, utcnow
from expscale_core.episodes.queue import EpisodeQueue
from expscale_core.errors import ExpscaleError
from expscale_core.experience import Experience, ExperienceStatus
from expscale_core.scope import Scope
from expscale_core.store.base import Embedding, ExperienceStore
from expscale_core.store.deletion_log import Deletion

__all__ = ["Deleter", "GuardedStore", "Tombstones", "delete_episode", "delete_scope", "scrub"]

log = logging.getLogger(__name__)
V = TypeVar("V")
_PENDING_DELETE = "pending_delete"


class Tombstones:
    """What was deleted while this engine ran, numbered, so that work begun earlier cannot write it back.

    Background work (a distillation, a refine, a credit flush) notes :meth:`epoch` when it starts and writes
    through a :class:`GuardedStore` for that epoch: a record that carries a deleted episode or lies in a deleted
    scope is dropped instead of written. ``lock`` is held by every guarded write and by ``delete()``, never
    across an LLM call, so a delete waits at most for one store write. With ``shared``, deletions are also
    noted in the store and those of other engines on it are taken in (:mod:`expscale_core.store.deletion_log`).
    """

    def __init__(self, shared: ExperienceStore | None = None) -> None:
        self.lock = threading.RLock()
        self._items: list[tuple[int, str | None, Scope | None, datetime]] = []
        self.store = shared  # named like every stage's store, so the engine swaps it with the others
        self._seen: set[str] = set()
        self._requeue: list[str] = []

    @property
    def epoch(self) -> int:
        return len(self._items)

    def add_episode(self, episode_id: str) -> None:
        self._note(Deletion(str(uuid.uuid4()), episode_id, None, utcnow()))

    def add_scope(self, scope: Scope) -> None:
        self._note(Deletion(str(uuid.uuid4()), None, scope, utcnow()))

    def requeued(self, episode_ids: Sequence[str]) -> None:
        """Tell the other engines on the store to distil these again, if they hold them (this engine did)."""
        if episode_ids:
            self._note(Deletion(str(uuid.uuid4()), None, None, utcnow(), tuple(episode_ids)))

    def _note(self, deletion: Deletion) -> None:
        # In the shared store first: an engine that inserts after this delete scanned the store reads it there.
        if self.store is not None:
            self.store.note_deletion(deletion)
        self._seen.add(deletion.id)  # this engine does its own part itself
        self._append(deletion)

    def _append(self, deletion: Deletion) -> None:
        if deletion.episode_id is not None or deletion.scope is not None:
            self._items.append((len(self._items) + 1, deletion.episode_id, deletion.scope, deletion.at))

    def pull(self) -> None:
        """Take in the deletions other engines on the shared store noted since the last pull."""
        if self.store is None:
            return
        for deletion in self.store.deletions():
            if deletion.id not in self._seen:
                self._seen.add(deletion.id)
                self._append(deletion)
                self._requeue += deletion.requeue

    def take_requeue(self) -> list[str]:
        """Episodes other engines asked to be distilled again since the last call."""
        taken, self._requeue = self._requeue, []
        return taken

    def covers(self, episode: Episode) -> bool:
        """``episode`` was deleted, itself or with its scope, by any engine, after it started."""
        return any(
            (episode_id == episode.id or (scope is not None and scope.contains(episode.scope)))
            and at >= episode.started_at
            for _, episode_id, scope, at in self._items
        )

    def kills(self, exp: Experience, since: int) -> bool:
        """``exp`` holds something deleted after epoch ``since``."""
        for _, episode_id, scope, _ in self._items[since:]:
            if episode_id is not None and episode_id in exp.provenance.source_episode_ids:
                return True
            if scope is not None and scope.contains(exp.scope):
                return True
        return False


class GuardedStore:
    """A store whose writes skip what a delete removed after ``since`` (see :class:`Tombstones`).

    A record whose write was skipped is remembered, and a record that would retire in its favour (a merge's
    members, a superseded lesson) is not retired either: nothing points at a replacement that does not exist.
    A new record is checked again after it is inserted, against deletions other engines noted meanwhile, and
    removed if one covers it. Reads and everything else go straight to the store.
    """

    def __init__(
        self,
        store: ExperienceStore,
        tombstones: Tombstones,
        since: int | None = None,
        *,
        fence: Callable[[], None] | None = None,
    ) -> None:
        self._store = store
        self._fence = fence  # raises when the writer may no longer write (a refiner that lost its lease)
        self._tombstones = tombstones
        self._since = tombstones.epoch if since is None else since
        self._vetoed: set[str] = set()
        # Reads and housekeeping are the store's own.
        self.ensure_collection = store.ensure_collection
        self.search = store.search
        self.get = store.get
        self.scan = store.scan
        self.count = store.count
        self.delete = store.delete
        self.delete_scope = store.delete_scope
        self.compact = store.compact
        self.maintain = store.maintain
        self.acquire_lease = store.acquire_lease
        self.release_lease = store.release_lease
        self.note_deletion = store.note_deletion
        self.deletions = store.deletions
        self.close = store.close

    def _allowed(self, exp: Experience) -> bool:
        if self._tombstones.epoch > self._since and self._tombstones.kills(exp, self._since):
            self._vetoed.add(exp.id)
            return False
        return not (exp.status is not ExperienceStatus.ACTIVE and exp.superseded_by in self._vetoed)

    def _kept(self, items: Sequence[tuple[Experience, V]]) -> list[tuple[Experience, V]]:
        """What may be written now: the fence passed, other engines' deletions taken in, none of them hit."""
        if self._fence is not None:
            self._fence()
        self._tombstones.pull()
        return [(e, v) for e, v in items if self._allowed(e)]

    def upsert(self, items: Sequence[tuple[Experience, Embedding]]) -> None:
        with self._tombstones.lock:
            kept = self._kept(items)
            if kept:
                self._store.upsert(kept)
                self._recheck([e for e, _ in kept])

    def insert_new(self, items: Sequence[tuple[Experience, Embedding]]) -> dict[str, Experience]:
        with self._tombstones.lock:
            kept = self._kept(items)
            inserted = self._store.insert_new(kept) if kept else {}
            gone = self._recheck(list(inserted.values()))
            return {i: e for i, e in inserted.items() if i not in gone}

    def _recheck(self, written: list[Experience]) -> set[str]:
        """Remove what was just written if a deletion another engine noted meanwhile covers it."""
        epoch = self._tombstones.epoch
        self._tombstones.pull()
        gone = {e.id for e in written if self._tombstones.kills(e, epoch)} if self._tombstones.epoch > epoch else set()
        if gone:
            self._store.delete(sorted(gone))
            self._vetoed |= gone
        return gone

    def write_if(self, items: Sequence[tuple[Experience, Embedding | None]]) -> dict[str, Experience]:
        # No recheck: a conditional write only lands on a record that exists, and a delete removes it after.
        with self._tombstones.lock:
            kept = self._kept(items)
            return self._store.write_if(kept) if kept else {}

    def update(self, experiences: Sequence[Experience]) -> None:
        with self._tombstones.lock:
            kept = [e for e, _ in self._kept([(e, None) for e in experiences])]
            if self._tombstones.epoch > self._since:
                # A record deleted meanwhile must not be recreated by a payload update.
                present = {e.id for e, _ in self._store.get([e.id for e in kept])}
                kept = [e for e in kept if e.id in present]
            if kept:
                self._store.update(kept)


def _revived(records: Iterable[Experience], doomed: set[str]) -> list[Experience]:
    """Active copies of the records among ``records`` that were retired in favour of one in ``doomed`` and are
    not doomed themselves: with their replacement gone, they serve again."""
    return [
        e.model_copy(update={"status": ExperienceStatus.ACTIVE, "superseded_by": None})
        for e in records
        if e.status is ExperienceStatus.SUPERSEDED and e.superseded_by in doomed and e.id not in doomed
    ]


def delete_scope(store: ExperienceStore, queue: EpisodeQueue, scope: Scope) -> dict[str, int]:
    """Every experience and episode of ``scope``; returns how many of each.

    A lesson of another scope that was retired in favour of one deleted here (another user's copy, folded into
    the shared lesson when several users taught it) is active again: it never held this scope's text."""
    doomed = {e.id for e, _ in store.scan(scope=scope)}
    revived = _revived((e for e, _ in store.scan(statuses=[ExperienceStatus.SUPERSEDED])), doomed)
    counts = {"experiences": store.delete_scope(scope), "episodes": queue.delete_scope(scope)}
    store.update(revived)
    return counts


def delete_episode(store: ExperienceStore, queue: EpisodeQueue, episode_id: str) -> tuple[dict[str, int], list[str]]:
    """The episode, every experience it reached (merged ones included), and its co-sources re-queued.

    What a deleted experience had retired (the older answer it superseded, the members it was merged from) is
    active again when it holds none of the deleted text; the episodes such a record covers need no re-queue.
    """
    records = [e for e, _ in store.scan()]
    derived = {e.id for e in records if episode_id in e.provenance.source_episode_ids}
    revived = _revived(records, derived)
    covered = {s for e in revived for s in e.provenance.source_episode_ids}
    others = sorted(
        {s for e in records if e.id in derived for s in e.provenance.source_episode_ids} - covered - {episode_id}
    )
    store.delete(sorted(derived))
    store.update(revived)
    counts = {
        "experiences": len(derived),
        "episodes": queue.delete_episode(episode_id),
        "requeued": queue.requeue(others),
        "restored": len(revived),
    }
    return counts, others


def scrub(store: ExperienceStore, queue: EpisodeQueue) -> None:
    """Leave no copy of deleted data in the files: compact the store, checkpoint and truncate the WAL."""
    store.compact()
    queue.checkpoint()


class Deleter:
    """Deletes that are complete, durable and win over work in flight.

    The request is noted in the queue's meta table first: a process killed midway finishes the delete when
    the data dir is next opened (:meth:`finish_interrupted`).
    """

    def __init__(self, store: ExperienceStore, queue: EpisodeQueue, tombstones: Tombstones) -> None:
        self.store = store
        self.queue = queue
        self._tombstones = tombstones

    def delete(self, scope: Scope | None, episode_id: str | None) -> dict[str, int]:
        note = json.dumps({"scope": scope.model_dump() if scope else None, "episode_id": episode_id})
        self.queue.set_meta(_PENDING_DELETE, note)
        counts = self._delete(scope, episode_id)
        self.queue.set_meta(_PENDING_DELETE, "")
        return counts

    def _delete(self, scope: Scope | None, episode_id: str | None) -> dict[str, int]:
        # Only the tombstone lock, never the refine lock: a refine waiting on its LLM must not hold a delete up.
        with self._tombstones.lock:
            if scope is not None:
                self._tombstones.add_scope(scope)
                counts = delete_scope(self.store, self.queue, scope)
            else:
                assert episode_id is not None
                self._tombstones.add_episode(episode_id)
                counts, requeued = delete_episode(self.store, self.queue, episode_id)
                self._tombstones.requeued(requeued)
            scrub(self.store, self.queue)
        return counts

    def finish_interrupted(self) -> None:
        try:
            note = self.queue.get_meta(_PENDING_DELETE)
            if not note:
                return
            what = json.loads(note)
            scope = Scope.model_validate(what["scope"]) if what.get("scope") else None
            counts = self._delete(scope, what.get("episode_id"))
            self.queue.set_meta(_PENDING_DELETE, "")
        except ExpscaleError as exc:  # the store is down at start-up: the next open tries again
            log.warning("a delete that was interrupted could not be finished yet, will try again: %s", exc)
            return
        log.warning("finished a delete that an earlier process left half done: %s", counts)
