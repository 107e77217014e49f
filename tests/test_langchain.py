"""LangChain adapters, exercised with real LangChain objects and LangChain's own fake models."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Iterator
from typing import Any

import pytest
from expscale_core import (
    Episode,
    ExperienceEngine,
    ExperienceStatus,
    LLMStep,
    MiniLMEmbedder,
    Outcome,
    RetrievalStep,
    Scope,
    ToolStep,
)
from expscale_core.embed import CachedEmbedder
from expscale_core.testing import FlakyStore, make_engine
from langchain.agents import create_agent
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.documents import Document
from langchain_core.embeddings import DeterministicFakeEmbedding
from langchain_core.language_models.fake_chat_models import FakeListChatModel
from langchain_core.messages import AIMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables import RunnableConfig, RunnableLambda
from langchain_core.tools import tool
from langchain_tests.integration_tests import RetrieversIntegrationTests

from langchain_expscale import (
    ExperienceCallbackHandler,
    ExperienceMiddleware,
    ExperienceRetriever,
    LangChainEmbedder,
    with_experience,
)
from langchain_expscale.testing import RecordingFakeChatModel

PROMPT = ChatPromptTemplate.from_messages([("system", "You answer trivia.\n{experience}"), ("human", "{question}")])


@functools.cache
def _minilm() -> CachedEmbedder:
    return CachedEmbedder(MiniLMEmbedder())


@pytest.fixture
def minilm_engine() -> Iterator[ExperienceEngine]:
    with make_engine(embedder=_minilm()) as eng:
        yield eng


def _episodes(engine: ExperienceEngine) -> dict[str, Episode]:
    return {e.id: e for e, _, _ in engine.queue.list(limit=1000)}


# -- callback handler ---------------------------------------------------------------------------


class KBRetriever(BaseRetriever):
    def _get_relevant_documents(self, query: str, *, run_manager: Any) -> list[Document]:
        return [Document(page_content="Lima is the capital of Peru.")]


def test_one_root_run_becomes_one_episode_with_all_its_steps(engine: ExperienceEngine) -> None:
    model = RecordingFakeChatModel(
        messages=iter(
            [AIMessage(content=[{"type": "reasoning", "reasoning": "Peru -> Lima"}, {"type": "text", "text": "Lima"}])]
        )
    )
    chain = (
        {"context": KBRetriever() | (lambda docs: docs[0].page_content), "question": lambda x: x}
        | ChatPromptTemplate.from_template("{context}\n{question}")
        | model
        | StrOutputParser()
    )
    handler = ExperienceCallbackHandler(engine)
    captured: list[str] = []
    result = chain.invoke("capital of Peru?", config={"callbacks": [handler], "run_id": None})
    assert result == "Lima"
    episodes = _episodes(engine)
    assert len(episodes) == 1
    (ep,) = episodes.values()
    captured.append(ep.id)
    assert ep.input == "capital of Peru?" and ep.output == "Lima"
    llm = [s for s in ep.steps if isinstance(s, LLMStep)]
    assert len(llm) == 1 and llm[0].reasoning == "Peru -> Lima" and llm[0].response == "Lima"
    assert "Lima is the capital of Peru." in llm[0].messages[0].content
    retrieval = [s for s in ep.steps if isinstance(s, RetrievalStep)]
    assert retrieval[0].documents == ["Lima is the capital of Peru."]


def test_root_run_id_is_the_episode_id_so_feedback_works(engine: ExperienceEngine) -> None:
    import uuid

    run_id = uuid.uuid4()
    chain = PROMPT | FakeListChatModel(responses=["Quito"]) | StrOutputParser()
    chain.invoke(
        {"question": "capital of Chile?", "experience": ""},
        config={"callbacks": [ExperienceCallbackHandler(engine)], "run_id": run_id},
    )
    engine.feedback(str(run_id), -1, correction="Santiago")
    engine.drain(timeout=10)
    assert "Santiago" in engine.retrieve("capital of Chile")[0].experience.content


def test_the_episode_id_is_the_run_ids_text_for_any_uuid(engine: ExperienceEngine) -> None:
    """The handler keys runs by the UUID's int and writes only a root's id as text; that text is str(run_id)."""
    import uuid

    handler = ExperienceCallbackHandler(engine)
    seen: list[str | None] = []

    def probe(x: str, config: RunnableConfig) -> str:
        nested = config["callbacks"].parent_run_id  # type: ignore[union-attr]  # this step's own run, not the root
        seen.append(handler.episode_id(nested))
        return x

    chain = RunnableLambda(lambda x: x) | RunnableLambda(probe)
    ids = [uuid.UUID(int=5), uuid.UUID(int=2**128 - 1), *(uuid.uuid4() for _ in range(20))]
    for run_id in ids:
        chain.invoke("q", config={"callbacks": [handler], "run_id": run_id})
    engine.flush()
    assert {e.id for e, _, _ in engine.queue.list()} == {str(r) for r in ids}
    assert seen == [str(r) for r in ids], "a nested step finds its episode while the run is open"
    assert handler.episode_id(str(ids[0])) is None and handler.episode_id("not a run id") is None


def test_the_runs_user_id_is_the_source_of_what_it_teaches(engine: ExperienceEngine) -> None:
    import uuid

    run_id = uuid.uuid4()
    chain = PROMPT | FakeListChatModel(responses=["Quito"]) | StrOutputParser()
    config = {"callbacks": [ExperienceCallbackHandler(engine)], "run_id": run_id, "metadata": {"user_id": 42}}
    chain.invoke({"question": "capital of Chile?", "experience": ""}, config=config)  # type: ignore[arg-type]
    engine.feedback(str(run_id), -1, correction="Santiago")
    engine.drain(timeout=10)
    assert engine.queue.get(str(run_id)).metadata["user"] == "42"  # type: ignore[union-attr]
    (lesson,) = [e for e, _ in engine.store.scan()]
    assert lesson.provenance.sources == ["user:42"]


def test_streamed_runs_are_recorded_with_their_input_and_whole_output(engine: ExperienceEngine) -> None:
    handler = ExperienceCallbackHandler(engine)
    chain = (
        ChatPromptTemplate.from_messages([("human", "{q}")])
        | FakeListChatModel(responses=["Lima is the capital."])
        | StrOutputParser()
    )
    chunks = list(chain.stream({"q": "capital of Peru?"}, config={"callbacks": [handler]}))
    assert len(chunks) > 1, "really streamed"

    async def astream() -> None:
        async for _ in chain.astream({"q": "capital, async?"}, config={"callbacks": [handler]}):
            pass

    asyncio.run(astream())
    engine.flush()
    got = {e.input: e.output for e, _, _ in engine.queue.list()}
    assert got == {"capital of Peru?": "Lima is the capital.", "capital, async?": "Lima is the capital."}


def test_tool_calls_and_errors_are_captured(engine: ExperienceEngine) -> None:
    @tool
    def lookup(city: str) -> str:
        """Look up a city's country."""
        if city == "Lmia":
            raise ValueError("unknown city Lmia")
        return "Peru"

    def run(city: str) -> str:
        try:
            return lookup.invoke({"city": city})
        except ValueError:
            return lookup.invoke({"city": "Lima"})

    handler = ExperienceCallbackHandler(engine)
    assert RunnableLambda(run).invoke("Lmia", config={"callbacks": [handler]}) == "Peru"
    (ep,) = _episodes(engine).values()
    tools = [s for s in ep.steps if isinstance(s, ToolStep)]
    assert [t.error is not None for t in tools] == [True, False]
    assert "unknown city" in (tools[0].error or "") and tools[1].output == "Peru"
    engine.feedback(ep.id, 1)
    engine.drain(timeout=10)
    pitfalls = [e for e, _ in engine.store.scan() if e.kind.value == "pitfall"]
    assert pitfalls and "Lmia" in pitfalls[0].content and "Lima" in pitfalls[0].content


