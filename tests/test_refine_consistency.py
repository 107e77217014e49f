"""Refinement that survives interruption, isolates tenants, and only compares what changed."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import numpy as np
from expscale_core import Experience, ExperienceStatus, Scope
from expscale_core.episode import utcnow
from expscale_core.refine.refiner import dirty_pairs, similar_pairs
from expscale_core.settings import RefineSettings
from expscale_core.store.edge import EdgeExperienceStore
from expscale_core.testing import HashEmbedder, make_engine

EMB = HashEmbedder()


def _seed(engine, *exps: Experience) -> None:  # type: ignore[no-untyped-def]
    engine.store.upsert([(e, EMB.embed([e.embedding_text()])[0]) for e in exps])


def test_an_interrupted_merge_is_repaired_without_double_counting() -> None:
    # What a kill -9 between "write the merged record" and "retire its parents" leaves behind.
    a = Experience(kind="fact", content="Invoices are due in 30 days.", support=3, helpful=2)
    b = Experience(kind="fact", content="Invoices are due within 30 days.", support=2, helpful=1)
    keeper = a.model_copy(
        update={
            "support": 5,
            "helpful": 3,
            "provenance": a.provenance.model_copy(update={"merge_parents": [b.id]}),
        }
    )
    with make_engine() as engine:
        _seed(engine, keeper, b)
        report = engine.refine()
        active = [e for e, _ in engine.store.scan(statuses=[ExperienceStatus.ACTIVE])]
        assert [e.id for e in active] == [a.id] and report.repaired == 1
        assert active[0].support == 5 and active[0].helpful == 3, "statistics are not added twice"
        (old,) = engine.store.get([b.id])
        assert old[0].status is ExperienceStatus.SUPERSEDED and old[0].superseded_by == a.id
        again = engine.refine()
        assert again.repaired == 0 and engine.store.get([a.id])[0][0].support == 5


def test_one_tenants_volume_never_archives_another_tenants_experiences() -> None:
    with make_engine(refine=RefineSettings(every_n_experiences=None, max_experiences=3)) as engine:
        small = [
            Experience(kind="fact", content=f"tenant A fact number {i}", scope=Scope(tenant="a")) for i in range(2)
        ]
        big = [Experience(kind="fact", content=f"bulk B record {i} " * 3, scope=Scope(tenant="b")) for i in range(20)]
        _seed(engine, *small, *big)
        engine.refine()
        assert engine.store.count(scope=Scope(tenant="a"), statuses=[ExperienceStatus.ACTIVE]) == 2
        assert engine.store.count(scope=Scope(tenant="b"), statuses=[ExperienceStatus.ACTIVE]) == 3
    with make_engine(refine=RefineSettings(every_n_experiences=None, max_experiences_total=10)) as engine:
        _seed(engine, *small, *big)
        engine.refine()
        assert engine.store.count(statuses=[ExperienceStatus.ACTIVE]) == 10


def test_dirty_pairs_finds_exactly_the_pairs_touching_changed_rows() -> None:
    rng = np.random.default_rng(1)
    v = rng.standard_normal((60, 8)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    dirty = [3, 10, 11, 40]
    want = {(i, j) for _, i, j in similar_pairs(v, 0.2) if i in dirty or j in dirty}
    got = [(i, j) for _, i, j in dirty_pairs(v, dirty, 0.2, chunk=3)]
    assert sorted(got) == sorted(want) and len(got) == len(set(got))


def test_later_runs_only_compare_what_changed_since_the_last_one() -> None:
    with make_engine() as engine:
        old = utcnow() - timedelta(days=3)
        twins = [Experience(kind="fact", content="The VPN port is 1194.", updated_at=old) for _ in range(2)]
        _seed(engine, *twins)
        engine.queue.set_meta("refined_at", (old + timedelta(hours=1)).isoformat())
        assert engine.refine().merged == 0, "both were there at the last run: not compared again"
        _seed(engine, Experience(kind="fact", content="The VPN port is 1194."))
        assert engine.refine().merged == 2, "the new record is compared with the old ones"


class _PausingStore:
    """The engine's real store, except that the first ``get`` on the paused thread waits for ``resume``:
    the window between a credit flush reading records and writing them back."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.paused_thread: int | None = None
        self.reading = threading.Event()
        self.resume = threading.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def get(self, *args: Any, **kwargs: Any) -> Any:
        got = self.inner.get(*args, **kwargs)
        if threading.get_ident() == self.paused_thread:
            self.paused_thread = None
            self.reading.set()
            self.resume.wait(10)
        return got


def test_a_credit_flush_never_writes_back_what_a_refine_merged_away() -> None:
    store = _PausingStore(EdgeExperienceStore.temporary())
    weak = Experience(kind="fact", content="Invoices are sent on the first day of each month.", support=1)
    strong = Experience(kind="fact", content="Invoices are sent on the first day of each month!", support=3)
    refine = RefineSettings(every_n_experiences=None, every_s=None, duplicate_threshold=0.95)
    with make_engine(store=store, refine=refine, autostart=False) as engine:  # type: ignore[arg-type]
        _seed(engine, weak, strong)
        assert len(engine.retrieve("when are invoices sent?")) == 2  # usage counts the flush will write

        def flush() -> None:
            store.paused_thread = threading.get_ident()
            engine.run_pending()

        flusher = threading.Thread(target=flush)
        flusher.start()
        assert store.reading.wait(10), "the flush never read the served records"
        refiner = threading.Thread(target=engine.refine)
        refiner.start()
        refiner.join(0.5)  # a refine that does not wait for the flush finishes here and is then undone
        store.resume.set()
        flusher.join(10)
        refiner.join(10)
        statuses = {e.id: e.status for e, _ in engine.store.get([weak.id, strong.id])}
        assert statuses == {strong.id: ExperienceStatus.ACTIVE, weak.id: ExperienceStatus.SUPERSEDED}
        (kept, _), (gone, _) = engine.store.get([strong.id, weak.id])
        assert kept.times_retrieved >= 1 and gone.superseded_by == strong.id
