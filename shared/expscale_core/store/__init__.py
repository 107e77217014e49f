"""Experience stores: the port, the embedded Qdrant Edge store and the qdrant-client store (server or cluster).

Both implementations import their engine lazily: ``import expscale_core`` does not load either.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from expscale_core.store.base import Embedding, ExperienceStore, Keys, Vector

if TYPE_CHECKING:
    from expscale_core.store.edge import EdgeExperienceStore
    from expscale_core.store.qdrant import QdrantExperienceStore

__all__ = ["EdgeExperienceStore", "Embedding", "ExperienceStore", "Keys", "QdrantExperienceStore", "Vector"]


def __getattr__(name: str) -> Any:
    if name == "EdgeExperienceStore":
        from expscale_core.store.edge import EdgeExperienceStore

        return EdgeExperienceStore
    if name == "QdrantExperienceStore":
        from expscale_core.store.qdrant import QdrantExperienceStore

        return QdrantExperienceStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
