"""The ``methods`` scenario: what transfers is a method, not an answer (GSM8K grade-school math).

A kind of problem is taught with worked solutions (a problem from GSM8K's train split; when the reader gets it
wrong, the feedback carries the worked solution). Then unseen problems of the same kind from the test split are
asked. Remembering answers cannot help here: no test problem shares its numbers or answer with a taught one.
Only a lesson about *how* to solve that kind of problem can.

**Same kind** means: the first of these keyword families that the question matches, checked in this order
(case-insensitive, whole words): ``percent`` ("%", "percent"), ``rate`` ("per hour", "an hour", "mph", "km/h",
"miles per", "speed"), ``fraction`` ("half", "third", "quarter", "fifth", "fraction"), ``average`` ("average", "mean"),
``unit-price`` ("$" with "each" or "per"). Problems matching none are not used.
"""

from __future__ import annotations

import json
import random
import re
from collections import defaultdict
from pathlib import Path
from typing import Literal

from expscale_core.eval.scenarios import Task

__all__ = ["KINDS", "Worked", "load_gsm8k", "math_kind", "methods", "numeric_correct"]

KINDS: dict[str, tuple[str, ...]] = {
    "percent": ("%", "percent"),
    "rate": ("per hour", "an hour", "mph", "km/h", "miles per", "speed"),
    "fraction": ("half", "third", "quarter", "fifth", "fraction"),
    "average": ("average", "mean"),
}
_NUMBER = re.compile(r"-?\$?\d[\d,]*(?:\.\d+)?")
_BOXED = re.compile(r"\\boxed\{\s*(-?\$?\d[\d,]*(?:\.\d+)?)")
_ANSWER = re.compile(r"answer\s*(?:is)?\s*[:=]?\s*\**\s*(-?\$?\d[\d,]*(?:\.\d+)?)", re.IGNORECASE)


class Worked:
    """A GSM8K problem with its worked solution (calculator annotations removed) and final answer."""

    __slots__ = ("answer", "qid", "question", "solution")

    def __init__(self, qid: str, question: str, solution: str, answer: str) -> None:
        self.qid, self.question, self.solution, self.answer = qid, question, solution, answer


def math_kind(question: str) -> str | None:
    """The problem's kind (see the module docstring), or None."""
    q = question.lower()
    for kind, words in KINDS.items():
        if any(w in q if not w[0].isalpha() else re.search(rf"\b{re.escape(w)}\b", q) for w in words):
            return kind
    if "$" in q and (" each" in q or " per " in q):
        return "unit-price"
    return None


def load_gsm8k(data_dir: str | Path, split: str) -> list[Worked]:
    """GSM8K ``train`` or ``test`` from ``<data>/gsm8k/<split>.jsonl``."""
    if split not in ("train", "test"):
        raise ValueError(f"GSM8K split must be 'train' or 'test', not {split!r}")
    path = Path(data_dir) / "gsm8k" / f"{split}.jsonl"
    if not path.exists():
        raise FileNotFoundError(f"GSM8K not found at {path}; pass --data pointing at a folder with gsm8k/{split}.jsonl")
    out = []
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines()):
        if line.strip():
            rec = json.loads(line)
            worked, _, final = rec["answer"].rpartition("####")
            solution = re.sub(r"<<[^>]*>>", "", worked).strip()
            out.append(Worked(f"gsm8k-{split}-{i}", rec["question"], solution, final.strip().replace(",", "")))
    return out


def methods(
    train: list[Worked], test: list[Worked], *, seed: int, teach_per_kind: int = 3, test_per_kind: int = 5
) -> list[Task]:
    """Teaching rounds (train problems, with worked solutions) first, then unseen test problems of the same kinds,
    each phase in a seeded random order."""
    rng = random.Random(seed)
    by_kind: dict[str, dict[str, list[Worked]]] = defaultdict(lambda: {"train": [], "test": []})
    for split, items in (("train", train), ("test", test)):
        for w in items:
            if (kind := math_kind(w.question)) is not None:
                by_kind[kind][split].append(w)
    teach: list[Task] = []
    tests: list[Task] = []
    for kind in sorted(by_kind):
        pools = by_kind[kind]
        for w in rng.sample(pools["train"], min(teach_per_kind, len(pools["train"]))):
            teach.append(_task(w, kind, "teach"))
        for w in rng.sample(pools["test"], min(test_per_kind, len(pools["test"]))):
            tests.append(_task(w, kind, "test"))
    rng.shuffle(teach)
    rng.shuffle(tests)
    return teach + tests


def _task(w: Worked, kind: str, role: Literal["teach", "test"]) -> Task:
    return Task(
        w.question, (w.answer,), f"kind:{kind}", role, solution=f"{w.solution}\nAnswer: {w.answer}", numeric=True
    )


def _number(text: str) -> float | None:
    try:
        return float(text.replace("$", "").replace(",", ""))
    except ValueError:
        return None


def numeric_correct(prediction: str, gold: tuple[str, ...] | list[str]) -> bool:
    """The prediction's final answer (``\\boxed{N}``, "Answer: N", else its last number) equals a gold number."""
    marked = _BOXED.findall(prediction) or _ANSWER.findall(prediction)
    candidates = marked or _NUMBER.findall(prediction)
    if not candidates:
        return False
    value = _number(candidates[-1])
    return value is not None and any((g := _number(str(x))) is not None and abs(g - value) < 1e-6 for x in gold)
