"""Distillation: turning finished episodes into experiences, with or without an LLM."""

from expscale_core.distill.base import Action, Decision, Distiller
from expscale_core.distill.llm_distiller import LLMDistiller
from expscale_core.distill.rules import RulesDistiller
from expscale_core.distill.schema import DistillCandidate, DistillOutput, distill_output_model

__all__ = [
    "Action",
    "Decision",
    "DistillCandidate",
    "DistillOutput",
    "Distiller",
    "LLMDistiller",
    "RulesDistiller",
    "distill_output_model",
]
