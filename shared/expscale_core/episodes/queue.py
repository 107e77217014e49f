"""The durable episode queue: SQLite in WAL mode inside the data dir.

An episode is committed here before anything else happens to it, and leaves the ``pending``
state only once its experiences are in the store. A claim is a lease: if the process dies while
distilling, the lease runs out and the episode is claimed again.

Capture uses group commit (``put(..., wait=False)``): the caller's thread only appends to an in-memory
buffer, and a writer thread commits the buffer in one transaction every ``commit_interval_s``. Every
other operation of the queue commits the buffer first, so nothing reads around it. The durability
contract is in :meth:`EpisodeQueue.put`.
"""

from __future__ import annotations

import logging
import socket
import sqlite3
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

from expscale_core.capture.storable import DEFAULT_MAX_FIELD_CHARS, storable_model, storable_text
from expscale_core.episode import Episode, EpisodeDraft, EpisodeStatus, Outcome
from expscale_core.episodes.db import PROCESSING, is_dead_owner
from expscale_core.episodes.journal import Journal
from expscale_core.episodes.ledger import ServedLedger
from expscale_core.errors import QueueError, ScopeError
from expscale_core.scope import Scope

__all__ = ["EpisodeQueue"]

T = TypeVar("T")
log = logging.getLogger(__name__)