def test_redaction_runs_before_anything_is_stored(engine: ExperienceEngine) -> None:
    handler = ExperienceCallbackHandler(engine, redact=lambda s: s.replace("4111-1111", "[card]"))
    FakeListChatModel(responses=["card 4111-1111 ok"]).invoke("charge 4111-1111", config={"callbacks": [handler]})
    (ep,) = _episodes(engine).values()
    assert "4111" not in ep.model_dump_json()
    assert ep.input == "charge [card]"


def test_concurrent_runs_do_not_mix(engine: ExperienceEngine) -> None:
    handler = ExperienceCallbackHandler(engine)
    chain = PROMPT | FakeListChatModel(responses=["ok"]) | RunnableLambda(lambda m: f"answer:{m.content}")
    inputs = [{"question": f"question {i}", "experience": ""} for i in range(32)]
    chain.batch(inputs, config={"callbacks": [handler], "max_concurrency": 8})
    asyncio.run(chain.abatch(inputs, config={"callbacks": [handler], "max_concurrency": 16}))
    episodes = list(_episodes(engine).values())
    assert len(episodes) == 64 and len({e.id for e in episodes}) == 64
    for ep in episodes:
        llm = [s for s in ep.steps if isinstance(s, LLMStep)]
        assert len(llm) == 1 and ep.output == "answer:ok"
        assert ep.input in llm[0].messages[-1].content, "each episode holds its own prompt"
    assert sorted(e.input for e in episodes) == sorted([f"question {i}" for i in range(32)] * 2)


