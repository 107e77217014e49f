from __future__ import annotations

import threading

import pytest
from expscale_core import EpisodeQueue, EpisodeRecorder, ErrorStep, Message, Scope, ToolStep, redact_episode
from expscale_core.episode import Episode, EpisodeDraft, LLMStep, utcnow
from expscale_core.testing import make_engine


def test_nested_runs_join_their_root_and_finish_with_it() -> None:
    with make_engine() as engine:
        rec = EpisodeRecorder(engine, metadata={"app": "t"})
        rec.start("root", None, input="convert 5 km")
        rec.start("child", "root")
        rec.tool_start("tool", "child", "convert", {"km": 5})
        rec.tool_end("tool", "3.1 mi")
        rec.llm_start("llm", "child", [Message(role="user", content="convert 5 km")], model="m")
        rec.llm_end("llm", "3.1 miles", reasoning="5 * 0.62")
        assert rec.root_of("llm") == "root"
        assert rec.end("child", output="ignored") is None, "only the root finishes the episode"
        ep = rec.end("root", output="3.1 miles")
        assert ep is not None and ep.id == "root" and ep.metadata == {"app": "t"}
        assert [type(s) for s in ep.steps] == [ToolStep, LLMStep]
        assert engine.queue.get("root") is not None
        assert rec.root_of("llm") is None, "finished runs are forgotten"


def test_errors_close_pending_tool_steps() -> None:
    with make_engine() as engine:
        rec = EpisodeRecorder(engine)
        rec.start("r", None, input="x")
        rec.tool_start("t", "r", "search", "x")
        rec.error("t", TimeoutError("slow"))
        ep = rec.end("r", output=None)
        assert ep is not None
        tool, err = ep.steps
        assert isinstance(tool, ToolStep) and tool.error == "TimeoutError: slow"
        assert isinstance(err, ErrorStep) and err.error_type == "TimeoutError"


def test_unwritable_queue_holds_episodes_until_it_works_again() -> None:
    with make_engine() as engine:
        rec = EpisodeRecorder(engine)
        engine.queue.close()  # the disk "fails"
        rec.start("r1", None, input="a")
        rec.end("r1", output="b")  # must not raise
        assert rec.flush() == 1
        engine.queue = EpisodeQueue(":memory:")  # the disk is back
        assert rec.flush() == 0
        assert engine.queue.get("r1") is not None


def test_events_for_unknown_runs_are_ignored_not_raised() -> None:
    with make_engine() as engine:
        rec = EpisodeRecorder(engine)
        rec.tool_end("nope", "x")
        rec.llm_end("nope", "x")
        rec.error("nope", "boom")
        assert rec.end("nope") is None


