"""Rebuilding a projection from the event store into fresh keys, then switching over."""

from __future__ import annotations

from collections.abc import Iterable

from persistence._ports import EventStore, ProjectionGenerations, ProjectionStore, Projector

__all__ = ["rebuild_projection"]


def rebuild_projection(
    events: EventStore,
    projections: ProjectionGenerations,
    project: Projector,
    *,
    streams: Iterable[str] | None = None,
    page: int = 1000,
    drop_old: bool = True,
) -> int:
    """Replay the event store through ``project`` into a new generation and switch to it.

    Steps: reserve a fresh generation; replay every partition feed (or the given
    streams) into it; make it current; replay once more from where the first pass
    ended, to pick up events appended meanwhile. Every event is either replayed by the
    catch-up or applied by a live writer after the switch; applying twice is harmless
    because projection updates are idempotent by position.

    What live writers must do meanwhile (the domain's ``Projector`` does): resolve the
    current generation once per event, and apply a stream's events in version order,
    catching up a gap from the event store first. A live writer ahead of the first
    pass that applied its next version straight into the new generation would skip the
    versions in between for good (an update at or below a hash's position changes
    nothing), and the catch-up could not bring them back.

    Replaying feeds needs feeds that were not trimmed below the projection's first
    event; pass ``streams`` (e.g. ``store.stream_ids()``) otherwise.

    Args:
        events: the event store to replay.
        projections: the projection store (its current generation is replaced).
        project: applies one event to a projection store (the live projector).
        streams: replay these streams instead of the partition feeds.
        page: events read per call.
        drop_old: delete the previous generation's keys after the switch.

    Returns:
        The new current generation.
    """
    old = projections.generation()
    generation = projections.new_generation()
    target = projections.at_generation(generation)
    if streams is None:
        after: dict[int, str | None] = dict.fromkeys(range(events.partitions))
        _replay_feeds(events, target, project, after, page)
        projections.switch(generation)
        _replay_feeds(events, target, project, after, page)
    else:
        versions = dict.fromkeys(streams, 0)
        _replay_streams(events, target, project, versions)
        projections.switch(generation)
        _replay_streams(events, target, project, versions)
    if drop_old and old != generation:
        projections.drop_generation(old)
    return generation


def _replay_feeds(
    events: EventStore,
    target: ProjectionStore,
    project: Projector,
    after: dict[int, str | None],
    page: int,
) -> None:
    for partition in after:
        while True:
            batch = events.read_feed(partition, after[partition], page)
            for event in batch:
                project(event, target)
            if batch:
                after[partition] = batch[-1].position.entry_id
            if len(batch) < page:
                break


def _replay_streams(
    events: EventStore, target: ProjectionStore, project: Projector, versions: dict[str, int]
) -> None:
    for stream_id, version in versions.items():
        batch = events.read(stream_id, version)
        for event in batch:
            project(event, target)
        if batch:
            versions[stream_id] = batch[-1].version