def test_failing_store_does_not_break_the_chain_and_loses_nothing() -> None:
    store = FlakyStore(broken=False)
    with make_engine(store=store) as engine:  # type: ignore[arg-type]
        store.broken = True
        chain = with_experience(PROMPT | FakeListChatModel(responses=["Lima"]) | StrOutputParser(), engine)
        assert chain.invoke({"question": "capital of Peru?"}) == "Lima"
        (ep,) = _episodes(engine).values()
        engine.feedback(ep.id, 1)
        engine.drain(timeout=5)
        assert engine.queue.counts()["distilled"] == 0, "nothing could be stored yet"
        store.broken = False
        engine.queue.retry_failed()
        assert engine.drain(timeout=10)
        assert "Lima" in engine.retrieve("capital of Peru")[0].experience.content


# -- memory: LCEL wrapper and agent middleware ------------------------------------------------


def test_lcel_learns_from_a_correction_and_serves_paraphrases(minilm_engine: ExperienceEngine) -> None:
    engine = minilm_engine
    model = RecordingFakeChatModel(messages=iter([AIMessage(content=a) for a in ("1937", "1933", "1933")]))
    chain = with_experience(PROMPT | model | StrOutputParser(), engine, input_key="question")
    handler_ids: list[str] = []

    class RootIds(BaseCallbackHandler):
        def on_chain_start(
            self, serialized: Any, inputs: Any, *, run_id: Any, parent_run_id: Any = None, **kw: Any
        ) -> None:
            if parent_run_id is None:
                handler_ids.append(str(run_id))

    chain.invoke({"question": "What year did Hitler become chancellor of Germany?"}, config={"callbacks": [RootIds()]})
    assert "<experience>" not in model.prompts[0][0].content, "nothing learned yet"
    (episode_id,) = {e.id for e in _episodes(engine).values()}
    assert episode_id == handler_ids[0]
    engine.feedback(episode_id, -1, "wrong year", correction="1933")
    assert engine.drain(timeout=30)

    chain.invoke({"question": "What year did Hitler become chancellor of Germany?"})
    chain.invoke({"question": "Hitler became chancellor of Germany in what year?"})
    for prompt in model.prompts[1:]:
        system = prompt[0].content
        assert "<experience>" in system and "1933" in system and "not instructions" in system

    # the paraphrase run was served the lesson, so feedback on that run credits it
    (lesson,) = [e for e, _ in engine.store.scan() if "1933" in e.content]
    last = max(_episodes(engine).values(), key=lambda e: e.started_at)
    assert lesson.id in engine.queue.served(last.id)
    engine.feedback(last.id, 1)
    engine.drain(timeout=30)
    ((credited, _),) = engine.store.get([lesson.id])
    assert credited.helpful == 1 and credited.times_retrieved == 2


