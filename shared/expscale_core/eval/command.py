"""``expscale eval``: building scenarios from data, running the arms, writing the report."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Literal, cast

from expscale_core.embed.base import CachedEmbedder, Embedder
from expscale_core.embed.hashing import HashEmbedder
from expscale_core.embed.minilm import MiniLMEmbedder
from expscale_core.eval.conventions import conventions
from expscale_core.eval.data import Cluster, load_comqa, load_nq_open, load_sample, load_webquestions
from expscale_core.eval.methods import load_gsm8k, methods
from expscale_core.eval.readers import LLMReader, OracleReader, Reader, ReaderMode
from expscale_core.eval.report import write_report
from expscale_core.eval.runner import ARMS, DISTILLER_ARMS, EvalConfig, ScenarioResult, run_scenario
from expscale_core.eval.scenarios import Task, related, repetitive, saturation
from expscale_core.eval.sharing import SHARING_ARMS, Frontend, rounds, run_sharing
from expscale_core.eval.sharing_report import sharing_markdown, write_sharing_report
from expscale_core.llm import LLM

__all__ = ["add_parser", "run"]

SCENARIOS = ("repetitive", "related", "saturation")
"""What ``--scenario all`` runs; ``methods`` (GSM8K, needs --reader llm) is asked for by name."""


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("eval", parents=[common], help="run the evaluation scenarios and write a report")
    p.add_argument(
        "--scenario",
        choices=[*SCENARIOS, "methods", "conventions", "sharing", "all"],
        default="all",
        help="all = repetitive, related, saturation; methods (GSM8K method transfer) and conventions (house "
        "rules, in-repo) need --reader llm; sharing (house rules dealt to several frontends, one shared store "
        "against isolated stores) needs --frontend",
    )
    p.add_argument(
        "--style",
        choices=["rule", "answer", "both"],
        default="both",
        help="conventions: corrections state the rule, give only the answer, or both (one result each)",
    )
    p.add_argument("--reader", choices=["oracle", "llm"], default="oracle")
    p.add_argument(
        "--frontend",
        action="append",
        default=[],
        metavar="NAME=MODE:MODEL@URL",
        help="sharing: one frontend, e.g. qwen=chat:qwen1.5b@http://127.0.0.1:8089/v1; MODE is chat, terse "
        "(chat, another system prompt) or completion (base models); repeat for each frontend (at least 2)",
    )
    p.add_argument("--data", type=Path, default=None, help="folder with comqa/, webquestions/, nq_open/")
    p.add_argument(
        "--split",
        choices=["report", "tune"],
        default="report",
        help="report: ComQA dev, WebQuestions test; tune: ComQA train, WebQuestions train",
    )
    p.add_argument("--quick", action="store_true", help="the small in-repo sample, no --data needed")
    p.add_argument("--out", type=Path, default=Path("eval-out"))
    p.add_argument(
        "--arms",
        default=None,
        help=f"comma-separated, from {', '.join((*ARMS, *DISTILLER_ARMS))} (default {','.join(ARMS)}); "
        "rules/llm/llm-refine name their distiller (llm arms need --distill-llm); sharing: from "
        f"{','.join(SHARING_ARMS)} (the default)",
    )
    p.add_argument("--methods-teach", type=int, default=3, help="methods: teaching problems per kind")
    p.add_argument("--methods-test", type=int, default=5, help="methods: unseen test problems per kind")
    p.add_argument("--seed", type=int, default=13)
    p.add_argument("--limit", type=int, default=None, help="at most this many clusters/groups per scenario")
    p.add_argument(
        "--flood",
        default="10,50",
        help="saturation: flood episodes per teaching episode; several "
        "factors give one result each (saturation-10x, ...)",
    )
    p.add_argument(
        "--saturation-rounds",
        type=int,
        default=2500,
        help="saturation: pick as many clusters as keep a run near this many rounds (without --limit)",
    )
    p.add_argument("--embedder", choices=["minilm", "hash"], default="minilm")
    p.add_argument("-k", type=int, default=5)
    p.add_argument("--token-budget", type=int, default=400)
    p.add_argument("--min-score", type=float, default=0.3, help="similarity floor for retrieval (tune on --split tune)")
    p.add_argument("--llm-base-url", default=os.environ.get("OPENAI_BASE_URL"))
    p.add_argument("--llm-model", default=os.environ.get("OPENAI_MODEL"))
    p.add_argument(
        "--llm-mode",
        choices=["chat", "completion", "math"],
        default=None,
        help="reader prompt: chat (default), completion (few-shot, base models), math (default for methods)",
    )
    p.add_argument(
        "--distill-llm", action="store_true", help="distill with the EXPSCALE_LLM__* model instead of the no-LLM rules"
    )


def _clusters(args: argparse.Namespace) -> tuple[list[Cluster], int, str]:
    if args.quick:
        wq, _ = load_sample()
        singles = [Cluster(q.qid, (q.question,), q.answers) for q in wq]
        return singles, 2, "in-repo sample: WebQuestions questions asked twice (no paraphrase data in the sample)"
    split = "dev" if args.split == "report" else "train"
    return load_comqa(args.data, split), 1, f"ComQA {split} paraphrase clusters"


def _factors(args: argparse.Namespace) -> list[int]:
    try:
        factors = [int(x) for x in str(args.flood).split(",") if x.strip()]
    except ValueError as exc:
        raise ValueError(f"--flood takes factors like 10 or 10,50, not {args.flood!r}") from exc
    if not factors or min(factors) < 1:
        raise ValueError(f"--flood factors must be >= 1, got {args.flood!r}")
    return factors


def _tasks(scenario: str, args: argparse.Namespace, factor: int = 0) -> tuple[list[Task], str, int | None]:
    if scenario.startswith("conventions-"):
        style = scenario.removeprefix("conventions-")
        tasks = conventions(style="rule" if style == "rule" else "answer", seed=args.seed, limit=args.limit)
        said = "the rule and the answer" if style == "rule" else "only the right answer"
        return tasks, f"in-repo house rules, corrections give {said}", None
    if scenario == "methods":
        if args.quick or args.data is None:
            raise ValueError("--scenario methods needs --data with gsm8k/{train,test}.jsonl (GSM8K, MIT license)")
        tasks = methods(
            load_gsm8k(args.data, "train"),
            load_gsm8k(args.data, "test"),
            seed=args.seed,
            teach_per_kind=args.methods_teach,
            test_per_kind=args.methods_test,
        )
        return tasks, "GSM8K: train problems with worked solutions teach, unseen test problems of the same kind", None
    if scenario == "related":
        if args.quick:
            items, label = load_sample()[0], "in-repo sample: WebQuestions shared-answer groups"
        else:
            split = "test" if args.split == "report" else "train"
            items, label = load_webquestions(args.data, split), f"WebQuestions {split}, shared-answer groups"
        return related(items, seed=args.seed, limit=args.limit), label, None
    clusters, repeats, label = _clusters(args)
    if scenario == "repetitive":
        return repetitive(clusters, seed=args.seed, limit=args.limit, repeats=repeats), label, None
    traffic = load_sample()[1] if args.quick else load_nq_open(args.data) + load_webquestions(args.data, "train")
    # Embedded Qdrant filters point by point, so a run costs about rounds²: bound the rounds, not the factor.
    limit = args.limit or max(10, args.saturation_rounds // (factor + 2 * repeats))
    tasks = saturation(clusters, traffic, factor=factor, seed=args.seed, limit=limit, repeats=repeats)
    n_teach = sum(t.role == "teach" for t in tasks)
    capacity = 3 * n_teach  # room for what was taught, not for the flood
    return (
        tasks,
        f"{label} ({n_teach} clusters) + {factor}x flood (near-duplicates, NQ-open/WebQuestions traffic)",
        capacity,
    )


def _reader(args: argparse.Namespace) -> Reader:
    if args.reader == "oracle":
        if args.scenario in ("methods", "conventions"):
            raise ValueError(f"--scenario {args.scenario} measures a model's answers: use --reader llm")
        return OracleReader()
    if not args.llm_model:
        raise ValueError("--reader llm needs --llm-model (and --llm-base-url for a local server); see the README")
    import openai

    client = openai.OpenAI(base_url=args.llm_base_url, api_key=os.environ.get("OPENAI_API_KEY", "not-needed"))
    mode: Literal["chat", "completion", "math"] = args.llm_mode or ("math" if args.scenario == "methods" else "chat")
    return LLMReader(client, model=args.llm_model, mode=mode)


def _embedder(args: argparse.Namespace) -> Embedder:
    return CachedEmbedder(HashEmbedder() if args.embedder == "hash" else MiniLMEmbedder(), cache_size=200_000)


def _distill_llm(args: argparse.Namespace) -> LLM | None:
    if not args.distill_llm:
        return None
    from expscale_core.factory import build_llm
    from expscale_core.settings import ExpscaleSettings

    llm = build_llm(ExpscaleSettings())
    if llm is None:
        raise ValueError("--distill-llm needs EXPSCALE_LLM__MODEL (and EXPSCALE_LLM__BASE_URL / __API_KEY)")
    return llm


def parse_frontend(spec: str) -> tuple[str, ReaderMode, str, str]:
    """``NAME=MODE:MODEL@URL`` -> (name, mode, model, base URL), with an error that shows the expected form."""
    name, _, rest = spec.partition("=")
    mode, _, rest = rest.partition(":")
    model, _, url = rest.partition("@")
    modes = ("chat", "terse", "completion")
    if not (name and model and url) or mode not in modes:
        raise ValueError(
            f"--frontend {spec!r}: expected NAME=MODE:MODEL@URL with MODE one of {', '.join(modes)}, "
            "e.g. qwen=chat:qwen1.5b@http://127.0.0.1:8089/v1"
        )
    return name, cast(ReaderMode, mode), model, url


def _run_sharing(args: argparse.Namespace, embedder: Embedder, llm: LLM | None) -> int:
    import openai
    from tqdm import tqdm

    specs = [parse_frontend(s) for s in args.frontend]
    if len(specs) < 2:
        raise ValueError("--scenario sharing needs at least two --frontend NAME=MODE:MODEL@URL (see --help)")
    key = os.environ.get("OPENAI_API_KEY", "not-needed")
    frontends = [
        Frontend(name, LLMReader(openai.OpenAI(base_url=url, api_key=key), model=model, mode=mode))
        for name, mode, model, url in specs
    ]
    arms = [a.strip() for a in (args.arms or ",".join(SHARING_ARMS)).split(",") if a.strip()]
    config = EvalConfig(k=args.k, token_budget=args.token_budget, min_score=args.min_score)
    written: list[Path] = []
    for style in ("rule", "answer") if args.style == "both" else (args.style,):
        total = rounds(len(frontends), limit=args.limit, arms=arms)
        with tqdm(total=total, desc=f"sharing-{style}", unit="call", file=sys.stderr, disable=args.json) as bar:
            result = run_sharing(
                frontends,
                embedder,
                style=style,
                seed=args.seed,
                limit=args.limit,
                llm=llm,
                config=config,
                arms=arms,
                progress=bar.update,
            )
        written += write_sharing_report(result, args.out)
        print(sharing_markdown(result))
    print("wrote " + ", ".join(str(p) for p in written))
    return 0


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    if args.scenario == "sharing":
        return _run_sharing(args, _embedder(args), _distill_llm(args))
    if not args.quick and args.data is None and args.scenario != "conventions":
        raise ValueError("pass --data pointing at the datasets folder, or --quick for the in-repo sample")
    arms = [a.strip() for a in (args.arms or ",".join(ARMS)).split(",") if a.strip()]
    embedder = _embedder(args)
    reader, llm = _reader(args), _distill_llm(args)
    runs: list[tuple[str, str, int]] = []
    for scenario in SCENARIOS if args.scenario == "all" else (args.scenario,):
        if scenario == "saturation":
            runs += [(f"saturation-{f}x", scenario, f) for f in _factors(args)]
        elif scenario == "conventions":
            styles = ("rule", "answer") if args.style == "both" else (args.style,)
            runs += [(f"conventions-{s}", f"conventions-{s}", 0) for s in styles]
        else:
            runs.append((scenario, scenario, 0))
    results: list[ScenarioResult] = []
    for name, scenario, factor in runs:
        tasks, label, capacity = _tasks(scenario, args, factor)
        config = EvalConfig(
            k=args.k,
            token_budget=args.token_budget,
            capacity=capacity,
            min_score=args.min_score,
            refine_before_tests=scenario.startswith("conventions"),
        )
        with tqdm(
            total=len(tasks) * len(arms), desc=name, unit="round", file=sys.stderr, disable=args.json, mininterval=2.0
        ) as bar:
            results.append(
                run_scenario(
                    name,
                    tasks,
                    reader,
                    config,
                    embedder,
                    dataset=label,
                    seed=args.seed,
                    arms=arms,
                    llm=llm,
                    progress=bar.update,
                )
            )
    written = write_report(results, args.out)
    if args.json:
        import json

        print(json.dumps([r.to_dict() for r in results], indent=2))
    else:
        print((args.out / "results.md").read_text(encoding="utf-8"))
        print("wrote " + ", ".join(str(p) for p in written))
    return 0
