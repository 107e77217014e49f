"""Offline fakes for LangChain code that uses expscale."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import BaseMessage
from langchain_core.outputs import ChatResult
from langchain_core.runnables import Runnable
from pydantic import Field

__all__ = ["RecordingFakeChatModel"]


class RecordingFakeChatModel(GenericFakeChatModel):
    """LangChain's ``GenericFakeChatModel`` that also accepts ``bind_tools`` (so agents can use it)
    and records the messages of every call in ``prompts``.

    Example:
        >>> from langchain_core.messages import AIMessage
        >>> model = RecordingFakeChatModel(messages=iter([AIMessage(content="hi")]))
        >>> model.invoke("hello").content, model.prompts[0][0].content
        ('hi', 'hello')
    """

    prompts: list[list[BaseMessage]] = Field(default_factory=list)

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> Runnable[Any, Any]:
        return self

    def _generate(
        self, messages: list[BaseMessage], stop: list[str] | None = None, run_manager: Any = None, **kwargs: Any
    ) -> ChatResult:
        self.prompts.append(list(messages))
        return super()._generate(messages, stop=stop, run_manager=run_manager, **kwargs)
