"""One episode through the distiller into the store: its context, the decisions, the screens, the writes.

The LLM call and the optional LLM review run without the refine lock (they take seconds); everything that reads
and writes the targets runs under it, so a refine in between is never undone.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime

from expscale_core.distill.apply import StorePlan, plan_writes, reinforced, retarget_unrelated, stable_id
from expscale_core.distill.base import Decision, Distiller
from expscale_core.distill.context import lesson_similarity, related_experiences
from expscale_core.embed.base import Embedder
from expscale_core.embed.keys import embed_keys
from expscale_core.episode import Episode
from expscale_core.errors import StoreError
from expscale_core.experience import Experience, ExperienceStatus
from expscale_core.safety.screen import quarantine_suspect
from expscale_core.safety.screen_llm import review_lessons
from expscale_core.settings import DistillSettings
from expscale_core.share.policy import SharePolicy, attribute, confirmer, keep_others_text, trusted
from expscale_core.share.promote import corroborate
from expscale_core.store.base import Embedding, ExperienceStore
from expscale_core.store.contention import WRITE_ROUNDS, pause

__all__ = ["distill_episode"]


class WriteConflict(StoreError):
    """Other engines kept changing the records this episode writes to; it waits and is tried again (a
    :class:`StoreError`, so it never counts against the episode's attempts)."""


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
    deployment: str | None = None,
    share: SharePolicy | None = None,
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
    share = share or SharePolicy()
    confirm = confirmer(episode, share)
    reviewed = review_lessons(decisions, screen_llm) if screen_llm is not None else {}
    with write_lock:
        # Across engines sharing the store, every write is conditional on what was read: a target changed by
        # another engine meanwhile is read again and the decisions re-applied to it (they are idempotent per
        # episode), so no engine's reinforcement or update is lost.
        for attempt in range(WRITE_ROUNDS):
            if attempt:
                pause(attempt)
            # The targets are read again under the lock: a refine that ran during the LLM call may have merged one
            # away, and writing the old copy back would make it active again.
            current = {e.id: e for e, _ in store.get([e.id for e, _ in similar])}
            fresh = [current[e.id] for e, _ in similar if e.id in current]
            retired = {e.id for e in fresh if e.status is not ExperienceStatus.ACTIVE}
            planned = decisions
            if retired:
                planned = retarget_unrelated(decisions, _against(retired), floor=0.0)
            # An untrusted source may add its own lessons, never rewrite or retire one that others read; judged on
            # the targets as they are now (a promotion during the LLM call may have shared one).
            planned = keep_others_text(planned, fresh, trusted=trusted(episode))
            now = clock()  # read under the lock, after the LLM call: a refine's watermark must never be later
            plan = plan_writes(
                episode,
                planned,
                [e for e in fresh if e.id not in retired],
                distiller=distiller.name,
                prompt_version=distiller.prompt_version,
                embedding_model=embedder.model_id,
                now=now,
                deployment=deployment,
            )
            plan.new = [quarantine_suspect(e, also=reviewed.get(e.content, ())) for e in plan.new]
            _quarantined_retire_nothing(plan, episode, current)
            attribute(plan, list(current.values()), confirm)
            if _write(
                plan, current, episode.id, now, store=store, embedder=embedder, deployment=deployment, confirm=confirm
            ):
                corroborate([*plan.new, *plan.changed], store=store, policy=share, now=now)
                return plan
    raise WriteConflict(
        f"episode {episode.id}: its targets kept changing under {WRITE_ROUNDS} attempts to write; it is retried later"
    )


def _against(retired: set[str]) -> Callable[[Decision], float | None]:
    """A decision aimed at a record retired meanwhile becomes an ADD (its target is no longer there to change)."""
    return lambda d: -1.0 if d.target_id in retired else None


def _write(
    plan: StorePlan,
    current: dict[str, Experience],
    episode_id: str,
    now: datetime,
    *,
    store: ExperienceStore,
    embedder: Embedder,
    deployment: str | None,
    confirm: Callable[[Experience], Experience],
) -> bool:
    """Write ``plan``: new lessons first (inserted once; the same lesson written by another engine meanwhile is
    reinforced instead), then the changes to records read as ``current``, each only over the revision read.
    True when every write landed, or its record was deleted meanwhile."""
    vectors = embed_keys(embedder, plan.new)
    new = [(e, v) for e, v in zip(plan.new, vectors) if e.id not in current]
    # Over the revision read: an UPDATE's target, or this episode's own lesson from an earlier attempt.
    rewrites: list[tuple[Experience, Embedding | None]] = [
        (e.model_copy(update={"revision": current[e.id].revision}), v)
        for e, v in zip(plan.new, vectors)
        if e.id in current
    ]
    inserted = store.insert_new(new)
    planned = {e.id: (e, v) for e, v in new if e.id not in inserted}
    for stored, _ in store.get(list(planned)):
        mine, vector = planned[stored.id]
        if episode_id in stored.provenance.source_episode_ids:  # a retry of this episode: its new wording wins
            rewrites.append((mine.model_copy(update={"revision": stored.revision}), vector))
        else:  # the same lesson, written by another engine meanwhile: one more source for it
            rewrites.append((confirm(reinforced(stored, episode_id, now, deployment)), None))
    rewrites += [(e, None) for e in plan.changed]
    written = store.write_if(rewrites)
    missed = [e.id for e, _ in rewrites if e.id not in written]
    # A record deleted meanwhile is no conflict: there is nothing left to write to. One that changed is.
    return not missed or not store.get(missed)
