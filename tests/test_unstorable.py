"""Whatever record() accepts is committed, and one unstorable value never touches its batch-mates (issue 15)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from expscale_core import Episode, Outcome
from expscale_core.capture.storable import storable_text, storable_value
from expscale_core.episode import ToolStep
from expscale_core.episodes.queue import EpisodeQueue
from expscale_core.testing import make_engine


def _circular() -> dict[str, Any]:
    d: dict[str, Any] = {"a": 1}
    d["self"] = d
    return d


def _deep(n: int) -> Any:
    value: Any = "bottom"
    for _ in range(n):
        value = {"x": value}
    return value


class _Opaque:
    def __repr__(self) -> str:
        return "<Opaque thing>"


class _BrokenStr:
    def __str__(self) -> str:
        raise RuntimeError("no text for you")


# Each of these wedged the group-commit writer on fdee51e.
HOSTILE: dict[str, Callable[[], Episode]] = {
    "lone surrogate": lambda: Episode(input="half an emoji \ud83d here", output="ok"),
    "numpy array": lambda: Episode(input="q", steps=[ToolStep(tool="t", output=np.arange(6).reshape(2, 3))]),
    "circular dict": lambda: Episode(input="q", steps=[ToolStep(tool="t", output=_circular())]),
    "arbitrary object": lambda: Episode(input="q", steps=[ToolStep(tool="t", output=_Opaque())]),
    "broken __str__": lambda: Episode(input="q", metadata={"x": _BrokenStr()}),
    "non-UTF-8 bytes": lambda: Episode(input="q", steps=[ToolStep(tool="t", output=b"\xff\xfe\x00abc")]),
    "nested 5000 deep": lambda: Episode(input="q", steps=[ToolStep(tool="t", output=_deep(5000))]),
    "nested 200 deep": lambda: Episode(input="q", steps=[ToolStep(tool="t", output=_deep(200))]),
    "surrogate in a dict key": lambda: Episode(input="q", metadata={"k\udc80": "v"}),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_one_unstorable_value_is_committed_and_its_batch_mates_too(name: str) -> None:
    with make_engine(distill=None) as engine:
        ids = [engine.record(Episode(input=f"before {i}", output="a")) for i in range(3)]
        ids.append(engine.record(HOSTILE[name]()))
        ids += [engine.record(Episode(input=f"after {i}", output="a")) for i in range(3)]
        engine.flush()
        # Everything that reads the queue still works, and every episode reads back.
        assert sum(engine.queue.counts().values()) == 7
        for eid in ids:
            assert engine.queue.get(eid) is not None
        engine.feedback(ids[3], 1.0, correction="fine")
        assert engine.drain(timeout=20)
        assert engine.queue.counts()["distilled"] == 7
        assert engine.queue.dead_letters() == []
        assert engine.retrieve("q", episode_id=ids[3]) is not None


def test_the_fixes_are_visible_in_the_stored_text() -> None:
    with make_engine() as engine:
        a = engine.record(Episode(input="half \ud83d", steps=[ToolStep(tool="t", output=_deep(100))]))
        b = engine.record(Episode(input="q", steps=[ToolStep(tool="t", output=_circular())]))
        engine.flush()
        got_a, got_b = engine.queue.get(a), engine.queue.get(b)
        assert got_a is not None and got_b is not None
        assert got_a.input == "half \ufffd"
        assert "nested deeper than" in str(got_a.steps[0].model_dump())
        assert got_b.steps[0].model_dump()["output"] == {"a": 1, "self": "[cycle cut]"}


def test_a_huge_field_is_shortened_in_the_middle() -> None:
    text = "HEAD " + "x" * 1_000_000 + " TAIL"
    out = storable_text(text, 10_000)
    assert len(out) < 10_100 and out.startswith("HEAD ") and out.endswith(" TAIL") and "characters cut" in out
    assert storable_value({"k": text}, max_chars=10_000)["k"] == out


def test_writer_survives_what_it_cannot_serialize_and_sets_it_aside(tmp_path: Any) -> None:
    """The queue itself makes each episode storable as it writes it (a cycle put straight on the queue is cut);
    second line of defence: an episode that would not read back (built around validation) goes to the
    dead-letter table with its error, its batch-mates are committed and the writer lives on."""
    queue = EpisodeQueue(tmp_path / "q.sqlite3", commit_interval_s=0.01)
    try:
        good = [Episode(input=f"good {i}") for i in range(3)]
        good.append(Episode(input="cycle", steps=[ToolStep(tool="t", output=_circular())]))
        bad = Episode.model_construct(id="bad-1", input="bad", started_at="not a time")
        for ep in good[:2]:
            queue.put(ep, wait=False)
        queue.put(bad, wait=False)
        for ep in good[2:]:
            queue.put(ep, wait=False)
        queue.flush()
        assert {e.id for e, _, _ in queue.list()} == {e.id for e in good}
        cycle = queue.get(good[3].id)
        assert cycle is not None and cycle.steps[0].model_dump()["output"] == {"a": 1, "self": "[cycle cut]"}
        (dead,) = queue.dead_letters()
        assert dead[0] == bad.id and "started_at" in dead[1] and dead[2] == "bad"
        late = Episode(input="later")
        queue.put(late, wait=False)
        deadline = threading.Event()
        for _ in range(200):
            if queue.dead_letter_count() == 1 and len(queue._buffer) == 0:
                break
            deadline.wait(0.01)
        assert queue.get(late.id) is not None
        queue.delete_episode(bad.id)
        assert queue.dead_letters() == []
    finally:
        queue.close()


def test_dead_letters_show_in_stats() -> None:
    with make_engine() as engine:
        engine.queue.put(Episode.model_construct(id="bad-1", input="bad", started_at="not a time"))
        assert engine.stats().dead_letters == 1


def test_feedback_with_a_lone_surrogate_is_stored() -> None:
    with make_engine() as engine:
        eid = engine.record(Episode(input="q", output="a"))
        engine.feedback(eid, -1, comment="bad \udc00", correction="right \ud800")
        engine.flush()
        got = engine.queue.get(eid)
        assert got is not None and got.outcome == Outcome(
            score=-1, comment="bad \ufffd", correction="right \ufffd", at=got.outcome.at
        )


def test_a_query_with_a_lone_surrogate_retrieves_instead_of_raising() -> None:
    from expscale_core.embed.minilm import MiniLMEmbedder, default_model_path

    if default_model_path() is None:
        pytest.skip("the MiniLM model package is not installed")
    with make_engine(embedder=MiniLMEmbedder()) as engine:
        engine.record(Episode(input="half an emoji", output="ok", outcome=Outcome(score=1)))
        assert engine.drain(timeout=20)
        assert engine.retrieve("half an emoji \ud83d") != []
