"""A memory block for ``llama_index.core.memory.Memory``: relevant experience in, flushed chat out."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from expscale_core import ExpscaleError, episodes_from_messages
from expscale_core.scope import ScopeOption
from llama_index.core.base.llms.types import ChatMessage
from llama_index.core.memory import BaseMemoryBlock
from pydantic import ConfigDict, Field, PrivateAttr

from llamaindex_expscale._convert import messages as to_messages
from llamaindex_expscale._names import renamed

if TYPE_CHECKING:
    from expscale_core import ExperienceEngine

__all__ = ["ExperienceMemoryBlock"]

log = logging.getLogger(__name__)


class ExperienceMemoryBlock(BaseMemoryBlock[str]):
    """Gives agents with ``Memory`` the experiences relevant to the recent messages, and learns from the chat.

    ``aget`` retrieves for the latest user messages and renders a block under ``token_budget``.
    Messages that ``Memory`` flushes out of its short-term window are recorded as episodes (one per
    user turn) when ``capture`` is on, so they are distilled like any other run; when :func:`instrument` captures
    for the same engine, it records each run already (with its tool calls), and the block records nothing.

    Example:
        >>> from llama_index.core.memory import Memory  # doctest: +SKIP
        >>> memory = Memory.from_defaults(memory_blocks=[ExperienceMemoryBlock(engine=engine)])  # doctest: +SKIP
    """

    name: str = "experience"
    description: str | None = "Lessons from earlier, similar conversations"
    model_config = ConfigDict(arbitrary_types_allowed=True, extra="forbid")

    similarity_top_k: int = Field(default=3, ge=1, description="experiences retrieved at most (top_k/top_n too)")
    min_score: float | None = Field(default=None, ge=-1, le=1)
    token_budget: int | None = None
    scope: ScopeOption = None

    query_messages: int = Field(default=2, ge=1, description="recent user messages that form the query")
    capture: bool = True

    _engine: ExperienceEngine = PrivateAttr()

    def __init__(self, *, engine: ExperienceEngine, **kwargs: Any) -> None:
        super().__init__(**renamed(kwargs, "similarity_top_k", aliases=("top_k", "top_n")))
        self._engine = engine

    @property
    def top_k(self) -> int:
        """``similarity_top_k`` under the name 0.3 used."""
        return self.similarity_top_k

    def _query(self, messages: list[ChatMessage] | None) -> str:
        users = [m.content or "" for m in (messages or []) if str(getattr(m.role, "value", m.role)) == "user"]
        return "\n".join(users[-self.query_messages :])

    def _render(self, query: str) -> str:
        hits = self._engine.retrieve(query, k=self.similarity_top_k, scope=self.scope, min_score=self.min_score)
        return self._engine.format(hits, self.token_budget, delimiter=None)  # Memory adds <name> tags itself

    async def _aget(self, messages: list[ChatMessage] | None = None, **block_kwargs: Any) -> str:
        query = self._query(messages)
        if not query.strip():
            return ""
        try:
            return await asyncio.to_thread(self._render, query)
        except ExpscaleError as exc:
            log.warning("expscale: retrieval for the memory block failed: %s", exc)
            return ""

    async def _aput(self, messages: list[ChatMessage]) -> None:
        if not self.capture:
            return
        from llamaindex_expscale.instrumentation import find_instrumentation

        if find_instrumentation(self._engine) is not None:
            return  # instrument() already captures every agent run, with its steps: one capture per run
        scope = self.scope or self._engine.scope
        for episode in episodes_from_messages(
            to_messages(messages), scope=scope, metadata={"source": "llamaindex.memory"}
        ):
            try:
                await asyncio.to_thread(self._engine.record, episode)
            except Exception as exc:  # the agent must keep working; the chat stays in Memory's own store
                log.warning("expscale: could not record flushed chat as an episode: %s", exc)
