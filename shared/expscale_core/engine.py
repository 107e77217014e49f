"""The experience engine: capture → durable queue → background distillation → store → retrieval → refinement."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any, Generic, TypeVar

from expscale_core.background import BackgroundLoop
from expscale_core.capture.redact import redact_episode
from expscale_core.capture.storable import storable_model, storable_text
from expscale_core.distill.base import Distiller
from expscale_core.embed.base import Embedder
from expscale_core.episode import Episode, EpisodeDraft, Outcome, utcnow
from expscale_core.episodes.queue import EpisodeQueue
from expscale_core.experience import Experience, ExperienceStatus, ScoredExperience
from expscale_core.factory import build_collaborators
from expscale_core.ids import IdLike, coerce_id
from expscale_core.llm import LLM
from expscale_core.ops.deletion import Deleter, Tombstones
from expscale_core.ops.stats import EngineStats, collect_stats
from expscale_core.refine import RefineReport
from expscale_core.scope import Scope
from expscale_core.serve.credit import UsageTally
from expscale_core.serve.inject import format_experiences
from expscale_core.serve.retriever import Retriever
from expscale_core.settings import CaptureSettings, DistillSettings, RefineSettings, RetrieveSettings, ShareSettings
from expscale_core.share.policy import SharePolicy
from expscale_core.share.review import Review
from expscale_core.store.base import ExperienceStore
from expscale_core.worker import BackgroundWorker

__all__ = ["EngineStats", "ExperienceEngine"]

log = logging.getLogger(__name__)
ScopeLike = Scope | dict[str, Any] | str | None
_NO_SCOPE = Scope()
T = TypeVar("T")


class _Shared(Generic[T]):
    """A collaborator the engine shares with its stages: reassigning it on the engine (a test swapping in a
    failing queue, say) reassigns it everywhere at once."""

    def __set_name__(self, owner: type, name: str) -> None:
        self._name = name

    def __get__(self, engine: ExperienceEngine, owner: type | None = None) -> T:
        value: T = getattr(engine._loop, self._name)
        return value

    def __set__(self, engine: ExperienceEngine, value: T) -> None:
        for stage in (engine._loop, engine._deleter, engine._retriever, engine._loop.tombstones, engine.review):
            if hasattr(stage, self._name):
                setattr(stage, self._name, value)


class ExperienceEngine:
    """Learns from finished episodes and serves what it learned.

    Collaborators are injected; :meth:`from_settings` builds them from :class:`ExpscaleSettings`.
    The first :meth:`record` starts the background worker; nothing runs before that. With
    ``autostart=False`` no thread is ever started by record or feedback: call :meth:`run_pending`
    yourself (deterministic runs, evaluations) or :meth:`drain`.

    Example:
        >>> from expscale_core.testing import make_engine
        >>> from expscale_core.episode import Outcome
        >>> with make_engine() as engine:
        ...     _ = engine.record(Episode(input="capital of Peru?", output="Lima", outcome=Outcome(score=1)))
        ...     _ = engine.drain(timeout=10)
        ...     engine.retrieve("what is the capital of Peru?")[0].experience.content
        'The verified answer is: Lima.'
    """

    store: _Shared[ExperienceStore] = _Shared()
    embedder: _Shared[Embedder] = _Shared()
    distiller: _Shared[Distiller] = _Shared()
    queue: _Shared[EpisodeQueue] = _Shared()
    llm: _Shared[LLM | None] = _Shared()

    def __init__(
        self,
        *,
        store: ExperienceStore,
        embedder: Embedder,
        distiller: Distiller,
        queue: EpisodeQueue,
        llm: LLM | None = None,
        scope: ScopeLike = None,
        retrieve_settings: RetrieveSettings | None = None,
        distill_settings: DistillSettings | None = None,
        refine_settings: RefineSettings | None = None,
        capture_settings: CaptureSettings | None = None,
        clock: Callable[[], datetime] = utcnow,
        autostart: bool = True,
        redact: Callable[[str], str] | None = None,
        screen_llm: Callable[[str, str], list[str]] | None = None,
        deployment: str | None = None,
        share_settings: ShareSettings | None = None,
    ) -> None:
        coerced = Scope.coerce(scope)
        self.scope = _NO_SCOPE if coerced == _NO_SCOPE else coerced  # record() then skips a comparison
        self.retrieve_settings = retrieve_settings or RetrieveSettings()
        self.distill_settings = distill_settings or DistillSettings()
        self.refine_settings = refine_settings or RefineSettings()
        self.capture_settings = capture_settings or CaptureSettings()
        self._clock = clock
        self._usage = UsageTally()
        tombstones = Tombstones(shared=store)
        self._deleter = Deleter(store, queue, tombstones)
        self._loop = BackgroundLoop(
            store=store,
            embedder=embedder,
            distiller=distiller,
            queue=queue,
            llm=llm,
            usage=self._usage,
            tombstones=tombstones,
            distill_settings=self.distill_settings,
            refine_settings=self.refine_settings,
            retrieve_settings=self.retrieve_settings,
            clock=clock,
            screen_llm=screen_llm,
            deployment=deployment,
            share=SharePolicy.from_settings(share_settings or ShareSettings()),
        )
        self.review = Review(store, self._loop.share, clock)
        """What waits for promotion or was flagged, and a person's approve / reject (:mod:`expscale_core.share`)."""
        self._retriever = Retriever(
            store, embedder, self.retrieve_settings, self._usage, clock, distrusted=self._loop.distrusted
        )
        self._worker = BackgroundWorker(self._loop.step, idle_s=self.distill_settings.idle_s)
        self._closed = False
        self._stop_listening = queue.on_commit(self._wake)
        self._autostart = autostart
        self.redact = redact
        """Applied to every text the engine stores: captured episodes from any adapter, feedback comments and
        corrections, imported experiences. Build one with :func:`expscale_core.capture.redact.build_redactor`."""
        self.screen_llm = screen_llm
        """A second screen for new lessons, after the pattern screen: ``(content, applicability)`` → reasons to
        quarantine. :class:`expscale_core.safety.screen_llm.LLMScreen` asks the LLM (``EXPSCALE_SCREEN__LLM``)."""
        self._loop.settle_interrupted_import()
        self._deleter.finish_interrupted()

    @classmethod
    def from_settings(cls, settings: Any = None, **overrides: Any) -> ExperienceEngine:
        """Build the engine from :class:`~expscale_core.settings.ExpscaleSettings` (read from env when None).

        ``overrides`` replace any collaborator: ``store=``, ``embedder=``, ``distiller=``, ``llm=``, ``queue=``.
        """
        return cls(**build_collaborators(settings, **overrides))

    # -- capture -------------------------------------------------------------------------

    def record(self, episode: Episode | EpisodeDraft, *, scope: ScopeLike = None) -> str:
        """Queue a finished episode (or capture's draft of one) for background distillation; returns its id.

        Cheap on the caller's thread: the episode is buffered and committed by the queue's writer within
        ``capture.commit_interval_s`` (see :meth:`EpisodeQueue.put` for the exact durability contract;
        :meth:`flush` and :meth:`close` commit at once). Distillation happens later on the worker thread.
        """
        if not isinstance(episode, (Episode, EpisodeDraft)):
            raise TypeError(
                f"record() takes an Episode, not {type(episode).__name__}; build one with Episode(input=...)"
            )
        self._check_open()
        episode = self._stamped(episode, scope)
        # Without autostart nothing runs in the background, so the episode is committed right here. Otherwise the
        # queue's writer makes it storable, commits it within capture.commit_interval_s and wakes the distiller.
        committed = self._loop.queue.put(episode, wait=not self._autostart)
        self._worker.touch()  # capture is app activity: the worker keeps out of its way
        if committed or not self._worker.started:  # (the first capture starts it)
            self._wake()
        return episode.id

    def _stamped(self, episode: Episode | EpisodeDraft, scope: ScopeLike) -> Episode | EpisodeDraft:
        """The episode as queued: in ``scope``, or the engine's when it has none; redacted."""
        unscoped = episode.scope is not self.scope and self.scope is not _NO_SCOPE and episode.scope == _NO_SCOPE
        if scope is None and not unscoped and self.redact is None:
            return episode  # capture's usual case: a draft stays one, for the queue's writer to validate
        if isinstance(episode, EpisodeDraft):
            episode = episode.build()
        if scope is not None or unscoped:
            episode = episode.model_copy(update={"scope": self.scope if scope is None else Scope.coerce(scope)})
        if self.redact is not None:  # redaction walks every value, so they must be storable (no cycle) first
            limit = self.capture_settings.max_field_chars
            episode = redact_episode(storable_model(episode, max_chars=limit), self.redact)
        return episode

    def flush(self) -> None:
        """Commit every captured episode to the durable queue now."""
        self.queue.flush()

    def feedback(
        self,
        episode_id: IdLike,
        score: float | bool,
        comment: str | None = None,
        *,
        correction: str | None = None,
        scope: ScopeLike = None,
        source: str | None = None,
        trusted: bool = False,
    ) -> None:
        """Attach an outcome to an episode and credit the experiences that were served to it.

        Args:
            episode_id: the id :meth:`record` returned (for LangChain, the root run id, str or UUID).
            score: in [-1, 1], or a bool: above 0 helped, below 0 was wrong or harmful.
            comment: what the user said, kept with the episode.
            correction: the right answer or fix, when known; distillers learn it.
            scope: the scope the feedback comes from (default: the engine's). The episode must lie in it:
                another tenant's episode id raises :class:`~expscale_core.errors.ScopeError`.
            source: who gave it ("user:42", "ci", "reviewer:ann"); default: the episode's scope. Distinct
                sources are what corroborate a lesson before it is shared (``EXPSCALE_SHARE__CORROBORATIONS``).
            trusted: the application itself or a reviewer vouches for it (a test passed, a tool confirmed the
                result): what it teaches is shared at once. End users' feedback is untrusted: their lessons stay
                in their scope until corroborated or approved (``engine.review``).
        """
        episode_id = coerce_id(episode_id)
        if isinstance(score, bool):
            score = 1.0 if score else -1.0
        if not isinstance(score, (int, float)) or not -1.0 <= float(score) <= 1.0:
            raise ValueError(f"feedback score must be a number in [-1, 1] or a bool, got {score!r}")
        for name, text in (("comment", comment), ("correction", correction)):
            if text is not None and not isinstance(text, str):
                raise TypeError(f"feedback {name} must be a str or None, not {type(text).__name__}")
        self._check_open()
        limit = self.capture_settings.max_field_chars
        comment = storable_text(comment, limit) if comment is not None else None
        correction = storable_text(correction, limit) if correction is not None else None
        if self.redact is not None:
            comment = self.redact(comment) if comment is not None else None
            correction = self.redact(correction) if correction is not None else None
        if source is not None and not isinstance(source, str):
            raise TypeError(f"feedback source must be a str naming who gave it, not {type(source).__name__}")
        outcome = Outcome(score=float(score), comment=comment, correction=correction, source=source, trusted=trusted)
        expected = Scope.coerce(scope) if scope is not None else self.scope
        if not self.queue.attach_outcome(episode_id, outcome, expected):
            log.warning(
                "feedback for episode %s, which is not recorded (yet): it is kept and joins the episode when it "
                "is recorded; check the id if this is unexpected (LangChain: the root run id)",
                episode_id,
            )
        self.queue.set_verdict(episode_id, (score > 0) - (score < 0))
        self._wake()

    def _wake(self) -> None:
        if self._autostart and not self._closed:
            self._worker.nudge()

    # -- retrieval -----------------------------------------------------------------------

    def retrieve(
        self,
        query: str,
        k: int | None = None,
        scope: ScopeLike = None,
        min_score: float | None = None,
        *,
        episode_id: IdLike | None = None,
    ) -> list[ScoredExperience]:
        """The ``k`` most useful active experiences for ``query`` in ``scope``, best first.

        ``min_score`` is a floor on cosine similarity (default from settings). With ``episode_id``,
        the engine remembers what it served so :meth:`feedback` on that episode credits them. While the
        store is unreachable this returns no experiences (logged once per outage) instead of raising.
        """
        if not isinstance(query, str):
            raise TypeError(f"query must be a str, not {type(query).__name__}")
        served_to = coerce_id(episode_id) if episode_id is not None else None
        self._check_open()
        k = self.retrieve_settings.k if k is None else k
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        if not query.strip():
            return []
        query = storable_text(query, self.capture_settings.max_field_chars)  # a lone surrogate, a 20 MB paste
        if isinstance(k, bool) or not isinstance(k, int):
            raise TypeError(f"k must be an int, not {type(k).__name__}")
        if min_score is not None and not (isinstance(min_score, (int, float)) and -1.0 <= min_score <= 1.0):
            raise ValueError(f"min_score is a cosine-similarity floor in [-1, 1], got {min_score!r}")
        floor = self.retrieve_settings.min_score if min_score is None else min_score
        read_scope = Scope.coerce(scope) if scope is not None else self.scope
        with self._worker.request():
            ranked = self._retriever.search(query, k=k, scope=read_scope, floor=floor)
            if ranked and served_to is not None:
                self.queue.record_served(served_to, [s.experience.id for s in ranked], [s.similarity for s in ranked])
        return ranked

    def format(
        self,
        experiences: Sequence[ScoredExperience | Experience],
        token_budget: int | None = None,
        *,
        delimiter: str | None = "experience",
    ) -> str:
        """Render experiences as a prompt block under the configured token budget."""
        return format_experiences(
            experiences, token_budget=token_budget or self.retrieve_settings.token_budget, delimiter=delimiter
        )

    # -- background work -----------------------------------------------------------------

    def run_pending(self) -> int:
        """Do all queued work now, on this thread: distill every pending episode (ignoring the capture
        delay), write usage and feedback statistics, and refine if it is due. Returns items handled.

        The background worker is held off meanwhile, and a batch it had already claimed is finished first, so
        everything queued before this call is done when it returns."""
        self._check_open()
        with self._worker.paused():
            return self._loop.run_all()

    def distill_pending(
        self,
        *,
        limit: int | None = None,
        ignore_delay: bool = True,
        progress: Callable[[int], None] | None = None,
    ) -> int:
        """Distill queued episodes on the calling thread; returns how many were handled.

        The worker calls this in batches. The CLI calls it directly (``expscale distill``).
        """
        return self._loop.distill_pending(limit=limit, ignore_delay=ignore_delay, progress=progress)

    def drain(self, timeout: float | None = None) -> bool:
        """Wait until every queued episode is distilled or failed, and all feedback is credited.

        Returns False if ``timeout`` seconds passed first. Episodes waiting for a retry after an
        LLM or store failure keep their backoff, so ``drain`` may time out while a server is down.
        """
        self._check_open()
        deadline = None if timeout is None else time.monotonic() + timeout
        self._worker.start()
        with self._worker.draining():
            self._worker.notify()
            while self.queue.outstanding() or self._usage:
                if deadline is not None and time.monotonic() >= deadline:
                    return False
                time.sleep(0.02)
        return True

    # -- maintenance ---------------------------------------------------------------------

    def refine(self, scope: ScopeLike = None) -> RefineReport:
        """Merge near-duplicates, supersede contradictions, decay utility and enforce the cap now."""
        return self._loop.refine(Scope.coerce(scope) if scope is not None else None)

    def restore(self, experience_ids: Sequence[IdLike]) -> int:
        """Make archived or superseded experiences active again; returns how many changed.
        Quarantined ones stay quarantined: a person releases them with :meth:`release`."""
        return self.review.reactivate(
            experience_ids, (ExperienceStatus.ARCHIVED, ExperienceStatus.SUPERSEDED), pin=True
        )

    def quarantined(self, scope: ScopeLike = None) -> list[Experience]:
        """Experiences that screening held back as possible prompt injections, with their reasons."""
        return [item.experience for item in self.review.pending(scope) if item.flagged]

    def release(self, experience_ids: Sequence[IdLike]) -> int:
        """A person's decision that quarantined experiences are safe: they become active and are served."""
        return self.review.reactivate(experience_ids, (ExperienceStatus.QUARANTINED,))

    def delete(self, *, scope: ScopeLike = None, episode_id: IdLike | None = None) -> dict[str, int]:
        """Completely delete a scope (experiences and episodes), or one episode and everything its text reached.

        Every experience distilled from the episode is deleted, merged ones included; the other episodes they
        came from are distilled again, so what they taught comes back without the deleted text, and what a
        deleted experience had superseded is active again. A delete wins over work in flight: a distillation,
        refine or credit flush that started before it never writes the deleted episode or scope back. When this
        returns, no file in the data dir holds the deleted text: the queue's WAL is checkpointed with
        ``secure_delete`` and the embedded store is compacted.
        """
        if (scope is None) == (episode_id is None):
            raise ValueError("pass exactly one of scope= or episode_id=")
        target = Scope.coerce(scope) if scope is not None else None
        return self._deleter.delete(target, coerce_id(episode_id) if episode_id is not None else None)

    def stats(self) -> EngineStats:
        """Counts and memory-quality figures, from what is persisted (the same in every process)."""
        self.store.ensure_collection(self.embedder.dimension)
        self._loop.persist_llm_usage()
        return collect_stats(
            self.store,
            self.queue,
            embedder=self.embedder.model_id,
            distiller=self.distiller.name,
            duplicate_threshold=self.refine_settings.duplicate_threshold,
        )

    # -- lifecycle -----------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("this ExperienceEngine is closed; create a new one")

    def close(self) -> None:
        """Stop the worker (episodes not yet distilled stay queued), flush statistics, close the store."""
        if self._closed:
            return
        self._closed = True
        self._stop_listening()
        self._worker.stop()
        self._loop.close()
        self.store.close()
        self.queue.close()

    def __enter__(self) -> ExperienceEngine:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
