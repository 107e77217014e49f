"""Turning a distiller's decisions into store writes (pure function)."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from expscale_core.distill.base import Action, Decision
from expscale_core.episode import Episode
from expscale_core.experience import Experience, Provenance

__all__ = ["StorePlan", "content_id", "plan_writes", "reinforced", "retarget_unrelated", "stable_id"]

_ID_NAMESPACE = uuid.UUID("8c3e4f0a-5b7d-4e49-9a59-1d2f7b0c6e11")


@dataclass
class StorePlan:
    """New records to embed and insert, and existing records whose payload changes.

    ``new`` is written before ``changed``, so a record is only marked superseded once its
    replacement exists.
    """

    new: list[Experience] = field(default_factory=list)
    changed: list[Experience] = field(default_factory=list)


def stable_id(episode: Episode, ordinal: int) -> str:
    """The id of the ``ordinal``-th new experience distilled from ``episode`` under its current outcome.

    Re-processing the same episode (after a crash, or a retry) rewrites the same points instead of adding
    duplicates. An LLM words its lesson differently on every call, so the id never depends on the text; a
    new outcome (feedback after distillation) is new evidence and gets new ids.
    """
    o = episode.outcome
    outcome_key = "-" if o is None else f"{o.score!r}|{o.correction or ''}|{o.comment or ''}"
    digest = hashlib.sha256(outcome_key.encode()).hexdigest()[:16]
    return str(uuid.uuid5(_ID_NAMESPACE, f"{episode.id}:{digest}:{ordinal}"))


def content_id(scope_key: str, kind: str, content: str, applicability: str) -> str:
    """The id of a new lesson: the same lesson in the same scope has the same id, wherever it was distilled.
    Two engines that learn it at the same moment then write one record (the store inserts it once, and the other
    reinforces it), not two. Whitespace and case do not make a lesson different."""
    lesson = "\x1f".join(" ".join(x.lower().split()) for x in (kind, content, applicability))
    return str(uuid.uuid5(_ID_NAMESPACE, f"lesson:{scope_key}\x1e{lesson}"))


def plan_writes(
    episode: Episode,
    decisions: Sequence[Decision],
    existing: Sequence[Experience],
    *,
    distiller: str,
    prompt_version: str | None,
    embedding_model: str,
    now: datetime,
    deployment: str | None = None,
) -> StorePlan:
    by_id = {e.id: e for e in existing}
    plan = StorePlan()
    touched: dict[str, Experience] = {}

    def current(target_id: str) -> Experience | None:
        return touched.get(target_id) or by_id.get(target_id)

    def provenance(extra: Sequence[str] = (), repairs: Sequence[str] = ()) -> Provenance:
        return Provenance(
            source_episode_ids=list(dict.fromkeys([*extra, episode.id])),
            distiller=distiller,
            prompt_version=prompt_version,
            embedding_model=embedding_model,
            repairs=list(repairs),
            deployments=[deployment] if deployment else [],
        )

    ordinal = 0
    for d in decisions:
        target = current(d.target_id) if d.target_id else None
        if d.action is Action.NOOP:
            if target is not None:
                touched[target.id] = reinforced(target, episode.id, now, deployment)
            continue
        assert d.kind is not None and d.content is not None  # Decision validates this
        if d.action is Action.UPDATE and target is not None:
            sources = target.provenance.source_episode_ids
            updated = reinforced(target, episode.id, now, deployment).model_copy(
                update={
                    "kind": d.kind,
                    "content": d.content,
                    "applicability": d.applicability or target.applicability,
                    "phrasings": list(d.phrasings) or target.phrasings,
                    "provenance": provenance(sources, d.repaired).model_copy(
                        update={
                            "merge_parents": target.provenance.merge_parents,
                            "deployments": _union(target.provenance.deployments, deployment),
                        }
                    ),
                }
            )
            # Content changed, so the vector must change too: it is re-embedded as a "new" write.
            touched.pop(target.id, None)
            plan.new.append(updated)
            continue
        fresh = Experience(
            id=(
                content_id(episode.scope.key(), d.kind.value, d.content, d.applicability or "")
                if d.action is Action.ADD and d.verbatim
                else stable_id(episode, ordinal)
            ),
            kind=d.kind,
            content=d.content,
            applicability=d.applicability,
            phrasings=list(d.phrasings),
            scope=episode.scope,
            provenance=provenance(repairs=d.repaired),
            created_at=now,
            updated_at=now,
        )
        if d.action is Action.SUPERSEDE and target is not None:
            fresh = fresh.model_copy(update={"supersedes": [target.id]})
            touched[target.id] = target.superseded_by_id(fresh.id, now)
        ordinal += 1
        if all(e.id != fresh.id for e in plan.new):  # the same lesson twice from one episode is one lesson
            plan.new.append(fresh)
    plan.changed = list(touched.values())
    return plan


def _union(deployments: Sequence[str], deployment: str | None) -> list[str]:
    return list(dict.fromkeys([*deployments, *([deployment] if deployment else [])]))


def reinforced(exp: Experience, episode_id: str, now: datetime, deployment: str | None = None) -> Experience:
    """``exp`` with ``episode_id`` as one more source (and one more support), once per episode, and the
    confirming deployment among its deployments."""
    # Idempotent per episode: a re-processed episode must not count as more support.
    seen = episode_id in exp.provenance.source_episode_ids
    sources = list(dict.fromkeys([*exp.provenance.source_episode_ids, episode_id]))
    return exp.model_copy(
        update={
            "support": exp.support + (0 if seen else 1),
            "updated_at": now,
            "provenance": exp.provenance.model_copy(
                update={"source_episode_ids": sources, "deployments": _union(exp.provenance.deployments, deployment)}
            ),
        }
    )


def retarget_unrelated(
    decisions: Sequence[Decision],
    similarity: Callable[[Decision], float | None],
    *,
    floor: float,
) -> list[Decision]:
    """Turn UPDATE/SUPERSEDE/NOOP decisions whose lesson is not about their target's situation into ADDs.

    ``similarity`` gives the cosine similarity of a decision's lesson to its target (None when it cannot
    tell, e.g. a NOOP without content: such decisions are kept). An unrelated record must never absorb
    another episode's lesson, whatever handle the model picked.
    """
    out: list[Decision] = []
    for d in decisions:
        sim = similarity(d) if d.target_id is not None and d.action is not Action.ADD else None
        if sim is None or sim >= floor or d.content is None or d.kind is None:
            out.append(d)
            continue
        out.append(
            d.as_add(
                f"{d.action.value} of an experience about another situation (similarity {sim:.2f} < {floor}) -> ADD"
            )
        )
    return out
