"""What retrieval keys cost: a store whose records hold their own vector plus three phrasing keys (a Qdrant
multivector scored by the best key) against one vector per record (a store created before keys), on Qdrant Edge,
in the same run.

    python benchmarks/retrieval_keys.py [--sizes 1000,10000,50000] [--out benchmarks/results/retrieval_keys.json]

Both stores get the same records and own vectors; the keyed one also gets three more unit vectors per record. Timed:
writing them, building the HNSW index, and a reader's top-30 query (what ``engine.retrieve`` asks for k=10).
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
from expscale_core import EdgeExperienceStore, Experience, ExperienceKind, Scope
from expscale_core.refine.clusters import unit_rows
from expscale_core.store._edge_shard import create_shard, edge_config

DIM = 384
PHRASINGS = 3


def _unit(rng: np.random.Generator, n: int) -> np.ndarray:
    return unit_rows(rng.standard_normal((n, DIM)))


def _timed_store(
    folder: Path, multi_key: bool, records: list[Experience], keys: np.ndarray, qs: list[list[float]]
) -> tuple[float, float, float]:
    if not multi_key:  # as a store created before keys: one plain vector per point
        create_shard(folder / "shard", edge_config(DIM, multi_key=False)).close()
    store = EdgeExperienceStore(folder / "shard")
    store.ensure_collection(DIM)
    t = time.perf_counter()
    for start in range(0, len(records), 2048):
        chunk = records[start : start + 2048]
        rows = keys[start : start + len(chunk)]
        store.upsert([(e, k.tolist() if multi_key else k[0].tolist()) for e, k in zip(chunk, rows)])
    write_s = time.perf_counter() - t
    t = time.perf_counter()
    store.build_index(wait=True)
    index_s = time.perf_counter() - t
    reader = Scope(namespace="app", tenant="t3", user="u7")
    timings: list[float] = []
    for _ in range(2):  # the first pass warms the path
        timings.clear()
        for q in qs:
            t = time.perf_counter()
            store.search(q, scope=reader, limit=30, min_similarity=0.0, as_reader=True)
            timings.append(time.perf_counter() - t)
    store.close()
    return write_s, index_s, statistics.median(timings) * 1000


def run(size: int, queries: int, rng: np.random.Generator) -> dict[str, float]:
    records = [
        Experience(
            kind=ExperienceKind.FACT,
            content=f"lesson {i}",
            scope=Scope(namespace="app", tenant=f"t{i % 10}", user=f"u{i % 20}"),
        )
        for i in range(size)
    ]
    keys = _unit(rng, size * (1 + PHRASINGS)).reshape(size, 1 + PHRASINGS, DIM)
    qs = _unit(rng, queries).tolist()
    out: dict[str, float] = {"size": size}
    for name, multi in (("one", False), ("keys", True)):
        folder = Path(tempfile.mkdtemp(prefix="expscale-keys-"))
        try:
            write_s, index_s, query_ms = _timed_store(folder, multi, records, keys, qs)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        out |= {f"{name}_writes_per_s": size / write_s, f"{name}_index_s": index_s, f"{name}_query_p50_ms": query_ms}
    out["query_ratio"] = out["keys_query_p50_ms"] / out["one_query_p50_ms"]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1000,10000,50000")
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/retrieval_keys.json"))
    args = ap.parse_args()
    rng = np.random.default_rng(5)
    rows = [run(int(s), args.queries, rng) for s in args.sizes.split(",")]
    print(
        "| experiences | writes/s one / keys | index s one / keys | query p50 ms one / keys | ratio |\n"
        "| ---: | ---: | ---: | ---: | ---: |"
    )
    for r in rows:
        print(
            f"| {r['size']:,} | {r['one_writes_per_s']:,.0f} / {r['keys_writes_per_s']:,.0f} | "
            f"{r['one_index_s']:.1f} / {r['keys_index_s']:.1f} | {r['one_query_p50_ms']:.2f} / "
            f"{r['keys_query_p50_ms']:.2f} | {r['query_ratio']:.2f}x |"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"date": time.strftime("%Y-%m-%d"), "sizes": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
