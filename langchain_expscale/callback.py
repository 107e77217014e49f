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


def _episode_id(key: int) -> str:
    # str(UUID(int=key)) without building the UUID (its constructor is most of the cost)
    h = f"{key:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _key(run_id: UUID | None) -> int | None:
    return None if run_id is None else run_id.int


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
        # Runs are keyed by their UUID's 128-bit int, hashed in C (a UUID hashes in Python, and its text costs a
        # format per event); only a root's UUID is ever turned into text, as its episode's id.
        self.recorder = EpisodeRecorder(engine, scope=scope, redact=redact, metadata=metadata, episode_id=_episode_id)

    def episode_id(self, run_id: UUID | str) -> str | None:
        """The episode a (possibly nested) run belongs to, while it is running."""
        try:
            key = (UUID(run_id) if isinstance(run_id, str) else run_id).int
        except ValueError:  # not a LangChain run id, so not one of ours
            return None
        return self.recorder.root_of(key)

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
        # A nested step of a tracked run joins it: only the root's input is the episode's, so no text work.
        if parent_run_id is not None and self.recorder.join(run_id.int, parent_run_id.int):
            return
        user = (kwargs.get("metadata") or {}).get("user_id")  # config={"metadata": {"user_id": ...}}
        self.recorder.start(
            run_id.int, _key(parent_run_id), input=to_text(inputs), name=kwargs.get("name"), user=_user(user)
        )

    def on_chain_end(self, outputs: Any, *, run_id: UUID, **kwargs: Any) -> None:
        key = run_id.int
        if self.recorder.is_open(key):  # only a root's output is the episode's; nested ends cost a lookup
            self.recorder.end(key, output=output_text(outputs), input=_streamed_input(kwargs))

    def on_chain_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self.recorder.error(run_id.int, error)
        self.recorder.end(run_id.int, output=None, input=_streamed_input(kwargs))

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
        self.recorder.llm_start(run_id.int, _key(parent_run_id), converted, model=model)

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
        self.recorder.llm_start(run_id.int, _key(parent_run_id), converted, model=(metadata or {}).get("ls_model_name"))

    def on_llm_end(self, response: LLMResult, *, run_id: UUID, **kwargs: Any) -> None:
        text, reasoning, calls = result_text(response)
        self.recorder.llm_end(run_id.int, text, reasoning=reasoning, tool_calls=calls)

    def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self.recorder.error(run_id.int, error)
        self.recorder.end(run_id.int, output=None)

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
            run_id.int, _key(parent_run_id), str(name), inputs if inputs is not None else input_str
        )

    def on_tool_end(self, output: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self.recorder.tool_end(run_id.int, to_text(output))

    def on_tool_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self.recorder.error(run_id.int, error)

    def on_retriever_start(
        self,
        serialized: dict[str, Any] | None,
        query: str,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> None:
        self.recorder.retrieval_start(run_id.int, _key(parent_run_id), query)

    def on_retriever_end(self, documents: Sequence[Document], *, run_id: UUID, **kwargs: Any) -> None:
        self.recorder.retrieval_end(run_id.int, [d.page_content for d in documents])

    def on_retriever_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self.recorder.error(run_id.int, error)


def _streamed_input(kwargs: dict[str, Any]) -> str | None:
    # A streamed run (``stream``/``astream``) starts before its input is known; LangChain passes it at the end.
    inputs = kwargs.get("inputs")
    return to_text(inputs) if inputs is not None else None


def _user(value: Any) -> str | None:
    return str(value)[:200] if value is not None and str(value).strip() else None
