"""Writing results: results.json, a markdown table, and PNG plots."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path

from expscale_core.eval.runner import ScenarioResult

__all__ = ["markdown_table", "write_plots", "write_report"]

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
        lines.append(
            f"- `{r.scenario}` ({r.reader}): {r.dataset}; {r.n_tasks} rounds = {r.n_teach} teach + {r.n_test} test "
            f"+ {r.n_flood} flood; embedder {r.embedder}; distiller {r.distiller}; k={r.config.k}, "
            f"budget {r.config.token_budget} tokens, capacity {r.config.capacity or 'none'}; seed {r.seed}; {r.date}"
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
