"""The subscription loop's backoff: it grows for a server that answers nothing, and
stays short for one that answers part of each pass (a connection losing replies)."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

from persistence import EventStoreUnavailable, RecordedEvent
from persistence._subscription import Delivery, RunningSubscription


class _Backend:
    """A ``GroupBackend`` with nothing to deliver, whose claims always fail, and whose
    read-backs of pending entries fail too unless ``answers_read_back``."""

    def __init__(self, *, answers_read_back: bool) -> None:
        self.answers_read_back = answers_read_back
        self.attempts: list[float] = []  # when each pass began
        self.closed = threading.Event()

    def ensure_group(self) -> None:
        pass

    def own_pending(self, counted: bool = True) -> list[Delivery]:
        self.attempts.append(time.monotonic())
        if self.answers_read_back:
            return []
        raise EventStoreUnavailable("no answer")

    def read_new(self, block: float, ack: Sequence[Delivery] = ()) -> list[Delivery]:
        raise AssertionError("never reached: every claim fails")

    def claim(self, min_idle: float) -> list[Delivery]:
        raise EventStoreUnavailable("reply lost")

    def redeliver(self, delivery: Delivery) -> Delivery | None:
        return None

    def ack(self, deliveries: Sequence[Delivery]) -> None:
        pass

    def dead_letter(self, delivery: Delivery, error: str, traceback: str) -> None:
        pass

    def close(self) -> None:
        self.closed.set()


def _passes_in(seconds: float, backend: _Backend) -> int:
    def handler(event: RecordedEvent) -> None:
        raise AssertionError("nothing to handle")

    subscription = RunningSubscription(
        backend, group="g", consumer="c", handler=handler, claim_idle=30.0,
        max_deliveries=3, retry_delay=0.0,
    )
    time.sleep(seconds)
    subscription.stop(timeout=5)
    assert backend.closed.is_set()
    return len(backend.attempts)


def test_a_server_that_answers_nothing_is_asked_again_less_and_less_often() -> None:
    # Waits 0.05, 0.1, 0.2, 0.4, 0.8 s...: at most 5 passes in 1.2 s.
    assert _passes_in(1.2, _Backend(answers_read_back=False)) <= 5


def test_a_server_that_answers_part_of_each_pass_is_asked_again_after_the_shortest_wait() -> None:
    # Every pass fails at its claim, after the server answered its read-back: the
    # connection loses replies, the server is up, so each retry waits 0.05 s (the
    # rule before it waited as for a server down, and 2 s per error soon).
    assert _passes_in(1.2, _Backend(answers_read_back=True)) >= 12
