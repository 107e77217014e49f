"""The no-LLM distiller: lessons that a verified outcome makes certain, with no model call."""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Sequence

from expscale_core.distill.base import Action, Decision
from expscale_core.episode import Episode, ErrorStep, ToolStep
from expscale_core.experience import Experience, ExperienceKind
from expscale_core.scoring import normalize_answer

__all__ = ["RulesDistiller", "shorten", "verified_example"]


def shorten(value: object, limit: int = 300) -> str:
    """``value`` as one line of text (JSON for non-strings), cut at ``limit`` with an ellipsis."""
    text = value if isinstance(value, str) else json.dumps(value, default=str, ensure_ascii=False)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _sentence(value: object) -> str:
    """Shortened, without trailing punctuation, so the template adds exactly one period."""
    return shorten(value).rstrip(" .")


def answer_lesson(episode: Episode) -> tuple[ExperienceKind, str] | None:
    """question→answer from feedback: the verified answer, or the correction of a wrong one.

    The question itself becomes the experience's applicability, so the content is only the answer: a query
    then meets the question it resembles, not a sentence that repeats it (all-MiniLM-L6-v2 scores a paraphrase
    0.76 against "question + short answer" and 0.41 against "question + sentence quoting the question").
    """
    outcome = episode.outcome
    if outcome is None:
        return None
    if outcome.correction:
        # The wrong answer is not kept beside it: small readers copied it, and it teaches nothing the correction
        # does not (a wrong answer without a correction still becomes a pitfall, below).
        return ExperienceKind.FACT, f"The correct answer is: {_sentence(outcome.correction)}."
    if outcome.success and episode.output:
        return ExperienceKind.FACT, f"The verified answer is: {_sentence(episode.output)}."
    if not outcome.success and episode.output:
        why = f" Feedback: {shorten(outcome.comment)}" if outcome.comment else ""
        return ExperienceKind.PITFALL, f"The answer “{shorten(episode.output)}” was wrong.{why}"
    return None


_VERIFIED = re.compile(r"^The (?:correct|verified) answer is: (?P<answer>.*?)(?: \(not “.*”\))?\.$", re.S)


def verified_example(exp: Experience) -> tuple[str, str] | None:
    """(request, answer) of a lesson :func:`answer_lesson` wrote (its applicability is the request); else None.
    Lessons stored before corrections stopped quoting the wrong answer read the same."""
    found = _VERIFIED.match(exp.content) if exp.applicability else None
    return (exp.applicability, found.group("answer")) if found else None


def error_fix_lessons(episode: Episode) -> list[str]:
    """error→fix: a tool call that failed and a later call of the same tool that succeeded."""
    lessons: list[str] = []
    failed: dict[str, ToolStep] = {}
    for step in episode.steps:
        if not isinstance(step, ToolStep):
            continue
        if step.error:
            failed.setdefault(step.tool, step)
        elif step.tool in failed:
            bad = failed.pop(step.tool)
            lessons.append(
                f"Tool {step.tool} failed with input {shorten(bad.input, 150)} ({shorten(bad.error, 150)}); "
                f"it worked with input {shorten(step.input, 150)}."
            )
    if episode.outcome is not None and not episode.outcome.success:
        for step in episode.steps:
            if isinstance(step, ErrorStep) and episode.outcome.correction:
                lessons.append(
                    f"{step.error_type}: {shorten(step.message, 150)} — fix: {shorten(episode.outcome.correction)}"
                )
    return lessons


class RulesDistiller:
    """Distills without an LLM: it only records what the outcome verifies.

    - A judged answer becomes a fact (the verified or corrected answer) or a pitfall (a wrong answer).
    - A failed tool call followed by a working one becomes a pitfall with its fix.
    - An unjudged episode yields nothing but its error→fix lessons.
    A new answer for a question the store already answers differently supersedes the old one:
    the newest verified feedback wins.

    Example:
        >>> from expscale_core.episode import Outcome
        >>> ep = Episode(input="capital of France?", output="Paris", outcome=Outcome(score=1))
        >>> d = RulesDistiller().distill(ep, [])[0]
        >>> d.applicability, d.content
        ('capital of France?', 'The verified answer is: Paris.')
    """

    def __init__(self, same_question_threshold: float | None = None) -> None:
        # Off by default: "who won in 2010?" and "who won in 2014?" embed almost identically, and a
        # wrong supersede hides a correct fact. Exact (normalized) question matches always count.
        self.same_question_threshold = same_question_threshold

    @property
    def name(self) -> str:
        return "rules"

    @property
    def prompt_version(self) -> None:
        return None

    def distill(
        self,
        episode: Episode,
        similar: Sequence[tuple[Experience, float]],
        *,
        served: Collection[str] = (),
    ) -> list[Decision]:
        decisions: list[Decision] = []
        applicability = shorten(episode.input, 200)
        lesson = answer_lesson(episode)
        if lesson is not None:
            kind, content = lesson
            decisions.append(self._against_existing(kind, content, applicability, similar))
        for text in error_fix_lessons(episode):
            decisions.append(
                Decision(
                    Action.ADD, kind=ExperienceKind.PITFALL, content=text, applicability=applicability, verbatim=True
                )
            )
        return decisions

    def _against_existing(
        self,
        kind: ExperienceKind,
        content: str,
        applicability: str,
        similar: Sequence[tuple[Experience, float]],
    ) -> Decision:
        wanted = normalize_answer(applicability)
        for existing, similarity in similar:
            same_question = normalize_answer(existing.applicability) == wanted or (
                self.same_question_threshold is not None and similarity >= self.same_question_threshold
            )
            if not same_question or existing.kind not in (ExperienceKind.FACT, ExperienceKind.PITFALL):
                continue
            if normalize_answer(existing.content) == normalize_answer(content):
                return Decision(Action.NOOP, target_id=existing.id)
            return Decision(
                Action.SUPERSEDE,
                target_id=existing.id,
                kind=kind,
                content=content,
                applicability=applicability,
            )
        return Decision(Action.ADD, kind=kind, content=content, applicability=applicability, verbatim=True)
