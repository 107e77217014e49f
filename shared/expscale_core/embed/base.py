"""The embedder port and the caching, batching wrapper every embedder gets."""

from __future__ import annotations

import math
import threading
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

__all__ = ["CachedEmbedder", "Embedder", "ProbingEmbedder", "normalize"]


def normalize(vector: Sequence[float]) -> list[float]:
    """L2-normalize, as the :class:`Embedder` contract requires; a zero vector stays zero."""
    norm = math.sqrt(sum(x * x for x in vector))
    return [x / norm for x in vector] if norm else [float(x) for x in vector]


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into vectors.

    Contract: ``embed`` returns one vector per text, in order, each of length ``dimension``,
    L2-normalized so cosine similarity is a dot product. The same text gives the same vector
    for the life of ``model_id``; change ``model_id`` when vectors change.
    """

    @property
    def dimension(self) -> int: ...

    @property
    def model_id(self) -> str: ...

    def embed(self, texts: Sequence[str]) -> list[list[float]]: ...


class ProbingEmbedder(ABC):
    """Base for embedders backed by a model whose size is learned from one call: subclasses implement
    ``_embed_raw`` and ``model_id``; vectors are normalized and the dimension is probed on first use."""

    def __init__(self, dimension: int | None = None) -> None:
        self._dimension = dimension

    @property
    @abstractmethod
    def model_id(self) -> str: ...

    @abstractmethod
    def _embed_raw(self, texts: list[str]) -> Sequence[Sequence[float]]: ...

    @property
    def dimension(self) -> int:
        if self._dimension is None:
            self._dimension = len(self._embed_raw(["dimension probe"])[0])
        return self._dimension

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        if not texts:
            return []
        return [normalize(v) for v in self._embed_raw(list(texts))]


_MAX_CACHED_CHARS = 8192


class CachedEmbedder:
    """Wraps an embedder with an LRU cache of repeated texts and fixed-size batches.

    Example:
        >>> from expscale_core.testing import HashEmbedder
        >>> emb = CachedEmbedder(HashEmbedder(dimension=64), cache_size=100, batch_size=8)
        >>> emb.embed(["a", "a"])[0] == emb.embed(["a"])[0]
        True
    """

    def __init__(self, inner: Embedder, *, cache_size: int = 4096, batch_size: int = 32) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.inner = inner
        self._cache: OrderedDict[str, list[float]] = OrderedDict()
        self._cache_size = cache_size
        self._batch_size = batch_size
        self._lock = threading.Lock()
        self.misses = 0

    @property
    def dimension(self) -> int:
        return self.inner.dimension

    @property
    def model_id(self) -> str:
        return self.inner.model_id

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        found: dict[str, list[float]] = {}
        with self._lock:
            for text in texts:
                if text in self._cache:
                    self._cache.move_to_end(text)
                    found[text] = self._cache[text]
        missing = list(dict.fromkeys(t for t in texts if t not in found))
        for start in range(0, len(missing), self._batch_size):
            batch = missing[start : start + self._batch_size]
            vectors = self.inner.embed(batch)
            if len(vectors) != len(batch):
                raise RuntimeError(f"embedder {self.model_id} returned {len(vectors)} vectors for {len(batch)}")
            found.update(zip(batch, vectors))
        self.misses += len(missing)
        if missing and self._cache_size:
            with self._lock:
                for text in missing:
                    if len(text) <= _MAX_CACHED_CHARS:  # a huge one-off input must not stay in memory as a key
                        self._cache[text] = found[text]
                while len(self._cache) > self._cache_size:
                    self._cache.popitem(last=False)
        return [found[t] for t in texts]
