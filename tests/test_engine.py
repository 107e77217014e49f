from __future__ import annotations

import json
import threading
from collections.abc import Collection, Sequence
from pathlib import Path

import pytest
from expscale_core import (
    Decision,
    Episode,
    Experience,
    ExperienceEngine,
    ExperienceStatus,
    ExpscaleSettings,
    Outcome,
    QdrantExperienceStore,
    RulesDistiller,
    Scope,
)
from expscale_core.settings import DistillSettings, RefineSettings
from expscale_core.testing import FlakyStore, ScriptedLLM, make_engine


class BlockingDistiller:
    """A distiller that waits for a signal and remembers which thread ran it."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.threads: list[str] = []
        self.inner = RulesDistiller()

    @property
    def name(self) -> str:
        return "blocking"

    @property
    def prompt_version(self) -> None:
        return None

    def distill(
        self, episode: Episode, similar: Sequence[tuple[Experience, float]], *, served: Collection[str] = ()
    ) -> list[Decision]:
        self.threads.append(threading.current_thread().name)
        self.release.wait(10)
        return self.inner.distill(episode, similar)


def test_distillation_runs_in_the_background_not_on_the_callers_thread() -> None:
    distiller = BlockingDistiller()
    with make_engine(distiller=distiller) as engine:
        engine.record(Episode(input="capital of Peru?", output="Lima", outcome=Outcome(score=1)))
        # record() returned although the distiller is still blocked
        assert engine.queue.outstanding() == 1
        distiller.release.set()
        assert engine.drain(timeout=10)
        assert distiller.threads == ["expscale-distiller"]
        assert engine.retrieve("capital of Peru")[0].experience.provenance.distiller == "blocking"


def test_feedback_credits_the_experiences_served_to_an_episode(engine: ExperienceEngine) -> None:
    engine.record(Episode(input="max upload size?", output="25 MB", outcome=Outcome(score=1)))
    engine.drain(timeout=10)
    served = engine.retrieve("what is the max upload size", episode_id="ep-2")
    assert served
    engine.feedback("ep-2", -1.0, "that limit changed")
    engine.drain(timeout=10)
    ((exp, _),) = engine.store.get([served[0].experience.id])
    assert (exp.helpful, exp.harmful, exp.times_retrieved) == (0, 1, 1)
    assert exp.last_used_at is not None


def test_late_feedback_with_a_correction_is_learned(engine: ExperienceEngine) -> None:
    eid = engine.record(Episode(input="Who wrote Dune?", output="Isaac Asimov"))
    engine.drain(timeout=10)
    assert engine.retrieve("author of Dune") == [], "an unjudged answer teaches nothing"
    engine.feedback(eid, False, correction="Frank Herbert")
    engine.drain(timeout=10)
    hits = engine.retrieve("who is the author of Dune?")
    assert hits and "Frank Herbert" in hits[0].experience.content
    assert hits[0].experience.provenance.source_episode_ids == [eid]


def test_newer_verified_answer_supersedes_the_old_one_with_history(engine: ExperienceEngine) -> None:
    engine.record(Episode(id="e1", input="office wifi password?", output="tulip42", outcome=Outcome(score=1)))
    engine.drain(timeout=10)
    engine.record(
        Episode(
            id="e2", input="office wifi password?", output="tulip42", outcome=Outcome(score=-1, correction="daisy7")
        )
    )
    engine.drain(timeout=10)
    hits = engine.retrieve("office wifi password")
    assert "daisy7" in hits[0].experience.content
    old = [e for e, _ in engine.store.scan(statuses=[ExperienceStatus.SUPERSEDED])]
    assert len(old) == 1 and "tulip42" in old[0].content
    assert old[0].superseded_by == hits[0].experience.id and hits[0].experience.supersedes == [old[0].id]


def test_store_outage_loses_nothing_and_the_episode_lands_later() -> None:
    store = FlakyStore(operations={"upsert", "insert_new", "write_if"})  # every write distillation makes
    with make_engine(store=store) as engine:  # type: ignore[arg-type]
        eid = engine.record(Episode(input="capital of Chile?", output="Santiago", outcome=Outcome(score=1)))
        assert engine.drain(timeout=1) is False, "the store is down: the episode waits"
        rows = {e.id: (err, attempts) for e, err, attempts in engine.queue.list()}
        assert "simulated outage" in (rows[eid][0] or "")
        assert rows[eid][1] <= 1, "an outage of the store does not use up the episode's attempts"
        assert engine.queue.counts()["failed"] == 0
        store.broken = False
        assert engine.drain(timeout=10)
        assert "Santiago" in engine.retrieve("capital of Chile")[0].experience.content


def test_unusable_llm_output_marks_the_episode_failed_with_raw_output() -> None:
    server = ScriptedLLM(["I think you should be nicer."])
    from expscale_core import OpenAILLM

    with make_engine(llm=OpenAILLM(server.client, model="m")) as engine:
        eid = engine.record(Episode(input="q", output="a"))  # no verdict: the model's lessons are all there is
        engine.drain(timeout=10)
        assert engine.queue.counts()["failed"] == 1
        assert engine.queue.raw_output(eid) == "I think you should be nicer."
        # With a verdict, the verbatim lesson is kept whatever the model says: nothing fails.
        engine.record(Episode(input="capital of Peru?", output="Lima", outcome=Outcome(score=1)))
        engine.drain(timeout=10)
        assert engine.queue.counts()["failed"] == 1
        assert "Lima" in engine.retrieve("capital of Peru?")[0].experience.content


def test_llm_distiller_end_to_end_records_provenance() -> None:
    from expscale_core import OpenAILLM

    reply = json.dumps(
        {
            "candidates": [
                {
                    "action": "ADD",
                    "target": None,
                    "kind": "pitfall",
                    "content": "Retry uploads over 25 MB in chunks.",
                    "applicability": "large uploads",
                }
            ]
        }
    )
    server = ScriptedLLM([reply])
    with make_engine(llm=OpenAILLM(server.client, model="tiny")) as engine:
        eid = engine.record(Episode(input="upload a 40 MB file", output="error", outcome=Outcome(score=-1)))
        engine.drain(timeout=10)
        exp = engine.retrieve("large uploads: retry in chunks")[0].experience
        assert exp.provenance.distiller == "llm:tiny"
        assert exp.provenance.prompt_version == "distill.v2+rule.v3"
        assert exp.provenance.source_episode_ids == [eid]
        assert engine.stats().llm_calls == 1


def test_episodes_survive_a_restart_before_distillation(tmp_path: Path) -> None:
    settings = ExpscaleSettings(data_dir=tmp_path, embedder={"provider": "hash"}, distill={"delay_s": 3600})
    with ExperienceEngine.from_settings(settings) as engine:
        engine.record(Episode(input="capital of Japan?", output="Tokyo", outcome=Outcome(score=1)))
        assert engine.stats().experiences["active"] == 0  # the capture delay holds it back
    with ExperienceEngine.from_settings(settings) as engine:
        assert engine.queue.outstanding() == 1
        assert engine.drain(timeout=10)
        assert "Tokyo" in engine.retrieve("what's the capital of Japan")[0].experience.content


def test_periodic_refine_triggers_after_n_new_experiences() -> None:
    refine = RefineSettings(every_n_experiences=2, every_s=None, duplicate_threshold=0.85)
    with make_engine(refine=refine) as engine:
        for i, verb in enumerate(["do", "can"]):
            engine.record(
                Episode(
                    id=f"e{i}",
                    input=f"how {verb} I reset my password?",
                    output="Settings > Reset",
                    outcome=Outcome(score=1),
                )
            )
            engine.drain(timeout=10)
        # two paraphrases taught the same thing: the periodic refine merged them
        assert engine.store.count(statuses=[ExperienceStatus.ACTIVE]) == 1
        assert engine.store.count(statuses=[ExperienceStatus.SUPERSEDED]) == 1
        assert engine.retrieve("reset password")[0].experience.support == 2


def test_scopes_isolate_and_share() -> None:
    it, sales = Scope(namespace="acme", agent="it"), Scope(namespace="acme", agent="sales")
    with make_engine() as engine:
        engine.record(Episode(input="vpn port?", output="1194", outcome=Outcome(score=1)), scope=it)
        engine.record(
            Episode(input="vpn port?", output="443", outcome=Outcome(score=1)), scope=Scope(namespace="globex")
        )
        engine.record(
            Episode(input="wifi password?", output="hunter2", outcome=Outcome(score=1, trusted=True)), scope=it
        )
        engine.drain(timeout=10)
        # An end user's lesson stays in the scope that taught it; a trusted one is shared with the namespace.
        assert "1194" in engine.retrieve("vpn port", scope=it)[0].experience.content
        assert engine.retrieve("vpn port", scope="acme") == engine.retrieve("vpn port", scope=sales) == []
        assert "443" in engine.retrieve("vpn port", scope="globex")[0].experience.content
        assert "hunter2" in engine.retrieve("wifi password", scope=sales)[0].experience.content
        assert "hunter2" in engine.retrieve("wifi password", scope="acme")[0].experience.content
        assert engine.retrieve("wifi password", scope="globex") == []  # never beyond the namespace


def test_delete_episode_removes_what_came_only_from_it(engine: ExperienceEngine) -> None:
    eid = engine.record(Episode(input="q1?", output="a1", outcome=Outcome(score=1)))
    engine.drain(timeout=10)
    assert engine.delete(episode_id=eid) == {"experiences": 1, "episodes": 1, "requeued": 0, "restored": 0}
    assert engine.store.count() == 0 and engine.queue.get(eid) is None


def test_bad_arguments_get_clear_errors(engine: ExperienceEngine) -> None:
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        engine.feedback("x", 5)
    with pytest.raises(TypeError, match="Episode"):
        engine.record({"input": "x"})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="k must be"):
        engine.retrieve("x", k=0)
    engine.close()
    with pytest.raises(RuntimeError, match="closed"):
        engine.record(Episode(input="x"))


def test_distill_settings_batch_and_drain_timeout() -> None:
    distiller = BlockingDistiller()
    with make_engine(distiller=distiller, distill=DistillSettings(delay_s=0, idle_s=0, batch_size=2)) as engine:
        for i in range(3):
            engine.record(Episode(input=f"q{i}", output="a", outcome=Outcome(score=1)))
        assert engine.drain(timeout=0.2) is False
        distiller.release.set()
        assert engine.drain(timeout=10) is True
        assert engine.queue.counts()["distilled"] == 3


def test_autostart_off_runs_nothing_in_the_background_until_asked() -> None:
    from expscale_core import EpisodeQueue
    from expscale_core.testing import HashEmbedder

    engine = ExperienceEngine(
        store=QdrantExperienceStore.open(location=":memory:"),
        embedder=HashEmbedder(),
        distiller=RulesDistiller(),
        queue=EpisodeQueue(":memory:"),
        autostart=False,
    )

    def distillers() -> set[threading.Thread]:  # other tests' engines may still be winding down
        return {t for t in threading.enumerate() if t.name == "expscale-distiller"}

    before = distillers()
    with engine:
        engine.record(Episode(input="capital of Peru?", output="Lima", outcome=Outcome(score=1)))
        assert distillers() <= before, "record() started a worker"
        assert engine.queue.outstanding() == 1
        assert engine.run_pending() == 1
        assert engine.queue.outstanding() == 0 and engine.store.count() == 1


def test_feedback_does_not_credit_loosely_related_serves() -> None:
    from expscale_core.settings import RetrieveSettings

    with make_engine(retrieve=RetrieveSettings(min_score=0.0, credit_min_similarity=0.5)) as engine:
        engine.record(Episode(input="max upload size?", output="25 MB", outcome=Outcome(score=1)))
        engine.record(Episode(input="who founded the company?", output="Ada", outcome=Outcome(score=1)))
        engine.drain(timeout=10)
        served = engine.retrieve("what is the max upload size", k=2, episode_id="ep")
        close, loose = sorted(served, key=lambda s: -s.similarity)
        assert close.similarity >= 0.5 > loose.similarity
        engine.feedback("ep", -1)
        engine.drain(timeout=10)
        stats = {e.id: (e.harmful, e.times_retrieved) for e, _ in engine.store.scan()}
        assert stats[close.experience.id] == (1, 1)
        assert stats[loose.experience.id] == (0, 1), "served, but the answer did not rely on it"
