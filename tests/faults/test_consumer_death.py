"""Issue 6, fault 6 (persistence level): subscriber processes killed before acknowledging."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from persistence import EventMetadata, Persistence, RecordedEvent
from tests.faults.consumer_process import GROUP_OPTIONS, apply_in_order
from tests.persistence.conftest import wait_for
from tests.persistence.events import Deposited, make_codec
from tests.redis_server import RedisServer

pytestmark = [pytest.mark.slow, pytest.mark.redis]

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def persistence(
    redis_server_factory: Callable[..., RedisServer],
) -> Iterator[tuple[Persistence, str]]:
    server = redis_server_factory()
    persistence = Persistence.on_redis(server.url, make_codec(), prefix="c", partitions=4)
    yield persistence, server.url
    persistence.close()


def start_victim(url: str, name: str, hang_after: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.faults.consumer_process", url, "c", "accounts", name,
         str(hang_after)],
        cwd=ROOT, stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


def kill_when_hanging(victim: subprocess.Popen[str]) -> list[str]:
    """Read the victim's handled event ids until it hangs in a handler, then SIGKILL it."""
    handled: list[str] = []
    assert victim.stdout is not None
    timer = threading.Timer(30, victim.kill)  # a victim that never hangs fails the test
    timer.start()
    try:
        for line in victim.stdout:
            if line.startswith("handled "):
                handled.append(line.split()[1])
            elif line.strip() == "hanging":
                break
    finally:
        timer.cancel()
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=10)
    assert victim.returncode == -signal.SIGKILL, "the victim ended before hanging"
    return handled


def test_entries_of_consumers_killed_before_acknowledging_are_applied_once_by_others(
    persistence: tuple[Persistence, str],
) -> None:
    """Figure: 300 events (30 streams x 10) in two waves; three subscriber processes
    of one group SIGKILLed in turn, each in its handler right after applying an
    event and before acknowledging it (after 1, 40 and 100 events handled); then a
    fourth consumer drains. Each killed consumer's last event is delivered again to
    another consumer; every event is applied to its stream's projection exactly
    once (count and total equal the fold of the stream); nothing is dead-lettered,
    nothing stays pending.
    """
    store, url = persistence
    events, projections = store.events, store.projections

    def wave(first: int) -> None:
        for n in range(first, first + 5):
            for s in range(30):
                store.events.append(
                    f"acct-{s}", [Deposited(account=f"acct-{s}", amount=n * 100 + s)], n,
                    EventMetadata(f"e-{s}-{n}"),
                )

    wave(0)
    deliveries: list[list[str]] = []  # per consumer, in order: victims, then the survivor
    for index, hang_after in enumerate((1, 40, 100)):
        handled = kill_when_hanging(start_victim(url, f"victim-{index}", hang_after))
        assert len(handled) == hang_after
        deliveries.append(handled)
        if index == 0:
            wave(5)  # new entries arrive while the first victim's are still pending

    redelivered: list[str] = []
    seen_lock = threading.Lock()

    def survivor(event: RecordedEvent) -> None:
        with seen_lock:
            redelivered.append(event.metadata.event_id)
        apply_in_order(events, projections, event)

    subscription = store.subscriptions.subscribe(
        "accounts", survivor, consumer="survivor", **GROUP_OPTIONS  # type: ignore[arg-type]
    )
    try:
        def folded() -> bool:
            return all(projections.position(f"account:acct-{s}") == 10 for s in range(30))

        assert wait_for(folded, timeout=20)

        def drained() -> bool:
            client = events.client  # type: ignore[attr-defined]
            return all(
                client.xpending(events.layout.feed(p), "accounts")["pending"] == 0  # type: ignore[attr-defined]
                for p in range(4)
            )

        assert wait_for(drained, timeout=10)
    finally:
        subscription.stop(timeout=5)

    for s in range(30):
        fold = [e.event.amount for e in events.read(f"acct-{s}")]  # type: ignore[attr-defined]
        assert projections.get(f"account:acct-{s}") == {
            "_position": "10", "count": "10", "total": str(sum(fold)),
        }
    # Each victim's handled-but-unacknowledged event went to a consumer after it.
    deliveries.append(redelivered)
    for index in range(3):
        later = {i for handled in deliveries[index + 1:] for i in handled}
        assert deliveries[index][-1] in later, f"victim-{index}'s last event was skipped"
    assert store.subscriptions.dead_letters("accounts") == []
    assert subscription.error is None
