"""The evaluation harness: scenario generators, readers, metrics, and a quick end-to-end run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from expscale_core.cli import main
from expscale_core.eval import (
    Cluster,
    LLMReader,
    OracleReader,
    load_comqa,
    load_sample,
    related,
    repetitive,
    saturation,
)
from expscale_core.eval.data import QA, readable_answer
from expscale_core.eval.readers import is_correct
from expscale_core.eval.runner import EvalConfig, _windows, run_arm
from expscale_core.eval.scenarios import shared_answer_groups
from expscale_core.scoring import normalize_answer
from expscale_core.testing import HashEmbedder, ScriptedLLM

CLUSTERS = [
    Cluster(f"c{i}", tuple(f"paraphrase {j} of question {i}?" for j in range(3)), (f"answer{i}",)) for i in range(12)
]
TRAFFIC = [QA(f"t{i}", f"unrelated traffic question {i}?", (f"t-answer{i}",)) for i in range(30)]


def _order_ok(tasks) -> None:  # type: ignore[no-untyped-def]
    taught: set[str] = set()
    for t in tasks:
        if t.role == "teach":
            assert t.group not in taught
            taught.add(t.group)
        elif t.role == "test" or (t.role == "flood" and not t.group.startswith("traffic:")):
            assert t.group in taught, f"{t.role} of {t.group} came before its teaching round"


def test_repetitive_is_deterministic_and_teaches_before_testing() -> None:
    a, b = repetitive(CLUSTERS, seed=3), repetitive(CLUSTERS, seed=3)
    assert a == b and a != repetitive(CLUSTERS, seed=4)
    assert sum(t.role == "teach" for t in a) == 12 and sum(t.role == "test" for t in a) == 24
    _order_ok(a)
    teach_questions = {t.question for t in a if t.role == "teach"}
    assert not teach_questions & {t.question for t in a if t.role == "test"}, "no test item is ever taught"


def test_related_tests_share_an_answer_but_never_a_question() -> None:
    items = [
        QA("1", "what language do they speak in peru?", ("Spanish",)),
        QA("2", "what language is spoken in mexico?", ("Spanish",)),
        QA("3", "what do people in chile speak?", ("spanish",)),
        QA("4", "what is the currency of japan?", ("Yen",)),
        QA("5", "what language do they speak in peru?", ("Spanish",)),
    ]
    groups = shared_answer_groups(items)
    assert [g.cid for g in groups] == ["ans:spanish"] and len(groups[0].questions) == 3
    tasks = related(items, seed=1)
    _order_ok(tasks)
    teach = [t for t in tasks if t.role == "teach"]
    tests = [t for t in tasks if t.role == "test"]
    assert len(teach) == 1 and len(tests) == 2
    assert teach[0].question not in {t.question for t in tests}


def test_saturation_floods_without_leaking_tests() -> None:
    tasks = saturation(CLUSTERS, TRAFFIC, factor=10, seed=5)
    assert tasks == saturation(CLUSTERS, TRAFFIC, factor=10, seed=5)
    flood = [t for t in tasks if t.role == "flood"]
    assert len(flood) == 10 * 12
    _order_ok(tasks)
    test_questions = {normalize_answer(t.question) for t in tasks if t.role == "test"}
    assert not test_questions & {normalize_answer(t.question) for t in flood}
    assert {t.group.startswith("traffic:") for t in flood} == {True, False}, "near-duplicates and traffic"


def test_oracle_reader_and_answer_matching() -> None:
    oracle = OracleReader()
    assert (
        oracle.answer("q", "1. [fact] For “q” the correct answer is: Frank Herbert.", ["frank herbert"])
        != "I don't know."
    )
    assert oracle.answer("q", "the answer is Herbertson", ["Herbert"]) == "I don't know.", "whole words only"
    assert oracle.answer("q", "", ["x"]) == "I don't know."
    assert is_correct("It was Frank Herbert.", ["Frank Herbert"]) and not is_correct("Asimov", ["Frank Herbert"])
    assert not is_correct("", ["x"])
    assert readable_answer("https://en.wikipedia.org/wiki/toys_(film)") == "toys"
    assert readable_answer("1933-01-30") == "1933-01-30"


def test_windows_metric() -> None:
    acc, ends = _windows([True, False, True, True], [5, 6, 9, 12], 2)
    assert acc == [0.5, 1.0] and ends == [6, 12]
    assert _windows([], [], 3) == ([], [])


@pytest.mark.parametrize("mode", ["chat", "completion"])
def test_llm_reader_uses_any_openai_compatible_endpoint(mode: str) -> None:
    server = ScriptedLLM([" Frank Herbert"])
    reader = LLMReader(server.client, model="tiny", mode=mode)  # type: ignore[arg-type]
    assert reader.answer("who wrote Dune?", "1. [fact] Dune: Frank Herbert", ["Frank Herbert"]) == "Frank Herbert"
    request = server.requests[0]
    assert request.path.endswith("/chat/completions" if mode == "chat" else "/completions")
    sent = request.prompt_text if mode == "chat" else request.body["prompt"]
    assert "Dune: Frank Herbert" in sent and "who wrote Dune?" in sent
    assert reader.calls == 1 and reader.prompt_tokens > 0


def test_arms_learn_differently_on_the_same_stream() -> None:
    tasks = repetitive(CLUSTERS, seed=2)
    config = EvalConfig(min_score=0.1)
    results = {arm: run_arm(arm, tasks, OracleReader(), config, HashEmbedder()) for arm in ("none", "raw", "expscale")}
    assert results["none"].accuracy < results["expscale"].accuracy
    assert results["none"].store_count[-1] == 0 < results["expscale"].store_count[-1]
    assert results["raw"].store_tokens[-1] > results["expscale"].store_tokens[-1], "raw logs are bigger"
    assert all(r.n_test == 24 for r in results.values())


def test_comqa_loader_reads_the_published_format(tmp_path: Path) -> None:
    (tmp_path / "comqa").mkdir()
    (tmp_path / "comqa" / "comqa_dev.json").write_text(
        json.dumps(
            [
                {
                    "cluster_id": "cluster-1",
                    "questions": ["a?", "b?", "a?"],
                    "answers": ["https://en.wikipedia.org/wiki/x_(y)"],
                },
                {"cluster_id": "cluster-2", "questions": ["c?"], "answers": [""]},
            ]
        )
    )
    (cluster,) = load_comqa(tmp_path, "dev")
    assert cluster.questions == ("a?", "b?") and cluster.answers == ("x",)
    with pytest.raises(FileNotFoundError, match="--quick"):
        load_comqa(tmp_path, "train")
    with pytest.raises(ValueError, match="tuning"):
        load_comqa(tmp_path, "test")


def test_sample_is_shipped_with_attribution() -> None:
    wq, nq = load_sample()
    assert len(wq) == 82 and len(nq) == 120
    assert len(shared_answer_groups(wq)) >= 14


def test_quick_eval_writes_the_report_and_memory_beats_none(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    code = main(["eval", "--quick", "--flood", "5", "--saturation-rounds", "300", "--out", str(out), "--json"])
    assert code == 0
    results = json.loads(capsys.readouterr().out)
    assert [r["scenario"] for r in results] == ["repetitive", "related", "saturation-5x"]
    for r in results:
        assert set(r["arms"]) == {"none", "raw", "expscale-norefine", "expscale"}
        assert r["reader"] == "oracle" and r["embedder"] == "all-MiniLM-L6-v2-onnx"
    repetitive_arms = results[0]["arms"]
    assert repetitive_arms["none"]["accuracy"] < repetitive_arms["expscale"]["accuracy"]
    written = {p.name for p in out.iterdir()}
    assert {
        "results.json",
        "results.md",
        "repetitive_oracle.png",
        "related_oracle.png",
        "saturation-5x_oracle.png",
    } <= written
    assert "Reader: **oracle**" in (out / "results.md").read_text()


def test_eval_needs_data_or_quick(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval"]) == 2
    assert "--quick" in capsys.readouterr().err


def test_llm_distiller_cost_is_reported_per_distilled_episode() -> None:
    from expscale_core import OpenAILLM

    reply = json.dumps(
        {
            "candidates": [
                {
                    "action": "ADD",
                    "target": None,
                    "kind": "fact",
                    "content": "The answer is in the correction.",
                    "applicability": "trivia",
                }
            ]
        }
    )
    server = ScriptedLLM([reply])
    llm = OpenAILLM(server.client, model="tiny")
    tasks = repetitive(CLUSTERS[:3], seed=1)
    result = run_arm("expscale-norefine", tasks, OracleReader(), EvalConfig(), HashEmbedder(), llm=llm)
    assert result.distilled_episodes == len(tasks)
    # A reply that is no rule gets the corrective retry, then the verbatim lesson stands: two calls, no replay.
    assert result.llm_calls_per_episode == 2.0 and result.llm_calls_per_corrected == 2.0
    assert result.llm_tokens_per_episode > 0
    raw = run_arm("raw", tasks, OracleReader(), EvalConfig(), HashEmbedder(), llm=llm)
    assert raw.llm_calls_per_episode == 0.0, "the raw arm makes no LLM calls"
