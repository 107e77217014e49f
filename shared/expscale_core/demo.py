"""``expscale demo``: a support assistant learns from a stream of episodes, offline."""

from __future__ import annotations

import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from expscale_core.episode import Episode, Outcome, ToolStep
from expscale_core.errors import ConfigError
from expscale_core.experience import ExperienceStatus
from expscale_core.scope import Scope
from expscale_core.serve.inject import render_experience
from expscale_core.settings import ExpscaleSettings

__all__ = ["run_demo"]

_SCOPE = Scope(namespace="nimbus-support")


@dataclass(frozen=True)
class _Turn:
    question: str
    answer: str
    score: float
    correction: str | None = None


# A made-up product ("Nimbus Notes") so that nothing here is anyone's data. Several turns are paraphrases of
# one another: refinement should merge what they teach.
_STREAM = [
    _Turn(
        "How do I export my notes to PDF in Nimbus Notes?",
        "Use File > Print.",
        -1,
        "Open the notebook, then Share > Export > PDF; Print loses attachments.",
    ),
    _Turn("What is the attachment size limit in Nimbus Notes?", "10 MB", -1, "25 MB per file on the free plan"),
    _Turn("Can I restore a deleted note in Nimbus Notes?", "Yes, from Trash within 30 days.", 1),
    _Turn("Which keyboard shortcut creates a new note in Nimbus Notes?", "Ctrl+N", 1),
    _Turn(
        "How do I share a notebook with my team in Nimbus?",
        "Send them the file.",
        -1,
        "Notebook menu > Invite, then pick Editor or Viewer for each teammate.",
    ),
    _Turn("What is the max attachment size in Nimbus Notes?", "25 MB per file on the free plan", 1),
    _Turn("Does Nimbus Notes work offline?", "Yes; edits sync when you reconnect.", 1),
    _Turn("How can I get my notes out as a PDF in Nimbus?", "Share > Export > PDF", 1),
    _Turn("How long are deleted notes kept in Nimbus Notes?", "Forever.", -1, "30 days in Trash, then purged"),
    _Turn("What's the shortcut for a new note in Nimbus Notes?", "Ctrl+N", 1),
]

_QUERIES = [
    "how to turn a notebook into a pdf file",
    "biggest file I can attach to a note?",
    "how do I invite colleagues to a notebook",
    "I deleted a note by mistake, can I get it back?",
]


def _episodes() -> list[Episode]:
    episodes = [
        Episode(
            input=t.question,
            output=t.answer,
            outcome=Outcome(score=t.score, correction=t.correction),
            scope=_SCOPE,
        )
        for t in _STREAM
    ]
    # An error and its fix, learned without any LLM.
    episodes.append(
        Episode(
            input="Sync the notebook 'Q3 plans' to the cloud",
            output="Synced.",
            steps=[
                ToolStep(tool="sync_notebook", input={"name": "Q3 plans"}, error="NotFound: notebook ids are required"),
                ToolStep(tool="lookup_notebook", input={"name": "Q3 plans"}, output={"id": "nb_42"}),
                ToolStep(tool="sync_notebook", input={"id": "nb_42"}, output="ok"),
            ],
            outcome=Outcome(score=1),
            scope=_SCOPE,
        )
    )
    return episodes


_MARK = ".expscale-demo"


def run_demo(settings: ExpscaleSettings, out: TextIO, data_dir: Path | None = None) -> float:
    """Run the demo in ``data_dir`` (default ``<data_dir>/demo``), recreated each time; returns the wall time in
    seconds. A folder that holds anything but an earlier demo is refused, never cleared."""
    from expscale_core.engine import ExperienceEngine

    started = time.perf_counter()
    demo_dir = data_dir or settings.data_dir / "demo"
    if demo_dir.is_dir() and any(demo_dir.iterdir()) and not (demo_dir / _MARK).exists():
        raise ValueError(
            f"{demo_dir} holds data that is not an earlier demo, and the demo recreates its folder: "
            "pass --data-dir with a new or empty folder"
        )
    shutil.rmtree(demo_dir, ignore_errors=True)
    try:
        demo_dir.mkdir(parents=True)
        (demo_dir / _MARK).touch()
    except OSError as exc:
        raise ConfigError(
            f"the demo's data dir {demo_dir} is not writable ({exc.strerror or exc}); pass --data-dir with a folder "
            "this process can write"
        ) from exc
    # Its own data dir, so the demo never touches the user's experiences; the CLI reads it with --data-dir.
    store = settings.store.model_copy(update={"path": None, "url": None})
    demo_settings = settings.model_copy(update={"data_dir": demo_dir, "store": store})
    engine = ExperienceEngine.from_settings(demo_settings)
    with engine:
        print(f"embedder: {engine.embedder.model_id}   distiller: {engine.distiller.name}   data: {demo_dir}", file=out)
        for ep in _episodes():
            engine.record(ep)
        print(f"recorded {len(_STREAM) + 1} episodes; distilling in the background...", file=out)
        engine.drain(timeout=120)
        stats = engine.stats()
        print(
            f"learned {stats.experiences['active']} experiences from {stats.episodes['distilled']} episodes", file=out
        )

        print("\nretrieving for new questions:", file=out)
        for query in _QUERIES:
            hits = engine.retrieve(query, k=2, scope=_SCOPE)
            best = (
                f"{render_experience(hits[0].experience)}  (similarity {hits[0].similarity:.2f})"
                if hits
                else "(nothing relevant)"
            )
            print(f"  ? {query}\n    -> {best}", file=out)

        report = engine.refine()
        print(
            f"\nrefine: merged {report.merged}, superseded {report.superseded}, archived {report.archived}; "
            f"{report.before_count} -> {report.after_count} active experiences",
            file=out,
        )
        print("\nwhat the store knows now:", file=out)
        for exp, _ in engine.store.scan(scope=_SCOPE, statuses=[ExperienceStatus.ACTIVE]):
            print(f"  {render_experience(exp)}  (support {exp.support})", file=out)
    elapsed = time.perf_counter() - started
    print(f"\ndemo finished in {elapsed:.1f} s. Look at its store with:", file=out)
    prog = _prog()
    print(f"  {prog} --data-dir {demo_dir} stats", file=out)
    print(f"  {prog} --data-dir {demo_dir} scopes", file=out)
    print(f"  {prog} --data-dir {demo_dir} search {_QUERIES[0]!r} --scope {_SCOPE.namespace}", file=out)
    return elapsed


def _prog() -> str:
    """``expscale`` as the user can run it: by name when it is on PATH, else by the path it was started from
    (``.venv/bin/expscale`` after ``make demo``)."""
    started = Path(sys.argv[0])
    on_path = shutil.which("expscale")
    if started.name == "expscale" and (on_path is None or Path(on_path).resolve() != started.resolve()):
        try:
            return str(started.resolve().relative_to(Path.cwd()))
        except ValueError:
            return str(started.resolve())
    return "expscale"
