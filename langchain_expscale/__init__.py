"""LangChain adapters for expscale (callback handler, memory, retriever): coming with the LangChain issue.

Requires the ``langchain`` extra: ``pip install "expscale[langchain]"``.
"""

try:
    import langchain_core  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError('langchain_expscale needs LangChain: pip install "expscale[langchain]"') from exc

__all__: list[str] = []
