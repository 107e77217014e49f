"""Group commit for capture: the caller's thread appends to memory, one writer thread commits in batches.

``record()`` must cost microseconds, and a SQLite commit costs a millisecond or more. So captured episodes wait in
a buffer, and a writer thread commits whatever accumulated every ``interval_s`` in one transaction. The buffer is
drained *inside* the queue's transactions (every queue operation commits it first, so nothing reads around it),
given back if a transaction fails, and committed at interpreter exit.
"""

from __future__ import annotations

import atexit
import logging
import threading
import weakref
from collections import deque
from collections.abc import Callable

from expscale_core.episode import Episode, EpisodeDraft
from expscale_core.errors import QueueError

__all__ = ["GroupCommit"]

log = logging.getLogger(__name__)
_LIVE: weakref.WeakSet[GroupCommit] = weakref.WeakSet()


@atexit.register
def _commit_on_exit() -> None:
    # A normal interpreter exit commits what capture buffered; only a hard kill can lose it.
    for buffer in list(_LIVE):
        try:
            buffer.commit()
        except Exception as exc:
            log.error("expscale: could not commit captured episodes at exit: %s", exc)


class GroupCommit:
    """Episodes captured but not committed yet, and the thread that commits them.

    ``commit`` runs one transaction that calls :meth:`drain` (and :meth:`give_back` if it fails). Each
    callback given to :meth:`listen` runs on the writer after each batch it committed: the distiller is woken once
    per batch, by the thread that made the batch durable, instead of once per capture by the caller's thread.
    """

    def __init__(self, commit: Callable[[], None], interval_s: float) -> None:
        self.commit = commit
        self.interval_s = interval_s
        self._listeners: list[Callable[[], None]] = []
        self._episodes: deque[Episode | EpisodeDraft] = deque()
        self._writer: threading.Thread | None = None
        self._wake = threading.Event()
        self._closed = threading.Event()
        self._lock = threading.Lock()
        _LIVE.add(self)

    def __len__(self) -> int:
        return len(self._episodes)

    def append(self, episode: Episode | EpisodeDraft) -> None:
        self._episodes.append(episode)
        if not self._wake.is_set():  # the first capture of a batch wakes the writer; the rest only append
            self._kick()

    def _kick(self) -> None:
        # Supervised: a writer that died is replaced. Checked only here, at the first capture of a batch: a writer
        # clears the event before anything that could kill it, so one that died left it clear.
        writer = self._writer
        if writer is None or not writer.is_alive():
            self._start()
        self._wake.set()

    def listen(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call ``callback`` after each batch the writer committed; returns the function that stops it."""
        self._listeners.append(callback)

        def stop() -> None:
            if callback in self._listeners:
                self._listeners.remove(callback)

        return stop

    def drain(self) -> list[Episode | EpisodeDraft]:
        batch: list[Episode | EpisodeDraft] = []
        while self._episodes:
            batch.append(self._episodes.popleft())
        return batch

    def give_back(self, batch: list[Episode | EpisodeDraft]) -> None:
        """A batch whose transaction failed goes back in front, in order, for the next try."""
        self._episodes.extendleft(reversed(batch))

    def _start(self) -> None:
        with self._lock:
            if (self._writer is None or not self._writer.is_alive()) and not self._closed.is_set():
                self._writer = threading.Thread(target=self._loop, name="expscale-capture", daemon=True)
                self._writer.start()

    def _loop(self) -> None:
        backoff = self.interval_s
        while not self._closed.is_set():
            self._wake.wait()
            self._wake.clear()
            if self._closed.wait(backoff):  # a burst of captures shares one commit; close() commits the rest
                return
            try:
                if self._episodes:
                    self.commit()
                    self._committed()
                backoff = self.interval_s
            except Exception as exc:  # the writer never dies: what it could not commit stays buffered
                backoff = min(max(backoff * 2, 0.5), 30.0)
                level = logging.WARNING if isinstance(exc, QueueError) else logging.ERROR
                log.log(level, "expscale: %d captured episodes wait in memory, commit failed: %s", len(self), exc)
                self._wake.set()

    def _committed(self) -> None:
        for listener in list(self._listeners):
            try:
                listener()
            except Exception:  # the batch is durable; whoever listens polls too, so a failed wake only delays it
                log.exception("expscale: could not report a commit of captured episodes")

    def close(self) -> None:
        """Stop the writer; the caller commits what is left."""
        self._closed.set()
        self._wake.set()
        if self._writer is not None:
            self._writer.join(timeout=5)
        _LIVE.discard(self)
