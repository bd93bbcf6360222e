"""The Redis event store: aggregate streams, partition feeds, group-committed appends.

Layout (``docs/redis-layout.md``): each aggregate is a stream whose entry ids are
``<version>-0``, each append also lands in its partition's feed, both written by one
Lua script (``APPEND``) that checks the expected version and idempotency by event id
before its first write.

Group commit (``_GroupCommit``): appends issued concurrently share round trips. The
first caller to find the writer idle sends its own append at once (a lone append
never waits for company); callers arriving while a batch is in flight queue up, and
everything queued goes out in one pipeline as soon as that batch's replies are in
(each append still its own EVALSHA with its own result or conflict). No timer, no
sleeping: a batch is whatever queued during one round trip. ``append_async`` and
``read_async`` queue for an I/O thread (``_Pipe``) that batches the same way.

Reads skip redis-py's reply callbacks (which build a dict per stream entry) and
decode entries in one tight loop; see ``read`` and ``_stream_entries``.
"""

from __future__ import annotations

import logging
import socket
import ssl
import struct
import sys
import threading
import time
from _thread import allocate_lock as _allocate_lock
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, InvalidStateError
from itertools import pairwise
from queue import SimpleQueue
from typing import Any
from zlib import crc32

import msgpack
import redis
from pydantic import BaseModel
from redis import exceptions as rx
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from actors import LightFuture
from persistence._codec import Codec
from persistence._common import (
    EMPTY_EXTRA,
    check_index_cursor,
    check_name,
    expected_as_int,
    metadata_for,
    new_event_id,
)
from persistence._errors import (
    BackendError,
    CodecError,
    ConcurrencyError,
    ConfigurationError,
    DuplicateEvent,
    EventStoreUnavailable,
    IncompatibleLayout,
    MalformedEvent,
    PersistenceError,
    UnsafeRedisConfiguration,
)
from persistence._fast import fast_constructor, gc_paused
from persistence._ports import (
    AppendResult,
    EventMetadata,
    ExpectedVersion,
    FeedPosition,
    IndexPage,
    RecordedEvent,
)
from persistence._redis_errors import map_redis_error, map_redis_errors
from persistence._redis_layout import FEED_FIELDS, LAYOUT_VERSION, STREAM_FIELDS, RedisLayout
from persistence._redis_scripts import APPEND, TRIM_FEED

_pack_command: Callable[[tuple[Any, ...]], bytes] | None
try:  # redis[hiredis] is a dependency; fall back to redis-py's packer without it.
    from hiredis import pack_command as _pack_command
except ImportError:  # pragma: no cover
    _pack_command = None
_WINDOWS = sys.platform == "win32"
_HiredisParser: type[Any] | tuple[()]
try:  # the reader's replies without redis-py's per-reply frames (``read_raw_replies``)
    from redis._parsers.hiredis import NOT_ENOUGH_DATA as _NOT_ENOUGH_DATA
    from redis._parsers.hiredis import _HiredisParser
except ImportError:  # pragma: no cover - another redis-py: its read_response, slower
    _HiredisParser, _NOT_ENOUGH_DATA = (), object()

__all__ = ["RedisEventStore", "redis_client"]

log = logging.getLogger("persistence.redis")

FSYNC_LOSES = {
    "always": "nothing acknowledged (each write is fsynced before its reply)",
    "everysec": "up to about a second of acknowledged appends on a power or OS failure",
    "no": "whatever the OS had not yet flushed (tens of seconds) on a power or OS failure",
    "off": "everything since the last RDB snapshot, or everything without one",
    "unknown": "an unknown amount (CONFIG GET is disabled; see docs/reliability.md)",
}
"""What a crash of the server or its machine may lose, per fsync policy."""

READ_PAGE = 1000
"""Entries per XRANGE when reading a stream: bounds the reply of a long stream, and
lets Redis build page k+1 while Python decodes page k (1,000 measured best)."""

_RECORDED = fast_constructor(RecordedEvent)
_METADATA = fast_constructor(EventMetadata)
_POSITION = fast_constructor(FeedPosition)
_APPEND_RESULT = fast_constructor(AppendResult)
_packb = msgpack.packb

_STREAM_NAMES = list(STREAM_FIELDS)
_FEED_NAMES = list(FEED_FIELDS)


def redis_client(url: str, **kwargs: Any) -> redis.Redis:
    """A redis-py client for the adapter: short retries, bounded timeouts.

    redis-py retries a command after a connection error (10 times by default, with
    up to a second between tries); the adapter's appends are idempotent by event id,
    so a retry is safe, but a dead server should surface as ``EventStoreUnavailable``
    within about a second rather than after many. A timeout is not retried by the
    client: a server that accepts connections but does not answer fails a command
    after ``socket_timeout`` (5 s), not three times that.
    """
    options: dict[str, Any] = {
        "socket_timeout": 5.0,
        "socket_connect_timeout": 2.0,
        # Connection errors only: a server that accepts but does not answer (stopped,
        # swapping) already took socket_timeout; two more tries would triple it.
        "retry": Retry(
            ExponentialBackoff(cap=0.2, base=0.02), 2, supported_errors=(rx.ConnectionError,)
        ),
        "health_check_interval": 0,
        # Long stream reads arrive in fewer, larger socket reads.
        "socket_read_size": 1 << 20,
    }
    options.update(kwargs)
    return redis.Redis.from_url(url, **options)


def check_client(client: redis.Redis) -> redis.Redis:
    """Raise ValueError for a client that decodes replies (the adapter reads bytes)."""
    if client.get_connection_kwargs().get("decode_responses"):
        raise ValueError("the Redis client must not decode responses (decode_responses=False)")
    return client


def check_eviction_policy(client: redis.Redis, allow_eviction: bool) -> str:
    """Refuse a server that may evict keys (events would vanish silently).

    Uses ``INFO memory`` rather than ``CONFIG GET``, which managed services disable.

    Raises:
        UnsafeRedisConfiguration: the policy is not ``noeviction`` and
            ``allow_eviction`` is False.
    """
    with map_redis_errors("reading the server's maxmemory-policy"):
        info = client.info("memory")
    policy = str(info.get("maxmemory_policy", "unknown"))
    if policy != "noeviction" and not allow_eviction:
        raise UnsafeRedisConfiguration(
            f"Redis maxmemory-policy is {policy!r}: under memory pressure it evicts keys,"
            " event streams included. Set it to 'noeviction', or pass allow_eviction=True"
            " for throw-away data."
        )
    return policy


