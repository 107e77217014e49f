"""The ``sharing`` experiment: K frontends with different readers learn from their own traffic.

The house-rule families of ``conventions`` are dealt out to the frontends: each frontend is taught (answers, is
checked, is corrected) only on its own families, the way one app server sees only its own users. Then every
frontend answers every family's test requests. Three arms:

- ``none``: no memory;
- ``isolated``: each frontend has its own store, so it can only know what its own traffic taught it;
- ``shared``: every frontend has its own engine and queue (its own process, in a deployment) on *one* store, each
  engine stamping its deployment name on what it learns.

The gain from sharing is read off the other frontends' families; negative transfer off the frontend's own families
(did others' lessons crowd out or contradict its own?) and off regressions against ``none``.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

from expscale_core.distill.base import Distiller
from expscale_core.distill.llm_distiller import LLMDistiller
from expscale_core.distill.rules import RulesDistiller
from expscale_core.embed.base import Embedder
from expscale_core.engine import ExperienceEngine
from expscale_core.episode import Episode, utcnow
from expscale_core.episodes.queue import EpisodeQueue
from expscale_core.eval.conventions import FAMILIES, Family, Style, held_out_tasks, teaching_tasks
from expscale_core.eval.readers import Reader
from expscale_core.eval.runner import EvalConfig
from expscale_core.eval.scenarios import Task
from expscale_core.llm import LLM
from expscale_core.settings import DistillSettings, RefineSettings, RetrieveSettings
from expscale_core.store.base import ExperienceStore
from expscale_core.store.edge import EdgeExperienceStore

__all__ = ["SHARING_ARMS", "Frontend", "FrontendResult", "SharingResult", "deal_families", "run_sharing"]

SHARING_ARMS = ("none", "isolated", "shared")


@dataclass(frozen=True)
class Frontend:
    """One deployment: a name (stamped as the experiences' deployment) and the model that answers its users."""

    name: str
    reader: Reader


@dataclass
class FrontendResult:
    name: str
    reader: str
    families: list[str]
    """The families this frontend was taught (its own traffic)."""
    test_families: list[str] = field(default_factory=list)
    """Per test, in order: the family it belongs to."""
    correct: dict[str, list[bool]] = field(default_factory=dict)
    """Per arm, per test: answered right."""
    recalled: dict[str, list[bool]] = field(default_factory=dict)
    """Per arm, per test: a lesson taught on the test's family (by anyone) reached the prompt."""
    taught_wrong: int = 0
    """Teaching rounds this frontend answered wrong (and was corrected) in the shared arm."""

    def own(self) -> list[bool]:
        return [f in self.families for f in self.test_families]

    def right(self, arm: str, *, own: bool | None = None) -> tuple[int, int]:
        """(right, asked) for ``arm``, over all tests or only the own (``True``) / others' (``False``) families."""
        picks = [ok for ok, mine in zip(self.correct[arm], self.own(), strict=True) if own is None or mine == own]
        return sum(picks), len(picks)

    def changed(self, arm: str, baseline: str, *, own: bool | None = None) -> tuple[int, int]:
        """(improved, regressed) tests of ``arm`` against ``baseline``."""
        pairs = [
            (a, b)
            for a, b, mine in zip(self.correct[arm], self.correct[baseline], self.own(), strict=True)
            if own is None or mine == own
        ]
        return sum(a and not b for a, b in pairs), sum(b and not a for a, b in pairs)


@dataclass
class SharingResult:
    style: str
    seed: int
    distiller: str
    embedder: str
    config: EvalConfig
    frontends: list[FrontendResult]
    lessons_by_deployment: dict[str, int] = field(default_factory=dict)
    """Shared arm: active experiences in the one store, by the deployment that taught them."""
    wall_s: float = 0.0
    date: str = field(default_factory=lambda: utcnow().strftime("%Y-%m-%d"))

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def deal_families(k: int, *, seed: int, limit: int | None = None) -> list[list[Family]]:
    """Deal the families out to ``k`` frontends, round robin after a seeded shuffle: disjoint, sizes differ by at
    most one."""
    if k < 1:
        raise ValueError(f"the sharing experiment needs at least one frontend, got {k}")
    families = list(FAMILIES[:limit] if limit else FAMILIES)
    if len(families) < k:
        raise ValueError(f"{len(families)} families cannot be dealt to {k} frontends: raise --limit or pass fewer")
    random.Random(seed).shuffle(families)
    return [families[i::k] for i in range(k)]


def _teaching(dealt: Sequence[Sequence[Family]], style: Style, seed: int) -> list[tuple[int, Task]]:
    """(frontend index, task) for every teaching request, frontends interleaved as concurrent traffic would be."""
    rng = random.Random(seed + 1)
    queues = []
    for families in dealt:
        tasks = teaching_tasks(families, style)
        rng.shuffle(tasks)
        queues.append(tasks)
    stream: list[tuple[int, Task]] = []
    for i in range(max(len(q) for q in queues)):
        stream += [(n, q[i]) for n, q in enumerate(queues) if i < len(q)]
    return stream


def _tests(dealt: Sequence[Sequence[Family]], seed: int) -> list[Task]:
    tests = held_out_tasks([f for families in dealt for f in families])
    random.Random(seed + 2).shuffle(tests)
    return tests


def _engine(
    store: ExperienceStore, embedder: Embedder, distiller: Distiller, config: EvalConfig, deployment: str
) -> ExperienceEngine:
    return ExperienceEngine(
        store=store,
        embedder=embedder,
        distiller=distiller,
        queue=EpisodeQueue(":memory:"),
        retrieve_settings=RetrieveSettings(k=config.k, min_score=config.min_score, token_budget=config.token_budget),
        distill_settings=DistillSettings(delay_s=0, idle_s=0),
        refine_settings=RefineSettings(every_n_experiences=None, every_s=None),
        autostart=False,
        deployment=deployment,
    )


def _engines(
    arm: str, frontends: Sequence[Frontend], embedder: Embedder, llm: LLM | None, config: EvalConfig
) -> list[ExperienceEngine]:
    def store() -> ExperienceStore:
        s = EdgeExperienceStore.temporary()
        s.ensure_collection(embedder.dimension)
        return s

    one = store() if arm == "shared" else None
    return [
        _engine(
            one or store(),
            embedder,
            LLMDistiller(llm) if llm is not None else RulesDistiller(),
            config,
            f.name,
        )
        for f in frontends
    ]


def _ask(engine: ExperienceEngine | None, reader: Reader, task: Task, eid: str) -> tuple[bool, set[str]]:
    hits = engine.retrieve(task.question, episode_id=eid) if engine is not None else []
    memory = engine.format(hits) if engine is not None else ""
    answer = reader.answer(task.question, memory, task.answers)
    return task.check(answer), {s for h in hits for s in h.experience.provenance.source_episode_ids}


def run_sharing(
    frontends: Sequence[Frontend],
    embedder: Embedder,
    *,
    style: Style = "answer",
    seed: int = 13,
    limit: int | None = None,
    llm: LLM | None = None,
    config: EvalConfig | None = None,
    arms: Sequence[str] = SHARING_ARMS,
    progress: Callable[[int], object] | None = None,
) -> SharingResult:
    """Teach each frontend its own families, then test every frontend on every family, in each arm.

    ``llm`` distills (else the rules distiller); readers are the frontends' own. Every arm sees the same tasks in
    the same order, and the arms run one after another so they never share a model's cache or a store."""
    if len({f.name for f in frontends}) != len(frontends):
        raise ValueError("frontend names must differ: each is stamped as a deployment on what it teaches")
    unknown = [a for a in arms if a not in SHARING_ARMS]
    if unknown:
        raise ValueError(f"unknown sharing arm(s) {', '.join(unknown)}; choose from {', '.join(SHARING_ARMS)}")
    config = config or EvalConfig()
    dealt = deal_families(len(frontends), seed=seed, limit=limit)
    teaching, tests = _teaching(dealt, style, seed), _tests(dealt, seed)
    results = [
        FrontendResult(f.name, f.reader.name, [x.name for x in dealt[n]], [t.group for t in tests])
        for n, f in enumerate(frontends)
    ]
    outcome = SharingResult(style, seed, f"llm:{llm.model_id}" if llm else "rules", embedder.model_id, config, results)
    started = time.perf_counter()
    for arm in arms:
        engines = _engines(arm, frontends, embedder, llm, config) if arm != "none" else []
        try:
            group_of: dict[str, str] = {}
            for i, (n, task) in enumerate(teaching if engines else []):
                eid = f"{frontends[n].name}-teach-{i}"
                engine = engines[n]
                hits = engine.retrieve(task.question, episode_id=eid)
                answer = frontends[n].reader.answer(task.question, engine.format(hits), task.answers)
                ok = task.check(answer)
                engine.record(Episode(id=eid, input=task.question, output=answer))
                engine.feedback(
                    eid, 1.0 if ok else -1.0, None if ok else "wrong", correction=None if ok else task.solution
                )
                group_of[eid] = task.group
                results[n].taught_wrong += arm == "shared" and not ok
                engine.run_pending()
                if progress is not None:
                    progress(1)
            for n, frontend in enumerate(frontends):
                correct, recalled = [], []
                for j, task in enumerate(tests):
                    ok, sources = _ask(engines[n] if engines else None, frontend.reader, task, f"{frontend.name}-{j}")
                    correct.append(ok)
                    recalled.append(any(group_of.get(s) == task.group for s in sources))
                    if progress is not None:
                        progress(1)
                results[n].correct[arm], results[n].recalled[arm] = correct, recalled
            if arm == "shared" and engines:
                figures = engines[0].stats().deployments
                outcome.lessons_by_deployment = {name: d.active for name, d in sorted(figures.items())}
        finally:
            # In the shared arm the first close closes the one store: everyone's credit goes in before it.
            for engine in engines:
                engine.run_pending()
            for engine in engines:
                engine.close()
    outcome.wall_s = time.perf_counter() - started
    return outcome


def rounds(frontends: int, *, limit: int | None = None, arms: Sequence[str] = SHARING_ARMS) -> int:
    """How many reader calls :func:`run_sharing` makes (for a progress bar)."""
    families = list(FAMILIES[:limit] if limit else FAMILIES)
    teach = sum(len(f.teach) for f in families)
    tests = sum(len(f.test) for f in families) * frontends
    return sum(tests + (teach if arm != "none" else 0) for arm in arms)
