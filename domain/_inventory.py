"""The inventory store (pattern 1): seats per section, loaded on demand, per scope.

One store serves every section. A scope is an (event id, section) pair, event-sourced
in its stream ``inventory-{event_id}-{section}``. The store starts empty; a command
for a scope that is not loaded starts a load (latest snapshot + the stream after it)
and waits, with any other command for that scope, until it lands; other scopes go on
meanwhile (see ``_slots``). Ready, a scope decides the waiting commands in a batch
on its state and appends their events in one append whose expected version is the
loaded one: if another store (this process or another) wrote first, the append
conflicts, the scope reloads and decides the batch again, at most ``max_attempts``
times. So a seat is never sold twice, however many stores share the event store.

Every command is answered by a reply action (``CommandApplied`` / ``CommandRejected``)
reduced by this store, so application code can ``send_and_wait_for`` it. Outcomes
the saga must learn of are events on the bus, rejections of seats included
(``SeatsRejected``). Commands are idempotent by reservation id: a reserve for a
reservation that holds seats is answered with those seats, never reserved twice.

Threads: the reducer runs on the store's thread; loads and snapshots run on the
executor, appends are piped (``Repository.append_async``: queued for the event store's
I/O thread on Redis, done at once in memory), and all of them only feed actions back.
"""

from __future__ import annotations

import bisect
import json
import logging
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal, NamedTuple

import msgpack

from actors import Clock, Effect
from domain._events import (
    DomainEvent,
    SeatsConfirmed,
    SeatsRejected,
    SeatsReleased,
    SeatsReserved,
    SectionInitialized,
    inventory_stream,
)
from domain._repository import Loaded, Repository, describe
from domain._slots import Slot, append_effect, evict, load_effect, touch
from domain._validation import MAX_CAPACITY, MAX_PRICE_CENTS
from persistence import ANY

__all__ = [
    "AppendConflicted",
    "AppendFailed",
    "CommandApplied",
    "CommandRejected",
    "ConfirmReservation",
    "EventsAppended",
    "InitializeSection",
    "InventoryAction",
    "InventoryCommand",
    "InventoryEnvironment",
    "InventorySettings",
    "InventoryState",
    "Rejection",
    "ReleaseReservation",
    "ReservationRecord",
    "ReserveSeats",
    "SectionKey",
    "SectionLoadFailed",
    "SectionLoaded",
    "SectionState",
    "decode_section",
    "encode_section",
    "evolve_section",
    "reduce_inventory",
    "snapshot_due",
]

log = logging.getLogger("domain.inventory")


class SectionKey(NamedTuple):
    """A scope of the inventory: one section of one event."""

    event_id: str
    section: str

    @property
    def stream_id(self) -> str:
        return inventory_stream(self.event_id, self.section)


class Rejection(StrEnum):
    """Why the inventory did not honour a command."""

    SOLD_OUT = "sold_out"
    UNKNOWN_SECTION = "unknown_section"
    SEAT_TAKEN = "seat_taken"
    INVALID_SEAT = "invalid_seat"
    INVALID_QUANTITY = "invalid_quantity"
    ALREADY_INITIALIZED = "already_initialized"
    UNKNOWN_RESERVATION = "unknown_reservation"
    RESERVATION_CLOSED = "reservation_closed"
    ALREADY_CONFIRMED = "already_confirmed"
    CONTENTION = "contention"
    UNAVAILABLE = "unavailable"


# -- the aggregate --------------------------------------------------------------------

ReservationStatus = Literal["held", "confirmed", "released", "rejected"]


@dataclass(frozen=True, slots=True)
class ReservationRecord:
    """What a section knows of one reservation id (kept for idempotency)."""

    status: ReservationStatus
    seats: tuple[int, ...] = ()
    reason: str = ""


@dataclass
class SectionState:
    """One section, folded from its stream.

    ``free`` is kept sorted, highest seat first: a reserve takes the lowest free
    seats (so the seats a decision picks are the same wherever it is decided), and
    taking them from the end of the list costs the same however large the section;
    from its head, every reserve moved the whole list (a ``SeatsReserved`` took
    11.3 µs to apply in a section of 50,000 seats, now 3.9; 3% of a reservation's
    CPU on Redis).
    """

    initialized: bool = False
    capacity: int = 0
    price_cents: int = 0
    free: list[int] = field(default_factory=list)
    held: dict[int, str] = field(default_factory=dict)
    sold: dict[int, str] = field(default_factory=dict)
    reservations: dict[str, ReservationRecord] = field(default_factory=dict)


