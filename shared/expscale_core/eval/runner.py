"""The environment loop: each round retrieve, answer with memory, check against gold, give feedback, learn."""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import asdict, dataclass, field

from expscale_core.distill.base import Action, Decision, Distiller
from expscale_core.distill.llm_distiller import LLMDistiller
from expscale_core.distill.render import render_episode
from expscale_core.distill.rules import RulesDistiller
from expscale_core.embed.base import Embedder
from expscale_core.engine import ExperienceEngine
from expscale_core.episode import Episode, utcnow
from expscale_core.episodes.queue import EpisodeQueue
from expscale_core.eval.methods import numeric_correct
from expscale_core.eval.readers import Reader, is_correct
from expscale_core.eval.scenarios import Task
from expscale_core.experience import Experience, ExperienceKind, ExperienceStatus
from expscale_core.llm import LLM
from expscale_core.refine.induce import INDUCE_PROMPT_VERSION
from expscale_core.scoring import count_tokens
from expscale_core.settings import DistillSettings, RefineSettings, RetrieveSettings
from expscale_core.store.edge import EdgeExperienceStore

__all__ = [
    "ARMS",
    "DISTILLER_ARMS",
    "ArmResult",
    "EvalConfig",
    "RawDistiller",
    "ScenarioResult",
    "run_arm",
    "run_scenario",
]

ARMS = ("none", "raw", "expscale-norefine", "expscale")
"""The default arms: the distiller of the ``expscale*`` arms is the LLM with ``--distill-llm``, else rules."""
DISTILLER_ARMS = ("rules", "llm", "llm-refine")
"""Arms that name their distiller, so one run compares them: rules (refined), LLM, LLM with refinement."""
_LLM_ARMS = ("llm", "llm-refine")
_REFINING = ("expscale", "rules", "llm-refine")


@dataclass(frozen=True)
class EvalConfig:
    """Knobs shared by every arm of a run, so arms differ only in what they remember and how."""

    k: int = 5
    min_score: float = 0.3
    token_budget: int = 400
    capacity: int | None = None
    """Active-experience cap. ``expscale`` enforces it by refinement (utility); the other arms first-in, first-out."""
    refine_every: int = 25
    refine_before_tests: bool = False
    """Refining arms refine once where the stream turns from teaching to testing, as a deployment's periodic
    refine would between yesterday's corrections and today's requests (``conventions``: all teaching comes first)."""
    duplicate_threshold: float = 0.9
    windows: int = 10


class RawDistiller:
    """The ``raw`` arm: every episode is stored as it is, like a chat-log vector memory. No decisions, no dedupe."""

    name = "raw"
    prompt_version = None

    def distill(
        self,
        episode: Episode,
        similar: Sequence[tuple[Experience, float]],
        *,
        served: Collection[str] = (),
    ) -> list[Decision]:
        return [Decision(Action.ADD, kind=ExperienceKind.FACT, content=render_episode(episode))]


@dataclass
class ArmResult:
    arm: str
    accuracy: float
    recall_at_k: float
    window_accuracy: list[float]
    window_end_round: list[int]
    store_rounds: list[int] = field(default_factory=list)
    store_count: list[int] = field(default_factory=list)
    store_bytes: list[int] = field(default_factory=list)
    store_tokens: list[int] = field(default_factory=list)
    distilled_episodes: int = 0
    llm_calls_per_episode: float = 0.0
    llm_tokens_per_episode: float = 0.0
    llm_calls_per_corrected: float = 0.0
    """LLM calls per episode that received a correction (the rule, its replay, any corrective retry)."""
    llm_calls_per_uncorrected: float = 0.0
    retrieve_p50_ms: float = 0.0
    retrieve_p95_ms: float = 0.0
    wall_s: float = 0.0
    n_test: int = 0
    distill_s_per_episode: float = 0.0
    """Wall seconds of background work (distillation, credit, refinement) per distilled episode."""
    yielded: float = 0.0
    """Share of recorded episodes that are a source of at least one experience."""
    failed: float = 0.0
    repaired: float = 0.0
    """Share of recorded episodes whose experience needed its bookkeeping repaired."""
    test_correct: list[bool] = field(default_factory=list)
    """Per test round, in order: answered right. Compared arm by arm (improved / regressed against none)."""
    test_recalled: list[bool] = field(default_factory=list)
    """Per test round: a lesson from its own group was injected (tells retrieval from reading failures)."""
    induced_rules: int = 0
    """Rules refinement induced from several verified examples (any status at the end of the run)."""


