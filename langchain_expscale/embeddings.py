"""Embeddings both ways: any LangChain ``Embeddings`` as an expscale embedder, and expscale's embedder (the offline
MiniLM by default) as a LangChain ``Embeddings`` for your own vector stores."""

from __future__ import annotations

from collections.abc import Sequence

from expscale_core.embed import Embedder, ProbingEmbedder
from langchain_core.embeddings import Embeddings

__all__ = ["ExpscaleEmbeddings", "LangChainEmbedder"]


class LangChainEmbedder(ProbingEmbedder):
    """Adapts a LangChain ``Embeddings`` to expscale's ``Embedder`` protocol (vectors are L2-normalized).

    Example:
        >>> from langchain_core.embeddings import DeterministicFakeEmbedding
        >>> emb = LangChainEmbedder(DeterministicFakeEmbedding(size=16))
        >>> emb.dimension, len(emb.embed(["hi"])[0])
        (16, 16)
    """

    def __init__(self, embeddings: Embeddings, *, model_id: str | None = None, dimension: int | None = None) -> None:
        super().__init__(dimension)
        self.embeddings = embeddings
        name = getattr(embeddings, "model", None) or getattr(embeddings, "model_name", None)
        self._model_id = model_id or f"langchain:{type(embeddings).__name__}" + (f":{name}" if name else "")

    @property
    def model_id(self) -> str:
        return self._model_id

    def _embed_raw(self, texts: list[str]) -> Sequence[Sequence[float]]:
        return self.embeddings.embed_documents(texts)


class ExpscaleEmbeddings(Embeddings):
    """An expscale ``Embedder`` as a LangChain ``Embeddings``: ``ExpscaleEmbeddings(engine.embedder)`` gives your
    LangChain vector store the engine's offline MiniLM (or whatever embedder the engine has). Vectors are
    L2-normalized; the async methods run in a worker thread (LangChain's default).

    Example:
        >>> from expscale_core.testing import HashEmbedder
        >>> emb = ExpscaleEmbeddings(HashEmbedder(dimension=16))
        >>> len(emb.embed_query("hi")), len(emb.embed_documents(["a", "b"]))
        (16, 2)
    """

    def __init__(self, embedder: Embedder) -> None:
        self.embedder = embedder

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [list(v) for v in self.embedder.embed(list(texts))] if texts else []

    def embed_query(self, text: str) -> list[float]:
        return list(self.embedder.embed([text])[0])
