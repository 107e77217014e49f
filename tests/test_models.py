from __future__ import annotations

from pathlib import Path

import pytest
from expscale_core import Episode, Experience, ExpscaleSettings, LLMStep, Outcome, Scope, ToolStep
from pydantic import ValidationError


def test_episode_round_trips_through_json_with_typed_steps() -> None:
    ep = Episode(
        input="q",
        output="a",
        steps=[
            LLMStep(model="m", messages=[{"role": "user", "content": "q"}], response="a", reasoning="think"),
            ToolStep(tool="calc", input={"x": 1}, output=2),
        ],
        outcome=Outcome(score=-0.5, correction="b"),
    )
    back = Episode.model_validate_json(ep.model_dump_json())
    assert back == ep
    assert isinstance(back.steps[0], LLMStep) and back.steps[0].reasoning == "think"
    assert back.outcome is not None and not back.outcome.success


def test_bad_inputs_are_rejected_with_reasons() -> None:
    with pytest.raises(ValidationError, match="score"):
        Outcome(score=3)
    with pytest.raises(ValidationError, match="non-empty"):
        Episode(id=" ", input="x")
    with pytest.raises(ValidationError):
        Experience(kind="recipe", content="x")
    with pytest.raises(TypeError, match="namespace string"):
        Scope.coerce(42)  # type: ignore[arg-type]


def test_scope_reads_see_narrower_writes_only() -> None:
    team = Scope(namespace="acme")
    agent = Scope(namespace="acme", agent="triage")
    assert team.contains(agent)
    assert not agent.contains(team)
    assert not Scope(namespace="other").contains(agent)
    assert Scope.coerce("acme") == team
    assert Scope.coerce(None) == Scope()


def test_settings_read_env_with_prefix_and_nesting(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("EXPSCALE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("EXPSCALE_LLM__MODEL", "gpt-test")
    monkeypatch.setenv("EXPSCALE_REFINE__MAX_EXPERIENCES", "7")
    s = ExpscaleSettings()
    assert s.data_dir == tmp_path and s.llm.model == "gpt-test" and s.refine.max_experiences == 7
    assert s.qdrant_path() == str(tmp_path / "qdrant")


def test_settings_defaults_are_not_shared() -> None:
    a, b = ExpscaleSettings(), ExpscaleSettings()
    assert a.retrieve is not b.retrieve
    assert a.data_dir == Path(".expscale")


def test_settings_reject_openai_embedder_without_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("EXPSCALE_LLM__BASE_URL", "EXPSCALE_LLM__API_KEY"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(ValidationError, match="EXPSCALE_LLM__BASE_URL"):
        ExpscaleSettings(embedder={"provider": "openai"})


def test_conflicting_store_settings_raise_config_error(tmp_path: Path) -> None:
    from expscale_core import ConfigError, ExperienceEngine

    settings = ExpscaleSettings(
        data_dir=tmp_path,
        embedder={"provider": "hash"},
        store={"url": "http://127.0.0.1:6333", "path": str(tmp_path / "q")},
    )
    with pytest.raises(ConfigError, match="unset one of them"):
        ExperienceEngine.from_settings(settings)


def test_retrieval_keys_are_the_lesson_and_its_phrasings_never_a_request_cut_at_its_semicolons() -> None:
    rule = Experience(kind="strategy", content="Use ISO dates.", applicability="dates", phrasings=["due date?"])
    assert rule.retrieval_keys() == ["dates\nUse ISO dates.", "due date?"]
    verbatim = Experience(kind="fact", content="The verified answer is: 5 km.", applicability="Convert 5 km; show work")
    assert verbatim.retrieval_keys() == [verbatim.embedding_text(), "Convert 5 km; show work"]
    assert Experience(kind="fact", content="x").retrieval_keys() == ["x"]


def test_phrasings_are_repaired_not_refused() -> None:
    exp = Experience(kind="fact", content="x", phrasings=[" a  b ", "a b", "", "c", "d", "e", "f"])
    assert exp.phrasings == ["a b", "c", "d", "e"]  # spaces folded, duplicates and blanks dropped, first four kept
    assert exp.situation() == "a b; c; d; e"  # what the screens read beside the content
    listed = exp.model_copy(update={"applicability": "a b; or c"})
    assert listed.situation() == "a b; or c; c; d; e"
