from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from expscale_core import Episode, ExperienceEngine, ExpscaleSettings, Outcome
from expscale_core.cli import main

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("EXPSCALE_EMBEDDER__PROVIDER", "hash")
    settings = ExpscaleSettings(data_dir=tmp_path)
    with ExperienceEngine.from_settings(settings) as engine:
        engine.record(Episode(input="capital of Peru?", output="Lima", outcome=Outcome(score=1)))
        engine.record(
            Episode(input="capital of Chile?", output="Quito", outcome=Outcome(score=-1, correction="Santiago"))
        )
    return tmp_path


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(list(args))
    return code, capsys.readouterr().out


def test_distill_search_stats_and_episodes(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = str(data_dir)
    code, out = _run(capsys, "episodes", "--data-dir", d, "--status", "pending", "--json")
    assert code == 0 and len(json.loads(out)) == 2
    code, out = _run(capsys, "distill", "--data-dir", d, "--json")
    assert code == 0 and json.loads(out)["distilled"] == 2
    code, out = _run(capsys, "search", "what is the capital of Chile", "--data-dir", d)
    assert code == 0 and "Santiago" in out.splitlines()[0]
    code, out = _run(capsys, "stats", "--data-dir", d, "--json")
    assert json.loads(out)["experiences"]["active"] == 2


def test_distill_retry_failed(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with ExperienceEngine.from_settings(ExpscaleSettings(data_dir=data_dir)) as engine:
        (claimed, *_) = engine.queue.claim(1, ignore_delay=True)
        engine.queue.fail(claimed.id, "LLMOutputError: not JSON", raw_output="oops")
    code, out = _run(capsys, "episodes", "--data-dir", str(data_dir), "--status", "failed")
    assert claimed.id in out and "not JSON" in out
    code, out = _run(capsys, "distill", "--data-dir", str(data_dir), "--json")
    assert code == 3 and json.loads(out)["failed"] == 1, "failed episodes stay failed until retried"
    code, out = _run(capsys, "distill", "--retry-failed", "--data-dir", str(data_dir), "--json")
    result = json.loads(out)
    assert code == 0 and result["retried"] == 1 and result["failed"] == 0 and result["distilled"] == 2


def test_export_import_round_trip_reembeds(data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = str(data_dir)
    _run(capsys, "distill", "--data-dir", d)
    target = tmp_path / "exp.jsonl"
    code, _ = _run(capsys, "export", str(target), "--data-dir", d)
    assert code == 0 and len(target.read_text().splitlines()) == 2
    fresh = tmp_path / "fresh"
    code, out = _run(capsys, "import", str(target), "--data-dir", str(fresh), "--json")
    assert code == 0 and json.loads(out)["imported"] == 2
    code, out = _run(capsys, "search", "capital of Peru", "--data-dir", str(fresh))
    assert "Lima" in out


def test_refine_restore_and_delete(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = str(data_dir)
    _run(capsys, "distill", "--data-dir", d)
    code, out = _run(capsys, "refine", "--data-dir", d, "--json")
    assert code == 0 and json.loads(out)["before_count"] == 2
    code, out = _run(capsys, "delete", "--scope", "default", "--data-dir", d, "--json")
    assert json.loads(out) == {"experiences": 2, "episodes": 2}
    code, out = _run(capsys, "stats", "--data-dir", d, "--json")
    assert json.loads(out)["experiences"]["active"] == 0


def test_errors_are_reported_not_raised(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EXPSCALE_EMBEDDER__PROVIDER", "hash")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"kind": "nonsense"}\n')
    code = main(["import", str(bad), "--data-dir", str(tmp_path / "d")])
    err = capsys.readouterr().err
    assert code == 2 and "bad.jsonl:1" in err and "expscale export" in err


def _env() -> dict[str, str]:
    """The examples' offline mode: no expscale settings and no OpenAI endpoint from the caller's shell."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("EXPSCALE_", "OPENAI_"))}


def test_demo_runs_offline_with_the_real_model(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "expscale_core.cli", "demo", "--data-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
        env=_env(),
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "embedder: all-MiniLM-L6-v2-onnx" in out
    assert "Share > Export > PDF" in out and "25 MB" in out
    assert "refine: merged" in out
    assert all(p.is_relative_to(tmp_path) for p in tmp_path.rglob("*"))


def test_quickstart_example_learns_the_correction(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "quickstart.py"), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
        env=_env(),
    )
    assert result.returncode == 0, result.stderr
    assert "1194/udp" in result.stdout and "<experience>" in result.stdout


@pytest.mark.parametrize(
    ("script", "expected"),
    [
        ("langchain_chain.py", ["first answer: 1937", "answer: 1933", "<experience>", "correct answer is: 1933"]),
        ("langchain_agent.py", ["answer: 20 EUR is 21.60 USD.", "never estimate exchange rates", "episode id"]),
        (
            "llamaindex_query_engine.py",
            [
                "A: Deleted notes are gone for good.",
                "A: From Trash, within 30 days.",
                "experience served (fact",
                "restore it from Trash",
            ],
        ),
        (
            "llamaindex_agent.py",
            ["answer: Ship with the tracked courier", "need a signature on delivery", "You are a shipping assistant."],
        ),
    ],
)
def test_framework_examples_run_offline(script: str, expected: list[str], tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / script), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
        env=_env(),
    )
    assert result.returncode == 0, result.stderr
    for text in expected:
        assert text in result.stdout
