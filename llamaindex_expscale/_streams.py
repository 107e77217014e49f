"""Streaming results: their episode ends once the caller has consumed the stream, with the text it produced.

A streaming query returns before the answer exists: the LLM runs while the caller iterates ``response_gen``
(lazily, outside the query's span), and a streaming chat fills its response on a background thread or task.
So the episode stays open past the call: a query's token generator is wrapped to collect what it yields, and a
chat's ``write_response_to_history`` span reports when the chat response is complete. A stream that is
dropped unconsumed ends its episode with no output when the response object is garbage-collected.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import AsyncGenerator, AsyncIterator, Generator, Iterator
from contextlib import contextmanager
from typing import Any

from expscale_core import EpisodeRecorder
from llama_index.core.base.response.schema import AsyncStreamingResponse, StreamingResponse
from llama_index.core.chat_engine.types import StreamingAgentChatResponse
from llama_index.core.instrumentation.span import active_span_id

__all__ = ["StreamFollower"]


class StreamFollower:
    """Ends episodes whose result is a stream, when the stream is done."""

    def __init__(self, recorder: EpisodeRecorder) -> None:
        self._recorder = recorder
        self._chats: dict[int, str] = {}  # id(chat response) -> episode; chat responses are unhashable dataclasses
        self._lock = threading.Lock()

    def follow(self, episode_id: str, result: Any) -> bool:
        """True when ``result`` streams: its episode is ended later, by this follower."""
        watched: object = result  # what, once garbage, means nobody will consume the stream any more
        if isinstance(result, StreamingResponse) and result.response_gen is not None:
            result.response_gen = watched = self._tee(episode_id, result.response_gen)
        elif isinstance(result, AsyncStreamingResponse) and result.response_gen is not None:
            result.response_gen = watched = self._atee(episode_id, result.response_gen)
        elif isinstance(result, StreamingAgentChatResponse):
            with self._lock:
                self._chats[id(result)] = episode_id
            if result.is_done:  # the writer finished before the call returned: its span exit came too early
                self.chat_done(result)
        else:
            return False
        weakref.finalize(watched, self._dropped, id(result), episode_id)
        return True

    def chat_done(self, response: StreamingAgentChatResponse, err: BaseException | None = None) -> None:
        """``response.write_response_to_history`` finished (or failed with ``err``)."""
        with self._lock:
            episode_id = self._chats.pop(id(response), None)
        if episode_id is not None:
            if err is not None:
                self._recorder.error(episode_id, err)
            self._recorder.end(episode_id, output=response.response or None)

    def _dropped(self, key: int, episode_id: str) -> None:
        with self._lock:
            if self._chats.get(key) == episode_id:
                del self._chats[key]
        self._recorder.end(episode_id, output=None)  # a no-op when the stream already ended it

    @contextmanager
    def _recording(self, episode_id: str) -> Iterator[list[str]]:
        """The tokens a stream yields; when it ends (exhausted, failed, or closed early by the caller), they are
        the episode's output, and a failure is recorded as its error."""
        parts: list[str] = []
        try:
            yield parts
        except BaseException as exc:
            if not isinstance(exc, GeneratorExit):
                self._recorder.error(episode_id, exc)
            raise
        finally:
            self._recorder.end(episode_id, output="".join(parts))

    def _tee(self, episode_id: str, tokens: Iterator[str]) -> Generator[str, None, None]:
        with self._recording(episode_id) as parts:
            while True:
                with _under_span(episode_id):
                    token = next(tokens, _END)
                if token is _END:
                    return
                parts.append(token)
                yield token

    async def _atee(self, episode_id: str, tokens: AsyncIterator[str]) -> AsyncGenerator[str, None]:
        with self._recording(episode_id) as parts:
            while True:
                with _under_span(episode_id):
                    token = await anext(tokens, _END)
                if token is _END:
                    return
                parts.append(token)
                yield token


_END: Any = object()


@contextmanager
def _under_span(episode_id: str) -> Iterator[None]:
    # The LLM call behind a streaming query starts lazily, inside the stream's next(): run it under the query's
    # span id, so its spans and events join the episode (its prompt and answer are recorded).
    entered = active_span_id.set(episode_id)
    try:
        yield
    finally:
        active_span_id.reset(entered)
