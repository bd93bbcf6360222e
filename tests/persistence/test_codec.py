"""The codec: type names, schema versions, msgpack payloads, upcasting, typed errors."""

from __future__ import annotations

from typing import Any

import msgpack
import pytest
from pydantic import BaseModel

from persistence import Codec, MalformedEvent, UnknownEventType, UnregisteredEvent
from tests.persistence.events import Deposited, Renamed, Unregistered, make_codec


@pytest.fixture
def codec() -> Codec:
    return make_codec()


def test_an_event_encodes_to_its_type_name_schema_version_and_a_msgpack_map(codec: Codec) -> None:
    encoded = codec.encode(Deposited(account="a", amount=3))

    assert (encoded.type_name, encoded.schema_version) == ("Deposited", 1)
    assert msgpack.unpackb(encoded.data) == {"account": "a", "amount": 3}
    assert codec.decode("Deposited", 1, encoded.data) == Deposited(account="a", amount=3)


def test_an_unknown_type_name_raises_unknown_event_type_naming_stream_and_version(
    codec: Codec,
) -> None:
    with pytest.raises(UnknownEventType) as caught:
        codec.decode("Nope", 1, msgpack.packb({}), stream_id="order-1", version=7)

    assert (caught.value.stream_id, caught.value.version) == ("order-1", 7)
    assert str(caught.value) == "unknown event type 'Nope' (schema 1) at stream 'order-1' version 7"


def test_bytes_that_are_not_msgpack_raise_malformed_event(codec: Codec) -> None:
    with pytest.raises(MalformedEvent, match=r"not msgpack.*stream 's' version 2"):
        codec.decode("Deposited", 1, b"\xc1", stream_id="s", version=2)


def test_a_payload_that_is_not_a_map_raises_malformed_event(codec: Codec) -> None:
    with pytest.raises(MalformedEvent, match="not a map"):
        codec.decode("Deposited", 1, msgpack.packb([1, 2]))


def test_a_payload_failing_validation_raises_malformed_event_naming_the_field(
    codec: Codec,
) -> None:
    data = msgpack.packb({"account": "a", "amount": "lots"})
    with pytest.raises(MalformedEvent, match="amount") as caught:
        codec.decode("Deposited", 1, data, stream_id="s", version=4, position="2/5-0")
    assert caught.value.position == "2/5-0"
    assert isinstance(caught.value, ValueError)  # CodecError mixes in ValueError


def test_the_raw_decoder_raises_the_same_typed_errors_once_it_has_cached_a_type(
    codec: Codec,
) -> None:
    good = codec.encode(Deposited(account="a", amount=1)).data
    assert codec.decode_raw(b"Deposited", b"1", good, "s", 1) == Deposited(account="a", amount=1)

    with pytest.raises(MalformedEvent, match="stream 's' version 2"):
        codec.decode_raw(b"Deposited", b"1", msgpack.packb({"amount": 1}), "s", 2)
    with pytest.raises(MalformedEvent):
        codec.decode_raw(b"Deposited", b"x", good, "s", 3)
    with pytest.raises(UnknownEventType):
        codec.decode_raw(b"Other", b"1", good, "s", 4)


def test_a_version_one_payload_is_upcast_to_the_current_model(codec: Codec) -> None:
    old = msgpack.packb({"name": "Hamlet"})

    assert codec.decode("Renamed", 1, old) == Renamed(title="Hamlet")
    assert codec.decode_raw(b"Renamed", b"1", old, "s", 1) == Renamed(title="Hamlet")
    assert codec.encode(Renamed(title="x")).schema_version == 2


def test_a_schema_version_newer_than_the_model_is_unknown(codec: Codec) -> None:
    with pytest.raises(UnknownEventType, match="schema version 3 is not known"):
        codec.decode("Renamed", 3, msgpack.packb({"title": "x"}))


def test_a_missing_upcaster_is_reported_as_unknown(codec: Codec) -> None:
    class Later(BaseModel, frozen=True):
        x: int

    codec.register(Later, version=3)
    codec.add_upcaster("Later", 2, lambda payload: payload)

    with pytest.raises(UnknownEventType, match="no upcaster lifts Later from schema 1 to 2"):
        codec.decode("Later", 1, msgpack.packb({"x": 1}))
    assert codec.decode("Later", 2, msgpack.packb({"x": 1})) == Later(x=1)


def test_an_upcaster_that_raises_becomes_a_malformed_event(codec: Codec) -> None:
    with pytest.raises(MalformedEvent, match="upcasting Renamed from schema 1 failed: KeyError"):
        codec.decode("Renamed", 1, msgpack.packb({"wrong": "field"}))


def test_encoding_an_unregistered_model_raises_unregistered_event(codec: Codec) -> None:
    with pytest.raises(UnregisteredEvent, match="Unregistered is not a registered event model"):
        codec.encode(Unregistered())


def test_registering_a_mutable_model_is_refused(codec: Codec) -> None:
    class Mutable(BaseModel):
        x: int

    with pytest.raises(TypeError, match="frozen"):
        codec.register(Mutable)


def test_registering_a_type_name_or_a_class_twice_is_refused(codec: Codec) -> None:
    class Other(BaseModel, frozen=True):
        x: int

    with pytest.raises(ValueError, match="already registered"):
        codec.register(Other, name="Deposited")
    with pytest.raises(ValueError, match="already registered"):
        codec.register(Deposited, name="AnotherName")


def test_the_decorators_register_models_and_upcasters() -> None:
    codec = Codec()

    @codec.event("Thing", version=2)
    class Thing(BaseModel, frozen=True):
        size: int

    @codec.upcaster("Thing", from_version=1)
    def _v1(payload: dict[str, Any]) -> dict[str, Any]:
        return {"size": payload["length"]}

    assert codec.model_for("Thing") is Thing
    assert list(codec) == [("Thing", 2, Thing)]
    assert codec.decode("Thing", 1, msgpack.packb({"length": 4})) == Thing(size=4)
