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
    assert code == 0 and out.startswith("reading scope default/") and "Santiago" in out.splitlines()[1]
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


def test_demo_runs_offline_with_the_real_model_and_the_commands_it_prints_run_as_printed(tmp_path: Path) -> None:
    """From a fresh directory, with the CLI not on PATH (as after `make demo`)."""
    import shlex

    cli = Path(sys.executable).parent / "expscale"
    data = tmp_path / "mydemo"
    env = _env() | {"PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        [str(cli), "demo", "--data-dir", str(data)], capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "embedder: all-MiniLM-L6-v2-onnx" in out
    assert "Share > Export > PDF" in out and "25 MB" in out
    assert "refine: merged" in out
    assert all(p.is_relative_to(tmp_path) for p in tmp_path.rglob("*"))
    assert (data / "episodes.sqlite3").exists() and not (data / "demo").exists()  # the data dir the user passed
    printed = [line.strip() for line in out.splitlines() if f"--data-dir {data}" in line]
    assert len(printed) == 3
    for command in printed:
        run = subprocess.run(shlex.split(command), capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path)
        assert run.returncode == 0, (command, run.stderr)
        assert "no experiences" not in run.stdout, (command, run.stdout)
    # Running it again recreates the demo; a folder with other data is refused, not cleared.
    assert subprocess.run([str(cli), "demo", "--data-dir", str(data)], env=env, capture_output=True).returncode == 0
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    refused = subprocess.run(
        [str(cli), "demo", "--data-dir", str(tmp_path / "mine")], env=env, capture_output=True, text=True
    )
    assert refused.returncode != 0 and "new or empty folder" in refused.stderr
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


def test_read_only_commands_create_nothing_and_point_to_the_demo(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EXPSCALE_EMBEDDER__PROVIDER", "hash")
    with ExperienceEngine.from_settings(ExpscaleSettings(data_dir=tmp_path / "demo")) as engine:
        engine.record(Episode(input="capital of Peru?", output="Lima", outcome=Outcome(score=1)))
    for command in (["stats"], ["scopes"], ["search", "x"], ["review"]):
        assert main(["--data-dir", str(tmp_path), *command]) == 2
        assert f"--data-dir {tmp_path / 'demo'}" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo"]  # nothing created beside it


def test_memory_mode_writes_nothing_to_the_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EXPSCALE_EMBEDDER__PROVIDER", "hash")
    settings = ExpscaleSettings(data_dir=tmp_path / "data", store={"path": ":memory:"})
    with ExperienceEngine.from_settings(settings) as engine:
        engine.record(Episode(input="capital of Peru?", output="Lima", outcome=Outcome(score=1)))
        assert engine.drain(timeout=10) and engine.retrieve("capital of Peru")
    assert not (tmp_path / "data").exists()


def test_search_says_which_scope_it_reads_scopes_lists_them_and_all_reads_every_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EXPSCALE_EMBEDDER__PROVIDER", "hash")
    with ExperienceEngine.from_settings(ExpscaleSettings(data_dir=tmp_path)) as engine:
        engine.record(Episode(input="vpn port?", output="1194", outcome=Outcome(score=1)), scope="support")
        assert engine.drain(timeout=10)
    code, out = _run(capsys, "--data-dir", str(tmp_path), "search", "vpn port")
    assert code == 0 and "reading scope default/" in out and "expscale scopes" in out
    code, out = _run(capsys, "--data-dir", str(tmp_path), "scopes")
    assert code == 0 and "support/tenant=-/agent=-/user=-  active 1" in out
    code, out = _run(capsys, "--data-dir", str(tmp_path), "search", "vpn port", "--scope", "support")
    assert "reading scope support/" in out and "1194" in out
    code, out = _run(capsys, "--data-dir", str(tmp_path), "search", "vpn port", "--all")
    assert "reading every scope" in out and "1194" in out


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
        ("langchain_chain.py", ["first answer: 1937", "answer: 1933", "<experience>", "→ 1933"]),
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


def test_global_options_go_before_or_after_the_subcommand(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = _run(capsys, "--data-dir", str(data_dir), "--json", "stats")
    after = _run(capsys, "stats", "--data-dir", str(data_dir), "--json")
    assert before[0] == after[0] == 0
    assert json.loads(before[1])["episodes"] == json.loads(after[1])["episodes"]


def test_version_and_help_for_every_option(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0 and capsys.readouterr().out.startswith("expscale ")
    with pytest.raises(SystemExit):
        main(["search", "--help"])
    help_text = capsys.readouterr().out
    assert "EXPSCALE_RETRIEVE__K" in help_text and "similarity floor" in help_text


def test_read_only_commands_refuse_a_missing_data_dir(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for command in (["stats"], ["search", "x"], ["export", str(tmp_path / "out.jsonl")]):
        assert main(["--data-dir", str(tmp_path / "typo"), *command]) == 2
        assert "no expscale data at" in capsys.readouterr().err
    assert not (tmp_path / "typo").exists()


def test_search_honours_the_k_setting(
    data_dir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    main(["distill", "--data-dir", str(data_dir)])
    capsys.readouterr()
    monkeypatch.setenv("EXPSCALE_RETRIEVE__K", "1")
    monkeypatch.setenv("EXPSCALE_RETRIEVE__MIN_SCORE", "-1")
    code, out = _run(capsys, "search", "capital", "--data-dir", str(data_dir), "--json")
    assert code == 0 and len(json.loads(out)) == 1


def test_settings_errors_name_the_variable_and_typos_are_flagged(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EXPSCALE_RETRIEVE__K", "0")
    assert main(["--data-dir", str(tmp_path), "stats"]) == 2
    assert "EXPSCALE_RETRIEVE__K" in capsys.readouterr().err
    monkeypatch.delenv("EXPSCALE_RETRIEVE__K")
    monkeypatch.setenv("EXPSCALE_RETRIEV__K", "3")
    with pytest.warns(UserWarning, match="EXPSCALE_RETRIEV__K is ignored; did you mean EXPSCALE_RETRIEVE__K"):
        ExpscaleSettings()


def test_a_closed_pipe_ends_quietly(data_dir: Path) -> None:
    env = _env() | {"EXPSCALE_EMBEDDER__PROVIDER": "hash"}
    cmd = f"{sys.executable} -m expscale_core.cli episodes --limit 1000 --data-dir {data_dir} | head -c 1"
    result = subprocess.run(cmd, shell=True, capture_output=True, text=True, timeout=120, env=env)
    assert "Traceback" not in result.stderr and "BrokenPipe" not in result.stderr


def test_llm_without_a_key_is_a_config_error_naming_the_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    from expscale_core import ConfigError
    from expscale_core.factory import build_llm

    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(ConfigError, match=r"EXPSCALE_LLM__API_KEY.*EXPSCALE_LLM__BASE_URL"):
        build_llm(ExpscaleSettings(llm={"model": "gpt-4o-mini"}))


def test_a_malformed_store_url_and_an_unreachable_llm_name_the_setting(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import httpx
    from expscale_core.errors import LLMError
    from expscale_core.llm import OpenAILLM
    from expscale_core.testing import ScriptedLLM
    from pydantic import BaseModel

    monkeypatch.setenv("EXPSCALE_EMBEDDER__PROVIDER", "hash")
    monkeypatch.setenv("EXPSCALE_STORE__URL", "htp:/qdrant")
    assert main(["--data-dir", str(tmp_path), "distill"]) == 2
    assert "EXPSCALE_STORE__URL='htp:/qdrant' is not a usable Qdrant URL" in capsys.readouterr().err

    class Out(BaseModel):
        answer: str

    down = ScriptedLLM([httpx.ConnectError("refused")], max_retries=0)
    with pytest.raises(LLMError, match=r"unreachable.*EXPSCALE_LLM__BASE_URL"):
        OpenAILLM(down.client, model="m").generate("system", "user", Out)
