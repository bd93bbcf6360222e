"""The peer workload: M accounts, N deposits each, beside the ``eventsourcing`` library.

Every command loads its aggregate on demand (an account not in memory is read from
its stream), validates, and appends one event with optimistic concurrency (the
loaded version is the expected one; a conflict reloads and retries).

- ours: one ``Store`` holding the loaded accounts (bounded), on the memory adapter
  and on Redis; every deposit is sent at once, so many aggregates are in flight;
- peer: ``eventsourcing`` (an ``Application`` with an ``Aggregate``), one command
  after another as its API goes, on its in-memory (POPO) and its SQLite persistence;
- the sweep (``--concurrency``, the figures ``bin/bench --plot`` draws): both again
  with 1, 4, 16, 64 caller threads, each sending one command of its own accounts and
  waiting for it before the next.

The peer is installed by the ``bench`` extra only (``pip install -e '.[bench]'``);
without it only our figures are measured.
"""

from __future__ import annotations

import argparse
import functools
import os
import shutil
import tempfile
import uuid
from collections import OrderedDict, deque
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict
from rich.console import Console

from actors import Effect, Store, StoreRef
from benchmarks._harness import Report, Run, delete_prefix, measure_together, rate
from persistence import (
    AppendResult,
    Codec,
    ConcurrencyError,
    EventStore,
    Persistence,
    RecordedEvent,
)

AREA = "peers"
CONCURRENCY = (1, 4, 16, 64)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--accounts", type=int, default=None, help="M (default 1,000)")
    parser.add_argument("--deposits", type=int, default=None, help="N per account (default 5)")
    parser.add_argument(
        "--redis",
        metavar="URL",
        default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
        help="the Redis to measure on (keys under a fresh prefix, deleted after)",
    )
    parser.add_argument(
        "--concurrency",
        type=lambda text: [int(part) for part in text.split(",") if part],
        default=None,
        metavar="C,C,...",
        help="callers for the throughput-vs-concurrency sweep "
        "(default 1,4,16,64; 1,16 with --quick; '' for none)",
    )


# Our side: an accounts store that loads on demand.


class Deposited(BaseModel):
    model_config = ConfigDict(frozen=True)
    amount: int


CODEC = Codec()
CODEC.register(Deposited, name="Deposited")


@dataclass(frozen=True, slots=True)
class Deposit:
    account: str
    amount: int


@dataclass(frozen=True, slots=True)
class Loaded:
    account: str
    version: int
    balance: int


@dataclass(frozen=True, slots=True)
class Appended:
    account: str
    version: int
    amount: int


@dataclass(frozen=True, slots=True)
class Conflicted:
    account: str


@dataclass
class Account:
    version: int = 0
    balance: int = 0
    busy: bool = True  # loading, or an append in flight
    waiting: deque[Deposit] = field(default_factory=deque)


@dataclass
class Accounts:
    loaded: OrderedDict[str, Account] = field(default_factory=OrderedDict)
    limit: int = 10_000
    rejected: int = 0


@dataclass(frozen=True)
class Env:
    events: EventStore


def stream(account: str) -> str:
    return f"account-{account}"


def accounts(state: Accounts, action: Any, env: Env) -> list[Effect[Any]]:
    if isinstance(action, Deposit):
        account = state.loaded.get(action.account)
        if account is None:
            account = state.loaded[action.account] = Account()
            account.waiting.append(action)
            return [_load(env, action.account)]
        state.loaded.move_to_end(action.account)
        account.waiting.append(action)
        return _next(state, action.account, account, env)
    if isinstance(action, Loaded):
        account = state.loaded[action.account]
        account.version, account.balance, account.busy = action.version, action.balance, False
        return _next(state, action.account, account, env)
    if isinstance(action, Appended):
        account = state.loaded[action.account]
        account.version, account.busy = action.version, False
        account.balance += action.amount
        account.waiting.popleft()
        effects = _next(state, action.account, account, env)
        _evict(state)
        return effects
    if isinstance(action, Conflicted):
        return [_load(env, action.account)]
    return []


def _next(state: Accounts, name: str, account: Account, env: Env) -> list[Effect[Any]]:
    while account.waiting and not account.busy:
        command = account.waiting[0]
        if command.amount <= 0:  # validation: rejected, nothing written
            account.waiting.popleft()
            state.rejected += 1
            continue
        account.busy = True
        return [_append(env, name, account.version, command.amount)]
    return []


