"""Issue 6, security basics: credentials in the URL, prefixes apart, no flushing."""

from __future__ import annotations

import logging
import re
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path

import pytest
import redis

from persistence import (
    NO_STREAM,
    BackendError,
    Codec,
    EventStoreUnavailable,
    Persistence,
    PersistenceError,
    RecordedEvent,
    RedisEventStore,
    redis_client,
)
from tests.faults.tls import TlsTerminator, self_signed_certificate
from tests.persistence.conftest import wait_for
from tests.persistence.events import Deposited
from tests.redis_server import RedisServer

pytestmark = [pytest.mark.slow, pytest.mark.redis]

PASSWORD = "pw-Zq81-never-print-me"
USER_PASSWORD = "app-pw-Xk44-never-print-me"
ROOT = Path(__file__).resolve().parents[2]


def everything_said(error: BaseException) -> str:
    """The error as a log line, a repr and a full traceback (causes included) show it."""
    return "\n".join(
        [str(error), repr(error), *traceback.format_exception(error)]
    )


def test_credentials_in_the_url_work_and_the_password_appears_in_no_error_repr_or_log(
    redis_server_factory: Callable[..., RedisServer],
    codec: Codec,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Figure: one server with a default-user password and an ACL user allowed only
    keys under ``app:*`` (so the store provably touches nothing outside its prefix);
    2 stores through credentialed URLs (password only, user + password), 1
    subscription; 4
    failures provoked (wrong password, unknown user, server killed under a store
    and under a subscription): the password appears in none of str/repr/traceback
    of the errors, the reprs of store, bundle and subscription, nor any log record."""
    caplog.set_level(logging.DEBUG)
    server = redis_server_factory()
    admin = redis.Redis.from_url(server.url)  # before there is a password to give
    admin.acl_setuser(
        "app", enabled=True, passwords=[f"+{USER_PASSWORD}"], keys=["app:*"],
        commands=["+@all"],
    )
    admin.config_set("requirepass", PASSWORD)
    admin.close()
    said: list[str] = []

    bundle = Persistence.on_redis(
        f"redis://:{PASSWORD}@127.0.0.1:{server.port}/0", codec, prefix="app", partitions=2
    )
    store = RedisEventStore.from_url(
        f"redis://app:{USER_PASSWORD}@127.0.0.1:{server.port}/0", codec, prefix="app",
        partitions=2,
    )
    handled = threading.Event()

    def handler(event: RecordedEvent) -> None:
        handled.set()

    subscription = bundle.subscriptions.subscribe("readers", handler, claim_idle=1.0)
    try:
        assert store.append("acct", [Deposited(account="a", amount=1)], NO_STREAM).version == 1
        assert [e.version for e in bundle.events.read("acct")] == [1]
        assert handled.wait(5)
        said += [repr(store), repr(bundle), repr(subscription), repr(store.client)]

        for url, error_type in (
            (f"redis://:wrong-{PASSWORD}@127.0.0.1:{server.port}/0", BackendError),
            (f"redis://nobody:{USER_PASSWORD}@127.0.0.1:{server.port}/0", BackendError),
        ):
            with pytest.raises(error_type) as caught:
                RedisEventStore.from_url(url, codec, prefix="app")
            said.append(everything_said(caught.value))

        server.kill()
        with pytest.raises(EventStoreUnavailable) as unavailable:
            store.append("acct", [Deposited(account="a", amount=2)], 1)
        said.append(everything_said(unavailable.value))
        # The subscription logs its retries while the server is gone.
        assert wait_for(
            lambda: any("subscription" in r.getMessage() for r in caplog.records
                        if r.levelno >= logging.WARNING),
            timeout=5,
        )
    finally:
        subscription.stop(timeout=5)
        store.close()
        bundle.close()

    said += [record.getMessage() for record in caplog.records]
    said += [record.exc_text or "" for record in caplog.records]
    assert len(said) > 8
    for text in said:
        assert PASSWORD not in text
        assert USER_PASSWORD not in text


def test_two_applications_with_their_own_prefixes_never_see_each_others_data(
    redis_server_factory: Callable[..., RedisServer], codec: Codec
) -> None:
    """Figure: applications "shop" and "shop2" (one prefix a prefix of the other's
    text) on one server, same stream ids, group and projection names: 2 x 20 events,
    each application reads, lists, consumes and projects only its own; every key of
    each lies under its prefix."""
    server = redis_server_factory()
    apps = {
        name: Persistence.on_redis(server.url, codec, prefix=name, partitions=4)
        for name in ("shop", "shop2")
    }
    seen: dict[str, list[str]] = {name: [] for name in apps}
    try:
        for name, app in apps.items():
            for n in range(20):
                app.events.append(
                    f"acct-{n % 5}", [Deposited(account=name, amount=n)], "any"
                )
                app.projections.apply(f"acct-{n % 5}", n + 1, set_fields={"owner": name})

        def handler_for(name: str) -> Callable[[RecordedEvent], None]:
            def handle(event: RecordedEvent) -> None:
                seen[name].append(event.event.account)  # type: ignore[attr-defined]
            return handle

        subscriptions = [
            app.subscriptions.subscribe("readers", handler_for(name), claim_idle=1.0)
            for name, app in apps.items()
        ]
        try:
            assert wait_for(lambda: all(len(s) >= 20 for s in seen.values()), timeout=10)
        finally:
            for subscription in subscriptions:
                subscription.stop(timeout=5)

        for name, app in apps.items():
            assert seen[name] == [name] * 20
            for n in range(5):
                assert {e.event.account for e in app.events.read(f"acct-{n}")} == {name}  # type: ignore[attr-defined]
                assert app.projections.get(f"acct-{n}") is not None
                assert app.projections.get(f"acct-{n}")["owner"] == name  # type: ignore[index]
            assert sorted(app.events.stream_ids()) == [f"acct-{n}" for n in range(5)]  # type: ignore[attr-defined]
            assert sorted(app.projections.keys()) == [f"acct-{n}" for n in range(5)]

        client = redis.Redis.from_url(server.url)
        try:
            keys = [key.decode() for key in client.scan_iter(count=1000)]
        finally:
            client.close()
        assert keys, "nothing was written"
        assert all(key.startswith(("shop:", "shop2:")) for key in keys), keys
    finally:
        for app in apps.values():
            app.close()


FORBIDDEN = [
    (re.compile(r"flush_?all|flush_?db", re.IGNORECASE), "FLUSHALL/FLUSHDB"),
    (re.compile(r"""["']KEYS["']"""), "the KEYS command"),
    (
        re.compile(r"""(execute_command|call|command)\(\s*["']keys["']""", re.IGNORECASE),
        "the KEYS command",
    ),
    (re.compile(r"\.keys\(\s*[^)\s]"), "KEYS through redis-py (keys(pattern))"),
]


def test_no_code_of_the_project_flushes_a_server_or_lists_its_keys_with_keys() -> None:
    """Figure: every .py file and script under actors, persistence, domain, bin,
    benchmarks and tests (this file excepted) searched for FLUSHALL, FLUSHDB and KEYS
    in any spelling a Python or Lua caller would use: none found (SCAN only)."""
    files = [
        path
        for top in ("actors", "persistence", "domain", "bin", "benchmarks", "tests")
        for path in (ROOT / top).rglob("*")
        if path.is_file()
        and (path.suffix in {".py", ".lua", ".sh", ""} or top == "bin")
        and path.resolve() != Path(__file__).resolve()
        and "__pycache__" not in path.parts
    ]
    assert len(files) > 20
    found = []
    for path in files:
        text = path.read_text(errors="replace")
        for number, line in enumerate(text.splitlines(), 1):
            for pattern, what in FORBIDDEN:
                if pattern.search(line):
                    found.append(f"{path.relative_to(ROOT)}:{number}: {what}: {line.strip()}")
    assert found == []


def test_persistence_errors_never_carry_a_raw_redis_exception_type() -> None:
    """The error tree stays ours (a guard for the tests above): no PersistenceError
    subclass is also a redis-py exception."""
    def subclasses(cls: type) -> list[type]:
        return [cls, *(c for sub in cls.__subclasses__() for c in subclasses(sub))]

    assert not [c for c in subclasses(PersistenceError) if issubclass(c, redis.RedisError)]


def test_tls_through_a_rediss_url_works_and_an_untrusted_server_is_refused_typed(
    redis_server_factory: Callable[..., RedisServer],
    codec: Codec,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Figure: a password-protected server behind TLS (a self-signed certificate):
    1 store through ``rediss://:password@`` trusting that certificate appends and
    reads; 2 refusals provoked (the system's trust store, which does not know the
    certificate: BackendError, since waiting will not help; a plain ``redis://`` URL
    to the TLS port: EventStoreUnavailable), each within 3 s, neither naming the
    password."""
    made = self_signed_certificate(tmp_path)
    if made is None:
        pytest.skip("no openssl CLI to make a certificate")
    cert, key = made
    caplog.set_level(logging.DEBUG)
    server = redis_server_factory()
    admin = redis.Redis.from_url(server.url)
    admin.config_set("requirepass", PASSWORD)
    admin.close()
    tls = TlsTerminator(server.port, cert, key)
    said: list[str] = []
    url = f"rediss://:{PASSWORD}@127.0.0.1:{tls.port}/0"
    try:
        client = redis_client(url, ssl_ca_certs=str(cert))
        store = RedisEventStore(client, codec, prefix="tls")
        try:
            store.append("acct", [Deposited(account="a", amount=1)], NO_STREAM)
            assert [e.version for e in store.read("acct")] == [1]
            said += [repr(store), repr(client)]
        finally:
            store.close()
            client.close()

        for refused_url in (url, f"redis://:{PASSWORD}@127.0.0.1:{tls.port}/0"):
            client = redis_client(refused_url, socket_timeout=1.0)
            started = time.monotonic()
            try:
                with pytest.raises(PersistenceError) as caught:
                    RedisEventStore(client, codec, prefix="tls")
            finally:
                client.close()
            assert time.monotonic() - started < 3.0
            assert not isinstance(caught.value, redis.RedisError)
            said.append(everything_said(caught.value))
        assert "CERTIFICATE_VERIFY_FAILED" in said[-2]
        assert "BackendError" in said[-2]  # misconfigured: retrying will not help
        assert "EventStoreUnavailable" in said[-1]
    finally:
        tls.close()

    said += [record.getMessage() for record in caplog.records]
    for text in said:
        assert PASSWORD not in text


def test_the_demo_run_on_a_password_url_never_prints_the_password(
    redis_server_factory: Callable[..., RedisServer],
) -> None:
    """Figure: bin/run-demo on a password-protected server, 40 customers, twice
    (human output with --verbose, --json), and once with a wrong password: the
    password appears in none of the 3 outputs (stdout and stderr)."""
    server = redis_server_factory()
    admin = redis.Redis.from_url(server.url)
    admin.config_set("requirepass", PASSWORD)
    admin.close()
    url = f"redis://:{PASSWORD}@127.0.0.1:{server.port}/0"
    runs = [
        ([url, "--verbose"], 0),
        ([url, "--json"], 0),
        ([url.replace(PASSWORD, "wrong-" + PASSWORD), "--verbose"], 1),
    ]
    for args, code in runs:
        done = subprocess.run(
            [sys.executable, str(ROOT / "bin" / "run-demo"), "--customers", "40",
             "--capacity", "30", "--redis", *args],
            capture_output=True, text=True, timeout=120, cwd=ROOT,
        )
        assert done.returncode == code, done.stderr[-2000:]
        assert PASSWORD not in done.stdout + done.stderr
