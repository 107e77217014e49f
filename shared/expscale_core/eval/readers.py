"""Readers answer a question with the memory block injected. Their numbers are never mixed in a report."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal, Protocol

from expscale_core.errors import LLMError
from expscale_core.scoring import normalize_answer

if TYPE_CHECKING:
    import openai

__all__ = ["LLMReader", "OracleReader", "Reader", "ReaderMode", "is_correct"]

UNKNOWN = "I don't know."


def is_correct(prediction: str, gold: Sequence[str]) -> bool:
    """Normalized containment either way (SQuAD-style normalization): lenient on phrasing, strict on content."""
    pred = normalize_answer(prediction)
    if not pred:
        return False
    for answer in gold:
        g = normalize_answer(answer)
        if g and (g in pred or (len(pred) >= 3 and pred in g)):
            return True
    return False


class Reader(Protocol):
    """Answers ``question`` using ``memory`` (a rendered experience block, possibly empty)."""

    name: str

    def answer(self, question: str, memory: str, gold: Sequence[str]) -> str: ...


class OracleReader:
    """Correct if and only if a normalized gold answer appears in the injected memory: it measures the memory
    mechanism alone (was the right knowledge retrieved and did it fit the budget), not a model's reading."""

    name = "oracle"

    def answer(self, question: str, memory: str, gold: Sequence[str]) -> str:
        text = normalize_answer(memory)
        for answer in gold:
            g = normalize_answer(answer)
            if g and f" {g} " in f" {text} ":
                return answer
        return UNKNOWN


_FEW_SHOT = (
    "Answer each question with a short answer (a name, date, number or phrase). Use the notes when they help.\n\n"
    "Notes: (none)\nQuestion: what is the capital of france?\nAnswer: Paris\n\n"
    "Notes: 1. [fact] (when: who wrote hamlet?) The correct answer is: William Shakespeare.\n"
    "Question: who is the author of hamlet?\nAnswer: William Shakespeare\n\n"
)


_SHORT = "Answer with a short answer only (a name, date, number or phrase). Use the notes when they help.\n\nNotes:\n"
_TERSE = (
    "You are the assistant of an engineering team. When a team note below applies, follow it exactly. "
    "Reply with the answer alone, no explanation.\n\nTeam notes:\n"
)
_MATH = (
    "Solve the math word problem. Work it out in a few short steps, then end with a last line "
    "'Answer: <number>'. Use the notes when they help.\n\nNotes:\n"
)


_SYSTEM = {"chat": _SHORT, "math": _MATH, "terse": _TERSE}
ReaderMode = Literal["chat", "completion", "math", "terse"]


class LLMReader:
    """A real model behind any OpenAI-compatible endpoint.

    ``mode="chat"`` sends a system/user chat; ``mode="completion"`` sends a few-shot completion prompt, for base
    models that are not instruction-tuned (such as gemma-3-270m served by llama.cpp); ``mode="math"`` asks an
    instruction model to work the problem briefly and end with "Answer: <number>" (the ``methods`` scenario);
    ``mode="terse"`` is chat with another system prompt (a second frontend on the same model, ``sharing``).
    """

    def __init__(
        self,
        client: openai.OpenAI,
        *,
        model: str,
        mode: ReaderMode = "chat",
        max_tokens: int | None = None,
    ) -> None:
        self.client = client
        self.model = model
        self.mode = mode
        # Math needs room to work the problem; a short answer does not.
        self.max_tokens = max_tokens if max_tokens is not None else (384 if mode == "math" else 24)
        self.name = f"llm:{model}:{mode}"
        self.calls = 0
        self.prompt_tokens = 0
        self.completion_tokens = 0

    def answer(self, question: str, memory: str, gold: Sequence[str]) -> str:
        import openai

        notes = memory.strip() or "(none)"
        try:
            if self.mode == "completion":
                prompt = f"{_FEW_SHOT}Notes: {notes}\nQuestion: {question}\nAnswer:"
                completion = self.client.completions.create(
                    model=self.model, prompt=prompt, max_tokens=self.max_tokens, temperature=0, stop=["\n"]
                )
                text = completion.choices[0].text if completion.choices else ""
                usage = completion.usage
            else:
                chat = self.client.chat.completions.create(
                    model=self.model,
                    temperature=0,
                    max_tokens=self.max_tokens,
                    messages=[
                        {"role": "system", "content": _SYSTEM[self.mode] + notes},
                        {"role": "user", "content": question},
                    ],
                )
                text = (chat.choices[0].message.content or "") if chat.choices else ""
                usage = chat.usage
        except openai.OpenAIError as exc:
            raise LLMError(f"reader model {self.model} failed: {exc}") from exc
        self.calls += 1
        if usage is not None:
            self.prompt_tokens += usage.prompt_tokens
            self.completion_tokens += usage.completion_tokens
        return text.strip()
