"""Several engines on one store: one refiner at a time, through a lease held in the store itself.

Run against the engines available here (Qdrant Edge, qdrant-client local mode) and, with ``QDRANT_URL``, a server.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from expscale_core import Episode, Experience, ExperienceStatus, Outcome, RulesDistiller
from expscale_core.episode import utcnow
from expscale_core.episodes.queue import EpisodeQueue
from expscale_core.llm import OpenAILLM
from expscale_core.settings import RefineSettings
from expscale_core.store.base import ExperienceStore
from expscale_core.store.edge import EdgeExperienceStore
from expscale_core.store.qdrant import QdrantExperienceStore
from expscale_core.testing import HashEmbedder, RecordedRequest, ScriptedLLM, make_engine
from soak import MIX, Laggy, soak

_BACKENDS = ["edge", "qdrant-local", *(["qdrant-server"] if os.environ.get("QDRANT_URL") else [])]


@pytest.fixture(params=_BACKENDS)
def store(request: pytest.FixtureRequest) -> Iterator[ExperienceStore]:
    s: ExperienceStore
    if request.param == "edge":
        s = EdgeExperienceStore.temporary()
    elif request.param == "qdrant-local":
        s = QdrantExperienceStore.open(location=":memory:")
    else:
        s = QdrantExperienceStore.open(url=os.environ["QDRANT_URL"], collection=f"t-{uuid.uuid4().hex[:8]}")
    s.ensure_collection(HashEmbedder().dimension)
    yield s
    s.close()


def test_a_lease_is_taken_renewed_taken_over_after_expiry_and_released(store: ExperienceStore) -> None:
    assert store.acquire_lease("refine", "a", 1.0) == 1
    assert store.acquire_lease("refine", "b", 1.0) is None  # a holds it
    assert store.acquire_lease("refine", "a", 1.0) == 1  # a renewal keeps the epoch
    time.sleep(1.05)
    assert store.acquire_lease("refine", "b", 30) == 2  # ran out: taken over, the epoch grows
    assert store.acquire_lease("refine", "a", 30) is None  # a stalled holder cannot renew what it lost
    store.release_lease("refine", "a", 1)  # not a's any more: nothing happens
    assert store.acquire_lease("refine", "c", 30) is None
    store.release_lease("refine", "b", 2)
    assert store.acquire_lease("refine", "c", 30) == 3
    store.release_lease("refine", "c", 3)
    assert store.acquire_lease("refine", "c", 30) == 4  # a new tenure, a new fencing token
    assert store.acquire_lease("other", "a", 30) == 1  # leases are independent by name


def test_racing_holders_never_overlap_and_epochs_strictly_increase(store: ExperienceStore) -> None:
    held: list[tuple[float, float, int, str]] = []  # (from, to, epoch, holder) while a holder believed it held it
    record = threading.Lock()
    stop = time.monotonic() + 2.0

    def contend(holder: str) -> None:
        rng = random.Random(holder)
        while time.monotonic() < stop:
            epoch = store.acquire_lease("refine", holder, 0.2)
            if epoch is None:
                time.sleep(rng.uniform(0, 0.01))
                continue
            start = time.monotonic()
            time.sleep(rng.uniform(0, 0.02))
            # Renewed before "writing", as the refiner's fence does; a lost lease ends the turn.
            still = store.acquire_lease("refine", holder, 0.2) == epoch
            end = time.monotonic()
            if still:  # it held the lease from start to end (a stalled holder that lost it claims nothing)
                with record:
                    held.append((start, end, epoch, holder))
                store.release_lease("refine", holder, epoch)
            time.sleep(rng.uniform(0, 0.01))  # a refiner does not come straight back

    threads = [threading.Thread(target=contend, args=(f"engine-{i}",)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    held.sort()
    assert len({h for *_, h in held}) > 1, "the lease never changed hands"
    for (_, end, epoch, _), (start, _, next_epoch, _) in zip(held, held[1:]):
        assert end <= start, "two holders held the lease at once"
        assert next_epoch > epoch


def _twins(store: ExperienceStore) -> None:
    embedder = HashEmbedder()
    old = utcnow() - timedelta(days=1)
    twins = [
        Experience(kind="fact", content="Invoices are sent on the 1st.", created_at=old, updated_at=old),
        Experience(kind="fact", content="Invoices are sent on the 1st!", created_at=old, updated_at=old),
    ]
    store.upsert(list(zip(twins, embedder.embed([e.embedding_text() for e in twins]))))


def test_a_refiner_stalled_past_its_lease_writes_nothing_after_another_engine_took_over(
    store: ExperienceStore,
) -> None:
    _twins(store)
    settings = RefineSettings(every_n_experiences=None, duplicate_threshold=0.9, lease_s=1.0, induce_rules=False)
    stalled = threading.Event()

    def slow_merge(request: RecordedRequest) -> str:
        stalled.set()
        time.sleep(3.0)  # past the lease: the other engine takes over meanwhile
        return json.dumps({"kind": "fact", "content": "STALE MERGE", "applicability": "invoices"})

    server = ScriptedLLM(slow_merge)
    slow = make_engine(
        store=store, llm=OpenAILLM(server.client, model="m"), distiller=RulesDistiller(), refine=settings
    )
    other = make_engine(store=store, refine=settings)  # no LLM: merges by keeping the best twin
    reports = {}
    thread = threading.Thread(target=lambda: reports.setdefault("slow", slow.refine()))
    thread.start()
    assert stalled.wait(5)
    assert other.refine().skipped  # the slow engine still holds the lease
    time.sleep(1.2)
    reports["other"] = other.refine()
    thread.join(10)
    assert reports["other"].merged == 1 and not reports["other"].skipped
    assert reports["slow"].aborted and reports["slow"].merged == 0
    contents = [e.content for e, _ in store.scan()]
    assert "STALE MERGE" not in contents
    assert sorted(e.status.value for e, _ in store.scan()) == ["active", "superseded"]
    # The lease is free again: the next refine anywhere runs.
    assert not slow.refine().skipped
    other._worker.stop()  # the engines share the store: close it once, below
    slow._worker.stop()


def test_engines_on_one_store_take_turns_and_lose_nothing(store: ExperienceStore) -> None:
    _twins(store)
    settings = RefineSettings(every_n_experiences=None, duplicate_threshold=0.9, lease_s=5)
    engines = [make_engine(store=store, refine=settings) for _ in range(4)]
    reports = []
    lock = threading.Lock()

    def refine(engine: object) -> None:
        for _ in range(5):
            report = engine.refine()  # type: ignore[attr-defined]
            with lock:
                reports.append(report)

    threads = [threading.Thread(target=refine, args=(e,)) for e in engines]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(r.merged for r in reports) == 1  # one merge, by whoever got there first; no one redid it
    active = [e for e, _ in store.scan(statuses=[ExperienceStatus.ACTIVE])]
    assert len(active) == 1 and active[0].support == 2
    for e in engines:
        e._worker.stop()


def test_eight_engines_learning_the_same_lessons_write_one_record_each_and_lose_no_count(
    store: ExperienceStore,
) -> None:
    shared = Laggy(store)
    engines = [make_engine(store=shared, autostart=False) for _ in range(8)]  # type: ignore[arg-type]
    facts = [(f"What is the door code of site {i}?", f"{4000 + i}#") for i in range(5)]
    start = threading.Barrier(len(engines))

    def learn(engine: object) -> None:
        start.wait()
        for question, answer in facts:
            eid = engine.record(Episode(input=question, output="no idea"))  # type: ignore[attr-defined]
            engine.feedback(eid, -1, correction=answer)  # type: ignore[attr-defined]
        engine.run_pending()  # type: ignore[attr-defined]

    def use(engine: object) -> None:
        start.wait()
        for question, _ in facts:
            eid = uuid.uuid4().hex  # a run served the lesson and was rated; it taught nothing new
            assert engine.retrieve(question, k=1, episode_id=eid)  # type: ignore[attr-defined]
            engine.feedback(eid, 1)  # type: ignore[attr-defined]
        engine.run_pending()  # type: ignore[attr-defined]

    for phase in (learn, use):
        threads = [threading.Thread(target=phase, args=(e,)) for e in engines]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    for e in engines:  # what lost a race waits, with a short backoff, for a later background step
        assert e.drain(timeout=30)
    active = [e for e, _ in store.scan(statuses=[ExperienceStatus.ACTIVE])]
    assert len(active) == len(facts), [e.content for e in active]  # no duplicates of identical lessons
    learned = [e for e in active if "door code" in e.applicability]
    assert sorted(e.support for e in learned) == [8] * len(facts)  # every engine's episode counted once
    assert all(len(e.provenance.source_episode_ids) == 8 for e in learned)
    # Every serve and every rating reached the store: none overwritten by another engine's flush.
    assert sum(e.times_retrieved for e in active) == 8 * len(facts)
    assert sum(e.helpful for e in active) == 8 * len(facts)
    assert all(e.queue.counts()["failed"] == 0 for e in engines)
    for e in engines:
        e._worker.stop()
        e.queue.close()


def test_eight_engines_doing_everything_at_once_break_no_invariant(store: ExperienceStore) -> None:
    """Teaching identical and own lessons, serving and rating, deleting episodes and scopes, refining: all at
    once, with delays around store calls (``benchmarks/soak_sharing.py`` runs the same for minutes)."""
    report = soak(store, engines=8, seconds=4)
    assert report.violations() == dict.fromkeys(report.violations(), 0), report.errors[:5]
    assert report.ledger_merges == 0  # the lost-update check read every ledger record's own counts
    # The mix really ran: every writer path, and refines that both ran and were turned away by the lease.
    assert all(report.ops[op] > 0 for op in MIX)
    assert report.refines_run > 0 and report.refines_skipped > 0


class _InterleavedWrite:
    """The shared store, with another engine's write landing just before this refiner's first write."""

    def __init__(self, inner: ExperienceStore, other_write: object, on: str = "write_if") -> None:
        self.inner = inner
        self.other_write = other_write
        self.on = on

    def __getattr__(self, name: str) -> object:
        attr = getattr(self.inner, name)
        if name != self.on or self.other_write is None:
            return attr

        def call(*args: object, **kwargs: object) -> object:
            other, self.other_write = self.other_write, None
            other()  # type: ignore[operator]
            return attr(*args, **kwargs)

        return call


def test_a_refine_never_overwrites_what_another_engine_wrote_after_it_read(store: ExperienceStore) -> None:
    embedder = HashEmbedder()
    old = utcnow() - timedelta(days=1)
    best = Experience(kind="fact", content="Invoices are sent on the 1st.", support=3, created_at=old, updated_at=old)
    twin = Experience(kind="fact", content="Invoices are sent on the 1st!", created_at=old, updated_at=old)
    store.upsert(list(zip([best, twin], embedder.embed([best.embedding_text(), twin.embedding_text()]))))

    def credit_from_another_engine() -> None:
        ((now, _),) = store.get([best.id])
        store.update([now.model_copy(update={"helpful": 5})])

    shared = _InterleavedWrite(store, credit_from_another_engine)
    settings = RefineSettings(every_n_experiences=None, duplicate_threshold=0.9, induce_rules=False)
    engine = make_engine(store=shared, refine=settings)  # type: ignore[arg-type]
    first = engine.refine()
    assert first.conflicts == 1 and first.merged == 0  # its copy of the keeper was out of date: nothing written
    assert engine.refine().merged == 1
    (kept,) = [e for e, _ in store.scan(statuses=[ExperienceStatus.ACTIVE])]
    assert (kept.helpful, kept.support) == (5, 4)  # the other engine's credit survived the merge
    engine._worker.stop()


_WORKER = """
import json, sys
from expscale_core.episode import Episode
from expscale_core.episodes.queue import EpisodeQueue
queue = EpisodeQueue(sys.argv[1])
n = int(sys.argv[2])
for i in range(25):
    queue.put(Episode(id=f"w{n}-{i}", input=f"request {i} of worker {n}"))