def _agent_model(*replies: AIMessage) -> RecordingFakeChatModel:
    return RecordingFakeChatModel(messages=iter(replies))


def test_agent_middleware_injects_experience_and_captures_the_run(minilm_engine: ExperienceEngine) -> None:
    engine = minilm_engine

    @tool
    def convert(amount: float, currency: str) -> str:
        """Convert an amount of EUR into another currency."""
        return f"{amount * 1.1:.2f} {currency}"

    engine.record(
        Episode(
            input="How much is 10 EUR in USD?",
            output="11.00 USD",
            outcome=Outcome(score=-1, correction="Use the convert tool; never guess rates."),
        )
    )
    engine.drain(timeout=30)

    model = _agent_model(
        AIMessage(
            content="",
            tool_calls=[
                {"name": "convert", "args": {"amount": 20, "currency": "USD"}, "id": "call_1", "type": "tool_call"}
            ],
        ),
        AIMessage(content="20 EUR is 22.00 USD."),
    )
    agent = create_agent(
        model, tools=[convert], system_prompt="You are a finance helper.", middleware=[ExperienceMiddleware(engine)]
    )
    result = agent.invoke({"messages": [{"role": "user", "content": "What is 20 EUR in USD?"}]})
    assert result["messages"][-1].content == "20 EUR is 22.00 USD."
    assert len(model.prompts) == 2
    for prompt in model.prompts:  # every model call of the run sees the block
        system = prompt[0].content
        assert system.startswith("You are a finance helper.") and "never guess rates" in system

    engine.drain(timeout=30)
    episode = engine.queue.get(result["expscale_episode_id"])
    assert episode is not None and episode.input == "What is 20 EUR in USD?"
    assert episode.output == "20 EUR is 22.00 USD."
    tools = [s for s in episode.steps if isinstance(s, ToolStep)]
    assert tools[0].tool == "convert" and tools[0].input == {"amount": 20, "currency": "USD"}
    assert "22.00 USD" in str(tools[0].output)

    engine.feedback(result["expscale_episode_id"], 1)
    engine.drain(timeout=30)
    lesson = [e for e, _ in engine.store.scan(statuses=[ExperienceStatus.ACTIVE]) if "never guess" in e.content]
    assert lesson[0].helpful == 1


def test_agent_middleware_async_path(engine: ExperienceEngine) -> None:
    engine.record(
        Episode(input="What is the refund window?", output="7 days", outcome=Outcome(score=-1, correction="30 days"))
    )
    engine.drain(timeout=10)
    model = _agent_model(AIMessage(content="30 days."))
    agent = create_agent(model, tools=[], middleware=[ExperienceMiddleware(engine)])
    result = asyncio.run(agent.ainvoke({"messages": [{"role": "user", "content": "What is the refund window?"}]}))
    assert "30 days" in str(model.prompts[0][0].content)
    assert result["expscale_episode_id"]


def test_agent_runs_when_the_store_is_down() -> None:
    store = FlakyStore(broken=False)
    with make_engine(store=store) as engine:  # type: ignore[arg-type]
        store.broken = True
        agent = create_agent(
            _agent_model(AIMessage(content="hello")), tools=[], middleware=[ExperienceMiddleware(engine)]
        )
        result = agent.invoke({"messages": [{"role": "user", "content": "hi"}]})
        assert result["messages"][-1].content == "hello"
        assert engine.queue.get(result["expscale_episode_id"]) is not None, "the run is still captured"


# -- retriever and embeddings -----------------------------------------------------------------


_SEEDED: list[ExperienceEngine] = []


@pytest.fixture(autouse=True, scope="module")
def _close_seeded_engines() -> Iterator[None]:
    yield  # LangChain's standard tests build the retriever from a property; its engines close here
    while _SEEDED:
        _SEEDED.pop().close()


