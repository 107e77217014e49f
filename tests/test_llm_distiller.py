from __future__ import annotations

import json
import re

import pytest
from expscale_core import (
    Episode,
    Experience,
    LLMDistiller,
    LLMError,
    LLMOutputError,
    OpenAILLM,
    Outcome,
    ToolStep,
)
from expscale_core.distill import Action
from expscale_core.testing import ScriptedLLM
from pydantic import BaseModel


class _Schema(BaseModel):
    answer: str


UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _out(*cands: dict[str, object]) -> str:
    return json.dumps({"candidates": list(cands)})


def _cand(
    action: str, target: int | None, content: str = "Use the v2 API.", kind: str = "strategy"
) -> dict[str, object]:
    return {"action": action, "target": target, "kind": kind, "content": content, "applicability": "API calls"}


def _existing() -> list[tuple[Experience, float]]:
    return [
        (Experience(kind="fact", content="The v1 API is current.", applicability="API calls"), 0.9),
        (Experience(kind="pitfall", content="Timeouts at 5s.", applicability="API calls"), 0.8),
    ]


def test_structured_request_with_handles_not_uuids_and_mapping_back() -> None:
    server = ScriptedLLM([_out(_cand("SUPERSEDE", 1, "The v2 API replaced v1."), _cand("NOOP", 2, ""))])
    distiller = LLMDistiller(OpenAILLM(server.client, model="m"))
    existing = _existing()
    decisions = distiller.distill(Episode(input="call the API", output="done"), existing)  # no verdict: prompt v2
    assert [d.action for d in decisions] == [Action.SUPERSEDE, Action.NOOP]
    assert decisions[0].target_id == existing[0][0].id and decisions[1].target_id == existing[1][0].id
    body = server.requests[0].body
    assert body["response_format"]["type"] == "json_schema"
    assert body["response_format"]["json_schema"]["strict"] is True
    prompt = server.requests[0].prompt_text
    assert "[1] (fact) The v1 API is current." in prompt
    assert not UUID_RE.search(prompt), "stored ids must never reach the model"
    assert distiller.prompt_version == "distill.v2+rule.v3"


def test_success_and_failure_are_distilled_differently() -> None:
    server = ScriptedLLM([_out()])
    distiller = LLMDistiller(OpenAILLM(server.client, model="m"), replay=False)
    distiller.distill(Episode(input="q", output="a", outcome=Outcome(score=1)), [])
    distiller.distill(Episode(input="q", output="a", outcome=Outcome(score=-1, correction="b")), [])
    distiller.distill(
        Episode(
            input="q",
            output="a",
            outcome=Outcome(score=-1, comment="wrong"),
            steps=[ToolStep(tool="search", input="q", error="timeout")],
        ),
        [],
    )
    ok, corrected, bad = (r.prompt_text for r in [*server.requests[::2][:2], server.requests[-1]])
    assert "Answer the user confirmed (RIGHT): a" in ok and "WRONG" not in ok
    assert "Assistant's answer (WRONG): a" in corrected and "User's correction (RIGHT): b" in corrected
    # Without a correction there is nothing verified to generalise: the model's own lessons (prompt v2).
    assert "FAILED" in bad and "WRONG ANSWER" in bad and "tool search" in bad


def test_invalid_output_is_retried_once_with_the_error() -> None:
    server = ScriptedLLM(["not json at all", _out(_cand("ADD", None))])
    decisions = LLMDistiller(OpenAILLM(server.client, model="m")).distill(Episode(input="q"), [])
    assert len(server.requests) == 2
    assert "not valid for the required schema" in server.requests[1].messages[-1]["content"]
    assert decisions[0].action is Action.ADD


def test_twice_unusable_output_raises_with_raw_text() -> None:
    server = ScriptedLLM(['{"candidates": "I cannot do that"}'])
    with pytest.raises(LLMOutputError) as info:
        LLMDistiller(OpenAILLM(server.client, model="m")).distill(Episode(input="q"), [])
    assert "I cannot do that" in info.value.raw
    assert len(server.requests) == 2


