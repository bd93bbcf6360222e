"""Every Redis key the adapter uses, built in one place (documented in docs/redis-layout.md).

All keys of one partition carry the hash tag ``{p<partition>}``: an append writes the
aggregate stream and the partition feed, a dead-lettering writes the feed's group
state and the dead-letter stream, and each of these lands in one hash slot, so every
script runs unchanged on Redis Cluster. Streams are spread over partitions by
``partition_for`` (CRC-32), partitions over slots by the tag: there is no global
stream that every append must touch.
"""

from __future__ import annotations

from dataclasses import dataclass

from persistence._common import check_name, check_partitions
from persistence._ports import partition_for

__all__ = ["LAYOUT_VERSION", "RedisLayout", "check_name"]

LAYOUT_VERSION = 1

STREAM_FIELDS = (
    b"type", b"schema", b"data", b"event_id", b"correlation_id", b"causation_id",
    b"recorded_at", b"extra", b"feed",
)
"""Aggregate stream entry fields, in the order the append script writes them."""

FEED_FIELDS = (
    b"stream", b"version", b"type", b"schema", b"data", b"event_id", b"correlation_id",
    b"causation_id", b"recorded_at", b"extra",
)
"""Partition feed entry fields, in the order the append script writes them."""


@dataclass(frozen=True, slots=True)
class RedisLayout:
    """Key names under ``prefix`` for ``partitions`` partitions."""

    prefix: str = "ca"
    partitions: int = 16

    def __post_init__(self) -> None:
        check_name("key prefix", self.prefix)
        check_partitions(self.partitions)

    def partition_of(self, stream_id: str) -> int:
        return partition_for(stream_id, self.partitions)

    def tag(self, partition: int) -> str:
        return f"{self.prefix}:{{p{partition}}}"

    @property
    def meta(self) -> str:
        """Hash recording the layout version and partition count of this prefix."""
        return f"{self.prefix}:meta"

    def stream(self, stream_id: str) -> str:
        """The aggregate stream of ``stream_id`` (entry ids ``<version>-0``)."""
        return f"{self.tag(self.partition_of(stream_id))}:stream:{stream_id}"

    def stream_in(self, partition: int, stream_id: str) -> str:
        return f"{self.tag(partition)}:stream:{stream_id}"

    def stream_pattern(self, partition: int) -> str:
        return f"{self.tag(partition)}:stream:*"

    def feed(self, partition: int) -> str:
        """The partition's feed, read by consumer groups."""
        return f"{self.tag(partition)}:feed"

    def index(self, partition: int, name: str) -> str:
        """Stream index ``name``: the streams of this partition it lists (same slot)."""
        return f"{self.tag(partition)}:index:{name}"

    def dead(self, partition: int, group: str) -> str:
        """The dead letters of ``group`` from this partition's feed."""
        return f"{self.tag(partition)}:dead:{group}"

    def snapshot(self, stream_id: str) -> str:
        """The latest snapshot of ``stream_id`` (same slot as its stream)."""
        return f"{self.tag(self.partition_of(stream_id))}:snapshot:{stream_id}"

    def notices(self, topic: str) -> str:
        """The Pub/Sub channel of a notice topic (a channel, not a key: nothing stored)."""
        return f"{self.prefix}:notices:{topic}"

    def projection_current(self, namespace: str) -> str:
        """String: the projection namespace's current generation."""
        return f"{self.prefix}:projection:{namespace}:current"

    def projection_counter(self, namespace: str) -> str:
        """Counter handing out the namespace's generations."""
        return f"{self.prefix}:projection:{namespace}:generations"

    def projection(self, namespace: str, generation: int, key: str) -> str:
        """One read-model hash."""
        return f"{self.prefix}:projection:{namespace}:{generation}:{key}"

    def projection_prefix(self, namespace: str, generation: int) -> str:
        return f"{self.prefix}:projection:{namespace}:{generation}:"
