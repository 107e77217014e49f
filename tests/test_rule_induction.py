"""Refinement induces the rule that several answer-only corrections share ("grow and refine")."""

from __future__ import annotations

import json

from expscale_core import Episode, ExperienceKind, ExperienceStatus, RulesDistiller
from expscale_core.distill.lesson import stored_rule
from expscale_core.engine import ExperienceEngine
from expscale_core.llm import OpenAILLM
from expscale_core.refine.induce import INDUCE_PROMPT_VERSION
from expscale_core.settings import RefineSettings
from expscale_core.testing import RecordedRequest, ScriptedLLM, make_engine

_TEACH = [
    ("Release tag for version 1.4?", "release-v1.4.0"),
    ("Release tag for version 2.0.3?", "release-v2.0.3"),
    ("Release tag for version 7.1?", "release-v7.1.0"),
]
_RULE = "Write release tags as release-v<major>.<minor>.<patch>, with missing parts written as 0."
_REFINE = RefineSettings(
    every_n_experiences=None, duplicate_threshold=0.999, contradiction_threshold=0.999, induce_threshold=0.3
)


def _model(rule: str = _RULE, replay: dict[str, str] | None = None) -> ScriptedLLM:
    """A model that writes ``rule`` when asked for one and, on replay, answers each request from ``replay``
    (by default the corrected answer: the rule reproduces its examples)."""
    answers = dict(_TEACH) if replay is None else replay

    def reply(request: RecordedRequest) -> str:
        system = str(request.messages[0]["content"])
        if system.startswith("You write down the rule"):
            return json.dumps({"rule": rule, "applies_to": ["Which tag does version 3 get?"]})
        if system.startswith("Answer with a short answer only"):
            return json.dumps({"answer": answers.get(str(request.messages[-1]["content"]), "no idea")})
        raise AssertionError(f"unexpected prompt: {system[:80]}")

    return ScriptedLLM(reply)


def _teach(engine: ExperienceEngine, pairs: list[tuple[str, str]], scope: str | None = None) -> list[str]:
    ids = []
    for question, answer in pairs:
        eid = engine.record(Episode(input=question, output="v-something"), scope=scope)
        engine.feedback(eid, -1, correction=answer, scope=scope)
        ids.append(eid)
    assert engine.drain(timeout=10)
    return ids


def _engine(server: ScriptedLLM) -> ExperienceEngine:
    # Rules distil the corrections verbatim (no LLM at distillation); the refiner has the model.
    return make_engine(distiller=RulesDistiller(), llm=OpenAILLM(server.client, model="m"), refine=_REFINE)


def test_answer_only_corrections_become_one_rule_with_their_examples() -> None:
    server = _model()
    with _engine(server) as engine:
        episodes = _teach(engine, _TEACH)
        report = engine.refine()
        assert report.induced == 1
        active = [e for e, _ in engine.store.scan(statuses=[ExperienceStatus.ACTIVE])]
        (rule,) = [e for e in active if stored_rule(e)]
        text, examples = stored_rule(rule) or ("", [])
        assert text == _RULE and examples == _TEACH
        assert rule.kind is ExperienceKind.STRATEGY and rule.provenance.prompt_version == INDUCE_PROMPT_VERSION
        assert sorted(rule.provenance.source_episode_ids) == sorted(episodes)
        assert len(active) == 4  # the verified examples stay: the floor
        # One rule call and one replay per example; a second run finds every example listed and asks nothing.
        assert len(server.requests) == 1 + len(_TEACH)
        assert engine.refine().induced == 0 and len(server.requests) == 1 + len(_TEACH)
        served = engine.format(engine.retrieve("Release tag for version 9.2?", k=4))
        assert "[rule] Write release tags as release-v" in served
        assert "[example]" not in served  # the rule shows its examples; they are not repeated


def test_a_rule_that_does_not_reproduce_every_example_is_not_stored() -> None:
    wrong_on_one = dict(_TEACH) | {_TEACH[1][0]: "release-v2.0"}
    with _engine(_model(replay=wrong_on_one)) as engine:
        _teach(engine, _TEACH)
        assert engine.refine().induced == 0
        assert not [e for e, _ in engine.store.scan() if stored_rule(e)]


def test_a_rule_naming_one_examples_values_is_refused_after_the_corrective_retry() -> None:
    server = _model(rule="Tag version 1.4 as release-v1.4.0 for every release.")
    with _engine(server) as engine:
        _teach(engine, _TEACH)
        assert engine.refine().induced == 0
        rule_calls = [r for r in server.requests if "You write down the rule" in r.prompt_text]
        assert len(rule_calls) == 2  # the guard's reason went back once
        assert "this one case's values" in rule_calls[1].prompt_text


def test_examples_from_different_scopes_never_share_a_rule() -> None:
    server = _model()
    with _engine(server) as engine:
        _teach(engine, _TEACH[:1], scope="acme")
        _teach(engine, _TEACH[1:2], scope="globex")
        assert engine.refine().induced == 0
        assert server.requests == []


def test_induction_is_a_setting() -> None:
    server = _model()
    off = _REFINE.model_copy(update={"induce_rules": False})
    with make_engine(distiller=RulesDistiller(), llm=OpenAILLM(server.client, model="m"), refine=off) as engine:
        _teach(engine, _TEACH)
        assert engine.refine().induced == 0 and server.requests == []
