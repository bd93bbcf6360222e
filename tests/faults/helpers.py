"""What the fault tests share: an appender that retries until its append is known."""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass, field

from persistence import EventMetadata, EventStore, EventStoreUnavailable, RecordedEvent
from tests.persistence.events import Deposited

_PAUSE = threading.Event()  # never set: a wait on it is an interruptible pause


@dataclass
class Ledger:
    """What one appender had acknowledged, per stream, and how often it had to retry."""

    acknowledged: dict[str, list[str]] = field(default_factory=dict)
    retries: int = 0
    errors: list[BaseException] = field(default_factory=list)


def append_until_known(
    store: EventStore,
    stream_id: str,
    version: int,
    ledger: Ledger,
    *,
    events: int = 1,
    give_up_after: float = 30.0,
) -> int:
    """Append ``events`` events at ``version`` with fresh ids, retrying while unavailable.

    An ``EventStoreUnavailable`` is an ambiguous outcome (applied or not): the same
    event ids are appended again at the same expected version, which the store
    answers with the earlier result if it had been applied. Returns the new version.
    """
    ids = [uuid.uuid4().hex for _ in range(events)]
    batch = [Deposited(account=stream_id, amount=version + n + 1) for n in range(events)]
    metadata = [EventMetadata(event_id) for event_id in ids]
    deadline = time.monotonic() + give_up_after
    while True:
        try:
            result = store.append(stream_id, batch, version, metadata)
        except EventStoreUnavailable:
            ledger.retries += 1
            if time.monotonic() > deadline:
                raise
            _PAUSE.wait(0.02)
            continue
        ledger.acknowledged.setdefault(stream_id, []).extend(ids)
        return result.version


def check_stream(events: list[RecordedEvent], acknowledged: list[str]) -> None:
    """Versions 1..n without gap or duplicate, exactly the acknowledged event ids."""
    versions = [event.version for event in events]
    assert versions == list(range(1, len(events) + 1)), versions
    ids = [event.metadata.event_id for event in events]
    assert len(set(ids)) == len(ids), "an event was stored twice"
    assert ids == acknowledged


def split_feed_entries(
    store: EventStore, feed_events: list[RecordedEvent]
) -> tuple[list[RecordedEvent], list[RecordedEvent]]:
    """Feed entries split into those their stream entry names and the others, in order.

    The append script writes the feed entry, then the stream entry naming it. Redis
    (7.0 at least) can replay a script cut short in its AOF as a lone feed entry:
    after a short write, ``aof-load-truncated yes`` cuts the file at the last whole
    command, inside the script's MULTI, and the next restart runs that feed XADD with
    the following transaction. Such an entry repeats an event whose stream entry
    names another feed entry (or an event no stream holds: the append was never
    acknowledged and never retried).
    """
    named: dict[tuple[str, int], str] = {}
    for stream_id in {event.stream_id for event in feed_events}:
        for recorded in store.read(stream_id):
            named[(stream_id, recorded.version)] = recorded.position.entry_id
    kept: list[RecordedEvent] = []
    repeats: list[RecordedEvent] = []
    for event in feed_events:
        is_named = named.get((event.stream_id, event.version)) == event.position.entry_id
        (kept if is_named else repeats).append(event)
    return kept, repeats
