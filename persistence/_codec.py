"""Events on the wire: pydantic models registered by type name and schema version.

An event is stored as three values: its type name, its schema version and its
payload, the model dumped in JSON mode (so datetimes, UUIDs and decimals become
strings any client can read) and packed with msgpack. Reading validates the payload
against the registered model, after lifting an older schema version to the current
one through the registered upcasters. Every failure is a ``CodecError`` naming the
stream and version it concerns; nothing from msgpack or pydantic escapes raw.

Example::

    codec = Codec()

    @codec.event("SeatsReserved", version=2)
    class SeatsReserved(BaseModel):
        model_config = ConfigDict(frozen=True)
        section: str
        seats: int

    @codec.upcaster("SeatsReserved", from_version=1)
    def _v1_to_v2(payload: dict[str, Any]) -> dict[str, Any]:
        return {"section": payload["section"], "seats": payload["count"]}
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypedDict, TypeVar

import msgpack
from pydantic import BaseModel, ValidationError

from persistence._errors import CodecError, MalformedEvent, UnknownEventType, UnregisteredEvent

__all__ = ["Codec", "EncodedEvent", "RawDecoder", "Upcaster"]

M = TypeVar("M", bound=BaseModel)

Upcaster = Callable[[dict[str, Any]], dict[str, Any]]
"""Lifts a payload (the decoded msgpack map) from one schema version to the next."""

RawDecoder = tuple[Callable[[bytes], BaseModel], str, int]
"""(payload -> model, type name, schema version) for one stored (type, schema) pair."""


@dataclass(frozen=True, slots=True)
class EncodedEvent:
    """An event as stored: type name, schema version, msgpack payload."""

    type_name: str
    schema_version: int
    data: bytes


class _Where(TypedDict):
    stream_id: str | None
    version: int | None
    position: str | None


@dataclass(frozen=True, slots=True)
class _Registration:
    model: type[BaseModel]
    type_name: str
    schema_version: int
    # The validator and serializer are looked up once: calling pydantic-core directly
    # skips BaseModel's classmethod overhead (about half the cost per event).
    validate: Callable[[Any], Any]
    dump: Callable[..., Any]


class Codec:
    """A registry of event models, and their msgpack encoding.

    Thread-safe: registration takes a lock; encoding and decoding read immutable
    tables that registration replaces whole.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_model: dict[type[BaseModel], _Registration] = {}
        self._by_name: dict[str, _Registration] = {}
        self._upcasters: dict[tuple[str, int], Upcaster] = {}
        # (type name bytes, schema version bytes) -> (decoder, type name, schema), for
        # the Redis read path.
        self._raw_decoders: dict[tuple[bytes, bytes], RawDecoder] = {}

    # -- registration -------------------------------------------------------------

    def register(self, model: type[M], *, name: str | None = None, version: int = 1) -> type[M]:
        """Register an event model under a type name and its current schema version.

        Args:
            model: a frozen pydantic model class (events are immutable values).
            name: the type name stored beside the payload; the class name by default.
                Keep it stable: renaming the class must not rename stored events.
            version: the model's current schema version (>= 1). Payloads stored with
                a lower version are lifted through upcasters on read.

        Returns:
            ``model``, so ``register`` can serve as a decorator's body.

        Raises:
            TypeError: ``model`` is not a frozen pydantic model.
            ValueError: the name or the class is already registered, or ``version < 1``.
        """
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            raise TypeError(f"{model!r} is not a pydantic model class")
        if not model.model_config.get("frozen", False):
            raise TypeError(
                f"{model.__qualname__} must be frozen (model_config = ConfigDict(frozen=True)):"
                " stores keep event objects and share them between readers"
            )
        type_name = name or model.__name__
        if version < 1:
            raise ValueError(f"schema version must be >= 1, got {version}")
        with self._lock:
            if type_name in self._by_name:
                raise ValueError(f"event type name {type_name!r} is already registered")
            if model in self._by_model:
                raise ValueError(f"{model.__qualname__} is already registered")
            registration = _Registration(
                model=model,
                type_name=type_name,
                schema_version=version,
                validate=model.__pydantic_validator__.validate_python,
                dump=model.__pydantic_serializer__.to_python,
            )
            self._by_model = {**self._by_model, model: registration}
            self._by_name = {**self._by_name, type_name: registration}
            self._raw_decoders = {}
        return model

    def event(
        self, name: str | None = None, *, version: int = 1
    ) -> Callable[[type[M]], type[M]]:
        """Class decorator form of ``register``."""

        def decorate(model: type[M]) -> type[M]:
            return self.register(model, name=name, version=version)

        return decorate

    def add_upcaster(self, type_name: str, from_version: int, upcaster: Upcaster) -> None:
        """Register a function lifting ``type_name`` payloads from ``from_version`` to the next.

        Raises:
            ValueError: an upcaster for that type and version is already registered.
        """
        with self._lock:
            key = (type_name, from_version)
            if key in self._upcasters:
                raise ValueError(f"an upcaster for {type_name!r} v{from_version} exists")
            self._upcasters = {**self._upcasters, key: upcaster}
            self._raw_decoders = {}

    def upcaster(self, type_name: str, *, from_version: int) -> Callable[[Upcaster], Upcaster]:
        """Decorator form of ``add_upcaster``."""

        def decorate(fn: Upcaster) -> Upcaster:
            self.add_upcaster(type_name, from_version, fn)
            return fn

        return decorate

    def __iter__(self) -> Iterator[tuple[str, int, type[BaseModel]]]:
        """(type name, current schema version, model) of every registered event."""
        for reg in self._by_name.values():
            yield reg.type_name, reg.schema_version, reg.model

    def model_for(self, type_name: str) -> type[BaseModel]:
        """The model registered under ``type_name``.

        Raises:
            UnknownEventType: no model has that name.
        """
        reg = self._by_name.get(type_name)
        if reg is None:
            raise UnknownEventType(f"unknown event type {type_name!r}")
        return reg.model

    # -- encoding -----------------------------------------------------------------

    def type_of(self, event: BaseModel) -> tuple[str, int]:
        """The (type name, schema version) ``event`` is stored under.

        Raises:
            UnregisteredEvent: the event's class is not registered.
        """
        reg = self._by_model.get(type(event))
        if reg is None:
            raise self._unregistered(event)
        return reg.type_name, reg.schema_version

    def encode(self, event: BaseModel) -> EncodedEvent:
        """Encode ``event`` as (type name, schema version, msgpack payload).

        Raises:
            UnregisteredEvent: the event's class is not registered.
        """
        reg = self._by_model.get(type(event))
        if reg is None:
            raise self._unregistered(event)
        return EncodedEvent(reg.type_name, reg.schema_version, self._pack(reg, event))

    def encode_fields(self, event: BaseModel) -> tuple[str, int, bytes]:
        """``encode`` as a plain tuple (the adapters' hot path)."""
        reg = self._by_model.get(type(event))
        if reg is None:
            raise self._unregistered(event)
        return reg.type_name, reg.schema_version, self._pack(reg, event)

    @staticmethod
    def _pack(reg: _Registration, event: BaseModel) -> bytes:
        try:
            payload = reg.dump(event, mode="json")
            packed: bytes = msgpack.packb(payload, use_bin_type=True)
        except Exception as error:
            # e.g. bytes that are not UTF-8 in JSON mode: a typed error naming the type,
            # instead of whatever pydantic or msgpack raised.
            raise CodecError(
                f"{reg.type_name} could not be encoded ({type(error).__name__}: {error})"
            ) from None
        return packed

    @staticmethod
    def _unregistered(event: object) -> UnregisteredEvent:
        return UnregisteredEvent(
            f"{type(event).__qualname__} is not a registered event model"
            " (codec.register(Model, name=..., version=...))"
        )

    # -- decoding -----------------------------------------------------------------

    def decode(
        self,
        type_name: str,
        schema_version: int,
        data: bytes,
        *,
        stream_id: str | None = None,
        version: int | None = None,
        position: str | None = None,
    ) -> BaseModel:
        """Decode a stored payload into the registered model, upcasting if it is older.

        Args:
            type_name, schema_version, data: as stored.
            stream_id, version, position: where the event sits, for error messages.

        Raises:
            UnknownEventType: no model has that type name, the schema version is newer
                than the model's, or an upcaster on the way is missing.
            MalformedEvent: the payload is not a msgpack map, or fails validation.
        """
        where = _Where(stream_id=stream_id, version=version, position=position)
        reg = self._by_name.get(type_name)
        if reg is None:
            raise UnknownEventType(
                f"unknown event type {type_name!r} (schema {schema_version})", **where
            )
        return self._decode_with(reg, schema_version, data, where)

    def raw_decoder(self, type_name: bytes, schema_version: bytes) -> RawDecoder | None:
        """The cached decoder for a stored (type name, schema version) pair, as bytes.

        The decoder unpacks, upcasts and validates without naming where the event
        sits: when it raises (anything), call ``decode_raw`` for the typed error.
        None when the pair cannot be decoded at all (``decode_raw`` says why).
        """
        found = self._raw_decoders.get((type_name, schema_version))
        if found is not None:
            return found
        try:
            name = type_name.decode()
            schema = int(schema_version)
        except (UnicodeDecodeError, ValueError):
            return None
        reg = self._by_name.get(name)
        if reg is None or not 1 <= schema <= reg.schema_version:
            return None
        steps = []
        for step in range(schema, reg.schema_version):
            upcaster = self._upcasters.get((name, step))
            if upcaster is None:
                return None
            steps.append(upcaster)
        found = (_fast_decoder(reg, steps), name, schema)
        if len(self._raw_decoders) < 10_000:  # bounded: type names come from stored data
            self._raw_decoders[(type_name, schema_version)] = found
        return found

    def decode_raw(
        self,
        type_name: bytes,
        schema_version: bytes,
        data: bytes,
        stream_id: str | None,
        version: int | None,
        position: str | None = None,
    ) -> BaseModel:
        """``decode`` for the fields exactly as a Redis reply holds them (bytes).

        The (type, schema) pair is resolved once and cached (``raw_decoder``), so a
        long read pays for one msgpack unpack and one validation per event.

        Raises:
            UnknownEventType, MalformedEvent: as ``decode``, naming where the event sits.
        """
        found = self.raw_decoder(type_name, schema_version)
        if found is not None:
            try:
                return found[0](data)
            except Exception:  # the precise typed error is raised by the slow path below
                pass
        try:
            name = type_name.decode()
            schema = int(schema_version)
        except (UnicodeDecodeError, ValueError):
            raise MalformedEvent(
                f"unreadable type name {type_name!r} or schema version {schema_version!r}",
                stream_id=stream_id,
                version=version,
                position=position,
            ) from None
        return self.decode(
            name, schema, data, stream_id=stream_id, version=version, position=position
        )

    def _decode_with(
        self,
        reg: _Registration,
        schema_version: int,
        data: bytes,
        where: _Where,
    ) -> BaseModel:
        try:
            payload = msgpack.unpackb(data, raw=False)
        except Exception as error:  # msgpack raises several unrelated types
            raise MalformedEvent(
                f"{reg.type_name} payload is not msgpack ({type(error).__name__}: {error})",
                **where,
            ) from None
        if not isinstance(payload, dict):
            raise MalformedEvent(
                f"{reg.type_name} payload is a {type(payload).__name__}, not a map", **where
            )
        if schema_version != reg.schema_version:
            payload = self._upcast(reg, schema_version, payload, where)
        try:
            model: BaseModel = reg.validate(payload)
        except ValidationError as error:
            raise MalformedEvent(
                f"{reg.type_name} v{reg.schema_version} payload fails validation: "
                f"{_short(error)}",
                **where,
            ) from None
        return model

    def _upcast(
        self,
        reg: _Registration,
        schema_version: int,
        payload: dict[str, Any],
        where: _Where,
    ) -> dict[str, Any]:
        if schema_version > reg.schema_version or schema_version < 1:
            raise UnknownEventType(
                f"{reg.type_name} schema version {schema_version} is not known "
                f"(current is {reg.schema_version})",
                **where,
            )
        for step in range(schema_version, reg.schema_version):
            upcaster = self._upcasters.get((reg.type_name, step))
            if upcaster is None:
                raise UnknownEventType(
                    f"no upcaster lifts {reg.type_name} from schema {step} to {step + 1}",
                    **where,
                )
            try:
                payload = upcaster(payload)
            except Exception as error:
                raise MalformedEvent(
                    f"upcasting {reg.type_name} from schema {step} failed: "
                    f"{type(error).__name__}: {error}",
                    **where,
                ) from None
            if not isinstance(payload, dict):
                raise MalformedEvent(
                    f"the {reg.type_name} upcaster from schema {step} returned "
                    f"{type(payload).__name__}, not a dict",
                    **where,
                )
        return payload


def _fast_decoder(reg: _Registration, upcasters: list[Upcaster]) -> Callable[[bytes], BaseModel]:
    unpackb = msgpack.unpackb
    validate = reg.validate
    if not upcasters:

        def decode(data: bytes) -> BaseModel:
            model: BaseModel = validate(unpackb(data))
            return model

        return decode

    def decode_old(data: bytes) -> BaseModel:
        payload = unpackb(data)
        if not isinstance(payload, dict):
            raise TypeError("payload is not a map")
        for upcaster in upcasters:
            payload = upcaster(payload)
        model: BaseModel = validate(payload)
        return model

    return decode_old


def _short(error: ValidationError) -> str:
    problems = [
        f"{'.'.join(str(p) for p in item['loc']) or '<root>'}: {item['msg']}"
        for item in error.errors(include_url=False)[:3]
    ]
    more = error.error_count() - len(problems)
    return "; ".join(problems) + (f" (+{more} more)" if more > 0 else "")
