"""Offline fakes for LlamaIndex code that uses expscale."""

from __future__ import annotations

from typing import Any

from llama_index.core.base.llms.types import CompletionResponse, CompletionResponseGen, LLMMetadata
from llama_index.core.llms import CustomLLM
from llama_index.core.llms.callbacks import llm_completion_callback
from pydantic import Field

__all__ = ["ScriptedLlamaLLM"]


class ScriptedLlamaLLM(CustomLLM):
    """A LlamaIndex LLM that answers from a script (the last answer repeats) and records every prompt.

    Example:
        >>> llm = ScriptedLlamaLLM(answers=["Lima"])
        >>> llm.complete("capital of Peru?").text, llm.prompts
        ('Lima', ['capital of Peru?'])
    """

    answers: list[str] = Field(default_factory=lambda: ["ok"])
    prompts: list[str] = Field(default_factory=list)

    @property
    def metadata(self) -> LLMMetadata:
        return LLMMetadata(model_name="scripted")

    def _answer(self, prompt: str) -> str:
        self.prompts.append(prompt)
        return self.answers[min(len(self.prompts), len(self.answers)) - 1]

    @llm_completion_callback()
    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        return CompletionResponse(text=self._answer(prompt))

    @llm_completion_callback()
    def stream_complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponseGen:
        text = self._answer(prompt)

        def gen() -> CompletionResponseGen:
            yield CompletionResponse(text=text, delta=text)

        return gen()
