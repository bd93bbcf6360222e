"""A TCP proxy for fault tests: forwards requests, and drops a share of the replies.

Dropping a reply means closing both connections instead of forwarding it: the server
has run the command, the client sees its connection lost, the outcome is ambiguous.
"""

from __future__ import annotations

import contextlib
import random
import socket
import threading


class ReplyDroppingProxy:
    """Listens on 127.0.0.1:``port``, forwards to 127.0.0.1:``upstream``.

    Each chunk of reply bytes read from the server is dropped with probability
    ``drop_rate`` (settable while running); ``dropped`` counts the drops.
    """

    def __init__(self, upstream: int, *, drop_rate: float = 0.0, seed: int = 0) -> None:
        self.upstream = upstream
        self.drop_rate = drop_rate
        self.dropped = 0
        self.forwarded = 0
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._sockets: list[socket.socket] = []
        self._closed = False
        self._thread = threading.Thread(target=self._accept, daemon=True, name="proxy")
        self._thread.start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(("127.0.0.1", self.upstream), timeout=2)
            except OSError:
                client.close()
                continue
            server.settimeout(None)
            for sock in (client, server):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self._sockets += [client, server]
            pair = (client, server)
            threading.Thread(target=self._pump, args=(client, server, False, pair),
                             daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, True, pair),
                             daemon=True).start()

    def _drop(self) -> bool:
        with self._lock:
            if self._random.random() < self.drop_rate:
                self.dropped += 1
                return True
            self.forwarded += 1
            return False

    def _pump(
        self, source: socket.socket, target: socket.socket, replies: bool,
        pair: tuple[socket.socket, socket.socket],
    ) -> None:
        try:
            while True:
                data = source.recv(1 << 16)
                if not data or (replies and self._drop()):
                    break
                target.sendall(data)
        except OSError:
            pass
        finally:
            for sock in pair:
                _shut(sock)

    def close(self) -> None:
        _shut(self._listener)  # wakes accept()
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            _shut(sock)
        self._thread.join(timeout=5)


def _shut(sock: socket.socket) -> None:
    # shutdown() wakes the other pump blocked in recv() on this socket; close() alone
    # would not.
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()
