"""The LLM distiller: one structured call per episode decides ADD / UPDATE / SUPERSEDE / NOOP."""

from __future__ import annotations

from collections.abc import Collection, Sequence

from expscale_core.distill.base import Action, Decision
from expscale_core.distill.render import DISTILL_PROMPT_VERSION, render_distill_prompt
from expscale_core.distill.schema import DistillOutput, distill_output_model
from expscale_core.episode import Episode
from expscale_core.experience import Experience, ExperienceKind
from expscale_core.llm import LLM

__all__ = ["LLMDistiller", "decisions_from_output"]


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

    One call per episode (plus one corrective retry when the output is unusable). The output schema is
    built for the call: with no similar experiences listed, the model can only write new lessons.

    Args:
        llm: the model.
        prompt_budget_tokens: bound on the whole prompt (estimated tokens); long episodes are shortened
            in the middle, keeping the request, errors, final answer and outcome.

    Example:
        >>> from expscale_core.llm import OpenAILLM
        >>> from expscale_core.testing import ScriptedLLM
        >>> llm = OpenAILLM(ScriptedLLM(['{"candidates": []}']).client, model="m")
        >>> LLMDistiller(llm).distill(Episode(input="hi", output="hello"), [])
        []
    """

    def __init__(self, llm: LLM, *, prompt_budget_tokens: int | None = 1000) -> None:
        if prompt_budget_tokens is not None and prompt_budget_tokens < 200:
            raise ValueError(
                f"prompt_budget_tokens must be >= 200 (or None for no bound), got {prompt_budget_tokens}; "
                "set EXPSCALE_DISTILL__PROMPT_BUDGET_TOKENS to the model's context minus its output bound"
            )
        self.llm = llm
        self.prompt_budget_tokens = prompt_budget_tokens

    @property
    def name(self) -> str:
        return f"llm:{self.llm.model_id}"

    @property
    def prompt_version(self) -> str:
        return f"distill.{DISTILL_PROMPT_VERSION}"

    def distill(
        self,
        episode: Episode,
        similar: Sequence[tuple[Experience, float]],
        *,
        served: Collection[str] = (),
    ) -> list[Decision]:
        existing = [e for e, _ in similar]
        system, user = render_distill_prompt(episode, existing, served=served, budget_tokens=self.prompt_budget_tokens)
        output = self.llm.generate(
            system, user, distill_output_model(len(existing)), context={"request": episode.input}
        )
        return decisions_from_output(output, existing)
