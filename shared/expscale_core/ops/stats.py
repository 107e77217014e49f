"""What ``engine.stats()`` and ``expscale stats`` report: counts and memory quality, read from the store and queue.

Everything here is persisted state (the store, the queue's tables and counters), so every process on a data dir,
the CLI included, sees the same figures.
"""

from __future__ import annotations

from pydantic import BaseModel

from expscale_core.episodes.queue import EpisodeQueue
from expscale_core.experience import ExperienceStatus
from expscale_core.ops.quality import MemoryQuality, memory_quality
from expscale_core.scoring import count_tokens
from expscale_core.store.base import ExperienceStore

__all__ = ["LLM_COUNTERS", "EngineStats", "collect_stats"]

LLM_COUNTERS = ("llm_calls", "llm_prompt_tokens", "llm_completion_tokens")
"""Queue meta counters that every process adds its LLM usage to."""


class EngineStats(BaseModel):
    """A snapshot of the engine's store and queue, with memory-quality figures. LLM counters are totals
    over every process that used this data dir."""

    experiences: dict[str, int]
    active_tokens: int
    episodes: dict[str, int]
    dead_letters: int = 0
    """Captured episodes that could not be stored (``expscale episodes --dead-letters`` says why)."""
    embedder: str
    distiller: str
    llm_calls: int
    llm_prompt_tokens: int
    llm_completion_tokens: int
    quality: MemoryQuality


def collect_stats(
    store: ExperienceStore, queue: EpisodeQueue, *, embedder: str, distiller: str, duplicate_threshold: float
) -> EngineStats:
    by_status = {s.value: store.count(statuses=[s]) for s in ExperienceStatus}
    active = list(store.scan(statuses=[ExperienceStatus.ACTIVE], with_vectors=True))
    repaired = sum(1 for e, _ in store.scan() if e.provenance.repairs)
    quality = memory_quality(
        active, by_status, repaired, queue.verdict_counts(), duplicate_threshold=duplicate_threshold
    )
    totals = {k: int(queue.get_meta(k) or 0) for k in LLM_COUNTERS}
    return EngineStats(
        experiences=by_status,
        active_tokens=sum(count_tokens(e.content) for e, _ in active),
        episodes=queue.counts(),
        dead_letters=queue.dead_letter_count(),
        embedder=embedder,
        distiller=distiller,
        llm_calls=totals["llm_calls"],
        llm_prompt_tokens=totals["llm_prompt_tokens"],
        llm_completion_tokens=totals["llm_completion_tokens"],
        quality=quality,
    )
