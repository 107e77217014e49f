"""Writing results: results.json, a markdown table, and PNG plots."""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from pathlib import Path

from expscale_core.eval.runner import ScenarioResult

__all__ = ["comparison_table", "markdown_table", "wilson", "write_plots", "write_report"]

log = logging.getLogger(__name__)


def markdown_table(results: Sequence[ScenarioResult]) -> str:
    lines = []
    for reader in dict.fromkeys(r.reader for r in results):  # one table per reader: never mixed
        lines += [
            f"Reader: **{reader}**",
            "",
            "| scenario | arm | accuracy | recall@k | active exps | store tokens | LLM calls/ep | LLM tokens/ep "
            "| distill s/ep | yielded / failed / repaired | retrieve p50/p95 ms | wall s |",
            "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for r in (x for x in results if x.reader == reader):
            for arm in r.arms.values():
                count = arm.store_count[-1] if arm.store_count else 0
                tokens = arm.store_tokens[-1] if arm.store_tokens else 0
                lines.append(
                    f"| {r.scenario} | {arm.arm} | {arm.accuracy:.3f} | {arm.recall_at_k:.3f} | {count} | {tokens} "
                    f"| {arm.llm_calls_per_episode:.2f} | {arm.llm_tokens_per_episode:.0f} "
                    f"| {arm.distill_s_per_episode:.2f} | {arm.yielded:.2f} / {arm.failed:.2f} / {arm.repaired:.2f} "
                    f"| {arm.retrieve_p50_ms:.1f} / {arm.retrieve_p95_ms:.1f} | {arm.wall_s:.1f} |"
                )
        lines.append("")
    for r in results:
        lines += [f"`{r.scenario}` ({r.reader}), per test:", "", comparison_table(r)]
    for r in results:
        induced = ", ".join(f"{a.arm} {a.induced_rules}" for a in r.arms.values() if a.induced_rules)
        lines.append(f"- `{r.scenario}` ({r.reader}): rules induced by refinement: {induced or 'none'}")
        lines.append(
            f"- `{r.scenario}` ({r.reader}): {r.dataset}; {r.n_tasks} rounds = {r.n_teach} teach + {r.n_test} test "
            f"+ {r.n_flood} flood; embedder {r.embedder}; distiller {r.distiller}; k={r.config.k}, "
            f"budget {r.config.token_budget} tokens, capacity {r.config.capacity or 'none'}; seed {r.seed}; {r.date}"
        )
    return "\n".join(lines) + "\n"


def wilson(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval (95 % by default) of a proportion: honest at small n and near 0 or 1."""
    if n == 0:
        return 0.0, 0.0
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def comparison_table(result: ScenarioResult, baseline: str = "none") -> str:
    """Per arm: right answers with the Wilson 95 % interval, tests improved and regressed against ``baseline``
    (the same test, answered by the baseline arm), and how often the test's own lesson was injected, split by
    whether the answer was then right (a retrieval failure is not a reading failure)."""
    base = result.arms.get(baseline)
    lines = [
        f"| arm | right | accuracy (95 % CI) | improved / regressed vs {baseline} | own lesson injected "
        "| right when injected | right when not |",
        "| --- | ---: | --- | ---: | ---: | ---: | ---: |",
    ]
    for arm in result.arms.values():
        n, k = len(arm.test_correct), sum(arm.test_correct)
        low, high = wilson(k, n)
        if base is not None and arm is not base and len(base.test_correct) == n:
            up = sum(a and not b for a, b in zip(arm.test_correct, base.test_correct))
            down = sum(b and not a for a, b in zip(arm.test_correct, base.test_correct))
            versus = f"{up} / {down}"
        else:
            versus = "–"
        injected = [c for c, r in zip(arm.test_correct, arm.test_recalled) if r]
        missed = [c for c, r in zip(arm.test_correct, arm.test_recalled) if not r]
        lines.append(
            f"| {arm.arm} | {k}/{n} | {k / max(1, n):.3f} ({low:.2f}–{high:.2f}) | {versus} "
            f"| {len(injected)}/{n} | {sum(injected)}/{len(injected)} | {sum(missed)}/{len(missed)} |"
        )
    return "\n".join(lines) + "\n"


def write_plots(results: Sequence[ScenarioResult], out: Path) -> list[Path]:
    """Accuracy over rounds and store size over rounds, one figure per scenario. Needs matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log.warning('plots skipped: pip install "expscale[eval]" for matplotlib')
        return []
    written = []
    for r in results:
        fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
        for arm in r.arms.values():
            left.plot(arm.window_end_round, arm.window_accuracy, marker="o", label=arm.arm)
            right.plot(arm.store_rounds, arm.store_count, label=arm.arm)
        left.set(
            title=f"{r.scenario}: accuracy on test rounds ({r.reader})",
            xlabel="round",
            ylabel="accuracy",
            ylim=(-0.02, 1.02),
        )
        right.set(title=f"{r.scenario}: active store entries", xlabel="round", ylabel="entries")
        left.legend()
        right.legend()
        fig.tight_layout()
        path = out / f"{r.scenario}_{r.reader.replace(':', '_')}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    return written


def write_report(results: Sequence[ScenarioResult], out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    json_path = out / "results.json"
    json_path.write_text(json.dumps([r.to_dict() for r in results], indent=2), encoding="utf-8")
    md_path = out / "results.md"
    md_path.write_text(markdown_table(results), encoding="utf-8")
    return [json_path, md_path, *write_plots(results, out)]