def test_schema_is_built_per_call_with_only_the_listed_handles() -> None:
    server = ScriptedLLM([_out(_cand("ADD", None)), _out(_cand("NOOP", 2, ""))])
    distiller = LLMDistiller(OpenAILLM(server.client, model="m"))
    distiller.distill(Episode(input="q"), [])
    distiller.distill(Episode(input="q"), _existing())
    empty, listed = (r.body["response_format"]["json_schema"]["schema"] for r in server.requests)
    (lesson,) = empty["$defs"].values()
    assert set(lesson["properties"]) == {"kind", "content", "applicability"}, "no handles: only ADD is possible"
    (lesson,) = listed["$defs"].values()
    target = lesson["properties"]["target"]["anyOf"]
    assert {"enum": [1, 2], "type": "integer"} in target and {"type": "null"} in target
    assert "EXISTING EXPERIENCES" not in server.requests[0].prompt_text
    assert "[2] (pitfall) Timeouts at 5s." in server.requests[1].prompt_text


@pytest.mark.parametrize(
    ("action", "target", "listed"),
    [("UPDATE", None, True), ("SUPERSEDE", 7, True), ("UPDATE", 1, False), ("NOOP", "[9]", True)],
)
def test_a_good_lesson_with_bad_bookkeeping_is_repaired_to_add_in_one_call(
    action: str, target: object, listed: bool
) -> None:
    # What Qwen2.5-1.5B really answered for the discount episode with an empty store: UPDATE, target null.
    lesson = "To find the original price, divide the discounted price by (1 - discount)."
    server = ScriptedLLM([_out(_cand(action, target, lesson))])  # type: ignore[arg-type]
    (decision,) = LLMDistiller(OpenAILLM(server.client, model="m")).distill(
        Episode(input="q"), _existing() if listed else []
    )
    assert len(server.requests) == 1, "a repairable output costs no corrective retry"
    assert decision.action is Action.ADD and decision.target_id is None and decision.content == lesson
    assert decision.repaired and "-> ADD" in decision.repaired[0]


def test_unknown_kind_and_overlong_content_are_repaired_not_discarded() -> None:
    long = "Check the rates tool before converting currencies. " * 30
    server = ScriptedLLM([_out({"kind": "Tip", "content": long, "applicability": "currency questions"})])
    (decision,) = LLMDistiller(OpenAILLM(server.client, model="m")).distill(Episode(input="q"), [])
    assert decision.kind is not None and decision.kind.value == "strategy"
    assert decision.content is not None and len(decision.content) <= 800 and decision.content.endswith(".")
    assert any("kind" in note for note in decision.repaired)


def test_a_malformed_candidate_is_dropped_when_another_is_usable() -> None:
    server = ScriptedLLM([_out({"kind": "fact"}, _cand("ADD", None, "Port 1194/udp is the VPN port."), "junk")])
    decisions = LLMDistiller(OpenAILLM(server.client, model="m")).distill(Episode(input="q"), [])
    assert [d.content for d in decisions] == ["Port 1194/udp is the VPN port."]
    assert len(server.requests) == 1


def test_served_experiences_are_marked_in_the_prompt() -> None:
    server = ScriptedLLM([_out()])
    existing = _existing()
    LLMDistiller(OpenAILLM(server.client, model="m")).distill(Episode(input="q"), existing, served={existing[0][0].id})
    assert "[1] (served) (fact) The v1 API is current." in server.requests[0].prompt_text
    assert "[2] (pitfall)" in server.requests[0].prompt_text


def test_distill_calls_are_bounded_in_output_tokens() -> None:
    server = ScriptedLLM([_out()])
    LLMDistiller(OpenAILLM(server.client, model="m", max_tokens=300)).distill(Episode(input="q"), [])
    assert server.requests[0].body["max_tokens"] == 300


def test_transient_errors_are_retried_by_the_client() -> None:
    server = ScriptedLLM([429, 503, _out()], max_retries=3)
    assert LLMDistiller(OpenAILLM(server.client, model="m")).distill(Episode(input="q"), []) == []
    assert len(server.requests) == 3


def test_timeouts_are_retried_by_the_client() -> None:
    import importlib

    import openai

    http = importlib.import_module(openai.DefaultHttpxClient.__mro__[1].__module__.split(".")[0])
    server = ScriptedLLM([http.ConnectTimeout("scripted timeout"), _out()], max_retries=2)
    assert LLMDistiller(OpenAILLM(server.client, model="m")).distill(Episode(input="q"), []) == []
    assert len(server.requests) == 2


