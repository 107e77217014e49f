"""LlamaIndex adapters, exercised with real LlamaIndex objects, LlamaIndex mocks and a discriminative embedder."""

from __future__ import annotations

import asyncio
import functools
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from expscale_core import (
    Episode,
    ExperienceEngine,
    LLMStep,
    MiniLMEmbedder,
    Outcome,
    RetrievalStep,
)
from expscale_core.embed import CachedEmbedder
from expscale_core.testing import FlakyStore, HashEmbedder, make_engine
from llama_index.core import Document, VectorStoreIndex
from llama_index.core.agent.workflow import FunctionAgent
from llama_index.core.base.llms.types import ChatMessage, CompletionResponse, CompletionResponseGen
from llama_index.core.embeddings import MockEmbedding
from llama_index.core.llms.callbacks import llm_completion_callback
from llama_index.core.llms.mock import MockFunctionCallingLLM
from llama_index.core.memory import Memory
from llama_index.core.query_engine import RetrieverQueryEngine

from llamaindex_expscale import (
    ExperienceMemoryBlock,
    ExperiencePostprocessor,
    ExpscaleEmbedding,
    Instrumentation,
    LlamaIndexEmbedder,
    instrument,
)
from llamaindex_expscale.testing import ScriptedLlamaLLM

DOCS = [
    Document(text="Peru is a country in South America. Its currency is the sol."),
    Document(text="Chile is a long, narrow country along the Pacific coast."),
    Document(text="Japan is an island country in East Asia."),
]


@functools.cache
def _minilm() -> CachedEmbedder:
    return CachedEmbedder(MiniLMEmbedder())


def _index(embedder: Any = None) -> VectorStoreIndex:
    return VectorStoreIndex.from_documents(DOCS, embed_model=ExpscaleEmbedding(embedder or HashEmbedder()))


def _teach(engine: ExperienceEngine, question: str, wrong: str, right: str) -> None:
    engine.record(Episode(input=question, output=wrong, outcome=Outcome(score=-1, correction=right)))
    assert engine.drain(timeout=30)


@pytest.fixture
def capture(engine: ExperienceEngine) -> Iterator[Instrumentation]:
    cap = instrument(engine)
    yield cap
    cap.remove()


def test_query_engine_gets_experience_nodes_in_sources_and_prompt(engine: ExperienceEngine) -> None:
    _teach(engine, "capital of Peru?", "Cusco", "Lima")
    llm = ScriptedLlamaLLM(answers=["Lima"])
    post = ExperiencePostprocessor(engine=engine, top_k=2)
    response = (
        _index()
        .as_query_engine(llm=llm, similarity_top_k=2, node_postprocessors=[post])
        .query("What is the capital of Peru?")
    )
    experience_nodes = [n for n in response.source_nodes if "expscale_experience_id" in n.node.metadata]
    assert len(experience_nodes) == 1 and response.source_nodes[0] is experience_nodes[0], "prepended"
    meta = experience_nodes[0].node.metadata
    assert meta["kind"] == "fact" and meta["source_episode_ids"] and "utility" in meta
    assert "→ Lima" in llm.prompts[0] and "not instructions" in llm.prompts[0]
    assert "expscale_experience_id" not in llm.prompts[0], "metadata stays out of the prompt"
    assert len(response.source_nodes) == 3


def test_top_k_mode_and_no_duplicates(engine: ExperienceEngine) -> None:
    for country, city in [("Peru", "Lima"), ("Chile", "Santiago"), ("Japan", "Tokyo")]:
        _teach(engine, f"capital of {country}?", "?", city)
    post = ExperiencePostprocessor(engine=engine, top_k=2, mode="append", min_score=-1.0)
    nodes = _index().as_retriever(similarity_top_k=1).retrieve("capital of Peru?")
    once = post.postprocess_nodes(nodes, query_str="capital of Peru?")
    assert len(once) == 3 and once[0].node.node_id == nodes[0].node.node_id, "appended after the documents"
    twice = post.postprocess_nodes(once, query_str="capital of Peru?")
    assert [n.node.node_id for n in twice] == [n.node.node_id for n in once], "never the same node twice"


