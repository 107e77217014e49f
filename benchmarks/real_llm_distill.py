"""Distill the twelve realistic episodes with a real model and with the rules distiller, side by side.

    EXPSCALE_TEST_LLM_URL=http://127.0.0.1:8089/v1 python benchmarks/real_llm_distill.py [--model qwen1.5b]

Prints a table per distiller and writes ``--out`` (JSON): failed / own lesson / repaired / related request
found the transferable point, LLM calls and prompt tokens per episode, seconds per distillation.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from expscale_core import ExperienceEngine, ExpscaleSettings
from real_llm_cases import run_cases


def run(distiller: str, url: str, model: str, embedder: str) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp:
        llm = {"model": model, "base_url": url, "api_key": "local"} if distiller == "llm" else {}
        settings = ExpscaleSettings(data_dir=tmp, llm=llm, embedder={"provider": embedder})
        with ExperienceEngine.from_settings(settings, autostart=False) as engine:
            t0 = time.perf_counter()
            results = run_cases(engine)
            seconds = time.perf_counter() - t0
            usage = engine.llm.usage if engine.llm is not None else None
    n = len(results)
    for r in results:
        print(
            f"  {r.name:26} failed={r.failed!s:5} own={r.own_lesson!s:5} repaired={r.repaired!s:5} "
            f"related={r.related_hit!s:5} | {' / '.join(r.lessons)[:150]}"
        )
    summary = {
        "distiller": distiller,
        "episodes": n,
        "failed": sum(r.failed for r in results),
        "own_lesson": sum(r.own_lesson for r in results),
        "repaired": sum(r.repaired for r in results),
        "related_hits": sum(r.related_hit for r in results),
        "llm_calls_per_episode": (usage.calls / n) if usage else 0.0,
        "prompt_tokens_per_episode": (usage.prompt_tokens / n) if usage else 0.0,
        "seconds_per_episode": seconds / n,
        "cases": [r.__dict__ for r in results],
    }
    print({k: v for k, v in summary.items() if k != "cases"})
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=os.environ.get("EXPSCALE_TEST_LLM_URL", "http://127.0.0.1:8089/v1"))
    parser.add_argument("--model", default=os.environ.get("EXPSCALE_TEST_LLM_MODEL", "qwen1.5b"))
    parser.add_argument("--embedder", default="minilm", choices=["minilm", "hash"])
    parser.add_argument("--distillers", default="rules,llm")
    parser.add_argument("--out", default="benchmarks/results/real_llm_distill.json")
    args = parser.parse_args()
    out = [run(d, args.url, args.model, args.embedder) for d in args.distillers.split(",")]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(
        json.dumps({"date": time.strftime("%Y-%m-%d"), "model": args.model, "runs": out}, indent=1)
    )


if __name__ == "__main__":
    main()
