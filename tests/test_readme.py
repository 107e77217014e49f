"""The README's LangChain snippet, run as written (with a fake chat model): it must learn and serve a lesson."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from langchain_core.messages import AIMessage

from langchain_expscale.testing import RecordingFakeChatModel

README = Path(__file__).resolve().parents[1] / "README.md"


def _snippet(marker: str) -> str:
    text = README.read_text(encoding="utf-8")
    match = re.search(rf"<!-- tested: {marker} -->\s*```python\n(.*?)```", text, re.S)
    assert match, f"README block {marker} not found"
    return match.group(1)


def test_the_langchain_snippets_share_one_engine_and_scope_and_learn(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("EXPSCALE_EMBEDDER__PROVIDER", "hash")
    monkeypatch.setenv("EXPSCALE_DISTILL__DELAY_S", "0")
    model = RecordingFakeChatModel(messages=iter([AIMessage(content="443"), AIMessage(content="1194/udp")]))
    namespace: dict[str, object] = {"model": model}
    exec(compile(_snippet("langchain-snippet"), "README.md", "exec"), namespace)
    second_prompt = " ".join(str(m.content) for m in model.prompts[1])
    assert "1194/udp" in second_prompt, "the paraphrase's prompt carries the learned correction"
    docs = namespace["docs"]
    assert docs and "1194/udp" in docs[0].page_content  # type: ignore[index,attr-defined]
    assert (tmp_path / ".expscale").is_dir()
