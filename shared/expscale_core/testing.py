"""Test doubles that really implement expscale's ports. Use them in your own tests too.

- :class:`HashEmbedder`: deterministic embedder; similar text gives similar vectors.
- :class:`ScriptedLLM`: a real ``openai.OpenAI`` client on an in-process mock transport that replies
  from a list or a function and records every request.
- :func:`make_engine`: an engine on in-memory Qdrant and an in-memory queue.
- :class:`FlakyStore`: a real in-memory store that fails on demand, for outage tests.
"""

from __future__ import annotations

import importlib
import json
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from expscale_core.embed.hashing import HashEmbedder
from expscale_core.settings import DistillSettings, RefineSettings, RetrieveSettings, ShareSettings

if TYPE_CHECKING:
    import openai

    from expscale_core.distill.base import Distiller
    from expscale_core.embed.base import Embedder
    from expscale_core.engine import ExperienceEngine
    from expscale_core.llm import LLM
    from expscale_core.store.base import ExperienceStore

__all__ = ["FlakyStore", "HashEmbedder", "RecordedRequest", "ScriptedLLM", "make_engine"]


@dataclass(frozen=True)
class RecordedRequest:
    """One request the scripted server received."""

    path: str
    body: dict[str, Any]

    @property
    def messages(self) -> list[dict[str, Any]]:
        return list(self.body.get("messages", []))

    @property
    def prompt_text(self) -> str:
        return "\n".join(str(m.get("content", "")) for m in self.messages)


Reply = str | int | tuple[int, str] | Exception
"""A reply's content; an int is an HTTP error status (e.g. 429, 500) and ``(status, message)`` one with its error
message; an exception is raised by the transport."""


class ScriptedLLM:
    """An OpenAI-compatible server scripted in-process (chat completions, text completions, embeddings).

    ``replies`` is a list consumed in order (the last one repeats) or a function of the request.
    Each reply is the assistant's content, an HTTP status code to fail with (optionally with its error
    message, as ``(500, "...")``), or an exception such as ``httpx.ConnectTimeout`` to raise from the transport.

    Example:
        >>> llm = ScriptedLLM(["hello"])
        >>> llm.client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}]
        ...     ).choices[0].message.content
        'hello'
        >>> llm.requests[0].messages[0]["content"]
        'hi'
    """

    def __init__(self, replies: list[Reply] | Callable[[RecordedRequest], Reply], *, max_retries: int = 2) -> None:
        self._replies = replies
        self._index = 0
        self._lock = threading.Lock()
        self.requests: list[RecordedRequest] = []
        self.client: openai.OpenAI = self._build_client(max_retries)

    def _next(self, request: RecordedRequest) -> Reply:
        if callable(self._replies):
            return self._replies(request)
        with self._lock:
            reply = self._replies[min(self._index, len(self._replies) - 1)]
            self._index += 1
            return reply

    def _build_client(self, max_retries: int) -> openai.OpenAI:
        import openai

        # openai 1.x/2.x speak httpx, 3.x speaks httpx2; use whatever the installed client is built on.
        http = importlib.import_module(openai.DefaultHttpxClient.__mro__[1].__module__.split(".")[0])

        def handle(request: Any) -> Any:
            body = json.loads(request.content or b"{}")
            recorded = RecordedRequest(path=request.url.path, body=body)
            with self._lock:
                self.requests.append(recorded)
            reply = self._next(recorded)
            if isinstance(reply, Exception):
                raise reply
            if isinstance(reply, int):
                reply = (reply, f"scripted status {reply}")
            if isinstance(reply, tuple):
                status, message = reply
                return http.Response(status, json={"error": {"message": message, "type": "scripted"}})
            if request.url.path.endswith("/embeddings"):
                return http.Response(200, json=json.loads(reply))
            if request.url.path.endswith("/completions") and not request.url.path.endswith("/chat/completions"):
                return http.Response(
                    200,
                    json={
                        "id": f"cmpl-{len(self.requests)}",
                        "object": "text_completion",
                        "created": 0,
                        "model": body.get("model", "scripted"),
                        "choices": [{"index": 0, "text": reply, "finish_reason": "stop", "logprobs": None}],
                        "usage": {
                            "prompt_tokens": len(str(body.get("prompt", "")).split()),
                            "completion_tokens": len(reply.split()),
                            "total_tokens": len(str(body.get("prompt", "")).split()) + len(reply.split()),
                        },
                    },
                )
            prompt_tokens = sum(len(str(m.get("content", "")).split()) for m in body.get("messages", []))
            return http.Response(
                200,
                json={
                    "id": f"chatcmpl-{len(self.requests)}",
                    "object": "chat.completion",
                    "created": 0,
                    "model": body.get("model", "scripted"),
                    "choices": [
                        {
                            "index": 0,
                            "finish_reason": "stop",
                            "message": {"role": "assistant", "content": reply},
                        }
                    ],
                    "usage": {
                        "prompt_tokens": prompt_tokens,
                        "completion_tokens": len(reply.split()),
                        "total_tokens": prompt_tokens + len(reply.split()),
                    },
                },
            )

        return openai.OpenAI(
            api_key="scripted",
            base_url="http://scripted.invalid/v1",
            max_retries=max_retries,
            http_client=http.Client(transport=http.MockTransport(handle)),
        )


