"""Hot-path overhead of expscale, as ratios against baselines measured in the same run.

- retrieve: ``engine.retrieve`` vs the bare minimum (embed the query + one Qdrant query) on the same store.
- record: ``engine.record`` (durable SQLite write + worker wake-up) vs serialising the episode to JSON.

Usage: python benchmarks/bench_retrieve.py [--minilm] [--n 2000] [--queries 300]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

from expscale_core import Episode, Experience, MiniLMEmbedder, Outcome
from expscale_core.embed import CachedEmbedder
from expscale_core.testing import HashEmbedder, make_engine
from qdrant_client import models as qm


def _time(fn: Callable[[int], object], n: int) -> list[float]:
    out = []
    for i in range(n):
        t = time.perf_counter()
        fn(i)
        out.append(time.perf_counter() - t)
    return out


def _p(xs: list[float], q: float) -> float:
    return sorted(xs)[int(q * (len(xs) - 1))] * 1000


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--minilm", action="store_true", help="use the real MiniLM embedder (default: hash)")
    ap.add_argument("--n", type=int, default=2000, help="experiences in the store")
    ap.add_argument("--queries", type=int, default=300)
    args = ap.parse_args()

    inner = MiniLMEmbedder() if args.minilm else HashEmbedder()
    embedder = CachedEmbedder(inner, cache_size=0)  # no cache: both sides embed every query
    with make_engine(embedder=embedder) as engine:
        exps = [
            Experience(kind="fact", content=f"Fact {i} about topic {i % 97}: value {i * 7}.") for i in range(args.n)
        ]
        for start in range(0, len(exps), 256):
            batch = exps[start : start + 256]
            engine.store.upsert(list(zip(batch, embedder.embed([e.embedding_text() for e in batch]))))
        queries = [f"what is the value of fact {i} on topic {i % 97}?" for i in range(args.queries)]
        store = engine.store
        # The baseline filters by scope only; expscale also excludes inactive entries in the same query.
        flt = qm.Filter(must=[qm.FieldCondition(key="scope.namespace", match=qm.MatchValue(value="default"))])

        def baseline(i: int) -> object:
            vec = embedder.embed([queries[i]])[0]
            return store.client.query_points(store.collection, query=vec, query_filter=flt, limit=15)

        def expscale(i: int) -> object:
            return engine.retrieve(queries[i], k=5)

        for fn in (baseline, expscale):  # warm up
            _time(fn, 20)
        base = _time(baseline, args.queries)
        ours = _time(expscale, args.queries)
        print(f"store: {args.n} experiences, embedder {embedder.model_id}, {args.queries} queries")
        print(
            f"retrieve  baseline p50 {_p(base, 0.5):.2f} ms p95 {_p(base, 0.95):.2f} ms | "
            f"expscale p50 {_p(ours, 0.5):.2f} ms p95 {_p(ours, 0.95):.2f} ms | "
            f"ratio p50 {statistics.median(ours) / statistics.median(base):.2f}x"
        )

        episodes = [Episode(input=q, output="x", outcome=Outcome(score=1)) for q in queries]
        engine.distill_settings.delay_s = 3600  # measure capture only, not distillation
        engine.queue.delay_s = 3600
        base_r = _time(lambda i: episodes[i].model_dump_json(), len(episodes))
        ours_r = _time(lambda i: engine.record(episodes[i]), len(episodes))
        print(
            f"record    baseline p50 {_p(base_r, 0.5):.3f} ms | expscale p50 {_p(ours_r, 0.5):.3f} ms "
            f"p95 {_p(ours_r, 0.95):.3f} ms | ratio p50 {statistics.median(ours_r) / statistics.median(base_r):.1f}x"
        )


if __name__ == "__main__":
    main()
