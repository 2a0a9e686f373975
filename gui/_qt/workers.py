"""Engine calls off the GUI thread: one serial lane where the newest request of a kind wins.

Slider moves arrive far faster than a model runs. Every job carries a key
("preview", "session", ...); submitting a job replaces a waiting job with the
same key, and when a running job's key has been submitted again meanwhile its
result is dropped as stale. Jobs without a key (commits) are never dropped.
One job runs at a time and the next starts only after the GUI thread has taken
the previous result, so a job can rely on state its predecessors set.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QObject, QThreadPool, Signal
from superqt.utils import create_worker

log = logging.getLogger(__name__)


@dataclass
class Job:
    """A callable for the worker thread and the GUI-thread callbacks that receive its outcome."""

    fn: Callable[[], Any]
    on_result: Callable[[Any], None]
    on_error: Callable[[BaseException], None] | None
    key: str | None
    ticket: int
    submitted_at: float


class JobRunner(QObject):
    """Runs jobs one at a time on the global thread pool; newest-wins per key; reports busy and latency."""

    busy_changed = Signal(bool)
    job_failed = Signal(object)  # an exception no job-specific handler took
    job_timed = Signal(str, float)  # key, seconds from the job's start to its result on the GUI thread

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._queue: deque[Job] = deque()
        self._running: Job | None = None
        self._worker: Any = None  # keeps the running superqt worker alive until it reports
        self._latest: dict[str, int] = {}
        self._tickets = itertools.count(1)
        self.started: dict[str, int] = {}  # jobs actually started, per key: how well coalescing works

    def submit(
        self,
        fn: Callable[[], Any],
        on_result: Callable[[Any], None],
        *,
        key: str | None = None,
        on_error: Callable[[BaseException], None] | None = None,
    ) -> int:
        """Queue `fn`; with a key, a waiting job of that key is replaced and a running one made stale."""
        ticket = next(self._tickets)
        if key is not None:
            self._latest[key] = ticket
            self._queue = deque(job for job in self._queue if job.key != key)
        self._queue.append(Job(fn, on_result, on_error, key, ticket, time.perf_counter()))
        self._pump()
        return ticket

    def cancel(self, key: str) -> None:
        """Forget waiting jobs of `key` and drop the result of a running one."""
        self._latest[key] = next(self._tickets)
        self._queue = deque(job for job in self._queue if job.key != key)

    def is_idle(self) -> bool:
        return self._running is None and not self._queue

    def wait(self, msecs: int = 10_000) -> bool:
        """Block until the running job's thread is done (closing the window, ending a test)."""
        return QThreadPool.globalInstance().waitForDone(msecs)

    def _is_stale(self, job: Job) -> bool:
        return job.key is not None and self._latest.get(job.key) != job.ticket

    def _pump(self) -> None:
        if self._running is not None:
            return
        if not self._queue:
            self.busy_changed.emit(False)
            return
        job = self._queue.popleft()
        self._running = job
        self.started[job.key or ""] = self.started.get(job.key or "", 0) + 1
        self.busy_changed.emit(True)
        started_at = time.perf_counter()
        worker = create_worker(job.fn, _start_thread=False, _ignore_errors=True)  # errors go to _finish
        worker.returned.connect(lambda result: self._finish(job, started_at, result, None))
        worker.errored.connect(lambda error: self._finish(job, started_at, None, error))
        self._worker = worker
        worker.start()

    def _finish(self, job: Job, started_at: float, result: Any, error: BaseException | None) -> None:
        self._running = None
        self._worker = None
        try:
            if self._is_stale(job):
                log.debug("dropped a stale %s result", job.key)
            elif error is not None:
                if job.on_error is not None:
                    job.on_error(error)
                else:
                    self.job_failed.emit(error)
            else:
                self.job_timed.emit(job.key or "", time.perf_counter() - started_at)
                job.on_result(result)
        finally:
            self._pump()
