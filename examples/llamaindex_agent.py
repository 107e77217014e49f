"""A LlamaIndex FunctionAgent whose Memory carries an experience block.

Offline by default (LlamaIndex's MockFunctionCallingLLM, scripted); with OPENAI_API_KEY or OPENAI_BASE_URL
set, a real model drives the agent (pip install llama-index-llms-openai-like).

    python examples/llamaindex_agent.py [DATA_DIR]
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from _common import data_dir, real_llama_llm, real_model_configured
from expscale_core import Episode, ExperienceEngine, ExpscaleSettings
from llama_index.core.agent.workflow import FunctionAgent
from llama_index.core.base.llms.types import ChatMessage
from llama_index.core.llms.mock import MockFunctionCallingLLM
from llama_index.core.memory import Memory

from llamaindex_expscale import ExperienceMemoryBlock

seen: list[str] = []


def scripted(messages: Sequence[ChatMessage], **kwargs: Any) -> ChatMessage:
    seen.append("\n".join(str(m.content) for m in messages))
    return ChatMessage(role="assistant", content="Ship with the tracked courier; it needs a signature.")


async def main() -> None:
    offline = not real_model_configured()
    llm = MockFunctionCallingLLM(response_generator=scripted, is_chat_model=True) if offline else real_llama_llm()
    with ExperienceEngine.from_settings(ExpscaleSettings(data_dir=data_dir())) as engine:
        earlier = engine.record(Episode(input="How should I ship a laptop to a customer?", output="Regular post."))
        engine.feedback(earlier, -1, correction="Laptops go with the tracked courier and need a signature on delivery.")
        engine.drain(timeout=60)

        memory = Memory.from_defaults(session_id="support-1", memory_blocks=[ExperienceMemoryBlock(engine=engine)])
        agent = FunctionAgent(tools=[], llm=llm, system_prompt="You are a shipping assistant.")
        answer = await agent.run(
            user_msg="What is the right way to send a notebook computer to a client?", memory=memory
        )
        print(f"answer: {answer}")
        if offline:
            print("\nwhat the model saw:\n" + seen[0])


if __name__ == "__main__":
    asyncio.run(main())
