"""Task streams for the three scenarios. Deterministic for a seed; test items never appear in teaching."""

from __future__ import annotations

import random
import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from expscale_core.eval.data import QA, Cluster
from expscale_core.scoring import normalize_answer

__all__ = ["Task", "related", "repetitive", "saturation", "shared_answer_groups"]

Role = Literal["teach", "test", "flood"]
_NEAR_DUPLICATE_PREFIXES = ("", "quick question: ", "hey, ", "I need to know: ", "please tell me ", "again, ")


@dataclass(frozen=True)
class Task:
    """One round: a question the system answers. ``group`` ties tests to what taught them."""

    question: str
    answers: tuple[str, ...]
    group: str
    role: Role
    solution: str | None = None
    """What the environment's correction says when the answer is wrong (a worked solution); else the answer."""
    numeric: bool = False
    """Checked by final number (math) instead of by answer text."""
    expect: str | None = None
    """Checked by this pattern (``re.search``) instead of by answer text: a right answer matches it."""
    reject: str | None = None
    """With ``expect``: a right answer does not match this (it named the other queue, say)."""
    learn: bool = True
    """Recorded and given feedback; False keeps a test from teaching later tests (it only measures)."""

    def check(self, answer: str) -> bool:
        if self.expect is not None:
            return re.search(self.expect, answer) is not None and (
                self.reject is None or re.search(self.reject, answer) is None
            )
        return False


def _stream(clusters: Sequence[Cluster], rng: random.Random) -> list[Task]:
    """Every question of every cluster once, in random order; a cluster's first appearance teaches."""
    items = [(c, q) for c in clusters for q in c.questions]
    rng.shuffle(items)
    seen: set[str] = set()
    tasks = []
    for cluster, question in items:
        role: Role = "test" if cluster.cid in seen else "teach"
        seen.add(cluster.cid)
        tasks.append(Task(question, cluster.answers, cluster.cid, role))
    return tasks


def repetitive(clusters: Sequence[Cluster], *, seed: int, limit: int | None = None, repeats: int = 1) -> list[Task]:
    """Paraphrase clusters recur over rounds: the first encounter teaches, later paraphrases test.

    ``repeats`` > 1 also re-asks each question verbatim (for data without paraphrase clusters).
    """
    rng = random.Random(seed)
    usable = [c for c in clusters if len(c.questions) * repeats >= 2]
    rng.shuffle(usable)
    chosen = usable[:limit] if limit else usable
    expanded = [Cluster(c.cid, tuple(q for q in c.questions for _ in range(repeats)), c.answers) for c in chosen]
    return _stream(expanded, rng)


def shared_answer_groups(items: Sequence[QA], *, min_size: int = 2) -> list[Cluster]:
    """Different questions with the same first gold answer, e.g. several countries whose language is Spanish.

    Duplicate question texts are dropped, so a test question is never the teaching question.
    """
    groups: dict[str, list[QA]] = defaultdict(list)
    for qa in items:
        groups[normalize_answer(qa.answers[0])].append(qa)
    out = []
    for key, members in sorted(groups.items()):
        questions = tuple(dict.fromkeys(m.question for m in members))
        if key and len(questions) >= min_size:
            out.append(Cluster(f"ans:{key}", questions, members[0].answers))
    return out


def related(items: Sequence[QA], *, seed: int, limit: int | None = None) -> list[Task]:
    """Unseen but related tasks: each test question differs from anything taught but shares its answer with
    one taught question (same answer entity, and so in practice the same relation or topic)."""
    rng = random.Random(seed)
    groups = shared_answer_groups(items)
    rng.shuffle(groups)
    return _stream(groups[:limit] if limit else groups, rng)


def saturation(
    clusters: Sequence[Cluster],
    traffic: Sequence[QA],
    *,
    factor: int,
    seed: int,
    limit: int | None = None,
    repeats: int = 1,
) -> list[Task]:
    """The repetitive stream flooded with ``factor`` × (teaching items) extra episodes: half near-duplicate
    re-asks of taught questions, half unrelated traffic. Flood questions never repeat a test question."""
    rng = random.Random(seed)
    base = repetitive(clusters, seed=seed, limit=limit, repeats=repeats)
    teach = [t for t in base if t.role == "teach"]
    tests = {normalize_answer(t.question) for t in base if t.role == "test"}
    taught_at = {t.group: i for i, t in enumerate(base) if t.role == "teach"}
    n_flood = factor * len(teach)
    placed: list[tuple[int, float, Task]] = []  # (insert before this base position, tie-break, task)
    for i in range(n_flood // 2):
        src = teach[i % len(teach)]
        prefix = _NEAR_DUPLICATE_PREFIXES[(i // len(teach)) % len(_NEAR_DUPLICATE_PREFIXES)]
        # A re-ask comes after the round that taught it, or the flood itself would do the teaching.
        slot = rng.randint(taught_at[src.group] + 1, len(base))
        placed.append((slot, rng.random(), Task(prefix + src.question, src.answers, src.group, "flood")))
    pool = [qa for qa in traffic if normalize_answer(qa.question) not in tests]
    for i in range(n_flood - n_flood // 2):
        qa = pool[i % len(pool)]
        placed.append(
            (rng.randint(0, len(base)), rng.random(), Task(qa.question, qa.answers, f"traffic:{qa.qid}", "flood"))
        )
    placed.sort(key=lambda p: (p[0], p[1]))
    out: list[Task] = []
    j = 0
    for pos, task in enumerate(base):
        while j < len(placed) and placed[j][0] <= pos:
            out.append(placed[j][2])
            j += 1
        out.append(task)
    out += [p[2] for p in placed[j:]]
    return out
