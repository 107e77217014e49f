"""Rule induction ("grow and refine"): worked examples of one situation become the rule they share.

Corrections that give only the right answer ("It's 2024-11-15.") never state the rule, so each is stored as one
verified example. When refinement finds several such examples close together in one scope, and no stored rule
lists them yet, the model is shown them together and writes the rule they share. The rule is guarded like a
distilled one and admitted only if the model, given the rule alone, answers *every* shown example's request as
it was verified (replay). It is stored as a new lesson carrying the examples; the examples stay active, so the
verified text remains the floor.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np

from expscale_core.distill.lesson import (
    RULE_PROMPT_VERSION,
    RuleLesson,
    Taught,
    compose_rule,
    replays,
    rule_prompt,
    stored_rule,
)
from expscale_core.distill.rules import verified_example
from expscale_core.embed.base import Embedder
from expscale_core.embed.keys import embed_keys
from expscale_core.errors import LLMError
from expscale_core.experience import Experience, ExperienceKind, Provenance
from expscale_core.llm import LLM
from expscale_core.refine.clusters import Row, duplicate_clusters
from expscale_core.safety.screen import screen
from expscale_core.store.base import Keys

__all__ = ["INDUCE_PROMPT_VERSION", "induce_rules"]

INDUCE_PROMPT_VERSION = f"induce.rule.{RULE_PROMPT_VERSION}"
_SHOWN = 3  # examples shown to the model and replayed: enough to see a rule, few enough for a small context

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Example:
    exp: Experience
    vector: Row
    request: str
    answer: str


def induce_rules(
    items: Sequence[tuple[Experience, Row]],
    *,
    llm: LLM,
    embedder: Embedder,
    threshold: float,
    limit: int,
    now: datetime,
    dirty: set[str] | None = None,
    screen_llm: Callable[[str, str], list[str]] | None = None,
) -> list[tuple[Experience, Keys]]:
    """New rule lessons, with their vectors, for groups of verified examples that no stored rule lists yet.

    ``items``: one scope's active records with unit vectors. Examples group when linked at ``threshold`` or
    above; a group needs two examples and, with ``dirty``, one of them changed since the last run. At most
    ``limit`` groups are tried, largest first; each costs one rule call and one replay call per shown example.
    """
    listed = {q for exp, _ in items if (parsed := stored_rule(exp)) for q, _ in parsed[1]}
    examples = [
        _Example(exp, vec, *found)
        for exp, vec in items
        if (found := verified_example(exp)) is not None and found[0] not in listed
    ]
    if len(examples) < 2:
        return []
    clusters = duplicate_clusters(np.asarray([x.vector for x in examples], dtype=np.float32), threshold)
    groups = sorted(
        (sorted((examples[i] for i in c), key=lambda x: x.exp.created_at) for c in clusters), key=len, reverse=True
    )
    out: list[tuple[Experience, Keys]] = []
    for group in groups:
        if len(out) >= limit:
            break
        if dirty is None or any(x.exp.id in dirty for x in group):
            induced = _induce(group, llm, embedder, now, screen_llm)
            if induced is not None:
                out.append(induced)
    return out


def _induce(
    group: list[_Example],
    llm: LLM,
    embedder: Embedder,
    now: datetime,
    screen_llm: Callable[[str, str], list[str]] | None,
) -> tuple[Experience, Keys] | None:
    shown = group[-_SHOWN:]
    newest = shown[-1]
    taught = Taught(newest.request, newest.answer, None, tuple((x.request, x.answer) for x in shown[:-1]))
    system, user = rule_prompt(taught)
    try:
        # The guards run in validation, so a rule naming one example's values gets the corrective retry.
        lesson = llm.generate(system, user, RuleLesson, context={"taught": taught})
    except LLMError as exc:
        log.info("no rule induced from %d examples (%s)", len(shown), exc)
        return None
    if not all(replays(llm, lesson.rule, x.request, x.answer) for x in shown):
        log.info("induced rule %r does not reproduce its examples; not stored", lesson.rule)
        return None
    content = compose_rule(lesson.rule, [(x.request, x.answer) for x in shown])
    applicability = "; ".join(lesson.applies_to) or newest.request
    suspect = screen(content, applicability) or (screen_llm(content, applicability) if screen_llm else [])
    if suspect:  # induction must not create what screening keeps out
        log.warning("induced rule %r screens as suspect; not stored", lesson.rule)
        return None
    rule = Experience(
        kind=ExperienceKind.STRATEGY,
        content=content,
        applicability=applicability,
        phrasings=lesson.applies_to,
        scope=newest.exp.scope,
        visibility=newest.exp.visibility,  # the examples share one audience (grouped so): the rule reaches it
        published_to=newest.exp.published_to,
        provenance=Provenance(
            distiller=f"llm:{llm.model_id}",
            prompt_version=INDUCE_PROMPT_VERSION,
            embedding_model=embedder.model_id,
            source_episode_ids=list(dict.fromkeys(s for x in group for s in x.exp.provenance.source_episode_ids)),
            deployments=list(dict.fromkeys(d for x in group for d in x.exp.provenance.deployments)),
            sources=list(dict.fromkeys(s for x in group for s in x.exp.provenance.sources)),
            trusted=all(x.exp.provenance.trusted for x in group),
        ),
        created_at=now,
        updated_at=now,
    )
    return rule, embed_keys(embedder, [rule])[0]