class FlakyStore:
    """A real (temporary) Qdrant Edge store whose operations raise ``StoreError`` while ``broken`` is set.

    ``operations`` limits the failure to some methods (e.g. ``{"upsert"}``); by default every data
    operation fails. ``close`` always works.

    Example:
        >>> store = FlakyStore(operations={"upsert"})
        >>> store.ensure_collection(8); store.count()
        0
        >>> store.broken = False
        >>> store.close()
    """

    def __init__(self, *, broken: bool = True, operations: set[str] | None = None) -> None:
        from expscale_core.store.edge import EdgeExperienceStore

        self.inner = EdgeExperienceStore.temporary()
        self.broken = broken
        self.operations = operations

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.inner, name)
        if not callable(attr) or name == "close" or (self.operations is not None and name not in self.operations):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            if self.broken:
                from expscale_core.errors import StoreError

                raise StoreError(f"simulated outage in {name}")
            return attr(*args, **kwargs)

        return call


def make_engine(
    *,
    embedder: Embedder | None = None,
    distiller: Distiller | None = None,
    llm: LLM | None = None,
    store: ExperienceStore | None = None,
    queue_path: str = ":memory:",
    retrieve: RetrieveSettings | None = None,
    distill: DistillSettings | None = None,
    refine: RefineSettings | None = None,
    scope: Any = None,
    autostart: bool = True,
    screen_llm: Callable[[str, str], list[str]] | None = None,
    deployment: str | None = None,
    share: ShareSettings | None = None,
) -> ExperienceEngine:
    """An engine on a temporary Qdrant Edge store (the default) with the hash embedder and no capture delay.

    With ``llm`` and no ``distiller``, it distills with :class:`LLMDistiller`; otherwise with rules.
    Periodic refinement is off unless ``refine`` turns it on.
    """
    from expscale_core.distill.llm_distiller import LLMDistiller
    from expscale_core.distill.rules import RulesDistiller
    from expscale_core.engine import ExperienceEngine
    from expscale_core.episodes.queue import EpisodeQueue
    from expscale_core.store.edge import EdgeExperienceStore

    embedder = embedder or HashEmbedder()
    distill = distill or DistillSettings(delay_s=0.0, idle_s=0.0, retry_backoff_s=0.05)
    store = store or EdgeExperienceStore.temporary()
    store.ensure_collection(embedder.dimension)
    return ExperienceEngine(
        store=store,
        embedder=embedder,
        distiller=distiller
        or (
            LLMDistiller(llm, prompt_budget_tokens=distill.prompt_budget_tokens, replay=distill.replay)
            if llm is not None
            else RulesDistiller()
        ),
        queue=EpisodeQueue(queue_path, delay_s=0.0),
        llm=llm,
        scope=scope,
        retrieve_settings=retrieve or RetrieveSettings(min_score=0.2),
        distill_settings=distill,
        refine_settings=refine or RefineSettings(every_n_experiences=None, every_s=None),
        autostart=autostart,
        screen_llm=screen_llm,
        deployment=deployment,
        share_settings=share,
    )


def replies_json(items: Iterable[dict[str, Any]]) -> list[Reply]:
    """Convenience: JSON-encode a list of reply objects."""
    return [json.dumps(i) for i in items]
