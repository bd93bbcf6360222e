"""TestStore: passes for a correct script, fails with exact messages where it should."""

from __future__ import annotations

import copy
import threading
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import pytest

from actors import Effect, EffectFailed, ManualClock, Send
from actors.testing import TestStore, unimplemented


@dataclass
class Counter:
    count: int = 0
    fetched: list[str] = field(default_factory=list)


@dataclass
class Env:
    clock: ManualClock = field(default_factory=ManualClock)
    gateway: Any = None


def counter(state: Counter, action: Any, env: Env) -> list[Effect[Any]]:
    if action == "increment":
        state.count += 1
        return [Effect.delay(1.0, "tick").cancellable("timer", cancel_in_flight=True)]
    if action == "tick":
        state.count += 10
    if action == "stop timer":
        return [Effect.cancel("timer")]
    if action == "fetch":
        return [Effect.future(lambda: "fetched", name="fetch_it")]
    if action == "fetch twice":
        return [Effect.concat(Effect.future(lambda: "fetched"), Effect.future(lambda: "again"))]
    if action == "fetched" or action == "again":
        state.fetched.append(action)
    if action == "charge":
        return [Effect.future(lambda: env.gateway.charge(10), name="charge")]
    if action == "stream":

        def stream(send: Send[str]) -> None:
            send("fetched")
            send("again")

        return [Effect.run(stream)]
    return []


def count_to(n: int) -> Any:
    return lambda state: setattr(state, "count", n)


def fetched(*names: str) -> Any:
    return lambda state: state.fetched.extend(names)


# Passing scripts.


def test_a_correct_script_passes_send_advance_receive_finish() -> None:
    store = TestStore(counter, Counter(), Env())
    store.send("increment", count_to(1))
    store.advance(1.0)
    store.receive("tick", count_to(11))
    store.send("fetch")
    store.receive("fetched", fetched("fetched"))

    store.finish()


def test_a_correct_script_passes_as_a_context_manager() -> None:
    with TestStore(counter, Counter(), Env()) as store:
        store.send("increment", count_to(1))
        store.advance(1.0)
        store.receive("tick", count_to(11))


def test_expect_may_be_the_expected_state_itself() -> None:
    with TestStore(counter, Counter(), Env()) as store:
        store.send("increment", Counter(count=1))
        store.send("stop timer")


def test_receive_matches_by_type_or_predicate_and_returns_the_action() -> None:
    with TestStore(counter, Counter(), Env()) as store:
        store.send("stream")
        assert store.receive(str, fetched("fetched")) == "fetched"
        assert store.receive(lambda a: a.startswith("ag"), fetched("again")) == "again"


def test_concat_starts_its_next_effect_once_the_previous_ones_action_is_received() -> None:
    with TestStore(counter, Counter(), Env()) as store:
        store.send("fetch twice")
        store.receive("fetched", fetched("fetched"))
        store.receive("again", fetched("again"))


def test_the_environments_manual_clock_is_the_test_stores_clock() -> None:
    env = Env()
    store = TestStore(counter, Counter(), env)

    assert store.clock is env.clock


def test_a_test_store_makes_a_manual_clock_when_the_environment_has_none() -> None:
    with TestStore(counter, Counter(), None) as store:
        store.send("increment", count_to(1))
        store.advance(1.0)
        store.receive("tick", count_to(11))

    assert isinstance(store.clock, ManualClock)


def test_cancel_cancels_a_pending_delay_so_finish_passes() -> None:
    with TestStore(counter, Counter(), Env()) as store:
        store.send("increment", count_to(1))
        store.send("stop timer")
        store.advance(5.0)


def test_debounce_keeps_only_the_latest_delay() -> None:
    with TestStore(counter, Counter(), Env()) as store:
        store.send("increment", count_to(1))
        store.advance(0.5)
        store.send("increment", count_to(2))
        store.advance(0.5)
        store.send("increment", count_to(3))
        store.advance(1.0)
        store.receive("tick", count_to(13))


