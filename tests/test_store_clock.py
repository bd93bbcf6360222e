"""Clocks, and delays in a running store: ManualClock (env.clock or clock=), SystemClock."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from actors import Clock, Effect, ManualClock, SystemClock
from tests.runtime_support import WAIT, Env, Stores, started_stores


@pytest.fixture
def stores() -> Iterator[Stores]:
    with started_stores() as started:
        yield started


# ManualClock on its own.


def test_a_manual_clock_fires_due_timers_in_time_order_and_ties_in_scheduling_order() -> None:
    clock = ManualClock()
    fired: list[str] = []
    clock.call_later(2.0, lambda: fired.append("two"))
    clock.call_later(1.0, lambda: fired.append("one, first"))
    clock.call_later(1.0, lambda: fired.append("one, second"))
    clock.call_later(3.0, lambda: fired.append("three"))

    clock.advance(2.0)

    assert fired == ["one, first", "one, second", "two"]
    assert clock.now() == 2.0
    assert clock.pending == 1


def test_a_manual_clock_reads_the_time_of_each_timer_while_it_fires() -> None:
    clock = ManualClock(start=100.0)
    seen: list[float] = []
    clock.call_later(1.0, lambda: seen.append(clock.now()))
    clock.call_later(3.0, lambda: seen.append(clock.now()))

    clock.advance(5.0)

    assert seen == [101.0, 103.0]
    assert clock.now() == 105.0


def test_a_manual_clock_fires_timers_scheduled_by_timers_within_the_same_advance() -> None:
    clock = ManualClock()
    fired: list[float] = []

    def tick() -> None:
        fired.append(clock.now())
        clock.call_later(1.0, tick)

    clock.call_later(1.0, tick)
    clock.advance(3.5)

    assert fired == [1.0, 2.0, 3.0]
    assert clock.pending == 1


def test_a_cancelled_manual_timer_never_fires() -> None:
    clock = ManualClock()
    fired: list[str] = []
    timer = clock.call_later(1.0, lambda: fired.append("fired"))
    timer.cancel()

    clock.advance(2.0)

    assert fired == []
    assert clock.pending == 0


def test_a_manual_clock_refuses_to_go_backwards() -> None:
    with pytest.raises(ValueError, match="backwards"):
        ManualClock().advance(-1.0)


def test_run_all_fires_every_timer_and_moves_to_the_last() -> None:
    clock = ManualClock()
    fired: list[str] = []
    clock.call_later(5.0, lambda: fired.append("five"))
    clock.call_later(1.0, lambda: fired.append("one"))

    clock.run_all()

    assert fired == ["one", "five"]
    assert clock.now() == 5.0


def test_both_clocks_are_clocks() -> None:
    assert isinstance(ManualClock(), Clock)
    assert isinstance(SystemClock(), Clock)


# SystemClock on its own.


def test_a_system_clock_reads_wall_clock_time() -> None:
    assert abs(SystemClock().now() - time.time()) < 1.0


def test_a_system_clock_fires_a_timer_and_not_a_cancelled_one() -> None:
    clock = SystemClock()
    fired = threading.Event()
    cancelled: list[str] = []
    clock.call_later(0.01, lambda: cancelled.append("fired")).cancel()
    clock.call_later(0.02, fired.set)

    assert fired.wait(WAIT)
    assert cancelled == []


def test_a_system_clock_survives_a_callback_that_raises() -> None:
    clock = SystemClock()
    fired = threading.Event()

    def broken() -> None:
        raise RuntimeError("a broken callback")

    clock.call_later(0.0, broken)
    clock.call_later(0.01, fired.set)

    assert fired.wait(WAIT)


def test_a_system_clock_with_nothing_pending_lets_its_thread_go_and_restarts_it() -> None:
    clock = SystemClock(linger=0.05)
    first = threading.Event()
    clock.call_later(0.0, first.set)
    assert first.wait(WAIT)

    def clock_threads() -> list[threading.Thread]:
        return [t for t in threading.enumerate() if t.name == "actors-clock" and t.is_alive()]

    thread = clock._thread
    assert thread is not None
    thread.join(WAIT)
    assert not thread.is_alive()  # no timer pending: a done-with clock leaves no thread

    again = threading.Event()
    clock.call_later(0.01, again.set)
    assert again.wait(WAIT)
    assert clock._thread is not None
    assert clock._thread in clock_threads()


def test_a_system_clock_whose_timers_were_all_cancelled_lets_its_thread_go() -> None:
    clock = SystemClock(linger=0.05)
    timers = [clock.call_later(60.0 + n, lambda: None) for n in range(3)]
    thread = clock._thread
    assert thread is not None
    for timer in timers:
        timer.cancel()

    thread.join(WAIT)
    assert not thread.is_alive()


# Delays in a store.


def timed(state: list[Any], action: Any, env: Any) -> list[Effect[Any]]:
    clock = getattr(env, "clock", None)
    state.append((action, clock.now() if isinstance(clock, ManualClock) else None))
    if action == "start":
        return [Effect.delay(1.0, "one"), Effect.delay(2.0, "two")]
    if action == "chain":
        return [Effect.delay(1.0, "link 1")]
    if isinstance(action, str) and action.startswith("link "):
        n = int(action.split()[1])
        return [Effect.delay(1.0, f"link {n + 1}")] if n < 5 else []
    return []


def test_delays_wait_for_the_environments_manual_clock(stores: Stores) -> None:
    env = Env()
    store = stores.start(timed, [], env)
    handle = store.send("start")
    store.state(timeout=WAIT)

    env.clock.advance(0.5)  # type: ignore[attr-defined]
    assert store.state(timeout=WAIT) == [("start", 0.0)]

    env.clock.advance(0.5)  # type: ignore[attr-defined]
    assert store.state(timeout=WAIT) == [("start", 0.0), ("one", 1.0)]
    assert not handle.done

    env.clock.advance(1.0)  # type: ignore[attr-defined]
    handle.wait(timeout=WAIT)
    assert store.state(timeout=WAIT) == [("start", 0.0), ("one", 1.0), ("two", 2.0)]


def test_the_clock_argument_times_delays_in_place_of_the_environments(stores: Stores) -> None:
    env = Env()
    given = ManualClock()
    store = stores.start(timed, [], env, clock=given)
    handle = store.send("start")
    store.state(timeout=WAIT)

    env.clock.advance(5.0)  # type: ignore[attr-defined]
    assert not handle.done
    assert given.pending == 2

    given.advance(2.0)
    handle.wait(timeout=WAIT)
    assert [action for action, _ in store.state(timeout=WAIT)] == ["start", "one", "two"]


def test_chained_delays_fire_within_one_advance(stores: Stores) -> None:
    env = Env()
    store = stores.start(timed, [], env)
    handle = store.send("chain")
    store.state(timeout=WAIT)

    env.clock.advance(10.0)  # type: ignore[attr-defined]

    handle.wait(timeout=WAIT)
    assert store.state(timeout=WAIT) == [
        ("chain", 0.0),
        ("link 1", 1.0),
        ("link 2", 2.0),
        ("link 3", 3.0),
        ("link 4", 4.0),
        ("link 5", 5.0),
    ]


def test_a_delay_fires_on_the_system_clock_when_there_is_no_manual_one(
    stores: Stores,
) -> None:
    def reducer(state: list[Any], action: Any, env: Any) -> list[Effect[Any]]:
        state.append(action)
        return [Effect.delay(0.02, "fired")] if action == "start" else []

    store = stores.start(reducer, [], None)
    began = time.monotonic()
    store.send("start").wait(timeout=WAIT)

    assert time.monotonic() - began >= 0.02
    assert store.state(timeout=WAIT) == ["start", "fired"]


def test_a_delay_of_zero_fires_on_the_next_advance(stores: Stores) -> None:
    env = Env()

    def reducer(state: list[Any], action: Any, env: Any) -> list[Effect[Any]]:
        state.append(action)
        return [Effect.delay(0.0, "now")] if action == "start" else []

    store = stores.start(reducer, [], env)
    handle = store.send("start")
    store.state(timeout=WAIT)
    env.clock.advance(0.0)  # type: ignore[attr-defined]

    handle.wait(timeout=WAIT)
    assert store.state(timeout=WAIT) == ["start", "now"]


def test_a_negative_delay_is_refused() -> None:
    with pytest.raises(ValueError, match="negative"):
        Effect.delay(-1.0, "never")
