"""expscale's performance figures, each against a baseline measured in the same run.

    python benchmarks/bench.py [--sizes 1000,10000,100000] [--out benchmarks/results/bench.json]

- capture: a trivial LangChain chain with ExperienceCallbackHandler vs the same chain with a no-op handler,
  while the background worker distills what is captured;
- record(): p50/p95 on the caller's thread;
- a 20 MB input through ``with_experience``: hot-path time and process growth, against a 1 KB input;
- scoped top-10 retrieve at each size (vectors given: the query embedding is excluded), against the bare
  Qdrant Edge query and a numpy brute-force scan of the same vectors and scope mask;
- insert rate; refine time (first full pass, then a periodic pass with 1 % new records);
- RSS after the largest size; cold ``import expscale_core`` vs ``import qdrant_client`` (what 0.1 loaded).

Writes JSON and prints a markdown table.
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from expscale_core import EdgeExperienceStore, Episode, Experience, Scope
from expscale_core.refine.clusters import unit_rows
from expscale_core.refine.refiner import Refiner
from expscale_core.serve.retriever import rank
from expscale_core.settings import DistillSettings, RefineSettings, RetrieveSettings
from expscale_core.testing import HashEmbedder, make_engine

DIM = 384


def _ms(xs: list[float], q: float) -> float:
    return sorted(xs)[int(q * (len(xs) - 1))] * 1000


def _timed(fn: Callable[[int], object], n: int) -> list[float]:
    out = []
    for i in range(n):
        t = time.perf_counter()
        fn(i)
        out.append(time.perf_counter() - t)
    return out


def cold_import() -> dict[str, float]:
    def best(stmt: str) -> float:
        runs = []
        for _ in range(3):
            t = time.perf_counter()
            subprocess.run([sys.executable, "-c", stmt], check=True)
            runs.append(time.perf_counter() - t)
        return min(runs)

    base = best("pass")
    ours = best("import expscale_core") - base
    qdrant = best("import qdrant_client") - base
    return {"import_expscale_core_s": ours, "import_qdrant_client_s": qdrant}


def capture(n: int) -> dict[str, float]:
    from langchain_core.callbacks import BaseCallbackHandler
    from langchain_core.runnables import RunnableLambda

    from langchain_expscale import ExperienceCallbackHandler

    class Noop(BaseCallbackHandler):
        pass

    chain = RunnableLambda(lambda x: {"answer": x["q"].upper()}) | RunnableLambda(lambda x: x["answer"])
    with make_engine(distill=DistillSettings(delay_s=0, idle_s=0)) as engine:
        ours, noop = ExperienceCallbackHandler(engine), Noop()
        for _ in range(200):  # warm both paths
            chain.invoke({"q": "warm"}, config={"callbacks": [ours]})
            chain.invoke({"q": "warm"}, config={"callbacks": [noop]})
        a: list[float] = []
        b: list[float] = []
        for i in range(n):  # interleaved, so drift hits both alike; the worker distills meanwhile
            t = time.perf_counter()
            chain.invoke({"q": f"question {i}"}, config={"callbacks": [noop]})
            b.append(time.perf_counter() - t)
            t = time.perf_counter()
            chain.invoke({"q": f"question {i}"}, config={"callbacks": [ours]})
            a.append(time.perf_counter() - t)
        rec = _timed(lambda i: engine.record(Episode(input=f"q{i}", output="a")), n)
        engine.drain(timeout=600)
    return {
        "capture_ratio_p50": statistics.median(a) / statistics.median(b),
        "chain_with_capture_p50_ms": statistics.median(a) * 1000,
        "chain_with_noop_p50_ms": statistics.median(b) * 1000,
        "record_p50_us": _ms(rec, 0.5) * 1000,
        "record_p95_us": _ms(rec, 0.95) * 1000,
    }


def _unit(rng: np.random.Generator, n: int) -> np.ndarray:
    return unit_rows(rng.standard_normal((n, DIM)))


def store_at(size: int, queries: int, rng: np.random.Generator) -> dict[str, Any]:
    import qdrant_edge as qe

    vectors = _unit(rng, size)
    # Ten tenants; the measured query reads one of them (10 % of the store), as a multi-tenant app would.
    scopes = [Scope(namespace="app", tenant=f"t{i % 10}") for i in range(size)]
    folder = Path(tempfile.mkdtemp(prefix="expscale-bench-"))
    store = EdgeExperienceStore(folder / "shard")
    store.ensure_collection(DIM)
    insert_s = 0.0
    first: Experience | None = None
    for start in range(0, size, 2048):  # built chunk by chunk, so the harness does not hold 100k records itself
        chunk = [
            Experience(kind="fact", content=f"lesson {i} about topic {i % 97}", scope=scopes[i])
            for i in range(start, min(size, start + 2048))
        ]
        first = first or chunk[0]
        items = list(zip(chunk, vectors[start : start + len(chunk)].tolist()))
        t = time.perf_counter()
        store.upsert(items)
        insert_s += time.perf_counter() - t
    assert first is not None
    scope = Scope(namespace="app", tenant="t3")
    mask = np.array([s.tenant == "t3" for s in scopes])
    qs = _unit(rng, queries)
    settings = RetrieveSettings()
    now = first.created_at

    def engine_path(i: int) -> None:  # what engine.retrieve does after embedding
        hits = store.search(qs[i].tolist(), scope=scope, limit=30, min_similarity=0.0, as_reader=True)
        rank(hits, k=10, now=now, settings=settings)

    flt = qe.Filter(
        must=[
            qe.FieldCondition(key="scope.namespace", match=qe.MatchValue("app")),
            qe.FieldCondition(key="scope.tenant", match=qe.MatchValue("t3")),
            qe.FieldCondition(key="status", match=qe.MatchAny(["active"])),
        ]
    )
    shard = store._shard
    assert shard is not None

    def bare(i: int) -> None:
        shard.query(qe.QueryRequest(limit=10, query=qe.Query.Nearest(qs[i].tolist()), filter=flt, with_payload=True))

    scoped = vectors[mask]

    def numpy_scan(i: int) -> None:
        sims = scoped @ qs[i]
        np.argpartition(-sims, 10)[:10]

    # The index is built in a child process on a copy: queries go on meanwhile (what an app sees during a build).
    t = time.perf_counter()
    store.build_index(wait=False)
    during: list[float] = []
    while not store.maintain():
        during += _timed(engine_path, 1)
        time.sleep(0.01)
    index_s = time.perf_counter() - t
    shard = store._shard  # swapped in: the indexed copy
    assert shard is not None
    for fn in (engine_path, bare, numpy_scan):
        _timed(fn, min(20, queries))
    ours, base, brute = _timed(engine_path, queries), _timed(bare, queries), _timed(numpy_scan, queries)
    # What an app pays: a fresh process that opens this store and serves scoped queries.
    store.close()
    serving_rss = _serving_rss(folder / "shard", qs[:50])
    store = EdgeExperienceStore(folder / "shard")
    store.ensure_collection(DIM)

    refine = RefineSettings(every_n_experiences=None, max_experiences=None)
    t = time.perf_counter()
    Refiner(store, HashEmbedder(DIM), refine).run(now=now)
    refine_full_s = time.perf_counter() - t
    extra = max(1, size // 100)
    later = first.created_at.replace(year=first.created_at.year + 1)
    new = [Experience(kind="fact", content=f"new {i}", scope=scopes[i], updated_at=later) for i in range(extra)]
    store.upsert(list(zip(new, _unit(rng, extra).tolist())))
    t = time.perf_counter()
    Refiner(store, HashEmbedder(DIM), refine).run(now=later, since=later)
    refine_periodic_s = time.perf_counter() - t
    store.close()
    shutil.rmtree(folder, ignore_errors=True)
    return {
        "size": size,
        "insert_per_s": size / insert_s,
        "index_build_s": index_s,
        "retrieve_during_build_p50_ms": _ms(during, 0.5) if during else None,
        "retrieve_during_build_max_ms": max(during) * 1000 if during else None,
        "retrieve_p50_ms": _ms(ours, 0.5),
        "retrieve_p95_ms": _ms(ours, 0.95),
        "bare_query_p50_ms": _ms(base, 0.5),
        "numpy_scan_p50_ms": _ms(brute, 0.5),
        "refine_full_s": refine_full_s,
        "refine_periodic_s": refine_periodic_s,
        "serving_rss_mb": serving_rss,
    }


_SERVE = """
import json, sys
from expscale_core import EdgeExperienceStore, Scope
store = EdgeExperienceStore(sys.argv[1])
store.ensure_collection(int(sys.argv[2]))
for q in json.loads(sys.stdin.read()):
    store.search(q, scope=Scope(namespace="app", tenant="t3"), limit=30)
