"""Embedders: the port, the local MiniLM default, OpenAI-compatible, and the hash embedder."""

from expscale_core.embed.base import CachedEmbedder, Embedder, ProbingEmbedder, normalize
from expscale_core.embed.hashing import HashEmbedder
from expscale_core.embed.minilm import MiniLMEmbedder
from expscale_core.embed.openai_embedder import OpenAIEmbedder

__all__ = [
    "CachedEmbedder",
    "Embedder",
    "HashEmbedder",
    "MiniLMEmbedder",
    "OpenAIEmbedder",
    "ProbingEmbedder",
    "normalize",
]