def read_fsync_policy(client: redis.Redis) -> str:
    """The server's durability: ``appendfsync`` when the AOF is on, else ``"off"``.

    ``INFO persistence`` says whether the AOF is on; the fsync policy itself needs
    ``CONFIG GET appendfsync``, which managed services may disable: ``"unknown"`` then.
    """
    with map_redis_errors("reading the server's persistence settings"):
        info = client.info("persistence")
        if not int(info.get("aof_enabled", 0)):
            return "off"
        try:
            reply: Any = client.config_get("appendfsync")
        except rx.ResponseError:  # CONFIG renamed or disabled
            return "unknown"
    value = reply.get("appendfsync", reply.get(b"appendfsync", "unknown"))
    return value.decode() if isinstance(value, bytes) else str(value)


def check_layout(client: redis.Redis, layout: RedisLayout) -> None:
    """Record this prefix's layout on first use; refuse another partition count later.

    Raises:
        IncompatibleLayout: the prefix holds data written with other partitions.
    """
    with map_redis_errors("checking the key layout"):
        pipe = client.pipeline(transaction=False)
        pipe.hsetnx(layout.meta, "partitions", layout.partitions)
        pipe.hsetnx(layout.meta, "layout", LAYOUT_VERSION)
        pipe.hmget(layout.meta, ["partitions", "layout"])
        stored = pipe.execute()[-1]
    partitions, version = (int(value) if value is not None else None for value in stored)
    if partitions != layout.partitions or version != LAYOUT_VERSION:
        raise IncompatibleLayout(
            f"prefix {layout.prefix!r} holds data of layout {version} with {partitions}"
            f" partitions; this store uses layout {LAYOUT_VERSION} with"
            f" {layout.partitions}. Streams would be looked up in the wrong partition."
        )


class _Request:
    """One command waiting for its reply.

    A blocking caller waits on ``signal`` (a lock); an asynchronous one is told
    through ``future``, after ``convert`` turned the raw reply into its result.
    """

    __slots__ = (
        "args", "command", "convert", "doing", "done", "error", "future", "next", "promoted",
        "reply", "signal",
    )

    def __init__(self, command: tuple[Any, ...]) -> None:
        self.command = command
        self.reply: Any = None
        self.error: BaseException | None = None
        self.done = False
        self.promoted = False
        self.signal: Any = None
        self.next: _Request | None = None  # the follower to wake after this one
        self.future: Future[Any] | None = None
        self.convert: Callable[..., Any] | None = None
        self.args: tuple[Any, ...] = ()  # convert's arguments after the reply
        self.doing = ""


class _GroupCommit:
    """Leader/follower group commit of EVALSHA calls over one dedicated connection.

    Leadership is a token held by one calling thread at a time; only its holder
    touches the connection. A leader reads the replies of the batch in flight (its
    own request is in it), sends the next batch (everything queued meanwhile) at
    once, hands the token to that batch's first request, and only then wakes the
    followers of its own batch: Redis runs the next batch while Python wakes threads.
    At most one batch is in flight, so a lost connection concerns that batch only.
    """

    def __init__(
        self, client: redis.Redis, script: str, *, retries: int, max_batch: int
    ) -> None:
        self._client = client
        self._pool = client.connection_pool
        self._script = script
        self._sha = ""
        self._retries = retries
        self._max_batch = max_batch
        self._mutex = threading.Lock()
        self._queue: list[_Request] = []
        self._busy = False  # a thread holds the leadership token
        # The batch handed to the next leader, and whether it was sent already.
        self._in_flight: list[_Request] = []
        self._in_flight_sent = False
        self._conn: Any = None
        self._kernel_timed: Any = None  # the socket kernel_timeouts() last set up
        self._closed = False
        self.round_trips = 0  # for tests and the benchmark: appends / round trips

    def load(self) -> str:
        with map_redis_errors("loading the append script"):
            self._sha = str(self._client.script_load(self._script))
        return self._sha

    @property
    def sha(self) -> str:
        return self._sha

    def call(self, command: tuple[Any, ...]) -> Any:
        """Send ``command`` (an ``EVALSHA`` of the script); the reply, or its error.

        The calling thread either leads (holds the connection for one batch) or
        follows (waits for a leader to send its request). A follower's wait is not
        cut short by an interrupt (KeyboardInterrupt): others depend on it to wake
        the next follower or to lead the next batch; the interrupt is re-raised after.
        """
        request = _Request(command)
        mutex = self._mutex
        with mutex:
            if self._busy:
                request.signal = _allocate_lock()
                request.signal.acquire()
                self._queue.append(request)
                follower = True
            else:
                self._busy = True
                follower = False
        interrupted: BaseException | None = None
        if follower:
            interrupted = _wait(request.signal)  # until done, or handed the token
            if not request.promoted:
                if request.next is not None:
                    request.next.signal.release()
                if interrupted is not None:
                    raise interrupted
                return _outcome(request)
            batch, sent = self._in_flight, self._in_flight_sent
        else:
            batch, sent = [request], False
        try:
            self._complete(batch, sent)
        except BaseException as error:  # e.g. an interrupt during the round trip
            if self._conn is not None:  # replies may be half read: start afresh
                self._conn.disconnect()
            interrupted = interrupted or error
            lost = rx.ConnectionError(f"append interrupted: {error!r}")
            for item in batch:
                if not item.done:
                    item.error, item.done = lost, True
        finally:
            self._pass_on()
            # Followers wake one another in a chain rather than all at once: only
            # one of them at a time competes for the GIL, so none is woken just to
            # wait for it again (a context switch each, the cost that bounds this).
            followers = [item for item in batch if item is not request]
            for item, after in pairwise(followers):
                item.next = after
            if followers:
                followers[0].signal.release()
        if interrupted is not None:
            raise interrupted
        return _outcome(request)

    def _pass_on(self) -> None:
        """Send what queued meanwhile and hand the token to it, or give the token up."""
        with self._mutex:
            batch = self._queue[: self._max_batch]
            del self._queue[: self._max_batch]
            if not batch:
                self._busy = False
                return
        sent = False
        try:
            sent = self._write(batch)
        except BaseException:  # the next leader sends it again
            sent = False
        self._in_flight, self._in_flight_sent = batch, sent
        batch[0].promoted = True
        batch[0].signal.release()

    def _connection(self) -> Any:
        if self._closed:
            raise EventStoreUnavailable("the event store is closed")
        if self._conn is None:
            self._conn = self._pool.get_connection()
        return self._conn

    def _write(self, batch: list[_Request]) -> bool:
        """Send ``batch`` without reading; False (connection dropped) if that failed."""
        try:
            conn = self._connection()
            if _pack_command is not None:
                packed = [b"".join([_pack_command(r.command) for r in batch])]
            else:  # pragma: no cover
                packed = conn.pack_commands([r.command for r in batch])
            conn.send_packed_command(packed, check_health=False)
            if conn._sock is not self._kernel_timed:  # new, or reconnected by the send
                self._kernel_timed = kernel_timeouts(conn)
        except (rx.ConnectionError, rx.TimeoutError, OSError):
            if self._conn is not None:
                self._conn.disconnect()
            return False
        self.round_trips += 1
        return True

    def _complete(self, batch: list[_Request], sent: bool) -> None:
        """Get every reply of ``batch`` (sending it first unless ``sent``)."""
        pending = batch
        failures = 0
        while pending:
            conn: Any = None
            try:
                if not sent:
                    conn = self._connection()
                    if not self._write(pending):
                        raise rx.ConnectionError("sending appends failed")
                conn = self._connection()
                _read_replies(conn, pending)
            except (rx.ConnectionError, rx.TimeoutError, OSError) as error:
                # The replies of some appends may be lost after the server applied
                # them: sending them again is safe, a retry returns the earlier result.
                if conn is not None:
                    conn.disconnect()
                pending = [item for item in pending if not item.done]
                sent = False
                failures += 1
                if failures > self._retries:
                    for item in pending:
                        item.error, item.done = error, True
                    return
                time.sleep(min(0.02 * 2 ** (failures - 1), 0.2))
                continue
            missing = [item for item in pending if isinstance(item.error, rx.NoScriptError)]
            if not missing:
                return
            # The server lost its script cache (restart, SCRIPT FLUSH): the script
            # did not run, so load it and send those appends again (a script's SHA1
            # is that of its text: the commands stay as they are).
            for item in missing:
                item.error, item.done = None, False
            try:
                self._sha = str(self._client.script_load(self._script))
            except rx.RedisError as error:
                for item in missing:
                    item.error, item.done = error, True
                return
            pending, sent = missing, False

    def close(self) -> None:
        with self._mutex:
            self._closed = True
            conn, self._conn = self._conn, None
        if conn is not None:
            conn.disconnect()  # its socket's timeouts are not the pool's any more
            self._pool.release(conn)