def test_persistent_server_failure_is_an_llm_error() -> None:
    server = ScriptedLLM([500], max_retries=1)
    with pytest.raises(LLMError, match="failed after the client's retries"):
        OpenAILLM(server.client, model="m").generate("s", "u", _Schema)


def test_server_without_json_schema_steps_down_to_json_mode_then_prompt() -> None:
    def reply(req):  # type: ignore[no-untyped-def]
        fmt = req.body.get("response_format")
        if fmt and fmt["type"] == "json_schema":
            return (400, "response_format of type json_schema is not supported")
        if fmt:
            return (422, "response_format json_object is not supported by this server")
        return json.dumps({"answer": "ok"})

    server = ScriptedLLM(reply, max_retries=0)
    llm = OpenAILLM(server.client, model="m")
    assert llm.generate("s", "u", _Schema).answer == "ok"
    kinds = [(r.body.get("response_format") or {}).get("type") for r in server.requests]
    assert kinds == ["json_schema", "json_object", None]
    assert "JSON schema" in server.requests[-1].messages[0]["content"]
    llm.generate("s", "u", _Schema)
    assert (server.requests[-1].body.get("response_format") or {}).get("type") is None, "remembered"


def test_llama_cpp_style_500_for_json_schema_uses_json_mode_with_the_schema() -> None:
    def llama_cpp(req):  # type: ignore[no-untyped-def]
        fmt = req.body.get("response_format", {})
        if fmt.get("type") == "json_schema":  # what llama-cpp-python 0.3 answers, verbatim in substance
            return (
                500,
                "1 validation error: ('body', 'response_format', 'type') Input should be 'text' or 'json_object'",
            )
        assert fmt == {"type": "json_object", "schema": fmt["schema"]} and "answer" in fmt["schema"]["properties"]
        return json.dumps({"answer": "ok"})

    server = ScriptedLLM(llama_cpp, max_retries=0)
    assert OpenAILLM(server.client, model="m").generate("s", "u", _Schema).answer == "ok"
    assert len(server.requests) == 2


def test_a_400_about_the_request_does_not_switch_structured_output_off() -> None:
    def reply(req):  # type: ignore[no-untyped-def]
        if len(req.prompt_text) > 1000:
            return (400, "This model's maximum context length is 2048 tokens; your messages resulted in 4100")
        return json.dumps({"answer": "ok"})

    server = ScriptedLLM(reply, max_retries=0)
    llm = OpenAILLM(server.client, model="m")
    with pytest.raises(LLMError, match="maximum context length"):
        llm.generate("s", "u" * 2000, _Schema)
    assert llm.generate("s", "short", _Schema).answer == "ok"
    assert server.requests[-1].body["response_format"]["type"] == "json_schema", "still structured"


# -- with a verdict: the verbatim lesson is the floor, the model adds the rule ---------------------------------


def _rule(rule: str, *applies: str) -> str:
    return json.dumps({"rule": rule, "applies_to": list(applies)})


_DATE = Episode(
    input="Write the date March 5, 2025 for the release note.",
    output="March 5, 2025",
    outcome=Outcome(score=-1, correction="2025-03-05"),
)


def test_a_correction_keeps_its_verbatim_lesson_and_adds_the_replayed_rule() -> None:
    server = ScriptedLLM(
        [_rule("Write every date as YYYY-MM-DD.", "Date for the changelog?"), json.dumps({"answer": "2025-03-05"})]
    )
    decisions = LLMDistiller(OpenAILLM(server.client, model="m")).distill(_DATE, [])
    verbatim, rule = decisions
    assert verbatim.content is not None and "2025-03-05" in verbatim.content
    assert rule.action is Action.ADD and rule.content == (
        "Write every date as YYYY-MM-DD. Example: “Write the date March 5, 2025 for the release note.” → 2025-03-05"
    )
    assert rule.applicability == "Date for the changelog?"
    replay = server.requests[1]
    assert "Write every date as YYYY-MM-DD." in replay.prompt_text and "2025-03-05" not in replay.prompt_text


