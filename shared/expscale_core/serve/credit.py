"""Usage credit: what retrieval served is counted, and feedback on an episode credits what it was served."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime

from expscale_core.experience import Experience
from expscale_core.refine.refiner import retention_value

__all__ = ["CreditRow", "UsageTally", "apply_credit"]

CreditRow = tuple[str, str, int, int, float]
"""(episode_id, experience_id, verdict, verdict already applied, similarity when served)."""


class UsageTally:
    """Retrieval counts and last use per experience, kept in memory on the serving path and written to the
    store in batches by the background worker: a retrieval never waits for a store write."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()
        self._last_used: dict[str, datetime] = {}

    def __bool__(self) -> bool:
        return bool(self._counts)

    def add(self, experience_ids: Iterable[str], now: datetime) -> None:
        with self._lock:
            for eid in experience_ids:
                self._counts[eid] += 1
                self._last_used[eid] = now

    def take(self) -> tuple[Counter[str], dict[str, datetime]]:
        """Everything counted so far; the tally starts again from zero."""
        with self._lock:
            taken = self._counts, self._last_used
            self._counts, self._last_used = Counter(), {}
        return taken

    def give_back(self, counts: Mapping[str, int], last_used: Mapping[str, datetime]) -> None:
        """Counts that could not be written yet, merged back for the next try."""
        with self._lock:
            self._counts.update(counts)
            for eid, when in last_used.items():
                self._last_used.setdefault(eid, when)


def apply_credit(
    experiences: Sequence[Experience],
    usage: Mapping[str, int],
    last_used: Mapping[str, datetime],
    rows: Sequence[CreditRow],
    *,
    credit_min_similarity: float,
    half_life_days: float,
    now: datetime,
) -> list[Experience]:
    """The experiences with retrieval counts, last use, feedback credit and utility brought up to date.

    A changed verdict applies only its difference. Serves below ``credit_min_similarity`` get no credit: the
    answer most likely did not rely on them, and blaming them for an unrelated failure archives good lessons.

    Example:
        >>> from expscale_core.episode import utcnow
        >>> e = Experience(kind="fact", content="x")
        >>> [u] = apply_credit([e], {e.id: 2}, {}, [("ep", e.id, 1, 0, 0.9)], credit_min_similarity=0.5,
        ...                    half_life_days=60, now=utcnow())
        >>> (u.times_retrieved, u.helpful, u.harmful)
        (2, 1, 0)
    """
    updated = {e.id: e for e in experiences}
    for exp_id, n in usage.items():
        if exp_id in updated:
            e = updated[exp_id]
            updated[exp_id] = e.model_copy(
                update={"times_retrieved": e.times_retrieved + n, "last_used_at": last_used.get(exp_id, now)}
            )
    for _, exp_id, verdict, applied, similarity in rows:
        if exp_id in updated and similarity >= credit_min_similarity:
            e = updated[exp_id]
            updated[exp_id] = e.model_copy(
                update={
                    "helpful": max(0, e.helpful + (verdict > 0) - (applied > 0)),
                    "harmful": max(0, e.harmful + (verdict < 0) - (applied < 0)),
                }
            )
    return [
        e.model_copy(update={"utility": round(retention_value(e, now, half_life_days), 4)}) for e in updated.values()
    ]
