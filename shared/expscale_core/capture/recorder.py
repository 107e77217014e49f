"""Capture: building one episode per top-level run from a framework's stream of events.

Framework adapters translate their callbacks or instrumentation events into calls on
:class:`EpisodeRecorder`. The recorder keeps the run tree (every nested run belongs to the
episode of its root), builds the steps, redacts, and hands the finished episode to the engine's
durable queue. It never raises into the caller: failures are logged and the episode is kept in
memory to be recorded at the next opportunity.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Hashable, Sequence
from typing import Any, Protocol

from expscale_core.capture.redact import Redactor, redact_episode
from expscale_core.capture.storable import storable_model, text_of
from expscale_core.episode import (
    Episode,
    EpisodeDraft,
    ErrorStep,
    LLMStep,
    Message,
    ObservationStep,
    RetrievalStep,
    Step,
    ToolStep,
    utcnow,
)
from expscale_core.scope import Scope


class EpisodeSink(Protocol):
    """Where finished episodes go: :class:`~expscale_core.engine.ExperienceEngine` is one."""

    @property
    def scope(self) -> Scope: ...

    def record(self, episode: Episode | EpisodeDraft) -> str: ...


__all__ = ["EpisodeRecorder", "EpisodeSink", "episodes_from_messages", "redact_episode"]  # redact_episode: re-export

log = logging.getLogger(__name__)


def episodes_from_messages(
    messages: Sequence[Message], *, scope: Scope | None = None, metadata: dict[str, Any] | None = None
) -> list[Episode]:
    """Split a chat transcript into episodes: each user message starts one, the replies until the next
    user message are its steps, and the last assistant reply is its output."""
    episodes: list[Episode] = []
    current: Episode | None = None
    for msg in messages:
        if msg.role in ("user", "human"):
            current = Episode(input=msg.content, scope=scope or Scope(), metadata=dict(metadata or {}))
            episodes.append(current)
        elif current is not None and msg.role in ("assistant", "ai"):
            current.steps.append(LLMStep(response=msg.content))
            current.output = msg.content
        elif current is not None and msg.role == "tool":
            current.steps.append(ToolStep(tool="tool", output=msg.content))
    return episodes


class _Open:
    """An episode under construction, with the steps still waiting for their end event. Plain fields: when the
    run ends they become an :class:`EpisodeDraft`, which the queue's writer validates (not the caller's thread)."""

    __slots__ = ("id", "input", "members", "metadata", "pending", "started_at", "steps")

    def __init__(self, episode_id: str, input: str, metadata: dict[str, Any]) -> None:
        self.id = episode_id
        self.input = input
        self.metadata = metadata
        self.started_at = utcnow()
        self.steps: list[Step] = []
        self.pending: dict[Hashable, Step] = {}
        self.members: list[Hashable] = []  # nested runs, forgotten with the episode


class EpisodeRecorder:
    """Thread-safe builder of episodes from run events; hands each finished root run to the engine.

    Every method is O(1) and never raises. ``run_id`` and ``parent_id`` are the framework's run ids, any
    hashable; a run whose parent is unknown is a root, and the root becomes the episode whose id is
    ``episode_id(root run id)`` (``str`` by default).

    Example:
        >>> from expscale_core.testing import make_engine
        >>> with make_engine() as engine:
        ...     rec = EpisodeRecorder(engine)
        ...     rec.start("r1", None, input="2+2?")
        ...     rec.llm_start("r2", "r1", [Message(role="user", content="2+2?")], model="fake")
        ...     rec.llm_end("r2", "4")
        ...     rec.end("r1", output="4").steps[0].response
        '4'
    """

    def __init__(
        self,
        engine: EpisodeSink,
        *,
        scope: Scope | dict[str, Any] | str | None = None,
        redact: Redactor | None = None,
        metadata: dict[str, Any] | None = None,
        episode_id: Callable[[Any], str] = str,
    ) -> None:
        self.engine = engine
        self.scope = Scope.coerce(scope) if scope is not None else engine.scope
        self.redact = redact
        self.metadata = dict(metadata or {})
        if not all(isinstance(key, str) for key in self.metadata):
            raise TypeError(f"EpisodeRecorder(metadata=...) keys must be strings, got {list(self.metadata)!r}")
        self.episode_id = episode_id
        self._open: dict[Hashable, _Open] = {}  # root runs
        self._runs: dict[Hashable, _Open] = {}  # every tracked run, root or nested, to its episode
        self._unsaved: list[Episode | EpisodeDraft] = []
        self._lock = threading.Lock()

    # -- run tree --------------------------------------------------------------------------

    def root_of(self, run_id: Hashable) -> str | None:
        """The id of the episode ``run_id`` belongs to, while the episode is open."""
        state = self._runs.get(run_id)
        return None if state is None else state.id

    def is_open(self, run_id: Hashable) -> bool:
        """Whether ``run_id`` is the root of an open episode."""
        return run_id in self._open

    def start(
        self,
        run_id: Hashable,
        parent_id: Hashable | None,
        *,
        input: str | None = None,
        name: str | None = None,
        user: str | None = None,
    ) -> None:
        """A run began. Roots open a new episode; nested runs join their root's episode. ``user``: who asked, when
        the framework says (the episode's ``metadata["user"]``; it is the source of what the episode teaches)."""
        try:
            with self._lock:
                state = self._runs.get(parent_id) if parent_id is not None else None
                if state is not None:
                    self._member(run_id, state)
                    return
                if run_id in self._runs:
                    return
                episode_id = self.episode_id(run_id)
                if not episode_id.strip():
                    raise ValueError("a root run needs a non-empty run id: it becomes the episode id")
                metadata = dict(self.metadata)
                if name:
                    metadata["name"] = name
                if user:
                    metadata["user"] = user
                self._runs[run_id] = self._open[run_id] = _Open(episode_id, _text(input), metadata)
        except Exception:  # capture must never break the user's run
            log.exception("expscale: could not open an episode for run %s", run_id)

    def join(self, run_id: Hashable, parent_id: Hashable) -> bool:
        """A nested run began; it joins its parent's episode if the parent is tracked (True), else nothing
        happens (False).

        For frameworks where many top-level runs are not user requests (index building, embedding), so
        only some roots open episodes.
        """
        with self._lock:
            state = self._runs.get(parent_id)
            if state is None:
                return False
            self._member(run_id, state)
            return True

    def _member(self, run_id: Hashable, state: _Open) -> None:
        if run_id not in self._runs:
            self._runs[run_id] = state
            state.members.append(run_id)

    def _add(self, run_id: Hashable, parent_id: Hashable | None, step: Step, *, pending: bool) -> None:
        try:
            with self._lock:
                state = self._runs.get(run_id) or (self._runs.get(parent_id) if parent_id is not None else None)
                if state is None:
                    return
                self._member(run_id, state)
                if isinstance(step, LLMStep):
                    # Wrappers report one call twice (LlamaIndex's acomplete around complete): a call that
                    # starts while an identical one is pending is that call.
                    twin = next(
                        (p for p in state.pending.values() if isinstance(p, LLMStep) and p.messages == step.messages),
                        None,
                    )
                    if twin is not None:
                        state.pending[run_id] = twin
                        return
                state.steps.append(step)
                if pending:
                    state.pending[run_id] = step
        except Exception:
            log.exception("expscale: could not record a step of run %s", run_id)

    def _finish(self, run_id: Hashable, update: Callable[[Step], None]) -> None:
        try:
            with self._lock:
                state = self._runs.get(run_id)
                step = state.pending.pop(run_id, None) if state is not None else None
                if step is not None:
                    update(step)
                    step.ended_at = utcnow()
        except Exception:
            log.exception("expscale: could not finish a step of run %s", run_id)

    # -- steps -----------------------------------------------------------------------------

    def llm_start(
        self,
        run_id: Hashable,
        parent_id: Hashable | None,
        messages: Sequence[Message],
        *,
        model: str | None = None,
        input: str | None = None,
    ) -> None:
        """A model call began. A model called on its own is a root run: its last message is the input."""
        if parent_id is None or self.root_of(parent_id) is None:
            last_user = next((m.content for m in reversed(messages) if m.role in ("user", "human")), None)
            self.start(run_id, None, input=input or last_user or (messages[-1].content if messages else ""))
        self._add(run_id, parent_id, LLMStep(model=model, messages=list(messages), name=model), pending=True)

    def llm_end(
        self,
        run_id: Hashable,
        response: str,
        *,
        reasoning: str | None = None,
        tool_calls: Sequence[dict[str, Any]] = (),
    ) -> None:
        def update(step: Step) -> None:
            assert isinstance(step, LLMStep)
            step.response = response
            step.reasoning = reasoning or None
            if tool_calls:
                step.metadata["tool_calls"] = list(tool_calls)

        self._finish(run_id, update)
        if self.is_open(run_id):
            self.end(run_id, output=response)

    def tool_start(self, run_id: Hashable, parent_id: Hashable | None, tool: str, input: Any) -> None:
        self._add(run_id, parent_id, ToolStep(tool=tool, input=input), pending=True)

    def tool_end(self, run_id: Hashable, output: Any) -> None:
        self._finish(run_id, lambda s: setattr(s, "output", output))

    def retrieval_start(self, run_id: Hashable, parent_id: Hashable | None, query: str) -> None:
        self._add(run_id, parent_id, RetrievalStep(query=query), pending=True)

    def retrieval_end(self, run_id: Hashable, documents: Sequence[str]) -> None:
        self._finish(run_id, lambda s: setattr(s, "documents", list(documents)))

    def observe(self, run_id: Hashable, text: str) -> None:
        self._add(run_id, None, ObservationStep(text=text), pending=False)

    def error(self, run_id: Hashable, exc: BaseException | str) -> None:
        """An error in any run: it closes a pending tool step, and is kept as an error step."""
        message = str(exc)
        error_type = type(exc).__name__ if isinstance(exc, BaseException) else "Error"

        def update(step: Step) -> None:
            if isinstance(step, ToolStep):
                step.error = f"{error_type}: {message}"

        self._finish(run_id, update)
        self._add(run_id, None, ErrorStep(error_type=error_type, message=message), pending=False)

    # -- finishing -------------------------------------------------------------------------

    def end(
        self, run_id: Hashable, *, output: str | None = None, input: str | None = None
    ) -> Episode | EpisodeDraft | None:
        """A run ended. For a root, the episode is finished and queued; returns what was queued (None otherwise):
        a draft the queue validates as it stores it, or with redaction the redacted :class:`Episode`."""
        try:
            with self._lock:
                state = self._open.pop(run_id, None)
                if state is None:
                    return None
                runs = self._runs
                runs.pop(run_id, None)
                for member in state.members:
                    runs.pop(member, None)
            # Validated by the queue's writer, not here: on the caller's thread it cost as much as the rest of capture.
            draft = EpisodeDraft(
                id=state.id,
                scope=self.scope,
                input=state.input or _text(input),
                output=None if output is None else _text(output),  # an adapter's object must not cost the episode
                steps=state.steps,
                metadata=state.metadata,
                started_at=state.started_at,
                ended_at=utcnow(),
            )
            episode: Episode | EpisodeDraft = draft
            if self.redact is not None:  # on a storable copy: captured values may hold cycles
                episode = redact_episode(storable_model(draft.build()), self.redact)
            self._record(episode)
            return episode
        except Exception:
            log.exception("expscale: could not finish the episode of run %s", run_id)
            return None

    def _record(self, episode: Episode | EpisodeDraft | None) -> None:
        if episode is not None and not self._unsaved:  # the usual case, nothing held back: straight to the engine
            try:
                self.engine.record(episode)
            except Exception as exc:
                self._hold([episode], exc)
            return
        with self._lock:
            backlog, self._unsaved = [*self._unsaved, *([episode] if episode else [])], []
        for i, item in enumerate(backlog):
            try:
                self.engine.record(item)
            except Exception as exc:
                self._hold(backlog[i:], exc)
                return

    def _hold(self, episodes: list[Episode | EpisodeDraft], exc: Exception) -> None:
        # The queue is local disk: keep everything until it works again (flush() or the next capture retries).
        log.warning(
            "expscale: could not queue episode %s yet (%s); holding %d in memory", episodes[0].id, exc, len(episodes)
        )
        with self._lock:
            self._unsaved = episodes + self._unsaved

    def flush(self) -> int:
        """Try again to queue the episodes held in memory; returns how many are still held."""
        self._record(None)
        with self._lock:
            return len(self._unsaved)


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return "" if value is None else text_of(value)
