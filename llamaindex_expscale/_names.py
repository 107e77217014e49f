"""LlamaIndex's names for our settings: each class takes its framework's name and the ones users reach for."""

from __future__ import annotations

from typing import Any

__all__ = ["renamed"]


def renamed(kwargs: dict[str, Any], field: str, *, aliases: tuple[str, ...]) -> dict[str, Any]:
    """``kwargs`` with any alias of ``field`` under its real name; two names for one value is an error."""
    given = [name for name in (field, *aliases) if name in kwargs]
    if len(given) > 1:
        raise ValueError(f"pass one of {', '.join(given)}: they name the same setting ({field})")
    if given and given[0] != field:
        kwargs = {**{k: v for k, v in kwargs.items() if k != given[0]}, field: kwargs[given[0]]}
    return kwargs
