"""Found by the racing-clients test: a confirm decided on a stale section was refused."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from actors import Store, StoreRef, SystemClock
from domain._events import inventory_stream, make_codec
from domain._inventory import (
    CommandApplied,
    CommandRejected,
    ConfirmReservation,
    InitializeSection,
    InventoryAction,
    InventoryCommand,
    InventoryEnvironment,
    InventorySettings,
    InventoryState,
    ReserveSeats,
    SectionKey,
    SectionState,
    decode_section,
    evolve_section,
    reduce_inventory,
)
from domain._repository import EventSourcedRepository
from persistence import Persistence

pytestmark = [pytest.mark.slow]

Inventory = StoreRef[InventoryState, InventoryAction]


@pytest.fixture
def two_inventories() -> Iterator[tuple[Inventory, Inventory]]:
    """Two inventory stores on one backend, as two processes sharing a Redis run them."""
    persistence = Persistence.in_memory(make_codec())
    stores = []
    for name in ("one", "two"):
        sections: EventSourcedRepository[SectionKey, SectionState] = EventSourcedRepository(
            persistence.events,
            stream_of=lambda key: inventory_stream(key.event_id, key.section),
            initial=lambda key: SectionState(),
            evolve=evolve_section,
            snapshots=persistence.snapshots,
            decode_snapshot=decode_section,
        )
        environment = InventoryEnvironment(sections, SystemClock(), InventorySettings())
        stores.append(
            Store.start(reduce_inventory, InventoryState, environment, name=f"inventory@{name}")
        )
    yield stores[0], stores[1]
    for store in stores:
        store.stop(5)
    persistence.close()


def ask(store: Inventory, command: InventoryCommand) -> InventoryAction:
    def answers(action: InventoryAction) -> bool:
        return isinstance(action, CommandApplied | CommandRejected) and action.command == command

    return store.send_and_wait_for(command, answers, timeout=10)


def test_a_confirm_for_seats_another_store_held_confirms_them(
    two_inventories: tuple[Inventory, Inventory],
) -> None:
    """Figure: 2 inventory stores on one backend; store one caches the section, store
    two holds 2 seats for r1, store one is asked to confirm r1: 1 command."""
    one, two = two_inventories
    assert isinstance(ask(one, InitializeSection("gig", "A", 10, 500)), CommandApplied)
    assert isinstance(ask(two, ReserveSeats("r1", "gig", "A", 2)), CommandApplied)
    reply = ask(one, ConfirmReservation("r1", "gig", "A"))
    assert isinstance(reply, CommandApplied), reply