@dataclass
class ScenarioResult:
    scenario: str
    reader: str
    embedder: str
    distiller: str
    dataset: str
    n_tasks: int
    n_teach: int
    n_test: int
    n_flood: int
    seed: int
    config: EvalConfig
    arms: dict[str, ArmResult]
    date: str = field(default_factory=lambda: utcnow().strftime("%Y-%m-%d"))

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def _engine(arm: str, config: EvalConfig, embedder: Embedder, llm: LLM | None) -> ExperienceEngine | None:
    if arm == "none":
        return None
    distiller: Distiller
    if arm in _LLM_ARMS and llm is None:
        raise ValueError(f"arm {arm!r} distills with an LLM: pass --distill-llm with EXPSCALE_LLM__* set")
    if arm == "raw":
        distiller = RawDistiller()
    elif arm == "rules" or (arm not in _LLM_ARMS and llm is None):
        distiller = RulesDistiller()
    else:
        assert llm is not None
        distiller = LLMDistiller(llm)
    refining = arm in _REFINING
    store = EdgeExperienceStore.temporary()
    store.ensure_collection(embedder.dimension)
    return ExperienceEngine(
        store=store,
        embedder=embedder,
        distiller=distiller,
        queue=EpisodeQueue(":memory:"),
        llm=llm if refining and arm != "rules" else None,
        retrieve_settings=RetrieveSettings(k=config.k, min_score=config.min_score, token_budget=config.token_budget),
        distill_settings=DistillSettings(delay_s=0, idle_s=0, similar_k=0 if arm == "raw" else 5),
        refine_settings=RefineSettings(
            every_n_experiences=config.refine_every if refining else None,
            every_s=None,
            duplicate_threshold=config.duplicate_threshold,
            max_experiences=config.capacity if refining else None,
        ),
        autostart=False,
    )


def _fifo_cap(engine: ExperienceEngine, cap: int) -> None:
    """The cap without refinement: archive the oldest active entries, as a ring-buffer memory would."""
    active = sorted((e for e, _ in engine.store.scan(statuses=[ExperienceStatus.ACTIVE])), key=lambda e: e.created_at)
    excess = active[: max(0, len(active) - cap)]
    engine.store.update([e.model_copy(update={"status": ExperienceStatus.ARCHIVED}) for e in excess])


def _store_size(engine: ExperienceEngine | None) -> tuple[int, int, int]:
    if engine is None:
        return 0, 0, 0
    contents = [e.content for e, _ in engine.store.scan(statuses=[ExperienceStatus.ACTIVE])]
    return len(contents), sum(len(c.encode()) for c in contents), sum(count_tokens(c) for c in contents)


