"""Qdrant Edge shards as the embedded store uses them: config, creation with payload indexes, copying, filters."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from expscale_core.experience import ExperienceStatus
from expscale_core.scope import Scope
from expscale_core.store._records import INDEXED_FIELDS, scope_terms, to_vector

if TYPE_CHECKING:
    import qdrant_edge as qe

__all__ = ["copy_shard", "create_shard", "edge_config", "edge_filter", "edge_revision_filter", "folder_bytes"]


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def edge_config(dimension: int) -> qe.EdgeConfig:
    import qdrant_edge as qe

    return qe.EdgeConfig(vectors=qe.EdgeVectorParams(size=dimension, distance=qe.Distance.Cosine))


def create_shard(path: Path, config: qe.EdgeConfig) -> qe.EdgeShard:
    """A new shard with keyword indexes on the fields every scoped read filters by."""
    import qdrant_edge as qe

    shard = qe.EdgeShard.create(str(path), config)
    for field in INDEXED_FIELDS:
        shard.update(qe.UpdateOperation.create_field_index(field, qe.PayloadSchemaType.Keyword))
    return shard


def copy_shard(folder: Path, config: qe.EdgeConfig, page: Callable[[Any], tuple[list[Any], Any]]) -> None:
    """A new shard at ``folder`` holding every point ``page(offset)`` yields: only live points, so it also
    leaves behind what deletions left in the old shard's WAL and segments."""
    import qdrant_edge as qe

    shutil.rmtree(folder, ignore_errors=True)
    target = create_shard(folder, config)
    try:
        offset: Any = None
        while True:
            records, offset = page(offset)
            if records:
                points = [qe.Point(r.id, to_vector(r.vector) or [], r.payload) for r in records]
                target.update(qe.UpdateOperation.upsert_points(points))
            if offset is None or not records:
                break
        target.flush()
    finally:
        target.close()


def edge_filter(
    scope: Scope | None, statuses: Sequence[ExperienceStatus] | None, *, exact: bool = False
) -> qe.Filter | None:
    import qdrant_edge as qe

    matches, nulls = scope_terms(scope, exact=exact)
    must: list[Any] = [qe.FieldCondition(key=key, match=qe.MatchValue(value)) for key, value in matches.items()]
    must += [qe.IsNullCondition(key) for key in nulls]
    if statuses is not None:
        must.append(qe.FieldCondition(key="status", match=qe.MatchAny([s.value for s in statuses])))
    return qe.Filter(must=must) if must else None


def edge_revision_filter(point_id: str, revision: str) -> qe.Filter:
    """The point ``point_id`` while it is still at ``revision`` (a record from before revisions has none)."""
    import qdrant_edge as qe

    has_id = qe.HasIdCondition({point_id})
    if revision:
        return qe.Filter(must=[has_id, qe.FieldCondition(key="revision", match=qe.MatchValue(revision))])
    unset: list[Any] = [qe.IsEmptyCondition("revision"), qe.FieldCondition(key="revision", match=qe.MatchValue(""))]
    return qe.Filter(must=[has_id], should=unset)
