"""Ids at the public boundary: strings, or ``uuid.UUID`` as LangChain and LlamaIndex hand them out."""

from __future__ import annotations

import uuid
from collections.abc import Iterable

__all__ = ["IdLike", "coerce_id", "coerce_ids"]

IdLike = str | uuid.UUID


def coerce_id(value: object, name: str = "episode_id") -> str:
    """``value`` as the canonical string id; a clear ``TypeError`` for anything else.

    Example:
        >>> coerce_id(uuid.UUID("12345678-1234-5678-1234-567812345678"))
        '12345678-1234-5678-1234-567812345678'
    """
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, str):
        if not value.strip():
            raise ValueError(f"{name} must not be empty")
        return value
    raise TypeError(
        f"{name} must be a str or uuid.UUID (for LangChain, the run id), not {type(value).__name__}: {value!r}"
    )


def coerce_ids(values: Iterable[object], name: str = "experience_ids") -> list[str]:
    if isinstance(values, (str, uuid.UUID)):
        raise TypeError(f"{name} must be a list of ids, not a single id; wrap it: [{values!r}]")
    return [coerce_id(v, name) for v in values]
