from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from expscale_core import (
    CollectionMismatchError,
    Experience,
    ExperienceStatus,
    QdrantExperienceStore,
    Scope,
    StoreLockedError,
)
from expscale_core.testing import HashEmbedder

EMB = HashEmbedder(64)


def _backends() -> list[object]:
    params: list[object] = ["memory"]
    params.append(
        pytest.param(
            "server",
            marks=[
                pytest.mark.qdrant_server,
                pytest.mark.skipif(not os.environ.get("QDRANT_URL"), reason="QDRANT_URL unset"),
            ],
        )
    )
    return params


@pytest.fixture(params=_backends())
def store(request: pytest.FixtureRequest) -> Iterator[QdrantExperienceStore]:
    if request.param == "server":
        s = QdrantExperienceStore.open(url=os.environ["QDRANT_URL"], collection=f"test_{uuid.uuid4().hex[:8]}")
    else:
        s = QdrantExperienceStore.open(location=":memory:")
    s.ensure_collection(EMB.dimension)
    yield s
    if request.param == "server":
        s.client.delete_collection(s.collection)
    s.close()


def _put(store: QdrantExperienceStore, content: str, scope: Scope, **kw: object) -> Experience:
    exp = Experience(kind="fact", content=content, scope=scope, **kw)  # type: ignore[arg-type]
    store.upsert([(exp, EMB.embed([exp.embedding_text()])[0])])
    return exp


def test_scope_filters_apply_inside_the_query(store: QdrantExperienceStore) -> None:
    a = _put(store, "refunds take five days", Scope(namespace="shop", agent="a"))
    _put(store, "refunds take five days", Scope(namespace="shop", agent="b"))
    _put(store, "refunds take five days", Scope(namespace="other"))
    vec = EMB.embed(["how long do refunds take"])[0]
    only_a = store.search(vec, scope=Scope(namespace="shop", agent="a"), limit=10)
    assert [e.id for e, _ in only_a] == [a.id]
    # limit=1 still finds the in-scope hit: the filter is part of the query, not applied afterwards
    assert len(store.search(vec, scope=Scope(namespace="shop"), limit=1)) == 1
    assert len(store.search(vec, scope=Scope(namespace="shop"), limit=10)) == 2


def test_inactive_entries_are_not_served(store: QdrantExperienceStore) -> None:
    live = _put(store, "use the v2 endpoint", Scope())
    _put(store, "use the v1 endpoint", Scope(), status=ExperienceStatus.SUPERSEDED)
    _put(store, "use the v0 endpoint", Scope(), status=ExperienceStatus.ARCHIVED)
    hits = store.search(EMB.embed(["which endpoint"])[0], scope=Scope(), limit=10)
    assert [e.id for e, _ in hits] == [live.id]
    assert store.count(statuses=[ExperienceStatus.ARCHIVED]) == 1


def test_update_keeps_vector_and_round_trips_payload(store: QdrantExperienceStore) -> None:
    exp = _put(store, "cache the token", Scope())
    store.update([exp.model_copy(update={"helpful": 3})])
    ((got, vec),) = store.get([exp.id], with_vectors=True)
    assert got.helpful == 3 and got.content == "cache the token"
    assert vec is not None and len(vec) == EMB.dimension
    assert [e.id for e, _ in store.scan()] == [exp.id]


def test_delete_scope(store: QdrantExperienceStore) -> None:
    _put(store, "x", Scope(namespace="gone", user="u"))
    keep = _put(store, "y", Scope(namespace="kept"))
    assert store.delete_scope(Scope(namespace="gone")) == 1
    assert [e.id for e, _ in store.scan()] == [keep.id]


def test_dimension_mismatch_says_how_to_fix(tmp_path: Path) -> None:
    s = QdrantExperienceStore.open(path=str(tmp_path / "q"))
    s.ensure_collection(64)
    s.close()
    reopened = QdrantExperienceStore.open(path=str(tmp_path / "q"))
    with pytest.raises(CollectionMismatchError, match=r"64 dims.*384 dims.*EXPSCALE_STORE__COLLECTION"):
        reopened.ensure_collection(384)
    reopened.close()


def test_second_process_gets_a_clear_error(tmp_path: Path) -> None:
    path = str(tmp_path / "q")
    s = QdrantExperienceStore.open(path=path)
    code = (
        "import sys\nfrom expscale_core import QdrantExperienceStore, StoreLockedError\n"
        f"try:\n    QdrantExperienceStore.open(path={path!r})\n"
        "except StoreLockedError as e:\n    print('LOCKED', e); sys.exit(0)\nsys.exit(1)\n"
    )
    try:
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    finally:
        s.close()
    assert result.returncode == 0, result.stderr
    assert "LOCKED" in result.stdout and "EXPSCALE_STORE__URL" in result.stdout
    assert StoreLockedError.__mro__[1].__name__ == "StoreError"
