"""Capture: a LangChain callback handler that turns each top-level run into one episode."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any
from uuid import UUID

from expscale_core import EpisodeRecorder, Message, Scope
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.documents import Document
from langchain_core.messages import BaseMessage
from langchain_core.outputs import LLMResult

from langchain_expscale._messages import message, output_text, result_text, to_text

if TYPE_CHECKING:
    from expscale_core import ExperienceEngine

__all__ = ["ExperienceCallbackHandler"]


_TEXT_IDS: dict[int, str] = {}


def _text_id(run_id: UUID) -> str:
    # Every event of a run converts the same UUIDs (str(UUID) formats 128 bits each time): a chain's handful of
    # run ids is converted once, not at each of its start/end events. Keyed by the UUID's int, whose hash is
    # computed in C (a UUID's own __hash__ is Python); the cache forgets everything past 8,192 ids.
    key = run_id.int
    text = _TEXT_IDS.get(key)
    if text is None:
        if len(_TEXT_IDS) >= 8192:
            _TEXT_IDS.clear()
        text = _TEXT_IDS[key] = str(run_id)
    return text


def _id(run_id: UUID | None) -> str | None:
    return _text_id(run_id) if run_id is not None else None


class ExperienceCallbackHandler(BaseCallbackHandler):
    """Records every top-level run as an expscale episode; the root ``run_id`` is the episode id.

    Attach it with ``config={"callbacks": [handler]}`` or ``chain.with_config(callbacks=[handler])``.
    Each event costs a dict update under a lock; the finished episode goes to the engine's durable
    local queue, never to the store or an LLM, so a failing store or LLM cannot slow the chain.
    It never raises into the chain.

    Example:
        >>> from langchain_core.language_models.fake_chat_models import FakeListChatModel
        >>> from expscale_core.testing import make_engine
        >>> engine = make_engine()
        >>> handler = ExperienceCallbackHandler(engine)
        >>> _ = FakeListChatModel(responses=["Lima"]).invoke("capital of Peru?", config={"callbacks": [handler]})
        >>> [e.input for e, _, _ in engine.queue.list()]
        ['capital of Peru?']
        >>> engine.close()
    """

    raise_error = False
    run_inline = True  # the work is tiny; running inline keeps event order and avoids executor hops

    def __init__(
        self,
        engine: ExperienceEngine,
        *,
        scope: Scope | dict[str, Any] | str | None = None,
        redact: Callable[[str], str] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.engine = engine
        self.recorder = EpisodeRecorder(engine, scope=scope, redact=redact, metadata=metadata)

    def episode_id(self, run_id: UUID | str) -> str | None:
        """The episode a (possibly nested) run belongs to, while it is running."""
        return self.recorder.root_of(run_id if isinstance(run_id, str) else _text_id(run_id))

    # chains ------------------------------------------------------------------------------

    def on_chain_start(
        self,
        serialized: dict[str, Any] | None,
        inputs: Any,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> None:
        rid, pid = _text_id(run_id), _id(parent_run_id)
        # A nested step of a tracked run joins it: only the root's input is the episode's, so no text work.
        if pid is None or not self.recorder.join(rid, pid):
            user = (kwargs.get("metadata") or {}).get("user_id")  # config={"metadata": {"user_id": ...}}
            self.recorder.start(rid, pid, input=to_text(inputs), name=kwargs.get("name"), user=_user(user))

    def on_chain_end(self, outputs: Any, *, run_id: UUID, **kwargs: Any) -> None:
        rid = _text_id(run_id)
        if self.recorder.is_open(rid):  # only a root's output is the episode's; nested ends cost a lookup
            self.recorder.end(rid, output=output_text(outputs), input=_streamed_input(kwargs))

    def on_chain_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self.recorder.error(_text_id(run_id), error)
        self.recorder.end(_text_id(run_id), output=None, input=_streamed_input(kwargs))

    # models ------------------------------------------------------------------------------

    def on_chat_model_start(
        self,
        serialized: dict[str, Any] | None,
        messages: list[list[BaseMessage]],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        converted = [message(m) for m in (messages[0] if messages else [])]
        model = (metadata or {}).get("ls_model_name")
        self.recorder.llm_start(_text_id(run_id), _id(parent_run_id), converted, model=model)

    def on_llm_start(
        self,
        serialized: dict[str, Any] | None,
        prompts: list[str],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        converted = [Message(role="user", content=p) for p in prompts[:1]]
        self.recorder.llm_start(
            _text_id(run_id), _id(parent_run_id), converted, model=(metadata or {}).get("ls_model_name")
        )

    def on_llm_end(self, response: LLMResult, *, run_id: UUID, **kwargs: Any) -> None:
        text, reasoning, calls = result_text(response)
        self.recorder.llm_end(_text_id(run_id), text, reasoning=reasoning, tool_calls=calls)

    def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self.recorder.error(_text_id(run_id), error)
        self.recorder.end(_text_id(run_id), output=None)

    # tools and retrievers ------------------------------------------------------------------

    def on_tool_start(
        self,
        serialized: dict[str, Any] | None,
        input_str: str,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        inputs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        name = kwargs.get("name") or (serialized or {}).get("name") or "tool"
        self.recorder.tool_start(
            _text_id(run_id), _id(parent_run_id), str(name), inputs if inputs is not None else input_str
        )

    def on_tool_end(self, output: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self.recorder.tool_end(_text_id(run_id), to_text(output))

    def on_tool_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self.recorder.error(_text_id(run_id), error)

    def on_retriever_start(
        self,
        serialized: dict[str, Any] | None,
        query: str,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> None:
        self.recorder.retrieval_start(_text_id(run_id), _id(parent_run_id), query)

    def on_retriever_end(self, documents: Sequence[Document], *, run_id: UUID, **kwargs: Any) -> None:
        self.recorder.retrieval_end(_text_id(run_id), [d.page_content for d in documents])

    def on_retriever_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self.recorder.error(_text_id(run_id), error)


def _streamed_input(kwargs: dict[str, Any]) -> str | None:
    # A streamed run (``stream``/``astream``) starts before its input is known; LangChain passes it at the end.
    inputs = kwargs.get("inputs")
    return to_text(inputs) if inputs is not None else None


def _user(value: Any) -> str | None:
    return str(value)[:200] if value is not None and str(value).strip() else None
