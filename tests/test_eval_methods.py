"""The GSM8K ``methods`` scenario: what transfers is a method, and the arms that name their distiller."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pytest
from expscale_core import OpenAILLM
from expscale_core.eval.methods import load_gsm8k, math_kind, methods, numeric_correct
from expscale_core.eval.runner import EvalConfig, run_arm
from expscale_core.testing import HashEmbedder, RecordedRequest, ScriptedLLM

# Four GSM8K-style records per split in the published format ("#### answer", <<calculator>> annotations).
_PERCENT = [
    ("A coat costs $80 after a 20% discount. What was the original price?", "80/(1-0.2)=<<80/0.8=100>>100\n#### 100"),
    ("A lamp sells for $45 after a 10% discount. What was its price before?", "45/0.9=<<45/0.9=50>>50\n#### 50"),
    ("After a 25% discount a TV costs $300. What was the original price?", "300/0.75=<<300/0.75=400>>400\n#### 400"),
    ("A bike costs $120 after a 40 percent discount. What was its full price?", "120/0.6=<<120/0.6=200>>200\n#### 200"),
]
_RATE = [
    ("A car drives 60 miles per hour for 3 hours. How far does it go?", "60*3=<<60*3=180>>180\n#### 180"),
    ("Sam reads 20 pages an hour. How many pages in 5 hours?", "20*5=<<20*5=100>>100\n#### 100"),
]


def _write(tmp: Path, split: str, rows: Sequence[tuple[str, str]]) -> None:
    (tmp / "gsm8k").mkdir(exist_ok=True)
    lines = [json.dumps({"question": q, "answer": a}) for q, a in rows]
    (tmp / "gsm8k" / f"{split}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")


def test_kinds_are_keyword_families_matched_as_whole_words() -> None:
    assert math_kind("She got 20% off") == "percent"
    assert math_kind("He drives at 50 mph") == "rate"
    assert math_kind("Meanwhile each pen costs $1.50") == "unit-price", "'meanwhile' is not 'mean'"
    assert math_kind("What is the average of 3 and 5?") == "average"
    assert math_kind("How many apples are left?") is None


def test_loader_reads_the_published_format_and_drops_calculator_annotations(tmp_path: Path) -> None:
    _write(tmp_path, "train", _PERCENT[:2])
    (first, _) = load_gsm8k(tmp_path, "train")
    assert first.answer == "100" and "<<" not in first.solution and "80/(1-0.2)=100" in first.solution
    with pytest.raises(FileNotFoundError, match=r"gsm8k/test\.jsonl"):
        load_gsm8k(tmp_path, "test")


def test_teaching_comes_from_train_and_tests_are_unseen_problems_of_the_same_kind(tmp_path: Path) -> None:
    _write(tmp_path, "train", [*_PERCENT[:2], _RATE[0]])
    _write(tmp_path, "test", [*_PERCENT[2:], _RATE[1]])
    tasks = methods(load_gsm8k(tmp_path, "train"), load_gsm8k(tmp_path, "test"), seed=1, teach_per_kind=2)
    teach = [t for t in tasks if t.role == "teach"]
    test = [t for t in tasks if t.role == "test"]
    assert tasks[: len(teach)] == teach, "every teaching round comes first"
    assert {t.group for t in test} <= {t.group for t in teach}
    assert not {t.question for t in test} & {t.question for t in teach}
    assert all(t.numeric and t.solution and t.solution.endswith(f"Answer: {t.answers[0]}") for t in tasks)


@pytest.mark.parametrize(
    ("prediction", "right"),
    [
        (r"so 300/0.75 = 400. \(\boxed{400}\)", True),
        ("It was $400.\nAnswer: 400", True),
        ("The answer is 1,200 dollars", False),
        ("300 + 75 = 375", False),
        ("no idea", False),
    ],
)
def test_numeric_answers_are_checked_by_the_final_number(prediction: str, right: bool) -> None:
    assert numeric_correct(prediction, ("400",)) is right


class MethodReader:
    """Solves a discount problem only when its memory carries the method (divide by 1 - rate)."""

    name = "scripted-math"

    def answer(self, question: str, memory: str, gold: Sequence[str]) -> str:
        return f"Answer: {gold[0]}" if "divide" in memory.lower() else "Answer: 1"


def test_a_distilled_method_transfers_to_unseen_problems_where_a_stored_answer_cannot(tmp_path: Path) -> None:
    _write(tmp_path, "train", _PERCENT[:2])
    _write(tmp_path, "test", _PERCENT[2:])
    tasks = methods(load_gsm8k(tmp_path, "train"), load_gsm8k(tmp_path, "test"), seed=3, teach_per_kind=2)
    solved = {q: a.rsplit("#### ", 1)[1] for q, a in _PERCENT}

    def reply(request: RecordedRequest) -> str:
        system, user = (m["content"] for m in request.messages[:2])
        if system.startswith("You write down the rule"):  # the rule behind the corrected worked answer
            rule = "To undo a percentage discount, divide the sale price by (1 - rate)."
            return json.dumps({"rule": rule, "applies_to": ["original price after a discount"]})
        return json.dumps({"answer": solved.get(user, "1")})  # the replay, with the rule alone

    server = ScriptedLLM(reply)
    llm = OpenAILLM(server.client, model="tiny")
    config = EvalConfig(min_score=0.05)
    none = run_arm("none", tasks, MethodReader(), config, HashEmbedder())
    rules = run_arm("rules", tasks, MethodReader(), config, HashEmbedder())
    distilled = run_arm("llm", tasks, MethodReader(), config, HashEmbedder(), llm=llm)
    assert none.accuracy == 0.0 and distilled.accuracy == 1.0
    assert rules.accuracy < distilled.accuracy, "the rules arm stores worked answers, not the method"
    assert distilled.yielded == 1.0 and distilled.failed == 0.0
    assert distilled.llm_calls_per_corrected == 2.0, "the rule and its replay"
    assert distilled.distill_s_per_episode > 0


def test_llm_arms_need_an_llm() -> None:
    with pytest.raises(ValueError, match="--distill-llm"):
        run_arm("llm-refine", [], MethodReader(), EvalConfig(), HashEmbedder())
