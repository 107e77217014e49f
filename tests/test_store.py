"""One conformance suite for every ExperienceStore: Qdrant Edge (the embedded default) in a temp dir,
qdrant-client in local mode, and a Qdrant server when QDRANT_URL is set."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from expscale_core import (
    CollectionMismatchError,
    EdgeExperienceStore,
    Episode,
    ExperienceEngine,
    ExperienceStatus,
    ExpscaleSettings,
    Outcome,
    QdrantExperienceStore,
    Scope,
    StoreError,
)
from expscale_core.experience import Experience
from expscale_core.store.base import ExperienceStore
from expscale_core.testing import HashEmbedder

EMB = HashEmbedder(64)


def _backends() -> list[object]:
    return [
        "edge",
        "qdrant-local",
        pytest.param(
            "server",
            marks=[
                pytest.mark.qdrant_server,
                pytest.mark.skipif(not os.environ.get("QDRANT_URL"), reason="QDRANT_URL unset"),
            ],
        ),
    ]


@pytest.fixture(params=_backends())
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ExperienceStore]:
    s: ExperienceStore
    if request.param == "server":
        s = QdrantExperienceStore.open(url=os.environ["QDRANT_URL"], collection=f"test_{uuid.uuid4().hex[:8]}")
    elif request.param == "qdrant-local":
        s = QdrantExperienceStore.open(location=":memory:")
    else:
        s = EdgeExperienceStore(tmp_path / "edge")
    s.ensure_collection(EMB.dimension)
    yield s
    if request.param == "server":
        assert isinstance(s, QdrantExperienceStore)
        s.client.delete_collection(s.collection)
    s.close()


def _put(store: ExperienceStore, content: str, scope: Scope, **kw: object) -> Experience:
    exp = Experience(kind="fact", content=content, scope=scope, **kw)  # type: ignore[arg-type]
    store.upsert([(exp, EMB.embed([exp.embedding_text()])[0])])
    return exp


def test_scope_filters_apply_inside_the_query(store: ExperienceStore) -> None:
    a = _put(store, "refunds take five days", Scope(namespace="shop", agent="a"))
    _put(store, "refunds take five days", Scope(namespace="shop", agent="b"))
    _put(store, "refunds take five days", Scope(namespace="other"))
    vec = EMB.embed(["how long do refunds take"])[0]
    only_a = store.search(vec, scope=Scope(namespace="shop", agent="a"), limit=10)
    assert [e.id for e, _ in only_a] == [a.id]
    # limit=1 still finds the in-scope hit: the filter is part of the query, not applied afterwards
    assert len(store.search(vec, scope=Scope(namespace="shop"), limit=1)) == 1
    assert len(store.search(vec, scope=Scope(namespace="shop"), limit=10)) == 2


def test_exact_scope_sees_only_records_written_to_exactly_that_scope(store: ExperienceStore) -> None:
    team = _put(store, "deploys on tuesday", Scope(namespace="acme"))
    _put(store, "deploys on tuesday", Scope(namespace="acme", user="alice"))
    vec = EMB.embed(["when do we deploy"])[0]
    assert len(store.search(vec, scope=Scope(namespace="acme"), limit=10)) == 2
    exact = store.search(vec, scope=Scope(namespace="acme"), limit=10, exact_scope=True)
    assert [e.id for e, _ in exact] == [team.id]


def test_similarity_is_cosine_best_first_with_a_floor(store: ExperienceStore) -> None:
    near = _put(store, "reset the router to fix the wifi", Scope())
    _put(store, "bake bread at 220 degrees", Scope())
    hits = store.search(EMB.embed(["reset the router to fix the wifi"])[0], scope=Scope(), limit=10)
    assert hits[0][0].id == near.id and hits[0][1] == pytest.approx(1.0, abs=1e-3)
    assert all(-1.0 <= s <= 1.0 for _, s in hits) and [s for _, s in hits] == sorted((s for _, s in hits), reverse=True)
    floor = store.search(EMB.embed(["reset the router"])[0], scope=Scope(), limit=10, min_similarity=0.3)
    assert [e.id for e, _ in floor] == [near.id]


def test_inactive_entries_are_not_served(store: ExperienceStore) -> None:
    live = _put(store, "use the v2 endpoint", Scope())
    _put(store, "use the v1 endpoint", Scope(), status=ExperienceStatus.SUPERSEDED)
    _put(store, "use the v0 endpoint", Scope(), status=ExperienceStatus.ARCHIVED)
    _put(store, "use the evil endpoint", Scope(), status=ExperienceStatus.QUARANTINED)
    hits = store.search(EMB.embed(["which endpoint"])[0], scope=Scope(), limit=10)
    assert [e.id for e, _ in hits] == [live.id]
    assert store.count(statuses=[ExperienceStatus.ARCHIVED]) == 1
    assert store.count() == 4


def test_update_keeps_vector_and_round_trips_payload(store: ExperienceStore) -> None:
    exp = _put(store, "cache the token", Scope(namespace="n", tenant="t", agent="a", user="u"))
    store.update([exp.model_copy(update={"helpful": 3})])
    ((got, vec),) = store.get([exp.id], with_vectors=True)
    assert got.helpful == 3 and got.content == "cache the token" and got.scope == exp.scope
    assert got.model_dump(exclude={"helpful", "revision"}) == exp.model_dump(exclude={"helpful", "revision"})
    assert got.revision  # every write stamps one
    assert vec is not None and vec == pytest.approx(EMB.embed([exp.embedding_text()])[0], abs=1e-6)
    assert [e.id for e, _ in store.scan()] == [exp.id]


def test_write_if_writes_only_over_the_revision_it_read(store: ExperienceStore) -> None:
    _put(store, "deploy with make ship", Scope())
    ((read, _),) = store.scan()
    # Another writer changes the record after this one read it: the stale copy is refused, silently in Qdrant,
    # and read back as not written.
    store.update([read.model_copy(update={"helpful": 1})])
    assert store.write_if([(read.model_copy(update={"support": 9}), None)]) == {}
    ((now, _),) = store.get([read.id])
    assert now.support == 1 and now.helpful == 1
    written = store.write_if([(now.model_copy(update={"support": 2}), None)])
    assert list(written) == [now.id] and written[now.id].revision != now.revision
    ((after, vec),) = store.get([now.id], with_vectors=True)
    assert after.support == 2 and after.revision == written[now.id].revision
    assert vec == pytest.approx(EMB.embed([now.embedding_text()])[0], abs=1e-6)  # payload only: vector kept
    # With a vector, the point is rewritten whole; a stale copy again writes nothing.
    moved = after.model_copy(update={"content": "deploy with make release"})
    new_vec = EMB.embed([moved.embedding_text()])[0]
    assert list(store.write_if([(moved, new_vec)])) == [after.id]
    assert store.write_if([(moved, new_vec)]) == {}
    ((final, vec),) = store.get([after.id], with_vectors=True)
    assert final.content == "deploy with make release" and vec == pytest.approx(new_vec, abs=1e-6)


def test_write_if_never_recreates_a_deleted_record_and_accepts_records_from_before_revisions(
    store: ExperienceStore,
) -> None:
    gone = _put(store, "to be deleted", Scope())
    ((read, _),) = store.get([gone.id])
    store.delete([gone.id])
    assert store.write_if([(read, None)]) == {} and store.get([gone.id]) == []
    assert store.write_if([(read, EMB.embed(["x"])[0])]) == {} and store.get([gone.id]) == []
    legacy = _put(store, "written by 0.2", Scope())
    if isinstance(store, QdrantExperienceStore):  # a payload without the revision key, as 0.2 wrote it
        store.client.delete_payload(store.collection, keys=["revision"], points=[legacy.id])
        ((old, _),) = store.get([legacy.id])
        assert old.revision == ""
        assert list(store.write_if([(old.model_copy(update={"support": 3}), None)])) == [legacy.id]


def test_insert_new_never_overwrites_and_exactly_one_racing_writer_gets_an_id(store: ExperienceStore) -> None:
    import threading

    first = Experience(kind="fact", content="the VPN port is 1194")
    vec = EMB.embed([first.embedding_text()])[0]
    assert list(store.insert_new([(first, vec)])) == [first.id]
    assert store.insert_new([(first.model_copy(update={"content": "overwritten"}), vec)]) == {}
    ((kept, _),) = store.get([first.id])
    assert kept.content == "the VPN port is 1194"
    racer = Experience(kind="fact", content="raced")
    wins: list[str] = []
    lock = threading.Lock()

    def insert(i: int) -> None:
        got = store.insert_new([(racer.model_copy(update={"applicability": f"writer {i}"}), vec)])
        with lock:
            wins.extend(e.applicability for e in got.values())

    threads = [threading.Thread(target=insert, args=(i,)) for i in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    ((stored, _),) = store.get([racer.id])
    assert wins == [stored.applicability]


def test_get_keeps_the_order_given_and_skips_missing_or_malformed_ids(store: ExperienceStore) -> None:
    a, b = _put(store, "a", Scope()), _put(store, "b", Scope())
    got = store.get([b.id, str(uuid.uuid4()), "not-a-uuid", a.id])
    assert [e.id for e, _ in got] == [b.id, a.id]


def test_scan_pages_through_everything_with_filters(store: ExperienceStore) -> None:
    items = [
        Experience(kind="fact", content=f"fact {i}", scope=Scope(namespace="big" if i % 2 else "small"))
        for i in range(1500)
    ]
    store.upsert([(e, EMB.embed([e.content])[0]) for e in items])
    assert len({e.id for e, _ in store.scan()}) == 1500
    assert store.count(scope=Scope(namespace="big")) == 750
    assert sum(1 for _ in store.scan(scope=Scope(namespace="small"), with_vectors=True)) == 750


def test_delete_and_delete_scope(store: ExperienceStore) -> None:
    _put(store, "x", Scope(namespace="gone", user="u"))
    keep = _put(store, "y", Scope(namespace="kept"))
    other = _put(store, "z", Scope(namespace="kept"))
    assert store.delete_scope(Scope(namespace="gone")) == 1
    store.delete([other.id, "not-a-uuid"])
    assert [e.id for e, _ in store.scan()] == [keep.id]


def _keys(*texts: str) -> list[list[float]]:
    return EMB.embed(list(texts))


def test_a_record_is_found_by_its_best_key_and_reads_give_its_own_vector(store: ExperienceStore) -> None:
    # One write path each: every one of them must keep all the keys.
    phrased = Experience(kind="strategy", content="Quote prices without VAT.", applicability="price of a plan")
    inserted = Experience(kind="fact", content="Invoices go out on the 1st.", applicability="billing date")
    rewritten = Experience(kind="fact", content="Refunds take 5 days.", applicability="refund time")
    plain = Experience(kind="fact", content="The office is in Lyon.")
    store.upsert([(phrased, _keys(phrased.embedding_text(), "how much is the pro plan", "cost of seats"))])
    store.insert_new([(inserted, _keys(inserted.embedding_text(), "when am I billed"))])
    store.upsert([(rewritten, _keys(rewritten.embedding_text()))])
    ((read, _),) = store.get([rewritten.id])
    store.write_if([(read, _keys(rewritten.embedding_text(), "how long until my money is back"))])
    store.upsert([(plain, EMB.embed([plain.content])[0])])  # one vector is one key
    for query, expected in [
        ("cost of seats", phrased.id),
        ("how much is the pro plan", phrased.id),
        ("when am I billed", inserted.id),
        ("how long until my money is back", rewritten.id),
        ("The office is in Lyon.", plain.id),
    ]:
        ((best, similarity), *_) = store.search(EMB.embed([query])[0], scope=None, limit=4)
        assert (best.id, similarity) == (expected, pytest.approx(1.0, abs=1e-5)), query
    store.update([phrased.model_copy(update={"helpful": 2})])  # payload only: the keys stay
    ((hit, similarity),) = store.search(EMB.embed(["cost of seats"])[0], scope=None, limit=1)
    assert hit.helpful == 2 and similarity == pytest.approx(1.0, abs=1e-5)
    own = {e.id: v for e, v in store.get([phrased.id, plain.id], with_vectors=True)}
    assert own[phrased.id] == pytest.approx(EMB.embed([phrased.embedding_text()])[0], abs=1e-6)
    assert own[plain.id] == pytest.approx(EMB.embed([plain.content])[0], abs=1e-6)
    assert {e.id: v for e, v in store.scan(with_vectors=True)}[phrased.id] == pytest.approx(own[phrased.id])


@pytest.mark.parametrize("backend", ["edge", "qdrant-local"])
def test_a_store_created_before_keys_keeps_one_vector_per_record(tmp_path: Path, backend: str) -> None:
    old = Experience(kind="fact", content="written by 0.4")
    if backend == "edge":
        from expscale_core.store._edge_shard import create_shard, edge_config

        create_shard(tmp_path / "edge", edge_config(EMB.dimension, multi_key=False)).close()
        s: ExperienceStore = EdgeExperienceStore(tmp_path / "edge")
    else:
        from qdrant_client import QdrantClient
        from qdrant_client import models as qm

        client = QdrantClient(location=":memory:")
        client.create_collection("old", vectors_config=qm.VectorParams(size=EMB.dimension, distance=qm.Distance.COSINE))
        s = QdrantExperienceStore(client, "old")
    s.ensure_collection(EMB.dimension)
    s.upsert([(old, EMB.embed([old.content])[0])])
    new = Experience(kind="fact", content="Invoices go out on the 1st.", applicability="billing date")
    s.insert_new([(new, _keys(new.embedding_text(), "when am I billed"))])  # the first key is kept
    ((hit, similarity),) = s.search(EMB.embed([new.embedding_text()])[0], scope=None, limit=1)
    assert hit.id == new.id and similarity == pytest.approx(1.0, abs=1e-5)
    assert s.search(EMB.embed(["when am I billed"])[0], scope=None, limit=2, min_similarity=0.99) == []
    assert {e.id for e, _ in s.scan()} == {old.id, new.id}
    if isinstance(s, EdgeExperienceStore):
        s.compact()  # the rewrite keeps the shard as it was
        assert s.search(EMB.embed([old.content])[0], scope=None, limit=1)[0][0].id == old.id
    s.close()


def test_edge_keys_survive_compaction_and_a_restart(tmp_path: Path) -> None:
    s = EdgeExperienceStore(tmp_path / "edge")
    s.ensure_collection(EMB.dimension)
    exp = Experience(kind="fact", content="Invoices go out on the 1st.", applicability="billing date")
    s.upsert([(exp, _keys(exp.embedding_text(), "when am I billed"))])
    s.compact()
    s.close()
    s = EdgeExperienceStore(tmp_path / "edge")
    s.ensure_collection(EMB.dimension)
    ((hit, similarity),) = s.search(EMB.embed(["when am I billed"])[0], scope=None, limit=1)
    assert hit.id == exp.id and similarity == pytest.approx(1.0, abs=1e-5)
    s.close()


def test_edge_data_survives_a_restart_and_mismatches_say_how_to_fix(tmp_path: Path) -> None:
    s = EdgeExperienceStore(tmp_path / "edge")
    s.ensure_collection(EMB.dimension)
    exp = _put(s, "persisted lesson", Scope())
    s.close()
    reopened = EdgeExperienceStore(tmp_path / "edge")
    reopened.ensure_collection(EMB.dimension)
    assert [e.id for e, _ in reopened.scan()] == [exp.id]
    reopened.close()
    wrong = EdgeExperienceStore(tmp_path / "edge")
    with pytest.raises(CollectionMismatchError, match=r"384 dims.*EXPSCALE_STORE__COLLECTION"):
        wrong.ensure_collection(384)
    wrong.close()
    with pytest.raises(StoreError, match="closed"):
        reopened.count()


def test_edge_builds_its_index_in_the_background_and_keeps_every_write_made_meanwhile(tmp_path: Path) -> None:
    s = EdgeExperienceStore(tmp_path / "edge", optimize_every=100)
    s.ensure_collection(EMB.dimension)
    assert s.maintain() is False and not s.building, "nothing written yet"
    facts = [Experience(kind="fact", content=f"fact number {i}", scope=Scope(tenant=f"t{i % 3}")) for i in range(150)]
    s.upsert([(e, EMB.embed([e.content])[0]) for e in facts])
    assert s.maintain() is False and s.building, "due: the build starts in a child process and returns at once"
    assert (tmp_path / "edge.build").is_dir()
    # Writes and reads while the child works: all of them must survive the swap.
    late = Experience(kind="fact", content="written during the build")
    s.upsert([(late, EMB.embed([late.content])[0])])
    s.update([facts[0].model_copy(update={"content": "updated during the build"})])
    s.delete([facts[1].id])
    s.delete_scope(Scope(tenant="t2"))
    assert s.search(EMB.embed(["fact number 3"])[0], scope=Scope(), limit=1)
    deadline = time.monotonic() + 120
    while not s.maintain():
        assert time.monotonic() < deadline, "the build never finished"
        time.sleep(0.05)
    assert not s.building and not (tmp_path / "edge.build").exists()
    kept = {e.id: e for e, _ in s.scan()}
    expected = {e.id for e in facts[2:] if e.scope.tenant != "t2"} | {facts[0].id, late.id}
    assert set(kept) == expected
    assert kept[facts[0].id].content == "updated during the build"
    assert s.maintain() is False, "not due again until more is written"
    s.close()
    reopened = EdgeExperienceStore(tmp_path / "edge")
    reopened.ensure_collection(EMB.dimension)
    assert reopened.count() == len(expected)
    reopened.close()


def test_a_build_left_by_a_crash_or_cancelled_by_compaction_leaves_no_copy(tmp_path: Path) -> None:
    s = EdgeExperienceStore(tmp_path / "edge", optimize_every=10)
    s.ensure_collection(EMB.dimension)
    s.upsert(
        [(e, EMB.embed([e.content])[0]) for e in (Experience(kind="fact", content=f"secret {i}") for i in range(20))]
    )
    s.maintain()
    assert s.building
    s.compact()  # a deletion's compaction: the copy holds deleted text, so the build goes
    assert not s.building and not (tmp_path / "edge.build").exists()
    s.close()
    (tmp_path / "edge.build").mkdir()  # what a kill -9 during a build leaves
    again = EdgeExperienceStore(tmp_path / "edge")
    again.ensure_collection(EMB.dimension)
    assert not (tmp_path / "edge.build").exists() and again.count() == 20
    again.close()


@pytest.mark.parametrize("opener", ["edge", "qdrant-local"])
def test_second_process_gets_a_clear_error(tmp_path: Path, opener: str) -> None:
    path = str(tmp_path / "q")
    held: ExperienceStore
    if opener == "edge":
        held = EdgeExperienceStore(path)
        held.ensure_collection(8)
        open_it = f"s = EdgeExperienceStore({path!r}); s.ensure_collection(8)"
    else:
        held = QdrantExperienceStore.open(path=path)
        open_it = f"QdrantExperienceStore.open(path={path!r})"
    code = (
        "import sys\nfrom expscale_core import EdgeExperienceStore, QdrantExperienceStore, StoreLockedError\n"
        f"try:\n    {open_it}\n"
        "except StoreLockedError as e:\n    print('LOCKED', e); sys.exit(0)\nsys.exit(1)\n"
    )
    try:
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    finally:
        held.close()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "LOCKED" in result.stdout and "EXPSCALE_STORE__URL" in result.stdout


def _legacy_data_dir(data_dir: Path) -> list[Experience]:
    """A data dir as expscale 0.1 wrote it: qdrant-client's local folder at <data_dir>/qdrant."""
    legacy = QdrantExperienceStore.open(path=str(data_dir / "qdrant"), collection="expscale_experiences")
    legacy.ensure_collection(EMB.dimension)
    items = [
        Experience(
            kind="fact", content=f"lesson {i}", applicability=f"when {i}", helpful=i, scope=Scope(user=f"u{i % 3}")
        )
        for i in range(40)
    ]
    items[3] = items[3].model_copy(update={"status": ExperienceStatus.SUPERSEDED})
    legacy.upsert([(e, EMB.embed([e.embedding_text()])[0]) for e in items])
    legacy.close()
    return items


