"""Past experience as extra nodes next to the retrieved documents."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any, Literal

from expscale_core import DEFAULT_HEADER, ExpscaleError, ScoredExperience, render_experience
from expscale_core.scope import ScopeOption
from llama_index.core.instrumentation.span import active_span_id
from llama_index.core.postprocessor.types import BaseNodePostprocessor
from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode
from pydantic import ConfigDict, Field, PrivateAttr

from llamaindex_expscale._names import renamed
from llamaindex_expscale.instrumentation import Instrumentation, find_instrumentation

if TYPE_CHECKING:
    from expscale_core import ExperienceEngine

__all__ = ["ExperiencePostprocessor", "experience_node"]

log = logging.getLogger(__name__)
_META_KEYS = ["expscale_experience_id", "kind", "utility", "support", "similarity", "source_episode_ids", "distiller"]


def experience_node(hit: ScoredExperience) -> NodeWithScore:
    """A node whose text is the experience framed as advice; its metadata stays out of the prompt."""
    exp = hit.experience
    node = TextNode(
        id_=exp.id,
        text=f"{DEFAULT_HEADER}\n{render_experience(exp)}",
        metadata={
            "expscale_experience_id": exp.id,
            "kind": exp.kind.value,
            "utility": exp.utility,
            "support": exp.support,
            "similarity": hit.similarity,
            "source_episode_ids": list(exp.provenance.source_episode_ids),
            "distiller": exp.provenance.distiller,
        },
        excluded_llm_metadata_keys=_META_KEYS,
        excluded_embed_metadata_keys=_META_KEYS,
    )
    return NodeWithScore(node=node, score=hit.score)


class ExperiencePostprocessor(BaseNodePostprocessor):
    """Adds relevant experiences to the retrieved nodes, as ``NodeWithScore`` with experience metadata.

    Works in ``index.as_query_engine(node_postprocessors=[...])``, retriever query engines and chat
    engines, sync and async. It adds at most ``top_n`` experience nodes (LlamaIndex's name for a postprocessor's
    count; ``top_k=`` is accepted too), never a node that is already
    there, and records which experiences were served to the running query's episode (when
    :func:`~llamaindex_expscale.instrument` captures it). A store failure leaves the nodes unchanged.

    Example:
        >>> from expscale_core.testing import make_engine
        >>> engine = make_engine()
        >>> post = ExperiencePostprocessor(engine=engine, top_n=2, mode="append")
        >>> post.postprocess_nodes([], query_str="anything")
        []
        >>> engine.close()
    """

    model_config = ConfigDict(arbitrary_types_allowed=True, extra="forbid")

    top_n: int = Field(default=3, ge=1, description="experience nodes added at most")
    min_score: float | None = Field(default=None, ge=-1, le=1)
    mode: Literal["prepend", "append"] = "prepend"
    scope: ScopeOption = None

    _engine: ExperienceEngine = PrivateAttr()
    _capture: Instrumentation | None = PrivateAttr(default=None)

    def __init__(self, *, engine: ExperienceEngine, capture: Instrumentation | None = None, **kwargs: Any) -> None:
        super().__init__(**renamed(kwargs, "top_n", aliases=("top_k",)))
        self._engine = engine
        self._capture = capture

    @property
    def top_k(self) -> int:
        """``top_n`` under the name 0.3 used."""
        return self.top_n

    @classmethod
    def class_name(cls) -> str:
        return "ExperiencePostprocessor"

    def _episode_id(self) -> str | None:
        capture = self._capture or find_instrumentation(self._engine)
        span = active_span_id.get()
        return capture.episode_id(span) if capture is not None and span else None

    def _postprocess_nodes(
        self, nodes: list[NodeWithScore], query_bundle: QueryBundle | None = None
    ) -> list[NodeWithScore]:
        if query_bundle is None or not query_bundle.query_str.strip():
            return nodes
        try:
            hits = self._engine.retrieve(
                query_bundle.query_str,
                k=self.top_n,
                scope=self.scope,
                min_score=self.min_score,
                episode_id=self._episode_id(),
            )
        except ExpscaleError as exc:
            log.warning("expscale: retrieval failed, keeping the retrieved nodes only: %s", exc)
            return nodes
        present = {n.node.node_id for n in nodes}
        extra = [experience_node(h) for h in hits if h.experience.id not in present]
        return [*extra, *nodes] if self.mode == "prepend" else [*nodes, *extra]

    async def _apostprocess_nodes(
        self, nodes: list[NodeWithScore], query_bundle: QueryBundle | None = None
    ) -> list[NodeWithScore]:
        # The engine is synchronous; a worker thread keeps the event loop free (context, and so the span, is copied).
        return await asyncio.to_thread(self._postprocess_nodes, nodes, query_bundle)