def _seeded_engine() -> ExperienceEngine:
    engine = make_engine()
    _SEEDED.append(engine)
    for i, (q, a) in enumerate(
        [
            ("capital of Peru?", "Lima"),
            ("capital of Chile?", "Santiago"),
            ("capital of Japan?", "Tokyo"),
            ("capital of Kenya?", "Nairobi"),
        ]
    ):
        engine.record(Episode(id=f"seed-{i}", input=q, output=a, outcome=Outcome(score=1)))
    engine.drain(timeout=10)
    return engine


class TestExperienceRetrieverStandard(RetrieversIntegrationTests):
    @property
    def retriever_constructor(self) -> type[ExperienceRetriever]:
        return ExperienceRetriever

    @property
    def retriever_constructor_params(self) -> dict[str, Any]:
        return {"engine": _seeded_engine(), "min_score": -1.0}

    @property
    def retriever_query_example(self) -> str:
        return "what is the capital of Peru?"


def test_retriever_documents_carry_metadata_and_async_works() -> None:
    engine = _seeded_engine()
    retriever = ExperienceRetriever(engine=engine, k=2)
    docs = retriever.invoke("capital of Peru")
    assert "Lima" in docs[0].page_content
    meta = docs[0].metadata
    assert meta["kind"] == "fact" and meta["source_episode_ids"] == ["seed-0"] and meta["id"] == docs[0].id
    assert {"score", "utility", "distiller", "scope"} <= set(meta)
    assert asyncio.run(retriever.ainvoke("capital of Peru"))[0].id == docs[0].id
    engine.close()


def test_any_langchain_embeddings_can_serve_as_the_embedder() -> None:
    with make_engine(embedder=LangChainEmbedder(DeterministicFakeEmbedding(size=32))) as engine:
        engine.record(Episode(input="capital of Peru?", output="Lima", outcome=Outcome(score=1)))
        engine.drain(timeout=10)
        assert engine.embedder.dimension == 32
        assert engine.embedder.model_id == "langchain:DeterministicFakeEmbedding"
        hits = engine.retrieve("capital of Peru?\nThe verified answer is: Lima.", min_score=0.99)
        assert hits and "Lima" in hits[0].experience.content


def test_retriever_never_raises_a_store_outage_into_the_chain() -> None:
    store = FlakyStore(broken=False)
    with make_engine(store=store) as engine:
        retriever = ExperienceRetriever(engine=engine, k=2, scope="support")
        assert retriever.scope == Scope(namespace="support"), "a plain string scope, like the handler takes"
        store.broken = True
        assert retriever.invoke("anything") == []
        assert asyncio.run(retriever.ainvoke("anything")) == []
        store.broken = False


def test_with_experience_uses_langchains_memory_key_and_input_key_names() -> None:
    from langchain_core.prompts import ChatPromptTemplate
    from langchain_core.runnables import RunnableLambda

    engine = _seeded_engine()
    prompt = ChatPromptTemplate.from_messages([("system", "{lessons}"), ("human", "{question}")])
    seen: list[str] = []
    chain = with_experience(
        prompt | RunnableLambda(lambda p: seen.append(p.to_string()) or "ok"),
        engine,
        memory_key="lessons",
        input_key="question",
    )
    chain.invoke({"question": "capital of Peru", "other": "ignored"})
    assert "Lima" in seen[0]
    with pytest.warns(DeprecationWarning, match="input_key"):
        with_experience(prompt | RunnableLambda(lambda p: "ok"), engine, memory_key="lessons", query_key="question")
    engine.close()


class _FailingModel(RecordingFakeChatModel):
    def _generate(self, messages: Any, stop: Any = None, run_manager: Any = None, **kwargs: Any) -> Any:
        raise TimeoutError("the model server timed out")


