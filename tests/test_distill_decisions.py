"""What the engine does with a distiller's decisions: scope isolation, unrelated targets, stable ids,
served lessons and the prompt budget. All through the real openai client on a scripted transport."""

from __future__ import annotations

import json

from expscale_core import (
    Episode,
    Experience,
    ExperienceStatus,
    LLMStep,
    OpenAILLM,
    Outcome,
    Scope,
    ToolStep,
)
from expscale_core.scoring import count_tokens
from expscale_core.settings import DistillSettings
from expscale_core.testing import HashEmbedder, ScriptedLLM, make_engine


def _lesson(content: str, applicability: str, action: str = "ADD", target: int | None = None) -> str:
    item: dict[str, object] = {"kind": "strategy", "content": content, "applicability": applicability}
    if target is not None or action != "ADD":
        item |= {"action": action, "target": target}
    return json.dumps({"candidates": [item]})


def _seed(engine, content: str, applicability: str, scope: Scope) -> Experience:  # type: ignore[no-untyped-def]
    exp = Experience(kind="fact", content=content, applicability=applicability, scope=scope)
    engine.store.upsert([(exp, engine.embedder.embed([exp.embedding_text()])[0])])
    return exp


def test_an_update_aimed_at_an_unrelated_record_becomes_a_new_lesson() -> None:
    # The handle is offered (same request words), but the lesson the model wrote is about something else.
    reply = _lesson("Divide the sale price by one minus the discount rate.", "percentage discounts", "UPDATE", 1)
    server = ScriptedLLM([reply])
    with make_engine(llm=OpenAILLM(server.client, model="m")) as engine:
        old = _seed(engine, "The office VPN port is 1194/udp.", "office question about the port", Scope())
        engine.record(Episode(input="office question about the port", output="443", outcome=Outcome(score=-1)))
        engine.run_pending()
        assert "[1] (fact) The office VPN port is 1194/udp." in server.requests[0].prompt_text
        (kept,) = engine.store.get([old.id])
        assert kept[0].content == old.content and kept[0].support == 1, "the unrelated record was not absorbed"
        new = [e for e, _ in engine.store.scan() if e.id != old.id]
        assert [e.content for e in new] == ["Divide the sale price by one minus the discount rate."]
        assert "-> ADD" in new[0].provenance.repairs[0]


def test_unrelated_records_are_not_offered_as_handles() -> None:
    server = ScriptedLLM([_lesson("Scale every ingredient by the same factor.", "recipe scaling")])
    with make_engine(llm=OpenAILLM(server.client, model="m")) as engine:
        _seed(engine, "The office VPN port is 1194/udp.", "vpn port questions", Scope())
        engine.record(Episode(input="double this cake recipe", output="ok", outcome=Outcome(score=1)))
        engine.run_pending()
        assert "EXISTING EXPERIENCES" not in server.requests[0].prompt_text
        assert "target" not in json.dumps(server.requests[0].body["response_format"])


def test_distillation_never_reads_or_writes_another_scope() -> None:
    alice = Scope(namespace="acme", user="alice")
    with make_engine() as engine:  # rules distiller: a new verified answer supersedes a same-question fact
        mine = _seed(engine, "The verified answer is: tulip42.", "office wifi password?", alice)
        engine.record(Episode(input="office wifi password?", output="daisy7", outcome=Outcome(score=1)), scope="acme")
        engine.run_pending()
        (after,) = engine.store.get([mine.id])
        assert after[0].status is ExperienceStatus.ACTIVE and after[0].support == 1
        served = [h.experience.id for h in engine.retrieve("office wifi password?", scope=alice)]
        assert mine.id in served, "alice's own lesson is still hers to read"
    server = ScriptedLLM([_lesson("Rotate the wifi password monthly.", "wifi password", "UPDATE", 1)])
    with make_engine(llm=OpenAILLM(server.client, model="m")) as engine:
        mine = _seed(engine, "The verified answer is: tulip42.", "office wifi password?", alice)
        engine.record(Episode(input="office wifi password?", output="x", outcome=Outcome(score=1)), scope="acme")
        engine.run_pending()
        assert "tulip42" not in server.requests[0].prompt_text, "another scope's lesson reached the prompt"
        assert engine.store.get([mine.id])[0][0].content == "The verified answer is: tulip42."


def test_re_distilling_an_episode_rewrites_the_same_experience() -> None:
    # A crash after the write and before the queue is told: the episode runs again and the model words
    # its lesson differently. The id must not depend on the wording.
    server = ScriptedLLM(
        [_lesson("Use the rates tool for currency.", "currency"), _lesson("Call the rates tool first.", "currency")]
    )
    with make_engine(llm=OpenAILLM(server.client, model="m")) as engine:
        ep = Episode(id="ep-1", input="250 EUR in USD?", output="270", outcome=Outcome(score=-1))
        engine.record(ep)
        engine.run_pending()
        engine.record(ep)  # same id, same outcome: what a lease expiry after a crash amounts to
        engine.run_pending()
        active = [e for e, _ in engine.store.scan(statuses=[ExperienceStatus.ACTIVE])]
        assert len(active) == 1 and active[0].content == "Call the rates tool first."
        assert active[0].support == 1


def test_served_lessons_are_shown_to_the_distiller_and_can_be_superseded() -> None:
    server = ScriptedLLM([_lesson("The VPN uses 1194/udp.", "vpn port questions", "SUPERSEDE", 1)])
    with make_engine(llm=OpenAILLM(server.client, model="m")) as engine:
        wrong = _seed(engine, "The VPN uses port 443.", "vpn port questions", Scope())
        engine.retrieve("vpn port questions", episode_id="run-7")
        engine.record(
            # Feedback without a correction: nothing verified to keep verbatim, the model's lessons decide (v2).
            Episode(id="run-7", input="vpn port questions", output="443", outcome=Outcome(score=-1, comment="wrong"))
        )
        engine.run_pending()
        assert "[1] (served) (fact) The VPN uses port 443." in server.requests[0].prompt_text
        (old,) = engine.store.get([wrong.id])
        assert old[0].status is ExperienceStatus.SUPERSEDED
        assert engine.retrieve("vpn port questions")[0].experience.content == "The VPN uses 1194/udp."


def test_long_episodes_fit_the_prompt_budget_and_keep_request_errors_answer_and_outcome() -> None:
    server = ScriptedLLM([_lesson("Paginate the export.", "large exports")])
    steps = [LLMStep(response=f"thinking step {i} " + "blah " * 80) for i in range(30)]
    steps.insert(15, ToolStep(tool="export", input={"rows": 10**6}, error="413 payload too large"))
    budget = 700
    with make_engine(
        llm=OpenAILLM(server.client, model="m"),
        embedder=HashEmbedder(),
        distill=DistillSettings(delay_s=0, idle_s=0, prompt_budget_tokens=budget),
    ) as engine:
        engine.record(
            Episode(
                input="export all orders to CSV",
                steps=steps,
                output="export failed",
                outcome=Outcome(score=-1, comment="too big: paginate by 10k rows"),
            )
        )
        engine.run_pending()
    prompt = server.requests[0].prompt_text
    assert count_tokens(prompt) <= budget + 40  # the estimate, not the server's tokenizer
    for kept in ("USER REQUEST: export all orders to CSV", "413 payload too large", "WRONG ANSWER", "paginate by"):
        assert kept in prompt
    assert "step(s) omitted" in prompt