class _Pipe:
    """Asynchronous commands: one I/O thread pipelines whatever callers handed it.

    ``submit`` only queues a command and returns a ``Future``: the caller (a store's
    thread, through ``Effect.pipe``) never blocks and no thread waits per command.
    The I/O thread takes everything queued, sends it in one round trip through its
    own ``_GroupCommit`` (the same retries after a lost connection and reloading of
    a lost script), then completes the futures; callers queue the next batch while
    Redis works on this one.
    """

    def __init__(self, commit: _GroupCommit, max_batch: int) -> None:
        self._commit = commit
        self._max_batch = max_batch
        self._queue: SimpleQueue[_Request | None] = SimpleQueue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._closed = False

    def submit(
        self,
        command: tuple[Any, ...],
        convert: Callable[..., Any] | None,
        doing: str,
        args: tuple[Any, ...] = (),
    ) -> Future[Any]:
        """Queue ``command``; its future gets ``convert(reply, *args)`` (or the reply).

        ``args`` rather than a closure: a tuple of plain values is soon untracked by
        the cyclic GC, a closure and its cells never are, and thousands of appends in
        flight are thousands of objects each collection walks.
        """
        request = _Request(command)
        future: Future[Any] = LightFuture()
        request.future, request.convert, request.doing = future, convert, doing
        request.args = args
        if self._thread is None:
            self._start()
        if self._closed:
            future.set_exception(EventStoreUnavailable("the event store is closed"))
            return future
        self._queue.put(request)
        return future

    def _start(self) -> None:
        with self._lock:
            if self._thread is None and not self._closed:
                self._thread = threading.Thread(
                    target=self._run, name="persistence-redis-pipe", daemon=True
                )
                self._thread.start()

    def _run(self) -> None:
        queue, commit = self._queue, self._commit
        running = True
        batch: list[_Request] = []
        sent = False
        while True:
            if not batch:
                if not running:
                    break
                first = queue.get()
                if first is None:
                    break
                batch = [first]
                running = self._take(batch)
                sent = False
            try:
                commit._complete(batch, sent)
            except BaseException as error:  # never leave a future pending
                for item in batch:
                    if not item.done:
                        item.error, item.done = error, True
            # What queued meanwhile goes out before this batch's futures are completed
            # (and their callbacks run): Redis works on it while Python does that. It
            # is written after this batch's replies were all read, on the connection
            # they came in on, so a lost connection still concerns one batch only.
            following: list[_Request] = []
            if running and not queue.empty():
                running = self._take(following)
            following_sent = False
            if following:
                try:
                    following_sent = commit._write(following)
                except BaseException:  # sent again by _complete
                    following_sent = False
            for item in batch:
                _settle(item)
            batch, sent = following, following_sent
        commit.close()
        # Whatever was queued after close() was called gets a clear answer.
        while not queue.empty():
            left = queue.get()
            if left is not None and left.future is not None:
                left.future.set_exception(EventStoreUnavailable("the event store is closed"))

    def _take(self, batch: list[_Request]) -> bool:
        """Add what is queued to ``batch``, up to the batch limit, without waiting;
        False when the closing mark was taken (finish, then stop)."""
        queue, limit = self._queue, self._max_batch
        while len(batch) < limit and not queue.empty():
            item = queue.get()
            if item is None:
                return False
            batch.append(item)
        return True

    @property
    def round_trips(self) -> int:
        return self._commit.round_trips

    def close(self, timeout: float = 10.0) -> None:
        """Send what is queued, then stop the I/O thread."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            thread = self._thread
        if thread is None:
            self._commit.close()
            return
        self._queue.put(None)
        thread.join(timeout)


def _settle(item: _Request) -> None:
    """Complete an asynchronous request's future from its reply or error."""
    future = item.future
    assert future is not None
    try:
        if item.error is not None:
            raise item.error
        convert = item.convert
        result = item.reply if convert is None else convert(item.reply, *item.args)
    except (rx.RedisError, OSError) as error:
        mapped = map_redis_error(error, item.doing)
        mapped.__cause__ = error
        _set(future, None, mapped)
    except Exception as error:  # the typed outcomes (ConcurrencyError...), or a bug
        _set(future, None, error)
    else:
        _set(future, result, None)