@pytest.mark.parametrize("where", ["tool", "model"])
def test_agent_middleware_records_a_failed_run_with_its_error(engine: ExperienceEngine, where: str) -> None:
    from expscale_core import ErrorStep

    @tool
    def lookup(order: str) -> str:
        """Look an order up."""
        raise ConnectionError("orders service unreachable")

    if where == "tool":
        call = {"name": "lookup", "args": {"order": "A-7"}, "id": "call_1", "type": "tool_call"}
        model: Any = _agent_model(AIMessage(content="", tool_calls=[call]))
    else:
        model = _FailingModel(messages=iter([]))
    agent = create_agent(model, tools=[lookup], middleware=[ExperienceMiddleware(engine)])
    with pytest.raises(Exception) as failed:
        agent.invoke({"messages": [{"role": "user", "content": "Where is order A-7?"}]})
    episode_id = failed.value.expscale_episode_id  # type: ignore[attr-defined]
    engine.flush()
    episode = engine.queue.get(episode_id)
    assert episode is not None and episode.input == "Where is order A-7?" and episode.output is None
    (error,) = [s for s in episode.steps if isinstance(s, ErrorStep)]
    assert error.error_type == ("ConnectionError" if where == "tool" else "TimeoutError")
    if where == "tool":
        (call_step,) = [s for s in episode.steps if isinstance(s, ToolStep) and s.error]
        assert call_step.tool == "lookup" and call_step.input == {"order": "A-7"}
    engine.feedback(episode_id, -1, correction="When the orders service is down, say so and offer a callback.")


def test_middleware_and_callback_handler_together_capture_a_run_once(engine: ExperienceEngine) -> None:
    handler = ExperienceCallbackHandler(engine)
    model = _agent_model(AIMessage(content="Hello there."))
    agent = create_agent(model, tools=[], middleware=[ExperienceMiddleware(engine)])
    result = agent.invoke({"messages": [{"role": "user", "content": "hello"}]}, config={"callbacks": [handler]})
    engine.flush()
    (episode,) = [e for e, _, _ in engine.queue.list()]
    assert episode.id == result["expscale_episode_id"]  # the id feedback takes is the one that was recorded
    assert episode.output is not None and "Hello there." in episode.output


def test_the_retriever_takes_langchains_names_and_rejects_what_it_does_not_know(
    engine: ExperienceEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    for i in range(4):
        engine.record(Episode(input=f"door code of lab {i}?", output=f"{i}#", outcome=Outcome(score=1)))
    engine.drain(timeout=10)
    assert len(ExperienceRetriever(engine=engine, search_kwargs={"k": 2, "score_threshold": -1}).invoke("door")) == 2
    assert ExperienceRetriever(engine=engine, search_kwargs={"score_threshold": 0.5}).min_score == 0.5
    engine.retrieve_settings = engine.retrieve_settings.model_copy(update={"k": 3, "min_score": -1.0})
    assert len(ExperienceRetriever(engine=engine).invoke("door code")) == 3  # k follows EXPSCALE_RETRIEVE__K
    with pytest.raises(ValueError, match="not top_k"):
        ExperienceRetriever(engine=engine, top_k=2)
    with pytest.raises(ValueError, match=r"search_kwargs \['fetch_k'\]"):
        ExperienceRetriever(engine=engine, search_kwargs={"fetch_k": 20})
    with pytest.raises(ValueError, match="bogus"):
        ExperienceRetriever(engine=engine, bogus=2)
    with pytest.raises(ValueError, match="given twice"):
        ExperienceRetriever(engine=engine, k=1, search_kwargs={"k": 2})


def test_expscale_embeddings_serve_langchain_vector_stores(engine: ExperienceEngine) -> None:
    from langchain_core.vectorstores import InMemoryVectorStore

    from langchain_expscale import ExpscaleEmbeddings

    store = InMemoryVectorStore(ExpscaleEmbeddings(engine.embedder))
    store.add_texts(["the VPN port is 1194", "lunch is at noon"])
    assert store.similarity_search("which VPN port?", k=1)[0].page_content == "the VPN port is 1194"


def test_importing_the_adapters_loads_no_agent_framework_until_asked() -> None:
    import subprocess
    import sys

    code = (
        "import sys, langchain_expscale; from langchain_expscale import ExperienceCallbackHandler, with_experience; "
        "print(any(m.startswith(('langgraph', 'langchain.agents')) for m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
