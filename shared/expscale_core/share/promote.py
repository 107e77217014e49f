"""Promotion by corroboration: a private lesson is shared once enough distinct sources taught it.

Run after each distillation's writes, on the lessons it wrote. A lesson's peers are the records of its namespace
and tenant at ``corroboration_threshold`` similarity or more. When the peers, together, were taught by
``corroborations`` distinct sources, or one of them by a trusted source, or one of them is shared already, they
become one shared record: the shared one if there is one, else the oldest, which absorbs the others' sources and
statistics while the others are retired in its favour. Its text is one source's own words, never a mix: nothing
a single untrusted source wrote alone reaches anyone else.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime

from expscale_core.distill.guards import specific_tokens
from expscale_core.errors import StoreError
from expscale_core.experience import Experience, ExperienceStatus, Visibility
from expscale_core.refine.combine import combine_stats
from expscale_core.scope import Scope
from expscale_core.share.policy import SharePolicy, reaches_others
from expscale_core.store.base import ExperienceStore

__all__ = ["corroborate", "distinct_sources", "narrow"]

log = logging.getLogger(__name__)
_PEERS = 32


def distinct_sources(records: Sequence[Experience]) -> set[str]:
    """The sources behind ``records``; a record from before sources were kept counts as its scope."""
    return {s for e in records for s in (e.provenance.sources or [f"scope:{e.scope.key()}"])}


def narrow(scope: Scope) -> bool:
    """Private in a scope narrower than its tenant: a namespace- or tenant-wide record is read tenant-wide."""
    return scope.agent is not None or scope.user is not None


def corroborate(
    written: Sequence[Experience], *, store: ExperienceStore, policy: SharePolicy, now: datetime
) -> list[Experience]:
    """Share the lessons among ``written`` that are now corroborated; returns the records shared. A store error
    leaves things as they were (the next corroborating lesson tries again)."""
    shared: list[Experience] = []
    if policy.trusted_visibility is Visibility.PRIVATE and not policy.publish_to:
        return shared  # promotion is configured to reach no one: folding copies would only hide them
    for exp in written:
        if exp.status is not ExperienceStatus.ACTIVE or reaches_others(exp) or not narrow(exp.scope):
            continue
        try:
            promoted = _promote(exp, store=store, policy=policy, now=now)
        except StoreError as exc:
            log.warning("lesson %s: corroboration check failed, tried again with the next lesson: %s", exp.id, exc)
            continue
        if promoted is not None:
            shared.append(promoted)
    return shared


def _promote(exp: Experience, *, store: ExperienceStore, policy: SharePolicy, now: datetime) -> Experience | None:
    found = store.get([exp.id], with_vectors=True)
    if not found or found[0][1] is None:
        return None
    current, vector = found[0]
    assert vector is not None
    if current.status is not ExperienceStatus.ACTIVE or reaches_others(current):
        return None
    tenant = current.scope.tenant
    hits = store.search(
        vector,
        scope=Scope(namespace=current.scope.namespace, tenant=tenant),
        limit=_PEERS,
        min_similarity=policy.corroboration_threshold,
    )
    # A tenant is a wall: a lesson from another tenant corroborates nothing here. And close wording is not the
    # same lesson when a number, a command or a link differs: "port 1194" must not vouch for "port 4444".
    specifics = specific_tokens(current.content)
    group = [e for e, _ in hits if e.scope.tenant == tenant and specific_tokens(e.content) == specifics]
    if current.id not in {e.id for e in group}:
        group.append(current)
    already = [e for e in group if reaches_others(e)]
    vouched = already or any(e.provenance.trusted for e in group)
    if not vouched and len(distinct_sources(group)) < policy.corroborations:
        return None
    keeper = already[0] if already else min(group, key=lambda e: (e.created_at, e.id))
    kept = policy.shared(combine_stats(keeper, group, now))
    retired = [e.superseded_by_id(keeper.id, now) for e in group if e.id != keeper.id and e not in already]
    # The keeper first: a member is retired only in favour of a shared record that already holds its sources.
    if keeper.id not in store.write_if([(kept, None)]):
        return None
    store.write_if([(e, None) for e in retired])
    log.info("lesson %s shared: %d distinct sources taught it", keeper.id, len(distinct_sources(group)))
    return kept
