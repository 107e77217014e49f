"""Translating LlamaIndex messages and results into expscale's types."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from expscale_core import Message
from llama_index.core.base.llms.types import ChatMessage

__all__ = ["message", "result_text", "span_input", "tool_output"]

_INPUT_ARGS = ("message", "str_or_query_bundle", "query_str", "query", "user_msg", "input")


def message(msg: ChatMessage) -> Message:
    return Message(role=str(getattr(msg.role, "value", msg.role)), content=msg.content or "")


def messages(msgs: Sequence[ChatMessage]) -> list[Message]:
    return [message(m) for m in msgs]


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, ChatMessage):
        return value.content or ""
    query_str = getattr(value, "query_str", None)  # QueryBundle
    if isinstance(query_str, str):
        return query_str
    return None


def span_input(arguments: dict[str, Any]) -> str:
    """The user's request from a query or chat call's bound arguments."""
    for name in _INPUT_ARGS:
        text = _text(arguments.get(name))
        if text is not None:
            return text
    return ""


def result_text(result: Any) -> str | None:
    """The answer of a query, chat or agent run; None for streaming results (their answer comes when they are
    consumed, see ``_streams``)."""
    inner = getattr(result, "result", None)  # a workflow's StopEvent carries the agent's output
    if inner is not None and inner is not result:
        return result_text(inner) or str(inner)
    response = getattr(result, "response", None)
    if isinstance(response, str):
        return response
    if isinstance(response, ChatMessage):  # AgentOutput
        return response.content or ""
    if isinstance(result, str):
        return result
    return None


def tool_output(result: Any) -> Any:
    """What a tool returned, as the model saw it."""
    content = getattr(result, "content", None)
    return content if content is not None else result
