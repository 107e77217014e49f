"""What ``engine.stats()`` and ``expscale stats`` report: counts and memory quality, read from the store and queue.

Everything here is persisted state (the store, the queue's tables and counters), so every process on a data dir,
the CLI included, sees the same figures.
"""

from __future__ import annotations

from collections.abc import Iterable

from pydantic import BaseModel

from expscale_core.episodes.queue import EpisodeQueue
from expscale_core.experience import Experience, ExperienceStatus
from expscale_core.ops.quality import MemoryQuality, memory_quality
from expscale_core.scoring import count_tokens
from expscale_core.store.base import ExperienceStore

__all__ = ["LLM_COUNTERS", "DeploymentFigures", "EngineStats", "by_deployment", "collect_stats"]

LLM_COUNTERS = ("llm_calls", "llm_prompt_tokens", "llm_completion_tokens")
"""Queue meta counters that every process adds its LLM usage to."""


class DeploymentFigures(BaseModel):
    """The active experiences one deployment wrote first, and how their serves were rated: a frontend whose
    lessons mostly hurt the others shows here."""

    active: int = 0
    helpful: int = 0
    harmful: int = 0
    confirmed_by_others: int = 0
    """Of those, how many another deployment confirmed (learned too, or merged with its own)."""


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
    deployments: dict[str, DeploymentFigures] = {}
    """By the deployment that wrote each active experience first (``unknown`` for records from before 0.3)."""


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
        deployments=by_deployment(e for e, _ in active),
    )


def by_deployment(active: Iterable[Experience]) -> dict[str, DeploymentFigures]:
    """Figures per deployment that first wrote each of ``active``."""
    out: dict[str, DeploymentFigures] = {}
    for e in active:
        names = e.provenance.deployments
        figures = out.setdefault(names[0] if names else "unknown", DeploymentFigures())
        figures.active += 1
        figures.helpful += e.helpful
        figures.harmful += e.harmful
        figures.confirmed_by_others += len(names) > 1
    return dict(sorted(out.items()))
