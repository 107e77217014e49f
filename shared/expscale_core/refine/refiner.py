"""Refinement: merge near-duplicates, supersede contradictions, decay utility, enforce the capacity cap.

Nothing is deleted here. Replacements are written before the records they replace change status,
and superseded or archived records stay in the store, restorable with ``ExperienceEngine.restore``.

Cost stays near-linear in the store size: one scan; duplicates and contradictions are only looked for
between the records changed since the last run (``since``) and the rest, not between every pair; decay is
computed in memory for the cap and never rewritten; writes are batched and only touch what changed.
A run interrupted at any point is repaired by the next: a record named as merged into (or superseded by)
another active record is retired without counting its statistics twice.
"""

from __future__ import annotations

import heapq
import logging
import math
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Literal

import numpy as np
from pydantic import BaseModel, Field

from expscale_core.distill.render import PROMPT_VERSION, load_prompt, render_handles
from expscale_core.embed.base import Embedder
from expscale_core.embed.keys import embed_keys
from expscale_core.episode import utcnow
from expscale_core.errors import LLMError
from expscale_core.experience import Experience, ExperienceKind, ExperienceStatus, Provenance
from expscale_core.llm import LLM
from expscale_core.refine.clusters import Row, dirty_pairs, duplicate_clusters, similar_pairs, unit_rows
from expscale_core.refine.combine import combine_stats
from expscale_core.refine.induce import induce_rules
from expscale_core.safety.screen import screen
from expscale_core.scope import Scope
from expscale_core.scoring import count_tokens, decay, utility_from_counts
from expscale_core.settings import RefineSettings
from expscale_core.store.base import ExperienceStore, Keys

__all__ = ["RefineReport", "Refiner", "dirty_pairs", "duplicate_clusters", "retention_value", "similar_pairs"]

log = logging.getLogger(__name__)
_MAX_ADJUDICATIONS = 32  # LLM contradiction checks per run: bounds the cost of one refine


class RefineReport(BaseModel):
    """What one refinement run did."""

    merged: int = 0
    """Experiences folded into another (they are now superseded by the merge result)."""
    superseded: int = 0
    """Experiences superseded because another contradicted them."""
    archived: int = 0
    decayed: int = 0
    """Experiences whose retention value fell below half (computed at read time, not rewritten)."""
    repaired: int = 0
    """Records left active by an interrupted earlier run and retired now."""
    before_count: int = 0
    after_count: int = 0
    before_tokens: int = 0
    after_tokens: int = 0
    duration_s: float = 0.0
    merge_llm_failures: int = Field(default=0, description="merges that fell back to keep-best")
    skipped: bool = False
    """Another engine sharing the store held the refine lease; nothing was done."""
    aborted: bool = False
    """The lease was lost midway (this refiner stalled past it); the next run repairs what was half done."""
    conflicts: int = 0
    """Writes left out because another engine changed the record meanwhile; the next run picks them up."""
    induced: int = 0
    """Rules written from several verified examples that shared one (their examples stay active)."""


class _MergeOutput(BaseModel):
    kind: Literal["strategy", "fact", "procedure", "pitfall"]
    content: str = Field(min_length=1, max_length=800)
    applicability: str = Field(max_length=300)


class _Adjudication(BaseModel):
    contradict: bool
    keep: Literal[1, 2] | None
    reason: str


def retention_value(exp: Experience, now: datetime, half_life_days: float) -> float:
    """How much an experience is worth keeping: feedback, use and support, decayed by idle time."""
    last = exp.last_used_at or exp.updated_at
    idle_days = (now - last).total_seconds() / 86400.0
    evidence = 1.0 + 0.25 * math.log1p(exp.times_retrieved + exp.support - 1)
    return (1.0 + utility_from_counts(exp.helpful, exp.harmful)) * evidence * decay(idle_days, half_life_days)


def _by_audience(items: Iterable[tuple[Experience, Row]]) -> list[list[tuple[Experience, Row]]]:
    """``items`` grouped by who reads them, not only by scope: a private lesson folded into a shared one (a merge,
    an induced rule) would reach new readers."""
    groups: dict[object, list[tuple[Experience, Row]]] = defaultdict(list)
    for exp, vec in items:
        groups[exp.audience].append((exp, vec))
    return list(groups.values())


