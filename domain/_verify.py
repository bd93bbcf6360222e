"""The invariants, checked against what is stored, independently of any running store.

``verify_store`` reads the catalog, every section's stream, the saga index, every
reservation's and every payment's stream, and the projections, and reports:

- no seat sold twice: no event gives a seat that is taken; every sold seat belongs
  to a completed reservation, with the seats that reservation records;
- seats conserved: available + reserved + sold = capacity, in the fold of each
  section's stream and in its projection;
- every projection equals the fold of the event store (and reflects its last version);
- every saga terminal;
- every charge settled: a completed reservation's payment succeeded and was not
  refunded; a reservation that did not complete keeps no money.

The folds here are strict (an impossible event is a finding), unlike the stores'
lenient ones, which must keep going whatever the stream holds.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

from domain._events import (
    SAGA_INDEX,
    SAGA_INDEX_PARTITIONS,
    DomainEvent,
    EventCreated,
    EventListed,
    SagaOpened,
    SeatsConfirmed,
    SeatsRejected,
    SeatsReleased,
    SeatsReserved,
    SectionInitialized,
    catalog_stream,
    event_stream,
    inventory_stream,
    payment_stream,
    reservation_id_of,
    reservation_stream,
)
from domain._outcome import ReservationStatus
from domain._payment import PaymentState, evolve_payment
from domain._projections import availability_key, reservation_fields, reservation_key
from domain._saga import Saga, evolve_saga
from persistence import EventStore, ProjectionStore, SnapshotStore

__all__ = [
    "NO_SEAT_SOLD_TWICE",
    "PAYMENTS_SETTLED",
    "PROJECTIONS_MATCH",
    "SAGAS_TERMINAL",
    "SEATS_CONSERVED",
    "Check",
    "InvariantReport",
    "SectionReport",
    "list_events",
    "list_reservations",
    "verify_store",
]

NO_SEAT_SOLD_TWICE = "no seat sold twice"
SEATS_CONSERVED = "available + reserved + sold = capacity"
PROJECTIONS_MATCH = "every projection equals the fold of the event store"
SAGAS_TERMINAL = "every saga terminal"
PAYMENTS_SETTLED = "every charge settled"

_MAX_DETAILS = 5


@dataclass(frozen=True, slots=True)
class Check:
    """One invariant: ``ok``, and when not, what was found (the first few findings)."""

    name: str
    ok: bool
    detail: str = ""


@dataclass(frozen=True, slots=True)
class SectionReport:
    """A section's seats, from the fold of its stream."""

    event_id: str
    section: str
    capacity: int
    available: int
    reserved: int
    sold: int


@dataclass(frozen=True, slots=True)
class InvariantReport:
    """What ``TicketingSystem.verify`` returns."""

    checks: tuple[Check, ...]
    sections: tuple[SectionReport, ...]
    reservations: dict[str, int]

    @property
    def ok(self) -> bool:
        """True when every invariant holds."""
        return all(check.ok for check in self.checks)

    def check(self, name: str) -> Check:
        return next(check for check in self.checks if check.name == name)


@dataclass
class _Findings:
    items: dict[str, list[str]] = field(default_factory=dict)

    def add(self, name: str, finding: str) -> None:
        self.items.setdefault(name, []).append(finding)

    def check(self, name: str) -> Check:
        found = self.items.get(name, [])
        if not found:
            return Check(name, True)
        shown = "; ".join(found[:_MAX_DETAILS])
        more = f" (+{len(found) - _MAX_DETAILS} more)" if len(found) > _MAX_DETAILS else ""
        return Check(name, False, shown + more)