def test_many_threads_build_separate_episodes() -> None:
    with make_engine() as engine:
        rec = EpisodeRecorder(engine)

        def run(i: int) -> None:
            rec.start(f"r{i}", None, input=f"q{i}")
            for j in range(20):
                rec.tool_start(f"r{i}-t{j}", f"r{i}", "t", j)
                rec.tool_end(f"r{i}-t{j}", j)
            rec.end(f"r{i}", output=f"a{i}")

        threads = [threading.Thread(target=run, args=(i,)) for i in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for i in range(16):
            ep = engine.queue.get(f"r{i}")
            assert ep is not None and ep.output == f"a{i}" and len(ep.steps) == 20
            assert [s.output for s in ep.steps] == list(range(20))  # type: ignore[union-attr]


def test_the_queue_validates_a_draft_as_it_stores_it_and_sets_aside_one_that_does_not_validate() -> None:
    """Capture hands the engine a draft; the writer validates it. A draft that cannot become an Episode is a dead
    letter with its error, and its batch-mates are stored."""
    with make_engine() as engine:
        rec = EpisodeRecorder(engine)
        rec.start("good", None, input="q")
        draft = rec.end("good", output="a")
        assert isinstance(draft, EpisodeDraft) and engine.queue.get("good") is not None
        broken = EpisodeDraft(
            id="broken",
            scope=engine.scope,
            input="q",
            output=None,
            steps=["not a step"],  # type: ignore[list-item]
            metadata={},
            started_at=utcnow(),
            ended_at=utcnow(),
        )
        assert engine.record(broken) == "broken"
        no_scope = EpisodeDraft(
            id="no-scope",
            scope="acme",  # type: ignore[arg-type]
            input="q",
            output=None,
            steps=[],
            metadata={},
            started_at=utcnow(),
            ended_at=utcnow(),
        )
        engine.record(no_scope)  # its dead letter cannot read a scope either, and must not fail the batch
        rec.start("after", None, input="q2")
        rec.end("after", output="b")
        engine.flush()
        assert engine.queue.get("after") is not None and engine.queue.get("broken") is None
        dead = {dead_id: (error, text) for dead_id, error, text in engine.queue.dead_letters()}
        assert dead.keys() == {"broken", "no-scope"}
        assert dead["broken"][1] == "q" and "steps" in dead["broken"][0] and "scope" in dead["no-scope"][0]


def test_a_draft_given_a_scope_or_redaction_is_validated_and_rewritten_on_the_callers_thread() -> None:
    with make_engine() as engine:
        rec = EpisodeRecorder(engine)
        rec.start("r1", None, input="mail bob@example.com")
        draft = rec.end("r1", output="ok")
        engine.record(draft, scope="acme")  # type: ignore[arg-type]
        engine.redact = lambda text: text.replace("bob@example.com", "[email]")
        rec.start("r2", None, input="mail bob@example.com")
        rec.end("r2", output="ok")
        engine.flush()
        scoped, redacted = engine.queue.get("r1"), engine.queue.get("r2")
        assert scoped is not None and scoped.scope.namespace == "acme"
        assert redacted is not None and redacted.input == "mail [email]"


def test_an_id_with_a_lone_surrogate_is_repaired_alike_in_a_draft_and_an_episode() -> None:
    now = utcnow()
    draft = EpisodeDraft(
        id="run-\ud800", scope=Scope(), input="q", output=None, steps=[], metadata={}, started_at=now, ended_at=now
    )
    assert draft.id == Episode(id="run-\ud800", input="q").id == draft.build().id == "run-\ufffd"


def test_recorder_metadata_keys_must_be_text() -> None:
    with make_engine() as engine, pytest.raises(TypeError, match="metadata"):
        EpisodeRecorder(engine, metadata={1: "x"})  # type: ignore[dict-item]


def test_redact_episode_keeps_ids_and_structure() -> None:
    ep = Episode(
        id="secret-id",
        input="my key is sk-123",
        output="ok sk-123",
        steps=[ToolStep(tool="t", input={"key": "sk-123"}, output="sk-123")],
    )
    clean = redact_episode(ep, lambda s: s.replace("sk-123", "[key]"))
    assert clean.id == "secret-id" and "sk-123" not in clean.model_dump_json()
    assert isinstance(clean.steps[0], ToolStep) and clean.steps[0].input == {"key": "[key]"}


def test_a_call_reported_twice_by_nested_wrappers_is_one_step() -> None:
    with make_engine() as engine:
        rec = EpisodeRecorder(engine)
        rec.start("r", None, input="q")
        msgs = [Message(role="user", content="q")]
        rec.llm_start("outer", "r", msgs)
        rec.llm_start("inner", "outer", msgs)
        rec.llm_end("inner", "a")
        rec.llm_end("outer", "a")
        rec.llm_start("again", "r", msgs)  # a later, separate call with the same prompt is its own step
        rec.llm_end("again", "b")
        ep = rec.end("r", output="b")
        assert ep is not None and [s.response for s in ep.steps] == ["a", "b"]  # type: ignore[union-attr]


def test_an_adapter_handing_over_objects_instead_of_text_still_gets_its_episode() -> None:
    class Response:  # what a framework's run may end with
        def __str__(self) -> str:
            return "Lima"

    with make_engine() as engine:
        rec = EpisodeRecorder(engine)
        rec.start("r1", None, input=42)  # type: ignore[arg-type]
        episode = rec.end("r1", output=Response())  # type: ignore[arg-type]
        assert episode is not None and (episode.input, episode.output) == ("42", "Lima")
        assert engine.drain(timeout=10)
        assert [e.output for e, _, _ in engine.queue.list()] == ["Lima"]

    class Broken:
        def __str__(self) -> str:
            raise RuntimeError("no text")

    with make_engine() as engine:
        rec = EpisodeRecorder(engine)
        rec.start("r2", None, input="q")
        episode = rec.end("r2", output=Broken())  # type: ignore[arg-type]
        assert episode is not None and episode.output == "<unprintable Broken>"
    rec = EpisodeRecorder(make_engine())
    rec.start(" ", None, input="a run without an id")
    assert rec.end(" ", output="x") is None and not rec.is_open(" ")  # no episode, and nothing raised
