"""Deletion is complete: no file in the data dir holds the deleted text once delete() returns."""

from __future__ import annotations

from pathlib import Path

from expscale_core import Episode, ExperienceEngine, ExperienceStatus, ExpscaleSettings, Outcome


def _files_containing(root: Path, needle: str) -> list[str]:
    data = needle.encode()
    return [str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and data in p.read_bytes()]


def _engine(tmp: Path) -> ExperienceEngine:
    settings = ExpscaleSettings(data_dir=tmp, embedder={"provider": "hash"}, distill={"delay_s": 0})
    return ExperienceEngine.from_settings(settings, autostart=False)


def test_deleting_an_episode_removes_every_copy_of_its_text(tmp_path: Path) -> None:
    secret = "Zanzibar-Quokka-7731"
    with _engine(tmp_path) as engine:
        for i in range(30):
            engine.record(Episode(input=f"unrelated question {i}?", output=f"answer {i}", outcome=Outcome(score=1)))
        engine.record(
            Episode(id="leaky", input="office wifi password?", output="x", outcome=Outcome(score=-1, correction=secret))
        )
        engine.record(Episode(id="other", input="office wifi password?", output="tulip", outcome=Outcome(score=1)))
        engine.run_pending()
        engine.refine()
        assert _files_containing(tmp_path, secret), "the secret was stored (the test would prove nothing)"
        counts = engine.delete(episode_id="leaky")
        assert counts["experiences"] >= 1
        assert _files_containing(tmp_path, secret) == []
        assert all(secret not in e.content for e, _ in engine.store.scan())
        engine.run_pending()  # what the other source taught comes back, without the deleted text
        active = [e for e, _ in engine.store.scan(statuses=[ExperienceStatus.ACTIVE])]
        assert any("tulip" in e.content for e in active) and len(active) >= 30
    assert _files_containing(tmp_path, secret) == []


def test_deleting_a_scope_removes_its_text_from_every_file(tmp_path: Path) -> None:
    secret = "Marmalade-Heron-0042"
    with _engine(tmp_path) as engine:
        engine.record(Episode(input="acme vault code?", output=secret, outcome=Outcome(score=1)), scope="acme")
        engine.record(Episode(input="globex vault code?", output="open", outcome=Outcome(score=1)), scope="globex")
        engine.run_pending()
        assert _files_containing(tmp_path, secret)
        assert engine.delete(scope="acme") == {"experiences": 1, "episodes": 1}
        assert _files_containing(tmp_path, secret) == []
        assert engine.retrieve("globex vault code?", scope="globex")
