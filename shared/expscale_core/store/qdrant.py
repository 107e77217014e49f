"""The Qdrant implementation of the experience store: embedded, in memory, or a server."""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import Any, TypeVar

from qdrant_client import QdrantClient
from qdrant_client import models as qm
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

from expscale_core.errors import CollectionMismatchError, StoreError, StoreLockedError
from expscale_core.experience import Experience, ExperienceStatus
from expscale_core.scope import Scope
from expscale_core.store._qdrant_coordination import QdrantCoordination, scroll_all
from expscale_core.store._records import (
    INDEXED_FIELDS,
    Line,
    point_ids,
    point_vector,
    reader_lines,
    scope_terms,
    stamped,
    to_payload,
    to_record,
    to_vector,
    written,
)
from expscale_core.store._records import clamp_score as _clamp
from expscale_core.store.base import Embedding, Vector
from expscale_core.store.coordination import Coordinated

__all__ = ["QdrantExperienceStore"]

log = logging.getLogger(__name__)
T = TypeVar("T")


class QdrantExperienceStore(Coordinated):
    """Experiences as Qdrant points: the vector embeds the experience, the payload is the record.

    A collection it creates holds several keys per point (a multivector scored by its best key, ``MAX_SIM``);
    one created before retrieval keys, with a plain vector, keeps working with one key per record.

    Build it with a client you configured, or with :meth:`open`:

    Example:
        >>> store = QdrantExperienceStore.open(location=":memory:")
        >>> store.ensure_collection(8)
        >>> store.count()
        0
    """

    def __init__(self, client: QdrantClient, collection: str = "expscale_experiences") -> None:
        self.client = client
        self.collection = collection
        self._local = not hasattr(client._client, "rest_uri")
        # The embedded client is not documented as thread-safe; the worker and the caller share it.
        self._lock: AbstractContextManager[Any] = threading.RLock() if self._local else nullcontext()
        self._ready = False
        self._multi_key = True
        self._leases = self._deletions = QdrantCoordination(client, collection, self._call)

    @classmethod
    def open(
        cls,
        *,
        path: str | None = None,
        location: str | None = None,
        url: str | None = None,
        api_key: str | None = None,
        collection: str = "expscale_experiences",
    ) -> QdrantExperienceStore:
        """Open embedded storage at ``path``, ``location=":memory:"``, or a server at ``url``."""
        if sum(x is not None for x in (path, location, url)) != 1:
            raise ValueError("pass exactly one of path=, location=':memory:' or url=")
        try:
            if url is not None:
                client = QdrantClient(url=url, api_key=api_key)
            elif path is not None:
                client = QdrantClient(path=path)
            else:
                client = QdrantClient(location=location)
        except RuntimeError as exc:
            if "already accessed" in str(exc):
                raise StoreLockedError(
                    f"the embedded Qdrant folder {path} is open in another process; embedded Qdrant allows "
                    "one process at a time. Close the other process, give this one its own "
                    "EXPSCALE_DATA_DIR, or run a Qdrant server and set EXPSCALE_STORE__URL"
                ) from exc
            raise StoreError(f"could not open Qdrant ({path or location or url}): {exc}") from exc
        return cls(client, collection)

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        try:
            with self._lock:
                return fn()
        except (UnexpectedResponse, ResponseHandlingException, ValueError, RuntimeError, OSError, sqlite3.Error) as exc:
            # Local mode persists through SQLite: its errors (a full disk, a locked file) are store errors too,
            # so they get the engine's retry instead of escaping.
            raise StoreError(f"Qdrant {what} on collection '{self.collection}' failed: {exc}") from exc

    def ensure_collection(self, dimension: int) -> None:
        if self._ready:
            return
        exists = self._call("collection check", lambda: self.client.collection_exists(self.collection))
        if not exists:
            params = qm.VectorParams(
                size=dimension,
                distance=qm.Distance.COSINE,
                multivector_config=qm.MultiVectorConfig(comparator=qm.MultiVectorComparator.MAX_SIM),
            )
            self._call("create", lambda: self.client.create_collection(self.collection, vectors_config=params))
            if not self._local:
                for field in INDEXED_FIELDS:
                    self._call(
                        "index",
                        lambda f=field: self.client.create_payload_index(  # type: ignore[misc]
                            self.collection, f, qm.PayloadSchemaType.KEYWORD
                        ),
                    )
        else:
            info = self._call("describe", lambda: self.client.get_collection(self.collection))
            vectors = info.config.params.vectors
            if not isinstance(vectors, qm.VectorParams):
                raise CollectionMismatchError(
                    f"collection '{self.collection}' uses named vectors; expscale needs one unnamed vector. "
                    "Use another collection name (EXPSCALE_STORE__COLLECTION)"
                )
            if vectors.size != dimension or vectors.distance != qm.Distance.COSINE:
                raise CollectionMismatchError(
                    f"collection '{self.collection}' has {vectors.size} dims with {vectors.distance.value} distance, "
                    f"but the embedder gives {dimension} dims and expscale uses Cosine. Use a new collection name "
                    "(EXPSCALE_STORE__COLLECTION), or export, delete the collection and import again "
                    "(`expscale export` / `expscale import` re-embed)"
                )
            multi = vectors.multivector_config
            if multi is not None and multi.comparator != qm.MultiVectorComparator.MAX_SIM:
                raise CollectionMismatchError(
                    f"collection '{self.collection}' compares multivectors by {multi.comparator.value}; expscale "
                    "scores a record by its best key (max_sim). Use another collection name "
                    "(EXPSCALE_STORE__COLLECTION)"
                )
            self._multi_key = multi is not None
        self._ready = True

    def _vector(self, embedding: Embedding) -> Any:
        return point_vector(embedding, multi_key=self._multi_key)

    def upsert(self, items: Sequence[tuple[Experience, Embedding]]) -> None:
        if not items:
            return
        points = [qm.PointStruct(id=e.id, vector=self._vector(v), payload=to_payload(stamped(e))) for e, v in items]
        self._call("upsert", lambda: self.client.upsert(self.collection, points=points, wait=True))

    def update(self, experiences: Sequence[Experience]) -> None:
        if not experiences:
            return
        ops: list[qm.UpdateOperation] = [
            qm.OverwritePayloadOperation(
                overwrite_payload=qm.SetPayload(payload=to_payload(stamped(e)), points=[e.id]),
            )
            for e in experiences
        ]
        self._call("update", lambda: self.client.batch_update_points(self.collection, ops, wait=True))

    def insert_new(self, items: Sequence[tuple[Experience, Embedding]]) -> dict[str, Experience]:
        valid = set(point_ids(e.id for e, _ in items))
        wanted = [(e, stamped(e), v) for e, v in items if e.id in valid]
        if not wanted:
            return {}
        points = [qm.PointStruct(id=new.id, vector=self._vector(v), payload=to_payload(new)) for _, new, v in wanted]
        self._call(
            "insert",
            lambda: self.client.upsert(self.collection, points, wait=True, update_mode=qm.UpdateMode.INSERT_ONLY),
        )
        return written(wanted, self.get([new.id for _, new, _ in wanted]))

    def write_if(self, items: Sequence[tuple[Experience, Embedding | None]]) -> dict[str, Experience]:
        valid = set(point_ids(e.id for e, _ in items))
        wanted = [(e, stamped(e), v) for e, v in items if e.id in valid]
        ops: list[qm.UpdateOperation] = []
        for old, new, vector in wanted:  # one request, each write with its own condition
            at = _revision_filter(old.id, old.revision)
            if vector is None:
                ops.append(
                    qm.OverwritePayloadOperation(overwrite_payload=qm.SetPayload(payload=to_payload(new), filter=at))
                )
            else:
                point = qm.PointStruct(id=new.id, vector=self._vector(vector), payload=to_payload(new))
                batch = qm.PointsList(points=[point], update_filter=at, update_mode=qm.UpdateMode.UPDATE_ONLY)
                ops.append(qm.UpsertOperation(upsert=batch))
        if ops:
            self._call("conditional write", lambda: self.client.batch_update_points(self.collection, ops, wait=True))
        return written(wanted, self.get([new.id for _, new, _ in wanted])) if wanted else {}

    def search(
        self,
        vector: Vector,
        *,
        scope: Scope | None,
        limit: int,
        min_similarity: float | None = None,
        statuses: Sequence[ExperienceStatus] = (ExperienceStatus.ACTIVE,),
        exact_scope: bool = False,
        as_reader: bool = False,
    ) -> list[tuple[Experience, float]]:
        result = self._call(
            "query",
            lambda: self.client.query_points(
                self.collection,
                query=self._vector(vector),
                query_filter=_filter(scope, statuses, exact=exact_scope, reader=as_reader),
                limit=limit,
                score_threshold=min_similarity,
                with_payload=True,
            ),
        )
        return [(to_record(p.id, p.payload), _clamp(p.score)) for p in result.points]

    def get(self, ids: Sequence[str], *, with_vectors: bool = False) -> list[tuple[Experience, Vector | None]]:
        valid = point_ids(ids)
        if not valid:
            return []
        records = self._call(
            "retrieve",
            lambda: self.client.retrieve(self.collection, ids=valid, with_vectors=with_vectors),
        )
        by_id = {str(r.id): r for r in records}
        return [
            (to_record(by_id[i].id, by_id[i].payload), to_vector(by_id[i].vector) if with_vectors else None)
            for i in ids
            if i in by_id
        ]

    def scan(
        self,
        *,
        scope: Scope | None = None,
        statuses: Sequence[ExperienceStatus] | None = None,
        with_vectors: bool = False,
    ) -> Iterator[tuple[Experience, Vector | None]]:
        for r in scroll_all(
            self._call, self.client, self.collection, _filter(scope, statuses), with_vectors=with_vectors
        ):
            yield to_record(r.id, r.payload), to_vector(r.vector) if with_vectors else None

    def count(self, *, scope: Scope | None = None, statuses: Sequence[ExperienceStatus] | None = None) -> int:
        flt = _filter(scope, statuses)
        return self._call("count", lambda: self.client.count(self.collection, count_filter=flt, exact=True)).count

    def delete(self, ids: Sequence[str]) -> None:
        if valid := point_ids(ids):
            selector = qm.PointIdsList(points=list(valid))
            self._call("delete", lambda: self.client.delete(self.collection, points_selector=selector, wait=True))

    def delete_scope(self, scope: Scope) -> int:
        n = self.count(scope=scope)
        selector = qm.FilterSelector(filter=_filter(scope, None) or qm.Filter())
        self._call("delete", lambda: self.client.delete(self.collection, points_selector=selector, wait=True))
        return n

    def compact(self) -> None:
        """Nothing to do here: a Qdrant server vacuums deleted points itself; local mode rewrites its SQLite."""

    def maintain(self) -> bool:
        """Nothing to do: a Qdrant server optimizes by itself, and local mode has no indexes."""
        return False

    def close(self) -> None:
        with self._lock:
            self.client.close()


