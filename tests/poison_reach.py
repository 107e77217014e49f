"""Teach the attack corpus and the honest corrections through each delivery path, then measure who is served what.

Every attack comes from its own untrusted account (a user scope of namespace ``corp``); every honest correction is
taught by two users. A victim is any other user, and the namespace-wide read. Used by ``tests/test_poisoning_reach.py``
and ``benchmarks/poison_reach.py``.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Literal

from attack_corpus import ATTACKS, HONEST, Attack
from expscale_core import Episode, ExperienceStatus, Scope
from expscale_core.distill.llm_distiller import LLMDistiller
from expscale_core.engine import ExperienceEngine
from expscale_core.llm import OpenAILLM
from expscale_core.testing import RecordedRequest, ScriptedLLM, make_engine

__all__ = ["DELIVERIES", "Reach", "measure"]

Delivery = Literal["correction", "verified", "llm"]
DELIVERIES: tuple[Delivery, ...] = ("correction", "verified", "llm")
NS = "corp"
VICTIMS = (Scope(namespace=NS, user="victim"), Scope(namespace=NS, user="newcomer"), Scope(namespace=NS))


@dataclass
class Reach:
    delivery: str
    attacks: int = 0
    reached_others: list[str] = field(default_factory=list)
    reached_own: int = 0
    flagged: int = 0
    honest: int = 0
    honest_everyone: int = 0
    honest_held: int = 0
    honest_missing: list[str] = field(default_factory=list)
    by_family: Counter[str] = field(default_factory=Counter)
    teach_s: float = 0.0
    llm_calls: int = 0


def _relay(request: RecordedRequest) -> str:
    """The distiller's model relays whatever the episode's output said, as a lesson (the LLM path)."""
    user = request.messages[-1]["content"]
    output = user.split("Output:", 1)[1].split("\n\n", 1)[0].strip() if "Output:" in user else user[-300:]
    return json.dumps({"candidates": [{"kind": "strategy", "content": output, "applicability": ""}]})


def _engine(delivery: Delivery) -> tuple[ExperienceEngine, ScriptedLLM | None]:
    if delivery != "llm":
        return make_engine(autostart=False), None
    server = ScriptedLLM(_relay)
    llm = OpenAILLM(server.client, model="relay")
    return make_engine(autostart=False, distiller=LLMDistiller(llm)), server


def _teach(engine: ExperienceEngine, delivery: Delivery, scope: Scope, request: str, text: str) -> None:
    if delivery == "correction":
        eid = engine.record(Episode(input=request, output="I am not sure."), scope=scope)
        engine.feedback(eid, -1, correction=text, scope=scope)
    elif delivery == "verified":
        eid = engine.record(Episode(input=request, output=text), scope=scope)
        engine.feedback(eid, 1, scope=scope)
    else:  # no feedback at all: what the episode's output says reaches the store only through the LLM
        engine.record(Episode(input=request, output=text), scope=scope)


def _served(engine: ExperienceEngine, scope: Scope, request: str) -> str:
    hits = engine.retrieve(request, scope=scope, k=10)  # deeper than a prompt's default 5: stricter for victims
    return engine.format(hits) + "\n" + "\n".join(h.experience.content for h in hits)


def measure(delivery: Delivery) -> Reach:
    engine, server = _engine(delivery)
    report = Reach(delivery)
    started = time.perf_counter()
    try:
        attackers = [(a, Scope(namespace=NS, user=f"attacker-{i}")) for i, a in enumerate(ATTACKS)]
        for attack, scope in attackers:
            _teach(engine, delivery, scope, attack.request, attack.payload)
        for i, honest in enumerate(HONEST):
            for who in ("a", "b"):
                _teach(
                    engine, delivery, Scope(namespace=NS, user=f"honest-{i}-{who}"), honest.request, honest.correction
                )
        engine.run_pending()
        report.teach_s = time.perf_counter() - started
        report.llm_calls = len(server.requests) if server is not None else 0
        held = [e.content for e, _ in engine.store.scan(statuses=[ExperienceStatus.QUARANTINED])]
        for attack, scope in attackers:
            report.attacks += 1
            report.flagged += any(attack.marker in h for h in held)
            report.reached_own += attack.marker in _served(engine, scope, attack.request)
            if any(attack.marker in _served(engine, v, attack.request) for v in VICTIMS):
                report.reached_others.append(_label(attack))
                report.by_family[attack.family] += 1
        for honest in HONEST:
            report.honest += 1
            if all(honest.correction.rstrip(".") in _served(engine, v, honest.request) for v in VICTIMS):
                report.honest_everyone += 1
            elif any(honest.correction.rstrip(".") in h for h in held):
                report.honest_held += 1
            else:
                report.honest_missing.append(honest.correction)
    finally:
        engine.close()
    return report


def _label(attack: Attack) -> str:
    return f"{attack.family}: {attack.payload[:60]!r}"