def test_a_data_dir_from_expscale_0_1_is_migrated_losslessly_with_a_backup(tmp_path: Path) -> None:
    items = _legacy_data_dir(tmp_path)
    settings = ExpscaleSettings(data_dir=tmp_path, embedder={"provider": "hash", "hash_dimension": 64})
    with ExperienceEngine.from_settings(settings, autostart=False) as engine:
        assert isinstance(engine.store, EdgeExperienceStore)
        got = {e.id: (e, v) for e, v in engine.store.scan(with_vectors=True)}
        assert set(got) == {e.id for e in items}
        for e in items:
            assert got[e.id][0].model_dump(exclude={"revision"}) == e.model_dump(exclude={"revision"})
            assert got[e.id][1] == pytest.approx(EMB.embed([e.embedding_text()])[0], abs=1e-6)
        engine.record(Episode(input="new after migration", output="ok", outcome=Outcome(score=1)))
        engine.run_pending()
    assert (tmp_path / "qdrant.pre-edge-backup" / "collection" / "expscale_experiences").exists()
    assert not (tmp_path / "qdrant").exists()
    with ExperienceEngine.from_settings(settings, autostart=False) as engine:  # a second start does nothing more
        assert engine.store.count() == 41


def test_a_failed_migration_leaves_the_old_store_untouched(tmp_path: Path) -> None:
    _legacy_data_dir(tmp_path)
    wrong_dims = ExpscaleSettings(data_dir=tmp_path, embedder={"provider": "hash", "hash_dimension": 32})
    with pytest.raises(CollectionMismatchError):
        ExperienceEngine.from_settings(wrong_dims, autostart=False)
    assert (tmp_path / "qdrant" / "collection" / "expscale_experiences" / "storage.sqlite").exists()
    assert not (tmp_path / "store" / "expscale_experiences").exists()


