"""Many engines on one store for minutes: every writer path at once, then the invariants of a shared memory.

    python benchmarks/soak_sharing.py [--seconds 180] [--engines 8] [--out benchmarks/results/soak_sharing.json]

The mix and the checks are in ``tests/soak.py`` (the test suite runs the same for a few seconds). Each store is
soaked in turn: Qdrant Edge and qdrant-client's local mode, and a Qdrant server when ``QDRANT_URL`` is set.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from expscale_core.store.base import ExperienceStore
from expscale_core.store.edge import EdgeExperienceStore
from expscale_core.store.qdrant import QdrantExperienceStore
from expscale_core.testing import HashEmbedder
from soak import soak


def _stores() -> dict[str, Callable[[], ExperienceStore]]:
    stores: dict[str, Callable[[], ExperienceStore]] = {
        "edge": EdgeExperienceStore.temporary,
        "qdrant-local": lambda: QdrantExperienceStore.open(location=":memory:"),
    }
    if os.environ.get("QDRANT_URL"):
        url = os.environ["QDRANT_URL"]
        stores["qdrant-server"] = lambda: QdrantExperienceStore.open(url=url, collection=f"soak-{uuid.uuid4().hex[:8]}")
    return stores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=180.0)
    parser.add_argument("--engines", type=int, default=8)
    parser.add_argument("--delay-ms", type=float, default=3.0, help="up to this much before and after store calls")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/soak_sharing.json"))
    args = parser.parse_args()
    results = {}
    for name, make in _stores().items():
        store = make()
        store.ensure_collection(HashEmbedder().dimension)
        started = time.perf_counter()
        try:
            report = soak(store, engines=args.engines, seconds=args.seconds, delay_s=args.delay_ms / 1000)
        finally:
            store.close()
        results[name] = {
            "engines": report.engines,
            "seconds": report.seconds,
            "wall_s": round(time.perf_counter() - started, 1),
            "ops": dict(report.ops),
            "violations": report.violations(),
            "refines_run": report.refines_run,
            "refines_turned_away_by_lease": report.refines_skipped,
            "refine_conflicts_retried_later": report.refine_conflicts,
            "ledger_merges": report.ledger_merges,
            "errors": report.errors[:20],
        }
        ops = sum(report.ops.values())
        bad = sum(report.violations().values())
        print(f"{name}: {ops} operations in {report.seconds:.0f} s on {args.engines} engines; violations {bad}")
        print("  " + json.dumps(results[name]["violations"]))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
