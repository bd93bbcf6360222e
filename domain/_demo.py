"""The demo behind ``bin/run-demo``: many customers reserving at once, then the proof.

``run_demo`` creates events, lets ``customers`` reserve concurrently (a share of them
with a card that is declined), optionally stops every store halfway and starts fresh
ones on the same backend, then checks every invariant against what is stored.
``render`` prints the summary with rich; ``summary_json`` gives it to machines.
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console
from rich.table import Table

from domain._errors import ReservationTimeout, SystemStopped, TicketingError
from domain._gateway import DemoGateway
from domain._outcome import ReservationStatus
from domain._system import DEFAULT_CARD, TicketingSystem
from domain._verify import Check, InvariantReport

__all__ = ["DemoConfig", "DemoResult", "render", "render_report", "run_demo", "summary_json"]

DECLINED_CARD = "4000000000000002"


@dataclass(frozen=True, slots=True)
class DemoConfig:
    """What the demo runs (``bin/run-demo --help`` describes each option)."""

    redis_url: str | None = None
    key_prefix: str | None = None
    events: int = 2
    sections: int = 2
    capacity: int = 250
    customers: int = 500
    concurrency: int = 16
    max_seats: int = 4
    decline_rate: float = 0.1
    seed: int = 42
    price_cents: int = 2500
    gateway_latency: float = 0.0
    gateway_error_rate: float = 0.0
    restart_midway: bool = False
    timeout: float = 60.0


@dataclass
class DemoResult:
    """What a run did and found."""

    config: DemoConfig
    backend: str
    key_prefix: str | None
    outcomes: Counter[str]
    errors: Counter[str]
    elapsed: float
    latencies: list[float]
    report: InvariantReport
    restarted: bool = False
    resumed: int = 0
    interrupted: int = 0

    @property
    def ok(self) -> bool:
        """Every invariant holds and every customer got an answer."""
        return self.report.ok and not self.errors

    @property
    def throughput(self) -> float:
        done = sum(self.outcomes.values())
        return done / self.elapsed if self.elapsed > 0 else 0.0

    def percentile(self, share: float) -> float:
        """A latency percentile in milliseconds (0.5 for the median)."""
        if not self.latencies:
            return 0.0
        ordered = sorted(self.latencies)
        index = min(len(ordered) - 1, max(0, round(share * len(ordered)) - 1))
        return ordered[index] * 1000


@dataclass
class _Current:
    """The system customers use; replaced once when the demo restarts everything."""

    system: TicketingSystem
    ready: threading.Event = field(default_factory=threading.Event)
    changed: threading.Condition = field(default_factory=threading.Condition)

    def get(self) -> TicketingSystem:
        self.ready.wait()
        return self.system

    def replaced(self, old: TicketingSystem, timeout: float) -> TicketingSystem:
        with self.changed:
            self.changed.wait_for(lambda: self.system is not old and self.ready.is_set(), timeout)
            return self.system


def run_demo(config: DemoConfig, advance: Callable[[int], None] = lambda n: None) -> DemoResult:
    """Run the demo; ``advance(1)`` is called as each customer gets an answer.

    Raises:
        BackendUnavailable: the backend cannot be reached.
    """
    run = uuid.uuid4().hex[:8]
    prefix = config.key_prefix or (f"ticketing-demo-{run}" if config.redis_url else None)
    gateway = DemoGateway(
        latency=config.gateway_latency, error_rate=config.gateway_error_rate, seed=config.seed
    )
    node = f"demo-{run}"

    def start(previous: TicketingSystem | None = None) -> TicketingSystem:
        if previous is not None and config.redis_url is None:
            # In memory, "the same backend" is the same objects: hand them over.
            return TicketingSystem.start(
                persistence=previous.persistence, gateway=gateway, node=node
            )
        return TicketingSystem.start(
            config.redis_url, key_prefix=prefix or "ticketing", gateway=gateway, node=node
        )

    system = start()
    current = _Current(system)
    current.ready.set()
    rnd = random.Random(config.seed)
    events = [f"e{n + 1}" for n in range(config.events)]
    sections = [chr(ord("A") + n) if n < 26 else f"S{n}" for n in range(config.sections)]
    for event_id in events:
        system.create_event(event_id, dict.fromkeys(sections, config.capacity), config.price_cents)
    customers = [
        (
            f"{run}_{n}",
            f"customer{n}",
            rnd.choice(events),
            rnd.choice(sections),
            rnd.randint(1, min(config.max_seats, config.capacity)),
            DECLINED_CARD if rnd.random() < config.decline_rate else DEFAULT_CARD,
        )
        for n in range(config.customers)
    ]
    outcomes: Counter[str] = Counter()
    kept: dict[str, int] = {}  # reservation id -> cents the customer should have paid
    errors: Counter[str] = Counter()
    latencies: list[float] = []
    lock = threading.Lock()
    answered = threading.Semaphore(0)
    interrupted = 0

    def serve(customer: tuple[str, str, str, str, int, str]) -> None:
        nonlocal interrupted
        rid, name, event_id, section, quantity, card = customer
        began = time.perf_counter()
        user = current.get()
        status: str | None = None
        error: str | None = None
        while status is None and error is None:
            try:
                outcome = user.reserve(
                    name, event_id, section, quantity, card,
                    timeout=config.timeout, reservation_id=rid,
                )  # fmt: skip
                status = outcome.status.value
                kept[rid] = outcome.amount_cents
            except SystemStopped:
                with lock:
                    interrupted += 1
                user = current.replaced(user, config.timeout)  # then ask again, same id
            except ReservationTimeout:
                error = "timed out waiting"
            except TicketingError as failure:
                error = type(failure).__name__
        took = time.perf_counter() - began
        with lock:
            latencies.append(took)
            if status is not None:
                outcomes[status] += 1
            if error is not None:
                errors[error] += 1
        answered.release()
        advance(1)

    restarted = False
    resumed = 0
    began = time.perf_counter()
    with ThreadPoolExecutor(config.concurrency, thread_name_prefix="customer") as pool:
        futures = [pool.submit(serve, customer) for customer in customers]
        if config.restart_midway:
            for _ in range(config.customers // 2):
                answered.acquire()
            # Stop every store with reservations in flight; start fresh ones, empty,
            # on the same backend. Unfinished sagas are resumed from what is stored.
            current.ready.clear()
            old = current.system
            old.stop()
            replacement = start(old)
            resumed = replacement.resumed_at_start
            with current.changed:
                current.system = replacement
                current.ready.set()
                current.changed.notify_all()
            restarted = True
        for future in futures:
            future.result()
    elapsed = time.perf_counter() - began
    system = current.system
    try:
        report = system.verify(timeout=config.timeout)
    finally:
        system.stop()
    report = _with_ledger(report, gateway, kept)
    return DemoResult(
        config=config,
        backend="memory" if config.redis_url is None else _redact(config.redis_url),
        key_prefix=prefix,
        outcomes=outcomes,
        errors=errors,
        elapsed=elapsed,
        latencies=latencies,
        report=report,
        restarted=restarted,
        resumed=resumed,
        interrupted=interrupted,
    )


LEDGER = "the gateway kept money for completed reservations only"


def _with_ledger(
    report: InvariantReport, gateway: DemoGateway, kept: dict[str, int]
) -> InvariantReport:
    """The report, plus a check of the money as the gateway (outside the system) saw it."""
    charged = gateway.charges()
    wrong = [
        f"{rid}: kept {charged.get(rid, 0)}, expected {cents}"
        for rid, cents in kept.items()
        if charged.get(rid, 0) != cents
    ]
    detail = "; ".join(wrong[:5]) + (f" (+{len(wrong) - 5} more)" if len(wrong) > 5 else "")
    return InvariantReport(
        (*report.checks, Check(LEDGER, not wrong, detail)), report.sections, report.reservations
    )


def _redact(url: str) -> str:
    """The URL without a password."""
    if "@" not in url:
        return url
    scheme, _, rest = url.partition("://")
    return f"{scheme}://***@{rest.rpartition('@')[2]}"


def summary_json(result: DemoResult) -> dict[str, Any]:
    """The summary as plain data (what ``--json`` prints)."""
    config = result.config
    return {
        "ok": result.ok,
        "backend": result.backend,
        "key_prefix": result.key_prefix,
        "customers": config.customers,
        "concurrency": config.concurrency,
        "seed": config.seed,
        "reservations": dict(sorted(result.outcomes.items())),
        "errors": dict(result.errors),
        "elapsed_s": round(result.elapsed, 3),
        "throughput_per_s": round(result.throughput, 1),
        "latency_ms": {
            name: round(result.percentile(share), 2)
            for name, share in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99), ("max", 1.0))
        },
        "sections": [
            {
                "event_id": s.event_id,
                "section": s.section,
                "capacity": s.capacity,
                "sold": s.sold,
                "reserved": s.reserved,
                "available": s.available,
            }
            for s in result.report.sections
        ],
        "invariants": report_json(result.report)["invariants"],
        "restarted_midway": result.restarted,
        "resumed_after_restart": result.resumed,
        "interrupted_by_restart": result.interrupted,
    }


def report_json(report: InvariantReport) -> dict[str, Any]:
    """An invariant report as plain data (what ``--verify --json`` prints)."""
    return {
        "ok": report.ok,
        "invariants": [{"name": c.name, "ok": c.ok, "detail": c.detail} for c in report.checks],
        "reservations": report.reservations,
        "sections": [
            {
                "event_id": s.event_id,
                "section": s.section,
                "capacity": s.capacity,
                "sold": s.sold,
                "reserved": s.reserved,
                "available": s.available,
            }
            for s in report.sections
        ],
    }


def render(result: DemoResult, console: Console) -> None:
    """Print the run's summary tables."""
    config = result.config
    where = result.backend + (f" (prefix {result.key_prefix})" if result.key_prefix else "")
    restart = ""
    if result.restarted:
        restart = (
            f"; restarted midway: {result.interrupted} waits interrupted, "
            f"{result.resumed} sagas resumed"
        )
    console.print(
        f"[bold]{config.customers} customers[/], {config.concurrency} at a time, on {where}"
        f"{restart}"
    )
    outcomes = Table(title="Reservations by outcome")
    outcomes.add_column("outcome")
    outcomes.add_column("count", justify="right")
    for status in ReservationStatus:
        if result.outcomes.get(status.value):
            outcomes.add_row(status.value, str(result.outcomes[status.value]))
    for error, count in sorted(result.errors.items()):
        outcomes.add_row(f"[red]error: {error}[/]", str(count))
    console.print(outcomes)
    _sections(result.report, console)
    speed = Table(title="Speed")
    speed.add_column("figure")
    speed.add_column("value", justify="right")
    speed.add_row("throughput", f"{result.throughput:,.0f} reservations/s")
    speed.add_row("elapsed", f"{result.elapsed:.2f} s")
    for name, share in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99)):
        speed.add_row(f"latency {name}", f"{result.percentile(share):.1f} ms")
    console.print(speed)
    _invariants(result.report, console)
    verdict = "[bold green]OK[/]" if result.ok else "[bold red]FAILED[/]"
    console.print(f"Result: {verdict}")
    if config.redis_url is not None:
        console.print(
            f"The data stays under the prefix {result.key_prefix!r}: check it again with\n"
            f"  python bin/run-demo --verify --redis {result.backend} "
            f"--key-prefix {result.key_prefix}\n"
            f"and remove it with redis-cli --scan --pattern '{result.key_prefix}:*' "
            "| xargs redis-cli unlink",
            soft_wrap=True,
        )


def render_report(report: InvariantReport, console: Console) -> None:
    """Print what ``--verify`` found."""
    counts = ", ".join(f"{n} {status}" for status, n in report.reservations.items()) or "none"
    console.print(f"Reservations stored: {counts}")
    _sections(report, console)
    _invariants(report, console)
    verdict = "[bold green]OK[/]" if report.ok else "[bold red]FAILED[/]"
    console.print(f"Result: {verdict}")


def _sections(report: InvariantReport, console: Console) -> None:
    table = Table(title="Seats per section")
    for name in ("event", "section", "capacity", "sold", "reserved", "available"):
        table.add_column(name, justify="left" if name in ("event", "section") else "right")
    for s in report.sections:
        table.add_row(
            s.event_id, s.section, str(s.capacity), str(s.sold), str(s.reserved), str(s.available)
        )
    console.print(table)


def _invariants(report: InvariantReport, console: Console) -> None:
    table = Table(title="Invariants")
    table.add_column("invariant")
    table.add_column("holds")
    table.add_column("finding")
    for check in report.checks:
        mark = "[green]pass[/]" if check.ok else "[red]FAIL[/]"
        table.add_row(check.name, mark, check.detail)
    console.print(table)
