"""A soak of many engines on one store: every writer path at once, then the invariants a shared memory owes.

Used by ``tests/test_sharing.py`` (seconds) and ``benchmarks/soak_sharing.py`` (minutes). Each engine has its own
queue, as a separate process would; they share one store object with random delays around its calls, so that
engines interleave between a read and the write that depends on it, as over a network. Each engine's thread mixes:

- teaching lessons every engine teaches identically (one record each, whoever wins), and lessons of its own;
- serving a lesson of the never-deleted ``ledger`` scope and rating the run (credit flushes race each other);
- teaching a lesson, then deleting the episode that taught it;
- opening a scope that several engines write into, then deleting the whole scope while others' episodes for it
  are still queued;
- refining (one refiner at a time, through the store's lease).

Afterwards every engine drains its queue, and :func:`soak` reports what would be a violation, each of which must be
zero: duplicate records, lost serves or ratings, records brought back from deleted episodes or scopes, failed
episodes, aborted refines, overlapping refines, lease epochs that did not increase, exceptions.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from expscale_core import Episode, ExperienceStatus
from expscale_core.engine import ExperienceEngine
from expscale_core.refine.refiner import RefineReport
from expscale_core.settings import RefineSettings
from expscale_core.store.base import ExperienceStore
from expscale_core.testing import make_engine

__all__ = ["Laggy", "SoakReport", "soak"]

_SUBJECTS = (
    "the VPN port of the Oslo office",
    "the fire drill day in Lyon",
    "the printer queue for legal",
    "the parking badge color for visitors",
    "the backup window of the billing database",
    "the on-call pager number for storage",
    "the wiki space for onboarding",
    "the cafeteria closing time on Fridays",
    "the code name of the mobile rewrite",
    "the owner of the payroll service",
    "the retention period for audit logs",
    "the default branch of the infra repo",
)


class Laggy:
    """The shared store with a few milliseconds around every read and write, as a network adds. It also logs the
    refine lease: when each tenure was surely held (from its grant returning to its release being called), to check
    that tenures never overlap and that epochs only grow."""

    def __init__(self, inner: ExperienceStore, delay_s: float = 0.003) -> None:
        self.inner = inner
        self.delay_s = delay_s
        self.tenures: dict[tuple[str, int], list[float]] = {}
        """(holder, epoch) -> [surely held from, surely held until]"""
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.inner, name)
        if name == "release_lease":

            def release(lease: str, holder: str, epoch: int) -> None:
                with self._lock:
                    if (holder, epoch) in self.tenures:
                        self.tenures[holder, epoch][1] = time.monotonic()
                attr(lease, holder, epoch)

            return release
        if name not in ("get", "scan", "search", "upsert", "update", "insert_new", "write_if", "acquire_lease"):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            time.sleep(random.uniform(0, self.delay_s))
            result = attr(*args, **kwargs)
            if name == "scan":
                result = list(result)
            if name == "acquire_lease" and result is not None:
                with self._lock:  # a renewal keeps the tenure it renews
                    self.tenures.setdefault((args[1], result), [time.monotonic(), float("inf")])
            time.sleep(random.uniform(0, self.delay_s))
            return result

        return call


@dataclass
class SoakReport:
    engines: int
    seconds: float
    ops: Counter[str] = field(default_factory=Counter)
    duplicates: int = 0
    lost_serves: int = 0
    lost_ratings: int = 0
    ledger_merges: int = 0
    """Ledger records merged by a refine (their counts are then checked on the keeper only): expected 0."""
    resurrected_episodes: int = 0
    resurrected_scopes: int = 0
    failed_episodes: int = 0
    aborted_refines: int = 0
    overlapping_refines: int = 0
    epochs_not_increasing: int = 0
    refines_run: int = 0
    refines_skipped: int = 0
    refine_conflicts: int = 0
    errors: list[str] = field(default_factory=list)

    def violations(self) -> dict[str, int]:
        return {
            "duplicates": self.duplicates,
            "lost_serves": self.lost_serves,
            "lost_ratings": self.lost_ratings,
            "resurrected_episodes": self.resurrected_episodes,
            "resurrected_scopes": self.resurrected_scopes,
            "failed_episodes": self.failed_episodes,
            "aborted_refines": self.aborted_refines,
            "overlapping_refines": self.overlapping_refines,
            "epochs_not_increasing": self.epochs_not_increasing,
            "errors": len(self.errors),
        }


class _World:
    """What the threads share: the bookkeeping the invariants are checked against."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.served: Counter[str] = Counter()
        self.rated: Counter[str] = Counter()
        self.deleted_episodes: set[str] = set()
        self.deleted_scopes: set[str] = set()
        self.open_scopes: list[str] = []
        self.refines: list[RefineReport] = []
        self.ops: Counter[str] = Counter()
        self.errors: list[str] = []
        self.scopes_made = 0


