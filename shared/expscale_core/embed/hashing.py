"""A deterministic, dependency-free embedder for tests and offline smoke runs."""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Sequence

__all__ = ["HashEmbedder"]

_WORD = re.compile(r"\w+")


_WINDOW_CHARS = 32_768  # like a model's window: a huge input costs no more than this


class HashEmbedder:
    """Feature-hashing embedder: word unigrams and bigrams plus character trigrams.

    Texts that share words get similar vectors, so retrieval behaves sensibly in tests, but it
    knows no synonyms. Vectors are stable across processes and platforms (blake2b, not ``hash``).

    Example:
        >>> e = HashEmbedder(dimension=64)
        >>> a, b, c = e.embed(["capital of france", "the capital of france?", "sourdough recipe"])
        >>> sum(x * y for x, y in zip(a, b)) > sum(x * y for x, y in zip(a, c))
        True
    """

    def __init__(self, dimension: int = 256) -> None:
        if dimension < 8:
            raise ValueError(f"dimension must be >= 8, got {dimension}")
        self._dimension = dimension

    @property
    def dimension(self) -> int:
        return self._dimension

    @property
    def model_id(self) -> str:
        return f"hash-{self._dimension}"

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        return [self._one(t) for t in texts]

    def _features(self, text: str) -> list[tuple[str, float]]:
        words = _WORD.findall(text[:_WINDOW_CHARS].lower())
        feats = [(f"w:{w}", 1.0) for w in words]
        feats += [(f"b:{a} {b}", 0.7) for a, b in zip(words, words[1:])]
        for w in words:
            padded = f"#{w}#"
            feats += [(f"c:{padded[i : i + 3]}", 0.3) for i in range(len(padded) - 2)]
        return feats

    def _one(self, text: str) -> list[float]:
        vec = [0.0] * self._dimension
        for feat, weight in self._features(text):
            digest = hashlib.blake2b(feat.encode(), digest_size=8).digest()
            index = int.from_bytes(digest[:4], "little") % self._dimension
            sign = 1.0 if digest[4] & 1 else -1.0
            vec[index] += sign * weight
        norm = math.sqrt(sum(x * x for x in vec))
        if norm == 0.0:
            vec[0] = 1.0
            return vec
        return [x / norm for x in vec]
