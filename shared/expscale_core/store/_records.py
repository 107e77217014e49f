"""Experience <-> Qdrant point payload, shared by both store implementations (pure functions)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from expscale_core.errors import ScopeError
from expscale_core.experience import Experience, Visibility
from expscale_core.scope import Scope
from expscale_core.store.base import Embedding, Keys, Vector

__all__ = [
    "INDEXED_FIELDS",
    "SCOPE_FIELDS",
    "Line",
    "clamp_score",
    "keys_of",
    "point_ids",
    "point_vector",
    "reader_lines",
    "scope_terms",
    "stamped",
    "to_payload",
    "to_record",
    "to_vector",
    "written",
]

SCOPE_FIELDS = tuple(f"scope.{name}" for name in Scope.model_fields)
INDEXED_FIELDS = (*SCOPE_FIELDS, "status", "kind", "visibility", "published_to")
_NARROWING = tuple(name for name in Scope.model_fields if name != "namespace")


@dataclass(frozen=True)
class Line:
    """One way a record can be visible to a reader; a record is visible when it matches any line. Each field
    list is a conjunction: keys equal to a value, keys empty (unset), keys empty or equal, keys holding any of."""

    equal: dict[str, str] = field(default_factory=dict)
    empty: tuple[str, ...] = ()
    empty_or_equal: dict[str, str] = field(default_factory=dict)
    any_of: dict[str, list[str]] = field(default_factory=dict)


def reader_lines(scope: Scope | None) -> list[Line]:
    """What a reader in ``scope`` sees, as store-agnostic filter lines (:mod:`expscale_core.share`):

    1. records of its own line of scopes: its scope and the broader ones it lies in (never a sibling's or a
       narrower scope's, whatever their visibility says for others);
    2. records shared with its namespace, of its own tenant or of none (a tenant is a wall);
    3. records published to its scope or to a broader one it lies in.
    """
    if scope is None:  # fail closed: a prompt's read that names no reader sees nothing rather than everything
        raise ScopeError("a reader's search needs the reader's scope; pass scope= (the engine's scope by default)")
    ns = {"scope.namespace": scope.namespace}
    own = Line(
        equal=ns,
        empty=tuple(f"scope.{f}" for f in _NARROWING if getattr(scope, f) is None),
        empty_or_equal={f"scope.{f}": v for f in _NARROWING if (v := getattr(scope, f)) is not None},
    )
    # A tenant is a wall: shared means shared within the reader's tenant (or from above all tenants).
    tenant = scope.tenant
    shared = Line(
        equal={**ns, "visibility": Visibility.SHARED.value},
        empty=() if tenant is not None else ("scope.tenant",),
        empty_or_equal={"scope.tenant": tenant} if tenant is not None else {},
    )
    published = Line(any_of={"published_to": [a.key() for a in scope.ancestors()]})
    return [own, shared, published]


def scope_terms(scope: Scope | None, *, exact: bool = False) -> tuple[dict[str, str], list[str]]:
    """What a scoped read filters on, for either Qdrant client: payload keys that must equal a value, and keys
    that must be null (an exact-scope read also requires every field the scope leaves unset to be unset)."""
    if scope is None:
        return {}, []
    conditions = scope.conditions()
    nulls = [f"scope.{name}" for name in Scope.model_fields if name not in conditions] if exact else []
    return {f"scope.{name}": value for name, value in conditions.items()}, nulls


def stamped(e: Experience) -> Experience:
    """``e`` as it is about to be written: with a new revision, so every write, conditional or not, is seen by
    a conditional writer that read the record before it."""
    return e.model_copy(update={"revision": uuid.uuid4().hex})


def to_payload(e: Experience) -> dict[str, Any]:
    return e.model_dump(mode="json", exclude={"id"})


def to_record(point_id: Any, data: dict[str, Any] | None) -> Experience:
    return Experience.model_validate({**(data or {}), "id": str(point_id)})


def to_vector(raw: Any) -> Vector | None:
    """A stored point's own vector: the first of its keys when it holds several."""
    if raw is None:
        return None
    if isinstance(raw, dict):  # named vectors: take the unnamed default
        raw = raw.get("", next(iter(raw.values()), None))
    if raw is not None and _nested(raw):
        raw = raw[0]
    return [float(x) for x in raw] if raw is not None else None


def _nested(vector: Any) -> bool:
    return len(vector) > 0 and hasattr(vector[0], "__len__")


def keys_of(embedding: Embedding) -> Keys:
    """``embedding`` as a list of keys (one vector is one key)."""
    if _nested(embedding):
        return [[float(x) for x in key] for key in embedding]  # type: ignore[union-attr]
    return [[float(x) for x in embedding]]  # type: ignore[arg-type]


def point_vector(embedding: Embedding, *, multi_key: bool) -> list[float] | list[list[float]]:
    """What a point stores, or a query asks with: every key in a collection that scores by the best key (a query's
    one vector as a one-key multivector), else the record's own vector."""
    keys = keys_of(embedding)
    return keys if multi_key else keys[0]


def point_ids(ids: Iterable[str]) -> list[str]:
    """The ids that can be Qdrant point ids (UUIDs); others cannot exist in the store and are skipped."""
    out = []
    for i in ids:
        try:
            out.append(str(uuid.UUID(str(i))))
        except ValueError:
            continue
    return out


def clamp_score(score: float) -> float:
    """Cosine scores are in [-1, 1]; float error can put an identical vector at 1.0000001."""
    return min(1.0, max(-1.0, float(score)))


def written(
    wanted: Sequence[tuple[Experience, Experience, Any]], stored: Sequence[tuple[Experience, Any]]
) -> dict[str, Experience]:
    """Of conditional writes ``(read, to write, vector)``, those the store now holds, read back by revision."""
    now = {e.id: e.revision for e, _ in stored}
    return {new.id: new for _, new, _ in wanted if now.get(new.id) == new.revision}