def _windows(flags: Sequence[bool], rounds: Sequence[int], n: int) -> tuple[list[float], list[int]]:
    if not flags:
        return [], []
    size = max(1, -(-len(flags) // n))
    acc, ends = [], []
    for start in range(0, len(flags), size):
        chunk = flags[start : start + size]
        acc.append(sum(chunk) / len(chunk))
        ends.append(rounds[start + len(chunk) - 1])
    return acc, ends


def _percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def run_arm(
    arm: str,
    tasks: Sequence[Task],
    reader: Reader,
    config: EvalConfig,
    embedder: Embedder,
    *,
    llm: LLM | None = None,
    progress: Callable[[int], object] | None = None,
) -> ArmResult:
    """One arm over the whole stream. Every arm sees the same tasks in the same order."""
    if arm not in (*ARMS, *DISTILLER_ARMS):
        raise ValueError(f"unknown arm {arm!r}; choose from {', '.join((*ARMS, *DISTILLER_ARMS))}")
    engine = _engine(arm, config, embedder, llm)
    calls_before = (llm.usage.calls, llm.usage.prompt_tokens + llm.usage.completion_tokens) if llm else (0, 0)
    group_of: dict[str, str] = {}
    correct: list[bool] = []
    recalled: list[bool] = []
    test_rounds: list[int] = []
    latencies: list[float] = []
    result = ArmResult(arm, 0.0, 0.0, [], [])
    snapshot_every = max(1, len(tasks) // 40)
    background_s = 0.0
    calls_by_kind: dict[bool, list[int]] = {True: [], False: []}  # corrected? -> calls of each such round
    started = time.perf_counter()
    refining = arm in _REFINING
    for i, task in enumerate(tasks):
        eid = f"round-{i}"
        ok = True
        turning = task.role == "test" and i > 0 and tasks[i - 1].role != "test"
        if engine is not None and refining and config.refine_before_tests and turning:
            t0 = time.perf_counter()
            engine.refine()
            background_s += time.perf_counter() - t0
        if task.role == "flood":
            if engine is not None:
                engine.record(Episode(id=eid, input=task.question, output=task.answers[0]))
                engine.feedback(eid, 1.0)
                group_of[eid] = task.group
        else:
            hits = []
            if engine is not None:
                t0 = time.perf_counter()
                hits = engine.retrieve(task.question, episode_id=eid)
                latencies.append(time.perf_counter() - t0)
            memory = engine.format(hits) if engine is not None else ""
            answer = reader.answer(task.question, memory, task.answers)
            if task.expect is not None:
                ok = task.check(answer)
            else:
                ok = numeric_correct(answer, task.answers) if task.numeric else is_correct(answer, task.answers)
            if task.role == "test":
                correct.append(ok)
                test_rounds.append(i)
                sources = {s for h in hits for s in h.experience.provenance.source_episode_ids}
                recalled.append(any(group_of.get(s) == task.group for s in sources))
            if engine is not None and task.learn:
                engine.record(Episode(id=eid, input=task.question, output=answer))
                engine.feedback(
                    eid,
                    1.0 if ok else -1.0,
                    None if ok else "wrong",
                    correction=None if ok else (task.solution or task.answers[0]),
                )
                group_of[eid] = task.group
        if engine is not None:
            t0 = time.perf_counter()
            calls = llm.usage.calls if llm is not None else 0
            engine.run_pending()
            background_s += time.perf_counter() - t0
            if llm is not None and (task.role == "flood" or task.learn):
                corrected = task.role != "flood" and not ok
                calls_by_kind[corrected].append(llm.usage.calls - calls)
            if arm != "expscale" and config.capacity is not None and i % config.refine_every == 0:
                _fifo_cap(engine, config.capacity)
        if i % snapshot_every == 0 or i == len(tasks) - 1:
            count, size, tokens = _store_size(engine)
            result.store_rounds.append(i)
            result.store_count.append(count)
            result.store_bytes.append(size)
            result.store_tokens.append(tokens)
        if progress is not None:
            progress(1)
    result.wall_s = time.perf_counter() - started
    result.test_correct, result.test_recalled = list(correct), list(recalled)
    result.n_test = len(correct)
    result.accuracy = sum(correct) / len(correct) if correct else 0.0
    result.recall_at_k = sum(recalled) / len(recalled) if recalled else 0.0
    result.window_accuracy, result.window_end_round = _windows(correct, test_rounds, config.windows)
    result.retrieve_p50_ms = _percentile(latencies, 0.5)
    result.retrieve_p95_ms = _percentile(latencies, 0.95)
    if engine is not None:
        counts = engine.queue.counts()
        result.distilled_episodes = counts["distilled"]
        recorded = max(1, sum(counts.values()))
        everything = [e for e, _ in engine.store.scan()]
        sources = {s for e in everything for s in e.provenance.source_episode_ids}
        fixed = {s for e in everything if e.provenance.repairs for s in e.provenance.source_episode_ids}
        result.yielded = len(sources) / recorded
        result.induced_rules = sum(e.provenance.prompt_version == INDUCE_PROMPT_VERSION for e in everything)
        result.repaired = len(fixed) / recorded
        result.failed = counts.get("failed", 0) / recorded
        result.distill_s_per_episode = background_s / max(1, result.distilled_episodes)
        if llm is not None and arm in ("expscale", "expscale-norefine", *_LLM_ARMS):
            calls = llm.usage.calls - calls_before[0]
            tokens = llm.usage.prompt_tokens + llm.usage.completion_tokens - calls_before[1]
            result.llm_calls_per_episode = calls / max(1, result.distilled_episodes)
            result.llm_tokens_per_episode = tokens / max(1, result.distilled_episodes)
            for corrected, per_round in calls_by_kind.items():
                mean = sum(per_round) / max(1, len(per_round))
                if corrected:
                    result.llm_calls_per_corrected = mean
                else:
                    result.llm_calls_per_uncorrected = mean
        engine.close()
    return result


def _distiller_label(arms: Sequence[str], llm: LLM | None) -> str:
    if llm is None:
        return "rules"
    if "rules" in arms:
        return f"by arm: rules, llm:{llm.model_id}"
    return f"llm:{llm.model_id}"


def run_scenario(
    scenario: str,
    tasks: Sequence[Task],
    reader: Reader,
    config: EvalConfig,
    embedder: Embedder,
    *,
    dataset: str,
    seed: int,
    arms: Sequence[str] = ARMS,
    llm: LLM | None = None,
    progress: Callable[[int], object] | None = None,
) -> ScenarioResult:
    results = {arm: run_arm(arm, tasks, reader, config, embedder, llm=llm, progress=progress) for arm in arms}
    return ScenarioResult(
        scenario=scenario,
        reader=reader.name,
        embedder=embedder.model_id,
        distiller=_distiller_label(arms, llm),
        dataset=dataset,
        n_tasks=len(tasks),
        n_teach=sum(t.role == "teach" for t in tasks),
        n_test=sum(t.role == "test" for t in tasks),
        n_flood=sum(t.role == "flood" for t in tasks),
        seed=seed,
        config=config,
        arms=results,
    )
