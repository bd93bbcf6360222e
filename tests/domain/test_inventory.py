"""The inventory store's reducer, step by step (TestStore, fake repository)."""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import replace

import pytest

from actors import ManualClock
from actors.testing import TestStore
from domain._events import (
    DomainEvent,
    SeatsConfirmed,
    SeatsRejected,
    SeatsReleased,
    SeatsReserved,
    SectionInitialized,
)
from domain._inventory import (
    AppendConflicted,
    AppendFailed,
    CommandApplied,
    CommandRejected,
    ConfirmReservation,
    EventsAppended,
    InitializeSection,
    InventoryEnvironment,
    InventorySettings,
    InventoryState,
    Rejection,
    ReleaseReservation,
    ReservationRecord,
    ReserveSeats,
    SectionKey,
    SectionLoaded,
    SectionLoadFailed,
    SectionState,
    decode_section,
    encode_section,
    evolve_section,
    reduce_inventory,
    snapshot_due,
)
from domain._repository import Loaded
from domain._slots import Slot
from persistence import EventStoreUnavailable, ExpectedVersion
from tests.domain.fakes import StreamRepository

A = SectionKey("gig", "A")
B = SectionKey("gig", "B")


def section(capacity: int = 10, price: int = 500, key: SectionKey = A) -> SectionInitialized:
    return SectionInitialized(
        event_id=key.event_id, section=key.section, capacity=capacity, price_cents=price
    )


def reserved(rid: str, *seats: int, price: int = 500, key: SectionKey = A) -> SeatsReserved:
    return SeatsReserved(
        reservation_id=rid,
        event_id=key.event_id,
        section=key.section,
        seats=seats,
        amount_cents=price * len(seats),
    )


def reserve(
    rid: str, quantity: int, key: SectionKey = A, seats: tuple[int, ...] = ()
) -> ReserveSeats:
    return ReserveSeats(rid, key.event_id, key.section, quantity, seats)


def fold(*events: object, key: SectionKey = A) -> SectionState:
    state = SectionState()
    for event in events:
        evolve_section(state, event)  # type: ignore[arg-type]
    return state


def make_store(
    repository: StreamRepository[SectionKey, SectionState] | None = None, **settings: object
) -> tuple[
    TestStore[InventoryState, object, InventoryEnvironment],
    StreamRepository[SectionKey, SectionState],
]:
    repo = repository or StreamRepository(lambda key: SectionState(), evolve_section)
    env = InventoryEnvironment(
        repository=repo,
        clock=ManualClock(),
        settings=InventorySettings(**{"snapshot_every": 0, **settings}),  # type: ignore[arg-type]
    )
    return TestStore(reduce_inventory, InventoryState(), env), repo


def with_section(
    *events: object, key: SectionKey = A
) -> StreamRepository[SectionKey, SectionState]:
    repo: StreamRepository[SectionKey, SectionState] = StreamRepository(
        lambda key: SectionState(), evolve_section
    )
    repo.write(key, *events)  # type: ignore[arg-type]
    return repo


def test_a_reserve_for_a_section_not_loaded_loads_it_then_holds_the_lowest_free_seats() -> None:
    store, repo = make_store(with_section(section(), reserved("r0", 1)))
    command = reserve("r1", 2)
    with store:
        store.send(
            command,
            lambda s: s.scopes.__setitem__(A, Slot(waiting=deque([command]))),
        )
        loaded = fold(section(), reserved("r0", 1))
        after = fold(section(), reserved("r0", 1), reserved("r1", 2, 3))
        store.receive(
            SectionLoaded(A, Loaded(2, loaded)),
            lambda s: s.scopes.__setitem__(
                A,
                Slot(
                    phase="ready",
                    state=after,
                    version=2,
                    writing=(command,),
                    replies=(CommandApplied(command, (reserved("r1", 2, 3),), (2, 3)),),
                ),
            ),
        )
        store.receive(
            EventsAppended(A, 3),
            lambda s: s.scopes.__setitem__(A, Slot(phase="ready", state=after, version=3)),
        )
        store.receive(CommandApplied(command, (reserved("r1", 2, 3),), (2, 3)))
    assert repo.events(A)[-1] == reserved("r1", 2, 3)
    assert repo.appends[-1][2] == 2  # the loaded version is the expected one


