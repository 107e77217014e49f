"""A LlamaIndex query engine that learns from a user's correction.

Offline by default (a scripted LLM; the index and the experience store both use the local MiniLM model).
With OPENAI_API_KEY or OPENAI_BASE_URL set, a real model answers (pip install llama-index-llms-openai-like).

    python examples/llamaindex_query_engine.py [DATA_DIR]
"""

from __future__ import annotations

from _common import data_dir, real_llama_llm, real_model_configured
from expscale_core import ExperienceEngine, ExpscaleSettings
from llama_index.core import Document, VectorStoreIndex

from llamaindex_expscale import ExperiencePostprocessor, ExpscaleEmbedding, instrument
from llamaindex_expscale.testing import ScriptedLlamaLLM

DOCS = [
    Document(text="Nimbus Notes is a note-taking app. Notebooks can be shared with teammates."),
    Document(text="Nimbus Notes keeps deleted notes in Trash. Attachments are limited in size per plan."),
]


def main() -> None:
    offline = not real_model_configured()
    llm = (
        ScriptedLlamaLLM(answers=["Deleted notes are gone for good.", "From Trash, within 30 days."])
        if offline
        else real_llama_llm()
    )
    with ExperienceEngine.from_settings(ExpscaleSettings(data_dir=data_dir())) as engine:
        capture = instrument(engine)  # one line: every query becomes an episode
        index = VectorStoreIndex.from_documents(DOCS, embed_model=ExpscaleEmbedding(engine.embedder))
        query_engine = index.as_query_engine(llm=llm, node_postprocessors=[ExperiencePostprocessor(engine=engine)])
        print(f"llm: {'offline script' if offline else type(llm).__name__}   embedder: {engine.embedder.model_id}")

        print("Q: Can I get a deleted note back?")
        print(f"A: {query_engine.query('Can I get a deleted note back?')}")
        engine.feedback(capture.last_episode_id or "", -1, correction="Yes: restore it from Trash within 30 days.")
        engine.drain(timeout=60)

        response = query_engine.query("I removed a note by accident, is it recoverable?")
        print("Q: I removed a note by accident, is it recoverable?")
        print(f"A: {response}")
        for node in response.source_nodes:
            if "expscale_experience_id" in node.node.metadata:
                print(
                    f"   experience served ({node.node.metadata['kind']}, score {node.score:.2f}): "
                    f"{node.node.get_content().splitlines()[-1]}"
                )
        capture.remove()


if __name__ == "__main__":
    main()
