from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from expscale_core import Episode, EpisodeQueue, EpisodeStatus, Outcome, Scope


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_writer_wakes_the_distiller_once_per_batch_it_made_durable_never_the_caller(tmp_path: Path) -> None:
    path = tmp_path / "q.sqlite3"
    q = EpisodeQueue(path, commit_interval_s=0.3)
    woken: list[tuple[str, int]] = []

    def on_commit() -> None:  # what it finds on disk, through a connection of its own
        with sqlite3.connect(path) as db:
            woken.append((threading.current_thread().name, db.execute("SELECT count(*) FROM episodes").fetchone()[0]))

    q.on_commit(on_commit)
    assert [q.put(Episode(input=f"q{i}"), wait=False) for i in range(20)] == [False] * 20  # buffered
    assert woken == [], "capture wakes nobody on the caller's thread"
    deadline = time.monotonic() + 10
    while not woken:
        assert time.monotonic() < deadline, "the writer never reported its commit"
        time.sleep(0.01)
    assert woken == [("expscale-capture", 20)], "one batch, already durable when the distiller is woken"
    assert q.put(Episode(input="now"), wait=True) is True
    q.close()


def test_every_listener_hears_of_a_commit_until_it_stops_listening() -> None:
    """Engines sharing one queue are each woken by its writer; a closed engine stops listening."""
    q = EpisodeQueue(":memory:", commit_interval_s=0.01)
    heard: list[str] = []
    stop_a = q.on_commit(lambda: heard.append("a"))
    q.on_commit(lambda: heard.append("b"))

    def commit_one() -> None:
        before = len(heard)
        q.put(Episode(input="q"), wait=False)
        deadline = time.monotonic() + 10
        while len(heard) == before or len(q._buffer):
            assert time.monotonic() < deadline, "the writer never reported its commit"
            time.sleep(0.01)
        time.sleep(0.05)  # the other listener of the same batch

    commit_one()
    assert sorted(heard) == ["a", "b"]
    stop_a()
    stop_a()  # twice is harmless
    heard.clear()
    commit_one()
    assert heard == ["b"]
    q.close()


def test_episodes_survive_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "q.sqlite3"
    clock = Clock()
    q = EpisodeQueue(path, lease_s=60, clock=clock)
    q.put(Episode(id="a", input="first"))
    q.put(Episode(id="b", input="second"))
    claimed = q.claim(1)
    assert [e.id for e in claimed] == ["a"]
    q.close()  # "crash" while 'a' is being processed

    reopened = EpisodeQueue(path, lease_s=60, clock=clock)
    assert reopened.outstanding() == 2
    assert [e.id for e in reopened.claim(10)] == ["b"], "a is still leased by the dead worker"
    reopened.complete(["b"])
    clock.now += 10_000  # the dead worker's lease runs out
    assert [e.id for e in reopened.claim(10)] == ["a"]


