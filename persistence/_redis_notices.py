"""``Notices`` on Redis Pub/Sub: ``PUBLISH`` pipelined with the appends, one
subscribed connection and thread per listener.

Pub/Sub is what the port asks for and no more: a message reaches the connections
subscribed at that moment, is not stored, and is lost across a reconnection. The
channel is ``{prefix}:notices:{topic}`` (``RedisLayout.notices``), so two prefixes on
one server do not hear each other.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from concurrent.futures import Future
from typing import Any

import redis

from persistence._common import check_name
from persistence._notices import ListeningThread
from persistence._ports import NoticeHandler
from persistence._redis import RedisEventStore

__all__ = ["RedisNotices"]

log = logging.getLogger("persistence.notices")

POLL = 0.1
"""Seconds a listener waits for a message before it looks whether it was stopped."""

MAX_BACKOFF = 2.0
"""Longest wait between two attempts to (re)subscribe to a server that is down."""


def _published(done: Future[Any]) -> None:
    error = done.exception()
    if error is not None:  # allowed (see Notices): the waiter it was for polls
        log.debug("a notice was not published: %s", error)


class _RedisListening(ListeningThread):
    def __init__(self, client: redis.Redis, channel: str, topic: str, handler: NoticeHandler):
        super().__init__(topic, handler)
        # older redis-py leaves pubsub() untyped, 8.2 types it: either must pass mypy
        self._pubsub = client.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call, unused-ignore]
        self._channel = channel
        self._stopping = threading.Event()
        # Subscribed before listen() returns, when the server answers: a notice
        # published after that reaches this listener.
        self._subscribed = self._subscribe()
        self._thread.start()

    def _subscribe(self) -> bool:
        try:
            self._pubsub.subscribe(self._channel)
        except (redis.RedisError, OSError) as error:
            log.warning("subscribing to notices on %r failed (will retry): %s", self._topic, error)
            return False
        return True

    def _run(self) -> None:
        backoff = 0.05
        try:
            while not self._stopping.is_set():
                if not self._subscribed:
                    self._subscribed = self._subscribe()
                    if not self._subscribed:
                        self._stopping.wait(backoff)
                        backoff = min(MAX_BACKOFF, backoff * 2)
                        continue
                try:
                    # After a lost connection redis-py reconnects here and subscribes
                    # again to the channels it had; what was published meanwhile is lost.
                    message = self._pubsub.get_message(timeout=POLL)
                except (redis.RedisError, OSError) as error:
                    log.warning("notices on %r: %s; listening again", self._topic, error)
                    self._stopping.wait(backoff)
                    backoff = min(MAX_BACKOFF, backoff * 2)
                    continue
                backoff = 0.05
                if message is not None and message.get("type") in ("message", b"message"):
                    self._deliver(message["data"])
        finally:
            with contextlib.suppress(redis.RedisError, OSError):  # a connection already lost
                self._pubsub.close()

    def stop(self, timeout: float | None = None) -> bool:
        self._stopping.set()
        return self._joined(timeout)


class RedisNotices:
    """``Notices`` for every process using ``store``'s server and prefix."""

    def __init__(self, store: RedisEventStore) -> None:
        self._store = store

    def publish(self, topic: str, payload: bytes) -> None:
        channel = self._store.layout.notices(check_name("notice topic", topic))
        try:
            sent = self._store.command_async("PUBLISH", channel, payload, doing="publishing")
        except Exception as error:  # a lost notice is allowed (see Notices), a raise is not
            log.debug("a notice on %r was not published: %s", topic, error)
            return
        sent.add_done_callback(_published)

    def listen(self, topic: str, handler: NoticeHandler) -> _RedisListening:
        channel = self._store.layout.notices(check_name("notice topic", topic))
        return _RedisListening(self._store.client, channel, topic, handler)
