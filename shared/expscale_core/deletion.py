"""Complete deletion: an episode's text leaves every experience it reached, and no file keeps a copy.

A merged experience carries text from all its source episodes, so deleting one episode deletes every experience
derived from it and sends the *other* sources back to be distilled again: what they taught comes back without
the deleted text. Afterwards the queue's WAL is checkpointed (SQLite runs with ``secure_delete``) and the
embedded store compacted, so the bytes are gone from disk when the call returns.
"""

from __future__ import annotations

from expscale_core.queue import EpisodeQueue
from expscale_core.scope import Scope
from expscale_core.store.base import ExperienceStore

__all__ = ["delete_episode", "delete_scope", "scrub"]


def delete_scope(store: ExperienceStore, queue: EpisodeQueue, scope: Scope) -> dict[str, int]:
    """Every experience and episode of ``scope``; returns how many of each."""
    return {"experiences": store.delete_scope(scope), "episodes": queue.delete_scope(scope)}


def delete_episode(store: ExperienceStore, queue: EpisodeQueue, episode_id: str) -> dict[str, int]:
    """The episode, every experience it reached (merged ones included), and its co-sources re-queued."""
    derived = [e for e, _ in store.scan() if episode_id in e.provenance.source_episode_ids]
    others = sorted({s for e in derived for s in e.provenance.source_episode_ids if s != episode_id})
    store.delete([e.id for e in derived])
    return {
        "experiences": len(derived),
        "episodes": queue.delete_episode(episode_id),
        "requeued": queue.requeue(others),
    }


def scrub(store: ExperienceStore, queue: EpisodeQueue) -> None:
    """Leave no copy of deleted data in the files: compact the store, checkpoint and truncate the WAL."""
    store.compact()
    queue.checkpoint()