def test_commands_arriving_while_a_section_loads_wait_and_run_in_arrival_order() -> None:
    store, repo = make_store(
        with_section(section(capacity=3)),
    )
    first, second, third = reserve("r1", 2), reserve("r2", 2), reserve("r3", 1)
    store.exhaustive = False
    store.send(first)
    # The load is in flight (its result not yet received): later commands wait.
    store.send(second)
    store.send(third)
    assert list(store.state.scopes[A].waiting) == [first, second, third]
    assert repo.loads == [A]  # one load for the three
    store.receive(SectionLoaded)
    store.receive(EventsAppended)
    replies = [
        store.receive(lambda a: isinstance(a, CommandApplied | CommandRejected)) for _ in range(3)
    ]
    assert replies == [
        CommandApplied(first, (reserved("r1", 1, 2),), (1, 2)),
        CommandRejected(second, Rejection.SOLD_OUT, "2 seats asked, 1 available"),
        CommandApplied(third, (reserved("r3", 3),), (3,)),
    ]
    # One append for the batch, rejection recorded beside the reservations.
    assert len(repo.appends) == 1
    assert repo.events(A)[1:] == [
        reserved("r1", 1, 2),
        SeatsRejected(
            reservation_id="r2",
            event_id="gig",
            section="A",
            quantity=2,
            reason="sold_out",
            detail="2 seats asked, 1 available",
        ),
        reserved("r3", 3),
    ]


def test_a_section_that_loads_does_not_hold_up_another_section() -> None:
    repo = with_section(section())
    repo.write(B, section(key=B))
    store, _ = make_store(repo)
    store.exhaustive = False
    store.send(reserve("a1", 1))
    store.send(reserve("b1", 1, key=B))
    assert store.state.scopes[A].phase == "loading"
    assert store.state.scopes[B].phase == "loading"
    # B's load lands first; B's reserve runs while A is still loading.
    b_loaded = store._received[1]
    store._received.rotate(-1)  # the TestStore receives in feed order: put B first
    assert isinstance(b_loaded[1], SectionLoaded)
    store.receive(lambda a: isinstance(a, SectionLoaded) and a.key == B)
    assert store.state.scopes[A].phase == "loading"
    assert store.state.scopes[B].writing == (reserve("b1", 1, key=B),)
    store.skip_received_actions()
    assert repo.events(B)[-1] == reserved("b1", 1, key=B)
    assert repo.events(A)[-1] == reserved("a1", 1)


def test_a_conflicting_append_reloads_the_section_and_decides_again() -> None:
    store, repo = make_store(with_section(section(capacity=4)))
    command = reserve("r1", 2)
    store.exhaustive = False
    store.send(command)
    # Another process takes seats 1 and 2 after our load, before our append.
    repo_load = store._received[0][1]
    assert isinstance(repo_load, SectionLoaded)
    repo.write(A, reserved("other", 1, 2))
    store.receive(SectionLoaded)
    store.receive(AppendConflicted)
    slot = store.state.scopes[A]
    assert (slot.phase, slot.state, list(slot.waiting), slot.attempts) == (
        "loading",
        None,
        [command],
        1,
    )
    store.receive(SectionLoaded)
    store.receive(EventsAppended(A, 3))
    store.receive(CommandApplied(command, (reserved("r1", 3, 4),), (3, 4)))
    store.finish()
    assert repo.events(A)[-1] == reserved("r1", 3, 4)


