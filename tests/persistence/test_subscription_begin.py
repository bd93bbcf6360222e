"""A handler with ``begin`` (the saga's bus): a read's events are all begun, then each
finished; a failed one is retried like any failed delivery, and each is acknowledged
only once finished. Run on the memory and the Redis adapter."""

from __future__ import annotations

import threading
from collections.abc import Callable

from persistence import ANY, Persistence, RecordedEvent
from tests.persistence.conftest import wait_for
from tests.persistence.events import Deposited


class Begun:
    """Begins every event at once; each finish waits for ``release``."""

    def __init__(self, fail_first: set[int] | None = None) -> None:
        self.lock = threading.Lock()
        self.begun: list[int] = []
        self.finished: list[int] = []
        self.called: list[int] = []
        self.release = threading.Event()
        self.fail_first = set(fail_first or ())

    def __call__(self, recorded: RecordedEvent) -> None:
        with self.lock:
            self.called.append(recorded.event.amount)  # type: ignore[attr-defined]
        self.begin(recorded)()

    def begin(self, recorded: RecordedEvent) -> Callable[[], None]:
        amount: int = recorded.event.amount  # type: ignore[attr-defined]
        with self.lock:
            self.begun.append(amount)

        def finish() -> None:
            assert self.release.wait(10)
            with self.lock:
                if amount in self.fail_first:
                    self.fail_first.discard(amount)
                    raise RuntimeError(f"first handling of {amount} failed")
                self.finished.append(amount)

        return finish


def test_every_event_of_a_read_is_begun_before_the_first_is_finished(
    adapter: Persistence,
) -> None:
    for n in range(5):
        adapter.events.append("s", [Deposited(account="s", amount=n)], ANY)
    handler = Begun()
    subscription = adapter.subscriptions.subscribe("g", handler, retry_delay=0.01)
    try:
        assert wait_for(lambda: len(handler.begun) == 5)
        assert handler.finished == []  # nothing waited before everything was handed over
        handler.release.set()
        assert wait_for(lambda: len(handler.finished) == 5)
    finally:
        assert subscription.stop(5)
    assert handler.finished == [0, 1, 2, 3, 4]
    assert handler.called == []


def test_a_failed_finish_is_delivered_again_and_nothing_is_lost_or_left_pending(
    adapter: Persistence,
) -> None:
    for n in range(4):
        adapter.events.append("s", [Deposited(account="s", amount=n)], ANY)
    handler = Begun(fail_first={1, 3})
    handler.release.set()
    subscription = adapter.subscriptions.subscribe("g", handler, retry_delay=0.01)
    try:
        assert wait_for(lambda: sorted(handler.finished) == [0, 1, 2, 3])
    finally:
        assert subscription.stop(5)
    assert sorted(handler.called) == [1, 3]  # retried through the ordinary path
    # Everything was acknowledged: a consumer of the same name gets nothing back.
    again = Begun()
    again.release.set()
    resumed = adapter.subscriptions.subscribe("g", again, consumer=subscription.consumer)
    try:
        adapter.events.append("s", [Deposited(account="s", amount=9)], ANY)
        assert wait_for(lambda: 9 in again.finished)
    finally:
        assert resumed.stop(5)
    assert again.finished == [9]
