"""Embedding a record's retrieval keys: one call for every key of every record, split back per record."""

from __future__ import annotations

from collections.abc import Sequence

from expscale_core.embed.base import Embedder
from expscale_core.experience import Experience
from expscale_core.store.base import Keys

__all__ = ["embed_keys"]


def embed_keys(embedder: Embedder, experiences: Sequence[Experience]) -> list[Keys]:
    """Each experience's :meth:`~Experience.retrieval_keys`, embedded: its own vector first, then its phrasings'.

    Example:
        >>> from expscale_core.embed.hashing import HashEmbedder
        >>> [len(k) for k in embed_keys(HashEmbedder(16), [Experience(kind="fact", content="a", phrasings=["b", "c"])])]
        [3]
    """
    texts = [exp.retrieval_keys() for exp in experiences]
    flat = embedder.embed([t for keys in texts for t in keys]) if texts else []
    out: list[Keys] = []
    at = 0
    for keys in texts:
        out.append(flat[at : at + len(keys)])
        at += len(keys)
    return out