def test_migration_when_the_store_path_pointed_at_the_old_folder(tmp_path: Path) -> None:
    items = _legacy_data_dir(tmp_path)  # writes <tmp>/qdrant
    settings = ExpscaleSettings(
        data_dir=tmp_path, store={"path": str(tmp_path / "qdrant")}, embedder={"provider": "hash", "hash_dimension": 64}
    )
    with ExperienceEngine.from_settings(settings, autostart=False) as engine:
        assert {e.id for e, _ in engine.store.scan()} == {e.id for e in items}
    assert (tmp_path / "qdrant" / "qdrant.pre-edge-backup" / "collection" / "expscale_experiences").exists()
    with ExperienceEngine.from_settings(settings, autostart=False) as engine:  # and it opens again as it is
        assert engine.store.count() == len(items)


def test_a_failed_index_build_is_dropped_and_the_store_carries_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    broken = tmp_path / "broken-env"
    broken.mkdir()
    (broken / "qdrant_edge.py").write_text("raise ImportError('simulated: the build process cannot start')\n")
    s = EdgeExperienceStore(tmp_path / "edge", optimize_every=10)
    s.ensure_collection(EMB.dimension)
    facts = [Experience(kind="fact", content=f"fact {i}") for i in range(20)]
    s.upsert([(e, EMB.embed([e.content])[0]) for e in facts])
    monkeypatch.setenv("PYTHONPATH", str(broken))  # the child process imports the broken module first
    assert s.build_index(wait=True) is False
    assert "building the index" in caplog.text and not s.building
    assert not (tmp_path / "edge.build").exists() and s.count() == 20
    monkeypatch.delenv("PYTHONPATH")
    assert s.build_index(wait=True) is True, "the next build works"
    assert s.count() == 20
    s.close()
