"""A subscriber process for the consumer-death test: handles events, then hangs.

Run as ``python -m tests.faults.consumer_process URL PREFIX GROUP CONSUMER N``: it
subscribes as CONSUMER of GROUP, applies each event to the idempotent projection
(``apply_in_order``), prints ``handled <event id>`` for each, and after the N-th
prints ``hanging`` and blocks inside the handler, before the acknowledgement, until
the test kills it.
"""

from __future__ import annotations

import sys
import threading

from persistence import (
    EventStore,
    Persistence,
    ProjectionStore,
    RecordedEvent,
)
from tests.persistence.events import Deposited, make_codec

GROUP_OPTIONS = {"claim_idle": 0.5, "max_deliveries": 20}


def apply_in_order(store: EventStore, projections: ProjectionStore, event: RecordedEvent) -> None:
    """Apply ``event`` to the hash of its stream, once, in stream order.

    The hash records the stream version it has applied. A redelivered event (at or
    below it) changes nothing; an event ahead of it (its predecessors are still
    pending on a dead consumer) first applies the missing ones, read from the store,
    so the position never skips a version.
    """
    key = f"account:{event.stream_id}"
    applied = projections.position(key)
    if event.version <= applied:
        return
    for recorded in store.read(event.stream_id, applied, event.version):
        deposited = recorded.event
        assert isinstance(deposited, Deposited)
        projections.apply(
            key, recorded.version, increments={"count": 1, "total": deposited.amount}
        )


def main(url: str, prefix: str, group: str, consumer: str, hang_after: int) -> None:
    persistence = Persistence.on_redis(url, make_codec(), prefix=prefix, partitions=4)
    handled = 0
    forever = threading.Event()

    def handle(event: RecordedEvent) -> None:
        nonlocal handled
        apply_in_order(persistence.events, persistence.projections, event)
        handled += 1
        print(f"handled {event.metadata.event_id}", flush=True)
        if handled == hang_after:
            print("hanging", flush=True)
            forever.wait()  # handled, never acknowledged: the test kills us here

    persistence.subscriptions.subscribe(group, handle, consumer=consumer, **GROUP_OPTIONS)
    forever.wait()


if __name__ == "__main__":
    url, prefix, group, consumer, hang_after = sys.argv[1:6]
    main(url, prefix, group, consumer, int(hang_after))
