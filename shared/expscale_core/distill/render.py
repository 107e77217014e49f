"""Loading versioned prompts and rendering episodes and experiences into them (pure functions)."""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from functools import cache
from importlib import resources
from string import Template
from typing import Any

from expscale_core.episode import Episode, ErrorStep, LLMStep, ObservationStep, RetrievalStep, ToolStep
from expscale_core.experience import Experience
from expscale_core.scoring import count_tokens

__all__ = [
    "DISTILL_PROMPT_VERSION",
    "PROMPT_VERSION",
    "load_prompt",
    "render_distill_prompt",
    "render_episode",
    "render_handles",
]

PROMPT_VERSION = "v1"
"""Version of the refinement prompts (merge, contradiction)."""
DISTILL_PROMPT_VERSION = "v2"
"""Version of the distillation prompt; recorded in each distilled experience's provenance."""
_FIELD_CHARS = 600  # long tool outputs and documents are cut: the distiller needs their gist, not all of them
_MIN_EPISODE_TOKENS = 120


@cache
def load_prompt(name: str, version: str = PROMPT_VERSION) -> str:
    """The text of ``prompts/<name>.<version>.txt``."""
    path = resources.files("expscale_core.distill.prompts").joinpath(f"{name}.{version}.txt")
    return path.read_text(encoding="utf-8").strip()


def _cut(value: Any, limit: int = _FIELD_CHARS) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _cut_middle(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    half = max(limit // 2 - 2, 1)
    return f"{text[:half]} … {text[-half:]}"


def _step_line(i: int, step: Any) -> tuple[str, bool]:
    """The rendered step and whether it must survive shortening (errors always do)."""
    if isinstance(step, LLMStep):
        reasoning = f"reasoning: {_cut(step.reasoning)}; " if step.reasoning else ""
        return f"{i}. {reasoning}model said: {_cut(step.response)}", False
    if isinstance(step, ToolStep):
        if step.error:
            return f"{i}. tool {step.tool}({_cut(step.input, 200)}) -> ERROR {_cut(step.error)}", True
        return f"{i}. tool {step.tool}({_cut(step.input, 200)}) -> {_cut(step.output)}", False
    if isinstance(step, RetrievalStep):
        docs = " | ".join(_cut(d, 150) for d in step.documents[:3])
        return f"{i}. retrieved for '{_cut(step.query, 150)}': {docs}", False
    if isinstance(step, ErrorStep):
        return f"{i}. error {step.error_type}: {_cut(step.message)}", True
    if isinstance(step, ObservationStep):
        return f"{i}. observed: {_cut(step.text)}", False
    return f"{i}. {type(step).__name__}", False


def _outcome_lines(episode: Episode) -> list[str]:
    o = episode.outcome
    if o is None:
        return ["OUTCOME: not judged"]
    lines = [f"OUTCOME: {'success' if o.success else 'failure'} (score {o.score:+.2f})"]
    if o.comment:
        lines.append(f"FEEDBACK: {_cut(o.comment)}")
    if o.correction:
        lines.append(f"CORRECT ANSWER / FIX (this is right): {_cut(o.correction)}")
    return lines


def render_episode(episode: Episode, budget_tokens: int | None = None) -> str:
    """The episode as numbered lines. Over ``budget_tokens``, steps are dropped from the middle outward
    (errors stay), then the request and answer are shortened in their middle; the request, errors, the final
    answer and the outcome are always present."""
    request = _cut(episode.input)
    answer = _cut(episode.output) if episode.output is not None else "(none)"
    steps = [_step_line(i, s) for i, s in enumerate(episode.steps, 1)]
    outcome = _outcome_lines(episode)

    # Small models copy whatever answer they see; a failed episode's answer is labelled as wrong.
    failed = episode.outcome is not None and not episode.outcome.success
    answer_label = "WRONG ANSWER (do not repeat it)" if failed else "FINAL ANSWER"

    def compose(kept: list[tuple[str, bool]], omitted: int, req: str, ans: str) -> str:
        body = [line for line, _ in kept]
        if omitted:
            middle = len(body) // 2
            body.insert(middle, f"… {omitted} step(s) omitted …")
        return "\n".join([f"USER REQUEST: {req}", *body, f"{answer_label}: {ans}", *outcome])

    text = compose(steps, 0, request, answer)
    if budget_tokens is None or count_tokens(text) <= budget_tokens:
        return text
    kept = list(steps)
    omitted = 0
    while count_tokens(compose(kept, omitted, request, answer)) > budget_tokens:
        droppable = [j for j, (_, must) in enumerate(kept) if not must]
        if not droppable:
            break
        kept.pop(droppable[len(droppable) // 2])
        omitted += 1
    limit = _FIELD_CHARS
    while count_tokens(text := compose(kept, omitted, request, answer)) > budget_tokens and limit > 80:
        limit //= 2
        request, answer = _cut_middle(request, limit), _cut_middle(answer, limit)
        kept = [(_cut_middle(line, limit), must) for line, must in kept]
    return text


def render_handles(experiences: Sequence[Experience], served: Collection[str] = ()) -> str:
    """Existing experiences under integer handles [1]..[n]; models invent UUIDs, never small integers."""
    if not experiences:
        return "(none)"
    return "\n".join(
        f"[{i}]{' (served)' if e.id in served else ''} ({e.kind.value}) {e.content} — when: {e.applicability or 'n/a'}"
        for i, e in enumerate(experiences, 1)
    )


def _output_format(handles: int) -> str:
    if handles:
        item = '{"kind": ..., "content": ..., "applicability": ..., "action": ..., "target": ...}'
    else:
        item = '{"kind": ..., "content": ..., "applicability": ...}'
    return f'Return JSON: {{"candidates": [{item}]}}'


def render_distill_prompt(
    episode: Episode,
    similar: Sequence[Experience],
    *,
    served: Collection[str] = (),
    budget_tokens: int | None = None,
) -> tuple[str, str]:
    """The (system, user) messages for distilling ``episode``; the focus follows its outcome.

    ``budget_tokens`` bounds the whole prompt: what the instructions and the listed experiences leave is the
    episode's share (never less than a small floor, so the request and outcome always fit).
    """
    if episode.outcome is None:
        focus = load_prompt("focus_unknown", DISTILL_PROMPT_VERSION)
    elif episode.outcome.success:
        focus = load_prompt("focus_success", DISTILL_PROMPT_VERSION)
    else:
        focus = load_prompt("focus_failure", DISTILL_PROMPT_VERSION)
    system = Template(load_prompt("distill", DISTILL_PROMPT_VERSION)).substitute(
        handle_rules=load_prompt("handles", DISTILL_PROMPT_VERSION) if similar else "",
        outcome_focus=focus,
        output_format=_output_format(len(similar)),
    )
    handles = render_handles(similar, served)
    share = None
    if budget_tokens is not None:
        share = max(budget_tokens - count_tokens(system) - count_tokens(handles) - 10, _MIN_EPISODE_TOKENS)
    user = f"EPISODE\n{render_episode(episode, share)}"
    if similar:
        user += f"\n\nEXISTING EXPERIENCES\n{handles}"
    return system, user
