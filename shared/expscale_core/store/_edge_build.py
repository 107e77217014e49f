"""Building a Qdrant Edge shard's HNSW index without stopping the process that serves it.

qdrant-edge's ``optimize()`` holds the GIL for as long as it runs (about 100 s at 100k points on 2 cores): every
thread of the process stops, queries and captures included. So the index is built elsewhere. The live shard is
copied page by page into a sibling folder (the store's lock is released between pages, so queries go on), a
child process optimizes the copy at low priority, and the store swaps the copy in once the child is done, after
replaying onto it every write that arrived since the copy began.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import qdrant_edge as qe

__all__ = ["IndexBuild"]

_CHILD = """
import os, signal, sys
try:  # Linux: die with the parent, so a build never outlives a killed app (its folder is removed on next open)
    import ctypes
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
except (OSError, AttributeError):
    pass
if os.getppid() != int(sys.argv[2]):  # the parent died before prctl took effect
    sys.exit(1)
if hasattr(os, "nice"):
    os.nice(10)  # the app's threads come first
import qdrant_edge as qe
shard = qe.EdgeShard.load(sys.argv[1])
shard.optimize()
shard.flush()
shard.close()
"""


class IndexBuild:
    """One index build in progress: the copy's folder, its child process, and what changed since the copy."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.dirty: set[str] = set()
        """Ids written (upserted, updated, deleted) on the live shard since the copy began."""
        self.scope_deletes: list[qe.Filter] = []
        self._child: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self._child = subprocess.Popen(
            [sys.executable, "-c", _CHILD, str(self.folder), str(os.getpid())],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )

    def done(self, wait: bool = False) -> bool | None:
        """None while the child runs; then True if it built the index, False if it failed."""
        if self._child is None:
            return False
        if wait:
            self._child.wait()
        code = self._child.poll()
        return None if code is None else code == 0

    def error(self) -> str:
        if self._child is None or self._child.stderr is None:
            return "not started"
        return self._child.stderr.read().decode(errors="replace").strip().splitlines()[-1:][0] or "no output"

    def replay(self, live: qe.EdgeShard, built: qe.EdgeShard) -> None:
        """Bring ``built`` up to date with ``live``: scope deletions first, then the current state of every
        written id (present: copied; gone: deleted)."""
        import qdrant_edge as qe

        for flt in self.scope_deletes:
            built.update(qe.UpdateOperation.delete_points_by_filter(flt))
        ids = sorted(self.dirty)
        for start in range(0, len(ids), 1024):
            chunk = ids[start : start + 1024]
            records = [r for r in live.retrieve(list(chunk), True, True) if r.vector is not None]
            present = {str(r.id) for r in records}
            if records:
                built.update(qe.UpdateOperation.upsert_points([qe.Point(r.id, r.vector, r.payload) for r in records]))  # type: ignore[arg-type]
            gone: list[int | uuid.UUID | str] = [i for i in chunk if i not in present]
            if gone:
                built.update(qe.UpdateOperation.delete_points(gone))

    def cancel(self) -> None:
        if self._child is not None and self._child.poll() is None:
            self._child.kill()
            self._child.wait()
        if self._child is not None and self._child.stderr is not None:
            self._child.stderr.close()
        shutil.rmtree(self.folder, ignore_errors=True)
