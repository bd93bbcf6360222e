"""The projector's batch half (``begin``, used by the subscription loop): a batch's
updates go to the generation current when its first one is finished, looked up once.
And the type filters of the domain's subscriptions."""

from __future__ import annotations

from collections.abc import Sequence

from domain._events import INVENTORY_EVENTS, SAGA_EVENTS, make_codec
from domain._projections import Projector, availability_key
from domain._saga import CHILD_EVENTS
from domain._system import _SAGA_BUS_TYPES
from persistence import EventStoreUnavailable, Persistence, ProjectionStore, ProjectionUpdate
from persistence._memory import MemoryProjectionStore
from tests.domain.test_projections import section_stream

KEY = availability_key("gig", "A")


class CountingGenerations(MemoryProjectionStore):
    """A memory projection store that counts the lookups of its current generation,
    and its ``apply_many`` calls (a batch's updates, all at once, on the current one)."""

    def __init__(self) -> None:
        super().__init__()
        self.lookups = 0
        self.batches: list[int] = []
        self.fail_batches = False

    def generation(self) -> int:
        self.lookups += 1
        return super().generation()

    def at_generation(self, generation: int) -> ProjectionStore:
        return _CountingView(super().at_generation(generation), self)


class _CountingView:
    """A generation of ``CountingGenerations``, counting (or failing) its batches."""

    def __init__(self, view: ProjectionStore, owner: CountingGenerations) -> None:
        self._view, self._owner = view, owner
        self.apply, self.get, self.position = view.apply, view.get, view.position
        self.delete, self.keys = view.delete, view.keys

    def apply_many(self, updates: Sequence[ProjectionUpdate]) -> list[bool]:
        self._owner.batches.append(len(updates))
        if self._owner.fail_batches and len(updates) > 1:
            raise EventStoreUnavailable("the batch's round trip was lost")
        return self._view.apply_many(updates)


def projected_one_by_one() -> dict[str, str] | None:
    """The section's availability, each event of ``section_stream`` projected alone."""
    reference = Persistence.in_memory(make_codec())
    recorded = section_stream(reference)
    projector = Projector(reference.events, reference.projections)
    for event in recorded:
        projector(event)
    return reference.projections.get(KEY)


def test_a_batch_looks_the_generation_up_once_and_projects_like_event_by_event() -> None:
    persistence = Persistence.in_memory(make_codec())
    recorded = section_stream(persistence)
    projections = CountingGenerations()
    projector = Projector(persistence.events, projections)
    finishes = [projector.begin(event) for event in recorded[:5]]
    for finish in finishes:
        finish()
    assert projections.lookups == 1
    finishes = [projector.begin(event) for event in recorded[5:]]
    for finish in finishes:
        finish()
    assert projections.lookups == 2  # a new batch looks it up again

    assert projections.get(KEY) == projected_one_by_one()


def test_the_first_finish_of_a_batch_applies_every_event_begun_in_it_at_once() -> None:
    persistence = Persistence.in_memory(make_codec())
    recorded = section_stream(persistence)
    projections = CountingGenerations()
    projector = Projector(persistence.events, projections)
    finishes = [projector.begin(event) for event in recorded]

    finishes[0]()

    assert projections.batches == [len(recorded)]
    fields = projections.at_generation(0).get(KEY)
    assert fields is not None
    assert fields["_position"] == str(len(recorded))
    for finish in finishes[1:]:
        finish()
    assert projections.batches == [len(recorded)]  # nothing left to apply


def test_a_batch_whose_updates_fail_is_applied_event_by_event_by_each_finish() -> None:
    persistence = Persistence.in_memory(make_codec())
    recorded = section_stream(persistence)
    projections = CountingGenerations()
    projections.fail_batches = True
    projector = Projector(persistence.events, projections)
    finishes = [projector.begin(event) for event in recorded]

    for finish in finishes:
        finish()

    assert projections.batches == [len(recorded)] + [1] * len(recorded)
    assert projections.get(KEY) == projected_one_by_one()


def test_a_batch_begun_after_a_switch_writes_to_the_new_generation() -> None:
    persistence = Persistence.in_memory(make_codec())
    recorded = section_stream(persistence)
    projections = MemoryProjectionStore()
    projector = Projector(persistence.events, projections)
    for finish in [projector.begin(event) for event in recorded[:3]]:
        finish()
    fresh = projections.new_generation()
    projections.switch(fresh)
    for finish in [projector.begin(event) for event in recorded[3:]]:
        finish()
    fields = projections.get(KEY)
    # The new generation got the later events only (a rebuild's replay fills it in).
    assert fields is not None
    assert fields["_position"] == str(len(recorded))
    assert "capacity" not in fields


def test_the_subscriptions_type_filters_name_events_as_the_codec_registers_them() -> None:
    codec = make_codec()
    wanted = {
        "projections": (Projector.TYPES, (*INVENTORY_EVENTS, *SAGA_EVENTS)),
        "saga": (_SAGA_BUS_TYPES, CHILD_EVENTS),
    }
    for name, (types, models) in wanted.items():
        assert {codec.model_for(t) for t in types} == set(models), name