def test_claims_of_a_dead_process_are_released_at_once(tmp_path: Path) -> None:
    path = tmp_path / "q.sqlite3"
    code = (
        "from expscale_core import Episode, EpisodeQueue\n"
        f"q = EpisodeQueue({str(path)!r})\n"
        "q.put(Episode(id='a', input='x'))\n"
        "assert [e.id for e in q.claim(1)] == ['a']\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)  # claims, then exits mid-"distillation"
    q = EpisodeQueue(path, lease_s=3600)
    assert [e.id for e in q.claim(10, ignore_delay=True)] == ["a"]


def test_capture_delay_holds_fresh_episodes_until_drain(tmp_path: Path) -> None:
    clock = Clock()
    q = EpisodeQueue(":memory:", delay_s=5, clock=clock)
    q.put(Episode(id="a", input="x"))
    assert q.claim(10) == []
    assert [e.id for e in q.claim(10, ignore_delay=True)] == ["a"]


def test_feedback_before_and_after_distillation() -> None:
    q = EpisodeQueue(":memory:")
    assert q.attach_outcome("early", Outcome(score=1)) is False
    q.put(Episode(id="early", input="x"))
    got = q.get("early")
    assert got is not None and got.outcome is not None and got.outcome.score == 1

    q.put(Episode(id="late", input="y"))
    q.claim(10)
    q.complete(["early", "late"])
    assert q.get("late").status is EpisodeStatus.DISTILLED  # type: ignore[union-attr]
    assert q.attach_outcome("late", Outcome(score=-1, correction="z")) is True
    assert q.get("late").status is EpisodeStatus.PENDING  # type: ignore[union-attr]
    assert [e.id for e in q.claim(10)] == ["late"]


def test_feedback_during_processing_reopens_after_completion() -> None:
    q = EpisodeQueue(":memory:")
    q.put(Episode(id="a", input="x"))
    q.claim(1)
    q.attach_outcome("a", Outcome(score=1))
    q.complete(["a"])
    assert q.outstanding() == 1, "the outcome arrived mid-distillation, so the episode must be learned again"


def test_transient_failures_back_off_then_fail_and_can_be_retried() -> None:
    clock = Clock()
    q = EpisodeQueue(":memory:", clock=clock)
    q.put(Episode(id="a", input="x"))
    q.claim(1)
    assert q.defer("a", "LLMError: 503", backoff_s=10, max_attempts=2) is False
    assert q.claim(1, ignore_delay=True) == [], "drain must not skip the retry backoff"
    clock.now += 11
    assert [e.id for e in q.claim(1)] == ["a"]
    assert q.defer("a", "LLMError: 503", backoff_s=10, max_attempts=2) is True
    rows = q.list(EpisodeStatus.FAILED)
    assert [e.id for e, _, _ in rows] == ["a"] and "gave up after 2 attempts" in (rows[0][1] or "")
    assert q.retry_failed() == 1
    assert q.counts()["pending"] == 1


def test_failed_episode_keeps_raw_output() -> None:
    q = EpisodeQueue(":memory:")
    q.put(Episode(id="a", input="x"))
    q.claim(1)
    q.fail("a", "bad json", raw_output="{not json")
    assert q.raw_output("a") == "{not json"
    assert q.counts() == {"pending": 0, "distilled": 0, "failed": 1}


def test_served_verdicts_apply_differences_only() -> None:
    q = EpisodeQueue(":memory:")
    q.record_served("ep", ["x1", "x2"], [0.9, 0.2])
    q.set_verdict("ep", 1)
    rows = q.uncredited()
    assert sorted(r[1] for r in rows) == ["x1", "x2"] and all(r[2:4] == (1, 0) for r in rows)
    assert {r[1]: r[4] for r in rows} == {"x1": 0.9, "x2": 0.2}, "similarity is kept for credit weighting"
    q.mark_credited(rows)
    assert q.uncredited() == []
    q.set_verdict("ep", -1)
    assert all(r[2:4] == (-1, 1) for r in q.uncredited())
    with pytest.raises(ValueError, match="similarities"):
        q.record_served("ep2", ["a", "b"], [0.5])


def test_delete_scope_only_touches_that_scope() -> None:
    q = EpisodeQueue(":memory:")
    q.put(Episode(id="a", input="x", scope=Scope(namespace="n1", user="u1")))
    q.put(Episode(id="b", input="y", scope=Scope(namespace="n1", user="u2")))
    assert q.delete_scope(Scope(namespace="n1", user="u1")) == 1
    assert q.get("a") is None and q.get("b") is not None


def test_feedback_for_an_id_never_recorded_expires_and_early_feedback_still_joins() -> None:
    now = [1_000_000.0]
    q = EpisodeQueue(":memory:", clock=lambda: now[0], early_feedback_ttl_s=3600)
    assert q.attach_outcome("typo-id", Outcome(score=1)) is False
    now[0] += 7200
    assert q.attach_outcome("streaming-id", Outcome(score=-1)) is False  # prunes what is past its time
    q.put(Episode(id="typo-id", input="late"))
    q.put(Episode(id="streaming-id", input="read later"))
    assert q.get("typo-id").outcome is None  # type: ignore[union-attr]
    assert q.get("streaming-id").outcome.score == -1  # type: ignore[union-attr]


def test_a_queue_from_0_2_0_gains_the_feedback_timestamp(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "episodes.sqlite3"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE early_outcomes (episode_id TEXT PRIMARY KEY, payload TEXT NOT NULL)")
        db.execute("INSERT INTO early_outcomes VALUES ('old', ?)", (Outcome(score=1).model_dump_json(),))
    q = EpisodeQueue(path)
    assert q.attach_outcome("new", Outcome(score=1)) is False
    q.put(Episode(id="old", input="x"))
    assert q.get("old").outcome is not None, "an old row is timed from now, not dropped"  # type: ignore[union-attr]
    q.close()


def test_an_undo_journal_is_reclaimed_only_from_this_or_a_dead_process(tmp_path: Path) -> None:
    path = tmp_path / "episodes.sqlite3"
    writer = (
        "import sys, time\nfrom expscale_core import EpisodeQueue\n"
        "q = EpisodeQueue(sys.argv[1]); q.journal_begin('import', {sys.argv[2]: None}); q.close()\n"
        "print('written', flush=True); time.sleep(float(sys.argv[3]))\n"
    )
    alive = subprocess.Popen(
        [sys.executable, "-c", writer, str(path), "theirs", "60"], stdout=subprocess.PIPE, text=True
    )
    dead = subprocess.run([sys.executable, "-c", writer, str(path), "orphaned", "0"], check=True)
    try:
        assert alive.stdout is not None and alive.stdout.readline().strip() == "written"
        assert dead.returncode == 0
        q = EpisodeQueue(path)
        q.journal_begin("import", {"mine": '{"x": 1}'})
        assert q.journal("import") == {"mine": '{"x": 1}', "orphaned": None}, "a live process's import is not ours"
        q.journal_clear("import")
        assert q.journal("import") == {}
        q.close()
        import sqlite3

        with sqlite3.connect(path) as db:
            left = db.execute("SELECT key FROM journal").fetchall()
        assert left == [("theirs",)], "the live process's note is untouched"
    finally:
        alive.kill()
        alive.wait()


def test_processes_that_open_a_new_queue_at_the_same_moment_all_get_it(tmp_path: Path) -> None:
    """Switching a new database to WAL can report "locked" at once, whatever the busy timeout: every opener
    must wait its turn instead of failing (several workers starting together on a fresh data dir)."""
    path = tmp_path / "episodes.sqlite3"
    opener = "import sys\nfrom expscale_core import EpisodeQueue\nEpisodeQueue(sys.argv[1]).close()\n"
    procs = [subprocess.Popen([sys.executable, "-c", opener, str(path)], stderr=subprocess.PIPE) for _ in range(8)]
    errors = [p.communicate(timeout=120)[1].decode() for p in procs]
    assert [p.returncode for p in procs] == [0] * 8, [e for e in errors if e][:1]
