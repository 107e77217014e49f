"""Review: what waits for promotion or was flagged by a screen, and a person's decision on it."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

from pydantic import BaseModel, ConfigDict

from expscale_core.experience import Experience, ExperienceStatus
from expscale_core.ids import IdLike, coerce_ids
from expscale_core.scope import Scope
from expscale_core.share.policy import SharePolicy, reaches_others
from expscale_core.share.promote import distinct_sources, narrow
from expscale_core.store.base import ExperienceStore

__all__ = ["Review", "ReviewItem"]


class ReviewItem(BaseModel):
    """One lesson waiting for a decision, with why it waits and who taught it."""

    model_config = ConfigDict(frozen=True)

    experience: Experience
    reason: str
    flagged: bool
    """Held back by a screen (served to no one until approved), not merely waiting for corroboration."""
    sources: list[str]


class Review:
    """``engine.review``: list what waits (:meth:`pending`), then :meth:`approve` or :meth:`reject` it.

    Waiting are the private lessons of narrow scopes (a user's, an agent's), which their own scope is served but
    nobody else until corroborated, and everything a screen flagged, which nobody is served."""

    def __init__(self, store: ExperienceStore, policy: SharePolicy, clock: Callable[[], datetime]) -> None:
        self.store = store
        self.policy = policy
        self.clock = clock

    def pending(self, scope: Scope | dict[str, str] | str | None = None) -> list[ReviewItem]:
        """Flagged lessons first, then those waiting for corroboration, each group newest first."""
        target = Scope.coerce(scope) if scope is not None else None
        flagged = [e for e, _ in self.store.scan(scope=target, statuses=[ExperienceStatus.QUARANTINED])]
        waiting = [
            e
            for e, _ in self.store.scan(scope=target, statuses=[ExperienceStatus.ACTIVE])
            if not reaches_others(e) and narrow(e.scope)
        ]
        need = self.policy.corroborations
        items = []
        for e in sorted(flagged, key=lambda e: e.updated_at, reverse=True):
            reason = f"flagged: {e.quarantine_reason or 'screen'}"
            items.append(ReviewItem(experience=e, reason=reason, flagged=True, sources=_sources(e)))
        for e in sorted(waiting, key=lambda e: e.updated_at, reverse=True):
            sources = _sources(e)
            reason = f"private until corroborated: {len(sources)} of {need} sources"
            items.append(ReviewItem(experience=e, reason=reason, flagged=False, sources=sources))
        return items

    def approve(self, experience_ids: Sequence[IdLike], *, reviewer: str = "reviewer") -> int:
        """A person vouches for these lessons: they are served, and shared as a trusted source's would be.
        Returns how many changed."""
        now = self.clock()
        items = []
        for e, _ in self.store.get(coerce_ids(experience_ids)):
            if e.status not in (ExperienceStatus.ACTIVE, ExperienceStatus.QUARANTINED):
                continue
            provenance = e.provenance.model_copy(
                update={
                    "trusted": True,
                    "sources": list(dict.fromkeys([*e.provenance.sources, f"reviewer:{reviewer}"])),
                }
            )
            approved = e.model_copy(
                update={
                    "status": ExperienceStatus.ACTIVE,
                    "quarantine_reason": None,
                    "provenance": provenance,
                    "updated_at": now,
                }
            )
            items.append((self.policy.shared(approved), None))
        return len(self.store.write_if(items)) if items else 0

    def reactivate(
        self, experience_ids: Sequence[IdLike], statuses: Sequence[ExperienceStatus], *, pin: bool = False
    ) -> int:
        """Make the experiences among ``experience_ids`` that have one of ``statuses`` active, with their reach
        unchanged; how many. ``pin``: a person's decision, which refinement must not undo."""
        now = self.clock()
        pinned = {"restored_at": now} if pin else {}
        items = [
            e.model_copy(update={"status": ExperienceStatus.ACTIVE, "superseded_by": None, "updated_at": now, **pinned})
            for e, _ in self.store.get(coerce_ids(experience_ids))
            if e.status in statuses
        ]
        self.store.update(items)
        return len(items)

    def reject(self, experience_ids: Sequence[IdLike]) -> int:
        """A person rules these lessons out: they are deleted from the store. Returns how many."""
        found = [e.id for e, _ in self.store.get(coerce_ids(experience_ids))]
        self.store.delete(found)
        return len(found)


def _sources(e: Experience) -> list[str]:
    return sorted(distinct_sources([e]))
