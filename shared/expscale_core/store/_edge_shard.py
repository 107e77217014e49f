"""Qdrant Edge shards as the embedded store uses them: config, creation with payload indexes, copying, filters."""

from __future__ import annotations

import functools
import json
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from expscale_core.errors import StoreError
from expscale_core.experience import Experience, ExperienceStatus
from expscale_core.scope import Scope
from expscale_core.store._records import INDEXED_FIELDS, Line, point_vector, reader_lines, scope_terms, to_payload
from expscale_core.store.base import Embedding

if TYPE_CHECKING:
    import qdrant_edge as qe

__all__ = [
    "conditional_ops",
    "copy_shard",
    "create_shard",
    "edge_config",
    "edge_filter",
    "ensure_room",
    "folder_bytes",
    "stored_multi_key",
]


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def edge_config(dimension: int, *, multi_key: bool = True) -> qe.EdgeConfig:
    """A shard whose points hold several keys, scored by the best one (``multi_key``), or one vector each."""
    import qdrant_edge as qe

    multi = qe.MultiVectorConfig(qe.MultiVectorComparator.MaxSim) if multi_key else None
    return qe.EdgeConfig(
        vectors=qe.EdgeVectorParams(size=dimension, distance=qe.Distance.Cosine, multivector_config=multi)
    )


def stored_multi_key(path: Path) -> bool:
    """Whether the shard at ``path`` holds several keys per point (True for a shard not created yet). Shards from
    before retrieval keys hold one vector each, and go on doing so."""
    try:
        vectors = json.loads((path / "edge_config.json").read_text())["vectors"]
    except FileNotFoundError:
        return True
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise StoreError(f"could not read the Qdrant Edge config at {path}: {exc}") from exc
    default = vectors.get("", {}) if isinstance(vectors, dict) else {}
    return bool(isinstance(default, dict) and default.get("multivector_config"))


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
                points = [qe.Point(r.id, r.vector, r.payload) for r in records if r.vector is not None]
                target.update(qe.UpdateOperation.upsert_points(points))
            if offset is None or not records:
                break
        target.flush()
    finally:
        target.close()


def edge_filter(
    scope: Scope | None, statuses: Sequence[ExperienceStatus] | None, *, exact: bool = False, reader: bool = False
) -> qe.Filter | None:
    """Records of ``scope`` (containment; ``exact``: that scope only) with one of ``statuses``; with ``reader``,
    what a reader in ``scope`` may see instead (:func:`reader_lines`)."""
    return _edge_filter(scope, None if statuses is None else tuple(statuses), exact, reader)


@functools.lru_cache(maxsize=1024)
def _edge_filter(
    scope: Scope | None, statuses: tuple[ExperienceStatus, ...] | None, exact: bool, reader: bool
) -> qe.Filter | None:
    # Cached: a reader's filter takes ~150 us of Python to build, and an app asks with a handful of scopes (frozen,
    # so they key it); the filter is a description the engine reads at each query, never changed.
    import qdrant_edge as qe

    must: list[Any] = []
    should: list[Any] = []
    if reader:
        should = [_line(line) for line in reader_lines(scope)]
    else:
        matches, nulls = scope_terms(scope, exact=exact)
        must = [qe.FieldCondition(key=key, match=qe.MatchValue(value)) for key, value in matches.items()]
        must += [qe.IsNullCondition(key) for key in nulls]
    if statuses is not None:
        must.append(qe.FieldCondition(key="status", match=qe.MatchAny([s.value for s in statuses])))
    return qe.Filter(must=must, should=should or None) if must or should else None


def _line(line: Line) -> qe.Filter:
    import qdrant_edge as qe

    must: list[Any] = [qe.FieldCondition(key=k, match=qe.MatchValue(v)) for k, v in line.equal.items()]
    must += [qe.IsEmptyCondition(k) for k in line.empty]
    must += [
        qe.Filter(should=[qe.IsEmptyCondition(k), qe.FieldCondition(key=k, match=qe.MatchValue(v))])
        for k, v in line.empty_or_equal.items()
    ]
    must += [qe.FieldCondition(key=k, match=qe.MatchAny(list(v))) for k, v in line.any_of.items()]
    return qe.Filter(must=must)


def _revision_filter(point_id: str, revision: str) -> qe.Filter:
    """The point ``point_id`` while it is still at ``revision`` (a record from before revisions has none)."""
    import qdrant_edge as qe

    has_id = qe.HasIdCondition({point_id})
    if revision:
        return qe.Filter(must=[has_id, qe.FieldCondition(key="revision", match=qe.MatchValue(revision))])
    unset: list[Any] = [qe.IsEmptyCondition("revision"), qe.FieldCondition(key="revision", match=qe.MatchValue(""))]
    return qe.Filter(must=[has_id], should=unset)


def conditional_ops(
    wanted: Sequence[tuple[Experience, Experience, Embedding | None]], *, insert_only: bool, multi_key: bool
) -> list[qe.UpdateOperation]:
    """The writes of ``(as read, to write, vector)`` triples: inserts that never overwrite, or writes that land
    only on a point still at the revision read (the payload alone when there is no vector)."""
    import qdrant_edge as qe

    ops = []
    for old, new, vector in wanted:
        point = None if vector is None else qe.Point(new.id, point_vector(vector, multi_key=multi_key), to_payload(new))
        if insert_only:
            assert point is not None
            ops.append(qe.UpdateOperation.upsert_points([point], None, qe.UpdateMode.InsertOnly))
        elif point is None:
            ops.append(
                qe.UpdateOperation.overwrite_payload_by_filter(_revision_filter(old.id, old.revision), to_payload(new))
            )
        else:
            ops.append(
                qe.UpdateOperation.upsert_points(
                    [point], _revision_filter(old.id, old.revision), qe.UpdateMode.UpdateOnly
                )
            )
    return ops


def ensure_room(path: Path, need_bytes: int, min_free_mb: float, what: str) -> None:
    """Refuse a write that would leave less than ``min_free_mb`` free beside the store (a full disk mid-write
    corrupts a memory-mapped segment: SIGBUS, not an error)."""
    try:
        free = shutil.disk_usage(path if path.exists() else path.parent).free
    except OSError:
        return  # cannot tell; the write itself will say
    reserve = int(min_free_mb * 2**20)
    if free < need_bytes + reserve:
        raise StoreError(
            f"not enough free disk for the experience store at {path}: {free / 2**20:.1f} MB free, the "
            f"{what} needs about {need_bytes / 2**20:.1f} MB plus a {min_free_mb:g} MB reserve "
            "(EXPSCALE_STORE__MIN_FREE_MB); free some space: episodes stay queued and are learned once there "
            "is room"
        )
