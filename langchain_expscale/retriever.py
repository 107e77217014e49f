"""Experiences as LangChain documents."""

from __future__ import annotations

import logging
from typing import Any

from expscale_core import ExperienceEngine, ExpscaleError, ScoredExperience
from expscale_core.scope import ScopeOption
from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict, Field, model_validator

from langchain_expscale.callback import ExperienceCallbackHandler

__all__ = ["ExperienceRetriever", "to_document"]

log = logging.getLogger(__name__)


def to_document(hit: ScoredExperience) -> Document:
    exp = hit.experience
    return Document(
        id=exp.id,
        page_content=exp.content,
        metadata={
            "id": exp.id,
            "kind": exp.kind.value,
            "applicability": exp.applicability,
            "score": hit.score,
            "similarity": hit.similarity,
            "utility": exp.utility,
            "support": exp.support,
            "source_episode_ids": list(exp.provenance.source_episode_ids),
            "distiller": exp.provenance.distiller,
            "scope": exp.scope.model_dump(exclude_none=True),
        },
    )


class ExperienceRetriever(BaseRetriever):
    """Retrieves experiences as ``Document``s (content, plus id, kind, score, utility and provenance in metadata).

    ``invoke`` and ``ainvoke`` both work (async runs the same retrieval in a worker thread). Pass the
    ``handler`` that captures the chain to credit served experiences when feedback arrives.

    Example:
        >>> from expscale_core.testing import make_engine
        >>> engine = make_engine()
        >>> ExperienceRetriever(engine=engine, k=3).invoke("anything")
        []
        >>> ExperienceRetriever(engine=engine, search_kwargs={"k": 2}).k
        2
        >>> engine.close()
    """

    model_config = ConfigDict(arbitrary_types_allowed=True, extra="forbid")

    engine: ExperienceEngine
    k: int | None = Field(default=None, ge=1, description="results per query; default EXPSCALE_RETRIEVE__K")
    scope: ScopeOption = None
    min_score: float | None = Field(default=None, ge=-1, le=1)
    handler: ExperienceCallbackHandler | None = None
    search_kwargs: dict[str, Any] = Field(
        default_factory=dict, description="the as_retriever habit: k, min_score (or score_threshold), scope"
    )

    @model_validator(mode="before")
    @classmethod
    def _habits(cls, data: Any) -> Any:
        """``search_kwargs={"k": 2}`` as ``vectorstore.as_retriever`` takes it; anything else is named, not ignored."""
        if not isinstance(data, dict):
            return data
        if "top_k" in data:
            raise ValueError("ExperienceRetriever takes k=, not top_k= (or search_kwargs={'k': ...})")
        given = dict(data.get("search_kwargs") or {})
        unknown = sorted(set(given) - {"k", "min_score", "score_threshold", "scope"})
        if unknown:
            raise ValueError(
                f"search_kwargs {unknown} not understood: ExperienceRetriever takes k, min_score (or score_threshold) "
                "and scope"
            )
        if "score_threshold" in given:
            given["min_score"] = given.pop("score_threshold")
        for name, value in given.items():
            if data.get(name) is not None and data[name] != value:
                raise ValueError(f"{name} is given twice, as {name}= and in search_kwargs, with different values")
            data = {**data, name: value}
        return data

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun, k: int | None = None, **kwargs: Any
    ) -> list[Document]:
        try:
            episode_id = self.handler.episode_id(run_manager.run_id) if self.handler is not None else None
            hits = self.engine.retrieve(
                query, k=k or self.k, scope=self.scope, min_score=self.min_score, episode_id=episode_id
            )
        except ExpscaleError as exc:
            # A memory outage must not break the chain: it runs on without experience, as every adapter does.
            log.warning("expscale: retrieval failed, returning no experience documents: %s", exc)
            return []
        return [to_document(h) for h in hits]