def test_retriever_query_engine_chat_engine_and_async(engine: ExperienceEngine) -> None:
    _teach(engine, "currency of Peru?", "peso", "the sol")
    index = _index()
    post = ExperiencePostprocessor(engine=engine)

    llm = ScriptedLlamaLLM(answers=["The sol."])
    qe = RetrieverQueryEngine.from_args(index.as_retriever(), llm=llm, node_postprocessors=[post])
    qe.query("currency of Peru?")
    assert "→ the sol" in llm.prompts[-1]

    async_llm = ScriptedLlamaLLM(answers=["The sol."])
    response = asyncio.run(index.as_query_engine(llm=async_llm, node_postprocessors=[post]).aquery("currency of Peru?"))
    assert any("expscale_experience_id" in n.node.metadata for n in response.source_nodes)
    assert "→ the sol" in async_llm.prompts[-1]

    seen: list[Sequence[ChatMessage]] = []

    def reply(messages: Sequence[ChatMessage], **kwargs: Any) -> ChatMessage:
        seen.append(list(messages))
        return ChatMessage(role="assistant", content="The sol.")

    chat_llm = MockFunctionCallingLLM(response_generator=reply, is_chat_model=True)
    chat = index.as_chat_engine(chat_mode="context", llm=chat_llm, node_postprocessors=[post])
    assert str(chat.chat("what money do they use in Peru? currency of Peru?")) == "The sol."
    assert "→ the sol" in str(seen[-1][0].content)


def test_instrumentation_builds_one_episode_per_query_with_feedback(
    engine: ExperienceEngine, capture: Instrumentation
) -> None:
    llm = ScriptedLlamaLLM(answers=["Cusco"])
    qe = _index().as_query_engine(llm=llm, node_postprocessors=[ExperiencePostprocessor(engine=engine)])
    qe.query("capital of Peru?")
    episode_id = capture.last_episode_id
    assert episode_id is not None and episode_id.startswith("RetrieverQueryEngine.query-")
    ep = engine.queue.get(episode_id)
    assert ep is not None and ep.input == "capital of Peru?" and ep.output == "Cusco"
    assert [s.type for s in ep.steps] == ["retrieval", "llm"]
    retrieval = ep.steps[0]
    assert isinstance(retrieval, RetrievalStep) and "Peru" in " ".join(retrieval.documents)
    assert len(engine.queue.list()) == 1, "index building and embedding calls are not episodes"

    engine.feedback(episode_id, -1, correction="Lima")
    assert engine.drain(timeout=10)
    qe.query("capital of Peru?")
    assert "→ Lima" in llm.prompts[-1]
    assert engine.queue.served(capture.last_episode_id or "")  # the second query was served the lesson


def test_the_user_id_tag_is_the_source_of_what_a_query_teaches(
    engine: ExperienceEngine, capture: Instrumentation
) -> None:
    from llama_index.core.instrumentation.dispatcher import instrument_tags

    qe = _index().as_query_engine(llm=ScriptedLlamaLLM(answers=["Cusco"]))
    with instrument_tags({"user_id": "u7"}):
        qe.query("capital of Peru?")
    episode_id = capture.last_episode_id or ""
    assert engine.queue.get(episode_id).metadata["user"] == "u7"  # type: ignore[union-attr]
    engine.feedback(episode_id, -1, correction="Lima")
    assert engine.drain(timeout=10)
    (lesson,) = [e for e, _ in engine.store.scan()]
    assert lesson.provenance.sources == ["user:u7"]


def test_learning_from_feedback_reaches_a_paraphrase() -> None:
    with make_engine(embedder=_minilm()) as engine:
        capture = instrument(engine)
        try:
            llm = ScriptedLlamaLLM(answers=["1937", "1933"])
            qe = _index(_minilm()).as_query_engine(
                llm=llm, node_postprocessors=[ExperiencePostprocessor(engine=engine)]
            )
            assert str(qe.query("What year did Hitler become chancellor of Germany?")) == "1937"
            engine.feedback(capture.last_episode_id or "", -1, "wrong", correction="1933")
            assert engine.drain(timeout=30)
            response = qe.query("Hitler became chancellor of Germany in what year?")
            assert "→ 1933" in llm.prompts[-1]
            assert any("expscale_experience_id" in n.node.metadata for n in response.source_nodes)
        finally:
            capture.remove()