def _evict(state: Accounts) -> None:
    while len(state.loaded) > state.limit:
        name, oldest = next(iter(state.loaded.items()))
        if oldest.busy or oldest.waiting:
            return
        del state.loaded[name]


# Loads and appends are piped (``read_async``/``append_async``): no executor thread
# waits per command, and on Redis every command in flight shares the round trips
# of the event store's I/O thread.


def _load(env: Env, name: str) -> Effect[Any]:
    def loaded(events: list[RecordedEvent]) -> Loaded:
        balance = sum(e.event.amount for e in events if isinstance(e.event, Deposited))
        return Loaded(name, len(events), balance)

    return Effect.pipe(lambda: env.events.read_async(stream(name)), name="load").map(loaded)


def _append(env: Env, name: str, version: int, amount: int) -> Effect[Any]:
    def conflicted(error: BaseException) -> Conflicted:
        if isinstance(error, ConcurrencyError):
            return Conflicted(name)
        raise error

    def appended(outcome: AppendResult | Conflicted) -> Appended | Conflicted:
        if isinstance(outcome, Conflicted):
            return outcome
        return Appended(name, outcome.version, amount)

    return Effect.pipe(
        lambda: env.events.append_async(stream(name), [Deposited(amount=amount)], version),
        recover=conflicted,
        name="append",
    ).map(appended)


def run_ours(persistence: Persistence, m: int, n: int) -> float:
    store = Store.start(accounts, Accounts, Env(persistence.events), name="accounts")
    names = [uuid.uuid4().hex[:12] for _ in range(m)]
    try:

        def body() -> None:
            handles = [store.send(Deposit(name, 1)) for _ in range(n) for name in names]
            for handle in handles:
                handle.wait(120)

        figure = rate(m * n, body)
        final = store.state(30)
        assert sum(a.balance for a in final.loaded.values()) == m * n
        return figure
    finally:
        store.stop()


def drive_callers(store: StoreRef[Any, Any], names: Sequence[str], n: int, callers: int) -> None:
    """``callers`` threads, each depositing into its own share of ``names`` ``n`` times.

    A caller sends one command and waits for its whole cascade (load, append) before
    the next, so exactly ``callers`` commands are in flight: the concurrency an
    application with that many request threads gives the store.
    """

    def caller(share: Sequence[str]) -> None:
        for _ in range(n):
            for name in share:
                store.send(Deposit(name, 1)).wait(120)

    with ThreadPoolExecutor(callers, thread_name_prefix="caller") as pool:
        # list() re-raises a caller's failure here instead of losing it
        list(pool.map(caller, [names[i::callers] for i in range(callers)]))


def run_ours_callers(persistence: Persistence, m: int, n: int, callers: int) -> float:
    """The workload with ``callers`` commands in flight instead of all of them."""
    store = Store.start(accounts, Accounts, Env(persistence.events), name="accounts")
    names = [uuid.uuid4().hex[:12] for _ in range(m)]
    try:
        figure = rate(m * n, lambda: drive_callers(store, names, n, callers))
        final = store.state(30)
        assert sum(a.balance for a in final.loaded.values()) == m * n
        return figure
    finally:
        store.stop()


# The peer: the eventsourcing library.


@functools.cache
def _peer_account() -> Any:
    """The peer's aggregate, defined once (it needs the optional library)."""
    from eventsourcing.domain import Aggregate, event

    class PeerAccount(Aggregate):  # type: ignore[misc]
        @event("Opened")  # type: ignore[untyped-decorator]
        def __init__(self) -> None:
            self.balance = 0

        @event("Deposited")  # type: ignore[untyped-decorator]
        def deposit(self, amount: int) -> None:
            if amount <= 0:
                raise ValueError("a deposit is positive")
            self.balance += amount

    return PeerAccount


def _peer_app(env: dict[str, str], m: int) -> tuple[Any, list[Any]]:
    """The peer's ``Application`` with ``m`` new accounts, and their ids."""
    from eventsourcing.application import Application

    Account = _peer_account()
    app = Application(env=env)
    ids = []
    for _ in range(m):
        account = Account()
        app.save(account)
        ids.append(account.id)
    return app, ids


def _peer_deposits(app: Any, ids: Sequence[Any], n: int) -> None:
    for _ in range(n):
        for account_id in ids:
            account = app.repository.get(account_id)  # load on demand
            account.deposit(1)
            app.save(account)  # optimistic concurrency on the version


