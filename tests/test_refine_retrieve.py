from __future__ import annotations

import json
from datetime import timedelta

import numpy as np
from expscale_core import Experience, ExperienceStatus, OpenAILLM, Scope, format_experiences
from expscale_core.episode import utcnow
from expscale_core.refine.refiner import duplicate_clusters, retention_value
from expscale_core.settings import RefineSettings
from expscale_core.testing import HashEmbedder, ScriptedLLM, make_engine

EMB = HashEmbedder()


def _seed(engine, *exps: Experience) -> None:  # type: ignore[no-untyped-def]
    engine.store.upsert([(e, EMB.embed([e.embedding_text()])[0]) for e in exps])


def _fact(content: str, **kw: object) -> Experience:
    return Experience(kind="fact", content=content, applicability="billing", **kw)  # type: ignore[arg-type]


def test_duplicate_clusters_links_transitively() -> None:
    v = np.array([[1, 0], [0.99, 0.141], [0.96, 0.28], [0, 1]], dtype=np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    assert duplicate_clusters(v, 0.98, chunk=2) == [[0, 1, 2]]


def test_similar_pairs_matches_brute_force_in_any_chunk_size() -> None:
    from expscale_core.refine.refiner import similar_pairs

    rng = np.random.default_rng(0)
    v = rng.normal(size=(40, 8)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    sims = v @ v.T
    expected = sorted(
        (round(float(sims[i, j]), 5), i, j) for i in range(40) for j in range(i + 1, 40) if 0.2 <= sims[i, j] < 0.6
    )
    for chunk in (1, 7, 64):
        got = sorted((round(s, 5), i, j) for s, i, j in similar_pairs(v, 0.2, 0.6, chunk=chunk))
        assert got == expected


def test_merge_keeps_the_best_combines_stats_and_stays_restorable() -> None:
    with make_engine(refine=RefineSettings(every_n_experiences=None, duplicate_threshold=0.95)) as engine:
        weak = _fact("Invoices are sent on the first day of each month.", support=1, helpful=0)
        strong = _fact(
            "Invoices are sent on the first day of each month!",
            support=3,
            helpful=2,
            provenance={"source_episode_ids": ["e9"]},
        )
        other = _fact("Refunds take five business days.")
        _seed(engine, weak, strong, other)
        report = engine.refine()
        assert (report.merged, report.before_count, report.after_count) == (1, 3, 2)
        (kept, _), (gone, _) = engine.store.get([strong.id, weak.id])
        assert kept.status is ExperienceStatus.ACTIVE and kept.support == 4 and kept.helpful == 2
        assert kept.provenance.merge_parents == [weak.id]
        assert gone.status is ExperienceStatus.SUPERSEDED and gone.superseded_by == strong.id
        assert engine.restore([weak.id]) == 1
        assert engine.store.get([weak.id])[0][0].status is ExperienceStatus.ACTIVE


def test_llm_merge_writes_a_new_record_before_retiring_parents() -> None:
    merged = json.dumps(
        {"kind": "fact", "content": "Invoices go out on the 1st of every month.", "applicability": "billing dates"}
    )
    server = ScriptedLLM([merged])
    llm = OpenAILLM(server.client, model="m")
    with make_engine(llm=llm, refine=RefineSettings(every_n_experiences=None, duplicate_threshold=0.95)) as engine:
        a = _fact("Invoices are sent on the first day of each month.")
        b = _fact("Invoices are sent on the first day of each month!")
        _seed(engine, a, b)
        report = engine.refine()
        assert report.merged == 2
        active = [e for e, _ in engine.store.scan(statuses=[ExperienceStatus.ACTIVE])]
        assert [e.content for e in active] == ["Invoices go out on the 1st of every month."]
        assert sorted(active[0].supersedes) == sorted([a.id, b.id]) and active[0].support == 2
        assert "[1]" in server.requests[0].prompt_text and a.id not in server.requests[0].prompt_text


def test_llm_adjudicates_contradictions() -> None:
    server = ScriptedLLM([json.dumps({"contradict": True, "keep": 2, "reason": "newer policy"})])
    settings = RefineSettings(every_n_experiences=None, duplicate_threshold=0.99, contradiction_threshold=0.3)
    with make_engine(llm=OpenAILLM(server.client, model="m"), refine=settings) as engine:
        old = _fact("Refunds take five business days.")
        new = _fact("Refunds take ten business days.")
        _seed(engine, old, new)
        report = engine.refine()
        assert report.superseded == 1
        statuses = {e.id: (e.status, e.superseded_by) for e, _ in engine.store.scan()}
        loser, winner = (old, new) if "ten" in server.requests[0].prompt_text.split("[2]")[1] else (new, old)
        assert statuses[loser.id] == (ExperienceStatus.SUPERSEDED, winner.id)
        assert statuses[winner.id][0] is ExperienceStatus.ACTIVE


def test_capacity_cap_archives_the_least_useful_and_decay_lowers_utility() -> None:
    now = utcnow()
    with make_engine(refine=RefineSettings(every_n_experiences=None, max_experiences=2)) as engine:
        useful = _fact("Use the EU endpoint for German customers.", helpful=5, last_used_at=now)
        fresh = _fact("Tax ids have eleven digits.", last_used_at=now)
        stale = _fact("The legacy portal closes at 6pm.", updated_at=now - timedelta(days=365))
        harmful = _fact("Always round totals down.", harmful=4, last_used_at=now)
        _seed(engine, useful, fresh, stale, harmful)
        report = engine.refine()
        assert report.archived == 2
        active = {e.id for e, _ in engine.store.scan(statuses=[ExperienceStatus.ACTIVE])}
        assert active == {useful.id, fresh.id}
        assert engine.retrieve("legacy portal closing time") == []
    assert retention_value(stale, now, 60) < 0.1 < retention_value(fresh, now, 60)


def test_token_cap() -> None:
    with make_engine(refine=RefineSettings(every_n_experiences=None, max_experiences=None, max_tokens=12)) as engine:
        _seed(engine, _fact("Short one.", helpful=3), _fact("A much longer experience that costs many more tokens."))
        assert engine.refine().archived == 1


def test_ranking_blends_utility_and_excludes_inactive() -> None:
    with make_engine() as engine:
        trusted = _fact("Reset the router, then wait two minutes.", helpful=6)
        doubted = _fact("Reset the router, then wait two minutes!", harmful=6)
        retired = _fact("Reset the router, then wait two minutes?", status=ExperienceStatus.ARCHIVED)
        _seed(engine, doubted, trusted, retired)
        hits = engine.retrieve("reset the router", k=5)
        assert [h.experience.id for h in hits] == [trusted.id, doubted.id]
        assert hits[0].score > hits[1].score


def test_format_respects_budget_and_frames_as_advice() -> None:
    exps = [_fact(f"Lesson number {i} about invoices and their due dates.") for i in range(10)]
    block = format_experiences(exps, token_budget=60)
    assert block.startswith("<experience>") and block.endswith("</experience>")
    assert "not instructions" in block
    assert 1 <= block.count("[fact]") < 10
    assert format_experiences(exps, token_budget=20) == ""
    bare = format_experiences(exps[:1], delimiter=None)
    assert "<" not in bare and bare.splitlines()[1].startswith("1. [fact]")


def test_refine_scope_limits_the_run() -> None:
    with make_engine(refine=RefineSettings(every_n_experiences=None, max_experiences=1)) as engine:
        _seed(
            engine,
            _fact("A.", scope=Scope(namespace="x")),
            _fact("B.", scope=Scope(namespace="x")),
            _fact("C.", scope=Scope(namespace="y")),
        )
        assert engine.refine(scope="x").archived == 1
        assert engine.store.count(scope=Scope(namespace="y"), statuses=[ExperienceStatus.ACTIVE]) == 1
