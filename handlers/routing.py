"""The routing table, declared by decorators: stream ↔ event_type ↔ handler ↔ output stream.

    routes = Routes()
    features_updated = routes.output("features_updated", "features-updates")

    @features_updated
    @routes.on("sales-updates", "sales_updated")
    async def sales_updated(event: Event, store: StoreDep) -> Event: ...

    @routes.on("audit-updates", "audit_logged", batch=True)
    async def audit_logged(events: list[Event]) -> None: ...

`Routes` is a FastStream `RedisRouter`: the app includes it in its broker, TestRedisBroker runs it
in memory. Each stream gets ONE FastStream subscriber (one more for batch handlers), and each
event type on it one handler call behind a filter on `event_type`; any number of event types may
share a stream. The consumer group, acks, retries, reclaim and the DLQ are not the subscriber's:
app.delivery reads the group for every stream in the table and feeds each decoded entry to the
subscriber of its route. The YAML's `subscriber.streams` chooses which streams are read and
`publisher.streams` may send an event type to another stream than its output declares.

An entry reaches a handler decoded once (core.wire): app.delivery decodes it and hands the Event
(or, for a batch handler, the list of Events) over with the raw entry; this module's parser and
decoder pass it through. An entry published through FastStream (TestRedisBroker) is decoded here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, Self

from faststream import Context
from faststream.message import StreamMessage
from faststream.middlewares import AckPolicy
from faststream.redis import RedisRouter, StreamSub
from faststream.redis.message import FAKE_CONSUMER, RedisBatchStreamMessage, RedisStreamMessage

from core import wire
from core.events import Event
from settings import LiveConfig
from store import Store

StoreDep = Annotated[Store, Context("store")]
ConfigDep = Annotated[LiveConfig, Context("config")]

EVENTS_KEY = "events"  # where app.delivery puts the decoded Events in the raw message
WRITE_VERSION_KEY = "write_version"  # and the run's version for the store (core.wire.position)
# The version a handler's writes carry: the position of the newest event its run serves; the
# store refuses to overwrite results of a newer one (core.errors.Superseded).
VersionDep = Annotated[int, Context(f"message.raw_message.{WRITE_VERSION_KEY}")]


@dataclass(frozen=True)
class Route:
    """One row of the table: entries of `event_type` on `stream` go to `handler`."""

    stream: str
    event_type: str
    handler: str  # the function's name, for logs and documentation
    batch: bool  # the handler takes list[Event]
    subscriber: Any = field(compare=False, repr=False)  # the FastStream subscriber to feed


class Routes(RedisRouter):
    """A RedisRouter whose subscribers are declared by `on` and recorded in a routing table."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._table: dict[tuple[str, str], Route] = {}
        self._by_stream: dict[tuple[str, bool], Any] = {}
        self._output_streams: dict[str, set[str]] = {}
        self._names: dict[int, str] = {}

    # --- declaring ------------------------------------------------------------------------------

    def on(self, stream: str, event_type: str, *, batch: bool = False
           ) -> Callable[[Callable[..., Any]], Any]:
        """Handle `event_type` entries of `stream`; with batch=True the handler receives every
        such entry of one read as a list (each entry still gets the delivery policy)."""
        if (stream, event_type) in self._table:
            raise ValueError(f"{event_type!r} on {stream!r} already has a handler: "
                             f"{self._table[stream, event_type].handler}")
        subscriber = self._subscriber(stream, batch)

        async def wants(message: StreamMessage[Any]) -> bool:  # async: FastStream threads sync ones
            return bool(message.headers.get("event_type") == event_type)

        def register(func: Callable[..., Any]) -> Any:
            # The name of a function stacked under another `on` is remembered from that one.
            name = self._names.get(id(func)) or str(getattr(func, "__name__", func))
            wrapper = subscriber(func, filter=wants)
            self._names[id(wrapper)] = name
            self._table[stream, event_type] = Route(stream, event_type, name, batch, subscriber)
            return wrapper

        return register

    def output(self, event_type: str, stream: str) -> Any:
        """The publisher of `event_type` events, to `stream` unless `publisher.streams` says
        otherwise; use it as a decorator on the handlers that return such an event."""
        self._output_streams.setdefault(event_type, set()).add(stream)
        return self.publisher(stream=stream, title=f"{stream}:{event_type}")

    def _subscriber(self, stream: str, batch: bool) -> Any:
        if (stream, batch) not in self._by_stream:
            self._by_stream[stream, batch] = self.subscriber(
                stream=_StreamSub(stream, batch=batch),
                ack_policy=AckPolicy.MANUAL,  # acks are app.delivery's
                parser=parse, decoder=decode,
                title=f"{stream}{':batch' if batch else ''}",
            )
        return self._by_stream[stream, batch]

    # --- reading the table ----------------------------------------------------------------------

    def table(self) -> list[Route]:
        return sorted(self._table.values(), key=lambda r: (r.stream, r.event_type))

    def streams(self) -> list[str]:
        """Every stream a handler subscribes to."""
        return sorted({stream for stream, _ in self._table})

    def route(self, stream: str, event_type: str) -> Route | None:
        return self._table.get((stream, event_type))

    def outputs(self) -> Mapping[str, list[str]]:
        """event_type -> the streams its outputs declare."""
        return {t: sorted(streams) for t, streams in sorted(self._output_streams.items())}


class _StreamSub(StreamSub):
    """FastStream 0.7.8 rebuilds a subscriber's StreamSub with `add_prefix` (a deepcopy) for the
    log context of every message, about 6% of the consume path; with no prefix the copy equals
    the original, and FastStream only reads it."""

    def add_prefix(self, prefix: str) -> Self:
        return super().add_prefix(prefix) if prefix else self


# --- one decode per entry -----------------------------------------------------------------------


async def parse(msg: Any, original: Callable[[Any], Any]) -> StreamMessage[Any]:
    """A raw stream message (from app.delivery, or FastStream's own reader) → a StreamMessage
    whose decoded body is the Event (a list of them for a batch subscriber)."""
    batch = msg["type"] == "bstream"
    message: StreamMessage[Any]
    if EVENTS_KEY in msg:  # from app.delivery: decoded already
        ids = msg["message_ids"]
        cls = RedisBatchStreamMessage if batch else RedisStreamMessage
        message = cls(raw_message=msg, body=b"", content_type="application/json",
                      message_id=wire.text(ids[0]), consumer=FAKE_CONSUMER, group=None)
    else:  # published through FastStream (TestRedisBroker): decoded here, versioned now
        message = await original(msg)
        raw = msg["data"] if batch else [msg["data"]]
        msg[EVENTS_KEY] = [wire.decode(fields) for fields in raw]
        msg[WRITE_VERSION_KEY] = wire.position_now()
    if events := msg[EVENTS_KEY]:
        message.headers = {**message.headers, "event_type": events[0].event_type,
                           "client_id": events[0].client_id, "event_id": str(events[0].event_id)}
    return message


async def decode(message: StreamMessage[Any], _original: Callable[[Any], Any]) -> Any:
    events: list[Event] = message.raw_message[EVENTS_KEY]
    return events if message.raw_message["type"] == "bstream" else events[0]
