"""One core, both frameworks: what one framework's runs teach, the other serves from the same store."""

from __future__ import annotations

import uuid

from expscale_core import ExperienceEngine
from expscale_core.testing import HashEmbedder
from langchain_core.language_models.fake_chat_models import FakeListChatModel
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from llama_index.core import Document, VectorStoreIndex

from langchain_expscale import ExperienceCallbackHandler, ExperienceRetriever
from llamaindex_expscale import ExperiencePostprocessor, ExpscaleEmbedding, instrument
from llamaindex_expscale.testing import ScriptedLlamaLLM


def test_langchain_learns_llamaindex_serves(engine: ExperienceEngine) -> None:
    run_id = uuid.uuid4()
    chain = ChatPromptTemplate.from_template("{question}") | FakeListChatModel(responses=["Bern?"]) | StrOutputParser()
    chain.invoke(
        {"question": "capital of Switzerland?"},
        config={"callbacks": [ExperienceCallbackHandler(engine)], "run_id": run_id},
    )
    engine.feedback(str(run_id), -1, correction="Bern is right, but say it without a question mark: Bern")
    assert engine.drain(timeout=10)

    llm = ScriptedLlamaLLM(answers=["Bern"])
    index = VectorStoreIndex.from_documents(
        [Document(text="Switzerland is in Europe.")], embed_model=ExpscaleEmbedding(HashEmbedder())
    )
    response = index.as_query_engine(llm=llm, node_postprocessors=[ExperiencePostprocessor(engine=engine)]).query(
        "capital of Switzerland?"
    )
    assert any("expscale_experience_id" in n.node.metadata for n in response.source_nodes)
    assert "without a question mark" in llm.prompts[0]


def test_llamaindex_learns_langchain_serves(engine: ExperienceEngine) -> None:
    capture = instrument(engine)
    try:
        index = VectorStoreIndex.from_documents(
            [Document(text="Norway is in Europe.")], embed_model=ExpscaleEmbedding(HashEmbedder())
        )
        index.as_query_engine(llm=ScriptedLlamaLLM(answers=["Bergen"])).query("capital of Norway?")
        engine.feedback(capture.last_episode_id or "", -1, correction="Oslo")
        assert engine.drain(timeout=10)
    finally:
        capture.remove()
    docs = ExperienceRetriever(engine=engine, k=1).invoke("capital of Norway?")
    assert "Oslo" in docs[0].page_content
    assert docs[0].metadata["source_episode_ids"][0].startswith("RetrieverQueryEngine.query-")
