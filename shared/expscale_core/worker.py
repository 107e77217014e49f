"""The background distillation worker: one daemon thread that yields to the caller's requests."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

__all__ = ["BackgroundWorker"]

log = logging.getLogger(__name__)


class BackgroundWorker:
    """Runs ``step`` on its own thread whenever it is woken and the caller has been idle.

    ``step(draining)`` does one batch of work and returns how many items it handled. The worker
    only steps after no request has been active for ``idle_s`` (the paper's frontend distills when
    idle), except while someone waits in :meth:`drain`.
    """

    def __init__(self, step: Callable[[bool], int], *, idle_s: float = 0.05, poll_s: float = 0.5) -> None:
        self._step = step
        self._idle_s = idle_s
        self._poll_s = poll_s
        self._wake = threading.Condition()
        self._stop = False
        self._draining = 0
        self._active = 0
        self._last_request = 0.0
        self._thread: threading.Thread | None = None
        self._sleeping = False  # between polls with nothing to do: the only time a nudge must wake it
        self._stepping = threading.Lock()  # held for each step, so a caller can keep steps out (paused())

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def started(self) -> bool:
        """Started and not stopped since; unlike :attr:`running` it does not ask the thread whether it lives, so
        it costs an attribute read (capture asks it for every episode)."""
        return self._thread is not None

    def start(self) -> None:
        with self._wake:
            if self.running:
                return
            self._stop = False
            self._thread = threading.Thread(target=self._loop, name="expscale-distiller", daemon=True)
            self._thread.start()

    def notify(self) -> None:
        with self._wake:
            self._wake.notify_all()

    def nudge(self) -> None:
        """New work arrived (a capture, feedback): start the thread, or wake it if it sleeps between polls.
        Takes no lock when the worker is already awake or waiting for the caller to go idle: a capture must
        not make the worker contend with the caller's thread for every episode."""
        if not self.running:
            self.start()
        elif self._sleeping:
            self.notify()

    @contextmanager
    def request(self) -> Iterator[None]:
        """Mark a caller request in flight; the worker waits for it to end."""
        with self._wake:
            self._active += 1
        try:
            yield
        finally:
            with self._wake:
                self._active -= 1
                self._last_request = time.monotonic()
                self._wake.notify_all()

    @contextmanager
    def paused(self) -> Iterator[None]:
        """No background step runs inside this block; a step in flight finishes first (its claims with it)."""
        with self._stepping:
            yield

    def touch(self) -> None:
        """Count a short caller action (a capture) as activity, without taking the worker's lock."""
        self._last_request = time.monotonic()

    @contextmanager
    def draining(self) -> Iterator[None]:
        with self._wake:
            self._draining += 1
            self._wake.notify_all()
        try:
            yield
        finally:
            with self._wake:
                self._draining -= 1

    def _busy(self) -> float:
        """Seconds to wait before the caller counts as idle; 0 when idle or draining."""
        if self._draining:
            return 0.0
        if self._active:
            return self._idle_s or 0.01
        return max(0.0, self._last_request + self._idle_s - time.monotonic())

    def _loop(self) -> None:
        while True:
            with self._wake:
                while not self._stop and (wait := self._busy()) > 0:
                    self._wake.wait(wait)
                if self._stop:
                    return
                draining = self._draining > 0
            try:
                with self._stepping:
                    handled = self._step(draining)
            except Exception:  # the worker must outlive any one bad batch; the queue keeps the data
                log.exception("expscale background step failed; will retry")
                handled = 0
            if handled == 0:
                with self._wake:
                    if not self._stop and not self._draining:
                        self._sleeping = True
                        self._wake.wait(self._poll_s)
                        self._sleeping = False
                    elif self._draining:
                        self._wake.wait(0.05)

    def stop(self, timeout: float | None = 10.0) -> None:
        with self._wake:
            self._stop = True
            self._wake.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning("expscale worker did not stop within %ss; its claimed episodes stay queued", timeout)
            self._thread = None