def run_peer(env: dict[str, str], m: int, n: int) -> float:
    app, ids = _peer_app(env, m)
    return rate(m * n, lambda: _peer_deposits(app, ids, n))


def run_peer_callers(env: dict[str, str], m: int, n: int, callers: int) -> float:
    """The peer with ``callers`` threads, each on its own share of the accounts."""
    app, ids = _peer_app(env, m)

    def body() -> None:
        with ThreadPoolExecutor(callers, thread_name_prefix="caller") as pool:
            shares = [ids[i::callers] for i in range(callers)]
            list(pool.map(lambda share: _peer_deposits(app, share, n), shares))

    try:
        return rate(m * n, body)
    finally:
        app.close()


def run(args: argparse.Namespace, report: Report, console: Console) -> None:
    m = args.accounts or (200 if args.quick else 1000)
    n = args.deposits or (2 if args.quick else 5)
    try:
        import eventsourcing  # noqa: F401

        peer = True
    except ImportError:
        console.print("eventsourcing is not installed (pip install -e '.[bench]'): ours only")
        peer = False
    with tempfile.TemporaryDirectory() as folder:
        runs = _runs(args, m, n, peer, folder, None)
        measure_together(report, console, AREA, "commands/s", runs, repeat=args.repeat)
    sweep(args, report, console, m, n, peer)


def sweep(
    args: argparse.Namespace, report: Report, console: Console, m: int, n: int, peer: bool
) -> None:
    """Throughput against concurrency (``--concurrency``): the figures ``--plot`` draws.

    Each figure carries ``series`` and ``concurrency`` (commands in flight) in its
    ``extra``; the all-in-flight figures above join their series at ``m * n``.
    """
    for series in ("ours memory", "ours redis"):
        figure = report.find(AREA, series)
        if figure is not None:
            figure.extra.update(series=series, concurrency=m * n)
    folder = tempfile.mkdtemp(prefix="bench-peers-")
    try:
        levels = args.concurrency
        if levels is None:
            levels = [1, 16] if args.quick else list(CONCURRENCY)
        for callers in levels:
            _sweep_at(args, report, console, m, n, peer, callers, folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _sweep_at(
    args: argparse.Namespace,
    report: Report,
    console: Console,
    m: int,
    n: int,
    peer: bool,
    callers: int,
    folder: str,
) -> None:
    runs = _runs(args, m, n, peer, folder, callers)
    figures = measure_together(report, console, AREA, "commands/s", runs, repeat=args.repeat)
    for figure in figures:
        # Named by series and callers; the chart finds them by their extra.
        figure.extra.update(series=figure.name.rsplit(" c=", 1)[0], concurrency=callers)


def _runs(
    args: argparse.Namespace, m: int, n: int, peer: bool, folder: str, callers: int | None
) -> list[Run]:
    """One point of the chart: the peer in memory and on SQLite, ours in memory and on
    Redis, each with ``callers`` threads, or (None) every command sent at once (the
    peer, which has no such mode, runs its loop on one thread)."""

    def peer_on(env: dict[str, str]) -> float:
        if callers is None:
            return run_peer(env, m, n)
        return run_peer_callers(env, m, n, callers)

    def ours_on(persistence: Persistence) -> float:
        if callers is None:
            return run_ours(persistence, m, n)
        return run_ours_callers(persistence, m, n, callers)

    def sqlite() -> float:
        path = os.path.join(folder, f"{uuid.uuid4().hex}.db")
        return peer_on({"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": path})

    def memory() -> float:
        persistence = Persistence.in_memory(CODEC)
        try:
            return ours_on(persistence)
        finally:
            persistence.close()

    def on_redis() -> float:
        prefix = f"ca-bench-peers-{uuid.uuid4().hex[:8]}"
        persistence = Persistence.on_redis(args.redis, CODEC, prefix=prefix)
        try:
            return ours_on(persistence)
        finally:
            persistence.close()
            delete_prefix(args.redis, prefix)

    at = "" if callers is None else f" c={callers}"
    base = f"eventsourcing memory{at}" if peer else None
    runs = [
        Run(f"eventsourcing memory{at}", lambda: peer_on({})),
        Run(f"eventsourcing sqlite{at}", sqlite, base),
    ] if peer else []
    return [*runs, Run(f"ours memory{at}", memory, base), Run(f"ours redis{at}", on_redis, base)]
