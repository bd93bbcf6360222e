"""``EffectPool``: the executor stores share when given none.

A ``ThreadPoolExecutor`` spends some 20 µs of Python per job on bookkeeping a store
does not need (a ``Future`` with its condition and lock, an idle semaphore, shutdown
locks, the result set and notified): a reservation of the ticketing example runs
about ten effects. ``execute(fn)`` is the store's way in: a queue put, and a thread
started only when no worker is idle. ``submit`` is there for everyone else, with a
real ``Future``.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import Any, TypeVar

__all__ = ["EffectPool"]

T = TypeVar("T")

log = logging.getLogger("actors.pool")

_STOP = None


class EffectPool(Executor):
    """Up to ``max_workers`` daemon threads running the functions put in its queue.

    Workers are started on demand and never retire. Like the stores' own threads
    they are daemons: a forgotten pool must not keep the process alive.
    """

    def __init__(self, max_workers: int, thread_name_prefix: str) -> None:
        if max_workers < 1:
            raise ValueError(f"max_workers must be at least 1, got {max_workers}")
        self._max_workers = max_workers
        self._prefix = thread_name_prefix
        self._queue: queue.SimpleQueue[Callable[[], object] | None] = queue.SimpleQueue()
        # One token per worker waiting for a job and not yet promised one: deque's
        # append and pop are atomic, so no lock is taken per job.
        self._idle: deque[None] = deque()
        self._threads: list[threading.Thread] = []
        self._start_lock = threading.Lock()
        self._shutdown = False

    def execute(self, fn: Callable[[], object]) -> None:
        """Run ``fn()`` on a worker; what it raises is logged (callers catch their own).

        Raises:
            RuntimeError: the pool is shut down.
        """
        if self._shutdown:
            raise RuntimeError("cannot schedule new work after shutdown")
        self._queue.put(fn)
        try:
            self._idle.pop()
        except IndexError:
            self._start_worker()

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        job = _Submitted(fn, args, kwargs)
        self.execute(job)
        return job.future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._start_lock:
            self._shutdown = True
            threads = list(self._threads)
        if cancel_futures:
            while True:
                try:
                    job = self._queue.get_nowait()
                except queue.Empty:
                    break
                if isinstance(job, _Submitted):
                    job.future.cancel()
        for _ in threads:
            self._queue.put(_STOP)
        if wait:
            for thread in threads:
                if thread is not threading.current_thread():
                    thread.join()

    def _start_worker(self) -> None:
        with self._start_lock:
            if self._shutdown or len(self._threads) >= self._max_workers:
                return  # the job waits for a worker to be free
            thread = threading.Thread(
                target=self._work,
                name=f"{self._prefix}_{len(self._threads)}",
                daemon=True,
            )
            self._threads.append(thread)
        thread.start()

    def _work(self) -> None:
        jobs = self._queue
        idle = self._idle
        # A new worker was started for a job already queued: it promises nothing
        # until that one is done.
        while True:
            fn = jobs.get()
            if fn is _STOP:
                return
            try:
                fn()
            except BaseException:  # a worker must outlive what it runs
                log.exception("effect pool: %r raised", fn)
            del fn
            idle.append(None)


class _Submitted:
    """A ``submit`` call: its function, run once, and the future that reports it."""

    __slots__ = ("args", "fn", "future", "kwargs")

    def __init__(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]):
        self.fn = fn
        self.args = args
        self.kwargs = kwargs
        self.future: Future[Any] = Future()

    def __call__(self) -> None:
        if not self.future.set_running_or_notify_cancel():
            return
        try:
            result = self.fn(*self.args, **self.kwargs)
        except BaseException as error:
            self.future.set_exception(error)
        else:
            self.future.set_result(result)
