"""The error tree of expscale.

Everything expscale raises on purpose derives from :class:`ExpscaleError`::

    ExpscaleError
    ├── ConfigError               settings or arguments that cannot work together
    ├── StoreError                the experience store failed or refused
    │   ├── CollectionMismatchError   existing collection has another dimension or distance
    │   └── StoreLockedError          another process holds the embedded Qdrant folder
    ├── EmbedderError             an embedding model could not be loaded or run
    ├── LLMError                  the LLM server failed after retries
    │   └── LLMOutputError            the LLM answered, but not in the expected shape
    └── QueueError                the durable episode queue could not be read or written

Caller mistakes (a wrong type, a score out of range) stay ``ValueError``/``TypeError``.
"""

from __future__ import annotations

__all__ = [
    "CollectionMismatchError",
    "ConfigError",
    "EmbedderError",
    "ExpscaleError",
    "LLMError",
    "LLMOutputError",
    "QueueError",
    "ScopeError",
    "StoreError",
    "StoreLockedError",
]


class ExpscaleError(Exception):
    """Root of every error expscale raises on purpose."""


class ConfigError(ExpscaleError):
    """Settings or arguments that cannot work together."""


class StoreError(ExpscaleError):
    """The experience store failed or refused an operation."""


class CollectionMismatchError(StoreError):
    """An existing collection was created for another vector size or distance."""


class StoreLockedError(StoreError):
    """Another process already has the embedded Qdrant folder open."""


class EmbedderError(ExpscaleError):
    """An embedding model could not be loaded or run."""


class LLMError(ExpscaleError):
    """The LLM server failed, after the client's own retries."""


class LLMOutputError(LLMError):
    """The LLM answered, but its output did not validate.

    Attributes:
        raw: the text the model returned, kept so the failed episode can be inspected.
    """

    def __init__(self, message: str, raw: str) -> None:
        super().__init__(message)
        self.raw = raw


class QueueError(ExpscaleError):
    """The durable episode queue could not be read or written."""


class ScopeError(ExpscaleError):
    """An operation named something that belongs to another scope (another tenant's episode, say)."""
