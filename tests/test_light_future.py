"""``LightFuture`` behaves as a ``concurrent.futures.Future`` wherever one is used."""

from __future__ import annotations

import threading
import time
from concurrent.futures import (
    FIRST_COMPLETED,
    CancelledError,
    Future,
    InvalidStateError,
    as_completed,
    wait,
)

import pytest

from actors import LightFuture


def _later(seconds: float, fn: object) -> threading.Thread:
    def run() -> None:
        time.sleep(seconds)
        fn()  # type: ignore[operator]

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_a_light_future_is_a_future_that_starts_pending() -> None:
    future: LightFuture[int] = LightFuture()
    assert isinstance(future, Future)
    assert not future.done()
    assert not future.running()
    assert not future.cancelled()
    assert "pending" in repr(future)


def test_a_result_set_on_another_thread_wakes_a_thread_blocked_in_result() -> None:
    future: LightFuture[int] = LightFuture()
    setter = _later(0.05, lambda: future.set_result(7))
    assert future.result(timeout=5) == 7
    setter.join()


def test_an_exception_set_on_another_thread_is_raised_to_the_waiter() -> None:
    future: LightFuture[int] = LightFuture()
    setter = _later(0.05, lambda: future.set_exception(ValueError("no")))
    with pytest.raises(ValueError, match="no"):
        future.result(timeout=5)
    assert isinstance(future.exception(timeout=0), ValueError)
    setter.join()


def test_result_times_out_when_nothing_comes() -> None:
    future: LightFuture[int] = LightFuture()
    began = time.monotonic()
    with pytest.raises(TimeoutError):
        future.result(timeout=0.05)
    assert time.monotonic() - began >= 0.04
    future.set_result(1)  # a waiter that gave up does not stop a later result
    assert future.result(timeout=0) == 1


def test_callbacks_run_once_when_it_completes_and_at_once_when_added_after() -> None:
    future: LightFuture[str] = LightFuture()
    seen: list[str] = []
    future.add_done_callback(lambda f: seen.append(f"before:{f.result()}"))
    future.set_result("x")
    future.add_done_callback(lambda f: seen.append(f"after:{f.result()}"))
    assert seen == ["before:x", "after:x"]


def test_cancelling_wakes_a_blocked_waiter_with_cancelled_error() -> None:
    future: LightFuture[int] = LightFuture()
    canceller = _later(0.05, future.cancel)
    with pytest.raises(CancelledError):
        future.result(timeout=5)
    assert future.cancelled()
    canceller.join()


def test_concurrent_futures_wait_and_as_completed_take_light_futures() -> None:
    slow: LightFuture[int] = LightFuture()
    fast: LightFuture[int] = LightFuture()
    first = _later(0.05, lambda: fast.set_result(1))
    done, not_done = wait([slow, fast], timeout=5, return_when=FIRST_COMPLETED)
    assert done == {fast}
    assert not_done == {slow}
    second = _later(0.05, lambda: slow.set_result(2))
    assert [f.result() for f in as_completed([slow, fast], timeout=5)] == [1, 2]
    first.join()
    second.join()


def test_many_threads_waiting_on_one_future_are_all_woken() -> None:
    future: LightFuture[int] = LightFuture()
    results: list[int] = []
    waiters = [
        threading.Thread(target=lambda: results.append(future.result(timeout=5)))
        for _ in range(8)
    ]
    for waiter in waiters:
        waiter.start()
    time.sleep(0.05)
    future.set_result(3)
    for waiter in waiters:
        waiter.join()
    assert results == [3] * 8


@pytest.mark.parametrize("kind", [LightFuture, Future])
def test_a_done_or_cancelled_future_refuses_a_result_as_a_future_does(kind: type) -> None:
    done, cancelled = kind(), kind()
    done.set_result(1)
    assert cancelled.cancel()

    with pytest.raises(InvalidStateError):
        done.set_result(2)
    with pytest.raises(InvalidStateError):
        cancelled.set_result(2)
    assert done.result() == 1


def test_a_callback_that_raises_is_logged_and_the_others_still_run(
    caplog: pytest.LogCaptureFixture,
) -> None:
    future: LightFuture[int] = LightFuture()
    seen: list[int] = []

    def broken(f: Future[int]) -> None:
        raise ValueError("in a callback")

    future.add_done_callback(broken)
    future.add_done_callback(lambda f: seen.append(f.result()))
    future.set_result(7)
    future.add_done_callback(broken)  # added after: run at once, logged as well

    assert seen == [7]
    logged = [r for r in caplog.records if "exception calling callback" in r.getMessage()]
    assert len(logged) == 2


def test_a_set_exception_is_raised_by_result_and_seen_by_callbacks() -> None:
    future: LightFuture[int] = LightFuture()
    seen: list[BaseException | None] = []
    future.add_done_callback(lambda f: seen.append(f.exception()))
    error = KeyError("k")
    future.set_exception(error)

    with pytest.raises(KeyError):
        future.result()
    assert seen == [error]