def _teach(engine: ExperienceEngine, question: str, answer: str, scope: str) -> str:
    eid = engine.record(Episode(input=question, output="not sure"), scope=scope)
    engine.feedback(eid, -1, correction=answer, scope=scope)
    return eid


def _step(engine: ExperienceEngine, me: int, world: _World, rng: random.Random) -> None:
    roll = rng.random()
    if roll < 0.25:  # a lesson every engine teaches, word for word
        i = rng.randrange(len(_SUBJECTS))
        _teach(engine, f"What is {_SUBJECTS[i]}?", f"It is setting number {100 + i}.", "shared")
        op = "teach-identical"
    elif roll < 0.35:
        n = rng.randrange(1_000_000)
        _teach(engine, f"Which desk does contractor {me}-{n} use?", f"Desk {me}-{n} on floor {n % 9}.", "shared")
        op = "teach-own"
    elif roll < 0.65:  # serve a ledger lesson and rate the run
        i = rng.randrange(len(_SUBJECTS))
        eid = f"serve-{me}-{rng.randrange(10**12)}"
        hits = engine.retrieve(f"What is {_SUBJECTS[i]}?", k=1, scope="ledger", episode_id=eid)
        if hits:
            engine.feedback(eid, 1, scope="ledger")
            with world.lock:
                world.served[hits[0].experience.id] += 1
                world.rated[hits[0].experience.id] += 1
        op = "serve"
    elif roll < 0.75:  # teach, learn, then take it back
        n = rng.randrange(1_000_000)
        eid = _teach(engine, f"Temporary rule {me}-{n}?", f"Rule {me}-{n} applies until further notice.", "shared")
        engine.run_pending()
        engine.delete(episode_id=eid)
        with world.lock:
            world.deleted_episodes.add(eid)
        op = "delete-episode"
    elif roll < 0.87:  # write into a scope others write into; sometimes delete it while their episodes queue
        with world.lock:
            if world.open_scopes and rng.random() < 0.6:
                scope = rng.choice(world.open_scopes)
                # Recording holds the lock, so a delete either precedes this episode or sees it queued.
                n = rng.randrange(1_000_000)
                _teach(engine, f"Project detail {n} for {scope}?", f"Detail {n} of {scope} is final.", scope)
                op = "teach-scope"
            elif world.open_scopes and rng.random() < 0.5:
                scope = world.open_scopes.pop(rng.randrange(len(world.open_scopes)))
                world.deleted_scopes.add(scope)
                op = "delete-scope"
            else:
                world.scopes_made += 1
                world.open_scopes.append(f"project-{world.scopes_made}")
                op = "open-scope"
        if op == "delete-scope":
            engine.delete(scope=scope)
    else:
        report = engine.refine()
        with world.lock:
            world.refines.append(report)
        op = "refine"
    if rng.random() < 0.5:
        engine.run_pending()
    with world.lock:
        world.ops[op] += 1


MIX = ("teach-identical", "serve", "delete-episode", "delete-scope", "refine")
"""The operations a soak must have run for its invariants to mean something."""


def _mix_ran(world: _World) -> bool:
    """Every writer path ran, and refines both ran and were turned away by another engine's lease."""
    with world.lock:
        skipped = [r.skipped for r in world.refines]
        return all(world.ops[op] > 0 for op in MIX) and any(skipped) and not all(skipped)


def _seed_ledger(engine: ExperienceEngine) -> None:
    for i, subject in enumerate(_SUBJECTS):
        _teach(engine, f"What is {subject}?", f"The ledger says {subject} is entry {i}.", "ledger")
    engine.run_pending()


