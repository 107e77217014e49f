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
import os
import socket
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

from expscale_core.capture.storable import storable_text
from expscale_core.episode import Episode, EpisodeStatus, Outcome
from expscale_core.episodes.group_commit import GroupCommit
from expscale_core.errors import QueueError, ScopeError
from expscale_core.scope import Scope

__all__ = ["EpisodeQueue"]

T = TypeVar("T")
log = logging.getLogger(__name__)


_SCHEMA = """
CREATE TABLE IF NOT EXISTS episodes (
    id TEXT PRIMARY KEY,
    namespace TEXT NOT NULL, tenant TEXT, agent TEXT, user TEXT,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    not_before REAL NOT NULL,
    lease_until REAL,
    owner TEXT,
    payload TEXT NOT NULL,
    error TEXT,
    raw_output TEXT,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS episodes_status ON episodes(status, not_before);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS early_outcomes (
    episode_id TEXT PRIMARY KEY, payload TEXT NOT NULL, received_at REAL, scope TEXT
);
CREATE TABLE IF NOT EXISTS served (
    episode_id TEXT NOT NULL,
    experience_id TEXT NOT NULL,
    served_at REAL NOT NULL,
    similarity REAL NOT NULL DEFAULT 1.0,
    verdict INTEGER NOT NULL DEFAULT 0,
    applied INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (episode_id, experience_id)
);
CREATE TABLE IF NOT EXISTS dead_letters (
    id TEXT NOT NULL, namespace TEXT, tenant TEXT, agent TEXT, user TEXT,
    error TEXT NOT NULL, input TEXT, at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS journal (
    name TEXT NOT NULL, owner TEXT NOT NULL, key TEXT NOT NULL, value TEXT, PRIMARY KEY (name, owner, key)
);
"""

_PROCESSING = "processing"  # internal: claimed by a worker under a lease


