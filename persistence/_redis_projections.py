"""Projections (read-model hashes) and snapshots on Redis.

Projection hashes live under ``<prefix>:projection:<namespace>:<generation>:<key>``;
``<prefix>:projection:<namespace>:current`` names the current generation. Each call
resolves the current generation first (one GET): a rebuild that switches generations
is then seen by every writer at once, which is what makes the rebuild's final
catch-up complete (see ``rebuild_projection``).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import redis
import redis.exceptions as rx

from persistence._common import POSITION_FIELD, apply_each, check_increment, field_value
from persistence._errors import InvalidProjectionUpdate, PersistenceError
from persistence._ports import ProjectionStore, ProjectionUpdate, Snapshot
from persistence._redis import check_client, raw_pipeline
from persistence._redis_errors import map_redis_error, map_redis_errors
from persistence._redis_layout import RedisLayout, check_name
from persistence._redis_scripts import PROJECTION_APPLY, SNAPSHOT_SAVE

__all__ = ["RedisProjectionStore", "RedisSnapshotStore"]


class _RedisProjectionView:
    """A ``ProjectionStore`` acting on one generation, or on the current one (None)."""

    def __init__(self, owner: RedisProjectionStore, generation: int | None) -> None:
        self._owner = owner
        self._fixed = generation

    def _generation(self) -> int:
        return self._owner.generation() if self._fixed is None else self._fixed

    def _key(self, key: str) -> str:
        owner = self._owner
        return owner._layout.projection(owner._namespace, self._generation(), key)

    def apply(
        self,
        key: str,
        position: int,
        set_fields: Mapping[str, str | int | bytes] | None = None,
        increments: Mapping[str, int] | None = None,
    ) -> bool:
        """See ``ProjectionStore.apply``."""
        args = _apply_args(key, position, set_fields, increments)
        with map_redis_errors(f"applying to projection {key!r}"):
            result = self._owner._apply(keys=[self._key(key)], args=args)
        return _applied(key, result)

    def apply_many(self, updates: Sequence[ProjectionUpdate]) -> list[bool]:
        """See ``ProjectionStore.apply_many``: one pipeline of the apply script, after
        one look-up of the generation."""
        if not updates:
            return []
        owner = self._owner
        generation = self._generation()
        replies: list[Any] = [None] * len(updates)
        commands: dict[int, tuple[Any, ...]] = {}  # by index, the valid updates only
        for index, update in enumerate(updates):
            try:
                args = _apply_args(
                    update.key, update.position, update.set_fields, update.increments
                )
            except InvalidProjectionUpdate as error:  # not sent; the others are
                replies[index] = error
                continue
            key = owner._layout.projection(owner._namespace, generation, update.key)
            commands[index] = (key, *args)
        doing = f"applying {len(updates)} projection updates"
        todo = list(commands)
        for attempt in range(2 if todo else 0):
            sha = owner._apply.sha
            sent = raw_pipeline(
                owner._client, [("EVALSHA", sha, 1, *commands[i]) for i in todo], doing=doing
            )
            for index, reply in zip(todo, sent, strict=True):
                replies[index] = reply
            # The server lost its script cache (restart, SCRIPT FLUSH): those did not
            # run; load the script and send them again, in their order.
            todo = [i for i in todo if isinstance(replies[i], rx.NoScriptError)]
            if not todo or attempt:
                break
            with map_redis_errors(doing):
                owner._client.script_load(PROJECTION_APPLY)
        return apply_each(zip(updates, replies, strict=True), _reply_applied)

    def get(self, key: str) -> dict[str, str] | None:
        """See ``ProjectionStore.get``."""
        with map_redis_errors(f"reading projection {key!r}"):
            fields: Any = self._owner._client.hgetall(self._key(key))
        if not fields:
            return None
        return {name.decode(): value.decode() for name, value in fields.items()}

    def position(self, key: str) -> int:
        with map_redis_errors(f"reading projection {key!r}"):
            value = self._owner._client.hget(self._key(key), POSITION_FIELD)
        return int(value) if value is not None else 0

    def delete(self, key: str) -> None:
        with map_redis_errors(f"deleting projection {key!r}"):
            self._owner._client.delete(self._key(key))

    def keys(self) -> Iterator[str]:
        """Every key of the generation (SCAN; any order)."""
        owner = self._owner
        head = owner._layout.projection_prefix(owner._namespace, self._generation())
        with map_redis_errors("listing projection keys"):
            found = list(owner._client.scan_iter(match=head + "*", count=1000))
        return iter([key.decode()[len(head):] for key in found])


class RedisProjectionStore(_RedisProjectionView):
    """``ProjectionGenerations`` on Redis hashes (thread-safe).

    Args:
        client: a redis-py client.
        prefix: the key prefix (the event store's, usually).
        namespace: the projection's name; each namespace has its own generations.
    """

    def __init__(
        self, client: redis.Redis, *, prefix: str = "ca", namespace: str = "default"
    ) -> None:
        self._client = check_client(client)
        self._layout = RedisLayout(prefix)
        self._namespace = check_name("projection namespace", namespace)
        self._apply = client.register_script(PROJECTION_APPLY)
        super().__init__(self, None)

    def generation(self) -> int:
        """The current generation (0 until a rebuild switches)."""
        with map_redis_errors("reading the projection generation"):
            value = self._client.get(self._layout.projection_current(self._namespace))
        return int(value) if value is not None else 0

    def new_generation(self) -> int:
        with map_redis_errors("reserving a projection generation"):
            return int(self._client.incr(self._layout.projection_counter(self._namespace)))

    def at_generation(self, generation: int) -> ProjectionStore:
        return _RedisProjectionView(self, generation)

    def switch(self, generation: int) -> None:
        with map_redis_errors("switching the projection generation"):
            self._client.set(self._layout.projection_current(self._namespace), generation)

    def drop_generation(self, generation: int) -> None:
        """Delete every key of ``generation`` (SCAN + UNLINK).

        Raises:
            ValueError: ``generation`` is the current one.
        """
        if generation == self.generation():
            raise ValueError(f"generation {generation} is current; switch away first")
        head = self._layout.projection_prefix(self._namespace, generation)
        with map_redis_errors("dropping a projection generation"):
            batch: list[bytes] = []
            for key in self._client.scan_iter(match=head + "*", count=1000):
                batch.append(key)
                if len(batch) >= 500:
                    self._client.unlink(*batch)
                    batch.clear()
            if batch:
                self._client.unlink(*batch)


class RedisSnapshotStore:
    """``SnapshotStore`` on Redis: one hash per stream (``version``, ``state``).

    The snapshot key carries its stream's partition hash tag, so a snapshot and its
    stream share a slot.

    Args:
        client: a redis-py client.
        prefix, partitions: the event store's.
    """

    def __init__(self, client: redis.Redis, *, prefix: str = "ca", partitions: int = 16) -> None:
        self._client = check_client(client)
        self._layout = RedisLayout(prefix, partitions)
        self._save = client.register_script(SNAPSHOT_SAVE)

    def save(self, stream_id: str, version: int, state: bytes) -> bool:
        """See ``SnapshotStore.save``."""
        with map_redis_errors(f"saving a snapshot of {stream_id!r}"):
            kept = self._save(keys=[self._layout.snapshot(stream_id)], args=[version, bytes(state)])
        return bool(kept)

    def load(self, stream_id: str) -> Snapshot | None:
        with map_redis_errors(f"loading the snapshot of {stream_id!r}"):
            reply: Any = self._client.hmget(self._layout.snapshot(stream_id), ["version", "state"])
        version, state = reply
        if version is None or state is None:
            return None
        return Snapshot(stream_id, int(version), bytes(state))

    def delete(self, stream_id: str) -> None:
        with map_redis_errors(f"deleting the snapshot of {stream_id!r}"):
            self._client.delete(self._layout.snapshot(stream_id))


def _apply_args(
    key: str,
    position: int,
    set_fields: Mapping[str, str | int | bytes] | None,
    increments: Mapping[str, int] | None,
) -> list[Any]:
    """ARGV of the apply script (checked: a bad update raises before anything is sent)."""
    if isinstance(position, bool) or not isinstance(position, int):
        raise InvalidProjectionUpdate(f"{key!r}: position must be an int")
    values = [(f, field_value(key, f, v)) for f, v in (set_fields or {}).items()]
    amounts = [(f, check_increment(key, f, n)) for f, n in (increments or {}).items()]
    args: list[Any] = [position, len(values)]
    for name, value in values:
        args += (name, value)
    for name, amount in amounts:
        args += (name, amount)
    return args


def _reply_applied(sent: tuple[ProjectionUpdate, Any]) -> bool:
    """What became of one update of ``apply_many``: its reply, or the error it got."""
    update, reply = sent
    if isinstance(reply, PersistenceError):
        raise reply
    if isinstance(reply, Exception):
        raise map_redis_error(reply, f"applying to projection {update.key!r}")
    return _applied(update.key, reply)


def _applied(key: str, result: Any) -> bool:
    """The apply script's reply: applied or not, or the field it could not increment."""
    if isinstance(result, list):
        name, value = (item.decode(errors="replace") for item in result)
        raise InvalidProjectionUpdate(
            f"{key!r}.{name} is {value!r}, not an integer: cannot increment"
        )
    return bool(result)
