"""expscale_core: experience memory for LLM applications, framework-free.

Capture episodes, distill them in the background into compact experiences, store them in Qdrant,
retrieve them for new queries, and refine the store over time (arXiv 2509.18771).
"""

from typing import TYPE_CHECKING, Any

from expscale_core.capture.recorder import EpisodeRecorder, episodes_from_messages, redact_episode
from expscale_core.distill import Action, Decision, Distiller, LLMDistiller, RulesDistiller
from expscale_core.embed import CachedEmbedder, Embedder, HashEmbedder, MiniLMEmbedder, OpenAIEmbedder
from expscale_core.engine import EngineStats, ExperienceEngine
from expscale_core.episode import (
    Episode,
    EpisodeDraft,
    EpisodeStatus,
    ErrorStep,
    LLMStep,
    Message,
    ObservationStep,
    Outcome,
    RetrievalStep,
    ToolStep,
)
from expscale_core.episodes.queue import EpisodeQueue
from expscale_core.errors import (
    CollectionMismatchError,
    ConfigError,
    EmbedderError,
    ExpscaleError,
    LLMError,
    LLMOutputError,
    QueueError,
    ScopeError,
    StoreError,
    StoreLockedError,
)
from expscale_core.experience import (
    Experience,
    ExperienceKind,
    ExperienceStatus,
    Provenance,
    ScoredExperience,
)
from expscale_core.llm import LLM, OpenAILLM
from expscale_core.refine.refiner import RefineReport
from expscale_core.scope import Scope
from expscale_core.serve.inject import DEFAULT_HEADER, format_experiences, render_experience
from expscale_core.settings import ExpscaleSettings
from expscale_core.store import ExperienceStore

if TYPE_CHECKING:
    from expscale_core.store.edge import EdgeExperienceStore
    from expscale_core.store.qdrant import QdrantExperienceStore

__version__ = "0.2.0"


def __getattr__(name: str) -> Any:
    # The stores' engines (qdrant-edge, qdrant-client) load only when a store is used.
    if name in ("EdgeExperienceStore", "QdrantExperienceStore"):
        from expscale_core import store

        return getattr(store, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "DEFAULT_HEADER",
    "LLM",
    "Action",
    "CachedEmbedder",
    "CollectionMismatchError",
    "ConfigError",
    "Decision",
    "Distiller",
    "EdgeExperienceStore",
    "Embedder",
    "EmbedderError",
    "EngineStats",
    "Episode",
    "EpisodeDraft",
    "EpisodeQueue",
    "EpisodeRecorder",
    "EpisodeStatus",
    "ErrorStep",
    "Experience",
    "ExperienceEngine",
    "ExperienceKind",
    "ExperienceStatus",
    "ExperienceStore",
    "ExpscaleError",
    "ExpscaleSettings",
    "HashEmbedder",
    "LLMDistiller",
    "LLMError",
    "LLMOutputError",
    "LLMStep",
    "Message",
    "MiniLMEmbedder",
    "ObservationStep",
    "OpenAIEmbedder",
    "OpenAILLM",
    "Outcome",
    "Provenance",
    "QdrantExperienceStore",
    "QueueError",
    "RefineReport",
    "RetrievalStep",
    "RulesDistiller",
    "Scope",
    "ScopeError",
    "ScoredExperience",
    "StoreError",
    "StoreLockedError",
    "ToolStep",
    "episodes_from_messages",
    "format_experiences",
    "redact_episode",
    "render_experience",
]
