"""The LLM distiller: one structured call per episode decides ADD / UPDATE / SUPERSEDE / NOOP."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from pydantic import BaseModel, Field

from expscale_core.distill.base import Action, Decision
from expscale_core.distill.render import PROMPT_VERSION, render_distill_prompt
from expscale_core.episode import Episode
from expscale_core.errors import LLMOutputError
from expscale_core.experience import Experience, ExperienceKind
from expscale_core.llm import LLM

__all__ = ["DistillCandidate", "DistillOutput", "LLMDistiller"]

_MAX_CONTENT = 800


class DistillCandidate(BaseModel):
    action: Literal["ADD", "UPDATE", "SUPERSEDE", "NOOP"]
    target: int | None = Field(description="handle of an existing experience; null for ADD")
    kind: Literal["strategy", "fact", "procedure", "pitfall"]
    content: str = Field(max_length=_MAX_CONTENT)
    applicability: str = Field(max_length=300)


class DistillOutput(BaseModel):
    candidates: list[DistillCandidate] = Field(max_length=8)


def decisions_from_output(output: DistillOutput, similar: Sequence[Experience], raw: str) -> list[Decision]:
    """Map handles back to ids and check each candidate makes sense; the output is untrusted."""
    decisions: list[Decision] = []
    for c in output.candidates:
        target_id: str | None = None
        if c.target is not None:
            if not 1 <= c.target <= len(similar):
                raise LLMOutputError(
                    f"candidate targets handle [{c.target}] but only [1]..[{len(similar)}] exist", raw=raw
                )
            target_id = similar[c.target - 1].id
        if c.action in ("UPDATE", "SUPERSEDE") and target_id is None:
            raise LLMOutputError(f"{c.action} without a target handle", raw=raw)
        if c.action != "NOOP" and not c.content.strip():
            raise LLMOutputError(f"{c.action} with empty content", raw=raw)
        decisions.append(
            Decision(
                action=Action(c.action),
                target_id=target_id,
                kind=ExperienceKind(c.kind),
                content=c.content.strip() or None,
                applicability=c.applicability.strip(),
            )
        )
    return decisions


class LLMDistiller:
    """Distills with any :class:`~expscale_core.llm.LLM`, using the versioned prompts.

    Example:
        >>> from expscale_core.llm import OpenAILLM
        >>> from expscale_core.testing import ScriptedLLM
        >>> llm = OpenAILLM(ScriptedLLM(['{"candidates": []}']).client, model="m")
        >>> LLMDistiller(llm).distill(Episode(input="hi", output="hello"), [])
        []
    """

    def __init__(self, llm: LLM) -> None:
        self.llm = llm

    @property
    def name(self) -> str:
        return f"llm:{self.llm.model_id}"

    @property
    def prompt_version(self) -> str:
        return f"distill.{PROMPT_VERSION}"

    def distill(self, episode: Episode, similar: Sequence[tuple[Experience, float]]) -> list[Decision]:
        existing = [e for e, _ in similar]
        system, user = render_distill_prompt(episode, existing)
        output = self.llm.generate(system, user, DistillOutput)
        return decisions_from_output(output, existing, raw=output.model_dump_json())