def test_once_contended_a_section_catches_up_from_before_its_batch_instead_of_loading_again() -> (
    None
):
    store, repo = make_store(with_section(section(capacity=100)))
    first, second = reserve("r1", 2), reserve("r2", 1)
    store.exhaustive = False
    store.send(first)
    repo.write(A, reserved("other1", 1, 2))  # another process, after our load
    store.receive(SectionLoaded)
    store.receive(AppendConflicted)
    store.receive(SectionLoaded)  # the first conflict: a whole load, as before
    assert (len(repo.loads), repo.catch_ups) == (2, [])
    store.receive(EventsAppended(A, 3))
    store.receive(CommandApplied(first, (reserved("r1", 3, 4),), (3, 4)))
    # Contended now: the next batch keeps the state from before it, so its conflict
    # reads only the other process's event, not the whole section.
    repo.write(A, reserved("other2", 5))
    store.send(second)
    store.receive(AppendConflicted)
    store.receive(SectionLoaded)
    assert (len(repo.loads), repo.catch_ups) == (2, [(A, 3)])
    store.receive(EventsAppended(A, 5))
    store.receive(CommandApplied(second, (reserved("r2", 6),), (6,)))
    store.finish()
    # What the store holds is what a whole load of the stream gives.
    slot = store.state.scopes[A]
    assert (slot.version, slot.state) == (5, repo.load(A).state)
    assert slot.base is None  # dropped once the batch landed


def test_a_batch_that_keeps_conflicting_is_rejected_for_contention_and_the_rejection_recorded() -> (
    None
):
    store, repo = make_store(with_section(section(capacity=100)), max_attempts=2)
    command = reserve("r1", 1)
    store.exhaustive = False
    store.send(command)
    for n in range(2):
        repo.write(A, reserved(f"other{n}", 50 + n))  # someone always writes first
        store.receive(SectionLoaded)
        store.receive(AppendConflicted)
    rejected = store.receive(CommandRejected)
    assert rejected.reason is Rejection.CONTENTION
    assert A not in store.state.scopes  # nothing waits: the scope is idle again
    last = repo.events(A)[-1]
    assert isinstance(last, SeatsRejected)
    assert last.reason == "contention"
    assert repo.appends[-1][2] == "any"


def test_a_confirm_that_keeps_conflicting_goes_round_again_instead_of_being_rejected() -> None:
    # A rejected confirm never reaches the saga, which would re-send it only after its
    # retry interval: the racing test's 5 s latency tail.
    store, repo = make_store(with_section(section(capacity=100), reserved("r1", 1)), max_attempts=2)
    confirm = ConfirmReservation("r1", "gig", "A")
    store.exhaustive = False
    store.send(confirm)
    for n in range(2):
        repo.write(A, reserved(f"other{n}", 50 + n))  # someone writes first, twice
        store.receive(SectionLoaded)
        store.receive(AppendConflicted)
    reply = store.receive(
        lambda a: isinstance(a, CommandApplied | CommandRejected) and a.command == confirm
    )
    assert isinstance(reply, CommandApplied)
    assert isinstance(repo.events(A)[-1], SeatsConfirmed)
    assert not any(isinstance(e, SeatsRejected) for e in repo.events(A))


def test_a_confirm_of_a_hold_written_elsewhere_reads_only_the_events_after_the_state() -> None:
    store, repo = make_store(with_section(section(capacity=10)))
    store.exhaustive = False
    store.send(reserve("r1", 1))
    store.receive(SectionLoaded)
    store.receive(EventsAppended(A, 2))
    store.receive(CommandApplied)
    repo.write(A, reserved("r9", 5))  # held by another process's store
    confirm = ConfirmReservation("r9", "gig", "A")
    store.send(confirm)
    store.receive(SectionLoaded)
    assert (len(repo.loads), repo.catch_ups) == (1, [(A, 2)])
    store.receive(EventsAppended(A, 4))
    reply = store.receive(CommandApplied)
    assert reply.command == confirm
    assert reply.seats == (5,)
    store.finish()


