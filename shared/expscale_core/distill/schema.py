"""The distiller's output schema, built per call, and the repairs that keep good lessons.

A small model gets the bookkeeping wrong far more often than the lesson: it answers UPDATE with no target,
or points at handle [1] when nothing is listed. So the schema sent to the server only admits what is possible
for this call (with no handles listed, a candidate has no ``action`` or ``target`` at all: it can only be new),
and whatever still slips through (prompt-only mode, servers that ignore the schema) is repaired during
validation instead of failing the episode. Only output with no usable lesson is an error, and that error gets
the corrective retry.
"""

from __future__ import annotations

import json
import re
from functools import cache
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, Field, ValidationError, ValidationInfo, create_model, model_validator
from pydantic.json_schema import SkipJsonSchema

__all__ = [
    "MAX_APPLICABILITY",
    "MAX_CANDIDATES",
    "MAX_CONTENT",
    "DistillCandidate",
    "DistillOutput",
    "distill_output_model",
]

MAX_CONTENT = 800
MAX_APPLICABILITY = 300
MAX_CANDIDATES = 8
_KINDS = ("strategy", "fact", "procedure", "pitfall")
_TARGETED = ("UPDATE", "SUPERSEDE", "NOOP")
# What small models write instead of our four kinds; anything else unknown becomes a strategy (and is noted).
_KIND_ALIASES = {
    "tip": "strategy",
    "approach": "strategy",
    "lesson": "strategy",
    "insight": "strategy",
    "rule": "strategy",
    "best practice": "strategy",
    "knowledge": "fact",
    "information": "fact",
    "steps": "procedure",
    "process": "procedure",
    "how-to": "procedure",
    "mistake": "pitfall",
    "error": "pitfall",
    "warning": "pitfall",
    "anti-pattern": "pitfall",
}
_HANDLE_RE = re.compile(r"^\s*\[?\s*(\d+)\s*\]?\s*$")


def _clip(text: str, limit: int) -> str:
    """Cut at the last sentence end that fits, else at a word boundary."""
    if len(text) <= limit:
        return text
    head = text[:limit]
    end = max(head.rfind(". "), head.rfind("! "), head.rfind("? "))
    if end > limit // 2:
        return head[: end + 1]
    return head.rsplit(" ", 1)[0].rstrip(",;:") + "…"


def _words(text: str) -> str:
    return " ".join(re.findall(r"\w+", text.lower()))


