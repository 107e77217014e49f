"""Serving: the experiences most useful for a query, ranked, counted, and never an error while the store is down."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from expscale_core.embed.base import Embedder
from expscale_core.errors import StoreError
from expscale_core.experience import Experience, ScoredExperience
from expscale_core.scope import Scope
from expscale_core.scoring import blend_score, recency, utility_from_counts
from expscale_core.serve.credit import UsageTally
from expscale_core.settings import RetrieveSettings
from expscale_core.store.base import ExperienceStore

__all__ = ["Retriever", "rank"]

log = logging.getLogger(__name__)


def rank(
    candidates: Sequence[tuple[Experience, float]],
    *,
    k: int,
    now: datetime,
    settings: RetrieveSettings,
    distrusted: Mapping[str, float] | None = None,
) -> list[ScoredExperience]:
    """Blend similarity with utility and recency; best ``k`` first. ``distrusted``: factors for lessons first
    written by a deployment whose lessons were mostly rated harmful (a factor of 0 leaves them out)."""
    scored = []
    for exp, similarity in candidates:
        origin = exp.provenance.deployments[0] if exp.provenance.deployments else None
        factor = distrusted.get(origin, 1.0) if distrusted and origin else 1.0
        if factor == 0:
            continue
        last = exp.last_used_at or exp.updated_at
        score = (
            blend_score(
                similarity,
                utility_from_counts(exp.helpful, exp.harmful),
                recency(last, now, settings.recency_half_life_days),
                similarity_weight=settings.similarity_weight,
                utility_weight=settings.utility_weight,
                recency_weight=settings.recency_weight,
            )
            * factor
        )
        scored.append(ScoredExperience(experience=exp, score=score, similarity=similarity))
    scored.sort(key=lambda s: s.score, reverse=True)
    return scored[:k]


@dataclass
class Retriever:
    store: ExperienceStore
    embedder: Embedder
    settings: RetrieveSettings
    usage: UsageTally
    clock: Callable[[], datetime]
    distrusted: dict[str, float] = field(default_factory=dict)
    """Deployments whose lessons are down-weighted, with their factor; kept current by the background loop."""
    _store_down: bool = False

    def search(self, query: str, *, k: int, scope: Scope, floor: float) -> list[ScoredExperience]:
        """The best ``k`` for ``query`` in ``scope``, each counted as used; none while the store is unreachable."""
        try:
            self.store.ensure_collection(self.embedder.dimension)
            vector = self.embedder.embed([query])[0]
            candidates = self.store.search(vector, scope=scope, limit=k * 3, min_similarity=floor, as_reader=True)
        except StoreError as exc:
            # Serve without memory while the store is unreachable; say so once per outage, not per request.
            if not self._store_down:
                log.warning("experience store unavailable, serving without experience until it is back: %s", exc)
            self._store_down = True
            return []
        if self._store_down:
            log.info("experience store is back")
            self._store_down = False
        now = self.clock()
        ranked = rank(candidates, k=k, now=now, settings=self.settings, distrusted=self.distrusted)
        self.usage.add((item.experience.id for item in ranked), now)
        return ranked