def test_a_failed_load_rejects_the_waiting_commands_and_leaves_the_section_idle() -> None:
    store, repo = make_store(with_section(section()))
    repo.fail_loads = 1
    first, second = reserve("r1", 1), reserve("r2", 1)
    with store:
        store.send(first, lambda s: s.scopes.__setitem__(A, Slot(waiting=deque([first]))))
        # The TestStore ran the load already and holds its result back: the load is
        # "in flight" until it is received. Sending meanwhile needs a non-exhaustive step.
        store.exhaustive = False
        store.send(second, lambda s: s.scopes[A].waiting.append(second))
        store.exhaustive = True
        reason = "EventStoreUnavailable: the test took the backend away"
        store.receive(SectionLoadFailed(A, reason), lambda s: s.scopes.clear())
        store.receive(CommandRejected(first, Rejection.UNAVAILABLE, reason))
        store.receive(CommandRejected(second, Rejection.UNAVAILABLE, reason))
        # The backend is back: the next command loads again and runs.
        store.exhaustive = False
        store.send(reserve("r3", 1))
        store.receive(SectionLoaded)
        store.receive(EventsAppended)
        store.receive(CommandApplied(reserve("r3", 1), (reserved("r3", 1),), (1,)))
    assert repo.loads == [A, A]


def test_an_append_that_fails_rejects_its_batch_and_the_next_command_reloads() -> None:
    store, repo = make_store(with_section(section()))
    repo.fail_appends = 1
    store.exhaustive = False
    store.send(reserve("r1", 1))
    store.receive(SectionLoaded)
    failed = store.receive(AppendFailed)
    assert A not in store.state.scopes  # the optimistic state is not trusted
    store.receive(CommandRejected(reserve("r1", 1), Rejection.UNAVAILABLE, failed.reason))
    store.send(reserve("r1", 1))
    store.receive(SectionLoaded)
    store.receive(EventsAppended)
    store.receive(CommandApplied(reserve("r1", 1), (reserved("r1", 1),), (1,)))
    assert len(repo.loads) == 2


class RaisingRepository(StreamRepository[SectionKey, SectionState]):
    """Breaks the port's contract: its ``append_async`` raises instead of failing its future."""

    def append_async(
        self, key: SectionKey, events: Sequence[DomainEvent], expected_version: ExpectedVersion
    ) -> Future[int]:
        raise EventStoreUnavailable("raised by append_async itself")


def test_an_append_that_raises_when_asked_is_a_failed_append_not_a_failed_effect() -> None:
    repo = RaisingRepository(lambda key: SectionState(), evolve_section)
    repo.write(A, section())
    store, _ = make_store(repo)
    store.exhaustive = False
    store.send(reserve("r1", 1))
    store.receive(SectionLoaded)
    failed = store.receive(AppendFailed)
    assert "raised by append_async itself" in failed.reason
    store.receive(CommandRejected(reserve("r1", 1), Rejection.UNAVAILABLE, failed.reason))


def test_idle_sections_past_the_limit_are_evicted_least_recently_used_first() -> None:
    keys = [SectionKey("gig", name) for name in "ABC"]
    repo: StreamRepository[SectionKey, SectionState] = StreamRepository(
        lambda key: SectionState(), evolve_section
    )
    for key in keys:
        repo.write(key, section(key=key))
    store, _ = make_store(repo, max_scopes=2)
    store.exhaustive = False
    for n, key in enumerate(keys):
        store.send(reserve(f"r{n}", 1, key=key))
        store.skip_received_actions()
    # A was the least recently used when C came: evicted; B and C stay loaded.
    assert list(store.state.scopes) == keys[1:]
    store.send(reserve("again", 1, key=keys[1]))
    store.skip_received_actions()
    store.send(reserve("back", 1, key=keys[0]))
    store.skip_received_actions()
    assert list(store.state.scopes) == [keys[1], keys[0]]
    assert repo.loads.count(keys[0]) == 2


def test_a_section_unused_past_its_ttl_is_dropped_and_reloaded_on_use() -> None:
    store, repo = make_store(with_section(section()), scope_ttl=30.0)
    store.exhaustive = False
    store.send(reserve("r1", 1))
    store.skip_received_actions()
    store.advance(10)
    store.send(reserve("r2", 1))
    store.skip_received_actions()
    assert repo.loads == [A]
    store.advance(31)
    repo.write(A, reserved("elsewhere", 3))  # written meanwhile by another process
    store.send(reserve("r3", 1))
    store.skip_received_actions()
    assert repo.loads == [A, A]
    assert repo.events(A)[-1] == reserved("r3", 4)  # decided on the fresh state


