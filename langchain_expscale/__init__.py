"""LangChain adapters for expscale: capture runs, inject experience, retrieve it as documents.

Requires the ``langchain`` extra: ``pip install "expscale[langchain]"``.
"""

try:
    import langchain.agents  # noqa: F401
    import langchain_core  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError('langchain_expscale needs LangChain: pip install "expscale[langchain]"') from exc

from langchain_expscale.callback import ExperienceCallbackHandler
from langchain_expscale.embeddings import LangChainEmbedder
from langchain_expscale.middleware import ExperienceMiddleware, ExperienceState
from langchain_expscale.retriever import ExperienceRetriever
from langchain_expscale.runnable import with_experience

__all__ = [
    "ExperienceCallbackHandler",
    "ExperienceMiddleware",
    "ExperienceRetriever",
    "ExperienceState",
    "LangChainEmbedder",
    "with_experience",
]
