"""Who is served what: the attack corpus and honest corrections through each delivery path, and what promotion costs.

    python benchmarks/poison_reach.py [--out benchmarks/results/poison_reach.json]

Reports, per delivery path (a correction, a "verified" answer, the LLM distiller relaying an episode's output):
attacks from an untrusted account that reach another user's prompt (goal 0), that reach the attacker's own prompt,
honest corrections taught by two users that reach everyone, and those held for review. Then the cost of promotion:
distilling the honest corrections in user scopes (each second teacher triggers a corroboration check and a
promotion) against the same corrections taught at namespace level (no check), in the same run; 0 LLM calls either way.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from attack_corpus import HONEST
from expscale_core import Episode, Scope
from expscale_core.testing import make_engine
from poison_reach import DELIVERIES, measure


def _promotion_cost(rounds: int) -> dict[str, float]:
    """Seconds per episode to distill the honest corrections: two users each (corroboration checks, promotions)
    against the same two teachings in one namespace-wide scope (no check: nothing is narrower than the tenant)."""
    timings: dict[str, list[float]] = {"user scopes": [], "namespace": []}
    for _ in range(rounds):
        for label in timings:
            with make_engine(autostart=False) as engine:
                for i, h in enumerate(HONEST):
                    for who in ("a", "b"):
                        scope = (
                            Scope(namespace="corp", user=f"u{i}{who}")
                            if label == "user scopes"
                            else Scope(namespace="corp")
                        )
                        eid = engine.record(Episode(input=h.request, output="?"), scope=scope)
                        engine.feedback(eid, -1, correction=h.correction, scope=scope)
                started = time.perf_counter()
                engine.run_pending()
                timings[label].append((time.perf_counter() - started) / (2 * len(HONEST)))
    user, flat = statistics.median(timings["user scopes"]), statistics.median(timings["namespace"])
    return {"s_per_episode_user_scopes": user, "s_per_episode_namespace": flat, "ratio": user / flat}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/poison_reach.json"))
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    results: dict[str, object] = {}
    for delivery in DELIVERIES:
        r = measure(delivery)
        results[delivery] = {
            "attacks": r.attacks,
            "reached_another_user": len(r.reached_others),
            "reached_own_prompt": r.reached_own,
            "flagged_by_screen": r.flagged,
            "honest": r.honest,
            "honest_reached_everyone": r.honest_everyone,
            "honest_held_for_review": r.honest_held,
            "honest_missing": r.honest_missing,
            "llm_calls": r.llm_calls,
        }
        print(
            f"{delivery:>10}: attacks reaching another user {len(r.reached_others)}/{r.attacks}, own prompt "
            f"{r.reached_own}/{r.attacks}, flagged {r.flagged}; honest reaching everyone {r.honest_everyone}/"
            f"{r.honest}, held for review {r.honest_held}"
        )
    cost = _promotion_cost(args.rounds)
    results["promotion"] = cost
    print(
        f"promotion: {cost['s_per_episode_user_scopes'] * 1000:.1f} ms per episode in user scopes against "
        f"{cost['s_per_episode_namespace'] * 1000:.1f} ms at namespace level ({cost['ratio']:.2f}x), 0 LLM calls"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