class _QuietServes(logging.Filter):
    """A served-and-rated run that taught nothing is rated without being recorded; the engine's note that the
    episode is not recorded (yet) is expected here, thousands of times."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "which is not recorded (yet)" not in str(record.msg)


def soak(
    inner: ExperienceStore,
    *,
    engines: int = 8,
    seconds: float = 5.0,
    delay_s: float = 0.003,
    seed: int = 7,
) -> SoakReport:
    """Run the mix for ``seconds`` (longer, up to four times, until every path of it ran) on ``engines`` engines
    over ``inner`` (empty; the caller closes it), then check the invariants. The report says how long it ran."""
    quiet = _QuietServes()
    logging.getLogger("expscale_core.engine").addFilter(quiet)
    try:
        return _soak(inner, engines=engines, seconds=seconds, delay_s=delay_s, seed=seed)
    finally:
        logging.getLogger("expscale_core.engine").removeFilter(quiet)


def _soak(inner: ExperienceStore, *, engines: int, seconds: float, delay_s: float, seed: int) -> SoakReport:
    shared = Laggy(inner, delay_s)
    settings = RefineSettings(every_n_experiences=None, every_s=None, duplicate_threshold=0.97, induce_rules=False)
    fleet = [
        make_engine(store=shared, autostart=False, refine=settings, deployment=f"host-{n}")  # type: ignore[arg-type]
        for n in range(engines)
    ]
    world = _World()
    _seed_ledger(fleet[0])
    deadline = time.monotonic() + seconds
    hard_deadline = deadline + 3 * seconds

    def go_on() -> bool:
        # The mix must have run (see _mix_ran); a loaded machine gets there later, so the soak goes on past
        # ``seconds``, up to four times as long, until it has.
        now = time.monotonic()
        return now < deadline or (now < hard_deadline and not _mix_ran(world))

    def run(me: int) -> None:
        rng = random.Random(seed * 1000 + me)
        while go_on():
            try:
                _step(fleet[me], me, world, rng)
            except Exception as exc:  # every one is a finding: nothing here may raise
                with world.lock:
                    world.errors.append(f"engine {me}: {type(exc).__name__}: {exc}")

    started = time.monotonic()
    threads = [threading.Thread(target=run, args=(n,)) for n in range(engines)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ran_s = time.monotonic() - started
    for engine in fleet:  # what lost a race waits, with a short backoff, for a later step
        if not engine.drain(timeout=60):
            world.errors.append("an engine did not drain its queue in 60 s")
    report = _check(inner, shared, fleet, world, ran_s)
    for engine in fleet:
        engine._worker.stop()
        engine.queue.close()
    return report


def _check(
    store: ExperienceStore, shared: Laggy, fleet: list[ExperienceEngine], world: _World, seconds: float
) -> SoakReport:
    report = SoakReport(len(fleet), seconds, world.ops, errors=list(world.errors))
    everything = [e for e, _ in store.scan()]
    active = [e for e in everything if e.status == ExperienceStatus.ACTIVE]
    by_content = Counter((e.scope.key(), e.content) for e in active)
    report.duplicates = sum(n - 1 for n in by_content.values() if n > 1)
    ledger = {e.id: e for e in everything if e.scope.namespace == "ledger"}
    report.ledger_merges = sum(e.status != ExperienceStatus.ACTIVE for e in ledger.values())
    for eid, n in world.served.items():
        record = ledger.get(eid)
        report.lost_serves += max(0, n - (record.times_retrieved if record else 0))
    for eid, n in world.rated.items():
        record = ledger.get(eid)
        report.lost_ratings += max(0, n - (record.helpful if record else 0))
    report.resurrected_episodes = sum(
        bool(world.deleted_episodes & set(e.provenance.source_episode_ids)) for e in everything
    )
    report.resurrected_scopes = sum(e.scope.namespace in world.deleted_scopes for e in everything)
    report.failed_episodes = sum(e.queue.counts().get("failed", 0) for e in fleet)
    ran = [r for r in world.refines if not r.skipped]
    report.refines_run, report.refines_skipped = len(ran), len(world.refines) - len(ran)
    report.aborted_refines = sum(r.aborted for r in ran)
    report.refine_conflicts = sum(r.conflicts for r in world.refines)
    tenures = sorted((start, end, epoch) for (_, epoch), (start, end) in shared.tenures.items())
    report.overlapping_refines = sum(b[0] < a[1] for a, b in zip(tenures, tenures[1:]))
    report.epochs_not_increasing = sum(b[2] <= a[2] for a, b in zip(tenures, tenures[1:]))
    return report