print(next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmRSS:")) / 1024)
"""


_HUGE = """
import json, sys, tempfile, threading, time
from langchain_core.runnables import RunnableLambda
from expscale_core import ExperienceEngine, ExpscaleSettings
from langchain_expscale import with_experience
size = int(sys.argv[1])
with tempfile.TemporaryDirectory() as tmp:
    engine = ExperienceEngine.from_settings(ExpscaleSettings(data_dir=tmp))
    chain = with_experience(RunnableLambda(lambda x: len(x["question"])), engine, input_key="question")
    chain.invoke({"question": "warm up the embedder"})
    def rss():
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * 4096 / 2**20
    text = ("All work and no play makes Jack a dull boy. " * (size // 44 + 1))[:size]
    engine.flush()
    base, peak, done = rss(), [0.0], threading.Event()
    def sample():  # the peak during the call: ru_maxrss is stuck at the model's loading spike
        while not done.wait(0.002):
            peak[0] = max(peak[0], rss())
    sampler = threading.Thread(target=sample)
    sampler.start()
    t = time.perf_counter()
    chain.invoke({"question": text})
    took = time.perf_counter() - t
    engine.flush()
    done.set()
    sampler.join()
    engine.close()
print(json.dumps({"s": took, "rss_growth_mb": max(peak[0], rss()) - base}))
"""


def huge_input() -> dict[str, float]:
    """A with_experience chain (default MiniLM embedder) given a 20 MB input vs a 1 KB one, each in a fresh
    process: the hot-path time and how much the process grew (the input string itself is 20 MB)."""

    def run(size: int) -> dict[str, float]:
        out = subprocess.run([sys.executable, "-c", _HUGE, str(size)], capture_output=True, text=True, check=True)
        return dict(json.loads(out.stdout.strip().splitlines()[-1]))

    small, big = run(1_000), run(20_000_000)
    return {
        "huge_input_s": big["s"],
        "small_input_s": small["s"],
        "huge_input_rss_growth_mb": big["rss_growth_mb"],
        "small_input_rss_growth_mb": small["rss_growth_mb"],
    }


def _serving_rss(path: Path, queries: np.ndarray) -> float:
    out = subprocess.run(
        [sys.executable, "-c", _SERVE, str(path), str(DIM)],
        input=json.dumps(queries.tolist()),
        capture_output=True,
        text=True,
        check=True,
    )
    return float(out.stdout.strip())


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1000,10000,100000")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--captures", type=int, default=2000)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/bench.json"))
    ap.add_argument("--only-huge-input", action="store_true", help="just the 20 MB input figures")
    args = ap.parse_args()
    if args.only_huge_input:
        print(json.dumps(huge_input(), indent=1))
        return
    rng = np.random.default_rng(7)
    result: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()}, {__import__('os').cpu_count()} cores, Python {platform.python_version()}",
    }
    result |= cold_import()
    result |= capture(args.captures)
    result |= huge_input()
    result["sizes"] = []
    for size in (int(s) for s in args.sizes.split(",")):
        result["sizes"].append(store_at(size, args.queries, rng))
        gc.collect()
    result["max_rss_mb"] = rss_mb()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    print(f"{result['date']} · {result['machine']}\n")
    print(f"- capture overhead (p50, worker running): {result['capture_ratio_p50']:.2f}× a no-op handler")
    print(f"- record(): p50 {result['record_p50_us']:.0f} µs, p95 {result['record_p95_us']:.0f} µs")
    print(
        f"- a 20 MB input through with_experience: {result['huge_input_s']:.2f} s on the hot path "
        f"(1 KB input: {result['small_input_s']:.3f} s), process grew {result['huge_input_rss_growth_mb']:.0f} MB "
        f"(1 KB: {result['small_input_rss_growth_mb']:.0f} MB)"
    )
    print(
        f"- cold import: expscale_core {result['import_expscale_core_s']:.2f} s "
        f"(qdrant_client alone {result['import_qdrant_client_s']:.2f} s)"
    )
    big = result["sizes"][-1]
    print(
        f"- RSS of a process serving {big['size']:,} experiences (store open, scoped queries): "
        f"{big['serving_rss_mb']:.0f} MB; peak of this benchmark process, refinement included: "
        f"{result['max_rss_mb']:.0f} MB\n"
    )
    print(
        "| experiences | insert/s | HNSW build s (background) | retrieve during build p50/max ms "
        "| retrieve p50/p95 ms | bare Edge query p50 ms | numpy scan p50 ms | refine full s | refine periodic s |"
    )
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in result["sizes"]:
        d50, dmax = r["retrieve_during_build_p50_ms"], r["retrieve_during_build_max_ms"]
        during = f"{d50:.2f} / {dmax:.1f}" if d50 is not None else "n/a"
        print(
            f"| {r['size']:,} | {r['insert_per_s']:,.0f} | {r['index_build_s']:.1f} | {during} "
            f"| {r['retrieve_p50_ms']:.2f} / {r['retrieve_p95_ms']:.2f} | {r['bare_query_p50_ms']:.2f} "
            f"| {r['numpy_scan_p50_ms']:.2f} | {r['refine_full_s']:.1f} | {r['refine_periodic_s']:.2f} |"
        )


if __name__ == "__main__":
    main()
