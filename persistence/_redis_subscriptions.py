"""Subscriptions on Redis: a consumer group per subscription name on every partition feed.

One thread per subscription reads all partition feeds with one blocking XREADGROUP
(a short block, so ``stop()`` is prompt; never re-sent after a lost reply, since the
entries it handed over are pending on the consumer: the loop reads those back with
``own_pending(counted=False)`` on the error, in feed order, through XPENDING and XRANGE,
which leave the delivery counts alone), acknowledges with XACK after the handler
returned (one XACK per partition for the events of a read batch), claims entries
idle on dead consumers with XAUTOCLAIM, and moves entries that keep failing to the
group's dead-letter stream of their partition, in one script with the
acknowledgement. Delivery counts are Redis' own (XPENDING), so they
survive consumer restarts. The loop itself is ``persistence._subscription``.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Sequence
from typing import Any

from persistence._errors import BackendError, CodecError, PersistenceError
from persistence._ports import (
    DeadLetter,
    FeedPosition,
    StartFrom,
    Subscription,
    SubscriptionHandler,
    entry_key,
)
from persistence._redis import RedisEventStore
from persistence._redis_errors import map_redis_error, map_redis_errors
from persistence._redis_layout import FEED_FIELDS, check_name
from persistence._redis_scripts import DEAD_LETTER, FORGET_CONSUMER
from persistence._subscription import Delivery, RunningSubscription, default_consumer_name, log

__all__ = ["RedisSubscriptions"]

READ_COUNT = 64
"""Entries read per partition per XREADGROUP."""

CLAIM_COUNT = 100
"""Entries claimed per partition per XAUTOCLAIM."""

PENDING_PAGE = 32
"""Entries per partition a consumer reads back at a time after a lost reply: a small
reply, so that a connection that keeps losing replies still gets pages through."""

MAX_CLAIM_PAGES = 100
"""XAUTOCLAIM pages followed per claim (the rest waits for the next claim period)."""


class _RedisGroupBackend:
    """``GroupBackend`` for one consumer of one group over a store's partition feeds."""

    def __init__(
        self,
        store: RedisEventStore,
        group: str,
        consumer: str,
        start: StartFrom,
        types: frozenset[str] | None = None,
    ) -> None:
        self._store = store
        # Compared with the raw ``type`` field, so that an unwanted entry is skipped
        # before anything of it is decoded (the point of a type filter).
        self._types = None if types is None else frozenset(t.encode() for t in types)
        self._group = group
        self._consumer = consumer
        self._start = start
        layout = store.layout
        self._feeds = [layout.feed(p) for p in range(store.partitions)]
        self._partition_of_feed = {key.encode(): p for p, key in enumerate(self._feeds)}
        self._dead_keys = [layout.dead(p, group) for p in range(store.partitions)]
        self._dead_letter_script = store.client.register_script(DEAD_LETTER)
        self._forget_script = store.client.register_script(FORGET_CONSUMER)

    def _doing(self, what: str) -> str:
        return f"subscription {self._group}/{self._consumer}: {what}"

    def ensure_group(self) -> None:
        since = "$" if self._start == "now" else "0"
        replies = self._store.pipeline(
            [("XGROUP", "CREATE", feed, self._group, since, "MKSTREAM") for feed in self._feeds],
            doing=self._doing("creating the group"),
        )
        for reply in replies:
            if isinstance(reply, Exception) and not str(reply).startswith("BUSYGROUP"):
                raise map_redis_error(reply, self._doing("creating the group"))

    def _deliveries(
        self,
        partition: int,
        entries: Sequence[Any],
        counts: dict[bytes, int] | None,
    ) -> tuple[list[Delivery], list[bytes]]:
        """Deliveries of raw entries, and the ids of entries deleted meanwhile (trimmed)."""
        out = []
        gone = []
        wanted = self._types
        for entry in entries:
            entry_id, fields = entry
            if fields is None:
                gone.append(entry_id)
                continue
            deliveries = 1 if counts is None else counts.get(entry_id, 1)
            # An entry without a type goes on to decoding, which names what is wrong.
            kind = None if wanted is None else _type_of(fields)
            if kind is not None and wanted is not None and kind not in wanted:
                out.append(
                    Delivery(partition, entry_id.decode(), deliveries, None, None, fields, True)
                )
                continue
            try:
                event = self._store.feed_entry(partition, entry)
                error: CodecError | None = None
            except CodecError as codec_error:
                event, error = None, codec_error
            out.append(Delivery(partition, entry_id.decode(), deliveries, event, error, fields))
        return out, gone

    def _check(self, reply: Any, what: str) -> Any:
        if isinstance(reply, Exception):
            raise map_redis_error(reply, self._doing(what))
        return reply

    def _pending_counts(
        self, ranges: dict[int, tuple[bytes, bytes]]
    ) -> dict[int, dict[bytes, int]]:
        """This consumer's delivery counts of entries in the given id ranges, per partition."""
        partitions = list(ranges)
        replies = self._store.pipeline(
            [
                ("XPENDING", self._feeds[p], self._group, ranges[p][0], ranges[p][1],
                 10_000, self._consumer)
                for p in partitions
            ],
            doing=self._doing("reading delivery counts"),
        )
        return {
            p: {row[0]: int(row[3]) for row in self._check(reply, "reading delivery counts")}
            for p, reply in zip(partitions, replies, strict=True)
        }

    def own_pending(self, counted: bool = True) -> list[Delivery]:
        if not counted:
            return self._pending_again()
        # Reading its own history re-delivers (and counts) what this consumer name
        # had read but not acknowledged before it stopped. Paged: every entry pending
        # on it comes back now, not only the first page (the rest would wait for
        # claim_idle, and then come after newer entries).
        found: dict[int, list[Any]] = {}
        after = dict.fromkeys(range(len(self._feeds)), b"0")
        while after:
            partitions = list(after)
            replies = self._store.pipeline(
                [
                    ("XREADGROUP", "GROUP", self._group, self._consumer, "COUNT", CLAIM_COUNT,
                     "STREAMS", self._feeds[p], after[p])
                    for p in partitions
                ],
                doing=self._doing("reading its pending entries"),
                resend=False,  # a lost reply: the loop reads them back uncounted
            )
            after = {}
            for partition, reply in zip(partitions, replies, strict=True):
                for _key, entries in _per_stream(
                    self._check(reply, "reading its pending entries")
                ):
                    if entries:
                        found.setdefault(partition, []).extend(entries)
                        if len(entries) == CLAIM_COUNT:
                            after[partition] = entries[-1][0]
        return self._with_counts(found)

    def _pending_again(self) -> list[Delivery]:
        """The first entries pending on this consumer (up to ``PENDING_PAGE`` per
        partition), their counts as they are: XPENDING for the ids and counts, then
        one XRANGE per partition from the first of them. Read-only, so a lost reply
        is simply asked again, and an entry that lost replies kept from the handler is
        not counted as a failed delivery however often that happens. A page at a time
        in a few commands, so that a connection losing replies still gets pages
        through; the loop asks again until nothing is pending."""
        doing = self._doing("reading its pending entries")
        partitions = range(len(self._feeds))
        replies = self._store.pipeline(
            [
                ("XPENDING", self._feeds[p], self._group, "-", "+", PENDING_PAGE,
                 self._consumer)
                for p in partitions
            ],
            doing=doing,
        )
        counts: dict[int, dict[bytes, int]] = {}
        for p, reply in zip(partitions, replies, strict=True):
            rows = self._check(reply, "reading its pending entries")
            if rows:
                counts[p] = {row[0]: int(row[3]) for row in rows}
        if not counts:
            return []
        window = PENDING_PAGE * 4  # entries of other consumers may lie in between
        ranges = {p: (next(iter(ids)), next(reversed(ids))) for p, ids in counts.items()}
        replies = self._store.pipeline(
            [("XRANGE", self._feeds[p], first, last, "COUNT", window)
             for p, (first, last) in ranges.items()],
            doing=doing,
        )
        found: dict[int, list[Any]] = {}
        for partition, reply in zip(ranges, replies, strict=True):
            entries = self._check(reply, "reading its pending entries")
            by_id = {entry[0]: entry for entry in entries}
            complete = len(entries) < window
            reached = entry_key(entries[-1][0].decode()) if entries else (0, 0)
            page: list[Any] = []
            for entry_id in counts[partition]:
                entry = by_id.get(entry_id)
                if entry is not None:
                    page.append(entry)
                elif complete or entry_key(entry_id.decode()) <= reached:
                    # Deleted (trimmed): delivered as deleted, so acknowledged.
                    page.append([entry_id, None])
                # else: beyond this window, on a later page
            found[partition] = page
        out = self._with_counts(found, counts)
        if not out and any(found.values()):  # a page of deleted entries only: the next one
            return self._pending_again()
        return out

    def _with_counts(
        self, found: dict[int, list[Any]], counts: dict[int, dict[bytes, int]] | None = None
    ) -> list[Delivery]:
        """Deliveries of the raw entries ``found`` per partition, with their delivery
        counts (read from XPENDING unless given); entries deleted meanwhile are
        acknowledged instead."""
        if not found:
            return []
        if counts is None:
            counts = self._pending_counts(
                {p: (entries[0][0], entries[-1][0]) for p, entries in found.items()}
            )
        out: list[Delivery] = []
        for partition, entries in found.items():
            deliveries, gone = self._deliveries(partition, entries, counts[partition])
            out += deliveries
            if gone:
                self._ack_ids(partition, gone)
        return out

    def read_new(self, block: float, ack: Sequence[Delivery] = ()) -> list[Delivery]:
        args: list[Any] = ["XREADGROUP", "GROUP", self._group, self._consumer, "COUNT", READ_COUNT]
        if block > 0:  # BLOCK 0 would wait forever
            args += ["BLOCK", max(1, int(block * 1000))]
        args += ["STREAMS", *self._feeds, *(">" for _ in self._feeds)]
        doing = self._doing("reading new entries")
        # Not re-sent after a lost reply: the entries it handed over are pending on
        # this consumer; the loop reads them back with own_pending() on the error.
        if ack:
            # XACK before the read in one round trip: the server runs them first,
            # even while the read then blocks.
            commands = self._ack_commands(ack)
            replies = self._store.pipeline([*commands, args], doing=doing, resend=False)
            for acked in replies[: len(commands)]:
                self._check(acked, "acknowledging")
            reply = self._check(replies[-1], "reading new entries")
        else:
            reply = self._store.command(*args, doing=doing, resend=False)
        out: list[Delivery] = []
        for key, entries in _per_stream(reply):
            deliveries, _gone = self._deliveries(self._partition_of_feed[key], entries, None)
            out += deliveries
        return out

    def claim(self, min_idle: float) -> list[Delivery]:
        # Follows XAUTOCLAIM's cursor: everything idle is claimed now, not a page per
        # claim period (a dead consumer's backlog would otherwise trickle back).
        idle_ms = max(0, int(min_idle * 1000))
        found: dict[int, list[Any]] = {}
        cursors = dict.fromkeys(range(len(self._feeds)), b"0-0")
        for _page in range(MAX_CLAIM_PAGES):
            if not cursors:
                break
            partitions = list(cursors)
            replies = self._store.pipeline(
                [
                    ("XAUTOCLAIM", self._feeds[p], self._group, self._consumer, idle_ms,
                     cursors[p], "COUNT", CLAIM_COUNT)
                    for p in partitions
                ],
                doing=self._doing("claiming idle entries"),
                resend=False,  # claimed entries are this consumer's now: own_pending() finds them
            )
            cursors = {}
            for partition, reply in zip(partitions, replies, strict=True):
                checked = self._check(reply, "claiming idle entries")
                if checked[1]:
                    found.setdefault(partition, []).extend(checked[1])
                if checked[0] not in (b"0-0", "0-0"):
                    cursors[partition] = checked[0]
        return self._with_counts(found)

    def redeliver(self, delivery: Delivery) -> Delivery | None:
        count = delivery.deliveries + 1
        reply = self._store.command(
            "XCLAIM", self._feeds[delivery.partition], self._group, self._consumer, 0,
            delivery.entry_id, "RETRYCOUNT", count,
            doing=self._doing("redelivering an entry"),
            resend=False,
        )
        deliveries, _gone = self._deliveries(
            delivery.partition, reply, {delivery.entry_id.encode(): count}
        )
        return deliveries[0] if deliveries else None

    def _ack_ids(self, partition: int, ids: Sequence[bytes | str]) -> None:
        self._store.command(
            "XACK", self._feeds[partition], self._group, *ids, doing=self._doing("acknowledging")
        )

    def _ack_commands(self, deliveries: Sequence[Delivery]) -> list[tuple[Any, ...]]:
        by_partition: dict[int, list[str]] = {}
        for delivery in deliveries:
            by_partition.setdefault(delivery.partition, []).append(delivery.entry_id)
        return [("XACK", self._feeds[p], self._group, *ids) for p, ids in by_partition.items()]

    def ack(self, deliveries: Sequence[Delivery]) -> None:
        replies = self._store.pipeline(
            self._ack_commands(deliveries), doing=self._doing("acknowledging")
        )
        for reply in replies:
            self._check(reply, "acknowledging")

    def dead_letter(self, delivery: Delivery, error: str, traceback: str) -> None:
        fields = list(delivery.raw) if isinstance(delivery.raw, list) else []
        fields += [
            "group", self._group,
            "consumer", self._consumer,
            "partition", delivery.partition,
            "entry", delivery.entry_id,
            "error", error,
            "traceback", traceback,
            "deliveries", delivery.deliveries,
            "failed_at", repr(time.time()),
        ]
        with map_redis_errors(self._doing("dead-lettering")):
            self._dead_letter_script(
                keys=[self._feeds[delivery.partition], self._dead_keys[delivery.partition]],
                args=[self._group, delivery.entry_id, *fields],
            )

    def close(self) -> None:
        # A stopped consumer with nothing pending is deleted from the group, so that
        # consumer names (one per subscription and process) do not pile up in XINFO
        # CONSUMERS over restarts; one with entries pending stays, for them to be
        # resumed under its name or claimed. Best effort: the loop has ended anyway.
        try:
            with map_redis_errors(self._doing("leaving the group")):
                for feed in self._feeds:
                    self._forget_script(keys=[feed], args=[self._group, self._consumer])
        except PersistenceError as error:
            log.warning("%s", error)


