"""The ``expscale`` command line."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from expscale_core.episode import EpisodeStatus
from expscale_core.errors import ExpscaleError
from expscale_core.experience import ExperienceStatus, ScoredExperience
from expscale_core.scope import Scope
from expscale_core.settings import ExpscaleSettings, settings_error

if TYPE_CHECKING:
    from expscale_core.engine import ExperienceEngine

__all__ = ["main"]


_READ_ONLY = {"stats", "search", "scopes", "export", "episodes", "quarantine", "review"}


def _global_options(parser: argparse.ArgumentParser, *, suppress: bool) -> None:
    # Accepted before or after the subcommand; the subcommand's copy must not reset what came before it.
    default = argparse.SUPPRESS if suppress else None
    parser.add_argument(
        "--data-dir", type=Path, default=default, help="data directory (default: EXPSCALE_DATA_DIR or ./.expscale)"
    )
    parser.add_argument(
        "--json", action="store_true", default=argparse.SUPPRESS if suppress else False, help="print JSON"
    )


def _parser() -> argparse.ArgumentParser:
    from expscale_core import __version__

    common = argparse.ArgumentParser(add_help=False)
    _global_options(common, suppress=True)

    p = argparse.ArgumentParser(prog="expscale", description="Experience memory for LLM applications.")
    p.add_argument("--version", action="version", version=f"expscale {__version__}")
    _global_options(p, suppress=False)
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("stats", parents=[common], help="experiences, episodes and memory-quality figures, all scopes")
    sub.add_parser("scopes", parents=[common], help="the scopes that hold experiences, with counts by status")
    s = sub.add_parser("search", parents=[common], help="retrieve experiences for a query")
    s.add_argument("query", help="the text to find experiences for")
    s.add_argument("-k", type=int, default=None, help="how many (default: EXPSCALE_RETRIEVE__K, 5)")
    where = s.add_mutually_exclusive_group()
    where.add_argument(
        "--scope", default=None, help="read as this scope: a namespace, or namespace/field=value (default: 'default')"
    )
    where.add_argument("--namespace", default=None, help="the same as --scope NAMESPACE")
    where.add_argument("--all", action="store_true", help="every scope, whatever it may read (an operator's view)")
    s.add_argument(
        "--min-score", type=float, default=None, help="similarity floor (default: EXPSCALE_RETRIEVE__MIN_SCORE)"
    )
    q = sub.add_parser("quarantine", parents=[common], help="list lessons held back as possible injections")
    q.add_argument("--release", nargs="+", metavar="ID", help="a person's decision: serve these after all")
    rv = sub.add_parser(
        "review", parents=[common], help="lessons waiting to be shared or flagged by a screen: list, approve, reject"
    )
    rv.add_argument("--scope", default=None, help="only this scope: a namespace, or namespace/field=value...")
    rv.add_argument("--approve", nargs="+", metavar="ID", help="vouch for these: served, and shared as trusted")
    rv.add_argument("--reject", nargs="+", metavar="ID", help="rule these out: deleted from the store")
    rv.add_argument("--reviewer", default="cli", help="who decides (recorded as a source of approved lessons)")
    d = sub.add_parser("distill", parents=[common], help="distill queued episodes now")
    d.add_argument("--retry-failed", action="store_true", help="move failed episodes back to the queue first")
    sub.add_parser("refine", parents=[common], help="merge, supersede, decay and cap the store now")
    e = sub.add_parser("export", parents=[common], help="write all experiences to a JSONL file")
    e.add_argument("file", type=Path)
    i = sub.add_parser("import", parents=[common], help="read experiences from a JSONL file (re-embeds them)")
    i.add_argument("file", type=Path)
    ep = sub.add_parser("episodes", parents=[common], help="list captured episodes")
    ep.add_argument("--status", choices=[s.value for s in EpisodeStatus], default=None, help="only this status")
    ep.add_argument("--limit", type=int, default=20, help="at most this many, newest first")
    ep.add_argument(
        "--dead-letters", action="store_true", help="list captured episodes that could not be stored, with why"
    )
    r = sub.add_parser("restore", parents=[common], help="make archived or superseded experiences active again")
    r.add_argument("ids", nargs="+", help="experience ids")
    x = sub.add_parser("delete", parents=[common], help="completely delete a scope or an episode")
    group = x.add_mutually_exclusive_group(required=True)
    group.add_argument(
        "--scope",
        help='scope to delete: a namespace, namespace/user=u1, or JSON like \'{"namespace": "a", "user": "u1"}\'',
    )
    group.add_argument("--episode", help="episode id to delete, with every experience its text reached")
    sub.add_parser("demo", parents=[common], help="offline demo: learn from a stream of episodes")
    from expscale_core.eval.command import add_parser as add_eval_parser

    add_eval_parser(sub, common)
    return p


def _settings(args: argparse.Namespace) -> ExpscaleSettings:
    return ExpscaleSettings(data_dir=args.data_dir) if args.data_dir else ExpscaleSettings()


def _progress(total: int | None, desc: str, quiet: bool) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="item", disable=quiet, file=sys.stderr)


def _emit(args: argparse.Namespace, payload: Any, text: Callable[[], str]) -> None:
    print(json.dumps(payload, indent=2, default=str) if args.json else text())


def _parse_scope(raw: str) -> Scope:
    if raw.lstrip().startswith("{"):
        return Scope.model_validate_json(raw)
    return Scope.parse(raw)


def _holds_data(settings: ExpscaleSettings, data_dir: Path | None = None) -> bool:
    """An engine has written here: its episode queue, or its embedded store."""
    where = data_dir or settings.data_dir
    return (where / "episodes.sqlite3").exists() or (where / "store").is_dir()


def _run(args: argparse.Namespace) -> int:
    from expscale_core.engine import ExperienceEngine

    if args.command == "eval":
        from expscale_core.eval.command import run as run_eval

        return run_eval(args)
    settings = _settings(args)
    if args.command in _READ_ONLY and not _holds_data(settings):
        demo = settings.data_dir / "demo"
        hint = f" (the demo's data is in {demo}: --data-dir {demo})" if _holds_data(settings, demo) else ""
        raise FileNotFoundError(
            f"no expscale data at {settings.data_dir}{hint}; check --data-dir or EXPSCALE_DATA_DIR "
            "(read-only commands never create one)"
        )
    if args.command == "demo":
        from expscale_core.demo import run_demo

        run_demo(settings, sys.stdout, data_dir=args.data_dir)
        return 0
    with ExperienceEngine.from_settings(settings) as engine:
        return _COMMANDS[args.command](engine, args)


def _stats(engine: ExperienceEngine, args: argparse.Namespace) -> int:
    st = engine.stats()
    q = st.quality
    _emit(
        args,
        st.model_dump(),
        lambda: "\n".join(
            [
                "experiences (every scope; expscale scopes lists them): "
                + ", ".join(f"{k} {v}" for k, v in st.experiences.items()),
                f"active tokens: {st.active_tokens}",
                "episodes: "
                + ", ".join(f"{k} {v}" for k, v in st.episodes.items())
                + (f", dead letters {st.dead_letters} (expscale episodes --dead-letters)" if st.dead_letters else ""),
                f"embedder: {st.embedder}   distiller: {st.distiller}",
                f"LLM (all runs on this data dir): {st.llm_calls} calls, {st.llm_prompt_tokens} prompt tokens",
                f"quality: near-duplicates {q.near_duplicate_rate:.1%} of active, {q.merged_records} merged records, "
                f"{q.superseded} superseded, {q.quarantined} quarantined, {q.repaired} repaired",
                f"served feedback: {q.served_helpful} helpful, {q.served_harmful} harmful, {q.served_unrated} unrated"
                f" (helpful rate {q.helpful_rate:.0%}); utility p10/p50/p90 "
                f"{q.utility_p10:+.2f} / {q.utility_p50:+.2f} / {q.utility_p90:+.2f}",
                *(
                    f"  deployment {name}: {d.active} active, {d.helpful} helpful / {d.harmful} harmful, "
                    f"{d.confirmed_by_others} confirmed by other deployments"
                    for name, d in st.deployments.items()
                ),
            ]
        ),
    )
    return 0


def _search(engine: ExperienceEngine, args: argparse.Namespace) -> int:
    raw = args.scope or args.namespace
    scope = _parse_scope(raw) if raw else engine.scope
    if args.all:
        vector = engine.embedder.embed([args.query])[0]
        floor = engine.retrieve_settings.min_score if args.min_score is None else args.min_score
        k = args.k or engine.retrieve_settings.k
        found = engine.store.search(vector, scope=None, limit=k, min_similarity=floor)
        hits = [ScoredExperience(experience=e, score=sim, similarity=sim) for e, sim in found]
    else:
        hits = engine.retrieve(args.query, k=args.k, scope=scope, min_score=args.min_score)  # None: the settings
    where = "every scope" if args.all else f"scope {scope.key()}"
    _emit(
        args,
        [{"score": h.score, "similarity": h.similarity, **h.experience.model_dump(mode="json")} for h in hits],
        lambda: (
            f"reading {where}:\n"
            + (
                "\n".join(
                    f"{h.score:.3f}  [{h.experience.kind.value}] {h.experience.content}  ({h.experience.id}, "
                    f"{h.experience.scope.key()})"
                    for h in hits
                )
                or "no experiences above the similarity floor (other scopes: expscale scopes; all: --all)"
            )
        ),
    )
    return 0


def _scopes(engine: ExperienceEngine, args: argparse.Namespace) -> int:
    counts: dict[str, dict[str, int]] = {}
    for exp, _ in engine.store.scan():
        row = counts.setdefault(exp.scope.key(), {})
        row[exp.status.value] = row.get(exp.status.value, 0) + 1
        if exp.status is ExperienceStatus.ACTIVE:
            row[f"active {exp.visibility.value}"] = row.get(f"active {exp.visibility.value}", 0) + 1
    rows = dict(sorted(counts.items()))
    _emit(
        args,
        rows,
        lambda: (
            "\n".join(f"{key}  " + ", ".join(f"{k} {v}" for k, v in sorted(c.items())) for key, c in rows.items())
            or "no experiences in any scope"
        ),
    )
    return 0


def _distill(engine: ExperienceEngine, args: argparse.Namespace) -> int:
    retried = engine.queue.retry_failed() if args.retry_failed else 0
    with _progress(engine.queue.outstanding(), "distilling", args.json) as bar:
        handled = engine.distill_pending(ignore_delay=True, progress=bar.update)
    counts = engine.queue.counts()
    _emit(
        args,
        {"retried": retried, "handled": handled, **counts},
        lambda: (
            f"handled {handled} episodes (re-queued {retried} failed); "
            + ", ".join(f"{k} {v}" for k, v in counts.items())
        ),
    )
    return 0 if counts["failed"] == 0 else 3


def _refine(engine: ExperienceEngine, args: argparse.Namespace) -> int:
    report = engine.refine()
    _emit(
        args,
        report.model_dump(),
        lambda: (
            f"merged {report.merged}, superseded {report.superseded}, archived {report.archived}, "
            f"decayed {report.decayed}; {report.before_count} -> {report.after_count} active "
            f"({report.before_tokens} -> {report.after_tokens} tokens) in {report.duration_s:.2f} s"
        ),
    )
    return 0


def _export(engine: ExperienceEngine, args: argparse.Namespace) -> int:
    from expscale_core.ops.transfer import export_jsonl

    with _progress(None, "exporting", args.json) as bar:
        n = export_jsonl(engine, args.file, progress=bar.update)
    _emit(args, {"exported": n, "file": str(args.file)}, lambda: f"exported {n} experiences to {args.file}")
    return 0


def _import(engine: ExperienceEngine, args: argparse.Namespace) -> int:
    from expscale_core.ops.transfer import import_jsonl

    with _progress(None, "importing", args.json) as bar:
        n = import_jsonl(engine, args.file, progress=bar.update)
    _emit(args, {"imported": n, "file": str(args.file)}, lambda: f"imported {n} experiences from {args.file}")
    return 0


def _episodes(engine: ExperienceEngine, args: argparse.Namespace) -> int:
    if args.dead_letters:
        dead = engine.queue.dead_letters(limit=args.limit)
        _emit(
            args,
            [{"id": i, "error": err, "input": text} for i, err, text in dead],
            lambda: "\n".join(f"{i}  {err[:100]}  {(text or '')[:60]!r}" for i, err, text in dead) or "no dead letters",
        )
        return 0
    status = EpisodeStatus(args.status) if args.status else None
    rows = engine.queue.list(status, limit=args.limit)
    _emit(
        args,
        [{"id": e.id, "status": e.status.value, "attempts": n, "error": err, "input": e.input} for e, err, n in rows],
        lambda: (
            "\n".join(
                f"{e.id}  {e.status.value:<9} {e.input[:60]!r}" + (f"  error: {err[:80]}" if err else "")
                for e, err, _ in rows
            )
            or "no episodes"
        ),
    )
    return 0


def _quarantine(engine: ExperienceEngine, args: argparse.Namespace) -> int:
    if args.release:
        n = engine.release(args.release)
        _emit(args, {"released": n}, lambda: f"released {n} experiences; they will be served")
        return 0
    held = engine.quarantined()
    _emit(
        args,
        [
            {"id": e.id, "reason": e.quarantine_reason, **e.model_dump(mode="json", include={"content", "scope"})}
            for e in held
        ],
        lambda: (
            "\n".join(f"{e.id}  [{e.quarantine_reason}]  {e.content[:100]!r}" for e in held) or "nothing in quarantine"
        ),
    )
    return 0


def _review(engine: ExperienceEngine, args: argparse.Namespace) -> int:
    if args.approve or args.reject:
        approved = engine.review.approve(args.approve or [], reviewer=args.reviewer)
        rejected = engine.review.reject(args.reject or [])
        result = {"approved": approved, "rejected": rejected}
        _emit(args, result, lambda: f"approved {approved} (now served and shared), rejected {rejected} (deleted)")
        return 0
    items = engine.review.pending(_parse_scope(args.scope) if args.scope else None)
    _emit(
        args,
        [
            {
                "id": i.experience.id,
                "reason": i.reason,
                "sources": i.sources,
                "deployments": i.experience.provenance.deployments,
                **i.experience.model_dump(mode="json", include={"content", "scope"}),
            }
            for i in items
        ],
        lambda: (
            "\n".join(
                f"{i.experience.id}  [{i.reason}]  {i.experience.scope.key()}  from {', '.join(i.sources)}\n"
                f"    {i.experience.content[:100]!r}"
                for i in items
            )
            or "nothing waits for review"
        ),
    )
    return 0


def _restore(engine: ExperienceEngine, args: argparse.Namespace) -> int:
    n = engine.restore(args.ids)
    _emit(args, {"restored": n}, lambda: f"restored {n} experiences")
    return 0


def _delete(engine: ExperienceEngine, args: argparse.Namespace) -> int:
    if args.scope:
        result = engine.delete(scope=_parse_scope(args.scope))
    else:
        result = engine.delete(episode_id=args.episode)
    _emit(args, result, lambda: f"deleted {result['experiences']} experiences and {result['episodes']} episodes")
    return 0


_COMMANDS: dict[str, Callable[[ExperienceEngine, argparse.Namespace], int]] = {
    "stats": _stats,
    "search": _search,
    "scopes": _scopes,
    "distill": _distill,
    "refine": _refine,
    "export": _export,
    "import": _import,
    "episodes": _episodes,
    "restore": _restore,
    "quarantine": _quarantine,
    "review": _review,
    "delete": _delete,
}


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return _run(args)
    except BrokenPipeError:
        # `expscale ... | head`: the reader left; end quietly instead of a traceback at interpreter exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except ValidationError as exc:
        print(f"expscale: error: {settings_error(exc)}", file=sys.stderr)
        return 2
    except PermissionError as exc:
        # An unwritable data dir is already a ConfigError naming --data-dir (factory); this is another file.
        print(f"expscale: error: no permission to use {exc.filename or 'a file'}; check the path", file=sys.stderr)
        return 2
    except (ExpscaleError, ValueError, FileNotFoundError) as exc:
        print(f"expscale: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
