"""The sharing experiment: frontends taught on their own families, one shared store against isolated stores."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import pytest
from expscale_core.cli import main
from expscale_core.eval.command import parse_frontend
from expscale_core.eval.conventions import FAMILIES
from expscale_core.eval.runner import EvalConfig
from expscale_core.eval.sharing import Frontend, deal_families, rounds, run_sharing
from expscale_core.eval.sharing_report import sharing_markdown, write_sharing_report
from expscale_core.testing import HashEmbedder


def _instance(pattern: str) -> str:
    """A text the test pattern accepts: the patterns are literals with a few anchors and optional spaces."""
    text = pattern.replace("(?i)", "").replace(r"\b", "").replace(r"\s*", " ")
    return re.sub(r"\\(.)", r"\1", text)


class FamilyReader:
    """Answers a test right exactly when a teaching answer of its family is in the notes; answers teaching
    requests wrong, so each is corrected. Counts what it was asked."""

    def __init__(self, name: str) -> None:
        self.name = f"fake:{name}"
        self.calls = 0
        self.family = {q: f for f in FAMILIES for q, *_ in (*f.teach, *f.test)}
        self.right = {q: _instance(expect) for f in FAMILIES for q, expect, _ in f.test}

    def answer(self, question: str, memory: str, gold: Sequence[str]) -> str:
        self.calls += 1
        family = self.family[question]
        if question not in self.right:
            return "no idea"
        return self.right[question] if any(a in memory for _, a in family.teach) else "no idea"


def _run(tmp_path: Path, k: int = 3):  # type: ignore[no-untyped-def]
    readers = [FamilyReader(f"f{i}") for i in range(k)]
    frontends = [Frontend(f"f{i}", r) for i, r in enumerate(readers)]
    # Every lesson fits the prompt: the experiment is about what is in the store, not about ranking.
    config = EvalConfig(k=2 * k + 2, min_score=0.0, token_budget=2000)
    return readers, run_sharing(frontends, HashEmbedder(), style="answer", seed=5, limit=k, config=config)


def test_families_are_dealt_out_disjoint_and_whole() -> None:
    dealt = deal_families(3, seed=1)
    names = [f.name for hand in dealt for f in hand]
    assert sorted(names) == sorted(f.name for f in FAMILIES)
    assert max(map(len, dealt)) - min(map(len, dealt)) <= 1
    assert deal_families(3, seed=1) == dealt  # seeded
    with pytest.raises(ValueError, match="--limit"):
        deal_families(4, seed=1, limit=3)


def test_sharing_lets_each_frontend_answer_what_only_the_others_were_taught(tmp_path: Path) -> None:
    readers, result = _run(tmp_path)
    assert sum(r.calls for r in readers) == rounds(3, limit=3)
    for front in result.frontends:
        assert len(front.families) == 1
        assert front.right("none") == (0, 12)
        assert front.right("isolated", own=True) == (4, 4)  # its own lessons, in its own store
        assert front.right("isolated", own=False) == (0, 8)  # nothing crosses between isolated stores
        assert front.right("shared") == (12, 12)
        assert front.changed("shared", "isolated", own=False) == (8, 0)
        assert front.changed("shared", "isolated", own=True) == (0, 0)
        assert all(front.recalled["shared"]) and sum(front.recalled["isolated"]) == 4
        assert front.taught_wrong == 2
    # Each frontend's lessons carry its deployment name in the one store.
    assert set(result.lessons_by_deployment) == {"f0", "f1", "f2"}
    assert all(n >= 1 for n in result.lessons_by_deployment.values())


def test_the_report_shows_gain_and_negative_transfer_per_frontend(tmp_path: Path) -> None:
    _, result = _run(tmp_path)
    text = sharing_markdown(result)
    assert "| f0 | fake:f0 | shared | 12/12" in text
    assert "| f1 | +0 / −0 | +8 / −0 | +12 / −0 | +4 / −0 |" in text
    paths = write_sharing_report(result, tmp_path / "out")
    assert {p.name for p in paths} >= {"sharing-answer-results.json", "sharing-answer-results.md"}


def test_frontend_specs_are_parsed_or_explained() -> None:
    assert parse_frontend("g=completion:gemma-3-270m@http://127.0.0.1:8090/v1") == (
        "g",
        "completion",
        "gemma-3-270m",
        "http://127.0.0.1:8090/v1",
    )
    with pytest.raises(ValueError, match="NAME=MODE:MODEL@URL"):
        parse_frontend("qwen=shout:qwen1.5b@http://x")
    with pytest.raises(ValueError, match="NAME=MODE:MODEL@URL"):
        parse_frontend("qwen1.5b")


def test_the_cli_asks_for_two_frontends(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["eval", "--scenario", "sharing", "--frontend", "a=chat:m@http://127.0.0.1:9/v1", "--embedder", "hash"])
    assert code != 0
    assert "at least two --frontend" in capsys.readouterr().err