def _set(future: Future[Any], result: Any, error: BaseException | None) -> None:
    try:
        if error is None:
            future.set_result(result)
        else:
            future.set_exception(error)
    except InvalidStateError:  # cancelled by its holder: nobody wants the outcome
        pass


def read_raw_replies(conn: Any, count: int) -> list[Any]:
    """Read ``count`` replies from ``conn`` in order, an error reply (``ResponseError``)
    as its reply.

    On redis-py's hiredis parser it takes the replies from the hiredis reader itself:
    ``Connection.read_response`` costs about 1 µs a reply in Python frames, error
    mapping and host formatting before the reader is asked, and a batch of appends or
    a projection update reads dozens. Like ``read_response`` it raises a connection
    error the reader returns, handles a RESP3 push between replies, and disconnects
    on any error, since replies may then be half read.
    """
    parser = getattr(conn, "_parser", None)
    reader = getattr(parser, "_reader", None)
    if reader is None or not isinstance(parser, _HiredisParser):
        return _read_replies_slowly(conn, count)
    replies: list[Any] = []
    gets = reader.gets
    push_type = getattr(parser, "_hiredis_PushNotificationType", None)
    try:
        while len(replies) < count:
            reply = gets()
            if reply is _NOT_ENOUGH_DATA:
                parser.read_from_socket()
            elif isinstance(reply, rx.ConnectionError):
                raise reply
            elif push_type is not None and isinstance(reply, push_type):
                parser.handle_push_response(reply)
            else:
                replies.append(reply)
    except BaseException:
        conn.disconnect()
        raise
    return replies


def kernel_timeouts(conn: Any) -> Any:
    """Put ``conn``'s socket in blocking mode with its timeout kept by the kernel
    (``SO_RCVTIMEO``/``SO_SNDTIMEO``); the socket, or None where left as it was.

    A Python socket with a timeout polls before every send and receive: a second
    system call, and a second release of the interpreter lock, after which the I/O
    thread queues for the lock again (under load, about 4 of a reservation's 22
    context switches on Redis). A blocking socket with kernel timeouts makes one call
    and still fails after ``socket_timeout``: an ``OSError`` (EAGAIN), which redis-py
    reports as a ``ConnectionError`` where the Python timeout gave a
    ``TimeoutError``; the group commit handles both alike. Only for connections this
    module keeps to itself (never a TLS socket, never on Windows, whose options take
    another format): a pooled connection goes back to redis-py as it came.
    """
    sock = getattr(conn, "_sock", None)
    timeout = sock.gettimeout() if sock is not None else None
    if sock is None or timeout is None or isinstance(sock, ssl.SSLSocket) or _WINDOWS:
        return None
    seconds = int(timeout)
    timeval = struct.pack("ll", seconds, int((timeout - seconds) * 1_000_000))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, timeval)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, timeval)
    sock.settimeout(None)
    return sock


def _read_replies_slowly(conn: Any, count: int) -> list[Any]:
    replies: list[Any] = []
    for _ in range(count):
        try:
            replies.append(conn.read_response())
        except rx.ResponseError as error:
            replies.append(error)
    return replies


def _read_replies(conn: Any, requests: list[_Request]) -> None:
    """Read one reply per request, in order; an error reply becomes that request's error."""
    for item, reply in zip(requests, read_raw_replies(conn, len(requests)), strict=True):
        if isinstance(reply, rx.ResponseError):
            item.error = reply
        else:
            item.reply = reply
        item.done = True


def _wait(signal: Any) -> BaseException | None:
    """Acquire ``signal`` even through interrupts; the first interrupt, if any."""
    interrupted: BaseException | None = None
    while True:
        try:
            signal.acquire()
            return interrupted
        except BaseException as error:  # KeyboardInterrupt in the main thread
            interrupted = interrupted or error


def _outcome(request: _Request) -> Any:
    if request.error is not None:
        raise request.error
    return request.reply


def raw_pipeline(
    client: redis.Redis,
    commands: Sequence[Sequence[Any]],
    *,
    doing: str = "",
    retries: int = 2,
    resend: bool = True,
) -> list[Any]:
    """Run commands in one round trip on a pooled connection: the raw replies (no
    redis-py reply callbacks, about a fifth of the CPU of a redis-py ``Pipeline``),
    a command's error reply (``ResponseError``) as its reply.

    After a lost connection the whole pipeline is sent again, up to ``retries`` times,
    unless ``resend`` is False (see ``RedisEventStore.command``).

    Raises:
        PersistenceError: the mapped connection or server error.
    """

    def send(conn: Any) -> list[Any]:
        if _pack_command is not None:
            packed = [b"".join([_pack_command(tuple(command)) for command in commands])]
        else:  # pragma: no cover
            packed = conn.pack_commands(commands)
        conn.send_packed_command(packed, check_health=False)
        return read_raw_replies(conn, len(commands))

    replies: list[Any] = _round_trip(client, send, doing, retries, resend)
    return replies


