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


@pytest.mark.parametrize("marker", ["retriever-snippet", "embeddings-snippet"])
def test_the_retriever_and_embeddings_snippets_run_alone_on_an_empty_store(marker: str) -> None:
    from expscale_core.testing import make_engine

    with make_engine(autostart=False) as engine:
        exec(compile(_snippet(marker), "README.md", "exec"), {"engine": engine})


def test_the_readme_is_in_the_order_a_user_needs_it() -> None:
    headings = [h for h in re.findall(r"^## (.+)$", README.read_text(encoding="utf-8"), re.M)]
    wanted = ["Try it", "Quickstart", "LangChain", "LlamaIndex", "Configuration", "CLI", "Guarantees", "Results"]
    positions = [next(i for i, h in enumerate(headings) if h.startswith(w)) for w in wanted]
    assert positions == sorted(positions), headings
    assert "docs/eval.md" in README.read_text(encoding="utf-8")
    assert (README.parent / "docs" / "eval.md").is_file()


def test_every_setting_is_in_the_configuration_table() -> None:
    from expscale_core.settings import ExpscaleSettings, _env_names

    text = README.read_text(encoding="utf-8")
    table = text[text.index("## Configuration") : text.index("## CLI")]
    names = _env_names(ExpscaleSettings)
    leaves = [n for n in names if not any(o != n and o.startswith(n + "__") for o in names)]

    def listed(name: str) -> bool:  # a row may group fields of one section: `EXPSCALE_X__A` / `__B`
        section, _, field = name.rpartition("__")
        return f"`{name}`" in table or (f"`__{field}`" in table and f"`{section}__" in table)

    assert [n for n in leaves if not listed(n)] == []