def test_skip_in_flight_effects_cancels_every_effect_and_the_rest_of_a_concat() -> None:
    def sequence(state: Counter, action: Any, env: Env) -> list[Effect[Any]]:
        if action == "go":
            return [Effect.concat(Effect.delay(1.0, "one"), Effect.delay(1.0, "two"))]
        return []

    with TestStore(sequence, Counter(), Env()) as store:
        store.send("go")
        store.skip_in_flight_effects()
        store.advance(5.0)


def test_skip_received_actions_reduces_them_without_asserting() -> None:
    with TestStore(counter, Counter(), Env()) as store:
        store.send("stream")
        store.skip_received_actions()

    assert store.state.fetched == ["fetched", "again"]


def test_an_effect_that_raises_fails_the_step_with_effect_failed() -> None:
    def broken() -> str:
        raise ConnectionError("down")

    def reducer(state: Counter, action: Any, env: Env) -> list[Effect[Any]]:
        return [Effect.future(broken, name="broken")]

    store = TestStore(reducer, Counter(), Env())

    with pytest.raises(EffectFailed, match="broken") as failed:
        store.send("go")
    assert isinstance(failed.value.__cause__, ConnectionError)


def test_a_piped_future_is_awaited_on_the_test_thread_and_its_result_received() -> None:
    def reducer(state: Counter, action: Any, env: Env) -> list[Effect[Any]]:
        if action == "fetch":
            done: Future[str] = Future()
            threading.Timer(0.01, done.set_result, ["fetched"]).start()
            return [Effect.pipe(lambda: done, name="fetch_it")]
        if action == "fetched":
            state.fetched.append(action)
        return []

    store = TestStore(reducer, Counter(), Env())
    store.send("fetch")
    store.receive("fetched", fetched("fetched"))
    store.finish()


def test_a_piped_future_that_fails_fails_the_step_with_effect_failed() -> None:
    def reducer(state: Counter, action: Any, env: Env) -> list[Effect[Any]]:
        failed: Future[str] = Future()
        failed.set_exception(ConnectionError("down"))
        return [Effect.pipe(lambda: failed, name="append")]

    store = TestStore(reducer, Counter(), Env())

    with pytest.raises(EffectFailed, match="append") as failed:
        store.send("go")
    assert isinstance(failed.value.__cause__, ConnectionError)


def test_recover_turns_a_piped_futures_exception_into_a_received_action() -> None:
    def reducer(state: Counter, action: Any, env: Env) -> list[Effect[Any]]:
        if action == "append":
            failed: Future[str] = Future()
            failed.set_exception(TimeoutError("gateway timed out"))
            return [Effect.pipe(lambda: failed, recover=lambda error: "timed out")]
        if action == "timed out":
            state.fetched.append(action)
        return []

    store = TestStore(reducer, Counter(), Env())
    store.send("append")
    store.receive("timed out", fetched("timed out"))
    store.finish()


def test_a_reducer_that_raises_fails_the_step_with_its_own_exception() -> None:
    def reducer(state: Counter, action: Any, env: Env) -> list[Effect[Any]]:
        raise KeyError("missing")

    store = TestStore(reducer, Counter(), Env())

    with pytest.raises(KeyError):
        store.send("go")


# Failing scripts, and their messages.


def test_an_unexpected_state_change_fails_with_a_diff() -> None:
    store = TestStore(counter, Counter(), Env())

    with pytest.raises(AssertionError) as failed:
        store.send("increment", count_to(2))

    assert str(failed.value) == (
        "state after send('increment') differs from the expected state (- expected, + actual):\n"
        "@@ -1 +1 @@\n"
        "-Counter(count=2, fetched=[])\n"
        "+Counter(count=1, fetched=[])"
    )


def test_a_state_change_nobody_expected_fails_when_exhaustive() -> None:
    store = TestStore(counter, Counter(), Env())

    with pytest.raises(AssertionError, match=r"send\('increment'\) differs") as failed:
        store.send("increment")
    assert "-Counter(count=0, fetched=[])" in str(failed.value)
    assert "+Counter(count=1, fetched=[])" in str(failed.value)


