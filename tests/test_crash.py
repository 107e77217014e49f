"""kill -9 during refinement or distillation: the next run repairs it; nothing lost, duplicated or inflated."""

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


_DISTILL_CHILD = """
import sys
from expscale_core import ExperienceEngine, ExpscaleSettings
settings = ExpscaleSettings(data_dir=sys.argv[1], embedder={"provider": "hash"}, distill={"delay_s": 0})
with ExperienceEngine.from_settings(settings, autostart=False) as engine:
    print("distilling", flush=True)
    engine.run_pending()
"""


@pytest.mark.parametrize("seed", [4, 5])
def test_kill_9_during_distillation_loses_nothing_and_duplicates_nothing(tmp_path: Path, seed: int) -> None:
    from expscale_core import Episode, Outcome

    settings = ExpscaleSettings(data_dir=tmp_path, embedder={"provider": "hash"}, distill={"delay_s": 0})
    with ExperienceEngine.from_settings(settings, autostart=False) as engine:
        for i in range(400):
            engine.record(Episode(id=f"e{i}", input=f"what is code {i}?", output=f"c{i}", outcome=Outcome(score=1)))
    child = subprocess.Popen([sys.executable, "-c", _DISTILL_CHILD, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None and child.stdout.readline().strip() == "distilling"
    time.sleep(random.Random(seed).uniform(0.1, 0.8))
    os.kill(child.pid, signal.SIGKILL)
    child.wait(30)
    with ExperienceEngine.from_settings(settings, autostart=False) as engine:
        engine.run_pending()  # the dead process's claims are released at once (same host, pid gone)
        assert engine.queue.counts()["distilled"] == 400
        sources = [e.provenance.source_episode_ids for e, _ in engine.store.scan()]
        assert sorted(s[0] for s in sources) == sorted(f"e{i}" for i in range(400)), "one lesson per episode"


_IMPORT_CHILD = """
import sys, time
from expscale_core import ExperienceEngine, ExpscaleSettings
from expscale_core.ops.transfer import import_jsonl
settings = ExpscaleSettings(data_dir=sys.argv[1], embedder={"provider": "hash"})

def hold_after_first_batch(n):
    print("wrote", n, flush=True)
    time.sleep(60)  # killed here: the import is half written

with ExperienceEngine.from_settings(settings, autostart=False) as engine:
    import_jsonl(engine, sys.argv[2], progress=hold_after_first_batch)
"""


def test_kill_9_during_import_leaves_the_store_as_it_was(tmp_path: Path) -> None:
    settings = ExpscaleSettings(data_dir=tmp_path / "data", embedder={"provider": "hash"})
    old = [Experience(kind="fact", content=f"Old fact {i}.") for i in range(10)]
    with ExperienceEngine.from_settings(settings, autostart=False) as engine:
        engine.store.ensure_collection(engine.embedder.dimension)
        engine.store.upsert([(e, engine.embedder.embed([e.content])[0]) for e in old])
    replaced = [e.model_copy(update={"content": f"Imported over {e.id}."}) for e in old[:5]]
    new = [Experience(kind="fact", content=f"Imported fact {i}.") for i in range(200)]
    export = tmp_path / "in.jsonl"
    export.write_text("".join(e.model_dump_json() + "\n" for e in [*replaced, *new]))
    child = subprocess.Popen(
        [sys.executable, "-c", _IMPORT_CHILD, str(tmp_path / "data"), str(export)], stdout=subprocess.PIPE, text=True
    )
    assert child.stdout is not None and child.stdout.readline().split() == ["wrote", "64"]
    os.kill(child.pid, signal.SIGKILL)
    child.wait(30)
    with ExperienceEngine.from_settings(settings, autostart=False) as engine:
        contents = sorted(e.content for e, _ in engine.store.scan())
        assert contents == sorted(e.content for e in old), "the first batch stayed, or a replaced record was lost"
        assert engine.queue.journal("import") == {}
