"""The producer behind every `@routes.output` publisher: Events out as flat stream fields.

Each published Event is written with XADD MAXLEN ~ `publisher.max_length`, to the stream the live
`publisher.streams` names for its event type (else the one its output declares), through the
outbox while Redis is unreachable (app.publishing.drainer), and as a logged no-op while
`publisher.enabled` is false or the messenger is off.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from faststream.redis.publisher.producer import RedisFastProducer
from faststream.redis.response import DestinationType, RedisPublishCommand

from app.observability.metrics import PUBLISHED
from app.publishing import drainer
from app.publishing.outbox import Outbox
from core import logs, wire
from core.events import Event
from settings import LiveConfig

log = logs.get("messenger")


@dataclass
class PublishState:
    """What decides where an event goes; one object shared by every publisher's producer."""

    live: LiveConfig | None = None
    box: Outbox | None = None
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
        stream = config.streams.get(event.event_type, cmd.destination) if config else \
            cmd.destination
        context: dict[str, Any] = {"stream": stream, "event_id": str(event.event_id),
                   "event_type": event.event_type, "client_id": event.client_id}
        if not state.enabled or (config and not config.enabled):
            reason = "messenger off" if not state.enabled else "publisher.enabled is false"
            log.info("publish skipped (%s)", reason, **context)
            PUBLISHED.labels(stream, "disabled").inc()
            return b""
        maxlen = config.max_length if config else cmd.maxlen
        route = await drainer.publish(self._connection.client, state.box, stream,
                                      wire.encode(event), maxlen, strict=state.strict)
        log.info("event published", route=route, **context)
        PUBLISHED.labels(stream, route).inc()
        return route.encode()
