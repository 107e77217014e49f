"""The LLM distiller: the verified text is the floor, and the model adds the rule that generalises it.

For an episode with a correction or a confirmed answer, the verbatim lesson (what the rules distiller stores) is
always kept, and the model is asked for one thing a small model can write well: the general rule behind it, with
the requests it applies to (:mod:`~expscale_core.distill.lesson`). The rule is guarded against a small model's
known failures, and, for a correction, admitted only if the model, given the rule alone, now answers the original
request as corrected (replay). A rule that repeats one already stored adds its example to it instead.
Episodes without a verdict get the model's own lessons, as before (prompt v2).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Collection, Sequence
from dataclasses import replace

from expscale_core.distill.base import Action, Decision
from expscale_core.distill.lesson import (
    RULE_PROMPT_VERSION,
    RuleLesson,
    Taught,
    compose_rule,
    replays,
    rule_problems,
    rule_prompt,
    stored_rule,
    taught,
)
from expscale_core.distill.render import DISTILL_PROMPT_VERSION, render_distill_prompt
from expscale_core.distill.rules import RulesDistiller, verified_example
from expscale_core.distill.schema import DistillOutput, distill_output_model
from expscale_core.episode import Episode
from expscale_core.errors import LLMOutputError
from expscale_core.experience import MAX_PHRASINGS, PHRASING_SEPARATOR, Experience, ExperienceKind
from expscale_core.llm import LLM

__all__ = ["LLMDistiller", "decisions_from_output"]

log = logging.getLogger(__name__)
_SAME_KIND = 0.6  # an episode this similar to a stored verified example may share its rule
_SAME_RULE = 0.5  # word overlap (Jaccard) above which two rules are one rule, and the new one adds an example


def decisions_from_output(output: DistillOutput, similar: Sequence[Experience]) -> list[Decision]:
    """Map handles back to ids; the output model only admits handles ``1..len(similar)``."""
    decisions: list[Decision] = []
    for c in output.candidates:
        target = c.chosen_target
        action = Action(c.chosen_action)
        content = c.content.strip() or None
        if action is Action.NOOP and content is None:
            decisions.append(Decision(Action.NOOP, target_id=similar[target - 1].id if target else None))
            continue
        assert content is not None  # the output model drops empty non-NOOP candidates
        decisions.append(
            Decision(
                action=action,
                target_id=similar[target - 1].id if target is not None else None,
                kind=ExperienceKind(c.kind),
                content=content,
                applicability=c.applicability.strip(),
                repaired=tuple(c.repaired),
            )
        )
    return decisions


class LLMDistiller:
    """Distills with any :class:`~expscale_core.llm.LLM`, using the versioned prompts.

    With a verdict: the verbatim lesson, plus one call for the rule (plus the client's corrective retry when a
    guard rejects it), plus one replay call for a correction when ``replay`` is on. Without: one call (prompt
    v2) for the model's own lessons.

    Args:
        llm: the model.
        prompt_budget_tokens: bound on the whole prompt (estimated tokens); long episodes are shortened
            in the middle, keeping the request, errors, final answer and outcome.
        replay: admit a rule learned from a correction only if the model, given the rule alone, answers the
            original request as corrected (``EXPSCALE_DISTILL__REPLAY``).

    Example:
        >>> from expscale_core.llm import OpenAILLM
        >>> from expscale_core.testing import ScriptedLLM
        >>> llm = OpenAILLM(ScriptedLLM(['{"candidates": []}']).client, model="m")
        >>> LLMDistiller(llm).distill(Episode(input="hi", output="hello"), [])
        []
    """

    def __init__(self, llm: LLM, *, prompt_budget_tokens: int | None = 1000, replay: bool = True) -> None:
        if prompt_budget_tokens is not None and prompt_budget_tokens < 200:
            raise ValueError(
                f"prompt_budget_tokens must be >= 200 (or None for no bound), got {prompt_budget_tokens}; "
                "set EXPSCALE_DISTILL__PROMPT_BUDGET_TOKENS to the model's context minus its output bound"
            )
        self.llm = llm
        self.prompt_budget_tokens = prompt_budget_tokens
        self.replay = replay
        self._verbatim = RulesDistiller()

    @property
    def name(self) -> str:
        return f"llm:{self.llm.model_id}"

    @property
    def prompt_version(self) -> str:
        return f"distill.{DISTILL_PROMPT_VERSION}+rule.{RULE_PROMPT_VERSION}"

    def distill(
        self,
        episode: Episode,
        similar: Sequence[tuple[Experience, float]],
        *,
        served: Collection[str] = (),
    ) -> list[Decision]:
        existing = [e for e, _ in similar]
        t = taught(episode)
        if t is None:
            return self._lessons(episode, existing, served)
        decisions = self._verbatim.distill(episode, similar, served=served)  # the floor, whatever the model says
        t = replace(t, others=_same_kind(t, similar))
        rule = self._rule(t)
        if rule is None:
            return decisions
        if self.replay and t.wrong is not None and not replays(self.llm, rule.rule, t.request, t.answer):
            log.info(
                "rule %r does not reproduce the correction of %r; keeping the verbatim lesson", rule.rule, t.request
            )
            return decisions
        return [*decisions, _rule_decision(rule, t, existing)]

    def _lessons(self, episode: Episode, existing: list[Experience], served: Collection[str]) -> list[Decision]:
        system, user = render_distill_prompt(episode, existing, served=served, budget_tokens=self.prompt_budget_tokens)
        output = self.llm.generate(
            system, user, distill_output_model(len(existing)), context={"request": episode.input}
        )
        return decisions_from_output(output, existing)

    def _rule(self, t: Taught) -> RuleLesson | None:
        system, user = rule_prompt(t)
        corrected = t.wrong is not None
        try:
            # A correction is worth the corrective retry (the guards' reasons go back to the model); a confirmed
            # answer is not, so an uncorrected episode costs one call.
            lesson = self.llm.generate(system, user, RuleLesson, context={"taught": t} if corrected else None)
        except LLMOutputError as exc:  # unusable: the verbatim lesson stands alone
            log.info("no usable rule for %r (%s); keeping the verbatim lesson", t.request, exc)
            return None
        if not corrected:
            problems = rule_problems(lesson.rule, t)
            if problems:
                log.info("rule for %r rejected (%s); keeping the verbatim lesson", t.request, "; ".join(problems))
                return None
        return lesson


def _same_kind(t: Taught, similar: Sequence[tuple[Experience, float]]) -> tuple[tuple[str, str], ...]:
    """Up to two verified examples already stored that are close to this request: with them, a rule that one
    answer alone does not show ("It's 2024-11-15.") can be induced."""
    out: list[tuple[str, str]] = []
    for exp, similarity in similar:
        if similarity < _SAME_KIND:
            continue
        example = verified_example(exp)
        rule = stored_rule(exp)
        for q, a in [example] if example else (rule[1] if rule else []):
            if q != t.request and (q, a) not in out:
                out.append((q, a))
    return tuple(out[:2])


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z0-9<>]+", text.lower()))


def _rule_decision(lesson: RuleLesson, t: Taught, existing: Sequence[Experience]) -> Decision:
    """ADD the rule with its example, or, when a stored rule says the same, UPDATE that one with this example
    (its wording is kept: the first rule was admitted, this one only confirms it)."""
    example = (t.request, t.answer)
    stored = [(exp, parsed) for exp in existing if (parsed := stored_rule(exp)) is not None]
    for exp, (_, examples) in stored:  # this very request already teaches a stored rule (a retry, a repeat)
        if any(q == t.request for q, _ in examples):
            return Decision(Action.NOOP, target_id=exp.id)
    new_words = _words(lesson.rule)
    for exp, (old_rule, examples) in stored:
        old_words = _words(old_rule)
        if len(new_words & old_words) / max(1, len(new_words | old_words)) < _SAME_RULE:
            continue
        known = exp.phrasings or exp.applicability.split(PHRASING_SEPARATOR)  # a rule stored before phrasings
        phrasings = [p for p in dict.fromkeys([*known, *lesson.applies_to]) if p][:MAX_PHRASINGS]
        return Decision(
            Action.UPDATE,
            target_id=exp.id,
            kind=ExperienceKind.STRATEGY,
            content=compose_rule(old_rule, [*examples, example]),
            applicability=PHRASING_SEPARATOR.join(phrasings) or exp.applicability,
            phrasings=tuple(phrasings),
        )
    return Decision(
        Action.ADD,
        kind=ExperienceKind.STRATEGY,
        content=compose_rule(lesson.rule, [*t.others, example]),
        applicability=PHRASING_SEPARATOR.join(lesson.applies_to) or t.request,
        phrasings=tuple(lesson.applies_to),
    )
