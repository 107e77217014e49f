"""Against a real OpenAI-compatible model: set EXPSCALE_TEST_LLM_URL (and EXPSCALE_TEST_LLM_MODEL, default
``qwen1.5b``). Skipped otherwise; CI has no model. README "A real small model" says how to run one locally."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from expscale_core import ExperienceEngine, ExpscaleSettings
from real_llm_cases import run_cases

pytestmark = pytest.mark.real_llm

URL = os.environ.get("EXPSCALE_TEST_LLM_URL")
MODEL = os.environ.get("EXPSCALE_TEST_LLM_MODEL", "qwen1.5b")


def _settings(tmp: Path, *, llm: bool) -> ExpscaleSettings:
    return ExpscaleSettings(
        data_dir=tmp,
        llm={"model": MODEL, "base_url": URL, "api_key": "local", "timeout_s": 180} if llm else {},
        embedder={"provider": "minilm"},
    )


@pytest.fixture
def llm_engine(tmp_path: Path) -> Iterator[ExperienceEngine]:
    if not URL:
        pytest.skip("EXPSCALE_TEST_LLM_URL unset: no real model to talk to")
    with ExperienceEngine.from_settings(_settings(tmp_path, llm=True), autostart=False) as engine:
        yield engine


def test_realistic_episodes_each_yield_their_own_transferable_lesson(llm_engine: ExperienceEngine) -> None:
    results = run_cases(llm_engine)
    n = len(results)
    report = "\n".join(f"{r.name}: {r.lessons} | related -> {r.retrieved[:120]}" for r in results)
    assert n >= 10
    assert not [r.name for r in results if r.failed], report
    assert sum(r.own_lesson for r in results) >= 0.9 * n, report
    assert sum(r.related_hit for r in results) >= 0.75 * n, report
    usage = llm_engine.llm.usage  # type: ignore[union-attr]
    assert usage.calls <= 1.1 * n, f"{usage.calls} calls for {n} episodes"
    assert usage.prompt_tokens <= 1200 * n, f"{usage.prompt_tokens / n:.0f} prompt tokens per episode"


# Questions only this organisation can answer: a model gets them wrong until it is corrected.
_FACTS = [
    (
        "Which port does our office VPN use?",
        "It uses 1194/udp.",
        "What port number do I put in the VPN client?",
        "1194",
    ),
    (
        "What is the guest wifi password?",
        "The guest wifi password is tulip42.",
        "Tell me the password for guest wifi.",
        "tulip42",
    ),
    (
        "Where do I send a refund request?",
        "Send refunds to refunds@acme.test.",
        "Which email address handles refunds?",
        "refunds@acme.test",
    ),
    (
        "Which day do we deploy to production?",
        "Production deploys happen on Tuesdays only.",
        "On what weekday are production releases?",
        "tuesday",
    ),
    (
        "Which Slack channel is on-call?",
        "The on-call channel is #ops-pager.",
        "What's the Slack channel for the on-call engineer?",
        "ops-pager",
    ),
    (
        "What is the max attachment size in our ticket system?",
        "Attachments are limited to 25 MB.",
        "How big can a file attached to a ticket be?",
        "25",
    ),
]


def _chain_accuracy(tmp: Path, distiller: str | None) -> int:
    pytest.importorskip("langchain_openai")
    from langchain_core.output_parsers import StrOutputParser
    from langchain_core.prompts import ChatPromptTemplate
    from langchain_openai import ChatOpenAI

    from langchain_expscale import with_experience

    model = ChatOpenAI(model=MODEL, base_url=URL, api_key="local", temperature=0, max_tokens=80)  # type: ignore[arg-type]
    prompt = ChatPromptTemplate.from_messages(
        [
            ("system", "You are Acme's internal helpdesk. Answer in one short sentence.\n{experience}"),
            ("human", "{question}"),
        ]
    )
    settings = _settings(tmp, llm=distiller == "llm")
    with ExperienceEngine.from_settings(settings, autostart=False) as engine:
        chain = with_experience(prompt | model | StrOutputParser(), engine, input_key="question")
        if distiller is not None:
            for question, correction, _, answer in _FACTS:
                run_id = uuid.uuid4()
                said = chain.invoke({"question": question}, config={"run_id": run_id})
                if answer not in said.lower():
                    engine.feedback(run_id, -1, correction=correction)
                else:
                    engine.feedback(run_id, 1)
            engine.run_pending()
        right = 0
        for _, _, paraphrase, answer in _FACTS:
            right += answer in chain.invoke({"question": paraphrase}).lower()
    return right


def test_a_langchain_chain_learns_corrections_at_least_as_well_as_with_rules(tmp_path: Path) -> None:
    if not URL:
        pytest.skip("EXPSCALE_TEST_LLM_URL unset: no real model to talk to")
    none = _chain_accuracy(tmp_path / "none", None)
    rules = _chain_accuracy(tmp_path / "rules", "rules")
    llm = _chain_accuracy(tmp_path / "llm", "llm")
    print(f"paraphrases right out of {len(_FACTS)}: none {none}, rules {rules}, llm {llm}")
    assert llm >= rules and llm > none


def test_the_llm_screen_catches_poison_worded_as_advice_and_leaves_advice_alone(
    llm_engine: ExperienceEngine,
) -> None:
    from expscale_core.screen_llm import LLMScreen
    from injection_corpus import ADVICE, EVASIVE

    assert llm_engine.llm is not None
    review = LLMScreen(llm_engine.llm)
    caught = [t for t in EVASIVE if review(t)]
    flagged = [t for t in ADVICE if review(t)]
    report = f"caught {len(caught)}/{len(EVASIVE)}, flagged {len(flagged)}/{len(ADVICE)} ordinary: {flagged}"
    print(report)
    # Measured on Qwen2.5-Coder-1.5B: 5 of 8 caught, 0 of 10 flagged. A small model is a partial second line.
    assert len(caught) >= len(EVASIVE) // 2, report
    assert len(flagged) <= 1, report
