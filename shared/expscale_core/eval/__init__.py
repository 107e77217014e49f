"""The evaluation harness: the paper's three scenarios, four arms, accuracy with cost and latency.

Run it with ``expscale eval`` (``pip install "expscale[eval]"`` for the plots).
"""

from expscale_core.eval.data import QA, Cluster, load_comqa, load_nq_open, load_sample, load_webquestions
from expscale_core.eval.readers import LLMReader, OracleReader, Reader
from expscale_core.eval.runner import ARMS, ArmResult, EvalConfig, ScenarioResult, run_scenario
from expscale_core.eval.scenarios import Task, related, repetitive, saturation

__all__ = [
    "ARMS",
    "QA",
    "ArmResult",
    "Cluster",
    "EvalConfig",
    "LLMReader",
    "OracleReader",
    "Reader",
    "ScenarioResult",
    "Task",
    "load_comqa",
    "load_nq_open",
    "load_sample",
    "load_webquestions",
    "related",
    "repetitive",
    "run_scenario",
    "saturation",
]
