"""Memory-quality figures for ``expscale stats``, computed from the store and the queue (pure functions)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import numpy as np
from pydantic import BaseModel

from expscale_core.experience import Experience
from expscale_core.scope import Scope
from expscale_core.scoring import utility_from_counts
from expscale_core.store.base import Vector

__all__ = ["MemoryQuality", "memory_quality"]

_SAMPLE = 5000  # per scope: bounds the duplicate check to O(sample²) on very large stores


class MemoryQuality(BaseModel):
    """How healthy the memory is, not only how big."""

    near_duplicate_rate: float
    """Share of active experiences with another active one in their scope at the duplicate threshold or above."""
    merged_records: int
    """Active experiences that are the result of a merge."""
    superseded: int
    """Experiences replaced by a newer or contradicting one (kept, restorable)."""
    quarantined: int
    repaired: int
    """Experiences whose distiller output needed its bookkeeping repaired."""
    served_helpful: int
    served_harmful: int
    served_unrated: int
    helpful_rate: float
    """helpful / (helpful + harmful) over rated serves; 0 when none is rated."""
    utility_p10: float
    utility_p50: float
    utility_p90: float


def _near_duplicates(active: Sequence[tuple[Experience, Vector | None]], threshold: float) -> int:
    by_scope: dict[Scope, list[Vector]] = defaultdict(list)
    for exp, vec in active:
        if vec is not None and len(by_scope[exp.scope]) < _SAMPLE:
            by_scope[exp.scope].append(vec)
    flagged = 0
    for vectors in by_scope.values():
        if len(vectors) < 2:
            continue
        m = np.asarray(vectors, dtype=np.float32)
        m /= np.clip(np.linalg.norm(m, axis=1, keepdims=True), 1e-12, None)
        sims = m @ m.T
        np.fill_diagonal(sims, -1.0)
        flagged += int((sims.max(axis=1) >= threshold).sum())
    return flagged


def memory_quality(
    active: Sequence[tuple[Experience, Vector | None]],
    counts: dict[str, int],
    repaired: int,
    verdicts: dict[int, int],
    *,
    duplicate_threshold: float,
) -> MemoryQuality:
    """Figures from the active records (with vectors), status counts, and served-feedback verdict counts."""
    utilities = sorted(utility_from_counts(e.helpful, e.harmful) for e, _ in active) or [0.0]

    def q(p: float) -> float:
        return round(utilities[min(len(utilities) - 1, int(p * len(utilities)))], 3)

    helpful = sum(n for v, n in verdicts.items() if v > 0)
    harmful = sum(n for v, n in verdicts.items() if v < 0)
    return MemoryQuality(
        near_duplicate_rate=round(_near_duplicates(active, duplicate_threshold) / max(1, len(active)), 4),
        merged_records=sum(1 for e, _ in active if e.provenance.merge_parents),
        superseded=counts.get("superseded", 0),
        quarantined=counts.get("quarantined", 0),
        repaired=repaired,
        served_helpful=helpful,
        served_harmful=harmful,
        served_unrated=verdicts.get(0, 0),
        helpful_rate=round(helpful / (helpful + harmful), 3) if helpful + harmful else 0.0,
        utility_p10=q(0.1),
        utility_p50=q(0.5),
        utility_p90=q(0.9),
    )
