"""What the background worker does, step by step: distill queued episodes, write usage credit, refine when due.

The engine's public calls (``run_pending``, ``distill_pending``, ``refine``) and the worker thread both come
here. Each step takes what it needs from the collaborators given at construction, never from the engine.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from expscale_core.distill.base import Distiller
from expscale_core.distill.step import distill_episode
from expscale_core.embed.base import Embedder
from expscale_core.episode import Episode
from expscale_core.episodes.queue import EpisodeQueue
from expscale_core.errors import ExpscaleError, LLMOutputError, QueueError, StoreError
from expscale_core.experience import ExperienceStatus
from expscale_core.llm import LLM
from expscale_core.ops.deletion import GuardedStore, Tombstones
from expscale_core.ops.stats import by_deployment
from expscale_core.ops.transfer import undo_interrupted_import
from expscale_core.refine import Refiner, RefineReport
from expscale_core.scope import Scope
from expscale_core.serve.credit import UsageTally, apply_credit
from expscale_core.settings import DistillSettings, RefineSettings, RetrieveSettings
from expscale_core.share.policy import SharePolicy
from expscale_core.store.base import ExperienceStore
from expscale_core.store.contention import WRITE_ROUNDS, pause
from expscale_core.store.lease import LeaseLost

__all__ = ["BackgroundLoop"]

log = logging.getLogger(__name__)
_REFINE_LEASE = "refine"
_MIN_RATINGS = 10  # before a deployment's lessons are judged by how they were rated


def _holder() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class _StoreDown(Exception):
    """Internal: the store failed during a distillation; stop the batch."""


@dataclass
class BackgroundLoop:
    """The learning half of the engine. ``refine_lock`` serialises every read-modify-write of whole records
    (distillation's writes, credit flushes, refines); ``tombstones`` make a delete win over all of them."""

    store: ExperienceStore
    embedder: Embedder
    distiller: Distiller
    queue: EpisodeQueue
    llm: LLM | None
    usage: UsageTally
    tombstones: Tombstones
    distill_settings: DistillSettings
    refine_settings: RefineSettings
    retrieve_settings: RetrieveSettings
    clock: Callable[[], datetime]
    screen_llm: Callable[[str, str], list[str]] | None = None
    deployment: str | None = None
    share: SharePolicy = field(default_factory=SharePolicy)
    distrusted: dict[str, float] = field(default_factory=dict)
    """Shared with the retriever: deployments whose lessons are down-weighted (updated after each refine)."""
    refine_lock: threading.Lock = field(default_factory=threading.Lock)
    holder: str = field(default_factory=_holder)
    """This engine, as the holder of the store's refine lease."""
    _new_since_refine: int = 0
    _last_refine: float = field(default_factory=time.monotonic)
    _unreleased: set[str] = field(default_factory=set)
    _llm_persisted: dict[str, int] = field(default_factory=dict)
    _import_settled: bool = False
    _store_refusing: bool = False
    """Distillation is waiting for the store (down, or out of disk): said once, at WARNING, until it works again."""

    def step(self, draining: bool) -> int:
        """One batch of the worker thread; how many items it handled."""
        if not self._import_settled:
            self.settle_interrupted_import()
        handled = self.distill_pending(limit=self.distill_settings.batch_size, ignore_delay=draining)
        handled += self.flush_credits()
        self.maybe_refine()
        if not handled:
            self._maintain_store()
        else:
            self.persist_llm_usage()
        return handled

    def run_all(self) -> int:
        """Everything queued, now: every pending episode, all credit, a refine if due."""
        handled = self.distill_pending(ignore_delay=True)
        handled += self.flush_credits()
        self.maybe_refine()
        self.persist_llm_usage()
        return handled

    def settle_interrupted_import(self) -> None:
        """An import killed midway is undone before anything else reads the store (all or nothing)."""
        try:
            undone = undo_interrupted_import(self.store, self.queue, self.embedder.dimension)
        except ExpscaleError as exc:  # e.g. the server is down at start-up: the worker tries again
            log.warning("an interrupted import could not be undone yet, will try again: %s", exc)
            return
        self._import_settled = True
        if undone:
            log.warning("undid an import that was interrupted: %d records put back as they were", undone)

    def _maintain_store(self) -> None:
        try:
            self.store.maintain()
        except ExpscaleError as exc:
            log.warning("store housekeeping failed, will try again later: %s", exc)

    def distill_pending(
        self, *, limit: int | None = None, ignore_delay: bool = True, progress: Callable[[int], None] | None = None
    ) -> int:
        if self._unreleased:
            # Claims whose outcome could not be written (a full disk) go back to the queue as soon as it works.
            try:
                self.queue.release(sorted(self._unreleased))
                self._unreleased.clear()
            except QueueError as exc:
                log.warning("episode queue still failing, %d claims wait: %s", len(self._unreleased), exc)
                return 0
        handled = 0
        batch = self.distill_settings.batch_size
        while limit is None or handled < limit:
            # Noted before the claim: a delete of a claimed episode while its batch-mates are distilled must win too.
            try:
                self.tombstones.pull()
            except StoreError as exc:  # nothing could be written anyway: the episodes wait for the store
                log.debug("store unreachable, distillation waits: %s", exc)
                return handled
            # Lessons another engine deleted had sources queued here too: what they taught comes back from them.
            if again := self.tombstones.take_requeue():
                self.queue.requeue(again)
            since = self.tombstones.epoch
            episodes = self.queue.claim(
                batch if limit is None else min(batch, limit - handled), ignore_delay=ignore_delay
            )
            if not episodes:
                break
            for i, episode in enumerate(episodes):
                if self.tombstones.covers(episode):  # deleted by another engine on the store: never learned again
                    self.queue.delete_episode(episode.id)
                    handled += 1
                    continue
                try:
                    self._distill_one(episode, since)
                except QueueError:
                    self._unreleased.update(e.id for e in episodes[i:])
                    raise
                except _StoreDown:
                    # No point claiming more while the store is unreachable: the rest wait for the next step.
                    self.queue.release([e.id for e in episodes[i + 1 :]])
                    return handled
                handled += 1
                if progress is not None:
                    progress(1)
        return handled

    def _distill_one(self, episode: Episode, since: int) -> None:
        try:
            plan = distill_episode(
                episode,
                # a delete() of this episode or its scope from now on wins over what this distillation writes
                store=GuardedStore(self.store, self.tombstones, since),
                embedder=self.embedder,
                distiller=self.distiller,
                served_ids=self.queue.served(episode.id),
                settings=self.distill_settings,
                write_lock=self.refine_lock,
                clock=self.clock,
                screen_llm=self.screen_llm,
                deployment=self.deployment,
                share=self.share,
            )
        except LLMOutputError as exc:
            log.warning("episode %s: unusable LLM output, marked failed: %s", episode.id, exc)
            self.queue.fail(episode.id, str(exc), raw_output=exc.raw)
            return
        except (ExpscaleError, OSError) as exc:
            store_down = isinstance(exc, StoreError)
            gave_up = self.queue.defer(
                episode.id,
                f"{type(exc).__name__}: {exc}",
                backoff_s=self.distill_settings.retry_backoff_s,
                max_attempts=self.distill_settings.max_attempts,
                count_attempt=not store_down,  # an outage of the store is not this episode's fault
            )
            if store_down:
                if not self._store_refusing:
                    log.warning("the store refuses writes, distillation waits (episodes stay queued): %s", exc)
                self._store_refusing = True
                raise _StoreDown from exc
            log.warning(
                "episode %s: distillation failed (%s); %s",
                episode.id,
                exc,
                "marked failed" if gave_up else "will retry",
            )
            return
        except Exception as exc:  # a bug in a distiller must not lose the episode
            log.exception("episode %s: unexpected distillation error", episode.id)
            self.queue.fail(episode.id, f"{type(exc).__name__}: {exc}")
            return
        self.queue.complete([episode.id])
        self._new_since_refine += len(plan.new)
        if self._store_refusing:
            self._store_refusing = False
            log.warning("the store takes writes again; distillation goes on")

    def flush_credits(self) -> int:
        """Write retrieval counts and feedback credits to the store. Kept for later if the store fails.

        Each record is written only over the revision it was read at (``write_if``): another engine's flush or
        distillation in between makes this one read it again and re-apply its counts, so no count is lost."""
        usage, last_used = self.usage.take()
        rows = self.queue.uncredited()
        if not usage and not rows:
            return 0
        try:
            pending = list(dict.fromkeys([*usage, *(r[1] for r in rows)]))
            store = GuardedStore(self.store, self.tombstones)
            # In this engine, under the refine lock; across engines, by the records' revisions.
            with self.refine_lock:
                for attempt in range(WRITE_ROUNDS):
                    if attempt:
                        pause(attempt)
                    credited = apply_credit(
                        [e for e, _ in self.store.get(pending)],
                        usage,
                        last_used,
                        rows,
                        credit_min_similarity=self.retrieve_settings.credit_min_similarity,
                        half_life_days=self.refine_settings.utility_half_life_days,
                        now=self.clock(),
                    )
                    written = store.write_if([(e, None) for e in credited])
                    pending = [e.id for e in credited if e.id not in written]  # changed meanwhile (gone: dropped)
                    if not pending:
                        break
            contended = set(pending)
            self.queue.mark_credited([r for r in rows if r[1] not in contended])
            if contended:
                log.warning("%d records kept changing under the credit flush; their counts wait", len(contended))
                self.usage.give_back(
                    {k: v for k, v in usage.items() if k in contended},
                    {k: v for k, v in last_used.items() if k in contended},
                )
        except ExpscaleError as exc:
            log.warning("could not write usage statistics yet (%s); keeping them for the next try", exc)
            self.usage.give_back(usage, last_used)
            return 0
        return len(rows) + len(usage)

    def maybe_refine(self) -> None:
        s = self.refine_settings
        due_n = s.every_n_experiences is not None and self._new_since_refine >= s.every_n_experiences
        due_t = s.every_s is not None and time.monotonic() - self._last_refine >= s.every_s
        if due_n or due_t:
            try:
                report = self.refine(None)
                log.info("periodic refine: %s", report.model_dump())
            except ExpscaleError as exc:
                log.warning("periodic refine failed, will try again later: %s", exc)
                self._last_refine = time.monotonic()

    def refine(self, scope: Scope | None) -> RefineReport:
        """One refine, if this engine gets the store's refine lease: engines sharing a store take turns."""
        with self.refine_lock:
            ttl = self.refine_settings.lease_s
            epoch = self.store.acquire_lease(_REFINE_LEASE, self.holder, ttl)
            if epoch is None:
                # What this engine wrote before the other refine began is in that refine; what came after waits
                # for the next period.
                log.info("another engine is refining this store; this refine is skipped")
                self._new_since_refine = 0
                self._last_refine = time.monotonic()
                return RefineReport(skipped=True)
            try:
                return self._refine_holding(scope, epoch)
            except LeaseLost as exc:
                log.warning("refine stopped: %s; the next run repairs what it left half done", exc)
                return RefineReport(aborted=True)
            finally:
                self.store.release_lease(_REFINE_LEASE, self.holder, epoch)

    def _refine_holding(self, scope: Scope | None, epoch: int) -> RefineReport:
        def fence() -> None:  # renews the lease before every write, and stops the refine if it was taken over
            renewed = self.store.acquire_lease(_REFINE_LEASE, self.holder, self.refine_settings.lease_s)
            if renewed != epoch:
                if renewed is not None:  # it had run out and was free: taken afresh, which is not a renewal
                    self.store.release_lease(_REFINE_LEASE, self.holder, renewed)
                raise LeaseLost(f"the refine lease of epoch {epoch} ran out and was taken over meanwhile")

        now = self.clock()
        mark = self.queue.get_meta("refined_at") if scope is None else None
        # Only what changed since the last whole-store run is compared with the rest (near-linear cost).
        since = datetime.fromisoformat(mark) if mark else None
        store = GuardedStore(self.store, self.tombstones, fence=fence)  # a delete meanwhile wins over the merges
        refiner = Refiner(store, self.embedder, self.refine_settings, self.llm, self.screen_llm)
        report = refiner.run(scope, now=now, since=since)
        if scope is None and not report.conflicts:  # what lost a race is looked at again, whatever its age
            self.queue.set_meta("refined_at", now.isoformat())
        if self.retrieve_settings.harmful_deployment_factor < 1:
            self._judge_deployments()
        self._new_since_refine = 0
        self._last_refine = time.monotonic()
        return report

    def _judge_deployments(self) -> None:
        """Which deployments' lessons were rated harmful more often than helpful, over enough ratings."""
        figures = by_deployment(e for e, _ in self.store.scan(statuses=[ExperienceStatus.ACTIVE]))
        factor = self.retrieve_settings.harmful_deployment_factor
        judged = {
            name: factor
            for name, f in figures.items()
            if f.helpful + f.harmful >= _MIN_RATINGS and f.harmful > f.helpful and name != "unknown"
        }
        if judged != self.distrusted:
            log.warning(
                "lessons from deployments %s are mostly rated harmful: down-weighted by %s", sorted(judged), factor
            )
        self.distrusted.clear()
        self.distrusted.update(judged)

    def persist_llm_usage(self) -> None:
        """Add this process's LLM usage since the last call to the data dir's counters."""
        if self.llm is None:
            return
        u = self.llm.usage
        now = {"llm_calls": u.calls, "llm_prompt_tokens": u.prompt_tokens, "llm_completion_tokens": u.completion_tokens}
        deltas = {k: v - self._llm_persisted.get(k, 0) for k, v in now.items()}
        if any(deltas.values()):
            self.queue.add_meta_counts(deltas)
            self._llm_persisted = now

    def close(self) -> None:
        try:
            self.flush_credits()
            self.persist_llm_usage()
        except ExpscaleError as exc:
            log.warning("could not flush usage statistics on close: %s", exc)
