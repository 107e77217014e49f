"""Embeddings from any OpenAI-compatible ``/embeddings`` endpoint."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from expscale_core.embed.base import ProbingEmbedder
from expscale_core.errors import EmbedderError

if TYPE_CHECKING:
    import openai

__all__ = ["OpenAIEmbedder"]


class OpenAIEmbedder(ProbingEmbedder):
    """Embeds with ``client.embeddings.create``; the dimension is learned from one probe call
    unless given.

    Example:
        >>> import openai  # doctest: +SKIP
        >>> OpenAIEmbedder(openai.OpenAI(), model="text-embedding-3-small", dimension=1536)  # doctest: +SKIP
    """

    def __init__(self, client: openai.OpenAI, *, model: str, dimension: int | None = None) -> None:
        super().__init__(dimension)
        self._client = client
        self._model = model
        # text-embedding-3 models can shorten their vectors on request; others only have their native size.
        self._requested_dimension = dimension if model.startswith("text-embedding-3") else None

    @property
    def model_id(self) -> str:
        return f"openai:{self._model}"

    def _embed_raw(self, texts: list[str]) -> Sequence[Sequence[float]]:
        import openai

        try:
            if self._requested_dimension is not None:
                response = self._client.embeddings.create(
                    model=self._model, input=texts, dimensions=self._requested_dimension
                )
            else:
                response = self._client.embeddings.create(model=self._model, input=texts)
        except openai.OpenAIError as exc:
            raise EmbedderError(f"embedding {len(texts)} texts with {self._model} failed: {exc}") from exc
        return [row.embedding for row in sorted(response.data, key=lambda d: d.index)]