@dataclass
class _Section:
    """A strict fold of one section's stream."""

    event_id: str
    section: str
    capacity: int = 0
    initialized: bool = False
    owners: dict[int, tuple[str, bool]] = field(default_factory=dict)  # seat -> (rid, sold)
    records: dict[str, tuple[str, tuple[int, ...]]] = field(default_factory=dict)

    def apply(self, event: DomainEvent, findings: _Findings) -> None:
        where = f"{self.event_id}/{self.section}"
        if isinstance(event, SectionInitialized):
            if self.initialized:
                findings.add(SEATS_CONSERVED, f"{where} initialized twice")
            self.initialized = True
            self.capacity = event.capacity
        elif isinstance(event, SeatsReserved):
            rid = event.reservation_id
            if rid in self.records:
                findings.add(NO_SEAT_SOLD_TWICE, f"{where}: {rid} given seats twice")
                return
            for seat in event.seats:
                if not 1 <= seat <= self.capacity:
                    findings.add(NO_SEAT_SOLD_TWICE, f"{where}: seat {seat} does not exist")
                elif seat in self.owners:
                    holder = self.owners[seat][0]
                    findings.add(
                        NO_SEAT_SOLD_TWICE, f"{where}: seat {seat} given to {rid}, held by {holder}"
                    )
                self.owners[seat] = (rid, False)
            self.records[rid] = ("held", event.seats)
        elif isinstance(event, SeatsConfirmed):
            rid = event.reservation_id
            status, seats = self.records.get(rid, ("none", ()))
            if status != "held" or seats != event.seats:
                findings.add(NO_SEAT_SOLD_TWICE, f"{where}: {rid} confirmed while {status}")
                return
            for seat in seats:
                self.owners[seat] = (rid, True)
            self.records[rid] = ("confirmed", seats)
        elif isinstance(event, SeatsReleased):
            rid = event.reservation_id
            status, seats = self.records.get(rid, ("none", ()))
            if status == "confirmed":
                findings.add(NO_SEAT_SOLD_TWICE, f"{where}: sold seats of {rid} released")
                return
            if status == "held":
                for seat in seats:
                    if self.owners.get(seat, ("", False))[0] == rid:
                        del self.owners[seat]
            self.records[rid] = ("released", seats if status == "held" else ())
        elif isinstance(event, SeatsRejected):
            self.records.setdefault(event.reservation_id, ("rejected", ()))

    @property
    def sold(self) -> int:
        return sum(1 for _, sold in self.owners.values() if sold)

    @property
    def reserved(self) -> int:
        return sum(1 for _, sold in self.owners.values() if not sold)


def list_events(events: EventStore) -> Iterator[EventCreated]:
    """Every event created, from the catalog (each once)."""
    seen: set[str] = set()
    for recorded in events.read(catalog_stream()):
        listed = recorded.event
        if isinstance(listed, EventListed) and listed.event_id not in seen:
            seen.add(listed.event_id)
            for created in events.read(event_stream(listed.event_id), to_version=1):
                if isinstance(created.event, EventCreated):
                    yield created.event


def list_reservations(events: EventStore) -> list[str]:
    """Every reservation id in the saga index (the stream index ``sagas``, then the
    ``sagas-{n}`` streams of earlier versions), in index order (each once)."""
    seen: dict[str, None] = {}
    for stream_id in events.read_index(SAGA_INDEX).stream_ids:
        rid = reservation_id_of(stream_id)
        if rid is not None:
            seen[rid] = None
    for n in range(SAGA_INDEX_PARTITIONS):
        for recorded in events.read(f"sagas-{n}"):
            opened = recorded.event
            if isinstance(opened, SagaOpened):
                seen[opened.reservation_id] = None
    return list(seen)


def verify_store(
    events: EventStore, projections: ProjectionStore, snapshots: SnapshotStore | None = None
) -> InvariantReport:
    """Check every invariant against what is stored (see the module docstring)."""
    del snapshots  # the checks read streams whole: a snapshot would only hide a problem
    findings = _Findings()
    sections: dict[tuple[str, str], _Section] = {}
    for created in list_events(events):
        for name in created.sections:
            sections[(created.event_id, name)] = _verify_section(
                events, projections, created.event_id, name, findings
            )
    counts: Counter[str] = Counter()
    completed_seats: dict[tuple[str, str, int], str] = {}
    for rid in list_reservations(events):
        saga = _verify_reservation(events, projections, rid, sections, findings)
        if saga is None:
            continue
        counts[saga.status.value] += 1
        if saga.status is ReservationStatus.COMPLETED:
            for seat in saga.seats:
                spot = (saga.event_id, saga.section, seat)
                if spot in completed_seats:
                    findings.add(
                        NO_SEAT_SOLD_TWICE,
                        f"seat {spot} sold to {completed_seats[spot]} and to {rid}",
                    )
                completed_seats[spot] = rid
    for (event_id, name), section in sections.items():
        for seat, (rid, sold) in section.owners.items():
            if sold and completed_seats.get((event_id, name, seat)) != rid:
                findings.add(
                    NO_SEAT_SOLD_TWICE,
                    f"{event_id}/{name} seat {seat} sold to {rid}, not a completed reservation",
                )
    reports = tuple(
        SectionReport(
            s.event_id,
            s.section,
            s.capacity,
            s.capacity - s.sold - s.reserved,
            s.reserved,
            s.sold,
        )
        for s in sections.values()
    )
    names = (
        NO_SEAT_SOLD_TWICE,
        SEATS_CONSERVED,
        PROJECTIONS_MATCH,
        SAGAS_TERMINAL,
        PAYMENTS_SETTLED,
    )
    return InvariantReport(
        tuple(findings.check(name) for name in names), reports, dict(sorted(counts.items()))
    )


