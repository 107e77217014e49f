"""Loading the public datasets the scenarios use, from a data path or the in-repo sample."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from urllib.parse import unquote

__all__ = ["QA", "Cluster", "load_comqa", "load_nq_open", "load_sample", "load_webquestions", "readable_answer"]

_PAREN = re.compile(r"\s*\([^)]*\)\s*$")


@dataclass(frozen=True)
class QA:
    """One question with its acceptable answers (already readable)."""

    qid: str
    question: str
    answers: tuple[str, ...]


@dataclass(frozen=True)
class Cluster:
    """Questions that share one answer: human paraphrases (ComQA) or different questions (shared-answer groups)."""

    cid: str
    questions: tuple[str, ...]
    answers: tuple[str, ...]


def readable_answer(answer: str) -> str:
    """ComQA answers are Wikipedia URLs, dates or literals; URLs become their title ("toys (film)" -> "toys")."""
    if answer.startswith("http"):
        title = unquote(answer.rstrip("/").rsplit("/", 1)[-1]).replace("_", " ")
        return _PAREN.sub("", title).strip()
    return answer.strip()


def _need(path: Path, what: str) -> Path:
    if not path.exists():
        raise FileNotFoundError(
            f"{what} not found at {path}; pass --data pointing at a folder with comqa/, webquestions/ and nq_open/ "
            "(see the README's Evaluation section for where each dataset comes from), or use --quick"
        )
    return path


def load_comqa(data_dir: str | Path, split: str) -> list[Cluster]:
    """ComQA clusters of ``split`` (train or dev), with readable answers; clusters without answers are dropped."""
    if split not in ("train", "dev"):
        raise ValueError(f"ComQA split must be 'train' (tuning) or 'dev' (reported numbers), not {split!r}")
    raw = json.loads(_need(Path(data_dir) / "comqa" / f"comqa_{split}.json", "ComQA").read_text(encoding="utf-8"))
    clusters = []
    for rec in raw:
        answers = tuple(a for a in (readable_answer(x) for x in rec["answers"]) if a)
        if answers:
            clusters.append(Cluster(rec["cluster_id"], tuple(dict.fromkeys(rec["questions"])), answers))
    return clusters


def _webquestions_records(records: Iterable[dict[str, object]]) -> list[QA]:
    out = []
    for r in records:
        answers = tuple(str(a) for a in r["answers"] if str(a).strip())  # type: ignore[attr-defined]
        if answers:
            out.append(QA(str(r["qId"]), str(r["qText"]), answers))
    return out


def load_webquestions(data_dir: str | Path, split: str) -> list[QA]:
    """WebQuestions: ``train`` is trainmodel+val+devtest (the original train split), ``test`` the test split."""
    files = {"train": ["trainmodel.json", "val.json", "devtest.json"], "test": ["test.json"]}
    if split not in files:
        raise ValueError(f"WebQuestions split must be 'train' or 'test', not {split!r}")
    records: list[dict[str, object]] = []
    for name in files[split]:
        records += json.loads(_need(Path(data_dir) / "webquestions" / name, "WebQuestions").read_text(encoding="utf-8"))
    return _webquestions_records(records)


def _nq_records(lines: Iterable[str]) -> list[QA]:
    out = []
    for i, line in enumerate(lines):
        if line.strip():
            rec = json.loads(line)
            out.append(QA(f"nq{i}", rec["question"], tuple(rec["answer"])))
    return out


def load_nq_open(data_dir: str | Path) -> list[QA]:
    path = _need(Path(data_dir) / "nq_open" / "NQ-open.dev.jsonl", "NQ-open")
    return _nq_records(path.read_text(encoding="utf-8").splitlines())


def load_sample() -> tuple[list[QA], list[QA]]:
    """The in-repo sample (CC BY 4.0 WebQuestions, CC BY-SA 3.0 NQ-open; see sample/ATTRIBUTION.md)."""
    root = resources.files("expscale_core.eval").joinpath("sample")
    wq = [json.loads(x) for x in root.joinpath("webquestions_sample.jsonl").read_text(encoding="utf-8").splitlines()]
    nq = root.joinpath("nq_open_sample.jsonl").read_text(encoding="utf-8").splitlines()
    return _webquestions_records(wq), _nq_records(nq)
