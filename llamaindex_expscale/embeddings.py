"""Embedding interop both ways: LlamaIndex embeddings for expscale, expscale embedders for LlamaIndex."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from expscale_core import Embedder
from expscale_core.embed import ProbingEmbedder
from llama_index.core.base.embeddings.base import BaseEmbedding
from pydantic import PrivateAttr

__all__ = ["ExpscaleEmbedding", "LlamaIndexEmbedder"]


class LlamaIndexEmbedder(ProbingEmbedder):
    """Any LlamaIndex ``BaseEmbedding`` as expscale's ``Embedder`` (vectors are L2-normalized).

    Example:
        >>> from llama_index.core.embeddings import MockEmbedding
        >>> LlamaIndexEmbedder(MockEmbedding(embed_dim=8)).dimension
        8
    """

    def __init__(self, embed_model: BaseEmbedding, *, dimension: int | None = None) -> None:
        super().__init__(dimension)
        self.embed_model = embed_model

    @property
    def model_id(self) -> str:
        return f"llamaindex:{type(self.embed_model).__name__}:{self.embed_model.model_name}"

    def _embed_raw(self, texts: list[str]) -> Sequence[Sequence[float]]:
        return self.embed_model.get_text_embedding_batch(texts)


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
