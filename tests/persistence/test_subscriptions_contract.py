"""The Subscriptions contract, run on the memory and the Redis adapter."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from persistence import ANY, NO_STREAM, Persistence, RecordedEvent, Subscription
from tests.persistence.conftest import wait_for
from tests.persistence.events import Deposited, Withdrawn


class ConsumerDied(BaseException):
    """Raised by a handler to end its subscription at once, as a killed process would."""


class Recorder:
    """A handler recording what it got; ``until(n)`` waits for the n-th event."""

    def __init__(self, behaviour: Callable[[RecordedEvent], None] | None = None) -> None:
        self.events: list[RecordedEvent] = []
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._behaviour = behaviour

    def __call__(self, event: RecordedEvent) -> None:
        if self._behaviour is not None:
            self._behaviour(event)
        with self._changed:
            self.events.append(event)
            self._changed.notify_all()

    def until(self, count: int, timeout: float = 5.0) -> bool:
        with self._changed:
            return self._changed.wait_for(lambda: len(self.events) >= count, timeout)

    def amounts(self) -> list[int]:
        with self._lock:
            return [e.event.amount for e in self.events]  # type: ignore[attr-defined]


def deposit(store: Persistence, stream: str, amount: int) -> None:
    store.events.append(stream, [Deposited(account=stream, amount=amount)], ANY)


def test_a_subscription_from_the_beginning_gets_every_event_in_order_per_stream(
    adapter: Persistence,
) -> None:
    for n in range(6):
        deposit(adapter, f"s{n % 3}", n)
    recorder = Recorder()

    subscription = adapter.subscriptions.subscribe("all", recorder)
    try:
        assert recorder.until(6)
    finally:
        assert subscription.stop(5)

    by_stream: dict[str, list[int]] = {}
    for event in recorder.events:
        by_stream.setdefault(event.stream_id, []).append(event.version)
    assert by_stream == {"s0": [1, 2], "s1": [1, 2], "s2": [1, 2]}


def test_a_subscription_from_now_gets_only_events_appended_after_subscribing(
    adapter: Persistence,
) -> None:
    deposit(adapter, "s", 1)
    recorder = Recorder()
    subscription = adapter.subscriptions.subscribe("late", recorder, start="now")
    try:
        deposit(adapter, "s", 2)
        assert recorder.until(1)
    finally:
        subscription.stop(5)
    assert recorder.amounts() == [2]


def test_two_groups_each_get_every_event(adapter: Persistence) -> None:
    deposit(adapter, "s", 1)
    deposit(adapter, "s", 2)
    first, second = Recorder(), Recorder()
    subscriptions = [
        adapter.subscriptions.subscribe("one", first),
        adapter.subscriptions.subscribe("two", second),
    ]
    try:
        assert first.until(2)
        assert second.until(2)
    finally:
        for subscription in subscriptions:
            subscription.stop(5)
    assert first.amounts() == second.amounts() == [1, 2]


def test_consumers_of_one_group_share_the_events_between_them(adapter: Persistence) -> None:
    everything = Recorder()
    a, b = Recorder(everything), Recorder(everything)
    subscriptions = [
        adapter.subscriptions.subscribe("shared", a, consumer="a"),
        adapter.subscriptions.subscribe("shared", b, consumer="b"),
    ]
    try:
        for n in range(20):
            deposit(adapter, f"s{n}", n)
        assert everything.until(20)
    finally:
        for subscription in subscriptions:
            subscription.stop(5)
    assert sorted(everything.amounts()) == list(range(20))
    assert sorted(a.amounts() + b.amounts()) == list(range(20))


def test_an_event_whose_handler_raises_is_delivered_again_before_the_next_one(
    adapter: Persistence,
) -> None:
    adapter.events.append(
        "s", [Deposited(account="s", amount=n) for n in (1, 2, 3)], NO_STREAM
    )
    failures = {"left": 2}

    def flaky(event: RecordedEvent) -> None:
        if event.version == 2 and failures["left"]:
            failures["left"] -= 1
            raise RuntimeError("not yet")

    recorder = Recorder(flaky)
    subscription = adapter.subscriptions.subscribe("retry", recorder, retry_delay=0.01)
    try:
        assert recorder.until(3)
    finally:
        subscription.stop(5)
    assert recorder.amounts() == [1, 2, 3]
    assert adapter.subscriptions.dead_letters("retry") == []


def test_an_event_that_keeps_failing_is_dead_lettered_with_its_error_and_the_group_moves_on(
    adapter: Persistence,
) -> None:
    adapter.events.append(
        "s", [Deposited(account="s", amount=n) for n in (1, 2, 3)], NO_STREAM
    )
    attempts: list[int] = []

    def poison(event: RecordedEvent) -> None:
        if event.version == 2:
            attempts.append(event.version)
            raise ValueError("poison pill")

    recorder = Recorder(poison)
    subscription = adapter.subscriptions.subscribe(
        "dlq", recorder, max_deliveries=3, retry_delay=0.01
    )
    try:
        assert recorder.until(2)
    finally:
        subscription.stop(5)

    assert recorder.amounts() == [1, 3]
    assert attempts == [2, 2, 2]
    [letter] = adapter.subscriptions.dead_letters("dlq")
    assert letter.group == "dlq"
    assert (letter.stream_id, letter.version, letter.type_name) == ("s", 2, "Deposited")
    assert letter.error == "ValueError: poison pill"
    assert "poison pill" in letter.traceback
    assert letter.deliveries == 3
    assert letter.consumer == subscription.consumer
    assert letter.event is not None
    assert letter.event.event == Deposited(account="s", amount=2)
    assert letter.position == letter.event.position
    assert adapter.subscriptions.dead_letters("other-group") == []


def test_an_event_pending_on_a_consumer_that_died_is_claimed_by_another_after_claim_idle(
    adapter: Persistence,
) -> None:
    def die(event: RecordedEvent) -> None:
        raise ConsumerDied

    dying = adapter.subscriptions.subscribe("claims", Recorder(die), consumer="dying")
    deposit(adapter, "s", 7)
    assert _ended(dying)
    assert isinstance(dying.error, ConsumerDied)

    survivor = Recorder()
    started = time.monotonic()
    subscription = adapter.subscriptions.subscribe(
        "claims", survivor, consumer="survivor", claim_idle=0.2
    )
    try:
        assert survivor.until(1)
    finally:
        subscription.stop(5)
    assert survivor.amounts() == [7]
    assert time.monotonic() - started < 3


def test_a_consumer_subscribing_again_under_its_name_resumes_what_it_had_not_acknowledged(
    adapter: Persistence,
) -> None:
    adapter.events.append(
        "s", [Deposited(account="s", amount=n) for n in (1, 2, 3)], NO_STREAM
    )

    def die_on_second(event: RecordedEvent) -> None:
        if event.version == 2:
            raise ConsumerDied

    first = Recorder(die_on_second)
    crashed = adapter.subscriptions.subscribe("resume", first, consumer="worker-1")
    assert _ended(crashed)
    assert first.amounts() == [1]

    again = Recorder()
    # claim_idle is long: only the consumer's own pending entries can come back.
    subscription = adapter.subscriptions.subscribe(
        "resume", again, consumer="worker-1", claim_idle=60
    )
    try:
        assert again.until(2)
    finally:
        subscription.stop(5)
    assert again.amounts() == [2, 3]


def test_an_event_claimed_more_than_max_deliveries_times_is_dead_lettered_unhandled(
    adapter: Persistence,
) -> None:
    def die(event: RecordedEvent) -> None:
        raise ConsumerDied

    deposit(adapter, "s", 1)
    for name in ("first", "second"):
        crashed = adapter.subscriptions.subscribe(
            "crashy", Recorder(die), consumer=name, claim_idle=0.1, max_deliveries=2
        )
        assert _ended(crashed)
    deposit(adapter, "s", 2)
    last = Recorder()
    subscription = adapter.subscriptions.subscribe(
        "crashy", last, consumer="last", claim_idle=0.1, max_deliveries=2
    )
    try:
        assert last.until(1)
        assert wait_for(lambda: len(adapter.subscriptions.dead_letters("crashy")) == 1)
    finally:
        subscription.stop(5)
    assert last.amounts() == [2]
    [letter] = adapter.subscriptions.dead_letters("crashy")
    assert letter.version == 1
    assert letter.deliveries == 3
    assert "without acknowledgement" in letter.error


def test_a_subscription_for_some_types_gets_only_those_and_acknowledges_the_rest(
    adapter: Persistence,
) -> None:
    adapter.events.append(
        "s",
        [
            Deposited(account="s", amount=1),
            Withdrawn(account="s", amount=2),
            Deposited(account="s", amount=3),
        ],
        NO_STREAM,
    )
    withdrawals = Recorder()
    subscription = adapter.subscriptions.subscribe(
        "some", withdrawals, consumer="w", types={"Withdrawn"}
    )
    try:
        assert withdrawals.until(1)
        deposit(adapter, "s", 4)
        adapter.events.append("s", [Withdrawn(account="s", amount=5)], ANY)
        assert withdrawals.until(2)
    finally:
        assert subscription.stop(5)
    assert [(e.type_name, e.version) for e in withdrawals.events] == [
        ("Withdrawn", 2),
        ("Withdrawn", 5),
    ]

    # The deposits it skipped were acknowledged: nothing of them is pending on "w".
    everything = Recorder()
    again = adapter.subscriptions.subscribe("some", everything, consumer="w", claim_idle=60)
    try:
        deposit(adapter, "s", 6)
        assert everything.until(1)
        time.sleep(0.2)  # room for anything still pending to show up
    finally:
        again.stop(5)
    assert everything.amounts() == [6]


def test_the_backlog_counts_what_a_group_has_not_acknowledged_yet(
    adapter: Persistence,
) -> None:
    subscriptions = adapter.subscriptions
    for n in range(5):
        deposit(adapter, f"s{n}", n)
    assert subscriptions.backlog("nobody-yet") == 5  # a group that does not exist

    release = threading.Event()
    held = Recorder(lambda event: release.wait(5) and None)
    subscription = subscriptions.subscribe("slow", held, consumer="slow")
    try:
        assert subscriptions.backlog("slow") == 5  # delivered or not, none handled
        release.set()
        assert held.until(5)
        deposit(adapter, "s9", 9)
        assert held.until(6)
        assert wait_for(lambda: subscriptions.backlog("slow") == 0)
    finally:
        subscription.stop(5)
    deposit(adapter, "s10", 10)
    assert subscriptions.backlog("slow") == 1


def test_stop_ends_an_idle_subscription_promptly(adapter: Persistence) -> None:
    subscription = adapter.subscriptions.subscribe("idle", Recorder())
    assert subscription.running
    started = time.monotonic()

    assert subscription.stop(5)

    assert time.monotonic() - started < 1.0
    assert not subscription.running
    assert subscription.error is None


def _ended(subscription: Subscription, timeout: float = 5.0) -> bool:
    return wait_for(lambda: not subscription.running, timeout)
