"""The LLM distiller: one structured call per episode decides ADD / UPDATE / SUPERSEDE / NOOP."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from pydantic import BaseModel, Field, ValidationInfo, model_validator

from expscale_core.distill.base import Action, Decision
from expscale_core.distill.render import PROMPT_VERSION, render_distill_prompt
from expscale_core.episode import Episode
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

    @model_validator(mode="after")
    def _consistent(self, info: ValidationInfo) -> DistillCandidate:
        # Checked during validation, so a violation gets the same one retry (with the error shown) as bad JSON.
        handles = int((info.context or {}).get("handles", 0))
        if self.target is not None and not 1 <= self.target <= handles:
            available = f"[1]..[{handles}]" if handles else "no handles (there are no existing experiences)"
            raise ValueError(f"target [{self.target}] is not a listed handle; available: {available}")
        if self.action in ("UPDATE", "SUPERSEDE") and self.target is None:
            raise ValueError(f"{self.action} needs the target handle of the experience it changes")
        if self.action != "NOOP" and not self.content.strip():
            raise ValueError(f"{self.action} needs non-empty content")
        return self


class DistillOutput(BaseModel):
    candidates: list[DistillCandidate] = Field(max_length=8)


def decisions_from_output(output: DistillOutput, similar: Sequence[Experience]) -> list[Decision]:
    """Map handles back to ids; the output was validated against ``len(similar)`` handles."""
    return [
        Decision(
            action=Action(c.action),
            target_id=similar[c.target - 1].id if c.target is not None else None,
            kind=ExperienceKind(c.kind),
            content=c.content.strip() or None,
            applicability=c.applicability.strip(),
        )
        for c in output.candidates
    ]


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
        output = self.llm.generate(system, user, DistillOutput, context={"handles": len(existing)})
        return decisions_from_output(output, existing)
