"""Which records lie close together: pairs and clusters by cosine similarity, in bounded memory."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence

import numpy as np

__all__ = ["Row", "dirty_pairs", "duplicate_clusters", "similar_pairs", "unit_rows"]

Row = np.ndarray
"""A vector as refinement holds it: float32 (1.5 KB at 384 dims, where a list of Python floats takes 12 KB)."""


def similar_pairs(
    vectors: np.ndarray, low: float, high: float = float("inf"), chunk: int = 512
) -> Iterator[tuple[float, int, int]]:
    """``(similarity, i, j)`` for every pair ``i < j`` with ``low <= similarity < high``.

    Rows must be L2-normalized. Memory stays at ``chunk × n`` whatever the store size.
    """
    return dirty_pairs(vectors, range(len(vectors)), low, high, chunk)  # every row dirty: every pair once


def dirty_pairs(
    vectors: np.ndarray, dirty: Sequence[int], low: float, high: float = float("inf"), chunk: int = 512
) -> Iterator[tuple[float, int, int]]:
    """Like :func:`similar_pairs`, but only pairs with at least one row in ``dirty``: O(len(dirty) × n)."""
    seen_dirty = set(dirty)
    rows_all = np.asarray(sorted(seen_dirty), dtype=np.int64)
    for start in range(0, len(rows_all), chunk):
        rows = rows_all[start : start + chunk]
        sims = vectors[rows] @ vectors.T
        rr, cc = np.nonzero((sims >= low) & (sims < high))
        for r, c in zip(rr.tolist(), cc.tolist()):
            i, j = int(rows[r]), c
            if i == j or (j in seen_dirty and j < i):  # a dirty-dirty pair is reported once
                continue
            yield float(sims[r, c]), min(i, j), max(i, j)


def duplicate_clusters(
    vectors: np.ndarray, threshold: float, chunk: int = 512, dirty: Sequence[int] | None = None
) -> list[list[int]]:
    """Groups of row indices whose cosine similarity links them at ``threshold`` or above (union-find).
    With ``dirty``, only links touching those rows are looked for."""
    n = len(vectors)
    parent = list(range(n))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    pairs = (
        similar_pairs(vectors, threshold, chunk=chunk)
        if dirty is None
        else dirty_pairs(vectors, dirty, threshold, chunk=chunk)
    )
    for _, i, j in pairs:
        parent[find(i)] = find(j)
    groups: dict[int, list[int]] = defaultdict(list)
    for i in range(n):
        groups[find(i)].append(i)
    return [g for g in groups.values() if len(g) > 1]


def unit_rows(vectors: Sequence[Row]) -> np.ndarray:
    matrix: np.ndarray = np.asarray(vectors, dtype=np.float32)
    norms: np.ndarray = np.clip(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12, None)
    unit: np.ndarray = matrix / norms
    return unit
