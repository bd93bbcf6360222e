"""Clocks: what reducers read the time from, and what times delayed effects.

``SystemClock`` reads wall-clock time and fires delays on one shared timer thread.
``ManualClock`` only moves when a test calls ``advance``, which fires the due delays
in time order on the caller's thread, so timeouts become deterministic.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections.abc import Callable
from typing import Protocol, runtime_checkable

__all__ = ["Clock", "ManualClock", "SystemClock", "Timer"]


class Timer(Protocol):
    """A scheduled callback that can still be cancelled."""

    def cancel(self) -> None:
        """Make sure the callback does not run (no effect once it has run)."""


class _Waitable(Protocol):
    def wait(self, timeout: float | None = None) -> bool: ...


@runtime_checkable
class Clock(Protocol):
    """The time, and the scheduling of delays.

    ``now()`` is seconds since the epoch (deadlines stored in events survive a
    restart). ``call_later`` runs ``callback`` once ``delay`` seconds have passed on
    this clock. A callback may return an object with ``wait(timeout)``; a
    ``ManualClock`` waits on it before it fires the next timer, so that delays
    scheduled by the fired action are seen within the same ``advance``.
    """

    def now(self) -> float: ...

    def call_later(self, delay: float, callback: Callable[[], object]) -> Timer: ...


class _TimerEntry:
    __slots__ = ("callback", "cancelled", "due", "owner", "seq")

    def __init__(
        self,
        due: float,
        seq: int,
        callback: Callable[[], object],
        owner: SystemClock | None = None,
    ) -> None:
        self.due = due
        self.seq = seq
        self.callback: Callable[[], object] | None = callback
        self.cancelled = False
        self.owner = owner

    def __lt__(self, other: _TimerEntry) -> bool:
        return (self.due, self.seq) < (other.due, other.seq)

    def cancel(self) -> None:
        if self.cancelled:
            return
        self.cancelled = True
        owner = self.owner
        if owner is not None:
            # A cancelled entry stays in the SystemClock's heap until it is due;
            # without its callback (the task, its handle, its action) it is one small
            # object, not a graph the collector walks for the whole delay.
            self.callback = None
            self.owner = None
            owner._cancelled_one()


class SystemClock:
    """Wall-clock time; delays fire on one daemon thread shared by all its users.

    Callbacks must be quick (the store's only posts a message to its mailbox): a
    slow callback delays the timers after it. The thread ends once no timer has been
    pending for ``linger`` seconds and starts again with the next ``call_later``, so
    a clock that is done with leaves no thread behind.
    """

    def __init__(self, *, linger: float = 5.0) -> None:
        self._linger = linger
        self._heap: list[_TimerEntry] = []
        self._seq = itertools.count()
        self._cond = threading.Condition(threading.Lock())
        self._thread: threading.Thread | None = None
        self._cancelled = 0  # entries cancelled but still in the heap (approximate)

    def now(self) -> float:
        return time.time()

    def _cancelled_one(self) -> None:
        # Stores re-arm a deadline timer at every step, so most entries are cancelled
        # long before they are due: drop them once they are most of the heap, so it
        # stays the size of the live timers (amortized O(1) per cancel).
        self._cancelled += 1
        if self._cancelled > 1024 and self._cancelled * 2 > len(self._heap):
            with self._cond:
                self._heap = [entry for entry in self._heap if not entry.cancelled]
                heapq.heapify(self._heap)
                self._cancelled = 0
        elif self._cancelled >= len(self._heap):
            # Perhaps nothing is pending any more (a stopped store's timers): wake the
            # thread, asleep until the first one's due time, to drop them and go.
            with self._cond:
                self._cond.notify()

    def call_later(self, delay: float, callback: Callable[[], object]) -> Timer:
        entry = _TimerEntry(time.monotonic() + max(0.0, delay), next(self._seq), callback, self)
        with self._cond:
            heapq.heappush(self._heap, entry)
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="actors-clock", daemon=True)
                self._thread.start()
            elif self._heap[0] is entry:
                self._cond.notify()
        return entry

    def _loop(self) -> None:
        while True:
            with self._cond:
                while True:
                    while self._heap and self._heap[0].cancelled:
                        heapq.heappop(self._heap)
                        self._cancelled = max(0, self._cancelled - 1)
                    if not self._heap:
                        if self._cond.wait(self._linger) or self._heap:
                            continue
                        self._thread = None  # under the lock: call_later starts another
                        return
                    wait = self._heap[0].due - time.monotonic()
                    if wait <= 0:
                        entry = heapq.heappop(self._heap)
                        break
                    self._cond.wait(wait)
            callback = entry.callback
            entry.owner = None
            if not entry.cancelled and callback is not None:
                try:
                    callback()
                except Exception:  # a timer callback must not kill the timer thread
                    import logging

                    logging.getLogger(__name__).exception("timer callback raised")


_shared_system_clock: SystemClock | None = None
_shared_lock = threading.Lock()


def shared_system_clock() -> SystemClock:
    """The process-wide ``SystemClock`` that stores use when given no clock."""
    global _shared_system_clock
    with _shared_lock:
        if _shared_system_clock is None:
            _shared_system_clock = SystemClock()
        return _shared_system_clock


class ManualClock:
    """A clock that moves only when ``advance`` is called: deterministic timeouts.

    Args:
        start: the initial ``now()``, seconds since the epoch.
        settle_timeout: how long ``advance`` waits for a store to reduce a fired
            action before it fires the next timer.
    """

    def __init__(self, start: float = 0.0, *, settle_timeout: float = 10.0) -> None:
        self._now = float(start)
        self._heap: list[_TimerEntry] = []
        self._seq = itertools.count()
        self._lock = threading.RLock()
        self._settle_timeout = settle_timeout

    def now(self) -> float:
        return self._now

    def call_later(self, delay: float, callback: Callable[[], object]) -> Timer:
        with self._lock:
            entry = _TimerEntry(self._now + max(0.0, delay), next(self._seq), callback)
            heapq.heappush(self._heap, entry)
            return entry

    @property
    def pending(self) -> int:
        """How many timers are scheduled and not cancelled."""
        with self._lock:
            return sum(1 for entry in self._heap if not entry.cancelled)

    def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds``, firing due timers in time order.

        Timers scheduled by the fired callbacks fire within the same call when they
        fall due before its end. Ties fire in the order they were scheduled.
        """
        if seconds < 0:
            raise ValueError(f"time cannot go backwards: advance({seconds})")
        with self._lock:
            target = self._now + seconds
        while True:
            with self._lock:
                while self._heap and self._heap[0].cancelled:
                    heapq.heappop(self._heap)
                if not self._heap or self._heap[0].due > target:
                    self._now = target
                    return
                entry = heapq.heappop(self._heap)
                self._now = max(self._now, entry.due)
            callback = entry.callback
            assert callback is not None  # only a SystemClock's entries give theirs up
            result = callback()
            wait = getattr(result, "wait", None)
            if callable(wait):
                wait(self._settle_timeout)

    def run_all(self) -> None:
        """Advance until no timer is left (timers that keep re-arming never end)."""
        while True:
            with self._lock:
                live = [entry for entry in self._heap if not entry.cancelled]
                if not live:
                    return
                due = min(live).due
            self.advance(max(0.0, due - self._now))
