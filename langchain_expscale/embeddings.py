"""Any LangChain ``Embeddings`` as an expscale embedder."""

from __future__ import annotations

from collections.abc import Sequence

from expscale_core.embed import ProbingEmbedder
from langchain_core.embeddings import Embeddings

__all__ = ["LangChainEmbedder"]


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
