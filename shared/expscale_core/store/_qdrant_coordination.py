"""Coordination on a Qdrant server or cluster: leases and the deletion log, as points of a small side collection
(``<collection>-coordination``) beside the experiences."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any, TypeVar

from qdrant_client import QdrantClient
from qdrant_client import models as qm

from expscale_core.scope import Scope
from expscale_core.store.deletion_log import Deletion
from expscale_core.store.lease import LeaseState

__all__ = ["QdrantCoordination", "scroll_all"]

T = TypeVar("T")
_IDS = uuid.UUID("0b7f5a52-44c1-4bb8-9d0e-2f4c5e9a6d31")


class QdrantCoordination:
    """Writes are ordered strongly and reads need a majority, so a cluster agrees on who holds a lease."""

    def __init__(self, client: QdrantClient, collection: str, call: Callable[[str, Callable[[], Any]], Any]) -> None:
        self._client = client
        self._collection = f"{collection}-coordination"
        self._call = call
        self._ready = False

    def _ensure(self) -> None:
        if self._ready:
            return
        if not self._call("lease collection check", lambda: self._client.collection_exists(self._collection)):
            try:  # no vectors: a lease is only a payload
                self._call("lease collection", lambda: self._client.create_collection(self._collection, {}))
            except Exception:
                # Another engine created it at the same moment; anything else shows up on the next call.
                if not self._call("lease collection check", lambda: self._client.collection_exists(self._collection)):
                    raise
        self._ready = True

    def read(self, name: str) -> LeaseState | None:
        self._ensure()
        points = self._call(
            "lease read",
            lambda: self._client.retrieve(
                self._collection, [_point_id(name)], consistency=qm.ReadConsistencyType.MAJORITY
            ),
        )
        if not points or not points[0].payload:
            return None
        p = points[0].payload
        return LeaseState(str(p["holder"]), int(p["epoch"]), int(p["revision"]), float(p["expires_at"]))

    def insert(self, name: str, state: LeaseState) -> None:
        self._write(name, state, update_mode=qm.UpdateMode.INSERT_ONLY)

    def replace(self, name: str, state: LeaseState, *, expected: LeaseState) -> None:
        at = qm.Filter(must=[qm.FieldCondition(key="revision", match=qm.MatchValue(value=expected.revision))])
        self._write(name, state, update_filter=at)

    def _write(self, name: str, state: LeaseState, **condition: Any) -> None:
        self._ensure()
        payload = {
            "type": "lease",
            "name": name,
            "holder": state.holder,
            "epoch": state.epoch,
            "revision": state.revision,
            "expires_at": state.expires_at,
        }
        point = qm.PointStruct(id=_point_id(name), vector={}, payload=payload)
        self._call(
            "lease write",
            lambda: self._client.upsert(
                self._collection, [point], wait=True, ordering=qm.WriteOrdering.STRONG, **condition
            ),
        )

    def note_deletion(self, deletion: Deletion) -> None:
        self._ensure()
        payload = {
            "type": "deletion",
            "episode_id": deletion.episode_id,
            "scope": deletion.scope.model_dump() if deletion.scope else None,
            "at": deletion.at.isoformat(),
            "requeue": list(deletion.requeue),
        }
        point = qm.PointStruct(id=deletion.id, vector={}, payload=payload)
        self._call(
            "deletion note",
            lambda: self._client.upsert(self._collection, [point], wait=True, ordering=qm.WriteOrdering.STRONG),
        )

    def deletions(self) -> list[Deletion]:
        self._ensure()
        deletions = qm.Filter(must=[qm.FieldCondition(key="type", match=qm.MatchValue(value="deletion"))])
        out: list[Deletion] = []
        for p in scroll_all(
            self._call, self._client, self._collection, deletions, consistency=qm.ReadConsistencyType.MAJORITY
        ):
            data = p.payload or {}
            scope = Scope.model_validate(data["scope"]) if data.get("scope") else None
            at = datetime.fromisoformat(str(data["at"]))
            out.append(Deletion(str(p.id), data.get("episode_id"), scope, at, tuple(data.get("requeue") or ())))
        return out


def scroll_all(
    call: Callable[[str, Callable[[], Any]], Any],
    client: QdrantClient,
    collection: str,
    flt: qm.Filter | None,
    *,
    with_vectors: bool = False,
    consistency: qm.ReadConsistencyType | None = None,
) -> Iterator[qm.Record]:
    """Every point of ``collection`` that ``flt`` matches, a page at a time (each page through ``call``)."""
    offset: Any = None
    while True:
        page, offset = call(
            "scroll",
            lambda o=offset: client.scroll(  # type: ignore[misc]
                collection, scroll_filter=flt, limit=256, offset=o, with_vectors=with_vectors, consistency=consistency
            ),
        )
        yield from page
        if offset is None:
            return


def _point_id(name: str) -> str:
    return str(uuid.uuid5(_IDS, name))
