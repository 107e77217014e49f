"""Checks on a small model's lesson against its known failures, before anyone is served it.

Measured on Qwen2.5-Coder-1.5B: it returned the prompt's own example as the lesson, carried the identifiers of the
labelled wrong answer into it, and restated one instance instead of a rule. Each check here names such a failure
in words the model can act on (they are shown to it for its one corrective retry).
"""

from __future__ import annotations

import re

__all__ = ["agrees", "lesson_problems", "specific_tokens"]

_TOKEN = re.compile(r"[A-Za-z0-9$€£][A-Za-z0-9_\-/=.:$€£]*[A-Za-z0-9]|[A-Za-z0-9]")
# Phrases of the prompt itself: a lesson that contains one copied the instructions, not the episode.
_PROMPT_PHRASES = (
    "future request",
    "future, different",
    "— when:",
    "<an instruction",
    "<kind of request",
    "what to always do",
    "in general words",
    "the corrected answer",
    "boards to length",  # the prompt's shape example, from an unrelated trade
    "shelf plank",
    "table top",
)


def _tokens(text: str) -> list[str]:
    return [t.lower().rstrip(".:") for t in _TOKEN.findall(text)]


def specific_tokens(text: str) -> set[str]:
    """Numbers, identifiers and codes (any token with a digit, or joined by - _ / = .): what makes a text about
    one instance, and what a lesson must not invent."""
    return {t for t in _tokens(text) if any(c.isdigit() for c in t) or (len(t) > 2 and re.search(r"[_\-/=.]", t))}


def lesson_problems(rule: str, *, request: str, correction: str | None, wrong_answer: str | None) -> list[str]:
    """What is wrong with ``rule`` as a lesson of this episode; empty when it may be kept."""
    problems: list[str] = []
    lowered = rule.lower()
    if any(p in lowered for p in _PROMPT_PHRASES):
        problems.append("it repeats the instructions' wording instead of stating this episode's lesson")
    known = specific_tokens(request) | specific_tokens(correction or "")
    # Values with digits must come from the episode; a single digit may be a count ("5 digits", "2 decimals"), and
    # placeholders without digits (YYYY-MM-DD, feature/<number>) are how a rule stays general.
    invented = {
        t
        for t in specific_tokens(rule)
        if t not in known and any(c.isdigit() for c in t) and not re.fullmatch(r"\d", t)
    }
    if wrong_answer:
        from_wrong = {t for t in specific_tokens(wrong_answer) - known if not re.fullmatch(r"\d", t)}
        leaked = sorted(t for t in specific_tokens(rule) if t in from_wrong)
        if leaked:
            problems.append(f"it repeats the wrong answer's {', '.join(leaked)}; the correction is what is right")
        invented -= from_wrong
    if invented:
        problems.append(f"it contains {', '.join(sorted(invented))}, which neither the request nor the correction has")
    # This case's values make a rule about one case: the request's numbers ("$120", "42" inside "INC-00042"), and,
    # when the correction is just the answer (a few words), its codes. A longer correction that states the rule may
    # name values that belong to the rule itself ("under 100 dollars").
    numbers = {t.strip("$€£") for t in specific_tokens(request) if any(c.isdigit() for c in t)}
    numbers = {n for n in numbers if len(n) > 1}
    short_answer = correction is not None and len(correction.split()) <= 8
    answer_values = specific_tokens(correction or "") - specific_tokens(request) if short_answer else set()
    rule_tokens = set(_tokens(rule))
    if answer_values & rule_tokens or any(n in t for n in numbers for t in rule_tokens):
        problems.append(
            "the rule names this one case's values; state it for any case (use placeholders such as <number>)"
        )
    return problems


def agrees(answer: str, reference: str) -> bool:
    """Does ``answer`` say what ``reference`` (a correction) says? Every specific token the answer asserts must
    be backed by the reference, and the answer must carry one, or be contained in it as a whole."""
    said = specific_tokens(answer)
    backing = set(_tokens(reference)) | specific_tokens(reference)
    if said:
        return said <= backing
    words = " ".join(_tokens(answer))
    return bool(words) and words in " ".join(_tokens(reference))