def _round_trip(
    client: redis.Redis,
    send: Callable[[Any], Any],
    doing: str,
    retries: int,
    resend: bool = True,
) -> Any:
    """``send(connection)`` on a pooled connection, again after a lost connection."""
    pool = client.connection_pool
    failures = 0
    while True:
        conn: Any = None
        try:
            conn = pool.get_connection()
            return send(conn)
        except (rx.ConnectionError, rx.TimeoutError, OSError) as error:
            sent = conn is not None  # no connection: nothing was sent, retry is safe
            if conn is not None:
                conn.disconnect()
            failures += 1
            if failures > retries or (sent and not resend):
                raise map_redis_error(error, doing) from error
            time.sleep(min(0.02 * 2 ** (failures - 1), 0.2))
        except rx.RedisError as error:
            raise map_redis_error(error, doing) from error
        finally:
            if conn is not None:
                pool.release(conn)


class RedisEventStore:
    """``EventStore`` on Redis streams (thread-safe; share one per process).

    Args:
        client: a redis-py client (see ``redis_client``); the store does not close
            it unless it was created by ``from_url``.
        codec: the registry of event models.
        prefix: the key prefix (no braces or glob characters); nothing outside it is
            read or written, and nothing assumes an empty server.
        partitions: how many partition feeds; recorded under the prefix on first
            use, a later store with another count is refused (``IncompatibleLayout``).
        allow_eviction: run on a server whose ``maxmemory-policy`` is not
            ``noeviction`` (events may then be evicted: throw-away data only).
        retries: how many times an append is re-sent after a lost connection.
        max_batch: most appends pipelined in one round trip.
        require_fsync_always: refuse a server that does not fsync every write
            (``appendonly yes`` + ``appendfsync always``), for data that must survive
            a crash of the server's machine; see ``fsync_policy``.

    Raises:
        UnsafeRedisConfiguration: the server may evict keys.
        ConfigurationError: ``require_fsync_always`` and the server does not (or
            does not say whether it does).
        IncompatibleLayout: the prefix holds data with another partition count.
        EventStoreUnavailable: the server cannot be reached.
    """

    def __init__(
        self,
        client: redis.Redis,
        codec: Codec,
        *,
        prefix: str = "ca",
        partitions: int = 16,
        allow_eviction: bool = False,
        retries: int = 2,
        max_batch: int = 512,
        require_fsync_always: bool = False,
    ) -> None:
        self._client = check_client(client)
        self._codec = codec
        self._layout = RedisLayout(prefix, partitions)
        self._partitions = partitions
        self._owns_client = False
        check_eviction_policy(client, allow_eviction)
        self._fsync_policy = read_fsync_policy(client)
        if require_fsync_always and self._fsync_policy != "always":
            raise ConfigurationError(
                f"Redis fsync policy is {self._fsync_policy!r}: a crash may lose"
                f" {FSYNC_LOSES.get(self._fsync_policy, 'acknowledged appends')}."
                " Run it with appendonly yes and appendfsync always, or do not pass"
                " require_fsync_always=True."
            )
        log.info(
            "event store on Redis, prefix %r: fsync policy %r, a crash may lose %s",
            prefix, self._fsync_policy, FSYNC_LOSES.get(self._fsync_policy, "unknown"),
        )
        check_layout(client, self._layout)
        self._writer = _GroupCommit(client, APPEND, retries=retries, max_batch=max_batch)
        sha = self._writer.load()
        # The asynchronous path has its own connection, driven by its own thread.
        piped = _GroupCommit(client, APPEND, retries=retries, max_batch=max_batch)
        piped._sha = sha
        self._pipe = _Pipe(piped, max_batch)
        self._trim = client.register_script(TRIM_FEED)
        self._retries = retries
        # Per-partition key parts, computed once: the append path only formats ids.
        self._stream_prefix = [f"{self._layout.tag(p)}:stream:" for p in range(partitions)]
        self._indexes: dict[str, list[str]] = {}
        self._feed_keys = [self._layout.feed(p) for p in range(partitions)]

    @classmethod
    def from_url(cls, url: str, codec: Codec, **kwargs: Any) -> RedisEventStore:
        """A store on its own client for ``url`` (closed by ``close()``)."""
        client = redis_client(url)
        try:
            store = cls(client, codec, **kwargs)
        except BaseException:
            client.close()
            raise
        store._owns_client = True
        return store

    @property
    def client(self) -> redis.Redis:
        return self._client

    @property
    def codec(self) -> Codec:
        return self._codec

    @property
    def layout(self) -> RedisLayout:
        return self._layout

    @property
    def partitions(self) -> int:
        return self._layout.partitions

    @property
    def fsync_policy(self) -> str:
        """The server's durability as read at start-up (see ``docs/reliability.md``).

        ``"always"`` (nothing acknowledged is lost when the server or its machine
        crashes), ``"everysec"`` (about a second may be), ``"no"`` (the OS decides),
        ``"off"`` (no append-only file: RDB snapshots at best), or ``"unknown"``
        (``CONFIG GET`` is disabled, as on some managed services).
        """
        return self._fsync_policy

    @property
    def round_trips(self) -> int:
        """Round trips the append writers made (appends / round trips = batching)."""
        return self._writer.round_trips + self._pipe.round_trips

    def partition_of(self, stream_id: str) -> int:
        return self._layout.partition_of(stream_id)

    def close(self) -> None:
        """Release the writer's connection (and the client, if ``from_url`` made it)."""
        self._pipe.close()
        self._writer.close()
        if self._owns_client:
            self._client.close()

    # -- appending -----------------------------------------------------------------

    def append(
        self,
        stream_id: str,
        events: Sequence[BaseModel],
        expected_version: ExpectedVersion,
        metadata: Sequence[EventMetadata] | EventMetadata | None = None,
        *,
        index: str | None = None,
    ) -> AppendResult:
        """See ``EventStore.append``."""
        command, partition = self._append_command(
            stream_id, events, expected_version, metadata, index
        )
        try:
            reply = self._writer.call(command)
        except PersistenceError:
            raise
        except Exception as error:
            raise map_redis_error(error, f"append to {stream_id!r}") from error
        return _append_result(reply, stream_id, partition, expected_version, len(events))

    def append_async(
        self,
        stream_id: str,
        events: Sequence[BaseModel],
        expected_version: ExpectedVersion,
        metadata: Sequence[EventMetadata] | EventMetadata | None = None,
        *,
        index: str | None = None,
    ) -> Future[AppendResult]:
        """See ``EventStore.append_async``: pipelined by the store's I/O thread."""
        command, partition = self._append_command(
            stream_id, events, expected_version, metadata, index
        )
        return self._pipe.submit(
            command,
            _append_result,
            f"append to {stream_id!r}",
            (stream_id, partition, expected_version, len(events)),
        )

    def _append_command(
        self,
        stream_id: str,
        events: Sequence[BaseModel],
        expected_version: ExpectedVersion,
        metadata: Sequence[EventMetadata] | EventMetadata | None,
        index: str | None = None,
    ) -> tuple[tuple[Any, ...], int]:
        """The ``EVALSHA`` of the append script for these events, and the partition."""
        # The hot path of every command: no EventMetadata objects unless the caller
        # gave some, the codec's tables read directly, one time stamp per append.
        if type(expected_version) is int and expected_version >= 0:
            expected = expected_version
        else:
            expected = expected_as_int(expected_version)
        count = len(events)
        partition = crc32(stream_id.encode()) % self._partitions
        command: list[Any] = [
            "EVALSHA",
            self._writer.sha,
            2,
            self._stream_prefix[partition] + stream_id,
            self._feed_keys[partition],
        ]
        if index is not None:  # the script's optional third key
            command[2] = 3
            command.append(self._index_keys(index)[partition])
        command += (expected, count, stream_id)
        by_model = self._codec._by_model
        if metadata is None:
            if count == 0:
                raise ValueError("append needs at least one event")
            now = repr(time.time())
            for event in events:
                reg = by_model.get(type(event))
                if reg is None:
                    raise self._codec._unregistered(event)
                command += (
                    reg.type_name,
                    reg.schema_version,
                    self._codec._pack(reg, event),
                    new_event_id(),
                    "",
                    "",
                    now,
                    b"",
                )
        else:
            encode = self._codec.encode_fields
            for event, meta in zip(events, metadata_for(events, metadata), strict=True):
                type_name, schema, data = encode(event)
                command += (
                    type_name,
                    schema,
                    data,
                    meta.event_id,
                    meta.correlation_id or "",
                    meta.causation_id or "",
                    repr(meta.recorded_at),
                    _packb(dict(meta.extra)) if meta.extra else b"",
                )
        return tuple(command), partition

    def _index_keys(self, index: str) -> list[str]:
        """The keys of stream index ``index``, one per partition (made once per name)."""
        keys = self._indexes.get(index)
        if keys is None:
            check_name("stream index", index)
            keys = [self._layout.index(p, index) for p in range(self._partitions)]
            self._indexes[index] = keys
        return keys

    # -- reading -------------------------------------------------------------------

    def command(self, *args: Any, doing: str = "", resend: bool = True) -> Any:
        """Run one command on a pooled connection; the raw reply (no redis-py parsing).

        Skipping redis-py's reply callbacks (which build a dict per stream entry)
        keeps reading a long stream cheap. Re-sent after a lost connection, unless
        ``resend`` is False: a command whose lost reply changed state (XREADGROUP
        ``>`` hands entries to the consumer, XAUTOCLAIM resets their idle time) must
        not be re-sent blindly: its caller recovers by reading what it was handed
        (pending entries) instead.

        Raises:
            PersistenceError: the mapped Redis error (see ``map_redis_errors``).
        """

        def send(conn: Any) -> Any:
            conn.send_command(*args, check_health=False)
            return conn.read_response()

        return self._round_trip(send, doing, resend)

    def command_async(self, *args: Any, doing: str = "") -> Future[Any]:
        """Queue one command on the store's I/O thread (pipelined with the appends);
        its future gets the raw reply or the mapped error. Never blocks."""
        return self._pipe.submit(args, None, doing)

    def pipeline(
        self, commands: Sequence[Sequence[Any]], *, doing: str = "", resend: bool = True
    ) -> list[Any]:
        """Run commands in one round trip; raw replies, a command's error as its reply.

        After a lost connection the whole pipeline is sent again, unless ``resend``
        is False (see ``command``).
        """
        return raw_pipeline(
            self._client, commands, doing=doing, retries=self._retries, resend=resend
        )

    def _round_trip(self, send: Callable[[Any], Any], doing: str, resend: bool = True) -> Any:
        return _round_trip(self._client, send, doing, self._retries, resend)

    def read_index(self, index: str, after: Sequence[str] | None = None) -> IndexPage:
        """See ``EventStore.read_index``: an ``XRANGE`` page per partition and round
        trip, the partitions' pages pipelined."""
        keys = self._index_keys(index)
        cursor = check_index_cursor(after, self._partitions, "0-0")
        found: list[list[str]] = [[] for _ in keys]
        doing = f"read stream index {index!r}"
        todo = list(range(self._partitions))
        while todo:
            replies = self.pipeline(
                [("XRANGE", keys[p], f"({cursor[p]}", "+", "COUNT", READ_PAGE) for p in todo],
                doing=doing,
            )
            more = []
            for partition, reply in zip(todo, replies, strict=True):
                if isinstance(reply, Exception):
                    raise map_redis_error(reply, doing)
                for entry_id, fields in reply:
                    cursor[partition] = entry_id.decode()
                    found[partition].append(_listed(fields))
                if len(reply) == READ_PAGE:
                    more.append(partition)
            todo = more
        return IndexPage(tuple(s for listed in found for s in listed), tuple(cursor))

    def read(
        self, stream_id: str, from_version: int = 0, to_version: int | None = None
    ) -> list[RecordedEvent]:
        """See ``EventStore.read``."""
        from_version = max(0, from_version)
        if to_version is not None and to_version <= from_version:
            return []
        partition = self._layout.partition_of(stream_id)
        key = self._stream_prefix[partition] + stream_id
        end = "+" if to_version is None else f"{to_version}-0"
        doing = f"read {stream_id!r}"
        page = READ_PAGE

        def read_pages(conn: Any) -> list[RecordedEvent]:
            # Page k+1 is requested before page k is decoded, so Redis builds the
            # next reply while Python decodes (reads are safe to repeat on failure).
            out: list[RecordedEvent] = []
            after = from_version
            conn.send_command(
                "XRANGE", key, f"{after + 1}-0", end, "COUNT", page, check_health=False
            )
            outstanding = True
            try:
                while outstanding:
                    entries = conn.read_response()
                    outstanding = False
                    if len(entries) == page:
                        last = entries[-1][0]
                        conn.send_command(
                            "XRANGE", key, b"(" + last, end, "COUNT", page, check_health=False
                        )
                        outstanding = True
                    out += self._stream_entries(stream_id, partition, entries, after)
                    after += len(entries)
                return out
            except BaseException:
                if outstanding:  # an unread reply must not reach the connection's next user
                    conn.disconnect()
                raise

        # The reply of a long read is some 20 objects per event and the decoded
        # events a few more: keep the cyclic GC from traversing them over and over.
        with gc_paused():
            events: list[RecordedEvent] = self._round_trip(read_pages, doing)
        return events

    def read_async(
        self, stream_id: str, from_version: int = 0, to_version: int | None = None
    ) -> Future[list[RecordedEvent]]:
        """See ``EventStore.read_async``: pipelined by the store's I/O thread.

        A long stream is read a page at a time, each page asked for when the one
        before it is in; pages are decoded on the I/O thread.
        """
        from_version = max(0, from_version)
        result: Future[list[RecordedEvent]] = LightFuture()
        if to_version is not None and to_version <= from_version:
            result.set_result([])
            return result
        partition = self._layout.partition_of(stream_id)
        key = self._stream_prefix[partition] + stream_id
        end = "+" if to_version is None else f"{to_version}-0"
        doing = f"read {stream_id!r}"
        page = READ_PAGE
        out: list[RecordedEvent] = []

        def ask(start: str | bytes, after: int) -> None:
            asked = self._pipe.submit(("XRANGE", key, start, end, "COUNT", page), None, doing)

            def on_page(done: Future[Any]) -> None:
                try:
                    entries = done.result()
                    out.extend(self._stream_entries(stream_id, partition, entries, after))
                    if len(entries) == page:
                        ask(b"(" + entries[-1][0], after + page)
                        return
                except BaseException as error:
                    _set(result, None, error)
                else:
                    _set(result, out, None)

            asked.add_done_callback(on_page)

        ask(f"{from_version + 1}-0", from_version)
        return result

    def stream_version(self, stream_id: str) -> int:
        """See ``EventStore.stream_version``."""
        version: int = self.command(
            "XLEN", self._layout.stream(stream_id), doing=f"version of {stream_id!r}"
        )
        return version

    def read_feed(
        self, partition: int, after: str | None = None, count: int = 1000
    ) -> list[RecordedEvent]:
        """See ``EventStore.read_feed``."""
        start = "-" if after is None else f"({after}"
        entries = self.command(
            "XRANGE", self._feed_keys[partition], start, "+", "COUNT", count,
            doing=f"read feed {partition}",
        )
        return [self.feed_entry(partition, entry) for entry in entries]

    def stream_ids(self) -> Iterator[str]:
        """Every stream's id, found with SCAN (slow on big servers; maintenance only)."""
        for partition in range(self.partitions):
            head = len(self._stream_prefix[partition])
            with map_redis_errors("listing streams"):
                keys = list(
                    self._client.scan_iter(
                        match=self._layout.stream_pattern(partition), count=1000, _type="stream"
                    )
                )
            for key in keys:
                yield key.decode()[head:]

    def trim_feeds(self) -> int:
        """Trim every feed below what all its consumer groups acknowledged.

        A feed without consumer groups keeps everything; aggregate streams are never
        trimmed. Safe to run at any time, from any process (each trim is one script).

        Returns:
            How many feed entries were removed.
        """
        removed = 0
        with map_redis_errors("trimming feeds"):
            for key in self._feed_keys:
                removed += int(self._trim(keys=[key]))
        return removed

    # -- decoding ------------------------------------------------------------------

    def _stream_entries(
        self, stream_id: str, partition: int, entries: list[Any], after: int
    ) -> list[RecordedEvent]:
        """Raw XRANGE entries of an aggregate stream as ``RecordedEvent``s.

        The hot loop of a load: one dict lookup for the (type, schema) decoder, one
        msgpack unpack and one validation per event, values built with the fast
        constructors, everything else bound to locals. Anything unusual (fields in
        another order, an undecodable payload) takes the checked path, which raises
        the typed error.
        """
        if not entries:
            return []
        # Entry ids are "<version>-0" and streams never lose entries, so the page
        # holds versions after+1 ... after+n exactly when its first and last ids say
        # so (ids increase strictly); otherwise every entry is checked on its own.
        if entries[0][0] != b"%d-0" % (after + 1) or entries[-1][0] != b"%d-0" % (
            after + len(entries)
        ):
            checked = [self._stream_entry(stream_id, partition, entry) for entry in entries]
            # Another client added entries (ids that are no version) or deleted some.
            for version, (got, entry) in enumerate(zip(checked, entries, strict=True), after + 1):
                if got.version != version:
                    raise MalformedEvent(
                        f"entry {entry[0].decode(errors='replace')} where version {version}"
                        " belongs: the stream holds entries this store did not write",
                        stream_id=stream_id,
                        version=version,
                    )
            return checked
        decoders = self._codec._raw_decoders
        names = _STREAM_NAMES
        recorded, metadata, position = _RECORDED, _METADATA, _POSITION
        out: list[RecordedEvent] = []
        append = out.append
        version = after
        last_at: bytes | None = None  # events of one append share their time:
        recorded_at = 0.0  # parse it once per append, not once per event
        for entry in entries:
            version += 1
            fields = entry[1]
            if fields[0::2] != names:
                append(self._stream_entry(stream_id, partition, entry))
                continue
            type_name, schema, data, event_id, correlation, causation, at, extra, feed = (
                fields[1::2]
            )
            found = decoders.get((type_name, schema))
            try:
                assert found is not None
                event = found[0](data)
                if at != last_at:
                    last_at, recorded_at = at, float(at)
                append(
                    recorded(
                        stream_id,
                        version,
                        found[1],
                        found[2],
                        event,
                        metadata(
                            event_id.decode(),
                            correlation.decode() if correlation else None,
                            causation.decode() if causation else None,
                            recorded_at,
                            _extra(extra) if extra else EMPTY_EXTRA,
                        ),
                        position(partition, feed.decode()),
                    )
                )
            except Exception:  # includes a first sight of this (type, schema)
                append(self._stream_entry(stream_id, partition, entry))
        return out

    def _stream_entry(self, stream_id: str, partition: int, entry: list[Any]) -> RecordedEvent:
        """One raw aggregate stream entry, checked field by field (the typed-error path)."""
        entry_id, fields = entry
        version = int(entry_id[:-2]) if entry_id.endswith(b"-0") else -1
        try:
            if fields[0::2] == _STREAM_NAMES:
                type_name, schema, data, event_id, correlation, causation, at, extra, feed = (
                    fields[1::2]
                )
            else:
                named = dict(zip(fields[0::2], fields[1::2], strict=True))
                type_name, schema, data, event_id, correlation, causation, at, extra, feed = (
                    named[name] for name in STREAM_FIELDS
                )
            event = self._codec.decode_raw(type_name, schema, data, stream_id, version)
            _decoder, name, schema_version = self._codec.raw_decoder(type_name, schema) or (
                None, type_name.decode(), int(schema)
            )
            return RecordedEvent(
                stream_id,
                version,
                name,
                schema_version,
                event,
                EventMetadata(
                    event_id.decode(),
                    correlation.decode() or None,
                    causation.decode() or None,
                    float(at),
                    _extra(extra),
                ),
                FeedPosition(partition, feed.decode()),
            )
        except CodecError:
            raise
        except Exception as error:  # missing fields, unreadable numbers, bad extra
            raise MalformedEvent(
                f"unreadable stream entry {entry_id!r} ({type(error).__name__}: {error})",
                stream_id=stream_id,
                version=version,
            ) from None

    def feed_entry(self, partition: int, entry: list[Any]) -> RecordedEvent:
        """A raw feed entry (from XRANGE / XREADGROUP) as a ``RecordedEvent``.

        Every subscription decodes each entry it handles: the fields as this adapter
        writes them take the fast constructors and the cached decoder (as a stream
        load does); anything else, or anything that fails, the checked path, which
        raises the typed error.

        Raises:
            CodecError: the entry cannot be decoded (names stream, version, position).
        """
        fields = entry[1]
        if fields[0::2] == _FEED_NAMES:
            stream, v, type_name, schema, data, event_id, correlation, causation, at, extra = (
                fields[1::2]
            )
            found = self._codec._raw_decoders.get((type_name, schema))
            if found is not None:
                try:
                    return _RECORDED(
                        stream.decode(),
                        int(v),
                        found[1],
                        found[2],
                        found[0](data),
                        _METADATA(
                            event_id.decode(),
                            correlation.decode() if correlation else None,
                            causation.decode() if causation else None,
                            float(at),
                            _extra(extra) if extra else EMPTY_EXTRA,
                        ),
                        _POSITION(partition, entry[0].decode()),
                    )
                except Exception:
                    pass  # the checked path below raises the typed error
        return self._feed_entry_checked(partition, entry)

    def _feed_entry_checked(self, partition: int, entry: list[Any]) -> RecordedEvent:
        """``feed_entry`` field by field (the typed-error path)."""
        entry_id, fields = entry
        position = entry_id.decode()
        stream_id: str | None = None
        version: int | None = None
        try:
            if fields[0::2] == _FEED_NAMES:
                stream, v, type_name, schema, data, event_id, correlation, causation, at, extra = (
                    fields[1::2]
                )
            else:
                named = dict(zip(fields[0::2], fields[1::2], strict=True))
                stream, v, type_name, schema, data, event_id, correlation, causation, at, extra = (
                    named[name] for name in FEED_FIELDS
                )
            stream_id = stream.decode()
            version = int(v)
            event = self._codec.decode_raw(
                type_name, schema, data, stream_id, version, f"{partition}/{position}"
            )
            _decoder, name, schema_version = self._codec.raw_decoder(type_name, schema) or (
                None, type_name.decode(), int(schema)
            )
            return RecordedEvent(
                stream_id,
                version,
                name,
                schema_version,
                event,
                EventMetadata(
                    event_id.decode(),
                    correlation.decode() or None,
                    causation.decode() or None,
                    float(at),
                    _extra(extra),
                ),
                FeedPosition(partition, position),
            )
        except CodecError:
            raise
        except Exception as error:
            raise MalformedEvent(
                f"unreadable feed entry ({type(error).__name__}: {error})",
                stream_id=stream_id,
                version=version,
                position=f"{partition}/{position}",
            ) from None


