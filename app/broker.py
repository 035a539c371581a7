"""FastStream's RedisBroker, adapted at its two edges to secretmagic's wire format and delivery.

- In: `parse_entry` turns a stream entry with the seed's flat fields (docs/wire-format.md) into a
  FastStream message whose body is the Event; an entry in FastStream's own envelope (what
  TestRedisBroker and FastStream publishers send) is accepted too.
- Out: `EventProducer` writes each published Event as flat fields with XADD MAXLEN ~, routed by
  event_type through the live `publisher.streams`, a logged no-op while `publisher.enabled` is false
  or the messenger is off, and through the durable outbox while Redis is unreachable.
- Reading: stream subscribers are started passively (as TestRedisBroker does); `app.consumer`
  reads the group and feeds them, because FastStream's own loop has no reclaim-while-reading,
  backoff, DLQ or NOGROUP recovery (SPEC §3).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Self, cast

from faststream.message import StreamMessage
from faststream.middlewares import AckPolicy
from faststream.redis import RedisBroker, RedisRouter, StreamSub
from faststream.redis.message import FAKE_CONSUMER, RedisStreamMessage, bDATA_KEY
from faststream.redis.publisher.producer import RedisFastProducer
from faststream.redis.response import DestinationType, RedisPublishCommand
from redis.asyncio import Redis

from app import events, outbox
from app.errors import MalformedEvent
from app.events import Event

if TYPE_CHECKING:
    from app.config import LiveConfig

log = logging.getLogger("secretmagic")


async def parse_entry(
    msg: Any, original: Callable[[Any], Awaitable[StreamMessage[Any]]]
) -> StreamMessage[Any]:
    """A stream entry → a message whose body is the validated Event as JSON."""
    fields = msg["data"]
    event: Event | None = msg.get("event")  # app.consumer has decoded it already
    if event is None and bDATA_KEY in fields:  # FastStream's envelope around the same fields
        message = await original(msg)
        try:
            fields = json.loads(message.body)
        except json.JSONDecodeError:
            fields = None
        if not isinstance(fields, dict):
            raise MalformedEvent("FastStream envelope does not hold a JSON object")
    else:
        entry_id = msg["message_ids"][0] if msg.get("message_ids") else b""
        message = RedisStreamMessage(
            raw_message=msg, body=b"", content_type="application/json",
            message_id=entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id),
            consumer=FAKE_CONSUMER, group=None)
    if event is None:
        event = events.decode(fields)
    message.body = event.model_dump_json().encode()
    message.headers = {"event_type": event.event_type, "client_id": event.client_id,
                       "event_id": str(event.event_id)}
    return message


@dataclass
class PublishState:
    """What decides where an event goes; one object shared by every publisher's producer."""

    live: LiveConfig | None = None
    box: outbox.Outbox | None = None
    strict: bool = False  # raise instead of queueing in the outbox while Redis is down
    enabled: bool = True  # False when the messenger is off (no MESSENGER_* variables)


class EventProducer(RedisFastProducer):
    """Publishes Events as flat fields; routing, retention and fail-safety from live config."""

    def __init__(self, *args: Any, state: PublishState | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.state = state or PublishState()

    def _build_child(self, **kwargs: Any) -> EventProducer:
        # FastStream gives each publisher a child producer: share the state with it.
        return EventProducer(**kwargs, state=self.state)

    async def publish(self, cmd: RedisPublishCommand) -> int | bytes:
        if cmd.destination_type is not DestinationType.Stream:
            return await super().publish(cmd)
        state = self.state
        event = cmd.body if isinstance(cmd.body, Event) else Event.model_validate(cmd.body)
        config = state.live.current.messenger.publisher if state.live else None
        stream = cmd.destination
        if config:
            stream = config.streams.get(event.event_type, stream)
        context = {"stream": stream, "event_id": str(event.event_id),
                   "event_type": event.event_type, "client_id": event.client_id}
        if not state.enabled or (config and not config.enabled):
            reason = "messenger off" if not state.enabled else "publisher.enabled is false"
            log.info("publish skipped (%s)", reason,
                     extra={"category": "messenger", "context": context})
            _count(stream, "disabled")
            return b""
        maxlen = config.max_length if config else cmd.maxlen
        route = await outbox.publish(self._connection.client, state.box, stream,
                                     events.encode(event), maxlen, strict=state.strict)
        log.info("event published", extra={"category": "messenger",
                                           "context": {**context, "route": route}})
        _count(stream, route)
        return route.encode()


def _count(stream: str, route: str) -> None:
    from app.metrics import PUBLISHED

    PUBLISHED.labels(stream, route).inc()


class Broker(RedisBroker):
    """RedisBroker with the flat wire format and passively started stream subscribers."""

    def _make_producer(self, connection_state: Any, kwargs: dict[str, Any]) -> Any:
        return EventProducer(
            connection=connection_state,
            parser=kwargs.get("parser"),
            decoder=kwargs.get("decoder"),
            message_format=self.message_format,
            serializer=kwargs.get("serializer"),
        )

    @property
    def client(self) -> Redis:
        return cast(Redis, self.config.broker_config.connection.client)

    def handlers(self) -> dict[str, Callable[[Any], Awaitable[Any]]]:
        """stream -> the subscriber's full FastStream pipeline, for app.consumer to feed."""
        found: dict[str, Callable[[Any], Awaitable[Any]]] = {}
        for sub in self.subscribers:
            name = sub.stream_sub.name  # type: ignore[attr-defined]
            if name in found:
                raise ValueError(f"stream {name!r} has two subscribers: register each event "
                                 "type of a stream on one subscriber")
            found[name] = sub.process_message
        return found

    @property
    def publishing(self) -> PublishState:
        return cast(EventProducer, self.config.broker_config.producer).state

    async def start(self) -> None:
        # Connecting is lazy in redis-py: an unreachable Redis does not fail the start; the
        # consumer's loops report it and carry on when it comes.
        await self.connect()
        for sub in self.subscribers:
            # What TestRedisBroker does: handlers ready, no FastStream read loop.
            sub._build_fastdepends_model()
            sub._post_start()
        for pub in self.publishers:
            await pub.start()
        self.running = True


class _StreamSub(StreamSub):
    """FastStream 0.7.8 rebuilds a subscriber's StreamSub with `add_prefix` (a deepcopy) for the
    log context of every message, about 6% of the consume path; with no prefix the copy equals
    the original, and FastStream only reads it."""

    def add_prefix(self, prefix: str) -> Self:
        return super().add_prefix(prefix) if prefix else self


def stream_subscriber(broker: RedisBroker | RedisRouter, stream: str, event_type: str
                      ) -> Callable[[Callable[..., Any]], Any]:
    """`@subscriber` for one event type on one stream.

    The consumer group and this instance's consumer name are applied by app.consumer, which
    reads for every subscriber. An entry of another event_type finds no handler and is
    dead-lettered by the policy.
    """
    subscriber = broker.subscriber(
        stream=_StreamSub(stream),
        ack_policy=AckPolicy.MANUAL,  # acks belong to app.consumer's policy
        title=f"{stream}:{event_type}",
    )

    async def wants(message: StreamMessage[Any]) -> bool:  # async: FastStream threads sync ones
        return bool(message.headers.get("event_type") == event_type)

    def register(func: Callable[..., Any]) -> Any:
        return subscriber(func, filter=wants)

    return register
