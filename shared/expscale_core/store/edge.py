"""The embedded experience store on Qdrant Edge: the Qdrant engine itself, in-process.

Qdrant Edge keeps segments, a write-ahead log, keyword payload indexes and HNSW in the data dir, so a scoped
query is answered through the payload index instead of a Python loop over every point (what qdrant-client's
local mode does). ``qdrant-client`` remains the store for a Qdrant server or cluster (``url=``).
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from expscale_core.errors import CollectionMismatchError, StoreError, StoreLockedError
from expscale_core.experience import MAX_PHRASINGS, Experience, ExperienceStatus
from expscale_core.scope import Scope
from expscale_core.store._edge_build import IndexBuild
from expscale_core.store._edge_shard import (
    conditional_ops,
    copy_shard,
    create_shard,
    edge_config,
    edge_filter,
    ensure_room,
    folder_bytes,
    stored_multi_key,
)
from expscale_core.store._records import clamp_score as _clamp
from expscale_core.store._records import point_ids, point_vector, stamped, to_payload, to_record, to_vector, written
from expscale_core.store.base import Embedding, Vector
from expscale_core.store.coordination import Coordinated
from expscale_core.store.deletion_log import MemoryDeletionLog
from expscale_core.store.lease import MemoryLeaseCell

if TYPE_CHECKING:
    import qdrant_edge as qe

__all__ = ["EdgeExperienceStore"]

log = logging.getLogger(__name__)
T = TypeVar("T")
_PAGE = 1024
_UPSERT_BATCH = 2048


class EdgeExperienceStore(Coordinated):
    """Experiences as points of one Qdrant Edge shard at ``path`` (created on first use).

    One process at a time may open a shard; a second gets :class:`StoreLockedError`. Writes are in the
    shard's WAL when a call returns. :meth:`maintain` builds HNSW indexes once enough points arrived, in a
    child process on a copy of the shard, so the process serving queries never stops for it; the engine
    calls it from its background worker.

    Example:
        >>> store = EdgeExperienceStore.temporary()
        >>> store.ensure_collection(8)
        >>> store.count()
        0
        >>> store.close()
    """

    def __init__(
        self,
        path: str | Path,
        *,
        optimize_every: int = 20_000,
        on_close: Callable[[], None] | None = None,
        min_free_mb: float = 16.0,
    ) -> None:
        self.path = Path(path)
        self.optimize_every = optimize_every
        self.min_free_mb = min_free_mb
        """Writes that would leave less free disk than this are refused with StoreError: Qdrant Edge writes
        through memory maps, and a full disk under one kills the process with SIGBUS instead of an error."""
        self._on_close = on_close
        self._shard: qe.EdgeShard | None = None
        self._dimension: int | None = None
        self._multi_key = True
        """Points hold several keys, scored by the best one; False for a shard created before retrieval keys."""
        # The shard is shared by the caller's threads and the worker; one lock keeps the binding's calls serial.
        self._lock = threading.RLock()
        self._leases = MemoryLeaseCell()
        self._deletions = MemoryDeletionLog()
        self._since_optimize = 0
        self._checked_backlog = False
        self._closed = False
        self._build: IndexBuild | None = None

    @classmethod
    def temporary(cls, **kwargs: Any) -> EdgeExperienceStore:
        """A store in a fresh temporary folder, deleted on :meth:`close` (tests, evaluations)."""
        folder = tempfile.mkdtemp(prefix="expscale-edge-")
        return cls(Path(folder) / "shard", on_close=lambda: shutil.rmtree(folder, ignore_errors=True), **kwargs)

    # -- plumbing ------------------------------------------------------------------------

    def _call(self, what: str, fn: Callable[[qe.EdgeShard], T], touched: Sequence[str] = ()) -> T:
        with self._lock:
            if self._closed:
                raise StoreError(f"the experience store at {self.path} is closed")
            if self._shard is None:
                raise StoreError(f"Qdrant Edge {what} before ensure_collection(dimension) opened {self.path}")
            if self._build is not None:  # noted under the lock, so no write slips between the copy and the swap
                self._build.dirty.update(touched)
            try:
                return fn(self._shard)
            except StoreError:
                raise
            except Exception as exc:  # the binding raises plain Exception for engine errors
                raise StoreError(f"Qdrant Edge {what} at {self.path} failed: {exc}") from exc

    def ensure_collection(self, dimension: int) -> None:
        import qdrant_edge as qe

        with self._lock:
            if self._shard is not None:
                if dimension != self._dimension:
                    raise CollectionMismatchError(self._mismatch(self._dimension, dimension))
                return
            if self._closed:
                raise StoreError(f"the experience store at {self.path} is closed")
            self._finish_interrupted_compaction()
            exists = (self.path / "edge_config.json").exists()
            multi_key = stored_multi_key(self.path)
            config = edge_config(dimension, multi_key=multi_key)
            try:
                if exists:
                    shard = qe.EdgeShard.load(str(self.path), config)
                else:
                    self.path.mkdir(parents=True, exist_ok=True)
                    shard = create_shard(self.path, config)
            except Exception as exc:
                if "incompatible" in str(exc).lower():
                    raise CollectionMismatchError(
                        self._mismatch(str(exc).rsplit(":", 1)[-1].strip(), dimension)
                    ) from exc
                if "WouldBlock" in str(exc) or "lock" in str(exc).lower():
                    raise StoreLockedError(
                        f"the experience store {self.path} is open in another process; an embedded store allows "
                        "one process at a time. Close the other process, give this one its own "
                        "EXPSCALE_DATA_DIR, or, for several workers (uvicorn --workers, gunicorn -w), run a Qdrant "
                        "server and set EXPSCALE_STORE__URL (README: 'Several workers, several servers')"
                    ) from exc
                raise StoreError(f"could not open the Qdrant Edge store at {self.path}: {exc}") from exc
            self._shard, self._dimension, self._multi_key = shard, dimension, multi_key

    def _finish_interrupted_compaction(self) -> None:
        old_dir = self.path.with_name(self.path.name + ".old")
        fresh_dir = self.path.with_name(self.path.name + ".compact")
        shutil.rmtree(self.path.with_name(self.path.name + ".build"), ignore_errors=True)  # a build a crash left
        if old_dir.exists():
            if (self.path / "edge_config.json").exists():
                shutil.rmtree(old_dir)  # the swap finished; only the removal was interrupted
            else:
                old_dir.rename(self.path)  # the swap did not finish: the old, complete shard is the store
        shutil.rmtree(fresh_dir, ignore_errors=True)

    def _mismatch(self, found: object, dimension: int) -> str:
        return (
            f"the experience store at {self.path} does not fit this embedder ({found}; the embedder gives "
            f"{dimension} dims with cosine distance). "
            "Use another data dir or collection (EXPSCALE_STORE__COLLECTION), or export, delete and import "
            "again (`expscale export` / `expscale import` re-embed)"
        )

    # -- writes --------------------------------------------------------------------------

    def _ensure_room(self, need_bytes: int, what: str) -> None:
        ensure_room(self.path, need_bytes, self.min_free_mb, what)

    def _record_bytes(self, experiences: Iterable[Experience]) -> int:
        # Payload, vector and WAL copies of both; generous, since being short means SIGBUS.
        per_vector = 4 * (self._dimension or 384) * (1 + MAX_PHRASINGS)
        return sum(3 * (len(e.content) + len(e.applicability) + 2048 + per_vector) for e in experiences)

    def upsert(self, items: Sequence[tuple[Experience, Embedding]]) -> None:
        import qdrant_edge as qe

        self._ensure_room(self._record_bytes(e for e, _ in items), f"write of {len(items)} experiences")
        for start in range(0, len(items), _UPSERT_BATCH):
            chunk = items[start : start + _UPSERT_BATCH]
            points = [
                qe.Point(e.id, point_vector(v, multi_key=self._multi_key), to_payload(stamped(e))) for e, v in chunk
            ]
            self._call(
                "upsert",
                lambda s, p=points: s.update(qe.UpdateOperation.upsert_points(p)),  # type: ignore[misc]
                touched=[e.id for e, _ in chunk],
            )
            self._since_optimize += len(chunk)

    def update(self, experiences: Sequence[Experience]) -> None:
        import qdrant_edge as qe

        def run(shard: qe.EdgeShard) -> None:
            for e in experiences:
                shard.update(qe.UpdateOperation.overwrite_payload([e.id], to_payload(stamped(e))))

        if experiences:
            self._ensure_room(self._record_bytes(experiences), f"update of {len(experiences)} experiences")
            self._call("update", run, touched=[e.id for e in experiences])

    def insert_new(self, items: Sequence[tuple[Experience, Embedding]]) -> dict[str, Experience]:
        return self._conditional("insert", [(e, stamped(e), v) for e, v in items], insert_only=True)

    def write_if(self, items: Sequence[tuple[Experience, Embedding | None]]) -> dict[str, Experience]:
        return self._conditional("conditional write", [(e, stamped(e), v) for e, v in items], insert_only=False)

    def _conditional(
        self, what: str, wanted: Sequence[tuple[Experience, Experience, Embedding | None]], *, insert_only: bool
    ) -> dict[str, Experience]:
        valid = set(point_ids(e.id for e, _, _ in wanted))
        wanted = [w for w in wanted if w[0].id in valid]
        if not wanted:
            return {}
        ops = conditional_ops(wanted, insert_only=insert_only, multi_key=self._multi_key)
        self._ensure_room(self._record_bytes(new for _, new, _ in wanted), f"{what} of {len(wanted)} experiences")

        def run(shard: qe.EdgeShard) -> None:
            for op in ops:
                shard.update(op)

        self._call(what, run, touched=[new.id for _, new, _ in wanted])
        return written(wanted, self.get([new.id for _, new, _ in wanted]))

    def delete(self, ids: Sequence[str]) -> None:
        import qdrant_edge as qe

        valid = point_ids(ids)
        if valid:
            self._call("delete", lambda s: s.update(qe.UpdateOperation.delete_points(list(valid))), touched=valid)

    def delete_scope(self, scope: Scope) -> int:
        import qdrant_edge as qe

        flt = edge_filter(scope, None) or qe.Filter()
        n = self.count(scope=scope)

        def run(shard: qe.EdgeShard) -> None:
            if self._build is not None:
                self._build.scope_deletes.append(flt)
            shard.update(qe.UpdateOperation.delete_points_by_filter(flt))

        self._call("delete", run)
        return n

    # -- reads ---------------------------------------------------------------------------

    def search(
        self,
        vector: Vector,
        *,
        scope: Scope | None,
        limit: int,
        min_similarity: float | None = None,
        statuses: Sequence[ExperienceStatus] = (ExperienceStatus.ACTIVE,),
        exact_scope: bool = False,
        as_reader: bool = False,
    ) -> list[tuple[Experience, float]]:
        import qdrant_edge as qe

        request = qe.QueryRequest(
            limit=limit,
            query=qe.Query.Nearest(point_vector(vector, multi_key=self._multi_key)),
            filter=edge_filter(scope, statuses, exact=exact_scope, reader=as_reader),
            score_threshold=min_similarity,
            with_payload=True,
        )
        points = self._call("query", lambda s: s.query(request))
        return [(to_record(p.id, p.payload), _clamp(p.score)) for p in points]

    def get(self, ids: Sequence[str], *, with_vectors: bool = False) -> list[tuple[Experience, Vector | None]]:
        valid = point_ids(ids)
        if not valid:
            return []
        records = self._call("retrieve", lambda s: s.retrieve(list(valid), True, with_vectors))
        by_id = {str(r.id): r for r in records}
        return [
            (to_record(r.id, r.payload), to_vector(r.vector) if with_vectors else None)
            for i in ids
            if (r := by_id.get(str(i))) is not None
        ]

    def scan(
        self,
        *,
        scope: Scope | None = None,
        statuses: Sequence[ExperienceStatus] | None = None,
        with_vectors: bool = False,
    ) -> Iterator[tuple[Experience, Vector | None]]:
        import qdrant_edge as qe

        flt = edge_filter(scope, statuses)
        offset: Any = None
        while True:
            request = qe.ScrollRequest(
                offset=offset, limit=_PAGE, filter=flt, with_payload=True, with_vector=with_vectors
            )
            page, offset = self._call("scroll", lambda s, r=request: s.scroll(r))  # type: ignore[misc]
            for r in page:
                yield to_record(r.id, r.payload), to_vector(r.vector) if with_vectors else None
            if offset is None or not page:
                return

    def count(self, *, scope: Scope | None = None, statuses: Sequence[ExperienceStatus] | None = None) -> int:
        import qdrant_edge as qe

        request = qe.CountRequest(exact=True, filter=edge_filter(scope, statuses))
        return int(self._call("count", lambda s: s.count(request)))

    # -- housekeeping --------------------------------------------------------------------

    def maintain(self, force: bool = False) -> bool:
        """Build HNSW indexes and vacuum once ``optimize_every`` points were written since the last time (or
        now, with ``force``). The build runs in a child process on a copy of the shard (see
        :mod:`~expscale_core.store._edge_build`): queries, captures and writes go on meanwhile, and a later call
        swaps the built copy in. ``force`` waits for the build. Returns True when a build was swapped in."""
        if self._build is not None:
            return self._finish_build(wait=force)
        if not force and not self._index_due():
            return False
        return self.build_index(wait=force)

    def build_index(self, *, wait: bool = True) -> bool:
        """Start an index build now (unless one runs); with ``wait``, block this thread until it is swapped in.
        Without, :meth:`maintain` swaps it in once done. Returns True when a build was swapped in."""
        if self._build is None:
            self._start_build()
        return self._finish_build(wait=wait)

    @property
    def building(self) -> bool:
        """An index build is running in the background."""
        return self._build is not None

    def _index_due(self) -> bool:
        if self._since_optimize >= self.optimize_every:
            return True
        if self._checked_backlog:
            return False
        # Once per process: a store opened with many unindexed points (a migration, a bulk import) is due.
        self._checked_backlog = True
        info = self._call("info", lambda s: s.info())
        return bool(info.points_count - info.indexed_vectors_count >= self.optimize_every)

    def _start_build(self) -> None:
        with self._lock:
            if self._shard is None or self._dimension is None:
                return
            self._ensure_room(2 * folder_bytes(self.path), "index build (a copy of the store, then its index)")
            build = IndexBuild(self.path.with_name(self.path.name + ".build"))
            self._build = build  # from here on, every write is noted for the replay
            config = edge_config(self._dimension, multi_key=self._multi_key)

        started = time.perf_counter()
        try:
            copy_shard(build.folder, config, self._page)  # a page at a time under the lock: queries interleave
            build.start()
        except Exception as exc:
            self._drop_build()
            raise StoreError(f"could not start building the index of {self.path}: {exc}") from exc
        self._since_optimize = 0
        log.info("copied %s for an index build in %.1f s", self.path, time.perf_counter() - started)

    def _finish_build(self, *, wait: bool) -> bool:
        import qdrant_edge as qe

        build = self._build
        if build is None:
            return False
        state = build.done(wait=wait)
        if state is None:
            return False
        if not state:
            log.warning("building the index of %s failed, will try again later: %s", self.path, build.error())
            self._drop_build()
            return False
        with self._lock:
            if self._shard is None or self._dimension is None:
                self._drop_build()
                return False
            dimension, config = self._dimension, edge_config(self._dimension, multi_key=self._multi_key)
            try:
                built = qe.EdgeShard.load(str(build.folder), config)
                try:
                    build.replay(self._shard, built)
                    built.flush()
                finally:
                    built.close()
            except Exception as exc:
                self._drop_build()  # the live shard is untouched; a later maintain() builds again
                raise StoreError(f"bringing the index build of {self.path} up to date failed: {exc}") from exc
            self._build = None
            self._shard.close()
            self._shard = None
            try:
                self._swap_in(build.folder, config)
            except Exception as exc:
                # Reopen whichever complete shard is on disk (an unfinished swap is finished or undone there).
                self.ensure_collection(dimension)
                raise StoreError(f"swapping in the index build of {self.path} failed: {exc}") from exc
        log.info("swapped in the indexed copy of %s", self.path)
        return True

    def _drop_build(self) -> None:
        with self._lock:
            build, self._build = self._build, None
        if build is not None:
            build.cancel()

    def index_backlog(self) -> int:
        """Points not covered by an HNSW index yet (searched exactly until the next build)."""
        info = self._call("info", lambda s: s.info())
        return int(info.points_count - info.indexed_vectors_count)

    def compact(self) -> None:
        """Rewrite the shard with only its live points, then remove the old files: Qdrant keeps deleted
        payloads in its WAL and segments until they are vacuumed, and a deletion must leave no copy behind.
        Cost is one pass over the store; the engine runs it after deletions."""
        import qdrant_edge as qe

        self._drop_build()  # its copy may hold what was just deleted
        self._remove_migration_backup()
        with self._lock:
            if self._shard is None or self._dimension is None:
                return
            self._ensure_room(folder_bytes(self.path), "compaction (a rewrite of the store)")
            fresh_dir = self.path.with_name(self.path.name + ".compact")
            config = edge_config(self._dimension, multi_key=self._multi_key)
            try:
                copy_shard(fresh_dir, config, self._page)
                self._shard.close()
                self._shard = None
                self._swap_in(fresh_dir, config)
                self._checked_backlog = False  # the rewritten shard has no HNSW yet: let maintain() look again
            except Exception as exc:
                if self._shard is None and (self.path / "edge_config.json").exists():
                    self._shard = qe.EdgeShard.load(str(self.path), config)
                raise StoreError(f"compacting the Qdrant Edge store at {self.path} failed: {exc}") from exc

    def _remove_migration_backup(self) -> None:
        """The 0.1 migration's backup holds every lesson as it was then, deleted ones included: it goes."""
        note = self.path.with_name(self.path.name + ".migration-backup")
        if not note.exists():
            return
        backup = Path(note.read_text().strip())
        if backup.name != "qdrant.pre-edge-backup" and not backup.name.endswith(".pre-edge-backup"):
            log.warning("ignoring %s: it does not name a migration backup (%s)", note, backup)
        elif backup.exists():
            shutil.rmtree(backup)
            log.warning("removed the expscale 0.1 migration backup %s: it held text a delete() removed", backup)
        note.unlink()

    def _page(self, offset: Any) -> tuple[list[Any], Any]:
        """One page of whole points (payload and vector) from ``offset``, and the next offset."""
        import qdrant_edge as qe

        request = qe.ScrollRequest(offset=offset, limit=_PAGE, with_payload=True, with_vector=True)
        return self._call("scroll", lambda s: s.scroll(request))

    def _swap_in(self, fresh_dir: Path, config: qe.EdgeConfig) -> None:
        """Replace the (closed) shard's folder with ``fresh_dir`` and open it. An interruption between the
        renames is finished by ``ensure_collection`` on the next open."""
        import qdrant_edge as qe

        old_dir = self.path.with_name(self.path.name + ".old")
        self.path.rename(old_dir)
        fresh_dir.rename(self.path)
        shutil.rmtree(old_dir)
        self._shard = qe.EdgeShard.load(str(self.path), config)

    def flush(self) -> None:
        self._call("flush", lambda s: s.flush())

    def close(self) -> None:
        self._drop_build()
        with self._lock:
            if self._closed:
                return
            self._closed = True
            shard, self._shard = self._shard, None
            if shard is not None:
                try:
                    shard.close()
                except Exception as exc:
                    raise StoreError(f"closing the Qdrant Edge store at {self.path} failed: {exc}") from exc
                finally:
                    if self._on_close is not None:
                        self._on_close()
            elif self._on_close is not None:
                self._on_close()
