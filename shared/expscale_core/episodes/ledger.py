"""Which experiences were served to which episode, and the feedback verdicts still to be credited to them."""

from __future__ import annotations

from collections.abc import Sequence

from expscale_core.episodes.db import QueueDatabase

__all__ = ["ServedLedger"]


class ServedLedger(QueueDatabase):
    def record_served(
        self, episode_id: str, experience_ids: Sequence[str], similarities: Sequence[float] | None = None
    ) -> None:
        """Remember what was served to an episode, with how similar each was to the query."""
        if not experience_ids:
            return
        sims = list(similarities) if similarities is not None else [1.0] * len(experience_ids)
        if len(sims) != len(experience_ids):
            raise ValueError(f"{len(experience_ids)} experience ids but {len(sims)} similarities")
        now = self._clock()
        with self._tx() as db:
            db.executemany(
                "INSERT OR IGNORE INTO served (episode_id, experience_id, served_at, similarity) VALUES (?,?,?,?)",
                [(episode_id, x, now, sim) for x, sim in zip(experience_ids, sims)],
            )

    def set_verdict(self, episode_id: str, verdict: int) -> int:
        """Record feedback (+1 helpful, -1 harmful, 0 neutral) on everything served to an episode.

        Credits are applied to the store later by :meth:`uncredited`/:meth:`mark_credited`, so a
        store outage loses none; changing a verdict applies only the difference.
        """
        with self._tx() as db:
            return int(db.execute("UPDATE served SET verdict=? WHERE episode_id=?", (verdict, episode_id)).rowcount)

    def uncredited(self, limit: int = 500) -> list[tuple[str, str, int, int, float]]:
        """(episode_id, experience_id, verdict, applied, similarity) rows whose verdict is not yet in the store."""
        rows = self._read(
            lambda db: db.execute(
                "SELECT episode_id, experience_id, verdict, applied, similarity FROM served"
                " WHERE verdict != applied LIMIT ?",
                (limit,),
            ).fetchall()
        )
        return [(r[0], r[1], int(r[2]), int(r[3]), float(r[4])) for r in rows]

    def mark_credited(self, rows: Sequence[tuple[str, str, int, int, float]]) -> None:
        with self._tx() as db:
            db.executemany(
                "UPDATE served SET applied=? WHERE episode_id=? AND experience_id=?",
                [(verdict, ep, exp) for ep, exp, verdict, _, _ in rows],
            )

    def verdict_counts(self) -> dict[int, int]:
        """How many serves were rated helpful (+1), harmful (-1) or not at all (0)."""
        rows = self._read(lambda db: db.execute("SELECT verdict, COUNT(*) FROM served GROUP BY verdict").fetchall())
        return {int(v): int(n) for v, n in rows}

    def served(self, episode_id: str) -> list[str]:
        rows = self._read(
            lambda db: db.execute(
                "SELECT experience_id FROM served WHERE episode_id=? ORDER BY served_at", (episode_id,)
            ).fetchall()
        )
        return [r[0] for r in rows]
