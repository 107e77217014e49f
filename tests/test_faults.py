"""Faults that must neither escape nor stall, and inputs that must be refused clearly."""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Sequence
from pathlib import Path

import pytest
from expscale_core import Episode, EpisodeQueue, ExpscaleSettings, Outcome, QueueError
from expscale_core.testing import make_engine
from pydantic import ValidationError


class FullDiskQueue(EpisodeQueue):
    """A real queue whose status writes fail while ``full`` is set, as on a full disk."""

    full = False

    def complete(self, episode_ids: Sequence[str]) -> None:
        if self.full:
            raise QueueError("database or disk is full")
        super().complete(episode_ids)


def test_claims_stuck_by_a_full_disk_are_released_when_it_clears() -> None:
    with make_engine(autostart=False) as engine:
        queue = FullDiskQueue(":memory:")
        engine.queue = queue
        for i in range(5):
            engine.record(Episode(id=f"e{i}", input=f"capital {i}?", output="x", outcome=Outcome(score=1)))
        queue.full = True
        with pytest.raises(QueueError):
            engine.run_pending()
        assert queue.counts()["pending"] == 5
        stuck = [e.id for e, _, _ in queue.list()]
        assert stuck  # claimed and never completed: the lease would hold them for 600 s
        queue.full = False
        engine.run_pending()  # the disk is back: released and distilled now, not after the lease
        assert queue.counts()["distilled"] == 5


@pytest.mark.parametrize("bad", [5, -2, math.nan, math.inf])
def test_min_score_outside_cosine_range_is_refused(bad: float) -> None:
    with make_engine() as engine, pytest.raises(ValueError, match=r"min_score .*\[-1, 1\]"):
        engine.retrieve("q", min_score=bad)


@pytest.mark.parametrize(
    "section", [{"distill": {"delay_s": math.inf}}, {"distill": {"idle_s": -1}}, {"retrieve": {"min_score": math.nan}}]
)
def test_settings_out_of_range_are_refused(section: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        ExpscaleSettings(**section)  # type: ignore[arg-type]


def test_qdrant_local_sqlite_errors_are_store_errors_and_usage_counts_survive_them(tmp_path: Path) -> None:
    from expscale_core import Experience, QdrantExperienceStore, StoreError
    from expscale_core.testing import HashEmbedder

    store = QdrantExperienceStore.open(path=str(tmp_path / "q"))
    with make_engine(store=store, autostart=False) as engine:
        fact = Experience(kind="fact", content="Invoices are sent on the first day of each month.")
        store.upsert([(fact, HashEmbedder().embed([fact.embedding_text()])[0])])
        for _ in range(3):
            assert engine.retrieve("when are invoices sent?")
        (db,) = (tmp_path / "q").rglob("storage.sqlite")
        locker = sqlite3.connect(db)
        locker.execute("BEGIN EXCLUSIVE")  # another process holding the file: qdrant-client gets "database is locked"
        try:
            with pytest.raises(StoreError, match="database is locked"):
                store.update([fact])
            engine.run_pending()  # the flush fails inside; its counts must be kept, not dropped
        finally:
            locker.rollback()
            locker.close()
        assert store.get([fact.id])[0][0].times_retrieved == 0
        engine.run_pending()
        assert store.get([fact.id])[0][0].times_retrieved == 3


def test_a_data_dir_that_cannot_be_written_is_one_clear_error(tmp_path: Path) -> None:
    from expscale_core import ConfigError, ExperienceEngine

    blocked = tmp_path / "a-file"
    blocked.write_text("not a directory")  # works as root too, where chmod does not stop writes
    settings = ExpscaleSettings(data_dir=blocked / "data", embedder={"provider": "hash"})
    with pytest.raises(ConfigError, match=r"not writable .*EXPSCALE_DATA_DIR"):
        ExperienceEngine.from_settings(settings)
    assert list(tmp_path.iterdir()) == [blocked], "nothing half-created"


def test_the_cli_reports_an_unwritable_data_dir_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from expscale_core.cli import main

    blocked = tmp_path / "a-file"
    blocked.write_text("x")
    assert main(["demo", "--data-dir", str(blocked / "demo")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "not writable" in err and "--data-dir" in err, err
