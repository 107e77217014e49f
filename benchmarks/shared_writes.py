"""What the multi-writer safety costs: distillation, credit and refine throughput with conditional writes
(``insert_new``/``write_if``, each read back), as a ratio to the unconditional writes of 0.2 in the same run.

    python benchmarks/shared_writes.py [--episodes 600] [--out benchmarks/results/shared_writes.json]

The baseline is the same engine on the same store, with the two conditional calls mapped to plain upsert/update
and no read-back: exactly what the write path did before. The hash embedder keeps embedding out of the figures.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

from expscale_core import Episode, Experience
from expscale_core.episode import utcnow
from expscale_core.settings import RefineSettings
from expscale_core.store.base import Embedding, ExperienceStore
from expscale_core.store.edge import EdgeExperienceStore
from expscale_core.store.qdrant import QdrantExperienceStore
from expscale_core.testing import HashEmbedder, make_engine


class Unconditional:
    """The 0.2 write path: every write lands, nothing is read back."""

    def __init__(self, inner: ExperienceStore) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def insert_new(self, items: Sequence[tuple[Experience, Embedding]]) -> dict[str, Experience]:
        self.inner.upsert(items)
        return {e.id: e for e, _ in items}

    def write_if(self, items: Sequence[tuple[Experience, Embedding | None]]) -> dict[str, Experience]:
        with_vectors = [(e, v) for e, v in items if v is not None]
        if with_vectors:
            self.inner.upsert(with_vectors)
        self.inner.update([e for e, v in items if v is None])
        return {e.id: e for e, _ in items}


def _stores() -> dict[str, Callable[[], ExperienceStore]]:
    return {
        "edge": EdgeExperienceStore.temporary,
        "qdrant-local": lambda: QdrantExperienceStore.open(location=":memory:"),
    }


def run(make_store: Callable[[], ExperienceStore], conditional: bool, episodes: int) -> dict[str, float]:
    inner = make_store()
    inner.ensure_collection(HashEmbedder().dimension)
    store: Any = inner if conditional else Unconditional(inner)
    refine = RefineSettings(every_n_experiences=None, duplicate_threshold=0.95, induce_rules=False)
    engine = make_engine(store=store, autostart=False, refine=refine)
    questions = [f"What is the door code of building {i % (episodes // 2)}?" for i in range(episodes)]
    for i, q in enumerate(questions):  # half of them teach a lesson again: reinforcements, not inserts
        eid = engine.record(Episode(input=q, output="no idea"))
        engine.feedback(eid, -1, correction=f"{4000 + i % (episodes // 2)}#")
    t0 = time.perf_counter()
    engine.run_pending()
    distill_s = time.perf_counter() - t0
    for i, q in enumerate(questions):
        engine.retrieve(q, k=3, episode_id=f"use-{i}")
        engine.feedback(f"use-{i}", 1)
    t0 = time.perf_counter()
    engine.run_pending()
    credit_s = time.perf_counter() - t0
    old = utcnow() - timedelta(days=1)
    twins = [
        Experience(kind="fact", content=f"Invoices of team {i} go out on the {i % 28 + 1}th{'!' * k}", created_at=old)
        for i in range(episodes // 4)
        for k in (0, 1)
    ]
    inner.upsert(list(zip(twins, HashEmbedder().embed([t.embedding_text() for t in twins]))))
    t0 = time.perf_counter()
    merged = engine.refine().merged
    refine_s = time.perf_counter() - t0
    engine._worker.stop()
    inner.close()
    return {
        "distill_episodes_per_s": episodes / distill_s,
        "credit_rows_per_s": episodes / credit_s,
        "refine_s": refine_s,
        "refine_merged": merged,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--episodes", type=int, default=600)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/shared_writes.json"))
    args = ap.parse_args()
    results: dict[str, Any] = {}
    for name, make_store in _stores().items():
        base = run(make_store, False, args.episodes)
        cond = run(make_store, True, args.episodes)
        results[name] = {
            "unconditional": base,
            "conditional": cond,
            "distill_throughput_ratio": cond["distill_episodes_per_s"] / base["distill_episodes_per_s"],
            "credit_throughput_ratio": cond["credit_rows_per_s"] / base["credit_rows_per_s"],
            "refine_time_ratio": cond["refine_s"] / base["refine_s"],
        }
        r = results[name]
        print(
            f"{name}: distillation {cond['distill_episodes_per_s']:.0f} episodes/s "
            f"({r['distill_throughput_ratio']:.2f}x unconditional), credit flush {cond['credit_rows_per_s']:.0f} "
            f"rows/s ({r['credit_throughput_ratio']:.2f}x), refine of {cond['refine_merged']} merges "
            f"{cond['refine_s']:.2f} s ({r['refine_time_ratio']:.2f}x the time)"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