def test_a_ttl_evicts_idle_sections_of_other_scopes_too() -> None:
    repo = with_section(section())
    repo.write(B, section(key=B))
    store, _ = make_store(repo, scope_ttl=5.0)
    store.exhaustive = False
    store.send(reserve("a", 1))
    store.skip_received_actions()
    store.advance(6)
    store.send(reserve("b", 1, key=B))
    store.skip_received_actions()
    assert list(store.state.scopes) == [B]


def test_sold_out_is_a_recorded_rejection_not_an_exception() -> None:
    store, repo = make_store(with_section(section(capacity=2), reserved("r0", 1, 2)))
    store.exhaustive = False
    store.send(reserve("r1", 1))
    store.skip_received_actions()
    assert repo.events(A)[-1] == SeatsRejected(
        reservation_id="r1",
        event_id="gig",
        section="A",
        quantity=1,
        reason="sold_out",
        detail="1 seats asked, 0 available",
    )


def test_a_repeated_reserve_answers_with_the_seats_held_and_writes_nothing() -> None:
    store, repo = make_store(with_section(section(), reserved("r1", 1, 2)))
    with store:
        store.exhaustive = False
        store.send(reserve("r1", 2))
        store.receive(SectionLoaded)
        store.receive(CommandApplied(reserve("r1", 2), (), (1, 2)))
    assert repo.appends == []


@pytest.mark.parametrize(
    ("command", "reason"),
    [
        (reserve("r1", 1, seats=(2,)), Rejection.SEAT_TAKEN),
        (reserve("r1", 1, seats=(11,)), Rejection.INVALID_SEAT),
        (reserve("r1", 2, seats=(3,)), Rejection.INVALID_QUANTITY),
        (reserve("r1", 0), Rejection.INVALID_QUANTITY),
        (reserve("r1", 11), Rejection.INVALID_QUANTITY),
        (reserve("r1", 1, key=B), Rejection.UNKNOWN_SECTION),
    ],
)
def test_a_reserve_that_cannot_be_honoured_gets_a_typed_rejection(
    command: ReserveSeats, reason: Rejection
) -> None:
    store, repo = make_store(with_section(section(), reserved("r0", 2)))
    store.exhaustive = False
    store.send(command)
    store.receive(SectionLoaded)
    store.receive(EventsAppended)
    rejected = store.receive(CommandRejected)
    assert rejected.reason is reason
    recorded = repo.events(command.key)[-1]
    assert isinstance(recorded, SeatsRejected)
    assert recorded.reason == reason.value


def test_specific_free_seats_are_held_as_asked() -> None:
    store, repo = make_store(with_section(section()))
    store.exhaustive = False
    store.send(reserve("r1", 2, seats=(7, 5)))
    store.skip_received_actions()
    assert repo.events(A)[-1] == reserved("r1", 5, 7)


def test_confirm_sells_the_held_seats_and_a_repeat_changes_nothing() -> None:
    store, repo = make_store(with_section(section(), reserved("r1", 1, 2)))
    confirm = ConfirmReservation("r1", "gig", "A")
    store.exhaustive = False
    store.send(confirm)
    store.skip_received_actions()
    store.send(confirm)
    applied = store.receive(CommandApplied)
    assert applied == CommandApplied(confirm, (), (1, 2))
    state = store.state.scopes[A].state
    assert state is not None
    assert state.sold == {1: "r1", 2: "r1"}
    assert state.held == {}
    assert len(repo.appends) == 1


