"""Folding several records of one lesson into one: the statistics and provenance every member brings."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from expscale_core.experience import Experience

__all__ = ["combine_stats"]


def combine_stats(base: Experience, members: Sequence[Experience], now: datetime, **update: object) -> Experience:
    # A member the base already absorbed (an interrupted earlier merge) must not count twice.
    absorbed = set(base.provenance.merge_parents)
    members = [m for m in members if m.id == base.id or m.id not in absorbed]
    others = [m for m in members if m.id != base.id]
    episodes = list(dict.fromkeys(x for m in members for x in m.provenance.source_episode_ids))
    parents = list(dict.fromkeys([*base.provenance.merge_parents, *(m.id for m in others)]))
    deployments = list(dict.fromkeys(d for m in [base, *members] for d in m.provenance.deployments))
    # One user repeating himself stays one source: sources are a set, whatever merges.
    sources = list(dict.fromkeys(s for m in [base, *members] for s in m.provenance.sources))
    provenance = base.provenance.model_copy(
        update={
            "source_episode_ids": episodes,
            "merge_parents": parents,
            "deployments": deployments,
            "sources": sources,
            "trusted": any(m.provenance.trusted for m in [base, *members]),
        }
    )
    last_used = max((m.last_used_at for m in members if m.last_used_at), default=None)
    return base.model_copy(
        update={
            "support": sum(m.support for m in members),
            "times_retrieved": sum(m.times_retrieved for m in members),
            "helpful": sum(m.helpful for m in members),
            "harmful": sum(m.harmful for m in members),
            "last_used_at": last_used,
            "updated_at": now,
            "provenance": provenance,
            **update,
        }
    )
