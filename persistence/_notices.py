"""``Notices`` in process: each listener has a queue and a thread of its own.

Shared by the in-memory backend's users (several systems on one ``Persistence``);
the thread per listener keeps the port's promise that ``publish`` never waits for a
handler, as on Redis.
"""

from __future__ import annotations

import logging
import threading
from queue import SimpleQueue

from persistence._common import check_name
from persistence._ports import NoticeHandler

__all__ = ["ListeningThread", "MemoryNotices"]

log = logging.getLogger("persistence.notices")


class ListeningThread:
    """A ``Listening`` whose handler runs on a thread of its own (both adapters).

    A subclass sets up what ``_run`` reads from, then calls ``_thread.start()``.
    """

    def __init__(self, topic: str, handler: NoticeHandler) -> None:
        self._topic = topic
        self._handler = handler
        self._thread = threading.Thread(target=self._run, name=f"notices-{topic}", daemon=True)

    @property
    def topic(self) -> str:
        return self._topic

    def _run(self) -> None:
        raise NotImplementedError

    def _deliver(self, payload: bytes) -> None:
        """One notice to the handler; an exception is logged, never passed on, so that
        one bad notice cannot end a listener."""
        try:
            self._handler(payload)
        except Exception:
            log.exception("a handler of notices on %r failed", self._topic)

    def _joined(self, timeout: float | None) -> bool:
        if self._thread is not threading.current_thread():
            self._thread.join(timeout)
        return not self._thread.is_alive()


class _MemoryListening(ListeningThread):
    def __init__(self, owner: MemoryNotices, topic: str, handler: NoticeHandler) -> None:
        super().__init__(topic, handler)
        self._owner = owner
        self.queue: SimpleQueue[bytes | None] = SimpleQueue()
        self._thread.start()

    def _run(self) -> None:
        while (payload := self.queue.get()) is not None:
            self._deliver(payload)

    def stop(self, timeout: float | None = None) -> bool:
        self._owner._forget(self)
        self.queue.put(None)
        return self._joined(timeout)


class MemoryNotices:
    """``Notices`` for the processes of one in-memory backend, that is, this one."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._listeners: dict[str, list[_MemoryListening]] = {}

    def publish(self, topic: str, payload: bytes) -> None:
        check_name("notice topic", topic)
        with self._lock:
            listeners = list(self._listeners.get(topic, ()))
        for listening in listeners:
            listening.queue.put(payload)

    def listen(self, topic: str, handler: NoticeHandler) -> _MemoryListening:
        check_name("notice topic", topic)
        listening = _MemoryListening(self, topic, handler)
        with self._lock:
            self._listeners.setdefault(topic, []).append(listening)
        return listening

    def _forget(self, listening: _MemoryListening) -> None:
        with self._lock:
            listeners = self._listeners.get(listening.topic, [])
            if listening in listeners:
                listeners.remove(listening)
