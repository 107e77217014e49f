"""The LLM port and its implementation over the ``openai`` client (any OpenAI-compatible server)."""

from __future__ import annotations

import copy
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeVar, runtime_checkable

from pydantic import BaseModel, ValidationError

from expscale_core.errors import LLMError, LLMOutputError

if TYPE_CHECKING:
    import openai

__all__ = ["LLM", "LLMUsage", "OpenAILLM", "strict_json_schema"]

log = logging.getLogger(__name__)
M = TypeVar("M", bound=BaseModel)
_NEXT_MODE: dict[str, Literal["json_object", "prompt"]] = {"json_schema": "json_object", "json_object": "prompt"}


@dataclass
class LLMUsage:
    """Running totals, for cost reporting."""

    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0


@runtime_checkable
class LLM(Protocol):
    """Asks a chat model for output of a pydantic shape.

    Contract: returns a validated instance of ``schema`` or raises :class:`LLMOutputError` (with the
    raw text) when the model keeps answering in another shape, or :class:`LLMError` when the
    server fails after retries. ``model_id`` names the model in provenance.
    """

    @property
    def model_id(self) -> str: ...

    @property
    def usage(self) -> LLMUsage: ...

    def generate(self, system: str, user: str, schema: type[M], *, context: dict[str, Any] | None = None) -> M:
        """``context`` is passed to pydantic validation, for checks that depend on the prompt."""
        ...


def strict_json_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The model's JSON schema in the form OpenAI's strict structured output accepts:
    every object closed and every property required, no defaults or titles."""
    schema = copy.deepcopy(model.model_json_schema())

    def fix(node: Any) -> None:
        if isinstance(node, dict):
            node.pop("default", None)
            node.pop("title", None)
            if node.get("type") == "object" and "properties" in node:
                node["additionalProperties"] = False
                node["required"] = list(node["properties"])
            for value in node.values():
                fix(value)
        elif isinstance(node, list):
            for value in node:
                fix(value)

    fix(schema)
    return schema


class OpenAILLM:
    """Structured chat completions through ``openai.OpenAI``.

    Transient failures (429, 5xx, timeouts) are retried with backoff by the client itself
    (``max_retries`` on the client). Output that does not validate is retried once with the
    validation error shown to the model; then :class:`LLMOutputError` carries the raw text.
    Servers that refuse JSON-schema output are detected once and asked for JSON mode (with the schema,
    which llama.cpp enforces), then for JSON by prompt alone.

    Example:
        >>> from expscale_core.testing import ScriptedLLM
        >>> scripted = ScriptedLLM(['{"answer": "4"}'])
        >>> class Answer(BaseModel):
        ...     answer: str
        >>> OpenAILLM(scripted.client, model="m").generate("sys", "2+2?", Answer).answer
        '4'
    """

    def __init__(
        self,
        client: openai.OpenAI,
        *,
        model: str,
        structured_output: bool = True,
        temperature: float = 0.0,
        max_tokens: int | None = 1024,
    ) -> None:
        self._client = client
        self._model = model
        self._mode: Literal["json_schema", "json_object", "prompt"] = "json_schema" if structured_output else "prompt"
        self._temperature = temperature
        self._max_tokens = max_tokens
        self._usage = LLMUsage()
        self._lock = threading.Lock()

    @property
    def model_id(self) -> str:
        return self._model

    @property
    def usage(self) -> LLMUsage:
        return self._usage

    def generate(self, system: str, user: str, schema: type[M], *, context: dict[str, Any] | None = None) -> M:
        messages: list[dict[str, str]] = [
            {"role": "system", "content": system},
            {"role": "user", "content": user},
        ]
        raw = self._complete(messages, schema)
        try:
            return schema.model_validate_json(_strip_fences(raw), context=context)
        except ValidationError as first:
            log.info("LLM output did not validate against %s; asking once more", schema.__name__)
            messages += [
                {"role": "assistant", "content": raw},
                {
                    "role": "user",
                    "content": "That output is not valid for the required schema. Errors:\n"
                    f"{_brief(first)}\nReply again with only the corrected JSON object.",
                },
            ]
            raw = self._complete(messages, schema)
            try:
                return schema.model_validate_json(_strip_fences(raw), context=context)
            except ValidationError as second:
                raise LLMOutputError(
                    f"{self._model} twice returned output that is not a valid {schema.__name__}: {_brief(second)}",
                    raw=raw,
                ) from second

    def _complete(self, messages: Sequence[dict[str, str]], schema: type[BaseModel]) -> str:
        import openai

        kwargs: dict[str, Any] = {"model": self._model, "messages": list(messages), "temperature": self._temperature}
        if self._max_tokens is not None:
            kwargs["max_tokens"] = self._max_tokens  # bounds cost, and small models looping under a grammar
        mode = self._mode
        if mode == "json_schema":
            kwargs["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": schema.__name__, "schema": strict_json_schema(schema), "strict": True},
            }
        else:
            kwargs["messages"] = _with_schema_hint(messages, schema)
            if mode == "json_object":
                # OpenAI's JSON mode; llama.cpp also reads "schema" here and constrains decoding to it.
                kwargs["response_format"] = {"type": "json_object", "schema": strict_json_schema(schema)}
        try:
            response = self._client.chat.completions.create(**kwargs)
        except openai.APIStatusError as exc:
            # Servers refuse unsupported output formats differently: OpenAI-compatible proxies with a 400,
            # llama-cpp-python's server with a 500 naming the field. Step down one mode and try again.
            # Only a refusal that names the output format steps down; any other 400 (a context-length error,
            # say) is about this request, and must not switch structured output off for the process.
            text = str(exc).lower()
            refused = exc.status_code in (400, 422, 500) and any(
                word in text for word in ("response_format", "json_schema", "json_object", "structured output")
            )
            if mode != "prompt" and refused:
                self._mode = _NEXT_MODE[mode]
                log.warning("%s refused %s output; trying %s", self._model, mode, self._mode)
                return self._complete(messages, schema)
            raise LLMError(f"{self._model} failed after the client's retries: {exc}") from exc
        except openai.APIConnectionError as exc:
            raise LLMError(
                f"{self._model} at {self._client.base_url} is unreachable after the client's retries ({exc}); check "
                "EXPSCALE_LLM__BASE_URL (and that the server runs), or EXPSCALE_LLM__TIMEOUT_S / __MAX_RETRIES"
            ) from exc
        except openai.OpenAIError as exc:
            raise LLMError(f"{self._model} failed after the client's retries: {exc}") from exc
        with self._lock:
            self._usage.calls += 1
            if response.usage is not None:
                self._usage.prompt_tokens += response.usage.prompt_tokens
                self._usage.completion_tokens += response.usage.completion_tokens
        if not response.choices:
            raise LLMOutputError(f"{self._model} returned no choices", raw="")
        return response.choices[0].message.content or ""


def _with_schema_hint(messages: Sequence[dict[str, str]], schema: type[BaseModel]) -> list[dict[str, str]]:
    import json

    schema_text = json.dumps(strict_json_schema(schema))
    hint = f"\n\nAnswer with one JSON object matching this JSON schema, and nothing else:\n{schema_text}"
    out = [dict(m) for m in messages]
    out[0]["content"] += hint
    return out


def _strip_fences(raw: str) -> str:
    text = raw.strip()
    if text.startswith("```"):
        text = text.split("\n", 1)[1] if "\n" in text else ""
        text = text.rsplit("```", 1)[0]
    return text.strip()


def _brief(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(map(str, e['loc'])) or '(root)'}: {e['msg']}" for e in exc.errors()[:5])
