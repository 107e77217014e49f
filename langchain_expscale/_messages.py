"""Translating LangChain messages, inputs and outputs into expscale's types."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from expscale_core import LLMStep, Message, ToolStep
from expscale_core.episode import Step
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, LLMResult
from langchain_core.prompt_values import PromptValue

__all__ = ["episode_steps", "message", "output_text", "reasoning_of", "result_text", "text_of", "to_text"]

_ROLES = {"human": "user", "ai": "assistant", "system": "system", "tool": "tool"}


def text_of(content: Any) -> str:
    """The text of a message's content, which is a string or a list of content blocks."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for block in content:
            if isinstance(block, str):
                parts.append(block)
            elif isinstance(block, Mapping) and block.get("type") == "text":
                parts.append(str(block.get("text", "")))
        return "".join(parts)
    return str(content)


def reasoning_of(msg: BaseMessage) -> str | None:
    """Reasoning the provider exposed: v1 ``reasoning`` content blocks, or ``reasoning_content``."""
    parts: list[str] = []
    if isinstance(msg.content, list):
        for block in msg.content:
            if isinstance(block, Mapping) and block.get("type") in ("reasoning", "thinking"):
                parts.append(str(block.get("reasoning") or block.get("thinking") or block.get("text") or ""))
    extra = msg.additional_kwargs.get("reasoning_content")
    if isinstance(extra, str):
        parts.append(extra)
    return "\n".join(p for p in parts if p) or None


def message(msg: BaseMessage) -> Message:
    return Message(role=_ROLES.get(msg.type, msg.type), content=text_of(msg.content))


def to_text(value: Any) -> str:
    """A readable string for any chain input or output."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):  # a chain's usual input, before the slower abstract-class checks
        return _mapping_text(value)
    if isinstance(value, BaseMessage):
        return text_of(value.content)
    if isinstance(value, PromptValue):
        return value.to_string()
    if isinstance(value, Mapping):
        return _mapping_text(value)
    if isinstance(value, Sequence) and value and all(isinstance(v, BaseMessage) for v in value):
        humans = [v for v in value if isinstance(v, HumanMessage)]
        return text_of((humans or list(value))[-1].content)
    return _dumped(value)


def _mapping_text(value: Mapping[Any, Any]) -> str:
    if len(value) == 1:
        return to_text(next(iter(value.values())))
    for key in ("input", "question", "query", "output", "answer", "text", "messages"):
        if key in value:
            return to_text(value[key])
    return _dumped(value)


def _dumped(value: Any) -> str:
    try:
        return json.dumps(value, default=str, ensure_ascii=False)
    except (TypeError, ValueError):
        return str(value)


def output_text(value: Any) -> str:
    """A readable string for a run's output: for messages (an agent's or a graph's state), the last answer."""
    if isinstance(value, str):
        return value
    messages = value.get("messages") if isinstance(value, Mapping) else value
    if isinstance(messages, Sequence) and messages and all(isinstance(v, BaseMessage) for v in messages):
        answers = [v for v in messages if isinstance(v, AIMessage)]
        return text_of((answers or list(messages))[-1].content)
    return to_text(value)


def result_text(response: LLMResult) -> tuple[str, str | None, list[dict[str, Any]]]:
    """(text, reasoning, tool calls) of the first generation of a model call."""
    if not response.generations or not response.generations[0]:
        return "", None, []
    gen = response.generations[0][0]
    if isinstance(gen, ChatGeneration):
        msg = gen.message
        calls = [dict(c) for c in msg.tool_calls] if isinstance(msg, AIMessage) else []
        return text_of(msg.content), reasoning_of(msg), calls
    return gen.text, None, []


def episode_steps(messages: Sequence[BaseMessage]) -> list[Step]:
    """Steps of an agent run from its messages: model turns (with tool calls and reasoning) and tool results."""
    steps: list[Step] = []
    calls: dict[str, dict[str, Any]] = {}
    for msg in messages:
        if isinstance(msg, AIMessage):
            for call in msg.tool_calls:
                calls[str(call.get("id"))] = dict(call)
            steps.append(
                LLMStep(
                    model=msg.response_metadata.get("model_name"),
                    response=text_of(msg.content),
                    reasoning=reasoning_of(msg),
                    metadata={"tool_calls": [dict(c) for c in msg.tool_calls]} if msg.tool_calls else {},
                )
            )
        elif isinstance(msg, ToolMessage):
            made: dict[str, Any] = calls.get(msg.tool_call_id, {})
            failed = msg.status == "error"
            steps.append(
                ToolStep(
                    tool=msg.name or str(made.get("name", "tool")),
                    input=made.get("args"),
                    output=None if failed else text_of(msg.content),
                    error=text_of(msg.content) if failed else None,
                )
            )
    return steps
