"""LangChain adapters for expscale: capture runs, inject experience, retrieve it as documents.

Requires the ``langchain`` extra: ``pip install "expscale[langchain]"``. Each class is imported when it is first
used: a callback-only app does not pay for the agent middleware's ``langchain.agents`` and langgraph.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

try:
    import langchain_core  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError('langchain_expscale needs LangChain: pip install "expscale[langchain]"') from exc

if TYPE_CHECKING:
    from langchain_expscale.callback import ExperienceCallbackHandler
    from langchain_expscale.embeddings import ExpscaleEmbeddings, LangChainEmbedder
    from langchain_expscale.middleware import ExperienceMiddleware, ExperienceState
    from langchain_expscale.retriever import ExperienceRetriever
    from langchain_expscale.runnable import with_experience

__all__ = [
    "ExperienceCallbackHandler",
    "ExperienceMiddleware",
    "ExperienceRetriever",
    "ExperienceState",
    "ExpscaleEmbeddings",
    "LangChainEmbedder",
    "with_experience",
]

_HOME = {
    "ExperienceCallbackHandler": "callback",
    "ExperienceMiddleware": "middleware",
    "ExperienceState": "middleware",
    "ExperienceRetriever": "retriever",
    "ExpscaleEmbeddings": "embeddings",
    "LangChainEmbedder": "embeddings",
    "with_experience": "runnable",
}


def __getattr__(name: str) -> Any:
    module = _HOME.get(name)
    if module is None:
        raise AttributeError(f"module 'langchain_expscale' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"langchain_expscale.{module}"), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
