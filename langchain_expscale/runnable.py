"""Experience memory for LCEL chains: one line around ``prompt | model | parser``."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from expscale_core import ExpscaleError, Scope
from langchain_core.runnables import Runnable, RunnableConfig, RunnableLambda

from langchain_expscale._messages import to_text
from langchain_expscale.callback import ExperienceCallbackHandler

if TYPE_CHECKING:
    from expscale_core import ExperienceEngine

__all__ = ["with_experience"]

log = logging.getLogger(__name__)


def with_experience(
    chain: Runnable[Any, Any],
    engine: ExperienceEngine,
    *,
    memory_key: str = "experience",
    input_key: str | None = None,
    k: int | None = None,
    scope: Scope | dict[str, Any] | str | None = None,
    min_score: float | None = None,
    token_budget: int | None = None,
    handler: ExperienceCallbackHandler | None = None,
    capture: bool = True,
    query_key: str | None = None,
) -> Runnable[Any, Any]:
    """Wrap ``chain`` so its input gets the relevant experiences under ``memory_key`` and its runs are learned.

    Named as LangChain memory names them: the prompt uses ``{experience}`` (or your ``memory_key``), an
    empty string when nothing relevant is stored; ``input_key`` is the user's input field. The query is
    ``inputs[input_key]``, or the input itself when it is a string,
    or the input's only/obvious text field. With ``capture`` (default), each run is recorded as an
    episode whose id is the root run id, and the experiences served to it are credited on feedback.

    Example:
        >>> from langchain_core.prompts import ChatPromptTemplate  # doctest: +SKIP
        >>> prompt = ChatPromptTemplate.from_template("{experience}\\n\\nQuestion: {question}")  # doctest: +SKIP
        >>> chain = with_experience(prompt | model | StrOutputParser(), engine)  # doctest: +SKIP
        >>> chain.invoke({"question": "..."})  # doctest: +SKIP
    """
    if query_key is not None:
        warnings.warn(
            "with_experience(query_key=...) is now input_key=..., as in LangChain memory; the injected "
            "variable is memory_key=...",
            DeprecationWarning,
            stacklevel=2,
        )
        input_key = input_key or query_key
    target_scope = Scope.coerce(scope) if scope is not None else None
    recorder_handler = handler or ExperienceCallbackHandler(engine, scope=target_scope)

    def add_experience(inputs: Any, config: RunnableConfig) -> dict[str, Any]:
        if isinstance(inputs, Mapping):
            if input_key is not None and input_key not in inputs:
                raise KeyError(
                    f"with_experience(input_key={input_key!r}) but the input has only {sorted(inputs)}; "
                    "pass the name of the field that holds the user's question"
                )
            query = to_text(inputs[input_key]) if input_key else to_text(inputs)
            values = dict(inputs)
        else:
            query = to_text(inputs)
            values = {input_key or "input": inputs}
        run_id = getattr(config.get("callbacks"), "parent_run_id", None)
        episode_id = recorder_handler.episode_id(run_id) if run_id is not None else None
        block = ""
        try:
            hits = engine.retrieve(query, k=k, scope=target_scope, min_score=min_score, episode_id=episode_id)
            block = engine.format(hits, token_budget)
        except ExpscaleError as exc:
            log.warning("expscale: retrieval failed, running the chain without experience: %s", exc)
        values[memory_key] = block
        return values

    wrapped: Runnable[Any, Any] = RunnableLambda(add_experience, name="expscale_experience") | chain
    return wrapped.with_config(callbacks=[recorder_handler]) if capture else wrapped