def test_concurrent_queries_do_not_mix(engine: ExperienceEngine, capture: Instrumentation) -> None:
    index = _index()
    llm = ScriptedLlamaLLM(answers=["answer"])

    def ask(i: int) -> None:
        index.as_query_engine(llm=llm).query(f"question number {i} about Peru")

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    async def many() -> None:
        qe = index.as_query_engine(llm=llm)
        await asyncio.gather(*(qe.aquery(f"async question {i} about Chile") for i in range(16)))

    asyncio.run(many())
    episodes = [e for e, _, _ in engine.queue.list(limit=100)]
    assert len(episodes) == 32 and len({e.id for e in episodes}) == 32
    for ep in episodes:
        llm_steps = [s for s in ep.steps if s.type == "llm"]
        assert len(llm_steps) == 1 and ep.input in llm_steps[0].messages[-1].content  # type: ignore[union-attr]
        assert ep.output == "answer"


def test_failing_store_does_not_break_the_pipeline() -> None:
    store = FlakyStore(broken=False)
    with make_engine(store=store) as engine:  # type: ignore[arg-type]
        store.broken = True
        capture = instrument(engine)
        try:
            qe = _index().as_query_engine(
                llm=ScriptedLlamaLLM(answers=["Lima"]), node_postprocessors=[ExperiencePostprocessor(engine=engine)]
            )
            assert str(qe.query("capital of Peru?")) == "Lima"
            assert engine.queue.get(capture.last_episode_id or "") is not None, "captured all the same"
        finally:
            capture.remove()


def test_memory_block_serves_experience_and_captures_flushed_chat(engine: ExperienceEngine) -> None:
    _teach(engine, "What is the refund window?", "7 days", "30 days from delivery")
    block = ExperienceMemoryBlock(engine=engine, top_k=2)
    memory = Memory.from_defaults(
        session_id="s1", token_limit=60, chat_history_token_ratio=0.3, token_flush_size=20, memory_blocks=[block]
    )

    async def converse() -> list[ChatMessage]:
        await memory.aput_messages(
            [
                ChatMessage(role="user", content="Hi, I bought a kettle last week."),
                ChatMessage(role="assistant", content="Great, how can I help with the kettle?"),
                ChatMessage(role="user", content="It leaks. Can I still return it, what is the refund window?"),
            ]
        )
        return await memory.aget()

    messages = asyncio.run(converse())
    system = str(messages[0].content)
    assert messages[0].role.value == "system" and "30 days from delivery" in system
    assert system.count("<experience>") == 1, "Memory's own tags, not ours as well"
    flushed = [e for e, _, _ in engine.queue.list() if e.metadata.get("source") == "llamaindex.memory"]
    assert flushed and flushed[-1].input == "Hi, I bought a kettle last week."
    assert flushed[-1].output == "Great, how can I help with the kettle?"


def test_agent_with_memory_gets_the_experience(engine: ExperienceEngine) -> None:
    _teach(engine, "How much is 10 EUR in USD?", "about 11", "Always call the convert tool; never estimate rates.")
    seen: list[Sequence[ChatMessage]] = []

    def reply(messages: Sequence[ChatMessage], **kwargs: Any) -> ChatMessage:
        seen.append(list(messages))
        return ChatMessage(role="assistant", content="I will use the convert tool.")

    agent = FunctionAgent(
        tools=[],
        llm=MockFunctionCallingLLM(response_generator=reply, is_chat_model=True),
        system_prompt="You are a finance helper.",
    )
    memory = Memory.from_defaults(session_id="s2", memory_blocks=[ExperienceMemoryBlock(engine=engine)])

    async def run() -> str:
        return str(await agent.run(user_msg="What is 20 EUR in USD?", memory=memory))

    assert asyncio.run(run()) == "I will use the convert tool."
    prompt = "\n".join(str(m.content) for m in seen[0])
    assert "never estimate rates" in prompt and "You are a finance helper." in prompt