class EpisodeQueue(ServedLedger, Journal):
    """Durable queue of captured episodes, plus which experiences were served to which episode.

    Example:
        >>> q = EpisodeQueue(":memory:")
        >>> q.put(Episode(id="e1", input="hi"))  # committed: True; buffered for the writer: False
        True
        >>> [e.id for e in q.claim(10, ignore_delay=True)]
        ['e1']
    """

    def __init__(
        self,
        path: str | Path,
        *,
        delay_s: float = 0.0,
        lease_s: float = 600.0,
        commit_interval_s: float = 0.05,
        early_feedback_ttl_s: float = 7 * 86_400,
        max_field_chars: int = DEFAULT_MAX_FIELD_CHARS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not 0 <= commit_interval_s <= 60:
            raise ValueError(
                f"commit_interval_s must be in [0, 60] seconds, got {commit_interval_s!r}; "
                "set EXPSCALE_CAPTURE__COMMIT_INTERVAL_S (0 commits inside record())"
            )
        super().__init__(path, commit_interval_s=commit_interval_s, clock=clock)
        self.delay_s = delay_s
        self.lease_s = lease_s
        self.commit_interval_s = commit_interval_s
        self.early_feedback_ttl_s = early_feedback_ttl_s
        self.max_field_chars = max_field_chars
        self._closing = False
        self._release_dead_owners()

    def _release_dead_owners(self) -> None:
        """Claims held by a process on this host that no longer runs go back to pending now,
        instead of waiting for their lease to run out."""
        host = socket.gethostname()
        with self._tx() as db:
            rows = db.execute("SELECT id, owner FROM episodes WHERE status=?", (PROCESSING,)).fetchall()
            dead = [eid for eid, owner in rows if is_dead_owner(owner, host)]
            db.executemany(
                "UPDATE episodes SET status='pending', lease_until=NULL, owner=NULL WHERE id=?", [(i,) for i in dead]
            )

    # -- capture ---------------------------------------------------------------------------

    def put(self, episode: Episode | EpisodeDraft, *, wait: bool = True) -> bool:
        """Queue ``episode`` as pending. Re-recording an id replaces it and keeps its outcome.

        Durability: with ``wait=True`` (or ``commit_interval_s=0``) the episode is committed to SQLite (WAL)
        when this returns and survives a crash of the process. With ``wait=False`` (what capture uses) it is
        in this process's memory when this returns, and committed by the writer thread within about
        ``commit_interval_s``, or sooner by any other queue operation, :meth:`flush` or :meth:`close`, and at
        normal interpreter exit. A kill -9 or power loss can lose only episodes captured in the last commit
        interval; a failed commit (a full disk) keeps them in memory and retries.

        Whatever the episode holds is stored: a value that cannot become JSON is fixed, visibly, as it is written
        (:mod:`expscale_core.capture.storable`; texts past ``max_field_chars`` are shortened in the middle). A
        capture's :class:`EpisodeDraft` is validated then too; one that does not validate becomes a dead letter.

        Returns True when the episode was committed here, False when the writer commits it (and then calls the
        :meth:`on_commit` listeners).
        """
        if self._closing:
            raise QueueError(f"episode queue at {self.path} is closed; the episode was not queued")
        if wait or self.commit_interval_s == 0:
            with self._tx() as db:
                self._insert(db, [episode])
            return True
        self._buffer.append(episode)
        return False

    def on_commit(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call ``callback`` on the writer thread after each batch of buffered episodes it committed (an engine
        wakes its distiller so: once per batch, from the thread that made the batch durable). Every engine sharing
        the queue listens; returns the function that stops this ``callback`` listening."""
        return self._buffer.listen(callback)

    def _insert(self, db: sqlite3.Connection, episodes: Sequence[Episode | EpisodeDraft]) -> None:
        now = self._clock()
        for item in episodes:
            try:
                # Validated and made storable here, one episode at a time, as it is serialized: a value that cannot
                # become JSON (a cycle, a lone surrogate, an object) is fixed visibly, never failing its batch-mates.
                episode = item.build() if isinstance(item, EpisodeDraft) else item
                episode = storable_model(episode, max_chars=self.max_field_chars)
                payload = self._merged_payload(db, episode)
            except Exception as exc:
                self._dead_letter(db, item, exc, now)
                continue
            s = episode.scope
            db.execute(
                "INSERT OR REPLACE INTO episodes (id, namespace, tenant, agent, user, status, attempts, not_before,"
                " lease_until, payload, error, raw_output, created_at, updated_at)"
                " VALUES (?,?,?,?,?,'pending',0,?,NULL,?,NULL,NULL,?,?)",
                (episode.id, s.namespace, s.tenant, s.agent, s.user, now + self.delay_s, payload, now, now),
            )
            db.execute("DELETE FROM early_outcomes WHERE episode_id=?", (episode.id,))

    def _merged_payload(self, db: sqlite3.Connection, episode: Episode) -> str:
        """The episode's JSON as stored: it keeps an outcome given earlier, and it must read back."""
        row = db.execute("SELECT payload FROM episodes WHERE id=?", (episode.id,)).fetchone()
        early = db.execute("SELECT payload, scope FROM early_outcomes WHERE episode_id=?", (episode.id,)).fetchone()
        if early is not None and early[1] and not Scope.model_validate_json(early[1]).contains(episode.scope):
            log.warning("feedback given early for episode %s came from another scope and was dropped", episode.id)
            early = None
        if episode.outcome is None and row is not None:
            episode = episode.model_copy(update={"outcome": _parse(row[0]).outcome})
        if episode.outcome is None and early is not None:
            episode = episode.model_copy(update={"outcome": Outcome.model_validate_json(early[0])})
        payload = episode.model_copy(update={"status": EpisodeStatus.PENDING, "error": None}).model_dump_json()
        _parse(payload)  # what cannot be read back would stall the worker later; refuse it now
        return payload

    def _dead_letter(self, db: sqlite3.Connection, episode: Episode | EpisodeDraft, exc: Exception, now: float) -> None:
        error = f"{type(exc).__name__}: {str(exc)[:500]}"
        log.error("episode %s could not be stored and was set aside as a dead letter: %s", episode.id, error)
        # Every column made storable on its own, and none may fail: this row is written for an episode whose fixing
        # or validation failed, in its batch-mates' transaction.
        try:
            s = episode.scope
            scope = [
                None if v is None else storable_text(str(v), 2_000) for v in (s.namespace, s.tenant, s.agent, s.user)
            ]
        except Exception:
            scope = [None] * 4
        try:
            text = storable_text(str(episode.input), 2_000)
        except Exception:
            text = None
        db.execute(
            "INSERT INTO dead_letters (id, namespace, tenant, agent, user, error, input, at) VALUES (?,?,?,?,?,?,?,?)",
            (storable_text(str(episode.id), 2_000), *scope, storable_text(error), text, now),
        )

    def dead_letters(self, limit: int = 100) -> list[tuple[str, str, str | None]]:
        """Captured episodes that could not be stored: (episode id, error, the start of their input), newest
        first. Every value is made storable as it is written, so this stays empty unless something new breaks (or an
        :class:`EpisodeDraft` built by hand does not validate)."""
        rows = self._read(
            lambda db: db.execute(
                "SELECT id, error, input FROM dead_letters ORDER BY at DESC LIMIT ?", (limit,)
            ).fetchall()
        )
        return [(r[0], r[1], r[2]) for r in rows]

    def attach_outcome(self, episode_id: str, outcome: Outcome, scope: Scope | None = None) -> bool:
        """Attach feedback. A distilled or failed episode goes back to pending to be learned again.

        With ``scope``, the episode must lie in it (:class:`ScopeError` otherwise, and nothing changes).
        Returns False when the episode is not recorded yet; the outcome is kept and joins it when it is recorded
        within ``early_feedback_ttl_s`` (a week by default), in ``scope``.
        """
        with self._tx() as db:
            row = db.execute("SELECT payload, status FROM episodes WHERE id=?", (episode_id,)).fetchone()
            if row is not None and scope is not None:
                owner = _parse(row[0]).scope
                if not scope.contains(owner):
                    raise ScopeError(
                        f"episode {episode_id} belongs to scope {owner.key()}, not {scope.key()}: feedback "
                        "reaches only episodes of its own scope; pass the scope the episode was recorded with "
                        "(feedback(..., scope=...)) or use an engine of that scope"
                    )
            if row is None:
                now = self._clock()
                # Feedback may precede its episode (a stream still being read), but not by days: a mistyped id
                # must not be kept forever.
                db.execute("UPDATE early_outcomes SET received_at=? WHERE received_at IS NULL", (now,))
                expired = db.execute(
                    "DELETE FROM early_outcomes WHERE received_at < ?", (now - self.early_feedback_ttl_s,)
                ).rowcount
                if expired:
                    log.warning("dropped feedback for %d episode ids that were never recorded", expired)
                db.execute(
                    "INSERT OR REPLACE INTO early_outcomes (episode_id, payload, received_at, scope) VALUES (?,?,?,?)",
                    (episode_id, outcome.model_dump_json(), now, scope.model_dump_json() if scope else None),
                )
                return False
            episode = Episode.model_validate_json(row[0]).model_copy(
                update={"outcome": outcome, "status": EpisodeStatus.PENDING}
            )
            # Set pending even while a worker holds it: completing that claim then keeps it pending.
            db.execute(
                "UPDATE episodes SET payload=?, status='pending', attempts=0, lease_until=NULL,"
                " not_before=MIN(not_before, ?), updated_at=? WHERE id=?",
                (episode.model_dump_json(), self._clock(), self._clock(), episode_id),
            )
            return True

    # -- the worker's side -----------------------------------------------------------------

    def claim(self, limit: int, *, ignore_delay: bool = False) -> list[Episode]:
        """Lease up to ``limit`` due episodes, oldest first.

        ``ignore_delay`` skips the feedback delay of fresh episodes (for ``drain``), never the
        backoff of episodes that already failed an attempt.
        """
        now = self._clock()
        with self._tx() as db:
            rows = db.execute(
                "SELECT id, payload FROM episodes WHERE (status='pending' AND (not_before<=? OR (? AND attempts=0)))"
                " OR (status=? AND lease_until<?) ORDER BY created_at LIMIT ?",
                (now, int(ignore_delay), PROCESSING, now, limit),
            ).fetchall()
            db.executemany(
                "UPDATE episodes SET status=?, lease_until=?, owner=?, updated_at=? WHERE id=?",
                [(PROCESSING, now + self.lease_s, self._owner, now, r[0]) for r in rows],
            )
        episodes: list[Episode] = []
        for eid, payload in rows:
            try:
                episodes.append(_parse(payload))
            except ValueError as exc:  # written by an older version without the read-back check
                self.fail(eid, f"the stored episode cannot be read back: {str(exc)[:300]}")
        return episodes

    def complete(self, episode_ids: Sequence[str]) -> None:
        """Mark claimed episodes distilled: their experiences are stored."""
        self._set_status(episode_ids, EpisodeStatus.DISTILLED, error=None, raw=None)

    def fail(self, episode_id: str, error: str, raw_output: str | None = None) -> None:
        """Mark a claimed episode failed, keeping the error and the raw LLM output for inspection and retry."""
        self._set_status([episode_id], EpisodeStatus.FAILED, error=error, raw=raw_output)

    def defer(
        self, episode_id: str, error: str, *, backoff_s: float, max_attempts: int, count_attempt: bool = True
    ) -> bool:
        """Put an episode back after a transient failure, later each time; fail it after ``max_attempts``.
        ``count_attempt=False`` (the store is down, not the episode's fault) retries without using one up.

        Returns True when it was failed for good (until ``retry_failed``).
        """
        with self._tx() as db:
            row = db.execute("SELECT attempts FROM episodes WHERE id=?", (episode_id,)).fetchone()
            if row is None:
                return False
            attempts = row[0] + 1 if count_attempt else max(row[0], 1)
            if attempts >= max_attempts:
                failed = True
            else:
                failed = False
                db.execute(
                    "UPDATE episodes SET status='pending', attempts=?, not_before=?, error=?, lease_until=NULL,"
                    " updated_at=? WHERE id=?",
                    (
                        attempts,
                        self._clock() + backoff_s * 2 ** (attempts - 1),
                        error,
                        self._clock(),
                        episode_id,
                    ),
                )
        if failed:
            self.fail(episode_id, f"gave up after {attempts} attempts: {error}")
        return failed

    def release(self, episode_ids: Sequence[str]) -> None:
        """Return claimed episodes to pending untouched (shutdown before they were processed)."""
        with self._tx() as db:
            db.executemany(
                "UPDATE episodes SET status='pending', lease_until=NULL WHERE id=? AND status=?",
                [(i, PROCESSING) for i in episode_ids],
            )

    def _set_status(
        self, episode_ids: Sequence[str], status: EpisodeStatus, *, error: str | None, raw: str | None
    ) -> None:
        now = self._clock()
        with self._tx() as db:
            for eid in episode_ids:
                row = db.execute("SELECT payload FROM episodes WHERE id=?", (eid,)).fetchone()
                if row is None:
                    continue
                episode = Episode.model_validate_json(row[0]).model_copy(update={"status": status, "error": error})
                # A feedback that re-opened the episode while it was being distilled keeps it pending.
                db.execute(
                    "UPDATE episodes SET status=CASE WHEN status='pending' THEN 'pending' ELSE ? END,"
                    " payload=?, error=?, raw_output=?, lease_until=NULL, updated_at=? WHERE id=?",
                    (status.value, episode.model_dump_json(), error, raw, now, eid),
                )

    def retry_failed(self) -> int:
        """Move every failed episode back to pending; return how many."""
        with self._tx() as db:
            cur = db.execute(
                "UPDATE episodes SET status='pending', attempts=0, not_before=?, updated_at=? WHERE status='failed'",
                (self._clock(), self._clock()),
            )
            return cur.rowcount

    # -- inspection and deletion -----------------------------------------------------------

    def get(self, episode_id: str) -> Episode | None:
        row = self._read(lambda db: db.execute("SELECT payload FROM episodes WHERE id=?", (episode_id,)).fetchone())
        return Episode.model_validate_json(row[0]) if row else None

    def list(self, status: EpisodeStatus | None = None, limit: int = 100) -> list[tuple[Episode, str | None, int]]:
        """Episodes with their last error and attempt count, newest first."""
        sql = "SELECT payload, error, attempts, status FROM episodes"
        args: tuple[object, ...] = ()
        if status is EpisodeStatus.PENDING:
            sql += " WHERE status IN ('pending', ?)"
            args = (PROCESSING,)
        elif status is not None:
            sql += " WHERE status=?"
            args = (status.value,)
        rows = self._read(lambda db: db.execute(sql + " ORDER BY created_at DESC LIMIT ?", (*args, limit)).fetchall())
        return [(Episode.model_validate_json(r[0]), r[1], r[2]) for r in rows]

    def raw_output(self, episode_id: str) -> str | None:
        row = self._read(lambda db: db.execute("SELECT raw_output FROM episodes WHERE id=?", (episode_id,)).fetchone())
        return row[0] if row else None

    def dead_letter_count(self) -> int:
        return int(self._read(lambda db: db.execute("SELECT COUNT(*) FROM dead_letters").fetchone()[0]))

    def counts(self) -> dict[str, int]:
        rows = self._read(lambda db: db.execute("SELECT status, COUNT(*) FROM episodes GROUP BY status").fetchall())
        out = {s.value: 0 for s in EpisodeStatus}
        for status, n in rows:
            key = EpisodeStatus.PENDING.value if status == PROCESSING else status
            out[key] += n
        return out

    def outstanding(self) -> int:
        """Episodes not yet distilled nor failed (pending or being processed), plus feedback not yet credited."""
        row = self._read(
            lambda db: db.execute(
                "SELECT (SELECT COUNT(*) FROM episodes WHERE status IN ('pending', ?)),"
                " (SELECT COUNT(*) FROM served WHERE verdict != applied)",
                (PROCESSING,),
            ).fetchone()
        )
        return int(row[0]) + int(row[1])

    def requeue(self, episode_ids: Sequence[str]) -> int:
        """Send episodes back to be distilled again (their experiences were removed); returns how many."""
        now = self._clock()
        with self._tx() as db:
            return sum(
                db.execute(
                    "UPDATE episodes SET status='pending', attempts=0, not_before=?, lease_until=NULL,"
                    " updated_at=? WHERE id=?",
                    (now, now, i),
                ).rowcount
                for i in episode_ids
            )

    def delete_episode(self, episode_id: str) -> int:
        with self._tx() as db:
            n = db.execute("DELETE FROM episodes WHERE id=?", (episode_id,)).rowcount
            db.execute("DELETE FROM served WHERE episode_id=?", (episode_id,))
            db.execute("DELETE FROM early_outcomes WHERE episode_id=?", (episode_id,))
            n += db.execute("DELETE FROM dead_letters WHERE id=?", (episode_id,)).rowcount
            return int(n)

    def delete_scope(self, scope: Scope) -> int:
        conditions = scope.conditions()
        where = " AND ".join(f"{name}=?" for name in conditions)
        with self._tx() as db:
            ids = [r[0] for r in db.execute(f"SELECT id FROM episodes WHERE {where}", tuple(conditions.values()))]
            db.executemany("DELETE FROM served WHERE episode_id=?", [(i,) for i in ids])
            db.executemany("DELETE FROM episodes WHERE id=?", [(i,) for i in ids])
            dead = db.execute(f"DELETE FROM dead_letters WHERE {where}", tuple(conditions.values())).rowcount
            return len(ids) + int(dead)

    def close(self) -> None:
        """Commit what capture buffered, stop the writer, close the database."""
        self._closing = True
        self._buffer.close()
        try:
            self.flush()
        finally:
            with self._lock:
                self._db.close()


def _parse(payload: str) -> Episode:
    return Episode.model_validate_json(payload)
