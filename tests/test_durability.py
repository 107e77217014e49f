"""The capture durability contract (EpisodeQueue.put), proven with real processes and kill -9."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from expscale_core import EpisodeQueue

_CHILD = """
import sys, time
from expscale_core import Episode, ExperienceEngine, ExpscaleSettings
settings = ExpscaleSettings(
    data_dir=sys.argv[1], embedder={{"provider": "hash"}},
    capture={{"commit_interval_s": float(sys.argv[2])}}, distill={{"delay_s": 3600}},
)
engine = ExperienceEngine.from_settings(settings)
{body}
"""


def _spawn(tmp: Path, interval: float, body: str) -> subprocess.Popen[str]:
    code = _CHILD.format(body=textwrap.dedent(body))
    return subprocess.Popen(
        [sys.executable, "-c", code, str(tmp), str(interval)], stdout=subprocess.PIPE, text=True, env=os.environ
    )


def _ids(tmp: Path) -> set[str]:
    queue = EpisodeQueue(tmp / "episodes.sqlite3")
    try:
        return {e.id for e, _, _ in queue.list(limit=100_000)}
    finally:
        queue.close()


def test_after_one_commit_interval_captured_episodes_survive_kill_9(tmp_path: Path) -> None:
    child = _spawn(
        tmp_path,
        0.05,
        """
        for i in range(50):
            engine.record(Episode(id=f"early-{i}", input=f"q{i}"))
        time.sleep(0.5)
        print("ready", flush=True)
        i = 0
        while True:
            engine.record(Episode(id=f"late-{i}", input="x"))
            i += 1
        """,
    )
    assert child.stdout is not None and child.stdout.readline().strip() == "ready"
    os.kill(child.pid, signal.SIGKILL)
    child.wait(30)
    ids = _ids(tmp_path)
    assert {f"early-{i}" for i in range(50)} <= ids


def test_with_commit_interval_zero_every_returned_record_survives_kill_9(tmp_path: Path) -> None:
    child = _spawn(
        tmp_path,
        0.0,
        """
        i = 0
        while True:
            engine.record(Episode(id=f"ep-{i}", input="x"))
            print(f"ep-{i}", flush=True)
            i += 1
        """,
    )
    assert child.stdout is not None
    returned = [child.stdout.readline().strip() for _ in range(40)]
    os.kill(child.pid, signal.SIGKILL)
    child.wait(30)
    assert set(returned) <= _ids(tmp_path)


def test_a_normal_exit_without_close_commits_the_buffer(tmp_path: Path) -> None:
    child = _spawn(
        tmp_path,
        30.0,  # the writer would wait half a minute: only the exit hook can have committed these
        """
        for i in range(100):
            engine.record(Episode(id=f"ep-{i}", input="x"))
        print("done", flush=True)
        """,
    )
    out, _ = child.communicate(timeout=60)
    assert child.returncode == 0 and "done" in out
    assert {f"ep-{i}" for i in range(100)} <= _ids(tmp_path)