def test_llamaindex_embeddings_serve_as_the_engine_embedder() -> None:
    embedder = LlamaIndexEmbedder(MockEmbedding(embed_dim=12))
    with make_engine(embedder=embedder) as engine:
        assert engine.embedder.dimension == 12 and engine.embedder.model_id.startswith("llamaindex:MockEmbedding")
        engine.record(Episode(input="q", output="a", outcome=Outcome(score=1)))
        assert engine.drain(timeout=10)
        assert engine.store.count() == 1


def test_adapters_take_scopes_as_strings_and_llamaindex_names() -> None:
    from expscale_core import Scope
    from expscale_core.testing import make_engine as _make

    from llamaindex_expscale import ExperienceMemoryBlock, ExperiencePostprocessor

    with _make() as eng:
        post = ExperiencePostprocessor(engine=eng, top_n=2, scope="support")
        assert post.top_k == 2 and post.scope == Scope(namespace="support")
        block = ExperienceMemoryBlock(engine=eng, scope={"namespace": "support", "user": "u1"})
        assert block.scope == Scope(namespace="support", user="u1")


def _tool_calling_llm(tool: str, kwargs: dict[str, object], final: str) -> object:
    from llama_index.core.base.llms.types import ChatMessage
    from llama_index.core.llms.llm import ToolSelection
    from llama_index.core.llms.mock import MockFunctionCallingLLM

    calls = [0]

    def reply(messages: object, **_: object) -> ChatMessage:
        calls[0] += 1
        if calls[0] == 1:
            selection = ToolSelection(tool_id="t1", tool_name=tool, tool_kwargs=kwargs)
            return ChatMessage(role="assistant", content="", additional_kwargs={"tool_calls": [selection]})
        return ChatMessage(role="assistant", content=final)

    return MockFunctionCallingLLM(response_generator=reply, is_chat_model=True)


def _react_llm(tool: str, kwargs: dict[str, object], final: str) -> object:
    """A model that speaks ReAct's text protocol: one Action, then the Answer."""
    import json

    from llama_index.core.base.llms.types import ChatMessage
    from llama_index.core.llms.mock import MockFunctionCallingLLM

    turns = [
        f"Thought: I need the rate.\nAction: {tool}\nAction Input: {json.dumps(kwargs)}",
        f"Thought: I can answer without using any more tools.\nAnswer: {final}",
    ]
    calls = [0]

    def reply(messages: object, **_: object) -> ChatMessage:
        calls[0] += 1
        return ChatMessage(role="assistant", content=turns[min(calls[0], 2) - 1])

    return MockFunctionCallingLLM(response_generator=reply, is_chat_model=True)


@pytest.mark.parametrize("kind", ["function-agent", "agent-workflow", "react-agent"])
def test_an_agent_run_is_one_episode_with_its_tool_calls_and_answer(kind: str) -> None:
    from expscale_core import ToolStep
    from expscale_core.testing import make_engine as _make
    from llama_index.core.agent.workflow import AgentWorkflow, FunctionAgent, ReActAgent
    from llama_index.core.tools import FunctionTool

    from llamaindex_expscale import instrument

    def lookup_rate(currency: str) -> str:
        """Today's exchange rate to USD."""
        if currency != "EUR":
            raise ValueError(f"no rate for {currency}")
        return "1.08"

    async def scenario() -> str | None:
        tools = [FunctionTool.from_defaults(lookup_rate)]
        if kind == "react-agent":
            llm = _react_llm("lookup_rate", {"currency": "EUR"}, "20 EUR is 21.60 USD.")
            runner: Any = ReActAgent(name="fx", tools=tools, llm=llm)  # type: ignore[arg-type]
        else:
            llm = _tool_calling_llm("lookup_rate", {"currency": "EUR"}, "20 EUR is 21.60 USD.")
            agent = FunctionAgent(name="fx", tools=tools, llm=llm)  # type: ignore[arg-type]
            runner = agent if kind == "function-agent" else AgentWorkflow(agents=[agent])
        await runner.run(user_msg="What is 20 EUR in USD?")
        return capture.last_episode_id

    with _make(autostart=False) as engine:
        capture = instrument(engine)
        try:
            episode_id = asyncio.run(scenario())
        finally:
            capture.remove()
        engine.flush()
        episodes = [e for e, _, _ in engine.queue.list()]
        assert len(episodes) == 1, "one episode per agent run, not one per LLM call"
        (ep,) = episodes
        assert ep.id == episode_id and ep.input == "What is 20 EUR in USD?" and ep.output == "20 EUR is 21.60 USD."
        tools = [s for s in ep.steps if isinstance(s, ToolStep)]
        assert [(t.tool, t.input, t.output) for t in tools] == [("lookup_rate", {"currency": "EUR"}, "1.08")]
        engine.feedback(episode_id, 1)  # the id to give feedback on
        assert engine.queue.get(episode_id).outcome.score == 1.0  # type: ignore[union-attr]


