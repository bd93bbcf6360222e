"""Turning redis-py exceptions into the persistence error tree, at the adapter.

Modelled on httpx's ``map_exceptions``: every call into redis-py from the adapter
runs inside ``map_redis_errors()``, so callers only ever see ``PersistenceError``.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from contextlib import contextmanager

from redis import exceptions as rx

from persistence._errors import (
    BackendError,
    EventStoreUnavailable,
    PersistenceError,
    StorageFull,
)

__all__ = ["map_redis_error", "map_redis_errors"]


def map_redis_error(error: BaseException, doing: str) -> PersistenceError:
    """The persistence error standing for a redis-py (or socket) error."""
    what = f"{doing}: {type(error).__name__}: {error}" if doing else str(error)
    if isinstance(error, rx.AuthenticationError | rx.AuthorizationError | rx.NoPermissionError):
        return BackendError(what)
    if isinstance(error.__cause__ or error.__context__, ssl.SSLCertVerificationError):
        # Not a server that is down: one we do not trust. Waiting will not help.
        return BackendError(what)
    if isinstance(error, rx.ConnectionError | rx.TimeoutError | OSError):
        # Includes BusyLoadingError (server loading its data after a restart).
        return EventStoreUnavailable(what)
    if isinstance(error, rx.OutOfMemoryError) or (
        # Inside a script, Redis 6.2 wraps the OOM refusal in "Error running script".
        isinstance(error, rx.ResponseError) and "OOM command not allowed" in str(error)
    ):
        return StorageFull(what)
    if isinstance(error, rx.ReadOnlyError | rx.TryAgainError | rx.ClusterDownError):
        return EventStoreUnavailable(what)
    return BackendError(what)


@contextmanager
def map_redis_errors(doing: str = "") -> Iterator[None]:
    """Run a block calling redis-py; re-raise its errors as ``PersistenceError``.

    Args:
        doing: what the block does, for the error message ("append to 'order-1'").

    Raises:
        EventStoreUnavailable: connection lost or refused, timeout, server loading,
            read-only replica, cluster down.
        StorageFull: the server is out of memory (``maxmemory`` with noeviction).
        BackendError: any other refusal (wrong key type, authentication, a TLS
            certificate that is not trusted, scripts).
    """
    try:
        yield
    except PersistenceError:
        raise
    except (rx.RedisError, OSError) as error:
        raise map_redis_error(error, doing) from error
