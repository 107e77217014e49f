"""A lesson a small model can write: an instance-free rule, the requests it applies to, and a verified example.

The model writes only the rule and the request phrasings (:class:`RuleLesson`); the worked example is the episode's
own request with its verified or corrected answer, copied, never reworded. The rule is checked against the
episode (:mod:`~expscale_core.distill.guards`) during validation, so a failed check gets the LLM client's one
corrective retry with the reason, and then falls back to the verbatim lesson alone.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pydantic import BaseModel, Field, ValidationInfo, field_validator

from expscale_core.distill.guards import agrees, lesson_problems
from expscale_core.distill.render import load_prompt
from expscale_core.distill.rules import shorten
from expscale_core.episode import Episode
from expscale_core.errors import LLMOutputError
from expscale_core.experience import Experience, ExperienceKind
from expscale_core.llm import LLM

__all__ = [
    "RULE_PROMPT_VERSION",
    "RuleLesson",
    "Taught",
    "compose_rule",
    "parse_rule",
    "replays",
    "rule_problems",
    "rule_prompt",
    "stored_rule",
    "taught",
]

RULE_PROMPT_VERSION = "v3"
_MAX_EXAMPLES = 3
_EXAMPLES = re.compile(r"\s+Examples?: ")
_FIELD = 300
_REPLAY_SYSTEM = "Answer with a short answer only (a name, date, number, code or phrase).\nThe team's rule: "


@dataclass(frozen=True)
class Taught:
    """What an episode verifiably teaches: the request and the right answer (a correction, or a confirmed output),
    and the wrong answer when there was one. ``others``: verified examples of the same kind already stored, from
    which, with this one, a rule can be induced that no single instance states ("grow and refine")."""

    request: str
    answer: str
    wrong: str | None
    others: tuple[tuple[str, str], ...] = ()


def taught(episode: Episode) -> Taught | None:
    o = episode.outcome
    if o is None:
        return None
    if o.correction:
        return Taught(episode.input, o.correction, episode.output if not o.success else None)
    if o.success and episode.output:
        return Taught(episode.input, episode.output, None)
    return None


class RuleLesson(BaseModel):
    """What the model writes. Validated against the episode (``context=`` the :class:`Taught`)."""

    rule: str = Field(min_length=8, max_length=_FIELD)
    applies_to: list[str] = Field(default_factory=list, max_length=3)

    @field_validator("applies_to")
    @classmethod
    def _phrasings(cls, value: list[str]) -> list[str]:
        return [" ".join(p.split())[:160] for p in value if p.strip()]

    @field_validator("rule")
    @classmethod
    def _guarded(cls, value: str, info: ValidationInfo) -> str:
        rule = " ".join(value.split())
        t = info.context.get("taught") if isinstance(info.context, dict) else None
        if isinstance(t, Taught):
            problems = rule_problems(rule, t)
            if problems:
                raise ValueError("; ".join(problems))
        return rule


def rule_problems(rule: str, t: Taught) -> list[str]:
    """What the guards find wrong with ``rule`` as the lesson of ``t`` (its stored examples count as its own)."""
    return lesson_problems(
        rule,
        request=" ".join([t.request, *(q for q, _ in t.others)]),
        correction=" ".join([t.answer, *(a for _, a in t.others)]),
        wrong_answer=t.wrong,
    )


def rule_prompt(t: Taught) -> tuple[str, str]:
    """The (system, user) messages asking for the rule behind ``t``."""
    lines = [f"Confirmed example of the same kind: “{shorten(q, 160)}” → {shorten(a, 160)}" for q, a in t.others]
    lines.append(f"Request: {shorten(t.request)}")
    if t.wrong is not None:
        lines += [f"Assistant's answer (WRONG): {shorten(t.wrong)}", f"User's correction (RIGHT): {shorten(t.answer)}"]
    else:
        lines.append(f"Answer the user confirmed (RIGHT): {shorten(t.answer)}")
    return load_prompt("rule", RULE_PROMPT_VERSION), "\n".join(lines)


def compose_rule(rule: str, examples: list[tuple[str, str]]) -> str:
    """The stored lesson: the rule, then its worked examples (newest last, at most three)."""
    shown = examples[-_MAX_EXAMPLES:]
    label = "Example" if len(shown) == 1 else "Examples"
    body = "; ".join(f"“{shorten(q, 160)}” → {shorten(a, 160)}" for q, a in shown)
    return f"{rule.rstrip()} {label}: {body}"


def stored_rule(exp: Experience) -> tuple[str, list[tuple[str, str]]] | None:
    """(rule, examples) of a stored rule lesson; None for any other experience."""
    return parse_rule(exp.content) if exp.kind is ExperienceKind.STRATEGY else None


def parse_rule(content: str) -> tuple[str, list[tuple[str, str]]] | None:
    """(rule, examples) of a lesson :func:`compose_rule` wrote; None for any other text."""
    parts = _EXAMPLES.split(content, maxsplit=1)
    if len(parts) != 2:
        return None
    examples = []
    for item in parts[1].split("; “"):
        q, sep, a = item.strip().lstrip("“").partition("” → ")
        if sep:
            examples.append((q, a))
    return (parts[0], examples) if examples else None


class _Replayed(BaseModel):
    answer: str = Field(max_length=400)


def replays(llm: LLM, rule: str, request: str, answer: str) -> bool:
    """Admission by replay: given ``rule`` alone, does the model now answer ``request`` as ``answer`` says?
    An inverted or misleading rule fails here, before anyone is served it."""
    try:
        replayed = llm.generate(_REPLAY_SYSTEM + rule, request, _Replayed)
    except LLMOutputError:
        return False
    return agrees(replayed.answer, answer)