class _SlowStreamLLM(ScriptedLlamaLLM):
    """Streams its answer a word at a time, slowly enough that the call returns long before the answer ends."""

    @llm_completion_callback()
    def stream_complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponseGen:
        words = self._answer(prompt).split(" ")

        def gen() -> CompletionResponseGen:
            text = ""
            for i, word in enumerate(words):
                time.sleep(0.05)
                delta = word if i == 0 else " " + word
                text += delta
                yield CompletionResponse(text=text, delta=delta)

        return gen()


def _episodes(engine: ExperienceEngine) -> dict[str, Episode]:
    engine.flush()
    return {e.input: e for e, _, _ in engine.queue.list()}


def test_streaming_queries_and_chats_are_recorded_with_their_output_once_consumed(
    engine: ExperienceEngine, capture: Instrumentation
) -> None:
    from llama_index.core.chat_engine import SimpleChatEngine

    answer = "Lima is the capital of Peru."
    qe = _index().as_query_engine(llm=_SlowStreamLLM(answers=[answer]), streaming=True)
    streamed = qe.query("capital of Peru?")
    episode_id = capture.last_episode_id  # known as soon as the call returns, for feedback
    assert "capital of Peru?" not in _episodes(engine), "recorded before the answer existed"
    assert "".join(streamed.response_gen) == answer  # type: ignore[union-attr]
    got = _episodes(engine)["capital of Peru?"]
    assert got.id == episode_id and got.output == answer
    llm_steps = [s for s in got.steps if isinstance(s, LLMStep)]
    assert [s.response for s in llm_steps] == [answer], "the lazy LLM call joins the episode, prompt and answer"
    assert "Peru" in llm_steps[0].messages[0].content

    chat = SimpleChatEngine.from_defaults(llm=_SlowStreamLLM(answers=["Hello there, how can I help?"]))
    reply = chat.stream_chat("hi")
    assert "hi" not in _episodes(engine)
    assert "".join(reply.response_gen) == "Hello there, how can I help?"
    reply.write_response_to_history_thread and reply.write_response_to_history_thread.join()
    assert _episodes(engine)["hi"].output == "Hello there, how can I help?"

    async def consume_async() -> None:
        aqe = _index().as_query_engine(llm=_SlowStreamLLM(answers=["Sol."]), streaming=True)
        r = await aqe.aquery("currency of Peru?")
        assert [t async for t in r.async_response_gen()] == ["Sol."]  # type: ignore[union-attr]
        areply = await chat.astream_chat("and async?")
        assert "".join([t async for t in areply.async_response_gen()]) == "Hello there, how can I help?"

    asyncio.run(consume_async())
    assert _episodes(engine)["currency of Peru?"].output == "Sol."
    assert [s.type for s in _episodes(engine)["currency of Peru?"].steps] == ["retrieval", "llm"]
    assert _episodes(engine)["and async?"].output == "Hello there, how can I help?"


def test_a_stream_closed_early_keeps_what_it_produced_and_a_dropped_one_is_still_recorded(
    engine: ExperienceEngine, capture: Instrumentation
) -> None:
    import gc

    qe = _index().as_query_engine(llm=_SlowStreamLLM(answers=["one two three four"]), streaming=True)
    tokens = qe.query("count?").response_gen  # type: ignore[union-attr]
    assert next(tokens) == "one"
    tokens.close()  # the caller stopped reading
    assert _episodes(engine)["count?"].output == "one"
    dropped = qe.query("never read?")
    del dropped
    gc.collect()
    assert _episodes(engine)["never read?"].output is None, "an unconsumed stream still becomes an episode"


