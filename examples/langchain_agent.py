"""A `create_agent` agent with experience memory: one middleware retrieves, injects and captures.

Offline by default (a scripted fake that calls the tool); with OPENAI_API_KEY or OPENAI_BASE_URL set,
a real model drives the agent (pip install langchain-openai).

    python examples/langchain_agent.py [DATA_DIR]
"""

from __future__ import annotations

from _common import data_dir, real_chat_model, real_model_configured
from expscale_core import Episode, ExperienceEngine, ExpscaleSettings
from langchain.agents import create_agent
from langchain_core.messages import AIMessage
from langchain_core.tools import tool

from langchain_expscale import ExperienceMiddleware
from langchain_expscale.testing import RecordingFakeChatModel


@tool
def convert(amount: float, currency: str) -> str:
    """Convert an amount of EUR into another currency at today's rate."""
    rates = {"USD": 1.08, "GBP": 0.85, "JPY": 162.0}
    return f"{amount * rates[currency.upper()]:.2f} {currency.upper()}"


def main() -> None:
    offline = not real_model_configured()
    model = (
        RecordingFakeChatModel(
            messages=iter(
                [
                    AIMessage(
                        content="",
                        tool_calls=[
                            {
                                "name": "convert",
                                "args": {"amount": 20, "currency": "USD"},
                                "id": "call_1",
                                "type": "tool_call",
                            }
                        ],
                    ),
                    AIMessage(content="20 EUR is 21.60 USD."),
                ]
            )
        )
        if offline
        else real_chat_model()
    )
    with ExperienceEngine.from_settings(ExpscaleSettings(data_dir=data_dir())) as engine:
        # An earlier conversation went wrong and the user said why: that lesson is what the agent gets.
        earlier = engine.record(Episode(input="How much is 10 EUR in USD?", output="About 11 USD, I think."))
        engine.feedback(earlier, -1, correction="Always call the convert tool; never estimate exchange rates.")
        engine.drain(timeout=60)

        agent = create_agent(
            model, tools=[convert], system_prompt="You are a finance helper.", middleware=[ExperienceMiddleware(engine)]
        )
        result = agent.invoke({"messages": [{"role": "user", "content": "What is 20 EUR in USD?"}]})
        print(f"answer: {result['messages'][-1].content}")
        print(f"episode id (for feedback): {result['expscale_episode_id']}")
        if offline:
            print("\nthe system prompt the model saw:\n" + str(model.prompts[0][0].content))
        engine.feedback(result["expscale_episode_id"], 1)
        engine.drain(timeout=60)
        print(f"\nstore now: {engine.stats().experiences['active']} active experiences")


if __name__ == "__main__":
    main()