claimed = []
while True:
    batch = queue.claim(3, ignore_delay=True)
    if not batch:
        break
    claimed += [e.id for e in batch]
    queue.complete([e.id for e in batch])
print(json.dumps(claimed))
"""


def test_worker_processes_sharing_one_data_dir_claim_every_episode_exactly_once(tmp_path: Path) -> None:
    """The several-workers recipe: uvicorn/gunicorn workers share the data dir's queue (SQLite WAL; a claim
    is one IMMEDIATE transaction) and reach one Qdrant server through EXPSCALE_STORE__URL."""
    path = str(tmp_path / "episodes.sqlite3")
    EpisodeQueue(path).close()  # created once, as the first worker would
    procs = [
        subprocess.Popen([sys.executable, "-c", _WORKER, path, str(n)], stdout=subprocess.PIPE, text=True)
        for n in range(4)
    ]
    claimed = [i for p in procs for i in json.loads(p.communicate(timeout=120)[0])]
    assert all(p.returncode == 0 for p in procs)
    # Workers that finished first may have stopped before later ones queued theirs; whatever was claimed,
    # was claimed once, and nothing is left behind once every worker ran.
    assert len(claimed) == len(set(claimed))
    leftover = EpisodeQueue(path)
    rest = leftover.claim(1000, ignore_delay=True)
    assert len(claimed) + len(rest) == 100 and not set(claimed) & {e.id for e in rest}
    leftover.close()


def test_each_experience_records_the_deployments_that_taught_it_and_stats_break_down_by_them(
    store: ExperienceStore,
) -> None:
    web = make_engine(store=store, deployment="web-eu")
    agent = make_engine(store=store, deployment="agent-batch")
    for engine, lessons in ((web, [("VPN port?", "1194/udp")]), (agent, [("VPN port?", "1194/udp"), ("SSO?", "okta")])):
        for question, answer in lessons:
            eid = engine.record(Episode(input=question, output="?"))
            engine.feedback(eid, -1, correction=answer)
        assert engine.drain(timeout=10)
    by_question = {e.applicability: e for e, _ in store.scan(statuses=[ExperienceStatus.ACTIVE])}
    assert by_question["VPN port?"].provenance.deployments == ["web-eu", "agent-batch"]  # one record, both
    assert by_question["SSO?"].provenance.deployments == ["agent-batch"]
    figures = web.stats().deployments
    assert {name: (f.active, f.confirmed_by_others) for name, f in figures.items()} == {
        "agent-batch": (1, 0),
        "web-eu": (1, 1),
    }
    for e in (web, agent):
        e._worker.stop()


def test_the_deployment_defaults_to_the_host_and_is_a_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    from expscale_core.settings import ExpscaleSettings

    assert ExpscaleSettings().deployment == socket.gethostname()
    monkeypatch.setenv("EXPSCALE_DEPLOYMENT", "checkout-api")
    assert ExpscaleSettings().deployment == "checkout-api"


def test_a_scope_deleted_by_one_engine_is_not_learned_again_from_another_engines_queue(
    store: ExperienceStore,
) -> None:
    deleting = make_engine(store=store, autostart=False)
    other = make_engine(store=store, autostart=False)
    eid = other.record(Episode(input="acme's VPN port?", output="?"), scope="acme")
    other.feedback(eid, -1, correction="1194/udp", scope="acme")  # queued in the other engine only
    deleting.delete(scope="acme")
    other.run_pending()
    assert [e for e, _ in store.scan()] == []  # the deleted scope did not come back
    assert other.queue.get(eid) is None  # and the episode is gone from the other queue too
    for e in (deleting, other):
        e._worker.stop()


def test_a_merge_finishing_after_another_engine_deleted_its_source_leaves_nothing_of_it(
    store: ExperienceStore,
) -> None:
    writer = make_engine(store=store)
    secret = writer.record(Episode(input="wifi password?", output="tulip42", outcome=Outcome(score=1)))
    kept = writer.record(Episode(input="guest wifi password, please", output="tulip42", outcome=Outcome(score=1)))
    assert writer.drain(timeout=10)
    merged = json.dumps({"kind": "fact", "content": "The wifi password is tulip42.", "applicability": "wifi"})
    settings = RefineSettings(every_n_experiences=None, duplicate_threshold=0.5, induce_rules=False)
    # The other engine's delete lands in the narrowest window: after the refiner checked the deletions, just
    # before its merged record is inserted.
    racing = _InterleavedWrite(store, lambda: writer.delete(episode_id=secret), on="insert_new")
    llm = OpenAILLM(ScriptedLLM([merged]).client, model="m")
    refiner = make_engine(store=racing, llm=llm, refine=settings)  # type: ignore[arg-type]
    assert refiner.refine().merged == 0  # the merge's result was removed again, so nothing was retired
    assert racing.other_write is None  # the merge did reach its insert, where the delete landed
    records = [e for e, _ in store.scan()]
    assert all(secret not in e.provenance.source_episode_ids for e in records)
    assert [e.status for e in records if kept in e.provenance.source_episode_ids] == [ExperienceStatus.ACTIVE]
    for e in (writer, refiner):
        e._worker.stop()


def test_an_import_never_brings_back_what_was_deleted(store: ExperienceStore, tmp_path: Path) -> None:
    from expscale_core.ops.transfer import export_jsonl, import_jsonl

    engine = make_engine(store=store)
    eid = engine.record(Episode(input="acme's VPN port?", output="1194", outcome=Outcome(score=1)), scope="acme")
    engine.record(Episode(input="globex SSO?", output="okta", outcome=Outcome(score=1)), scope="globex")
    assert engine.drain(timeout=10)
    export_jsonl(engine, tmp_path / "backup.jsonl")
    engine.delete(scope="acme")
    assert import_jsonl(engine, tmp_path / "backup.jsonl") == 1
    assert [e.scope.namespace for e, _ in store.scan()] == ["globex"]
    assert eid
    engine._worker.stop()


def test_lessons_of_a_deployment_mostly_rated_harmful_can_be_weighted_down(store: ExperienceStore) -> None:
    from expscale_core.settings import RetrieveSettings

    retrieve = RetrieveSettings(min_score=0.2, harmful_deployment_factor=0.0)
    good = make_engine(store=store, deployment="checkout", retrieve=retrieve)
    bad = make_engine(store=store, deployment="scraper", retrieve=retrieve)
    for engine, answer in ((good, "1194/udp"), (bad, "22/tcp")):
        eid = engine.record(Episode(input=f"{engine._loop.deployment} VPN port?", output="?"))
        engine.feedback(eid, -1, correction=answer)
        assert engine.drain(timeout=10)
    for i in range(12):  # the scraper's lesson keeps being served and keeps being wrong
        hits = good.retrieve("scraper VPN port?", k=1, episode_id=f"r{i}")
        assert hits and "22/tcp" in hits[0].experience.content
        good.feedback(f"r{i}", -1)
    assert good.drain(timeout=10)
    assert good.stats().deployments["scraper"].harmful == 12
    good.refine()  # the deployments are judged with the refine
    assert all("22/tcp" not in h.experience.content for h in good.retrieve("scraper VPN port?", k=3))
    assert any("1194/udp" in h.experience.content for h in good.retrieve("checkout VPN port?", k=3))
    for e in (good, bad):
        e._worker.stop()


def test_deleting_an_episode_relearns_what_another_engines_episodes_taught(store: ExperienceStore) -> None:
    a = make_engine(store=store, autostart=False)
    b = make_engine(store=store, autostart=False)
    gone = a.record(Episode(input="VPN port?", output="?"))
    a.feedback(gone, -1, correction="1194/udp")
    a.run_pending()
    stays = b.record(Episode(input="VPN port?", output="?"))
    b.feedback(stays, -1, correction="1194/udp")
    b.run_pending()
    (shared,) = [e for e, _ in store.scan()]
    assert sorted(shared.provenance.source_episode_ids) == sorted([gone, stays])  # one record, both sources
    a.delete(episode_id=gone)  # the lesson goes; its other source lives in b's queue, not a's
    assert [e for e, _ in store.scan()] == []
    b.run_pending()
    (back,) = [e for e, _ in store.scan()]
    assert back.provenance.source_episode_ids == [stays] and "1194/udp" in back.content
    for e in (a, b):
        e._worker.stop()


def test_a_scope_deleted_elsewhere_can_be_used_again_afterwards(store: ExperienceStore) -> None:
    deleting = make_engine(store=store, autostart=False)
    other = make_engine(store=store, autostart=False)
    deleting.delete(scope="acme")
    eid = other.record(Episode(input="acme's SSO?", output="?"), scope="acme")  # recorded after the delete
    other.feedback(eid, -1, correction="okta", scope="acme")
    other.run_pending()
    assert ["okta" in e.content for e, _ in store.scan()] == [True]
    for e in (deleting, other):
        e._worker.stop()