def _verify_section(
    events: EventStore,
    projections: ProjectionStore,
    event_id: str,
    name: str,
    findings: _Findings,
) -> _Section:
    section = _Section(event_id, name)
    version = 0
    for recorded in events.read(inventory_stream(event_id, name)):
        section.apply(recorded.event, findings)  # type: ignore[arg-type]
        version = recorded.version
    where = f"{event_id}/{name}"
    if not section.initialized:
        findings.add(SEATS_CONSERVED, f"{where} was never initialized")
        return section
    available = section.capacity - section.sold - section.reserved
    if available < 0:
        findings.add(SEATS_CONSERVED, f"{where}: more seats taken than the capacity")
    folded = {
        "capacity": str(section.capacity),
        "available": str(available),
        "reserved": str(section.reserved),
        "sold": str(section.sold),
        "_position": str(version),
    }
    stored = projections.get(availability_key(event_id, name)) or {}
    shown = {field: stored.get(field) for field in folded}
    if shown != folded:
        findings.add(PROJECTIONS_MATCH, f"availability {where}: {shown} != {folded}")
    try:
        total = sum(int(stored[f]) for f in ("available", "reserved", "sold"))
        if total != int(stored["capacity"]):
            findings.add(SEATS_CONSERVED, f"availability projection {where}: {total} seats")
    except (KeyError, ValueError):
        findings.add(SEATS_CONSERVED, f"availability projection {where} is missing or unreadable")
    return section


def _verify_reservation(
    events: EventStore,
    projections: ProjectionStore,
    rid: str,
    sections: dict[tuple[str, str], _Section],
    findings: _Findings,
) -> Saga | None:
    saga: Saga | None = None
    version = 0
    for recorded in events.read(reservation_stream(rid)):
        saga = evolve_saga(saga, recorded.event)  # type: ignore[arg-type]
        version = recorded.version
    if saga is None:
        return None  # indexed, never started (its start did not land): nothing to check
    if not saga.status.terminal:
        findings.add(SAGAS_TERMINAL, f"{rid} is {saga.status.value}")
    folded = {**reservation_fields(saga), "_position": str(version)}
    stored = projections.get(reservation_key(rid))
    if stored != folded:
        findings.add(PROJECTIONS_MATCH, f"reservation {rid}: {stored} != {folded}")
    section = sections.get((saga.event_id, saga.section))
    status, seats = ("none", ()) if section is None else section.records.get(rid, ("none", ()))
    payment = PaymentState()
    if saga.payment_id:
        for recorded in events.read(payment_stream(saga.payment_id)):
            payment = evolve_payment(payment, recorded.event)  # type: ignore[arg-type]
    if saga.status is ReservationStatus.COMPLETED:
        if status != "confirmed" or seats != saga.seats:
            findings.add(NO_SEAT_SOLD_TWICE, f"{rid} completed, its seats are {status} {seats}")
        if payment.status != "succeeded":
            findings.add(PAYMENTS_SETTLED, f"{rid} completed with a payment {payment.status}")
    elif saga.status.terminal:
        if status in ("held", "confirmed"):
            findings.add(NO_SEAT_SOLD_TWICE, f"{rid} is {saga.status.value}, its seats {status}")
        keeps_money = payment.status == "succeeded" or (
            payment.status == "failed" and payment.uncertain
        )
        if keeps_money:
            findings.add(
                PAYMENTS_SETTLED, f"{rid} is {saga.status.value}, payment {payment.status}"
            )
    return saga
