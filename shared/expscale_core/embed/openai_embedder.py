"""Embeddings from any OpenAI-compatible ``/embeddings`` endpoint."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from expscale_core.embed.base import normalize
from expscale_core.errors import EmbedderError

if TYPE_CHECKING:
    import openai

__all__ = ["OpenAIEmbedder"]


class OpenAIEmbedder:
    """Embeds with ``client.embeddings.create``; the dimension is learned from one probe call
    unless given.

    Example:
        >>> import openai  # doctest: +SKIP
        >>> OpenAIEmbedder(openai.OpenAI(), model="text-embedding-3-small", dimension=1536)  # doctest: +SKIP
    """

    def __init__(self, client: openai.OpenAI, *, model: str, dimension: int | None = None) -> None:
        self._client = client
        self._model = model
        self._dimension = dimension

    @property
    def dimension(self) -> int:
        if self._dimension is None:
            self._dimension = len(self.embed(["dimension probe"])[0])
        return self._dimension

    @property
    def model_id(self) -> str:
        return f"openai:{self._model}"

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        if not texts:
            return []
        import openai

        kwargs: dict[str, object] = {}
        if self._dimension is not None and self._model.startswith("text-embedding-3"):
            kwargs["dimensions"] = self._dimension
        try:
            response = self._client.embeddings.create(model=self._model, input=list(texts), **kwargs)  # type: ignore[arg-type]
        except openai.OpenAIError as exc:
            raise EmbedderError(f"embedding {len(texts)} texts with {self._model} failed: {exc}") from exc
        rows = sorted(response.data, key=lambda d: d.index)
        return [normalize(row.embedding) for row in rows]