def evolve_section(state: SectionState, event: DomainEvent) -> SectionState:
    """Apply one event to ``state`` (mutated) and return it.

    Lenient by design: an event that makes no sense on the state (a reservation id
    already decided) is ignored, so that the first outcome of a reservation wins.
    The strict fold of ``_verify`` reports such events as violations.
    """
    if isinstance(event, SeatsReserved):
        if event.reservation_id in state.reservations:
            return state
        seats, free = event.seats, state.free
        if seats and tuple(free[: -len(seats) - 1 : -1]) == seats:
            # The lowest free seats (any reserve without named seats): one cut of the
            # list's tail instead of a shift of the whole list per seat.
            del free[-len(seats) :]
        else:
            for seat in seats:
                _take(free, seat)
        for seat in seats:
            state.held[seat] = event.reservation_id
        state.reservations[event.reservation_id] = ReservationRecord("held", seats)
    elif isinstance(event, SeatsConfirmed):
        record = state.reservations.get(event.reservation_id)
        if record is None or record.status != "held":
            return state
        for seat in record.seats:
            state.held.pop(seat, None)
            state.sold[seat] = event.reservation_id
        state.reservations[event.reservation_id] = ReservationRecord("confirmed", record.seats)
    elif isinstance(event, SeatsReleased):
        record = state.reservations.get(event.reservation_id)
        if record is None:
            state.reservations[event.reservation_id] = ReservationRecord("released")
        elif record.status == "held":
            for seat in record.seats:
                if state.held.pop(seat, None) is not None:
                    bisect.insort(state.free, seat, key=_descending)
            state.reservations[event.reservation_id] = ReservationRecord("released", record.seats)
    elif isinstance(event, SeatsRejected):
        if event.reservation_id not in state.reservations:
            state.reservations[event.reservation_id] = ReservationRecord(
                "rejected", (), event.reason
            )
    elif isinstance(event, SectionInitialized) and not state.initialized:
        state.initialized = True
        state.capacity = event.capacity
        state.price_cents = event.price_cents
        state.free = list(range(event.capacity, 0, -1))
    return state


def copy_section(state: SectionState) -> SectionState:
    """A copy ``evolve_section`` can change without touching ``state`` (records are
    immutable, so the containers are all that is copied)."""
    return SectionState(
        initialized=state.initialized,
        capacity=state.capacity,
        price_cents=state.price_cents,
        free=list(state.free),
        held=dict(state.held),
        sold=dict(state.sold),
        reservations=dict(state.reservations),
    )


def _take(free: list[int], seat: int) -> None:
    index = bisect.bisect_left(free, -seat, key=_descending)
    if index < len(free) and free[index] == seat:
        del free[index]


def _descending(seat: int) -> int:
    """The sort key of ``SectionState.free`` (highest seat first) for ``bisect``."""
    return -seat


SNAPSHOT_FORMAT = 1
"""The first item of a msgpack snapshot; a JSON one (written before it) starts with ``{``."""


def encode_section(state: SectionState) -> bytes:
    """A snapshot of ``state`` (msgpack; ``free`` is derived, so not stored).

    msgpack rather than JSON: three times faster to encode a large section (0.56 vs
    1.77 ms with 1,000 reservations), and seat numbers stay integer keys.
    """
    data: bytes = msgpack.packb(
        [
            SNAPSHOT_FORMAT,
            state.initialized,
            state.capacity,
            state.price_cents,
            state.held,
            state.sold,
            [(rid, r.status, r.seats, r.reason) for rid, r in state.reservations.items()],
        ]
    )
    return data


def decode_section(data: bytes) -> SectionState:
    """The state ``encode_section`` saved (or the JSON of earlier versions)."""
    if data[:1] == b"{":
        return _decode_json_section(data)
    _format, initialized, capacity, price_cents, held, sold, records = msgpack.unpackb(
        data, strict_map_key=False
    )
    return _section(
        bool(initialized),
        int(capacity),
        int(price_cents),
        held,
        sold,
        {rid: ReservationRecord(status, tuple(seats), reason)
         for rid, status, seats, reason in records},
    )


