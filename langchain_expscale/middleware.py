"""Experience memory for ``langchain.agents.create_agent``: retrieve, inject into the system prompt, capture."""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from expscale_core import Episode, ErrorStep, ExpscaleError, Scope, ToolStep
from expscale_core.episode import Step
from langchain.agents.middleware import AgentMiddleware, AgentState, ModelRequest, ModelResponse, ToolCallRequest
from langchain_core.messages import HumanMessage, SystemMessage
from typing_extensions import NotRequired

from langchain_expscale._messages import episode_steps, text_of

if TYPE_CHECKING:
    from expscale_core import ExperienceEngine
    from langgraph.runtime import Runtime

__all__ = ["ExperienceMiddleware", "ExperienceState"]

log = logging.getLogger(__name__)


class ExperienceState(AgentState):
    """Agent state with the episode id (give feedback on it) and the rendered experience block."""

    expscale_episode_id: NotRequired[str]
    expscale_experience: NotRequired[str]
    expscale_start: NotRequired[int]


class ExperienceMiddleware(AgentMiddleware[ExperienceState, Any]):
    """Gives an agent relevant past experience and learns from its runs.

    - Before the run, it retrieves experiences for the task (the latest user message), once per run.
    - Before each model call, it appends them to the system prompt as a delimited block under a token
      budget, framed as advice to weigh rather than instructions.
    - After the run, it records the run (task, model turns, tool calls and results, answer) as an
      episode. The episode id is ``result["expscale_episode_id"]``; pass it to ``engine.feedback``,
      which also credits the experiences that were served.
    - A run that fails (a model or tool error) is recorded too, with its error; the exception reaches the app
      as before, carrying the episode id as ``exc.expscale_episode_id`` (and in its notes).

    Retrieval or recording failures are logged; the agent runs as if there were no memory.

    Example:
        >>> from langchain.agents import create_agent  # doctest: +SKIP
        >>> agent = create_agent(model, tools, middleware=[ExperienceMiddleware(engine)])  # doctest: +SKIP
    """

    state_schema = ExperienceState

    def __init__(
        self,
        engine: ExperienceEngine,
        *,
        k: int | None = None,
        scope: Scope | dict[str, Any] | str | None = None,
        min_score: float | None = None,
        token_budget: int | None = None,
        capture: bool = True,
    ) -> None:
        super().__init__()
        self.engine = engine
        self.k = k
        self.scope = Scope.coerce(scope) if scope is not None else None
        self.min_score = min_score
        self.token_budget = token_budget
        self.capture = capture

    def _handler_episode(self) -> str | None:
        """The episode an :class:`ExperienceCallbackHandler` of this engine, attached to this run, is recording:
        then that handler captures the run (with every callback event), and this middleware records nothing."""
        from langgraph.config import get_config

        from langchain_expscale.callback import ExperienceCallbackHandler

        try:
            callbacks = get_config().get("callbacks")
        except RuntimeError:  # not inside a graph run
            return None
        parent = getattr(callbacks, "parent_run_id", None)
        for handler in getattr(callbacks, "handlers", None) or []:
            if isinstance(handler, ExperienceCallbackHandler) and handler.engine is self.engine and parent:
                return handler.episode_id(parent)
        return None

    def before_agent(self, state: ExperienceState, runtime: Runtime[Any]) -> dict[str, Any] | None:
        messages = state["messages"]
        task = next((text_of(m.content) for m in reversed(messages) if isinstance(m, HumanMessage)), "")
        captured_by = self._handler_episode()
        episode_id = captured_by or str(uuid.uuid4())
        block = ""
        try:
            hits = self.engine.retrieve(
                task, k=self.k, scope=self.scope, min_score=self.min_score, episode_id=episode_id
            )
            block = self.engine.format(hits, self.token_budget)
        except ExpscaleError as exc:
            log.warning("expscale: retrieval failed, running the agent without experience: %s", exc)
        start = max((i for i, m in enumerate(messages) if isinstance(m, HumanMessage)), default=0)
        # start -1: the callback handler records this run; one capture per run whatever the combination.
        return {
            "expscale_episode_id": episode_id,
            "expscale_experience": block,
            "expscale_start": -1 if captured_by else start,
        }

    def _with_experience(self, request: ModelRequest[Any]) -> ModelRequest[Any]:
        block = (request.state or {}).get("expscale_experience")
        if not isinstance(block, str) or not block:
            return request
        current = request.system_message
        if current is None:
            return request.override(system_message=SystemMessage(content=block))
        if isinstance(current.content, str):
            content: Any = f"{current.content}\n\n{block}" if current.content else block
        else:
            content = [*current.content, {"type": "text", "text": f"\n\n{block}"}]
        return request.override(system_message=SystemMessage(content=content))

    # A run that fails never reaches after_agent, yet its error is what an "error -> fix" lesson is made of:
    # the model and tool wrappers record it on the way out, then let the exception go on to the app.
    def wrap_model_call(
        self, request: ModelRequest[Any], handler: Callable[[ModelRequest[Any]], ModelResponse[Any]]
    ) -> Any:
        try:
            return handler(self._with_experience(request))
        except Exception as exc:
            self._record(request.state, failure=exc)
            raise

    async def awrap_model_call(
        self, request: ModelRequest[Any], handler: Callable[[ModelRequest[Any]], Awaitable[ModelResponse[Any]]]
    ) -> Any:
        try:
            return await handler(self._with_experience(request))
        except Exception as exc:
            self._record(request.state, failure=exc)
            raise

    def wrap_tool_call(self, request: ToolCallRequest, handler: Callable[[ToolCallRequest], Any]) -> Any:
        try:
            return handler(request)
        except Exception as exc:
            self._record(request.state, failure=exc, tool_call=request.tool_call)
            raise

    async def awrap_tool_call(
        self, request: ToolCallRequest, handler: Callable[[ToolCallRequest], Awaitable[Any]]
    ) -> Any:
        try:
            return await handler(request)
        except Exception as exc:
            self._record(request.state, failure=exc, tool_call=request.tool_call)
            raise

    def after_agent(self, state: ExperienceState, runtime: Runtime[Any]) -> dict[str, Any] | None:
        self._record(state)
        return None

    def _record(self, state: Any, *, failure: Exception | None = None, tool_call: Any = None) -> None:
        if not self.capture or not isinstance(state, dict) or "expscale_episode_id" not in state:
            return
        if state.get("expscale_start", 0) < 0:  # an ExperienceCallbackHandler on the run records it
            return
        try:
            messages = state["messages"][state.get("expscale_start", 0) :]
            if not messages:
                return
            steps: list[Step] = list(episode_steps(messages[1:]))
            final = messages[-1]
            output = text_of(final.content) if final is not messages[0] and failure is None else None
            if tool_call is not None:
                steps.append(ToolStep(tool=str(tool_call.get("name")), input=tool_call.get("args"), error=str(failure)))
            if failure is not None:
                steps.append(ErrorStep(error_type=type(failure).__name__, message=str(failure)))
            self.engine.record(
                Episode(
                    id=state["expscale_episode_id"],
                    scope=self.scope or self.engine.scope,
                    input=text_of(messages[0].content),
                    output=output,
                    steps=steps,
                    metadata={"source": "langchain.agent", **({"failed": True} if failure is not None else {})},
                )
            )
            if failure is not None:  # so that the app can give feedback on the run that failed
                add_note = getattr(failure, "add_note", None)  # Python 3.11+
                if add_note is not None:
                    add_note(f"expscale episode id: {state['expscale_episode_id']}")
                with contextlib.suppress(AttributeError, TypeError):
                    failure.expscale_episode_id = state["expscale_episode_id"]  # type: ignore[attr-defined]
        except Exception as exc:  # the agent's answer (or its own error) must reach the app whatever happens here
            log.warning("expscale: could not record the agent run %s: %s", state.get("expscale_episode_id"), exc)
