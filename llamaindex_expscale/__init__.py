"""LlamaIndex adapters for expscale: a node postprocessor, instrumentation capture and a memory block.

Requires the ``llamaindex`` extra: ``pip install "expscale[llamaindex]"``.
"""

try:
    import llama_index.core  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError('llamaindex_expscale needs LlamaIndex: pip install "expscale[llamaindex]"') from exc

from llamaindex_expscale.embeddings import ExpscaleEmbedding, LlamaIndexEmbedder
from llamaindex_expscale.instrumentation import Instrumentation, instrument
from llamaindex_expscale.memory import ExperienceMemoryBlock
from llamaindex_expscale.postprocessor import ExperiencePostprocessor

__all__ = [
    "ExperienceMemoryBlock",
    "ExperiencePostprocessor",
    "ExpscaleEmbedding",
    "Instrumentation",
    "LlamaIndexEmbedder",
    "instrument",
]
