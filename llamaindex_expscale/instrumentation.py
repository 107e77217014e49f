"""Capture for LlamaIndex: one episode per top-level query, chat or agent run, from the instrumentation dispatcher.

Agents (``FunctionAgent``, ``ReActAgent``, ``AgentWorkflow``) are workflows: their ``run`` span stays open until the
workflow stops, and every step, LLM call and tool call runs inside it. Tool calls are their own spans (``acall`` /
``call`` on a ``BaseTool``), which is where their input and output (or error) are recorded. Streaming queries and
chats end their episode once the stream is consumed (:mod:`llamaindex_expscale._streams`).
"""

from __future__ import annotations

import contextvars
import inspect
import uuid
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from expscale_core import EpisodeRecorder, Message, Scope
from llama_index.core.chat_engine.types import StreamingAgentChatResponse
from llama_index.core.instrumentation import get_dispatcher  # type: ignore[attr-defined]  # re-exported
from llama_index.core.instrumentation.dispatcher import Dispatcher  # type: ignore[attr-defined]  # re-exported
from llama_index.core.instrumentation.event_handlers import BaseEventHandler
from llama_index.core.instrumentation.events import BaseEvent
from llama_index.core.instrumentation.events.exception import ExceptionEvent
from llama_index.core.instrumentation.events.llm import (
    LLMChatEndEvent,
    LLMChatStartEvent,
    LLMCompletionEndEvent,
    LLMCompletionStartEvent,
)
from llama_index.core.instrumentation.events.retrieval import RetrievalEndEvent
from llama_index.core.instrumentation.span import SimpleSpan
from llama_index.core.instrumentation.span_handlers import BaseSpanHandler
from llama_index.core.tools import BaseTool
from pydantic import PrivateAttr

from llamaindex_expscale._convert import messages, result_text, span_input, tool_output
from llamaindex_expscale._streams import StreamFollower

if TYPE_CHECKING:
    from expscale_core import ExperienceEngine

__all__ = ["ExperienceEventHandler", "ExperienceSpanHandler", "Instrumentation", "find_instrumentation", "instrument"]

_ROOT_METHODS = frozenset({"query", "aquery", "chat", "achat", "stream_chat", "astream_chat"})


def _method(span_id: str) -> str:
    return span_id.split("-", 1)[0].rsplit(".", 1)[-1]


def _is_workflow_run(id_: str, instance: Any) -> bool:
    if _method(id_) != "run" or instance is None:
        return False
    from workflows import Workflow  # llama-index-core's workflows dependency

    return isinstance(instance, Workflow)


class _Slot:
    """Where a workflow run, which starts in a task of its own, leaves its episode id for the caller to read."""

    __slots__ = ("episode_id",)

    def __init__(self) -> None:
        self.episode_id: str | None = None


_SLOT_KEY = "expscale_episode_slot"
_MAX_SLOTS = 4096


