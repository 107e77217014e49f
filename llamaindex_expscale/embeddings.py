"""Embedding interop both ways: LlamaIndex embeddings for expscale, expscale embedders for LlamaIndex."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from expscale_core import Embedder
from expscale_core.embed import normalize
from llama_index.core.base.embeddings.base import BaseEmbedding
from pydantic import PrivateAttr

__all__ = ["ExpscaleEmbedding", "LlamaIndexEmbedder"]


class LlamaIndexEmbedder:
    """Any LlamaIndex ``BaseEmbedding`` as expscale's ``Embedder`` (vectors are L2-normalized).

    Example:
        >>> from llama_index.core.embeddings import MockEmbedding
        >>> LlamaIndexEmbedder(MockEmbedding(embed_dim=8)).dimension
        8
    """

    def __init__(self, embed_model: BaseEmbedding, *, dimension: int | None = None) -> None:
        self.embed_model = embed_model
        self._dimension = dimension

    @property
    def dimension(self) -> int:
        if self._dimension is None:
            self._dimension = len(self.embed_model.get_text_embedding("dimension probe"))
        return self._dimension

    @property
    def model_id(self) -> str:
        return f"llamaindex:{type(self.embed_model).__name__}:{self.embed_model.model_name}"

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        if not texts:
            return []
        return [normalize(v) for v in self.embed_model.get_text_embedding_batch(list(texts))]


class ExpscaleEmbedding(BaseEmbedding):
    """An expscale embedder (for example the offline MiniLM) as a LlamaIndex embedding model.

    Example:
        >>> from expscale_core.testing import HashEmbedder
        >>> len(ExpscaleEmbedding(HashEmbedder(16)).get_text_embedding("hi"))
        16
    """

    _embedder: Embedder = PrivateAttr()

    def __init__(self, embedder: Embedder, **kwargs: Any) -> None:
        super().__init__(model_name=embedder.model_id, **kwargs)
        self._embedder = embedder

    @classmethod
    def class_name(cls) -> str:
        return "ExpscaleEmbedding"

    def _get_query_embedding(self, query: str) -> list[float]:
        return self._embedder.embed([query])[0]

    def _get_text_embedding(self, text: str) -> list[float]:
        return self._embedder.embed([text])[0]

    def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        return self._embedder.embed(texts)

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return self._get_query_embedding(query)
