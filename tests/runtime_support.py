"""Helpers shared by the runtime's tests: starting stores that are always stopped.

Tests wait on events with ``WAIT`` as their timeout, so a broken runtime fails a test
instead of hanging the run.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from actors import ActorsError, Clock, ManualClock, Store, StoreRef

WAIT = 5.0
"""How long a test waits for something that should happen (a failure, not a hang)."""


@dataclass
class Env:
    """An environment of the tests: a clock, and callbacks a reducer may call."""

    clock: Clock = field(default_factory=ManualClock)
    log: list[Any] = field(default_factory=list)
    hooks: dict[str, Callable[..., Any]] = field(default_factory=dict)
    _events: dict[str, threading.Event] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def event(self, name: str) -> threading.Event:
        """The event called ``name`` (made on first use, from any thread)."""
        with self._lock:
            return self._events.setdefault(name, threading.Event())

    def mark(self, name: str) -> None:
        """Say that ``name`` happened (a reducer or an effect calls this)."""
        self.event(name).set()

    def reached(self, name: str, timeout: float | None = None) -> bool:
        """Wait until ``name`` has happened; False if it did not within ``timeout``."""
        return self.event(name).wait(WAIT if timeout is None else timeout)


class Stores:
    """Starts stores and stops every one of them at the end of the test."""

    def __init__(self) -> None:
        self.refs: list[StoreRef[Any, Any]] = []
        self.gates: list[threading.Event] = []
        self.executors: list[ThreadPoolExecutor] = []

    def start(
        self, reducer: Any, state: Any, env: Any = None, **options: Any
    ) -> StoreRef[Any, Any]:
        ref: StoreRef[Any, Any] = Store.start(reducer, state, env, **options)
        self.refs.append(ref)
        return ref

    def gate(self) -> threading.Event:
        """An event that blocks a reducer or an effect; set at teardown at the latest."""
        event = threading.Event()
        self.gates.append(event)
        return event

    def executor(self, workers: int = 4) -> ThreadPoolExecutor:
        """An executor of the test's own (shut down at teardown)."""
        executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="test-effect")
        self.executors.append(executor)
        return executor

    def close(self) -> None:
        for gate in self.gates:
            gate.set()
        for ref in self.refs:
            with contextlib.suppress(ActorsError):
                ref.stop(timeout=1.0)
        for executor in self.executors:
            executor.shutdown(wait=True, cancel_futures=True)


@contextlib.contextmanager
def started_stores() -> Iterator[Stores]:
    stores = Stores()
    try:
        yield stores
    finally:
        stores.close()
