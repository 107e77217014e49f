"""An LCEL chain that learns from a user's correction.

Offline by default (a scripted LangChain fake model, the local MiniLM embedder). With OPENAI_API_KEY or
OPENAI_BASE_URL set, the chain runs on a real model (pip install langchain-openai).

    python examples/langchain_chain.py [DATA_DIR]
"""

from __future__ import annotations

import uuid

from _common import data_dir, real_chat_model, real_model_configured
from expscale_core import ExperienceEngine, ExpscaleSettings
from langchain_core.messages import AIMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate

from langchain_expscale import with_experience
from langchain_expscale.testing import RecordingFakeChatModel

PROMPT = ChatPromptTemplate.from_messages(
    [("system", "Answer in one short line.\n{experience}"), ("human", "{question}")]
)


def main() -> None:
    offline = not real_model_configured()
    model = (
        RecordingFakeChatModel(messages=iter([AIMessage(content="1937"), AIMessage(content="1933")]))
        if offline
        else real_chat_model()
    )
    with ExperienceEngine.from_settings(ExpscaleSettings(data_dir=data_dir())) as engine:
        print(f"model: {'offline fake' if offline else type(model).__name__}   embedder: {engine.embedder.model_id}")
        chain = with_experience(PROMPT | model | StrOutputParser(), engine, input_key="question")

        run_id = uuid.uuid4()  # the root run id is the episode id
        first = chain.invoke(
            {"question": "What year did Hitler become chancellor of Germany?"}, config={"run_id": run_id}
        )
        print(f"first answer: {first}")
        engine.feedback(str(run_id), -1, "wrong year", correction="1933")
        engine.drain(timeout=60)

        second = chain.invoke({"question": "Hitler became chancellor of Germany in what year?"})
        print(f"paraphrased question, answer: {second}")
        if offline:
            print("\nthe system prompt the model saw the second time:\n" + str(model.prompts[-1][0].content))


if __name__ == "__main__":
    main()