class EpisodeQueue:
    """Durable queue of captured episodes, plus which experiences were served to which episode.

    Example:
        >>> q = EpisodeQueue(":memory:")
        >>> q.put(Episode(id="e1", input="hi"))
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
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not 0 <= commit_interval_s <= 60:
            raise ValueError(
                f"commit_interval_s must be in [0, 60] seconds, got {commit_interval_s!r}; "
                "set EXPSCALE_CAPTURE__COMMIT_INTERVAL_S (0 commits inside record())"
            )
        self.path = str(path)
        self.delay_s = delay_s
        self.lease_s = lease_s
        self.commit_interval_s = commit_interval_s
        self.early_feedback_ttl_s = early_feedback_ttl_s
        self._clock = clock
        self._buffer = GroupCommit(self.flush, commit_interval_s)
        self._closing = False
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA secure_delete=ON")  # deleted rows are overwritten, not left in free pages
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
            columns = {row[1] for row in self._db.execute("PRAGMA table_info(early_outcomes)")}
            if "received_at" not in columns:  # a 0.2.0 queue
                self._db.execute("ALTER TABLE early_outcomes ADD COLUMN received_at REAL")
            if "scope" not in columns:  # before feedback was checked against scopes
                self._db.execute("ALTER TABLE early_outcomes ADD COLUMN scope TEXT")
        except sqlite3.Error as exc:
            raise QueueError(f"cannot open the episode queue at {self.path}: {exc}; check EXPSCALE_DATA_DIR") from exc
        self._lock = threading.Lock()
        self._owner = f"{socket.gethostname()}:{os.getpid()}"
        self._release_dead_owners()

    def _release_dead_owners(self) -> None:
        """Claims held by a process on this host that no longer runs go back to pending now,
        instead of waiting for their lease to run out."""
        host = socket.gethostname()
        with self._tx() as db:
            rows = db.execute("SELECT id, owner FROM episodes WHERE status=?", (_PROCESSING,)).fetchall()
            dead = [eid for eid, owner in rows if _is_dead(owner, host)]
            db.executemany(
                "UPDATE episodes SET status='pending', lease_until=NULL, owner=NULL WHERE id=?", [(i,) for i in dead]
            )

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """One transaction; buffered captures are committed in it first, so every operation sees them."""
        with self._lock:
            batch = self._buffer.drain()
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    if batch:
                        self._insert(self._db, batch)
                    yield self._db
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
                self._db.execute("COMMIT")
            except BaseException as exc:
                self._buffer.give_back(batch)  # not committed: keep them for the next try
                if isinstance(exc, sqlite3.Error):
                    raise QueueError(f"episode queue at {self.path} failed: {exc}") from exc
                raise

    def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        if self._buffer:
            self.flush()
        with self._lock:
            try:
                return fn(self._db)
            except sqlite3.Error as exc:
                raise QueueError(f"episode queue at {self.path} failed: {exc}") from exc

    # -- capture ---------------------------------------------------------------------------

    def put(self, episode: Episode, *, wait: bool = True) -> None:
        """Queue ``episode`` as pending. Re-recording an id replaces it and keeps its outcome.

        Durability: with ``wait=True`` (or ``commit_interval_s=0``) the episode is committed to SQLite (WAL)
        when this returns and survives a crash of the process. With ``wait=False`` (what capture uses) it is
        in this process's memory when this returns, and committed by the writer thread within about
        ``commit_interval_s``, or sooner by any other queue operation, :meth:`flush` or :meth:`close`, and at
        normal interpreter exit. A kill -9 or power loss can lose only episodes captured in the last commit
        interval; a failed commit (a full disk) keeps them in memory and retries.
        """
        if self._closing:
            raise QueueError(f"episode queue at {self.path} is closed; the episode was not queued")
        if wait or self.commit_interval_s == 0:
            with self._tx() as db:
                self._insert(db, [episode])
            return
        self._buffer.append(episode)

    def flush(self) -> None:
        """Commit everything captured so far."""
        if self._buffer:
            with self._tx():
                pass

    def _insert(self, db: sqlite3.Connection, episodes: Sequence[Episode]) -> None:
        now = self._clock()
        for episode in episodes:
            try:
                payload = self._merged_payload(db, episode)
            except Exception as exc:
                self._dead_letter(db, episode, exc, now)
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

    def _dead_letter(self, db: sqlite3.Connection, episode: Episode, exc: Exception, now: float) -> None:
        error = f"{type(exc).__name__}: {str(exc)[:500]}"
        log.error("episode %s could not be stored and was set aside as a dead letter: %s", episode.id, error)
        s = episode.scope
        try:
            text = storable_text(str(episode.input), 2_000)
        except Exception:
            text = None
        db.execute(
            "INSERT INTO dead_letters (id, namespace, tenant, agent, user, error, input, at) VALUES (?,?,?,?,?,?,?,?)",
            (str(episode.id), s.namespace, s.tenant, s.agent, s.user, error, text, now),
        )

    def dead_letters(self, limit: int = 100) -> list[tuple[str, str, str | None]]:
        """Captured episodes that could not be stored: (episode id, error, the start of their input), newest
        first. Capture makes every value storable first, so this stays empty unless something new breaks."""
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
                (now, int(ignore_delay), _PROCESSING, now, limit),
            ).fetchall()
            db.executemany(
                "UPDATE episodes SET status=?, lease_until=?, owner=?, updated_at=? WHERE id=?",
                [(_PROCESSING, now + self.lease_s, self._owner, now, r[0]) for r in rows],
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
                [(i, _PROCESSING) for i in episode_ids],
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

    # -- served experiences, for crediting feedback ---------------------------------------

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

    def add_meta_counts(self, deltas: dict[str, int]) -> None:
        """Add to persistent counters (LLM calls and tokens across processes)."""
        with self._tx() as db:
            for key, delta in deltas.items():
                row = db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
                total = (int(row[0]) if row else 0) + delta
                db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, str(total)))

    def served(self, episode_id: str) -> list[str]:
        rows = self._read(
            lambda db: db.execute(
                "SELECT experience_id FROM served WHERE episode_id=? ORDER BY served_at", (episode_id,)
            ).fetchall()
        )
        return [r[0] for r in rows]

    # -- small persistent markers (e.g. when refinement last ran) ---------------------------

    def get_meta(self, key: str) -> str | None:
        row = self._read(lambda db: db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone())
        return str(row[0]) if row else None

    def set_meta(self, key: str, value: str) -> None:
        with self._tx() as db:
            db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    # -- undo journal for store writes that must be all-or-nothing (import) -------------------

    def journal_begin(self, name: str, entries: Mapping[str, str | None]) -> None:
        """Durably note, before a multi-record store write starts, how to undo it: per record key, its
        previous state (None: it did not exist). A process killed midway leaves the note for the next one."""
        with self._tx() as db:
            db.execute("DELETE FROM journal WHERE name=? AND owner=?", (name, self._owner))
            db.executemany(
                "INSERT INTO journal (name, owner, key, value) VALUES (?, ?, ?, ?)",
                [(name, self._owner, key, value) for key, value in entries.items()],
            )

    def _journal_owners(self, db: sqlite3.Connection, name: str) -> list[str]:
        """This process, and processes on this host that died with a note open. Another live process's
        write in progress (a shared data dir) is not ours to undo."""
        owners = [r[0] for r in db.execute("SELECT DISTINCT owner FROM journal WHERE name=?", (name,))]
        host = socket.gethostname()
        return [o for o in owners if o == self._owner or _is_dead(o, host)]

    def journal(self, name: str) -> dict[str, str | None]:
        def read(db: sqlite3.Connection) -> dict[str, str | None]:
            out: dict[str, str | None] = {}
            for owner in self._journal_owners(db, name):
                sql = "SELECT key, value FROM journal WHERE name=? AND owner=?"
                out.update(db.execute(sql, (name, owner)).fetchall())
            return out

        return self._read(read)

    def journal_clear(self, name: str) -> None:
        """Forget the notes :meth:`journal` returned (the write finished, or it was undone)."""
        with self._tx() as db:
            for owner in self._journal_owners(db, name):
                db.execute("DELETE FROM journal WHERE name=? AND owner=?", (name, owner))

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
            args = (_PROCESSING,)
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
            key = EpisodeStatus.PENDING.value if status == _PROCESSING else status
            out[key] += n
        return out

    def outstanding(self) -> int:
        """Episodes not yet distilled nor failed (pending or being processed), plus feedback not yet credited."""
        row = self._read(
            lambda db: db.execute(
                "SELECT (SELECT COUNT(*) FROM episodes WHERE status IN ('pending', ?)),"
                " (SELECT COUNT(*) FROM served WHERE verdict != applied)",
                (_PROCESSING,),
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

    def checkpoint(self) -> None:
        """Move the WAL into the database and truncate it, so deleted text survives in neither file."""
        self.flush()
        with self._lock:
            try:
                self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.Error as exc:
                raise QueueError(f"episode queue at {self.path} failed: {exc}") from exc

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


def _is_dead(owner: str | None, host: str) -> bool:
    if not owner or ":" not in owner:
        return False
    owner_host, _, pid = owner.rpartition(":")
    if owner_host != host or not pid.isdigit() or int(pid) == os.getpid():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, but someone else's
        return False
    return False
