"""One episode through the distiller into the store: its context, the decisions, the screens, the writes.

The LLM call and the optional LLM review run without the refine lock (they take seconds); everything that reads
and writes the targets runs under it, so a refine in between is never undone.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime

from expscale_core.distill.apply import StorePlan, plan_writes, retarget_unrelated, stable_id
from expscale_core.distill.base import Distiller
from expscale_core.distill.context import lesson_similarity, related_experiences
from expscale_core.embed.base import Embedder
from expscale_core.episode import Episode
from expscale_core.experience import Experience, ExperienceStatus
from expscale_core.safety.screen import quarantine_suspect
from expscale_core.safety.screen_llm import review_lessons
from expscale_core.settings import DistillSettings
from expscale_core.store.base import ExperienceStore

__all__ = ["distill_episode"]


def _quarantined_retire_nothing(plan: StorePlan, episode: Episode, existing: dict[str, Experience]) -> None:
    """A lesson held back as a possible injection must not take a good one's place: one hostile "correction"
    would otherwise erase the right answer for everyone. Its SUPERSEDE retires nothing, and its UPDATE
    becomes a record of its own beside the untouched original."""
    held = {e.id for e in plan.new if e.status is ExperienceStatus.QUARANTINED}
    if not held:
        return
    plan.changed = [e for e in plan.changed if e.superseded_by not in held]
    for i, exp in enumerate(plan.new):
        if exp.id not in held:
            continue
        update: dict[str, object] = {"supersedes": []}
        if exp.id in existing:  # an UPDATE of a good record: keep that record, hold this text apart
            update |= {
                "id": stable_id(episode, 1000 + i),
                "support": 1,
                "provenance": exp.provenance.model_copy(update={"source_episode_ids": [episode.id]}),
            }
        plan.new[i] = exp.model_copy(update=update)


def distill_episode(
    episode: Episode,
    *,
    store: ExperienceStore,
    embedder: Embedder,
    distiller: Distiller,
    served_ids: list[str],
    settings: DistillSettings,
    write_lock: threading.Lock,
    clock: Callable[[], datetime],
    screen_llm: Callable[[str, str], list[str]] | None = None,
) -> StorePlan:
    """Distill ``episode`` and write the result; returns what was written. Errors propagate to the caller,
    which decides between retry and failure (nothing is written before the distiller has answered)."""
    store.ensure_collection(embedder.dimension)
    similar, served = related_experiences(
        episode,
        store=store,
        embedder=embedder,
        served_ids=served_ids,
        similar_k=settings.similar_k,
        min_similarity=settings.related_min_similarity,
    )
    decisions = distiller.distill(episode, similar, served=served)
    if any(d.target_id is not None for d in decisions):
        decisions = retarget_unrelated(
            decisions,
            lesson_similarity(similar, store=store, embedder=embedder),
            floor=settings.related_min_similarity,
        )
    reviewed = review_lessons(decisions, screen_llm) if screen_llm is not None else {}
    with write_lock:
        # The targets are read again under the lock: a refine that ran during the LLM call may have merged one
        # away, and writing the old copy back would make it active again.
        current = {e.id: e for e, _ in store.get([e.id for e, _ in similar])}
        fresh = [current[e.id] for e, _ in similar if e.id in current]
        retired = {e.id for e in fresh if e.status is not ExperienceStatus.ACTIVE}
        if retired:
            decisions = retarget_unrelated(decisions, lambda d: -1.0 if d.target_id in retired else None, floor=0.0)
        plan = plan_writes(
            episode,
            decisions,
            [e for e in fresh if e.id not in retired],
            distiller=distiller.name,
            prompt_version=distiller.prompt_version,
            embedding_model=embedder.model_id,
            # read under the lock, after the LLM call: a refine's watermark must never be later than this
            now=clock(),
        )
        plan.new = [quarantine_suspect(e, also=reviewed.get(e.content, ())) for e in plan.new]
        _quarantined_retire_nothing(plan, episode, current)
        if plan.new:
            vectors = embedder.embed([e.embedding_text() for e in plan.new])
            store.upsert(list(zip(plan.new, vectors)))
        store.update(plan.changed)
    return plan