def test_a_request_worded_like_one_of_the_rules_phrasings_finds_it_by_that_key() -> None:
    from expscale_core.testing import HashEmbedder, make_engine

    phrasing = "Which date goes in the changelog header?"
    server = ScriptedLLM([_rule("Write every date as YYYY-MM-DD.", phrasing), json.dumps({"answer": "2025-03-05"})])
    engine = make_engine(llm=OpenAILLM(server.client, model="m"), embedder=HashEmbedder(256))
    try:
        engine.record(_DATE)
        assert engine.drain(timeout=10)
        (rule,) = [e for e, _ in engine.store.scan() if e.content.startswith("Write every date")]
        emb = HashEmbedder(256)
        blend = sum(a * b for a, b in zip(*emb.embed([rule.embedding_text(), phrasing])))
        assert blend < 0.8, "the blended vector alone would rank it far below a perfect match"
        hits = {h.experience.id: h.similarity for h in engine.retrieve(phrasing, k=5, min_score=0.0)}
        assert hits[rule.id] == pytest.approx(1.0, abs=1e-5)
    finally:
        engine.close()


_TICKET = Episode(
    input="What is the ticket name for incident 42?",
    output="INC-042",
    outcome=Outcome(score=-1, correction="INC-00042"),
)


@pytest.mark.parametrize(
    ("episode", "reply", "why"),
    [
        (_DATE, _rule("Cut boards to length in millimetres, rounded down."), "instructions"),  # the prompt's example
        (_TICKET, _rule("Name incident tickets like INC-042."), "wrong answer"),  # the labelled wrong answer
        (_DATE, _rule("Write 2025-03-05 on the note."), "this one case"),  # the instance, not a rule
        (_TICKET, _rule("Pad incident numbers to 5 digits, as in INC-31337."), "neither the request"),  # invented
    ],
)
def test_a_rule_that_fails_a_guard_gets_one_retry_then_the_verbatim_lesson_stands_alone(
    episode: Episode, reply: str, why: str
) -> None:
    server = ScriptedLLM([reply])
    decisions = LLMDistiller(OpenAILLM(server.client, model="m")).distill(episode, [])
    assert len(server.requests) == 2, "one corrective retry, no replay"
    assert why in server.requests[1].messages[-1]["content"]
    (verbatim,) = decisions
    assert verbatim.content is not None and episode.outcome is not None
    assert episode.outcome.correction in verbatim.content


def test_a_rule_that_does_not_reproduce_the_correction_is_not_admitted() -> None:
    server = ScriptedLLM([_rule("Write dates in words, month first."), json.dumps({"answer": "March 5th, 2025"})])
    decisions = LLMDistiller(OpenAILLM(server.client, model="m")).distill(_DATE, [])
    assert len(decisions) == 1 and len(server.requests) == 2


def test_a_repeated_rule_adds_its_example_and_keeps_the_stored_wording() -> None:
    stored = Experience(
        kind="strategy",
        content="Write every date as YYYY-MM-DD. Example: “Date for 9 January 2027?” → 2027-01-09",
        applicability="Date for the changelog?",
    )
    server = ScriptedLLM([_rule("Always write every date as YYYY-MM-DD.", "Invoice date?"), '{"answer": "2025-03-05"}'])
    decisions = LLMDistiller(OpenAILLM(server.client, model="m")).distill(_DATE, [(stored, 0.8)])
    update = decisions[-1]
    assert update.action is Action.UPDATE and update.target_id == stored.id
    assert update.content == (
        "Write every date as YYYY-MM-DD. Examples: “Date for 9 January 2027?” → 2027-01-09; "
        "“Write the date March 5, 2025 for the release note.” → 2025-03-05"
    )
    assert update.applicability == "Date for the changelog?; Invoice date?"
    assert update.phrasings == ("Date for the changelog?", "Invoice date?")  # each a retrieval key
    # The same episode again (a retry) adds nothing.
    again = stored.model_copy(update={"content": update.content})
    server = ScriptedLLM([_rule("Write every date as YYYY-MM-DD."), '{"answer": "2025-03-05"}'])
    decisions = LLMDistiller(OpenAILLM(server.client, model="m")).distill(_DATE, [(again, 0.8)])
    assert decisions[-1].action is Action.NOOP and decisions[-1].target_id == stored.id


def test_a_confirmed_answer_costs_one_call_even_when_its_rule_is_rejected() -> None:
    server = ScriptedLLM([_rule("Cut boards to length in millimetres, rounded down.")])
    ok = Episode(input="Ticket name for incident 42?", output="INC-00042", outcome=Outcome(score=1))
    decisions = LLMDistiller(OpenAILLM(server.client, model="m")).distill(ok, [])
    assert len(server.requests) == 1 and len(decisions) == 1  # no retry, no replay: the verbatim lesson