def _per_stream(reply: Any) -> Any:
    """XREADGROUP's (key, entries) pairs: a map under RESP3, pairs under RESP2."""
    if reply is None:
        return ()
    if isinstance(reply, dict):
        return reply.items()
    return reply


class RedisSubscriptions:
    """``Subscriptions`` over a ``RedisEventStore``'s partition feeds.

    Args:
        store: the event store whose feeds (and codec, client, prefix) to use.
    """

    def __init__(self, store: RedisEventStore) -> None:
        self._store = store

    def subscribe(
        self,
        group: str,
        handler: SubscriptionHandler,
        *,
        consumer: str | None = None,
        start: StartFrom = "beginning",
        claim_idle: float = 30.0,
        max_deliveries: int = 5,
        retry_delay: float = 0.05,
        types: Collection[str] | None = None,
    ) -> Subscription:
        """See ``Subscriptions.subscribe``.

        Raises:
            ValueError: a group or consumer name with braces, globs or spaces.
            EventStoreUnavailable: the group could not be created.
        """
        check_name("group", group)
        name = check_name("consumer", consumer or default_consumer_name())
        wanted = None if types is None else frozenset(types)
        return RunningSubscription(
            _RedisGroupBackend(self._store, group, name, start, wanted),
            group=group,
            consumer=name,
            handler=handler,
            claim_idle=claim_idle,
            max_deliveries=max_deliveries,
            retry_delay=retry_delay,
            types=wanted,
        )

    def backlog(self, group: str) -> int:
        """See ``Subscriptions.backlog``: ``XINFO GROUPS`` of every feed, one round trip
        (its ``lag`` and ``pending``; on a server without ``lag``, Redis < 7, or when
        it cannot tell, the entries after the group's last delivered one are counted)."""
        check_name("group", group)
        store = self._store
        feeds = [store.layout.feed(p) for p in range(store.partitions)]
        doing = f"measuring the backlog of {group!r}"
        replies = store.pipeline([("XINFO", "GROUPS", key) for key in feeds], doing=doing)
        total = 0
        count_after: list[tuple[str, bytes | None]] = []
        for key, reply in zip(feeds, replies, strict=True):
            if isinstance(reply, Exception):
                if "no such key" in str(reply).lower():
                    continue  # a feed nobody appended to yet
                raise map_redis_error(reply, doing)
            info = next(
                (i for i in (_fields(g) for g in reply) if i.get(b"name") == group.encode()),
                None,
            )
            if info is None:
                count_after.append((key, None))
                continue
            total += int(info.get(b"pending") or 0)
            lag = info.get(b"lag")
            if isinstance(lag, int):
                total += lag
            else:
                count_after.append((key, info.get(b"last-delivered-id")))
        if count_after:
            ranges = [
                ("XRANGE", key, "-" if after is None else b"(" + after, "+")
                for key, after in count_after
            ]
            for reply in store.pipeline(ranges, doing=doing):
                if isinstance(reply, Exception):
                    raise map_redis_error(reply, doing)
                total += len(reply)
        return total

    def dead_letters(self, group: str) -> list[DeadLetter]:
        """See ``Subscriptions.dead_letters``."""
        check_name("group", group)
        layout = self._store.layout
        replies = self._store.pipeline(
            [("XRANGE", layout.dead(p, group), "-", "+") for p in range(layout.partitions)],
            doing=f"reading dead letters of {group!r}",
        )
        letters = []
        for partition, reply in enumerate(replies):
            if isinstance(reply, Exception):
                raise map_redis_error(reply, f"reading dead letters of {group!r}")
            for _dead_id, fields in reply:
                letters.append(self._letter(group, partition, fields))
        return letters

    def _letter(self, group: str, partition: int, fields: list[bytes]) -> DeadLetter:
        named = dict(zip(fields[0::2], fields[1::2], strict=True))

        def text(name: str) -> str:
            return named.get(name.encode(), b"").decode(errors="replace")

        entry = text("entry")
        try:
            original = [item for name in FEED_FIELDS for item in (name, named[name])]
            event = self._store.feed_entry(partition, [entry.encode(), original])
        except (CodecError, KeyError):
            event = None
        try:
            return DeadLetter(
                group=group,
                position=FeedPosition(partition, entry),
                stream_id=text("stream"),
                version=int(text("version") or 0),
                type_name=text("type"),
                error=text("error"),
                deliveries=int(text("deliveries") or 0),
                consumer=text("consumer"),
                failed_at=float(text("failed_at") or 0.0),
                event=event,
                traceback=text("traceback"),
            )
        except ValueError as error:
            raise BackendError(
                f"unreadable dead letter in partition {partition}: {error}"
            ) from None


_TYPE_AT = FEED_FIELDS.index(b"type") * 2 + 1  # the value after the name, as written


def _type_of(fields: Sequence[bytes]) -> bytes | None:
    """The raw ``type`` field of a feed entry (None when it has none)."""
    if len(fields) > _TYPE_AT and fields[_TYPE_AT - 1] == b"type":
        return fields[_TYPE_AT]
    for i in range(0, len(fields) - 1, 2):  # written by another client, in another order
        if fields[i] == b"type":
            return fields[i + 1]
    return None


def _fields(reply: Sequence[Any] | dict[bytes, Any]) -> dict[bytes, Any]:
    """An XINFO reply as a dict: a map under RESP3, a flat ``[name, value, ...]`` list
    under RESP2."""
    if isinstance(reply, dict):
        return reply
    return dict(zip(reply[0::2], reply[1::2], strict=False))