def _handle(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and (m := _HANDLE_RE.match(value)):
        return int(m.group(1))
    return None


class DistillCandidate(BaseModel):
    """One lesson the model proposes. Subclasses built by :func:`distill_output_model` add the
    ``action`` and ``target`` fields when there are handles to target."""

    handles: ClassVar[int] = 0

    kind: Literal["strategy", "fact", "procedure", "pitfall"]
    # Lengths are enforced by clipping in the repair step, not in the schema: a length bound becomes a
    # large grammar in llama.cpp, and a lesson that runs long is still a lesson.
    content: str
    applicability: str
    # Not part of the schema the model sees: filled in by the repair step, recorded in provenance.
    repaired: SkipJsonSchema[list[str]] = Field(default_factory=list)

    @property
    def chosen_action(self) -> str:
        return str(getattr(self, "action", "ADD"))

    @property
    def chosen_target(self) -> int | None:
        target = getattr(self, "target", None)
        return int(target) if target is not None else None

    @model_validator(mode="before")
    @classmethod
    def _repair(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        notes: list[str] = []
        for key in ("content", "applicability"):
            value = data.get(key)
            if value is None:
                data[key] = ""
            elif not isinstance(value, str):
                data[key] = json.dumps(value, ensure_ascii=False, default=str)
        kind = str(data.get("kind") or "").strip().lower()
        if kind not in _KINDS:
            fixed = _KIND_ALIASES.get(kind, "strategy")
            notes.append(f"kind {kind or '(missing)'!r} -> {fixed}")
            data["kind"] = fixed
        if len(data["content"]) > MAX_CONTENT:
            data["content"] = _clip(data["content"], MAX_CONTENT)
            notes.append("content shortened")
        if len(data["applicability"]) > MAX_APPLICABILITY:
            data["applicability"] = _clip(data["applicability"], MAX_APPLICABILITY)
            notes.append("applicability shortened")
        action = str(data.get("action") or "ADD").strip().upper()
        target = _handle(data.get("target"))
        if action not in ("ADD", *_TARGETED):
            notes.append(f"action {action!r} -> ADD")
            action, target = "ADD", None
        if action in _TARGETED and (target is None or not 1 <= target <= cls.handles):
            # The lesson is fine, only its bookkeeping is not: keep it as a new experience.
            shown = "none" if target is None and data.get("target") is None else repr(data.get("target"))
            notes.append(f"{action} with target {shown} not among {cls.handles} handles -> ADD")
            action, target = "ADD", None
        if action == "ADD":
            target = None
        if cls.handles:
            data["action"], data["target"] = action, target
        else:
            data.pop("action", None)
            data.pop("target", None)
        data["repaired"] = notes
        return data


class DistillOutput(BaseModel):
    """The model's answer: up to :data:`MAX_CANDIDATES` candidates. A malformed candidate is dropped when
    others are usable; if none is, validation fails so the corrective retry can show the model why."""

    candidate_model: ClassVar[type[DistillCandidate]] = DistillCandidate

    candidates: list[DistillCandidate]

    @model_validator(mode="before")
    @classmethod
    def _keep_usable(cls, data: Any, info: ValidationInfo) -> Any:
        if isinstance(data, list):  # a bare list of candidates is a common small-model shape
            data = {"candidates": data}
        if not isinstance(data, dict) or not isinstance(data.get("candidates"), list):
            return data
        request = _words((info.context or {}).get("request") or "")
        kept: list[DistillCandidate] = []
        problem: str | None = None
        for raw in data["candidates"]:
            try:
                cand = cls.candidate_model.model_validate(raw)
            except ValidationError as exc:
                problem = problem or exc.errors()[0]["msg"]
                continue
            content = _words(cand.content)
            if request and content and content in request:
                # Copying the question is the small-model failure that looks like a lesson and is none.
                problem = problem or "content only repeats the user request; write what to do next time instead"
                continue
            if content or (cand.chosen_action == "NOOP" and cand.chosen_target is not None):
                kept.append(cand)
        if problem is not None and not kept:
            raise ValueError(f"no usable candidate: {problem}")
        return {"candidates": kept[:MAX_CANDIDATES]}


@cache
def distill_output_model(handles: int) -> type[DistillOutput]:
    """The output model for a prompt that lists ``handles`` existing experiences.

    With no handles, a candidate is only ``kind``/``content``/``applicability``: ADD is the one possible
    action, so the model is not asked to choose. With handles, ``target`` is an enum of exactly the
    listed handles, which llama.cpp turns into a grammar.
    """
    if handles < 0:
        raise ValueError(f"handles must be >= 0, got {handles}")
    if handles == 0:
        candidate: type[DistillCandidate] = create_model("NewLesson", __base__=DistillCandidate)
    else:
        target_type: Any = Literal[tuple(range(1, handles + 1))]
        action_type: Any = Literal["ADD", "UPDATE", "SUPERSEDE", "NOOP"]
        candidate = create_model(
            f"LessonWith{handles}Handles",
            __base__=DistillCandidate,
            action=(action_type, ...),
            target=(target_type | None, Field(description="a listed handle for UPDATE/SUPERSEDE/NOOP; null for ADD")),
        )
    candidate.handles = handles
    output = create_model(
        "DistillOutput",
        __base__=DistillOutput,
        candidates=(list[candidate], ...),  # type: ignore[valid-type]
    )
    output.candidate_model = candidate
    return output
