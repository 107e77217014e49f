"""What visibility costs a read: the reader's query (its own line of scopes, its namespace's shared lessons, what is
published to it) against the plain scope filter reads used before, on the same Qdrant Edge store, in the same run.

    python benchmarks/reader_filter.py [--sizes 1000,10000,100000] [--out benchmarks/results/reader_filter.json]

The store holds ten tenants of twenty users each; a fifth of the lessons are shared. A user's top-30 query (what
``engine.retrieve`` asks for k=10) is timed both ways, after the HNSW index is built, vectors given.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from expscale_core import EdgeExperienceStore, Experience, Scope
from expscale_core.experience import Visibility
from expscale_core.refine.clusters import unit_rows

DIM = 384


def _unit(rng: np.random.Generator, n: int) -> np.ndarray:
    return unit_rows(rng.standard_normal((n, DIM)))


def run(size: int, queries: int, rng: np.random.Generator) -> dict[str, float]:
    folder = Path(tempfile.mkdtemp(prefix="expscale-reader-"))
    store = EdgeExperienceStore(folder / "shard")
    store.ensure_collection(DIM)
    vectors = _unit(rng, size)
    for start in range(0, size, 2048):
        chunk = [
            Experience(
                kind="fact",
                content=f"lesson {i}",
                scope=Scope(namespace="app", tenant=f"t{i % 10}", user=f"u{(i // 10) % 20}"),
                visibility=Visibility.SHARED if i % 5 == 0 else Visibility.PRIVATE,
            )
            for i in range(start, min(size, start + 2048))
        ]
        store.upsert(list(zip(chunk, vectors[start : start + len(chunk)].tolist())))
    store.build_index(wait=True)
    reader = Scope(namespace="app", tenant="t3", user="u7")
    qs = _unit(rng, queries).tolist()
    timings: dict[str, list[float]] = {"reader": [], "scope": []}
    for _ in range(2):  # the first pass warms both paths
        for key in timings:
            timings[key].clear()
        for q in qs:
            for key in timings:
                t = time.perf_counter()
                store.search(q, scope=reader, limit=30, min_similarity=0.0, as_reader=key == "reader")
                timings[key].append(time.perf_counter() - t)
    store.close()
    shutil.rmtree(folder, ignore_errors=True)
    reader_ms = statistics.median(timings["reader"]) * 1000
    scope_ms = statistics.median(timings["scope"]) * 1000
    return {"size": size, "reader_p50_ms": reader_ms, "scope_p50_ms": scope_ms, "ratio": reader_ms / scope_ms}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1000,10000,100000")
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/reader_filter.json"))
    args = ap.parse_args()
    rng = np.random.default_rng(11)
    rows = [run(int(s), args.queries, rng) for s in args.sizes.split(",")]
    print("| experiences | reader query p50 ms | scope filter p50 ms | ratio |\n| ---: | ---: | ---: | ---: |")
    for r in rows:
        print(f"| {r['size']:,} | {r['reader_p50_ms']:.2f} | {r['scope_p50_ms']:.2f} | {r['ratio']:.2f}x |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"date": time.strftime("%Y-%m-%d"), "sizes": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