class ExperienceSpanHandler(BaseSpanHandler[SimpleSpan]):
    """Tracks the span tree: query and chat roots open episodes, nested spans join them."""

    _recorder: EpisodeRecorder = PrivateAttr()
    _last: contextvars.ContextVar[str | _Slot | None] = PrivateAttr()
    _owner: Instrumentation | None = PrivateAttr(default=None)
    _streams: StreamFollower = PrivateAttr()
    _slots: OrderedDict[str, _Slot] = PrivateAttr()
    _run_slot: contextvars.ContextVar[str | None] = PrivateAttr()

    def __init__(
        self, recorder: EpisodeRecorder, last: contextvars.ContextVar[str | _Slot | None], **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self._recorder = recorder
        self._last = last
        self._streams = StreamFollower(recorder)
        self._slots = OrderedDict()
        self._run_slot = contextvars.ContextVar("expscale_run_slot", default=None)

    # A workflow (an agent's run) runs in a task the runtime creates, whose spans the caller's context never
    # sees. Just before creating it, the runtime asks every span handler for propagation context, in the
    # caller's context, and hands it to the new task: the caller gets a slot there, and the run fills it in.
    def capture_propagation_context(self) -> dict[str, Any]:
        slot, key = _Slot(), uuid.uuid4().hex
        with self.lock:
            self._slots[key] = slot
            while len(self._slots) > _MAX_SLOTS:  # runs that never started
                self._slots.popitem(last=False)
        self._last.set(slot)
        return {_SLOT_KEY: key}

    def restore_propagation_context(self, context: dict[str, Any]) -> None:
        key = context.get(_SLOT_KEY)
        self._run_slot.set(key if isinstance(key, str) else None)

    @classmethod
    def class_name(cls) -> str:
        return "ExperienceSpanHandler"

    def new_span(
        self,
        id_: str,
        bound_args: inspect.BoundArguments,
        instance: Any = None,
        parent_span_id: str | None = None,
        tags: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> SimpleSpan | None:
        arguments = dict(bound_args.arguments)
        if parent_span_id is not None and self._recorder.root_of(parent_span_id) is not None:
            if isinstance(instance, BaseTool):
                name = instance.metadata.name or type(instance).__name__
                given = {k: v for k, v in arguments.items() if k not in ("self",)}
                self._recorder.tool_start(id_, parent_span_id, name, given.get("kwargs", given))
            else:
                self._recorder.join(id_, parent_span_id)
        elif _method(id_) in _ROOT_METHODS or _is_workflow_run(id_, instance):
            start_event = arguments.get("start_event")  # an agent's run: the user message is on its start event
            if start_event is not None:
                arguments["user_msg"] = getattr(start_event, "user_msg", None)
            user = (tags or {}).get("user_id")  # with instrument_tags({"user_id": ...}): the source of its lessons
            self._recorder.start(
                id_, None, input=span_input(arguments), name=id_.split("-", 1)[0], user=str(user) if user else None
            )
            key = self._run_slot.get()
            with self.lock:
                slot = self._slots.pop(key, None) if key is not None else None
            if slot is not None:  # a workflow run: tell the caller, whose context this task cannot touch
                slot.episode_id = id_
            else:  # a query or chat runs in the caller's own thread or task
                self._last.set(id_)
        return None

    def prepare_to_exit_span(
        self, id_: str, bound_args: inspect.BoundArguments, instance: Any = None, result: Any = None, **kwargs: Any
    ) -> None:
        if self._recorder.is_open(id_):
            if not self._streams.follow(id_, result):
                self._recorder.end(id_, output=result_text(result))
            self._finished(id_)
        elif isinstance(instance, BaseTool):
            self._recorder.tool_end(id_, tool_output(result))
        elif isinstance(instance, StreamingAgentChatResponse):
            self._streams.chat_done(instance)

    def prepare_to_drop_span(
        self,
        id_: str,
        bound_args: inspect.BoundArguments,
        instance: Any = None,
        err: BaseException | None = None,
        **kwargs: Any,
    ) -> None:
        if self._recorder.is_open(id_):
            if err is not None:
                self._recorder.error(id_, err)
            self._recorder.end(id_, output=None)
            self._finished(id_)
        elif isinstance(instance, BaseTool):
            self._recorder.error(id_, err if err is not None else "tool call dropped")
        elif isinstance(instance, StreamingAgentChatResponse):
            self._streams.chat_done(instance, err)

    def _finished(self, id_: str) -> None:
        if not isinstance(self._last.get(), _Slot):
            self._last.set(id_)


class ExperienceEventHandler(BaseEventHandler):
    """Turns retrieval, LLM, tool and exception events into steps of the open episode."""

    _recorder: EpisodeRecorder = PrivateAttr()

    def __init__(self, recorder: EpisodeRecorder, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._recorder = recorder

    @classmethod
    def class_name(cls) -> str:
        return "ExperienceEventHandler"

    def handle(self, event: BaseEvent, **kwargs: Any) -> None:
        span, rec = event.span_id, self._recorder
        if span is None or rec.root_of(span) is None:
            return
        if isinstance(event, RetrievalEndEvent):
            query = event.str_or_query_bundle
            rec.retrieval_start(event.id_, span, query if isinstance(query, str) else query.query_str)
            rec.retrieval_end(event.id_, [n.node.get_content() for n in event.nodes])
        elif isinstance(event, LLMChatStartEvent):
            rec.llm_start(f"llm:{span}", span, messages(event.messages), model=event.model_dict.get("model"))
        elif isinstance(event, LLMChatEndEvent):
            response = event.response
            text = (response.message.content or "") if response is not None else ""
            reasoning = response.additional_kwargs.get("reasoning_content") if response is not None else None
            rec.llm_end(f"llm:{span}", text, reasoning=reasoning if isinstance(reasoning, str) else None)
        elif isinstance(event, LLMCompletionStartEvent):
            rec.llm_start(
                f"llm:{span}", span, [Message(role="user", content=event.prompt)], model=event.model_dict.get("model")
            )
        elif isinstance(event, LLMCompletionEndEvent):
            rec.llm_end(f"llm:{span}", event.response.text)
        elif isinstance(event, ExceptionEvent):
            rec.error(event.id_, event.exception)


class Instrumentation:
    """The handlers :func:`instrument` registered; use it to find episode ids and to stop capturing."""

    def __init__(self, recorder: EpisodeRecorder, dispatcher: Dispatcher) -> None:
        self.recorder = recorder
        self.engine = recorder.engine
        self._dispatcher = dispatcher
        self._last: contextvars.ContextVar[str | _Slot | None] = contextvars.ContextVar(
            "expscale_last_episode", default=None
        )
        self.span_handler = ExperienceSpanHandler(recorder, self._last)
        self.span_handler._owner = self
        self.event_handler = ExperienceEventHandler(recorder)
        dispatcher.add_span_handler(self.span_handler)
        dispatcher.add_event_handler(self.event_handler)

    @property
    def last_episode_id(self) -> str | None:
        """The episode of the latest query, chat or agent run started in this thread or asyncio task: per
        request under concurrency, and never another caller's."""
        last = self._last.get()
        return last.episode_id if isinstance(last, _Slot) else last

    def episode_id(self, span_id: str) -> str | None:
        """The episode a span belongs to, while it runs."""
        return self.recorder.root_of(span_id)

    def remove(self) -> None:
        """Stop capturing."""
        if self.span_handler in self._dispatcher.span_handlers:
            self._dispatcher.span_handlers.remove(self.span_handler)
        if self.event_handler in self._dispatcher.event_handlers:
            self._dispatcher.event_handlers.remove(self.event_handler)


def instrument(
    engine: ExperienceEngine,
    *,
    scope: Scope | dict[str, Any] | str | None = None,
    redact: Callable[[str], str] | None = None,
    dispatcher: Dispatcher | None = None,
) -> Instrumentation:
    """Capture every top-level LlamaIndex query and chat as an episode (one line, at start-up).

    The episode id is the root span id: ``instrumentation.last_episode_id`` after a call, for
    ``engine.feedback``. Capture never raises into the pipeline.

    Example:
        >>> from expscale_core.testing import make_engine
        >>> engine = make_engine()
        >>> capture = instrument(engine)
        >>> capture.remove(); engine.close()
    """
    recorder = EpisodeRecorder(engine, scope=scope, redact=redact, metadata={"source": "llamaindex"})
    return Instrumentation(recorder, dispatcher or get_dispatcher())


def find_instrumentation(engine: ExperienceEngine, dispatcher: Dispatcher | None = None) -> Instrumentation | None:
    """The instrumentation registered for ``engine`` on the dispatcher, if any."""
    for handler in (dispatcher or get_dispatcher()).span_handlers:
        if isinstance(handler, ExperienceSpanHandler) and handler._recorder.engine is engine:
            return handler._owner
    return None
