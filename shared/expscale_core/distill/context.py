"""What a distiller may see and change for one episode, and how close a lesson stays to what it targets.

Write isolation starts here: the candidates are experiences of the episode's *exact* scope, so a distiller can
never update, supersede or reinforce a record of a neighbouring user or tenant that a broader read would match.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from expscale_core.distill.base import Decision
from expscale_core.embed.base import Embedder
from expscale_core.episode import Episode
from expscale_core.experience import Experience, ExperienceStatus
from expscale_core.scoring import cosine
from expscale_core.store.base import ExperienceStore

__all__ = ["lesson_similarity", "related_experiences"]


def related_experiences(
    episode: Episode,
    *,
    store: ExperienceStore,
    embedder: Embedder,
    served_ids: Sequence[str],
    similar_k: int,
    min_similarity: float,
) -> tuple[list[tuple[Experience, float]], set[str]]:
    """Experiences of the episode's exact scope about the same situation (at least ``min_similarity``), plus
    those served to the episode while it ran (``served_ids``); and which of them were served."""
    similar: list[tuple[Experience, float]] = []
    if similar_k:
        vector = embedder.embed([episode.input])[0]
        similar = store.search(
            vector, scope=episode.scope, exact_scope=True, limit=similar_k, min_similarity=min_similarity
        )
    listed = {e.id for e, _ in similar}
    served_extra = [
        (e, 0.0)
        for e, _ in store.get([i for i in served_ids if i not in listed][: max(similar_k, 1)])
        # served by a broader read scope is not a licence to write there
        if e.status is ExperienceStatus.ACTIVE and e.scope == episode.scope
    ]
    served = {e.id for e, _ in served_extra} | (set(served_ids) & listed)
    return similar + served_extra, served


def lesson_similarity(
    similar: Sequence[tuple[Experience, float]], *, store: ExperienceStore, embedder: Embedder
) -> Callable[[Decision], float | None]:
    """Cosine similarity of a decision's lesson to its target, computed on demand (None: nothing to compare)."""
    vectors = {e.id: v for e, v in store.get([e.id for e, _ in similar], with_vectors=True)}

    def similarity(d: Decision) -> float | None:
        target = vectors.get(d.target_id or "")
        if d.content is None or target is None:
            return None
        text = f"{d.applicability}\n{d.content}" if d.applicability else d.content
        return cosine(embedder.embed([text])[0], target)

    return similarity