def test_concurrent_agent_runs_each_get_their_own_episode_id() -> None:
    """Two requests in flight at once, after an earlier run of the same task: each caller's
    ``last_episode_id`` is its own run's, so feedback teaches the right episode."""
    from expscale_core.testing import make_engine as _make
    from llama_index.core.agent.workflow import FunctionAgent

    from llamaindex_expscale import instrument

    def agent_answering(text: str) -> FunctionAgent:
        def reply(messages: Sequence[ChatMessage], **_: Any) -> ChatMessage:
            return ChatMessage(role="assistant", content=text)

        llm = MockFunctionCallingLLM(response_generator=reply, is_chat_model=True)
        return FunctionAgent(name="a", tools=[], llm=llm)

    async def request(question: str, answer: str, started: asyncio.Event, other: asyncio.Event) -> str | None:
        handler = agent_answering(answer).run(user_msg=question)
        started.set()
        await other.wait()  # both runs are in flight before either finishes
        await handler
        return capture.last_episode_id

    async def scenario() -> tuple[str | None, str | None, str | None]:
        await agent_answering("earlier").run(user_msg="Earlier question")
        earlier = capture.last_episode_id
        a, b = asyncio.Event(), asyncio.Event()
        first, second = await asyncio.gather(request("Q one", "A one", a, b), request("Q two", "A two", b, a))
        return earlier, first, second

    with _make(autostart=False) as engine:
        capture = instrument(engine)
        try:
            earlier, first, second = asyncio.run(scenario())
        finally:
            capture.remove()
        engine.flush()
        assert len({earlier, first, second}) == 3
        got = {eid: engine.queue.get(eid or "") for eid in (earlier, first, second)}
        assert [g.input if g else None for g in got.values()] == ["Earlier question", "Q one", "Q two"]


def test_instrument_and_the_memory_block_capture_each_agent_run_once() -> None:
    from expscale_core.testing import make_engine as _make
    from llama_index.core.agent.workflow import FunctionAgent

    from llamaindex_expscale import instrument

    def reply(messages: Sequence[ChatMessage], **_: Any) -> ChatMessage:
        return ChatMessage(role="assistant", content="Fine.")

    with _make(autostart=False) as engine:
        capture = instrument(engine)
        try:
            agent = FunctionAgent(tools=[], llm=MockFunctionCallingLLM(response_generator=reply, is_chat_model=True))
            # A tiny short-term window, so Memory flushes turns to the block at once.
            memory = Memory.from_defaults(
                session_id="once",
                token_limit=40,
                chat_history_token_ratio=0.1,
                token_flush_size=10,
                memory_blocks=[ExperienceMemoryBlock(engine=engine)],
            )

            async def run() -> None:
                for i in range(4):
                    await agent.run(user_msg=f"Turn {i}: please tell me something long enough to flush", memory=memory)

            asyncio.run(run())
        finally:
            capture.remove()
        engine.flush()
        inputs = sorted(e.input for e, _, _ in engine.queue.list())
        assert inputs == [f"Turn {i}: please tell me something long enough to flush" for i in range(4)]


def test_llamaindex_names_are_the_real_fields_and_unknown_arguments_are_errors(engine: ExperienceEngine) -> None:
    from pydantic import ValidationError

    post = ExperiencePostprocessor(engine=engine, top_n=2)
    assert post.top_n == 2 and post.top_k == 2 and post.to_dict()["top_n"] == 2
    assert ExperiencePostprocessor(engine=engine, top_k=4).top_n == 4  # the 0.3 name still works
    with pytest.raises(ValidationError, match="top_n"):
        ExperiencePostprocessor(engine=engine, top_n=0)
    with pytest.raises(ValueError, match="same setting"):
        ExperiencePostprocessor(engine=engine, top_n=1, top_k=2)
    block = ExperienceMemoryBlock(engine=engine, similarity_top_k=1)
    assert block.similarity_top_k == 1 and ExperienceMemoryBlock(engine=engine, top_n=2).similarity_top_k == 2
    for cls in (ExperiencePostprocessor, ExperienceMemoryBlock):
        with pytest.raises(ValidationError, match="bogus"):
            cls(engine=engine, bogus=2)
