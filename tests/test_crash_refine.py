"""kill -9 during refinement: the next run repairs it; no double-active merges, no inflated statistics."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from expscale_core import Experience, ExperienceEngine, ExperienceStatus, ExpscaleSettings

N_CLUSTERS, PER_CLUSTER = 150, 12

_CHILD = """
import sys
from expscale_core import ExperienceEngine, ExpscaleSettings
settings = ExpscaleSettings(data_dir=sys.argv[1], embedder={"provider": "hash"}, refine={"max_experiences": None})
with ExperienceEngine.from_settings(settings, autostart=False) as engine:
    print("refining", flush=True)
    engine.refine()
    print("done", flush=True)
"""


def _settings(tmp: Path) -> ExpscaleSettings:
    return ExpscaleSettings(data_dir=tmp, embedder={"provider": "hash"}, refine={"max_experiences": None})


def _check(engine: ExperienceEngine) -> None:
    active = [e for e, _ in engine.store.scan(statuses=[ExperienceStatus.ACTIVE])]
    absorbed = {x for e in active for x in (*e.provenance.merge_parents, *e.supersedes)}
    assert not [e.id for e in active if e.id in absorbed], "a merged-away record is still active"
    assert sum(e.support for e in active) == N_CLUSTERS * PER_CLUSTER, "support was counted twice"
    assert len(active) == N_CLUSTERS


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_kill_9_during_refine_is_repaired_by_the_next_run(tmp_path: Path, seed: int) -> None:
    with ExperienceEngine.from_settings(_settings(tmp_path), autostart=False) as engine:
        items = [
            Experience(kind="fact", content=f"Cluster {c} says the answer is {c * 7}.")
            for c in range(N_CLUSTERS)
            for _ in range(PER_CLUSTER)
        ]
        engine.store.upsert([(e, engine.embedder.embed([e.content])[0]) for e in items])
    child = subprocess.Popen([sys.executable, "-c", _CHILD, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None and child.stdout.readline().strip() == "refining"
    time.sleep(random.Random(seed).uniform(0.0, 0.6))
    os.kill(child.pid, signal.SIGKILL)
    child.wait(30)
    with ExperienceEngine.from_settings(_settings(tmp_path), autostart=False) as engine:
        engine.refine()
        _check(engine)
