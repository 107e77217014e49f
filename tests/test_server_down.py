"""A store that is down at start-up: the app starts, serves without memory, queues episodes, and recovers."""

from __future__ import annotations

import socket
from pathlib import Path

from expscale_core import Episode, ExperienceEngine, ExpscaleSettings, Outcome
from expscale_core.testing import FlakyStore


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_an_unreachable_qdrant_server_does_not_stop_the_app(tmp_path: Path) -> None:
    settings = ExpscaleSettings(
        data_dir=tmp_path,
        embedder={"provider": "hash"},
        store={"url": f"http://127.0.0.1:{_closed_port()}"},
        distill={"delay_s": 0, "retry_backoff_s": 0},
    )
    with ExperienceEngine.from_settings(settings, autostart=False) as engine:
        assert engine.retrieve("anything") == []
        eid = engine.record(Episode(input="q?", output="a", outcome=Outcome(score=1)))
        engine.run_pending()
        assert engine.queue.get(eid) is not None and engine.queue.counts()["pending"] == 1, "kept for later"


def test_the_store_comes_back_and_distillation_resumes(tmp_path: Path) -> None:
    store = FlakyStore(broken=True)
    settings = ExpscaleSettings(
        data_dir=tmp_path, embedder={"provider": "hash"}, distill={"delay_s": 0, "retry_backoff_s": 0}
    )
    with ExperienceEngine.from_settings(settings, store=store, autostart=False) as engine:
        engine.record(Episode(input="capital of Peru?", output="Lima", outcome=Outcome(score=1)))
        engine.run_pending()
        assert engine.retrieve("capital of Peru?") == []
        store.broken = False  # the server is back
        engine.run_pending()
        hits = engine.retrieve("capital of Peru?")
        assert hits and "Lima" in hits[0].experience.content
