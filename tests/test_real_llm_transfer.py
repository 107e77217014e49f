"""The LLM distiller's known failures on a small real model, each checked (issue 16). Skipped without
EXPSCALE_TEST_LLM_URL; see tests/test_real_llm.py."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from expscale_core import Episode, ExperienceEngine, ExpscaleSettings
from expscale_core.distill.guards import lesson_problems
from expscale_core.distill.lesson import parse_rule
from expscale_core.experience import Experience, ExperienceStatus

pytestmark = pytest.mark.real_llm

URL = os.environ.get("EXPSCALE_TEST_LLM_URL")
MODEL = os.environ.get("EXPSCALE_TEST_LLM_MODEL", "qwen1.5b")


def _settings(tmp_path: Path, **extra: object) -> ExpscaleSettings:
    if not URL:
        pytest.skip("EXPSCALE_TEST_LLM_URL unset: no real model to talk to")
    llm = {"model": MODEL, "base_url": URL, "api_key": "local", "timeout_s": 180}
    return ExpscaleSettings(data_dir=tmp_path, llm=llm, embedder={"provider": "minilm"}, **extra)  # type: ignore[arg-type]


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[ExperienceEngine]:
    with ExperienceEngine.from_settings(_settings(tmp_path), autostart=False) as eng:
        yield eng


def _active(engine: ExperienceEngine) -> list[Experience]:
    return [e for e, _ in engine.store.scan(statuses=[ExperienceStatus.ACTIVE])]


def _correct(engine: ExperienceEngine, question: str, wrong: str, correction: str) -> str:
    eid = engine.record(Episode(input=question, output=wrong))
    engine.feedback(eid, -1, correction=correction)
    engine.run_pending()
    return eid


def test_no_lesson_copies_the_prompt_and_the_correction_is_always_kept(engine: ExperienceEngine) -> None:
    # Prices were where the old prompt's own discount example came back as "the lesson".
    _correct(engine, "Quote the price of the 40 EUR keyboard for the website.", "40 EUR", "33.61 EUR excluding VAT")
    _correct(engine, "What price do we show for the 12 EUR mouse?", "12 EUR", "10.08 EUR excluding VAT")
    lessons = _active(engine)
    text = " ".join(e.content + " " + e.applicability for e in lessons).lower()
    for copied in ("discount rate", "original price", "boards", "millimetres", "future", "— when:"):
        assert not re.search(rf"(?<!\w){re.escape(copied)}(?!\w)", text), [e.content for e in lessons]
    assert "33.61 eur excluding vat" in text and "10.08 eur excluding vat" in text  # the floor: verbatim


def test_the_labelled_wrong_answer_never_becomes_the_lesson(engine: ExperienceEngine) -> None:
    wrong = (
        "1. Build the image with docker build -t app:v2 . 2. Push it to registry.internal/app:v2 "
        "3. Run kubectl apply -f deploy.yaml 4. Watch kubectl rollout status 5. Tell the team."
    )
    _correct(engine, "How do I deploy the app to staging?", wrong, "make ship ENV=staging")
    for exp in _active(engine):
        parsed = parse_rule(exp.content)
        rule = parsed[0] if parsed else exp.content
        for leaked in ("deploy.yaml", "registry.internal", "app:v2"):
            assert leaked not in rule, exp.content
    assert any("make ship ENV=staging" in e.content for e in _active(engine))


def test_a_second_instance_adds_to_the_rule_and_overwrites_nothing(engine: ExperienceEngine) -> None:
    rule = "Incident tickets are named INC- followed by the incident number padded to 5 digits."
    _correct(engine, "What is the ticket name for incident 42?", "INC-42", f"{rule} So: INC-00042")
    _correct(engine, "Name the ticket for incident 315.", "INC-315", f"{rule} So: INC-00315")
    lessons = _active(engine)
    text = " ".join(e.content for e in lessons)
    assert "INC-00042" in text and "INC-00315" in text, "both corrections survive, whatever the model wrote"
    rules = [parse_rule(e.content) for e in lessons if parse_rule(e.content)]
    for stated, examples in (r for r in rules if r is not None):
        # An admitted rule states the rule, not one instance, and carries only verified examples.
        assert not lesson_problems(stated, request=examples[0][0], correction=examples[0][1], wrong_answer=None)
        assert all("INC-00" in answer for _, answer in examples)


def test_the_same_lesson_twice_is_stored_once(engine: ExperienceEngine) -> None:
    for _ in range(2):
        _correct(engine, "Which queue handles a $40 refund?", "billing", "support")
    lessons = _active(engine)
    verbatim = [e for e in lessons if parse_rule(e.content) is None]
    rules = [e for e in lessons if parse_rule(e.content) is not None]
    assert len(verbatim) == 1, [e.content for e in lessons]
    assert len(rules) <= 1, [e.content for e in lessons]


def test_refinement_induces_only_rules_that_reproduce_every_example(tmp_path: Path) -> None:
    """Answer-only corrections never state the rule; refinement may write the one they share, and what it
    stores must give back every example's answer and name no one example's values."""
    from expscale_core import RulesDistiller
    from expscale_core.distill.guards import agrees
    from expscale_core.distill.lesson import Taught, replays, rule_problems, stored_rule

    settings = _settings(tmp_path, refine={"every_n_experiences": None, "induce_threshold": 0.5})
    teach = [
        ("Tag for version 1.4?", "release-v1.4.0"),
        ("Tag for version 2.0.3?", "release-v2.0.3"),
        ("Tag for version 7?", "release-v7.0.0"),
    ]
    with ExperienceEngine.from_settings(settings, autostart=False, distiller=RulesDistiller()) as engine:
        for question, answer in teach:
            _correct(engine, question, "v-next", answer)
        report = engine.refine()
        rules = [r for e in _active(engine) if (r := stored_rule(e)) is not None]
        assert report.induced == len(rules) <= 1
        for rule, examples in rules:
            assert examples == teach
            assert not rule_problems(rule, Taught(teach[-1][0], teach[-1][1], None, tuple(teach[:-1])))
            assert engine.llm is not None
            assert all(replays(engine.llm, rule, q, a) for q, a in teach)
        # Whatever was induced, the verified examples are all still there.
        answers = [e.content for e in _active(engine) if e.kind.value == "fact"]
        assert all(any(agrees(a, c) for c in answers) for _, a in teach)
        print(f"induced {report.induced}: {rules}")
