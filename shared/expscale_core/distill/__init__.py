"""Distillation: turning finished episodes into experiences, with or without an LLM."""

from expscale_core.distill.base import Action, Decision, Distiller
from expscale_core.distill.llm_distiller import DistillCandidate, DistillOutput, LLMDistiller
from expscale_core.distill.rules import RulesDistiller

__all__ = [
    "Action",
    "Decision",
    "DistillCandidate",
    "DistillOutput",
    "Distiller",
    "LLMDistiller",
    "RulesDistiller",
]