def _append_result(
    reply: Any, stream_id: str, partition: int, expected_version: ExpectedVersion, count: int
) -> AppendResult:
    """The append script's reply as a result, or its refusal as a typed error."""
    status = reply[0]
    if status == 1 or status == 2:
        if count == 1:
            positions: tuple[FeedPosition, ...] = (_POSITION(partition, reply[2].decode()),)
        else:
            positions = tuple([_POSITION(partition, entry.decode()) for entry in reply[2:]])
        return _APPEND_RESULT(stream_id, reply[1], positions)
    if status == 0:
        raise ConcurrencyError(stream_id, expected_version, reply[1])
    if status == 3:
        raise DuplicateEvent(stream_id, reply[2].decode(), reply[1])
    if status == 4:
        raise BackendError(
            f"append to {stream_id!r} refused, nothing written: the stream holds"
            f" entries this store did not write (at version {reply[1]}):"
            f" {reply[2].decode(errors='replace')}"
        )
    raise BackendError(f"append to {stream_id!r}: unexpected reply {reply!r}")


def _listed(fields: list[bytes]) -> str:
    """The stream id of an index entry (fields ``stream <id>``)."""
    for name, value in zip(fields[::2], fields[1::2], strict=True):
        if name == b"stream":
            return value.decode()
    raise BackendError(f"a stream index entry without a stream: {fields!r}")


def _extra(packed: bytes) -> Any:
    if not packed:
        return EMPTY_EXTRA
    extra = msgpack.unpackb(packed)
    if not isinstance(extra, dict):
        raise ValueError("extra metadata is not a map")
    return extra
