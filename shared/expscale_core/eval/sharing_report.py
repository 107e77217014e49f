"""Writing the sharing experiment: its JSON, a per-frontend markdown table, and a bar chart."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from expscale_core.eval.report import wilson
from expscale_core.eval.sharing import FrontendResult, SharingResult

__all__ = ["sharing_markdown", "write_sharing_report"]

log = logging.getLogger(__name__)


def _rate(right: int, asked: int) -> str:
    low, high = wilson(right, asked)
    return f"{right}/{asked} ({low:.2f}–{high:.2f})"


def _versus(front: FrontendResult, arm: str, baseline: str, *, own: bool | None) -> str:
    if arm not in front.correct or baseline not in front.correct:
        return "–"
    up, down = front.changed(arm, baseline, own=own)
    return f"+{up} / −{down}"


def sharing_markdown(result: SharingResult) -> str:
    arms = list(dict.fromkeys(a for f in result.frontends for a in f.correct))
    lines = [
        "| frontend | reader | arm | all tests (95 % CI) | own families | others' families | taught lesson injected |",
        "| --- | --- | --- | --- | --- | --- | ---: |",
    ]
    for front in result.frontends:
        for arm in arms:
            injected = f"{sum(front.recalled[arm])}/{len(front.recalled[arm])}" if arm != "none" else "–"
            lines.append(
                f"| {front.name} | {front.reader} | {arm} | {_rate(*front.right(arm))} "
                f"| {_rate(*front.right(arm, own=True))} | {_rate(*front.right(arm, own=False))} | {injected} |"
            )
    lines += [
        "",
        "Per test, improved / regressed (+up / −down):",
        "",
        "| frontend | shared vs isolated: own families | shared vs isolated: others' families "
        "| shared vs none | isolated vs none |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for front in result.frontends:
        lines.append(
            f"| {front.name} | {_versus(front, 'shared', 'isolated', own=True)} "
            f"| {_versus(front, 'shared', 'isolated', own=False)} | {_versus(front, 'shared', 'none', own=None)} "
            f"| {_versus(front, 'isolated', 'none', own=None)} |"
        )
    taught = ", ".join(f"{f.name}: {', '.join(f.families)}" for f in result.frontends)
    lessons = ", ".join(f"{k} {v}" for k, v in result.lessons_by_deployment.items()) or "–"
    lines += [
        "",
        f"- families taught: {taught}",
        f"- shared store, active lessons by deployment: {lessons}",
        f"- corrections give {'the rule and the answer' if result.style == 'rule' else 'only the right answer'}; "
        f"distiller {result.distiller}; embedder {result.embedder}; k={result.config.k}, "
        f"budget {result.config.token_budget} tokens; seed {result.seed}; {result.wall_s / 60:.0f} min; {result.date}",
    ]
    return "\n".join(lines) + "\n"


def _plot(result: SharingResult, path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log.warning('plot skipped: pip install "expscale[eval]" for matplotlib')
        return False
    arms = list(dict.fromkeys(a for f in result.frontends for a in f.correct))
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    width = 0.8 / max(1, len(arms))
    for ax, own, title in ((axes[0], True, "own families"), (axes[1], False, "others' families")):
        for i, arm in enumerate(arms):
            heights = []
            for front in result.frontends:
                right, asked = front.right(arm, own=own)
                heights.append(right / max(1, asked))
            ax.bar([x + i * width for x in range(len(result.frontends))], heights, width, label=arm)
        ax.set_xticks([x + width * (len(arms) - 1) / 2 for x in range(len(result.frontends))])
        ax.set_xticklabels([f.name for f in result.frontends])
        ax.set(title=f"sharing: tests on {title}", ylim=(0, 1.02), ylabel="accuracy")
    axes[0].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def write_sharing_report(result: SharingResult, out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    stem = f"sharing-{result.style}"
    json_path, md_path, png_path = out / f"{stem}-results.json", out / f"{stem}-results.md", out / f"{stem}.png"
    json_path.write_text(json.dumps(result.to_dict(), indent=2), encoding="utf-8")
    md_path.write_text(sharing_markdown(result), encoding="utf-8")
    return [json_path, md_path, *([png_path] if _plot(result, png_path) else [])]
