"""How a writer retries a conditional write that another writer beat: a few rounds, each after a random pause
that grows, so that writers contending for one record spread out instead of colliding again in step."""

from __future__ import annotations

import random
import time

__all__ = ["WRITE_ROUNDS", "pause"]

WRITE_ROUNDS = 8
"""Attempts before the work waits for the next background step (it is kept, never dropped)."""


def pause(attempt: int) -> None:
    """Before retry ``attempt`` (1, 2, ...): up to 2, 4, 8 ... ms, capped at a quarter second."""
    time.sleep(random.uniform(0, min(0.25, 0.002 * 2**attempt)))