def test_the_diff_of_a_large_state_shows_only_the_lines_that_differ() -> None:
    def reducer(state: dict[str, int], action: str, env: Any) -> list[Effect[Any]]:
        state[action] += 1
        return []

    big = {f"key {n:02}": n for n in range(40)}
    store = TestStore(reducer, big, None)

    with pytest.raises(AssertionError) as failed:
        store.send("key 17", lambda s: s.update({"key 17": 99}))

    message = str(failed.value)
    assert "\n- 'key 17': 99,\n+ 'key 17': 18,\n" in message
    assert "key 30" not in message, "unchanged lines far from the change are left out"


def test_a_received_state_change_mismatch_names_the_received_action() -> None:
    store = TestStore(counter, Counter(), Env())
    store.send("fetch")

    with pytest.raises(AssertionError, match=r"state after receive\('fetched'\) differs"):
        store.receive("fetched", fetched("something else"))


def test_finish_names_the_actions_left_unreceived() -> None:
    store = TestStore(counter, Counter(), Env())
    store.send("stream")

    with pytest.raises(AssertionError) as failed:
        store.finish()

    assert str(failed.value) == (
        "the test store finished with 2 received action(s) not asserted: 'fetched', 'again'"
    )


def test_finish_names_the_effects_still_running() -> None:
    store = TestStore(counter, Counter(), Env())
    store.send("increment", count_to(1))

    with pytest.raises(AssertionError) as failed:
        store.finish()

    assert str(failed.value) == (
        "the test store finished with 1 effect(s) still running: Effect.delay(1.0, 'tick')"
    )


def test_leaving_the_context_manager_runs_finish() -> None:
    store = TestStore(counter, Counter(), Env())
    with pytest.raises(AssertionError, match=r"still running: Effect\.delay"), store:
        store.send("increment", count_to(1))


def test_the_context_manager_does_not_hide_the_tests_own_failure() -> None:
    store = TestStore(counter, Counter(), Env())
    store.send("increment", count_to(1))  # a delay is left pending

    with pytest.raises(ZeroDivisionError), store:
        raise ZeroDivisionError("the test's own failure")


def test_receive_when_nothing_was_fed_back_fails_and_says_a_delay_needs_advance() -> None:
    store = TestStore(counter, Counter(), Env())
    store.send("increment", count_to(1))

    with pytest.raises(AssertionError) as failed:
        store.receive("tick")

    assert str(failed.value) == (
        "expected to receive 'tick', but no action was fed back "
        "(still running: Effect.delay(1.0, 'tick'); a delay needs advance())"
    )


def test_receive_when_nothing_runs_says_so_plainly() -> None:
    store = TestStore(counter, Counter(), Env())

    with pytest.raises(AssertionError) as failed:
        store.receive("tick")

    assert str(failed.value) == "expected to receive 'tick', but no action was fed back"


def test_receive_of_the_wrong_action_fails_naming_both() -> None:
    store = TestStore(counter, Counter(), Env())
    store.send("fetch")

    with pytest.raises(AssertionError) as failed:
        store.receive("tick")

    assert str(failed.value) == "expected to receive 'tick', but received 'fetched'"


def test_receive_by_type_or_predicate_describes_what_it_expected() -> None:
    store = TestStore(counter, Counter(), Env())
    store.send("stream")

    with pytest.raises(AssertionError, match=r"^expected to receive an action of type int, "):
        store.receive(int)

    def is_tick(action: Any) -> bool:
        return bool(action == "tick")

    with pytest.raises(
        AssertionError, match=r"^expected to receive an action matching 'is_tick', "
    ):
        store.receive(is_tick)


def test_send_while_received_actions_are_pending_fails_naming_them() -> None:
    store = TestStore(counter, Counter(), Env())
    store.send("fetch")

    with pytest.raises(AssertionError) as failed:
        store.send("increment")

    assert str(failed.value) == (
        "sent 'increment' while 1 received action(s) were not yet asserted: 'fetched'; "
        "receive them first"
    )


# exhaustive=False.


def test_a_non_exhaustive_store_checks_only_what_it_is_told() -> None:
    with TestStore(counter, Counter(), Env(), exhaustive=False) as store:
        store.send("increment")  # the state change is not checked
        store.send("stream")
        store.send("fetch")  # received actions may be pending
        # "fetched" is passed over: reduced, not asserted, before "again" is received.
        store.receive("again", fetched("again"))
    # finish() passed with "fetched" unreceived and a delay pending

    assert store.state.count == 1