def _filter(
    scope: Scope | None, statuses: Sequence[ExperienceStatus] | None, *, exact: bool = False, reader: bool = False
) -> qm.Filter | None:
    """Records of ``scope`` (containment; ``exact``: that scope only) with one of ``statuses``; with ``reader``,
    what a reader in ``scope`` may see instead (:func:`reader_lines`)."""
    must: list[qm.Condition] = []
    should: list[qm.Condition] = []
    if reader:
        should = [_line(line) for line in reader_lines(scope)]
    else:
        matches, nulls = scope_terms(scope, exact=exact)
        must = [qm.FieldCondition(key=key, match=qm.MatchValue(value=value)) for key, value in matches.items()]
        must += [qm.IsNullCondition(is_null=qm.PayloadField(key=key)) for key in nulls]
    if statuses is not None:
        must.append(qm.FieldCondition(key="status", match=qm.MatchAny(any=[s.value for s in statuses])))
    return qm.Filter(must=must, should=should or None) if must or should else None


def _line(line: Line) -> qm.Filter:
    def empty(key: str) -> qm.Condition:
        return qm.IsEmptyCondition(is_empty=qm.PayloadField(key=key))

    must: list[qm.Condition] = [qm.FieldCondition(key=k, match=qm.MatchValue(value=v)) for k, v in line.equal.items()]
    must += [empty(k) for k in line.empty]
    must += [
        qm.Filter(should=[empty(k), qm.FieldCondition(key=k, match=qm.MatchValue(value=v))])
        for k, v in line.empty_or_equal.items()
    ]
    must += [qm.FieldCondition(key=k, match=qm.MatchAny(any=list(v))) for k, v in line.any_of.items()]
    return qm.Filter(must=must)


def _revision_filter(point_id: str, revision: str) -> qm.Filter:
    """The point ``point_id`` while it is still at ``revision`` (a record from before revisions has none)."""
    has_id = qm.HasIdCondition(has_id=[point_id])
    if revision:
        return qm.Filter(must=[has_id, qm.FieldCondition(key="revision", match=qm.MatchValue(value=revision))])
    unset: list[qm.Condition] = [
        qm.IsEmptyCondition(is_empty=qm.PayloadField(key="revision")),
        qm.FieldCondition(key="revision", match=qm.MatchValue(value="")),
    ]
    return qm.Filter(must=[has_id], should=unset)
