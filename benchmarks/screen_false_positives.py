"""False-positive rate of the injection screen on the evaluation datasets' lessons.

    python benchmarks/screen_false_positives.py --data ../shared/data
    python benchmarks/screen_false_positives.py --data ../shared/data --llm-url http://127.0.0.1:8089/v1 --llm-sample 25

Each record becomes the lesson the rules distiller would store (question as applicability, answer as
content); GSM8K records use the worked solution, as the methods scenario teaches it. Prints the rate per
dataset and the flagged examples. With ``--llm-url``, a seeded sample of each dataset also goes through the
optional LLM screen (one call per lesson, so a sample).
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

from expscale_core.eval.data import load_comqa, load_nq_open, load_webquestions
from expscale_core.eval.methods import load_gsm8k
from expscale_core.safety.screen import screen


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--llm-url", help="also run the LLM screen against this OpenAI-compatible server")
    ap.add_argument("--llm-model", default="qwen1.5b")
    ap.add_argument("--llm-sample", type=int, default=25, help="lessons per dataset for the LLM screen")
    args = ap.parse_args()
    sets: dict[str, list[tuple[str, str]]] = {
        "ComQA dev+train": [
            (q, f"The verified answer is: {c.answers[0]}.")
            for split in ("dev", "train")
            for c in load_comqa(args.data, split)
            for q in c.questions
        ],
        "WebQuestions": [
            (qa.question, f"The verified answer is: {qa.answers[0]}.")
            for split in ("train", "test")
            for qa in load_webquestions(args.data, split)
        ],
        "NQ-open dev": [(qa.question, f"The verified answer is: {qa.answers[0]}.") for qa in load_nq_open(args.data)],
        "GSM8K worked solutions": [
            (w.question, f"The correct answer is: {w.solution}")
            for split in ("train", "test")
            for w in load_gsm8k(args.data, split)
        ],
    }
    total = flagged_total = 0
    for name, lessons in sets.items():
        flagged = [(q, a, r) for q, a in lessons if (r := screen(a, q))]
        total += len(lessons)
        flagged_total += len(flagged)
        print(f"{name}: {len(flagged)} of {len(lessons)} flagged ({100 * len(flagged) / len(lessons):.3f} %)")
        for q, a, r in flagged[:5]:
            print(f"    {r}: {q[:80]!r} -> {a[:80]!r}")
    print(f"all: {flagged_total} of {total} ({100 * flagged_total / total:.3f} %)")
    if args.llm_url:
        _llm_screen(sets, args.llm_url, args.llm_model, args.llm_sample)


def _llm_screen(sets: dict[str, list[tuple[str, str]]], url: str, model: str, sample: int) -> None:
    import openai
    from expscale_core.llm import OpenAILLM
    from expscale_core.safety.screen_llm import LLMScreen

    review = LLMScreen(OpenAILLM(openai.OpenAI(base_url=url, api_key="local", timeout=180), model=model))
    total = flagged_total = 0
    for name, lessons in sets.items():
        picked = random.Random(0).sample(lessons, min(sample, len(lessons)))
        flagged = [(q, a, r) for q, a in picked if (r := review(a, q))]
        total += len(picked)
        flagged_total += len(flagged)
        print(f"LLM screen, {name}: {len(flagged)} of {len(picked)} flagged", flush=True)
        for q, a, r in flagged[:5]:
            print(f"    {r}: {q[:80]!r} -> {a[:80]!r}")
    print(f"LLM screen, all: {flagged_total} of {total} ({100 * flagged_total / total:.1f} %)")


if __name__ == "__main__":
    main()