def _best(members: Sequence[Experience]) -> Experience:
    return max(members, key=lambda e: (utility_from_counts(e.helpful, e.harmful), e.support, e.updated_at))


class Refiner:
    """Runs one refinement pass over a store.

    Example:
        >>> from expscale_core.store import QdrantExperienceStore
        >>> from expscale_core.testing import HashEmbedder
        >>> store = QdrantExperienceStore.open(location=":memory:")
        >>> Refiner(store, HashEmbedder(), RefineSettings()).run().merged
        0
    """

    def __init__(
        self,
        store: ExperienceStore,
        embedder: Embedder,
        settings: RefineSettings,
        llm: LLM | None = None,
        screen_llm: Callable[[str, str], list[str]] | None = None,
    ) -> None:
        self.store = store
        self.embedder = embedder
        self.settings = settings
        self.llm = llm
        self.screen_llm = screen_llm
        """The optional LLM screen: text an LLM writes here (merges, induced rules) passes it as distilled text does."""

    def run(
        self, scope: Scope | None = None, *, now: datetime | None = None, since: datetime | None = None
    ) -> RefineReport:
        """One pass. ``since``: only records changed at or after it are compared with the rest (the engine
        passes the time of its last run); None compares everything with everything."""
        started = time.perf_counter()
        now = now or utcnow()
        self.store.ensure_collection(self.embedder.dimension)
        report = RefineReport()
        # Each vector becomes float32 as it is read, so the store's Python-float lists never pile up.
        active: list[tuple[Experience, Row | None]] = [
            (e, None if v is None else np.asarray(v, dtype=np.float32))
            for e, v in self.store.scan(scope=scope, statuses=[ExperienceStatus.ACTIVE], with_vectors=True)
        ]
        report.before_count = len(active)
        report.before_tokens = sum(count_tokens(e.content) for e, _ in active)
        active = self._repair(active, now, report)

        merged: list[tuple[Experience, Row]] = []
        for items in _by_audience((e, v) for e, v in active if v is not None):
            merged += self._merge_group(items, now, report, since)

        survivors = self._adjudicate(merged, now, report, since)
        survivors += self._induce(merged, {e.id for e in survivors}, now, report, since)
        values = self._decay(survivors, now, report)
        survivors = self._enforce_cap(survivors, values, now, report)

        report.after_count = len(survivors)
        report.after_tokens = sum(count_tokens(e.content) for e in survivors)
        report.duration_s = time.perf_counter() - started
        return report

    # -- repair ----------------------------------------------------------------------------

    def _repair(
        self, active: list[tuple[Experience, Row | None]], now: datetime, report: RefineReport
    ) -> list[tuple[Experience, Row | None]]:
        """Retire records that another active record already absorbed (a merge or supersede that was
        interrupted before the old records changed status)."""
        absorber: dict[str, str] = {}
        for exp, _ in active:
            for old in (*exp.provenance.merge_parents, *exp.supersedes):
                if old != exp.id:
                    absorber.setdefault(old, exp.id)
        stale = [e for e, _ in active if e.id in absorber and e.restored_at is None]  # restored: a person's call
        if not stale:
            return active
        retired = self._write([e.superseded_by_id(absorber[e.id], now) for e in stale], report)
        report.repaired = len(retired)
        return [(e, v) for e, v in active if e.id not in retired]

    # -- merge -----------------------------------------------------------------------------

    def _merge_group(
        self, items: list[tuple[Experience, Row]], now: datetime, report: RefineReport, since: datetime | None
    ) -> list[tuple[Experience, Row]]:
        pinned = [(e, v) for e, v in items if e.restored_at is not None]  # a person restored them: never merged
        if pinned:
            items = [(e, v) for e, v in items if e.restored_at is None]
            return pinned + self._merge_group(items, now, report, since)
        if len(items) < 2:
            return items
        dirty = None if since is None else [i for i, (e, _) in enumerate(items) if e.updated_at >= since]
        if dirty == []:
            return items
        matrix = unit_rows([v for _, v in items])
        merged_away: set[str] = set()
        results: list[tuple[Experience, Row]] = []
        for cluster in duplicate_clusters(matrix, self.settings.duplicate_threshold, dirty=dirty):
            members = [items[i][0] for i in cluster]
            keeper = self._merged(members, {items[i][0].id: items[i][1] for i in cluster}, now, report)
            if keeper is None:  # the keeper changed under this run: the cluster waits for the next one
                continue
            others = [m for m in members if m.id != keeper[0].id]
            # The replacement is written before anything it replaces changes status. A member that changed
            # meanwhile stays active for now; the next run's repair retires it (the keeper lists it).
            retired = self._write([m.superseded_by_id(keeper[0].id, now) for m in others], report)
            merged_away.update({keeper[0].id, *retired})
            results.append(keeper)
            report.merged += len(retired)
        results += [(e, v) for e, v in items if e.id not in merged_away]
        return results

    def _llm_merge(self, members: list[Experience], report: RefineReport) -> _MergeOutput | None:
        """The LLM's merged lesson; None to keep the best member instead (no LLM, a failure, or a merge
        that screens as an injection: a merge must not create what screening kept out)."""
        if self.llm is None:
            return None
        try:
            out = self.llm.generate(load_prompt("merge"), render_handles(members), _MergeOutput)
        except LLMError as exc:
            log.warning("LLM merge of %d experiences failed, keeping the best one: %s", len(members), exc)
            report.merge_llm_failures += 1
            return None
        suspect = screen(out.content, out.applicability) or (
            self.screen_llm(out.content, out.applicability) if self.screen_llm is not None else []
        )
        if suspect:
            log.warning("LLM merge screens as %s, keeping the best member instead", ", ".join(suspect))
            report.merge_llm_failures += 1
            return None
        return out

    def _merged(
        self, members: list[Experience], vectors: dict[str, Row], now: datetime, report: RefineReport
    ) -> tuple[Experience, Row] | None:
        best = _best(members)
        out = self._llm_merge(members, report)
        if out is not None and self.llm is not None:
            fresh = Experience(
                kind=ExperienceKind(out.kind),
                content=out.content.strip(),
                applicability=out.applicability.strip(),
                phrasings=[p for m in members for p in m.phrasings],  # every member's keys find the merge
                scope=best.scope,
                visibility=best.visibility,  # members share one audience: the merge reaches exactly it
                published_to=best.published_to,
                provenance=Provenance(
                    distiller=f"llm:{self.llm.model_id}",
                    prompt_version=f"merge.{PROMPT_VERSION}",
                    embedding_model=self.embedder.model_id,
                ),
                created_at=now,
                supersedes=[m.id for m in members],
            )
            fresh = combine_stats(fresh, members, now)  # the new record brings no statistics of its own
            keys = embed_keys(self.embedder, [fresh])[0]
            inserted = self.store.insert_new([(fresh, keys)])
            if fresh.id not in inserted:  # a delete covered a member meanwhile: its text must not live on here
                return None
            return inserted[fresh.id], np.asarray(keys[0], dtype=np.float32)
        written = self.store.write_if([(combine_stats(best, members, now), None)])
        if best.id not in written:
            report.conflicts += 1
            return None
        return written[best.id], vectors[best.id]

    # -- rule induction (LLM only) ---------------------------------------------------------

    def _induce(
        self,
        items: list[tuple[Experience, Row]],
        alive: set[str],
        now: datetime,
        report: RefineReport,
        since: datetime | None,
    ) -> list[Experience]:
        s = self.settings
        if self.llm is None or not s.induce_rules or s.max_inductions == 0:
            return []
        dirty = None if since is None else {e.id for e, _ in items if e.updated_at >= since}
        new: list[tuple[Experience, Keys]] = []
        for group in _by_audience((e, v) for e, v in items if e.id in alive):
            matrix = unit_rows([v for _, v in group])
            new += induce_rules(
                [(e, matrix[i]) for i, (e, _) in enumerate(group)],
                llm=self.llm,
                embedder=self.embedder,
                threshold=s.induce_threshold,
                limit=s.max_inductions - len(new),
                now=now,
                dirty=dirty,
                screen_llm=self.screen_llm,
            )
            if len(new) >= s.max_inductions:
                break
        inserted = self.store.insert_new(new) if new else {}
        report.induced = len(inserted)
        return list(inserted.values())

    # -- contradictions (LLM only) -------------------------------------------------------

    def _adjudicate(
        self, items: list[tuple[Experience, Row]], now: datetime, report: RefineReport, since: datetime | None
    ) -> list[Experience]:
        active = [e for e, _ in items]
        if self.llm is None or len(active) < 2:
            return active
        matrix = unit_rows([v for _, v in items])
        low, high = self.settings.contradiction_threshold, self.settings.duplicate_threshold
        if since is None:
            candidates = similar_pairs(matrix, low, high)
        else:
            candidates = dirty_pairs(matrix, [i for i, e in enumerate(active) if e.updated_at >= since], low, high)
        pairs = heapq.nlargest(
            _MAX_ADJUDICATIONS, (p for p in candidates if active[p[1]].audience == active[p[2]].audience)
        )
        losers: dict[str, str] = {}
        for _, i, j in pairs:
            a, b = active[i], active[j]
            if a.id in losers or b.id in losers:
                continue
            try:
                verdict = self.llm.generate(load_prompt("contradiction"), render_handles([a, b]), _Adjudication)
            except LLMError as exc:
                log.warning("contradiction check failed, leaving both experiences: %s", exc)
                continue
            if verdict.contradict and verdict.keep is not None:
                keep, drop = (a, b) if verdict.keep == 1 else (b, a)
                if drop.restored_at is None:  # a person restored it: they decided it stays
                    losers[drop.id] = keep.id
        if not losers:
            return active
        retired = self._write([exp.superseded_by_id(losers[exp.id], now) for exp in active if exp.id in losers], report)
        report.superseded += len(retired)
        return [e for e in active if e.id not in retired]

    # -- decay and capacity ----------------------------------------------------------------

    def _decay(self, active: list[Experience], now: datetime, report: RefineReport) -> dict[str, float]:
        """Retention values at ``now``, computed, not written: rewriting every record on every run is what
        made refinement slow, and the value is only needed to choose what the cap archives."""
        half_life = self.settings.utility_half_life_days
        values = {e.id: retention_value(e, now, half_life) for e in active}
        report.decayed = sum(1 for e in active if values[e.id] < 0.5 * retention_value(e, e.updated_at, half_life))
        return values

    def _enforce_cap(
        self, active: list[Experience], values: dict[str, float], now: datetime, report: RefineReport
    ) -> list[Experience]:
        """Caps apply per tenant (namespace + tenant): one tenant's volume never archives another's.
        ``max_experiences_total`` then bounds the whole store."""
        s = self.settings
        ordered = sorted(active, key=lambda e: (values[e.id], e.last_used_at or e.updated_at), reverse=True)
        kept_count: dict[tuple[str, str | None], int] = defaultdict(int)
        kept_tokens: dict[tuple[str, str | None], int] = defaultdict(int)
        keep: list[Experience] = []
        archive: list[Experience] = []
        for exp in ordered:
            tenant = (exp.scope.namespace, exp.scope.tenant)
            cost = count_tokens(exp.content)
            over = exp.restored_at is None and (
                (s.max_experiences is not None and kept_count[tenant] >= s.max_experiences)
                or (s.max_tokens is not None and kept_tokens[tenant] + cost > s.max_tokens)
                or (s.max_experiences_total is not None and len(keep) >= s.max_experiences_total)
            )
            if over:
                archive.append(exp.model_copy(update={"status": ExperienceStatus.ARCHIVED, "updated_at": now}))
            else:
                keep.append(exp)
                kept_count[tenant] += 1
                kept_tokens[tenant] += cost
        archived = self._write(archive, report)
        report.archived = len(archived)
        return keep + [e for e in archive if e.id not in archived]

    def _write(self, records: list[Experience], report: RefineReport) -> set[str]:
        """Write each record only over the revision this run read; the ids written. A record another engine
        changed meanwhile is left as it is now (counted in ``conflicts``): the next run sees its new state."""
        if not records:
            return set()
        written = self.store.write_if([(e, None) for e in records])
        report.conflicts += len(records) - len(written)
        return set(written)