def test_release_frees_the_seats_and_a_late_reserve_for_that_reservation_is_refused() -> None:
    store, repo = make_store(with_section(section(capacity=2), reserved("r1", 1, 2)))
    store.exhaustive = False
    store.send(ReleaseReservation("r1", "gig", "A"))
    store.skip_received_actions()
    assert repo.events(A)[-1] == SeatsReleased(
        reservation_id="r1", event_id="gig", section="A", seats=(1, 2)
    )
    store.send(reserve("r1", 2))
    rejected = store.receive(CommandRejected)
    assert rejected.reason is Rejection.RESERVATION_CLOSED
    state = store.state.scopes[A].state
    assert state is not None
    assert sorted(state.free) == [1, 2]


def test_releasing_a_reservation_never_seen_closes_it_so_a_late_reserve_holds_nothing() -> None:
    store, repo = make_store(with_section(section()))
    store.exhaustive = False
    store.send(ReleaseReservation("r1", "gig", "A"))
    store.send(reserve("r1", 1))
    store.skip_received_actions()
    assert repo.events(A)[1:] == [
        SeatsReleased(reservation_id="r1", event_id="gig", section="A", seats=())
    ]
    state = store.state.scopes[A].state
    assert state is not None
    assert state.reservations["r1"] == ReservationRecord("released")


def test_initializing_a_section_is_idempotent_and_refuses_another_definition() -> None:
    store, repo = make_store()
    init = InitializeSection("gig", "A", 10, 500)
    store.exhaustive = False
    store.send(init)
    store.skip_received_actions()
    store.send(init)
    assert store.receive(CommandApplied) == CommandApplied(init)
    other = replace(init, capacity=20)
    store.send(other)
    assert store.receive(CommandRejected).reason is Rejection.ALREADY_INITIALIZED
    assert repo.events(A) == [section()]


def test_a_snapshot_is_saved_when_the_version_passes_a_multiple_and_decodes_to_the_same_state() -> (
    None
):
    store, repo = make_store(with_section(section()), snapshot_every=2)
    store.exhaustive = False
    store.send(reserve("r1", 1))
    store.skip_received_actions()
    version, data = repo.snapshots[A]
    assert version == 2
    assert decode_section(data) == fold(section(), reserved("r1", 1))
    store.send(reserve("r2", 1))
    store.skip_received_actions()
    assert repo.snapshots[A][0] == 2  # version 3: no multiple of 2 passed
    store.send(ReleaseReservation("r1", "gig", "A"))
    store.skip_received_actions()
    version, data = repo.snapshots[A]
    assert version == 4
    everything = repo.load(A).state
    assert decode_section(data) == everything
    assert decode_section(encode_section(everything)) == everything


def test_snapshots_of_a_section_of_many_reservations_come_at_most_every_quarter_of_their_number(
) -> None:
    # Every 100 events while the section is small; then the gap grows with the
    # section, so that encoding snapshots costs a bounded amount per event.
    assert [v for v in range(1, 1_001) if snapshot_due(100, 50, v - 1, v)] == list(
        range(100, 1_001, 100)
    )
    assert [v for v in range(1, 20_001) if snapshot_due(100, 4_000, v - 1, v)] == list(
        range(1_000, 20_001, 1_000)
    )
    assert snapshot_due(100, 4_000, 990, 1_010)  # one append passing several versions
    assert not snapshot_due(0, 10, 0, 1_000)  # snapshot_every=0: never


def test_a_snapshot_written_as_json_by_an_earlier_version_still_decodes() -> None:
    held = ReservationRecord("held", (1, 2))
    state = SectionState(
        initialized=True,
        capacity=4,
        price_cents=500,
        free=[3],
        held={1: "r1", 2: "r1"},
        sold={4: "r2"},
        reservations={"r1": held, "r2": ReservationRecord("confirmed", (4,)),
                      "r3": ReservationRecord("rejected", (), "sold_out")},
    )
    earlier = (
        b'{"i":true,"c":4,"p":500,"h":{"1":"r1","2":"r1"},"s":{"4":"r2"},'
        b'"r":{"r1":["held",[1,2],""],"r2":["confirmed",[4],""],"r3":["rejected",[],"sold_out"]}}'
    )
    assert decode_section(earlier) == state
    assert decode_section(encode_section(state)) == state