def _decode_json_section(data: bytes) -> SectionState:
    raw = json.loads(data)
    return _section(
        bool(raw["i"]),
        int(raw["c"]),
        int(raw["p"]),
        {int(seat): rid for seat, rid in raw["h"].items()},
        {int(seat): rid for seat, rid in raw["s"].items()},
        {rid: ReservationRecord(status, tuple(seats), reason)
         for rid, (status, seats, reason) in raw["r"].items()},
    )


def _section(
    initialized: bool,
    capacity: int,
    price_cents: int,
    held: dict[int, str],
    sold: dict[int, str],
    reservations: dict[str, ReservationRecord],
) -> SectionState:
    return SectionState(
        initialized=initialized,
        capacity=capacity,
        price_cents=price_cents,
        free=[s for s in range(capacity, 0, -1) if s not in held and s not in sold],
        held=held,
        sold=sold,
        reservations=reservations,
    )


def snapshot_due(every: int, reservations: int, before: int, after: int) -> bool:
    """Whether an append that took a section from version ``before`` to ``after`` is
    followed by a snapshot.

    Each time the version passes a multiple of ``every``; in a section holding many
    reservations, of a larger multiple of it: at least a quarter as many events as
    reservations pass between two snapshots. A snapshot's cost grows with the section
    (3 ms for 5,000 reservations), so a fixed cadence would make the store's cost per
    reservation grow with the section; this one keeps it bounded, and a load replays a
    tail at most a quarter the size of the snapshot it starts from.
    """
    if every <= 0:
        return False
    gap = every * max(1, reservations // (4 * every))
    return after // gap > before // gap


# -- actions --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class InitializeSection:
    """Create a section of ``capacity`` seats (idempotent for the same definition)."""

    event_id: str
    section: str
    capacity: int
    price_cents: int

    @property
    def key(self) -> SectionKey:
        return SectionKey(self.event_id, self.section)


@dataclass(frozen=True, slots=True)
class ReserveSeats:
    """Hold ``quantity`` seats for a reservation: any free ones, or exactly ``seats``."""

    reservation_id: str
    event_id: str
    section: str
    quantity: int
    seats: tuple[int, ...] = ()

    @property
    def key(self) -> SectionKey:
        return SectionKey(self.event_id, self.section)


@dataclass(frozen=True, slots=True)
class ConfirmReservation:
    """Sell the seats a reservation holds."""

    reservation_id: str
    event_id: str
    section: str

    @property
    def key(self) -> SectionKey:
        return SectionKey(self.event_id, self.section)


@dataclass(frozen=True, slots=True)
class ReleaseReservation:
    """Free the seats a reservation holds, and close the reservation id."""

    reservation_id: str
    event_id: str
    section: str

    @property
    def key(self) -> SectionKey:
        return SectionKey(self.event_id, self.section)


InventoryCommand = InitializeSection | ReserveSeats | ConfirmReservation | ReleaseReservation


@dataclass(frozen=True, slots=True)
class SectionLoaded:
    key: SectionKey
    loaded: Loaded[SectionState]


@dataclass(frozen=True, slots=True)
class SectionLoadFailed:
    key: SectionKey
    reason: str


@dataclass(frozen=True, slots=True)
class EventsAppended:
    key: SectionKey
    version: int


@dataclass(frozen=True, slots=True)
class AppendConflicted:
    key: SectionKey
    detail: str


@dataclass(frozen=True, slots=True)
class AppendFailed:
    key: SectionKey
    reason: str


@dataclass(frozen=True, slots=True)
class CommandApplied:
    """The command took effect: ``events`` were recorded for it (none when it had
    taken effect before: a repeated command is answered, not applied twice).
    ``seats`` are the reservation's seats, for reserve, confirm and release."""

    command: InventoryCommand
    events: tuple[DomainEvent, ...] = ()
    seats: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class CommandRejected:
    """The command was not honoured, for ``reason``. A rejected reserve is also
    recorded as a ``SeatsRejected`` event (except when the store was unavailable)."""

    command: InventoryCommand
    reason: Rejection
    detail: str = ""


InventoryReply = CommandApplied | CommandRejected
InventoryAction = (
    InventoryCommand
    | SectionLoaded
    | SectionLoadFailed
    | EventsAppended
    | AppendConflicted
    | AppendFailed
    | CommandApplied
    | CommandRejected
)


# -- state and environment ------------------------------------------------------------


@dataclass
class InventoryState:
    """The scopes this store has loaded (every other scope is idle)."""

    scopes: dict[SectionKey, Slot[SectionState, InventoryCommand]] = field(default_factory=dict)


CONTENDED_BATCHES = 16
"""Batches after a conflict for which a section keeps a copy of its state from before
each batch (``Slot.base``): a copy costs about a twentieth of decoding the section
from its snapshot (0.3 against 7 ms for 50,000 seats, 6,000 of them taken)."""


@dataclass(frozen=True, slots=True)
class InventorySettings:
    """Args:
    max_scopes: ready scopes kept loaded at most (least recently used go first).
    scope_ttl: seconds after which an unused scope is dropped (and reloaded on use).
    max_attempts: appends of one batch before its reserves are rejected (contention).
        20: with 5, four processes appending to one section lost 5 races in a row
        often enough to turn away 3-14% of the reservations with seats still free.
    max_batch: commands decided together and written in one append.
    snapshot_every: save a snapshot each time the version passes a multiple of this
        (of a larger multiple in a section of many reservations: ``snapshot_due``).
    """

    max_scopes: int = 1024
    scope_ttl: float = 60.0
    max_attempts: int = 20
    max_batch: int = 64
    snapshot_every: int = 100


@dataclass(frozen=True, slots=True)
class InventoryEnvironment:
    """What the inventory reducer and its effects use."""

    repository: Repository[SectionKey, SectionState]
    clock: Clock
    settings: InventorySettings = InventorySettings()


# -- deciding -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Decision:
    events: tuple[DomainEvent, ...]
    reply: InventoryReply


def _applied(
    command: InventoryCommand, *events: DomainEvent, seats: tuple[int, ...] = ()
) -> _Decision:
    return _Decision(events, CommandApplied(command, events, seats))


def _rejected(
    command: InventoryCommand, reason: Rejection, detail: str = "", *, record: bool = False
) -> _Decision:
    events: tuple[DomainEvent, ...] = ()
    if record and isinstance(command, ReserveSeats):
        events = (_seats_rejected(command, reason, detail),)
    return _Decision(events, CommandRejected(command, reason, detail))


def _seats_rejected(command: ReserveSeats, reason: Rejection, detail: str) -> SeatsRejected:
    return SeatsRejected(
        reservation_id=command.reservation_id,
        event_id=command.event_id,
        section=command.section,
        # Clamped to what the codec stores (64-bit): a rejection that cannot be encoded
        # would fail the append of its whole batch, other customers' holds with it.
        # The detail still says what was asked.
        quantity=max(-(2**63), min(command.quantity, 2**63 - 1)),
        reason=reason.value,
        detail=detail,
    )


def decide(state: SectionState, command: InventoryCommand) -> _Decision:
    """What ``command`` does to ``state``: the events to record and the reply."""
    if isinstance(command, ReserveSeats):
        return _decide_reserve(state, command)
    if isinstance(command, ConfirmReservation):
        record = state.reservations.get(command.reservation_id)
        if record is None:
            return _rejected(command, Rejection.UNKNOWN_RESERVATION)
        if record.status == "held":
            confirmed = SeatsConfirmed(
                reservation_id=command.reservation_id,
                event_id=command.event_id,
                section=command.section,
                seats=record.seats,
            )
            return _applied(command, confirmed, seats=record.seats)
        if record.status == "confirmed":
            return _applied(command, seats=record.seats)
        return _rejected(
            command, Rejection.RESERVATION_CLOSED, f"the reservation is {record.status}"
        )
    if isinstance(command, ReleaseReservation):
        record = state.reservations.get(command.reservation_id)
        if record is not None and record.status == "confirmed":
            return _rejected(command, Rejection.ALREADY_CONFIRMED)
        if record is not None and record.status in ("released", "rejected"):
            return _applied(command)
        seats = record.seats if record is not None else ()
        released = SeatsReleased(
            reservation_id=command.reservation_id,
            event_id=command.event_id,
            section=command.section,
            seats=seats,
        )
        return _applied(command, released, seats=seats)
    # InitializeSection
    if state.initialized:
        if (state.capacity, state.price_cents) == (command.capacity, command.price_cents):
            return _applied(command)
        return _rejected(
            command,
            Rejection.ALREADY_INITIALIZED,
            f"capacity {state.capacity}, price {state.price_cents} cents",
        )
    # The facade's bounds, checked again here: a section allocates a list entry per seat
    # (a capacity of 10**12 would take the store down with a MemoryError), and every
    # amount derived from the price must still fit the codec's 64-bit integers.
    if not (1 <= command.capacity <= MAX_CAPACITY and 0 <= command.price_cents <= MAX_PRICE_CENTS):
        detail = f"capacity within 1..{MAX_CAPACITY} and price within 0..{MAX_PRICE_CENTS}"
        return _rejected(command, Rejection.INVALID_QUANTITY, detail)
    event = SectionInitialized(
        event_id=command.event_id,
        section=command.section,
        capacity=command.capacity,
        price_cents=command.price_cents,
    )
    return _applied(command, event)


def _decide_reserve(state: SectionState, command: ReserveSeats) -> _Decision:
    record = state.reservations.get(command.reservation_id)
    if record is not None:
        if record.status in ("held", "confirmed"):
            return _applied(command, seats=record.seats)
        reason = Rejection(record.reason) if record.reason else Rejection.RESERVATION_CLOSED
        return _rejected(command, reason, f"the reservation is {record.status}")
    if not state.initialized:
        return _rejected(command, Rejection.UNKNOWN_SECTION, record=True)
    quantity = command.quantity
    if quantity < 1 or quantity > state.capacity:
        detail = f"{quantity} seats asked, the section has {state.capacity}"
        return _rejected(command, Rejection.INVALID_QUANTITY, detail, record=True)
    if command.seats:
        wanted = command.seats
        if len(set(wanted)) != len(wanted) or len(wanted) != quantity:
            detail = f"{len(wanted)} seats named for a quantity of {quantity}"
            return _rejected(command, Rejection.INVALID_QUANTITY, detail, record=True)
        outside = [seat for seat in wanted if not 1 <= seat <= state.capacity]
        if outside:
            detail = f"seats {outside} are not in 1..{state.capacity}"
            return _rejected(command, Rejection.INVALID_SEAT, detail, record=True)
        taken = [seat for seat in wanted if seat in state.held or seat in state.sold]
        if taken:
            return _rejected(command, Rejection.SEAT_TAKEN, f"seats {taken}", record=True)
        seats = tuple(sorted(wanted))
    else:
        if len(state.free) < quantity:
            detail = f"{quantity} seats asked, {len(state.free)} available"
            return _rejected(command, Rejection.SOLD_OUT, detail, record=True)
        seats = tuple(state.free[: -quantity - 1 : -1])
    event = SeatsReserved(
        reservation_id=command.reservation_id,
        event_id=command.event_id,
        section=command.section,
        seats=seats,
        amount_cents=quantity * state.price_cents,
    )
    return _applied(command, event, seats=seats)


# -- the reducer ----------------------------------------------------------------------

Effects = list[Effect[InventoryAction]]


def reduce_inventory(
    state: InventoryState, action: InventoryAction, env: InventoryEnvironment
) -> Sequence[Effect[InventoryAction]]:
    """The inventory store's reducer (see the module docstring)."""
    if isinstance(
        action, InitializeSection | ReserveSeats | ConfirmReservation | ReleaseReservation
    ):
        return _submit(state, action, env)
    if isinstance(action, SectionLoaded):
        return _loaded(state, action, env)
    if isinstance(action, EventsAppended):
        return _appended(state, action, env)
    if isinstance(action, AppendConflicted):
        return _conflicted(state, action, env)
    if isinstance(action, AppendFailed):
        return _append_failed(state, action, env)
    if isinstance(action, SectionLoadFailed):
        return _load_failed(state, action)
    return []  # replies: reduced only so that waiters see them


def _submit(state: InventoryState, command: InventoryCommand, env: InventoryEnvironment) -> Effects:
    settings = env.settings
    now = env.clock.now()
    scopes = state.scopes
    key = command.key
    slot = scopes.get(key)
    if slot is not None and slot.idle and now - slot.used_at >= settings.scope_ttl:
        del scopes[key]  # loaded too long ago: reload rather than trust a stale state
        slot = None
    if slot is None:
        scopes[key] = Slot(waiting=_deque(command), used_at=now)
        effects: Effects = [_load(key, env)]
    else:
        touch(scopes, key, slot, now)
        slot.waiting.append(command)
        effects = _drain(key, slot, env) if slot.phase == "ready" and not slot.writing else []
    # After the command is in: the slot it uses is the most recent and busy, never evicted.
    evict(scopes, now, limit=settings.max_scopes, ttl=settings.scope_ttl)
    return effects


def _deque(command: InventoryCommand) -> deque[InventoryCommand]:
    return deque((command,))


def _load(
    key: SectionKey, env: InventoryEnvironment, since: Loaded[SectionState] | None = None
) -> Effect[InventoryAction]:
    return load_effect(env.repository, key, SectionLoaded, SectionLoadFailed, since=since)


def _drain(
    key: SectionKey,
    slot: Slot[SectionState, InventoryCommand],
    env: InventoryEnvironment,
    *,
    just_loaded: bool = False,
) -> Effects:
    """Decide waiting commands in batches until one needs an append (or none wait).

    A confirm of a reservation this section has never seen may come from a hold that
    another process recorded after this section was loaded: unless the state was
    just loaded, the section is reloaded before such a confirm is refused.
    """
    assert slot.state is not None
    effects: Effects = []
    max_batch = env.settings.max_batch
    while slot.waiting:
        base: SectionState | None = None
        batch: list[InventoryCommand] = []
        replies: list[InventoryReply] = []
        events: list[DomainEvent] = []
        while slot.waiting and len(batch) < max_batch:
            command = slot.waiting[0]
            if (
                not just_loaded
                and isinstance(command, ConfirmReservation)
                and command.reservation_id not in slot.state.reservations
            ):
                if batch:
                    break  # decided after this batch's append, or after a reload
                # No batch is in flight or decided: the state is the stream's as of
                # slot.version, so reading what came after is enough.
                since = Loaded(slot.version, slot.state)
                slot.phase = "loading"
                slot.state = None
                return [*effects, _load(key, env, since)]
            slot.waiting.popleft()
            decision = decide(slot.state, command)
            if decision.events and slot.contended and base is None:
                base = copy_section(slot.state)  # before the batch's first event
            for event in decision.events:
                evolve_section(slot.state, event)
            batch.append(command)
            replies.append(decision.reply)
            events.extend(decision.events)
        if events:
            # The state now includes the batch: it is only trusted once the append lands.
            slot.writing = tuple(batch)
            slot.replies = tuple(replies)
            slot.base = base
            effects.append(
                append_effect(
                    env.repository,
                    key,
                    tuple(events),
                    slot.version,
                    EventsAppended,
                    AppendConflicted,
                    AppendFailed,
                )
            )
            break
        effects.extend(Effect.send(reply) for reply in replies)
    return effects


def _loaded(state: InventoryState, action: SectionLoaded, env: InventoryEnvironment) -> Effects:
    slot = state.scopes.get(action.key)
    if slot is None or slot.phase != "loading":
        return []  # a load for a slot evicted or reloaded meanwhile
    slot.phase = "ready"
    slot.state = action.loaded.state
    slot.version = action.loaded.version
    return _drain(action.key, slot, env, just_loaded=True)


def _load_failed(state: InventoryState, action: SectionLoadFailed) -> Effects:
    slot = state.scopes.get(action.key)
    if slot is None or slot.phase != "loading":
        return []
    # Back to idle: the next command tries again.
    del state.scopes[action.key]
    return [
        Effect.send(CommandRejected(command, Rejection.UNAVAILABLE, action.reason))
        for command in (*slot.writing, *slot.waiting)
    ]


def _appended(state: InventoryState, action: EventsAppended, env: InventoryEnvironment) -> Effects:
    slot = state.scopes.get(action.key)
    if slot is None or not slot.writing:
        return []
    assert slot.state is not None
    effects: Effects = [Effect.send(reply) for reply in slot.replies]
    every = env.settings.snapshot_every
    if snapshot_due(every, len(slot.state.reservations), slot.version, action.version):
        effects.append(_save_snapshot(env, action.key, action.version, encode_section(slot.state)))
    slot.version = action.version
    slot.writing = ()
    slot.replies = ()
    slot.attempts = 0
    slot.base = None
    if slot.contended:
        slot.contended -= 1
    effects.extend(_drain(action.key, slot, env))
    return effects


def _conflicted(
    state: InventoryState, action: AppendConflicted, env: InventoryEnvironment
) -> Effects:
    slot = state.scopes.get(action.key)
    if slot is None or not slot.writing:
        return []
    slot.attempts += 1
    # Another writer is active: from now on keep the state before each batch, so that
    # the next conflict reads only what the others wrote, not the whole section.
    since = None if slot.base is None else Loaded(slot.version, slot.base)
    slot.base = None
    slot.contended = CONTENDED_BATCHES
    effects: Effects = []
    if slot.attempts >= env.settings.max_attempts:
        detail = f"{slot.attempts} conflicting appends in a row ({action.detail})"
        # Confirms and releases cannot fail for business reasons, and their rejection
        # does not reach the saga: it would re-send them only on its retry timer (5 s
        # by default: the racing test's latency tail). They go round again; reserves
        # and initializations are given up (the customer may try again).
        again = [c for c in slot.writing if isinstance(c, ConfirmReservation | ReleaseReservation)]
        given_up = [c for c in slot.writing if c not in again]
        log.warning(
            "inventory %s: giving up %d of a batch of %d: %s",
            action.key,
            len(given_up),
            len(slot.writing),
            detail,
        )
        effects.extend(
            Effect.send(CommandRejected(command, Rejection.CONTENTION, detail))
            for command in given_up
        )
        rejections = tuple(
            _seats_rejected(command, Rejection.CONTENTION, detail)
            for command in given_up
            if isinstance(command, ReserveSeats)
        )
        if rejections:
            effects.append(_record_anyway(env, action.key, rejections))
        slot.waiting.extendleft(reversed(again))
        slot.attempts = 0
    else:
        slot.waiting.extendleft(reversed(slot.writing))
    slot.writing = ()
    slot.replies = ()
    slot.phase = "loading"
    slot.state = None
    if slot.waiting:
        effects.append(_load(action.key, env, since))
    else:
        del state.scopes[action.key]
    return effects


def _append_failed(
    state: InventoryState, action: AppendFailed, env: InventoryEnvironment
) -> Effects:
    slot = state.scopes.get(action.key)
    if slot is None or not slot.writing:
        return []
    effects: Effects = [
        Effect.send(CommandRejected(command, Rejection.UNAVAILABLE, action.reason))
        for command in slot.writing
    ]
    # The state holds the batch's events, which may or may not be stored: reload.
    slot.writing = ()
    slot.replies = ()
    slot.attempts = 0
    slot.base = None
    slot.phase = "loading"
    slot.state = None
    if slot.waiting:
        effects.append(_load(action.key, env))
    else:
        del state.scopes[action.key]
    return effects


def _save_snapshot(
    env: InventoryEnvironment, key: SectionKey, version: int, data: bytes
) -> Effect[InventoryAction]:
    repository = env.repository

    def save() -> None:
        try:
            repository.save_snapshot(key, version, data)
        except Exception as error:  # a snapshot is only a shortcut for later loads
            log.warning("snapshot of %s at %d not saved: %s", key, version, describe(error))

    return Effect.future(save, name=f"snapshot {key!r}@{version}")


def _record_anyway(
    env: InventoryEnvironment, key: SectionKey, events: tuple[DomainEvent, ...]
) -> Effect[InventoryAction]:
    """Record rejections whatever the version: they change no seat, and the saga must
    hear of them (through the bus) rather than wait for its timeout."""
    repository = env.repository

    def record() -> None:
        try:
            repository.append(key, events, ANY)
        except Exception as error:  # the saga's step timeout covers a lost rejection
            log.warning("rejections for %s not recorded: %s", key, describe(error))

    return Effect.future(record, name=f"record rejections {key!r}")
