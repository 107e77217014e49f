"""Loading versioned prompts and rendering episodes and experiences into them (pure functions)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import cache
from importlib import resources
from string import Template
from typing import Any

from expscale_core.episode import Episode, ErrorStep, LLMStep, ObservationStep, RetrievalStep, ToolStep
from expscale_core.experience import Experience

__all__ = ["PROMPT_VERSION", "load_prompt", "render_distill_prompt", "render_episode", "render_handles"]

PROMPT_VERSION = "v1"
_FIELD_CHARS = 600  # long tool outputs and documents are cut: the distiller needs their gist, not all of them


@cache
def load_prompt(name: str, version: str = PROMPT_VERSION) -> str:
    """The text of ``prompts/<name>.<version>.txt``."""
    path = resources.files("expscale_core.distill.prompts").joinpath(f"{name}.{version}.txt")
    return path.read_text(encoding="utf-8").strip()


def _cut(value: Any, limit: int = _FIELD_CHARS) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def render_episode(episode: Episode) -> str:
    lines = [f"USER REQUEST: {_cut(episode.input)}"]
    for i, step in enumerate(episode.steps, 1):
        if isinstance(step, LLMStep):
            if step.reasoning:
                lines.append(f"{i}. reasoning: {_cut(step.reasoning)}")
            lines.append(f"{i}. model said: {_cut(step.response)}")
        elif isinstance(step, ToolStep):
            result = f"ERROR {_cut(step.error)}" if step.error else _cut(step.output)
            lines.append(f"{i}. tool {step.tool}({_cut(step.input, 200)}) -> {result}")
        elif isinstance(step, RetrievalStep):
            docs = " | ".join(_cut(d, 150) for d in step.documents[:3])
            lines.append(f"{i}. retrieved for '{_cut(step.query, 150)}': {docs}")
        elif isinstance(step, ErrorStep):
            lines.append(f"{i}. error {step.error_type}: {_cut(step.message)}")
        elif isinstance(step, ObservationStep):
            lines.append(f"{i}. observed: {_cut(step.text)}")
    lines.append(f"FINAL ANSWER: {_cut(episode.output) if episode.output is not None else '(none)'}")
    if episode.outcome is None:
        lines.append("OUTCOME: not judged")
    else:
        o = episode.outcome
        verdict = "success" if o.success else "failure"
        lines.append(f"OUTCOME: {verdict} (score {o.score:+.2f})")
        if o.comment:
            lines.append(f"FEEDBACK: {_cut(o.comment)}")
        if o.correction:
            lines.append(f"CORRECT ANSWER / FIX: {_cut(o.correction)}")
    return "\n".join(lines)


def render_handles(experiences: Sequence[Experience]) -> str:
    """Existing experiences under integer handles [1]..[n]; models invent UUIDs, never small integers."""
    if not experiences:
        return "(none)"
    return "\n".join(
        f"[{i}] ({e.kind.value}) {e.content} — when: {e.applicability or 'n/a'}" for i, e in enumerate(experiences, 1)
    )


def render_distill_prompt(episode: Episode, similar: Sequence[Experience]) -> tuple[str, str]:
    """The (system, user) messages for distilling ``episode``; the focus follows its outcome."""
    if episode.outcome is None:
        focus = load_prompt("focus_unknown")
    elif episode.outcome.success:
        focus = load_prompt("focus_success")
    else:
        focus = load_prompt("focus_failure")
    system = Template(load_prompt("distill")).substitute(outcome_focus=focus)
    user = f"EPISODE\n{render_episode(episode)}\n\nEXISTING EXPERIENCES\n{render_handles(similar)}"
    return system, user