def test_a_non_exhaustive_store_still_checks_an_expectation_it_was_given() -> None:
    store = TestStore(counter, Counter(), Env(), exhaustive=False)

    with pytest.raises(AssertionError, match="differs from the expected state"):
        store.send("increment", count_to(5))


def test_a_non_exhaustive_receive_still_fails_when_nothing_matches() -> None:
    store = TestStore(counter, Counter(), Env(), exhaustive=False)
    store.send("stream")

    with pytest.raises(AssertionError, match="expected to receive 'tick', but no action"):
        store.receive("tick")


# unimplemented dependencies.


def test_an_unimplemented_dependency_fails_loudly_when_an_attribute_is_used() -> None:
    gateway = unimplemented("gateway")

    with pytest.raises(AssertionError) as failed:
        gateway.charge(10)

    assert str(failed.value) == "gateway.charge was used, but the test did not provide gateway"


def test_an_unimplemented_dependency_fails_loudly_when_called() -> None:
    with pytest.raises(AssertionError, match="gateway was called, but the test did not provide it"):
        unimplemented("gateway")()


def test_an_unimplemented_dependency_used_by_an_effect_fails_the_step_naming_it() -> None:
    store = TestStore(counter, Counter(), Env(gateway=unimplemented("gateway")))

    with pytest.raises(EffectFailed, match=r"gateway\.charge was used") as failed:
        store.send("charge")
    assert isinstance(failed.value.__cause__, AssertionError)


def test_an_unimplemented_dependency_may_be_passed_around_and_copied() -> None:
    env = {"gateway": unimplemented("gateway")}

    copied = copy.deepcopy(env)

    assert repr(copied["gateway"]) == "unimplemented('gateway')"
    assert not hasattr(copied["gateway"], "__iter__")
    with pytest.raises(AssertionError, match=r"gateway\.charge was used"):
        copied["gateway"].charge(10)


def test_a_run_effect_that_raises_fails_the_step_and_drops_what_it_sent() -> None:
    def half(send: Send[str]) -> None:
        send("fetched")
        raise RuntimeError("then broke")

    def reducer(state: Counter, action: Any, env: Env) -> list[Effect[Any]]:
        return [Effect.run(half, name="half")] if action == "go" else []

    store = TestStore(reducer, Counter(), Env())

    with pytest.raises(EffectFailed, match="half") as failed:
        store.send("go")
    assert isinstance(failed.value.__cause__, RuntimeError)
    store.finish()


def test_send_effects_are_received_in_the_order_returned() -> None:
    def reducer(state: Counter, action: Any, env: Env) -> list[Effect[Any]]:
        if action == "go":
            return [Effect.send("fetched"), Effect.send("again")]
        state.fetched.append(action)
        return []

    with TestStore(reducer, Counter(), Env()) as store:
        store.send("go")
        store.receive("fetched", fetched("fetched"))
        store.receive("again", fetched("again"))


def test_a_received_action_goes_through_the_effects_map() -> None:
    def reducer(state: Counter, action: Any, env: Env) -> list[Effect[Any]]:
        if action == "go":
            return [Effect.future(lambda: "fetched").map(str.upper)]
        state.fetched.append(action)
        return []

    with TestStore(reducer, Counter(), Env()) as store:
        store.send("go")
        store.receive("FETCHED", fetched("FETCHED"))


def test_what_an_expect_function_returns_is_ignored_it_only_mutates() -> None:
    def push(state: list[int], action: int, env: Any) -> list[Effect[Any]]:
        state.append(action)
        return []

    with TestStore(push, [1], Env()) as store:
        # list.append returns None, list.pop returns the item: neither replaces the state.
        store.send(2, lambda s: s.append(2))
        with pytest.raises(AssertionError):
            store.send(3, lambda s: s.pop())
        store.skip_received_actions()


def test_finish_after_a_failed_finish_fails_again() -> None:
    store = TestStore(counter, Counter(), Env())
    store.send("increment", count_to(1))
    for _ in range(2):
        with pytest.raises(AssertionError, match="still running"):
            store.finish()
    store.skip_in_flight_effects()
    store.finish()
