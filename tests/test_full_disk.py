"""A full disk under the embedded store is a StoreError and the episodes stay queued; the process lives (issue 15).

Qdrant Edge writes through memory maps: without the free-space check, the process died with SIGBUS (3 of 3)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

_CHILD = """
import json, logging, sys
from expscale_core import Episode, ExperienceEngine, ExpscaleSettings, Outcome
logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
settings = ExpscaleSettings(
    data_dir=sys.argv[1], store={"path": sys.argv[2], "min_free_mb": 2},
    embedder={"provider": "hash", "hash_dimension": 8192},
    distill={"delay_s": 0, "retry_backoff_s": 0.05},
)
engine = ExperienceEngine.from_settings(settings)
filler = "The answer, at length. " * 2500  # with 32 KB vectors, the 24 MB disk fills after a few hundred lessons
for i in range(600):
    engine.record(Episode(input=f"question {i}", output=f"{i} " + filler, outcome=Outcome(score=1)))
engine.drain(timeout=20)
counts = engine.queue.counts()
stored = engine.store.count()
engine.close()
print(json.dumps({"counts": counts, "stored": stored}))
"""


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / f"disk-{uuid.uuid4().hex[:6]}"
    mount.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(mount)], capture_output=True)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here (needs root): {made.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.mark.skipif(sys.platform != "linux" or os.geteuid() != 0, reason="mounting a tmpfs needs Linux and root")
def test_a_full_disk_is_an_error_not_a_crash_and_loses_nothing(tmp_path: Path, small_disk: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", _CHILD, str(tmp_path / "data"), str(small_disk / "store")],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, f"the process died ({proc.returncode}): {proc.stderr[-2000:]}"
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    counts = out["counts"]
    assert sum(counts.values()) == 600, "every episode is still in the queue"
    assert counts["failed"] == 0 and counts["pending"] > 0, counts  # waiting for room, not given up
    assert out["stored"] == counts["distilled"] > 0
    assert "not enough free disk" in proc.stderr
