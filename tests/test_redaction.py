"""One redactor on the engine covers every path: adapters' capture, feedback, imports; nothing raw reaches disk."""

from __future__ import annotations

import uuid
from pathlib import Path

from expscale_core import Experience, ExperienceEngine, ExpscaleSettings
from expscale_core.capture.redact import redact_text
from expscale_core.ops.transfer import import_jsonl
from langchain_core.messages import AIMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate

from langchain_expscale import with_experience
from langchain_expscale.testing import RecordingFakeChatModel

EMAIL, KEY, CARD = "jane.doe@example.com", "sk-proj-abcdefghijklmnop1234567890", "4111 1111 1111 1111"


def _files_containing(root: Path, needle: str) -> list[str]:
    return [str(p) for p in root.rglob("*") if p.is_file() and needle.encode() in p.read_bytes()]


def test_builtin_patterns() -> None:
    text = f"mail {EMAIL} key {KEY} card {CARD} order 1234 5678"
    out = redact_text(text, ["api_keys", "emails", "cards"])
    assert EMAIL not in out and KEY not in out and CARD not in out and "order 1234 5678" in out


def test_every_path_is_redacted_before_it_is_stored(tmp_path: Path) -> None:
    settings = ExpscaleSettings(
        data_dir=tmp_path / "data",
        embedder={"provider": "hash"},
        distill={"delay_s": 0},
        redact={"builtin": ["api_keys", "emails", "cards"]},
    )
    with ExperienceEngine.from_settings(settings, autostart=False) as engine:
        model = RecordingFakeChatModel(messages=iter([AIMessage(content=f"Write to {EMAIL}.")]))
        prompt = ChatPromptTemplate.from_messages([("system", "{experience}"), ("human", "{question}")])
        chain = with_experience(prompt | model | StrOutputParser(), engine, input_key="question")
        run_id = uuid.uuid4()
        chain.invoke({"question": f"My key {KEY} fails, who do I ask?"}, config={"run_id": run_id})
        engine.feedback(run_id, -1, comment=f"my card {CARD} was charged", correction=f"Ask {EMAIL} with key {KEY}")
        export = tmp_path / "in.jsonl"
        export.write_text(Experience(kind="fact", content=f"Support is {EMAIL}").model_dump_json() + "\n")
        import_jsonl(engine, export)
        engine.run_pending()
        engine.flush()
    for secret in (EMAIL, KEY, CARD):
        assert _files_containing(tmp_path / "data", secret) == [], secret
