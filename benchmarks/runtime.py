"""Runtime speed: a Store beside raw Pykka, and effect feedback.

Figures (each beside its baseline, in the same run):
- ``pykka tell``: raw ``ActorRef.tell`` to an actor that counts (the baseline);
- ``reducer actor``: a hand-written Pykka actor calling a reducer function;
- ``store send``: ``StoreRef.send`` through a Store with a trivial reducer;
- ``feedback in flight``: actions whose ``future`` effect feeds an action back,
  all sent at once (many in flight);
- ``feedback round trip``: the same, one at a time (send, wait, repeat).
"""

from __future__ import annotations

import argparse
import queue
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pykka
from rich.console import Console

from actors import Effect, Store
from benchmarks._harness import Report, measure_figure, rate

AREA = "runtime"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--messages", type=int, default=None, help="messages per repetition")


@dataclass
class Counter:
    count: int = 0


def count_reducer(state: Counter, action: Any, env: object) -> tuple[()]:
    state.count += 1
    return ()


class CountingActor(pykka.ThreadingActor):
    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def on_receive(self, message: Any) -> Any:
        if message == "sync":
            return self.count
        self.count += 1
        return None


class SimpleQueueCountingActor(CountingActor):
    """The counting actor on the inbox a Store uses, to show what the inbox is worth."""

    @staticmethod
    def _create_actor_inbox() -> Any:
        return queue.SimpleQueue()


class ReducerActor(pykka.ThreadingActor):
    def __init__(self) -> None:
        super().__init__()
        self.state = Counter()

    def on_receive(self, message: Any) -> Any:
        if message == "sync":
            return self.state.count
        effects = count_reducer(self.state, message, None)
        for _ in effects:
            pass
        return None


def feedback_reducer(state: Counter, action: Any, env: object) -> list[Effect[str]]:
    if action == "go":
        return [Effect.future(_back)]
    state.count += 1
    return []


def _back() -> str:
    return "back"


def run(args: argparse.Namespace, report: Report, console: Console) -> None:
    n = args.messages or (20_000 if args.quick else 200_000)
    fb = max(2_000, n // 10)

    def pykka_tell(actor_class: type[pykka.ThreadingActor]) -> float:
        ref = actor_class.start()
        try:

            def body() -> None:
                tell = ref.tell
                for i in range(n):
                    tell(i)
                ref.ask("sync")

            return rate(n, body)
        finally:
            ref.stop()

    def store_send() -> float:
        store = Store.start(count_reducer, Counter(), None)
        try:

            def body() -> None:
                send = store.send
                for i in range(n - 1):
                    send(i)
                send(n).wait(60)

            return rate(n, body)
        finally:
            store.stop()

    def feedback_in_flight() -> float:
        store = Store.start(feedback_reducer, Counter(), None)
        try:

            def body() -> None:
                handles = [store.send("go") for _ in range(fb)]
                for handle in handles:
                    handle.wait(60)

            return rate(fb, body)
        finally:
            store.stop()

    def feedback_round_trip() -> float:
        store = Store.start(feedback_reducer, Counter(), None)
        trips = max(500, fb // 10)
        try:

            def body() -> None:
                for _ in range(trips):
                    store.send("go").wait(10)

            return rate(trips, body)
        finally:
            store.stop()

    def add(name: str, unit: str, run_once: Callable[[], float], baseline: str | None) -> None:
        measure_figure(
            report, console, AREA, name, unit, run_once, repeat=args.repeat, baseline=baseline
        )

    add("pykka tell", "msg/s", lambda: pykka_tell(CountingActor), None)
    add(
        "pykka tell (SimpleQueue inbox)",
        "msg/s",
        lambda: pykka_tell(SimpleQueueCountingActor),
        "pykka tell",
    )
    add("reducer actor", "msg/s", lambda: pykka_tell(ReducerActor), "pykka tell")
    add("store send", "actions/s", store_send, "pykka tell")
    add("feedback in flight", "round trips/s", feedback_in_flight, "pykka tell")
    add("feedback round trip", "round trips/s", feedback_round_trip, "pykka tell")
