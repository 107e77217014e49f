"""LlamaIndex adapters for expscale (node postprocessor, capture, memory block): coming with the LlamaIndex issue.

Requires the ``llamaindex`` extra: ``pip install "expscale[llamaindex]"``.
"""

try:
    import llama_index.core  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError('llamaindex_expscale needs LlamaIndex: pip install "expscale[llamaindex]"') from exc

__all__: list[str] = []
