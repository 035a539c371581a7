"""The app's AsyncAPI 3.0 document, as an integrator needs it: `faststream docs gen app:app`.

FastStream's own generator describes what its subscribers do (here: nothing; app.delivery reads
the consumer group) and the FastStream envelope, which secretmagic never writes. This document is
built from what the app really runs instead:

    info       the package's name, version and description
    servers    the messenger's Redis from MESSENGER_* (never a password)
    channels   each input stream of the routing table (read by the consumer group with
               XREADGROUP), each output stream (publisher.streams applied), the group's DLQ
    messages   every event type as an integrator writes it: the flat text fields of
               docs/wire-format.md, `data` a JSON object in text; the DLQ entry's dlq_* fields

`docs/asyncapi.yaml` is this document for the compose deployment (`make asyncapi`), and a test
fails when it drifts from the code.
"""

from __future__ import annotations

import importlib.metadata
import json
import tomllib
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from faststream.specification.asyncapi.v3_0_0.schema import ApplicationSchema
from faststream.specification.base import SpecificationFactory
from pydantic import BaseModel, Field

from app.delivery import deadletter
from core import keys, wire
from handlers.pipelines import BomExploded, FeaturesUpdated
from handlers.routing import Routes
from settings import Config, LiveConfig, MessengerSettings

if TYPE_CHECKING:
    from faststream._internal.broker import BrokerUsecase
    from faststream.asgi.handlers import HttpHandler

PACKAGE = "secretmagic"
ROOT = Path(__file__).resolve().parent.parent


class Notification(BaseModel):
    """`data` of an integrator's event (seed «Входящие события»): what changed, not the rows."""

    integration_id: str = Field(description="the integrator's run that wrote the data")
    table_name: str = Field(description="the store table it wrote (sales, stock, bom, products)")


# `data` of each event type; an event type not listed here is documented as a free JSON object.
DATA: dict[str, type[BaseModel]] = {
    "sales_updated": Notification,
    "stock_updated": Notification,
    "bom_updated": Notification,
    "products_updated": Notification,
    "features_updated": FeaturesUpdated,
    "bom_exploded": BomExploded,
}

# The dlq_* fields app.delivery.deadletter adds to a dead-lettered entry.
DLQ_FIELDS = {
    "dlq_error": "why it failed (the error text)",
    "dlq_error_type": "the error's class: MalformedEvent, MaxDeliveriesExceeded, BomCycleError…",
    "dlq_stream": "the stream it came from",
    "dlq_entry_id": "its entry id there",
    "dlq_group": "the consumer group that gave up on it",
    "dlq_deliveries": "how many times it was delivered (an integer, as text)",
    "dlq_consumer": "the consumer that gave up on it",
    "dlq_time": "when (ISO 8601, UTC)",
}

EXAMPLE_TIME = "2025-11-22T14:00:00Z"


def version() -> str:
    """The installed package's version, else pyproject.toml's (a source checkout on PYTHONPATH)."""
    try:
        return importlib.metadata.version(PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        return str(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"])


def _summary() -> str:
    try:
        return importlib.metadata.metadata(PACKAGE)["Summary"]
    except importlib.metadata.PackageNotFoundError:
        return str(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["description"])


# --- the parts --------------------------------------------------------------------------------


def _description(group: str, config: Config) -> str:
    sub, pub = config.messenger.subscriber, config.messenger.publisher
    return _paragraphs(f"""{_summary()}.

**Wire format** (docs/wire-format.md): one event = one Redis Stream entry of flat UTF-8 text
fields `event_id`, `event_type`, `client_id`, `timestamp`, `data` (a JSON object as text). Any
client writes them with a plain `XADD` and reads them with `XRANGE`/`XREADGROUP`; there is no
FastStream envelope (one is accepted on input, never written). An entry over
{wire.MAX_ENTRY_BYTES} bytes, with a field that is not UTF-8, without `event_type`/`client_id`,
with `data` not a JSON object, or with an event type no handler takes on its stream is
malformed: acked and dead-lettered with the reason.

**Delivery** (at least once): every input stream is read by consumer group `{group}` with
`XREADGROUP` ({sub.batch_size} entries, `BLOCK {sub.block_ms}`), one consumer per instance
(`SECRETMAGIC_CONSUMER`). An entry is acked once handled; a failure is delivered again after a
growing backoff, up to {sub.max_deliveries} deliveries, then moved to `{keys.dlq_stream(group)}`.
An unreachable store pauses the stream instead (nothing is dead-lettered for an outage).
Duplicate `event_id`s are skipped for {sub.dedup_window_s} s. Every stream secretmagic writes
is trimmed with `MAXLEN ~ {pub.max_length}`. Inspect and replay with the `secretmagic` command
(`secretmagic lag`, `secretmagic dlq list`, `secretmagic dlq replay`).""")


def _paragraphs(text: str) -> str:
    """Markdown paragraphs on one line each (the source wraps them at 100 columns)."""
    return "\n\n".join(" ".join(p.split("\n")) for p in text.split("\n\n"))


def _servers(m: MessengerSettings | None) -> dict[str, Any]:
    """The messenger's Redis as AsyncAPI servers: host and db, never a credential."""
    if m is None:
        return {}
    protocol = "rediss" if m.tls else "redis"
    user = f" as ACL user `{m.username}`" if m.username else ""
    if m.cluster_nodes:
        return {f"cluster-{i}": {"host": f"{h}:{p}", "pathname": "/0", "protocol": protocol,
                                 "description": f"Redis Cluster seed node (MESSENGER_CLUSTER_"
                                                f"NODES){user}"}
                for i, (h, p) in enumerate(m.cluster_nodes, 1)}
    if m.sentinels:
        return {f"sentinel-{i}": {"host": f"{h}:{p}", "pathname": f"/{m.db}",
                                  "protocol": protocol,
                                  "description": f"Redis Sentinel naming master "
                                                 f"`{m.sentinel_master}` (MESSENGER_SENTINELS)"
                                                 f"{user}"}
                for i, (h, p) in enumerate(m.sentinels, 1)}
    return {"messenger": {"host": f"{m.host}:{m.port}", "pathname": f"/{m.db}",
                          "protocol": protocol,
                          "description": f"the messenger's Redis (MESSENGER_HOST, MESSENGER_PORT, "
                                         f"MESSENGER_DB){user}; the password is "
                                         f"MESSENGER_PASSWORD"}}


def _text(description: str, **schema: Any) -> dict[str, Any]:
    return {"type": "string", "description": description, **schema}


def _data_schema(event_type: str) -> dict[str, Any]:
    model = DATA.get(event_type)
    if model is None:
        return {"type": "object"}
    schema = model.model_json_schema()
    schema.pop("title", None)
    return schema


def _event_payload(event_type: str, incoming: bool) -> dict[str, Any]:
    """An event's entry fields as JSON Schema: every value is text (docs/wire-format.md)."""
    return {
        "type": "object",
        "description": "The entry's fields (XADD field value …); each value is UTF-8 text.",
        "properties": {
            "event_id": _text("a UUID; duplicates are skipped"
                              + ("; filled in when left out" if incoming else ""),
                              format="uuid"),
            "event_type": _text("the event type", const=event_type),
            "client_id": _text("the client the event is about", minLength=1),
            "timestamp": _text("ISO 8601 in UTC (no zone: taken as UTC)"
                               + ("; filled in when left out" if incoming else ""),
                               format="date-time"),
            "data": _text("a JSON object, as text", contentMediaType="application/json",
                          contentSchema=_data_schema(event_type)),
        },
        "required": ["event_type", "client_id"] if incoming else list(wire.FIELDS),
        "additionalProperties": {"type": "string", "description": "ignored"},
    }


def _example_data(event_type: str) -> dict[str, Any]:
    model = DATA.get(event_type)
    if model is None:
        return {}
    examples: dict[str, Any] = {
        "integration_id": "int-7", "table_name": event_type.removesuffix("_updated"),
        "features_count": 16, "processing_time_ms": 412, "rows": 1520, "products_count": 3,
        "feature_types": ["ema", "ma", "std", "lags", "seasonality"],
    }
    # The fields named above, the others at their defaults: the example is the model's own dump.
    given = {name: examples[name] for name in model.model_fields if name in examples}
    return model.model_validate(given).model_dump(mode="json")


def _example(event_type: str) -> dict[str, str]:
    event_id = uuid.uuid5(uuid.NAMESPACE_URL, f"{PACKAGE}:{event_type}")  # stable across runs
    return {"event_id": str(event_id), "event_type": event_type, "client_id": "client-42",
            "timestamp": EXAMPLE_TIME,
            "data": json.dumps(_example_data(event_type), separators=(",", ":"))}


def _event_message(event_type: str, incoming: bool) -> dict[str, Any]:
    who = "the integrator (or any client) writes" if incoming else "secretmagic publishes"
    return {
        "name": event_type,
        "title": event_type,
        "summary": f"{event_type}: an entry {who}",
        "payload": _event_payload(event_type, incoming),
        "examples": [{"name": "XADD fields", "payload": _example(event_type)}],
    }


def _dlq_message() -> dict[str, Any]:
    sample = deadletter.dead_letter_fields({}, error=RuntimeError(), stream="", entry_id="",
                                           group="", deliveries=0, consumer="")
    missing = set(sample) ^ set(DLQ_FIELDS)
    assert not missing, f"DLQ_FIELDS out of step with app.delivery.deadletter: {missing}"
    return {
        "name": "dead_letter",
        "title": "dead letter",
        "summary": "An entry secretmagic gave up on: its original fields, unchanged (even bytes "
                   "that are not UTF-8), plus the dlq_* fields",
        "payload": {
            "type": "object",
            "properties": {name: _text(text) for name, text in DLQ_FIELDS.items()},
            "required": list(DLQ_FIELDS),
            "additionalProperties": {"description": "the original entry's fields"},
        },
    }


def _binding(stream: str, method: str, group: str | None = None) -> dict[str, Any]:
    binding = {"channel": stream, "method": method, "bindingVersion": "custom"}
    return binding | ({"groupName": group} if group else {})


def _ref(*path: str) -> dict[str, str]:
    return {"$ref": "#/" + "/".join(path)}


# --- the document ------------------------------------------------------------------------------


def document(routes: Routes, messenger: MessengerSettings | None, config: Config
             ) -> dict[str, Any]:
    """The AsyncAPI 3.0 document of a worker for `routes`, as plain JSON-able data."""
    group = config.messenger.subscriber.consumer_group
    read = config.messenger.subscriber.streams
    reroute = config.messenger.publisher.streams
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}

    by_stream: dict[str, list[Any]] = {}
    for route in routes.table():
        by_stream.setdefault(route.stream, []).append(route)
    for stream, stream_routes in by_stream.items():
        off = read is not None and stream not in read
        channels[stream] = {
            "address": stream,
            "description": f"Read by consumer group `{group}` (XREADGROUP); handled entries "
                           "are acked" + (" — not read now: missing from subscriber.streams"
                                          if off else ""),
            "messages": {r.event_type: _ref("components", "messages", r.event_type)
                         for r in stream_routes},
            "bindings": {"redis": _binding(stream, "xreadgroup", group)},
        }
        for r in stream_routes:
            messages[r.event_type] = _event_message(r.event_type, incoming=True)
            operations[f"{r.handler}.{r.event_type}"] = {
                "action": "receive",
                "channel": _ref("channels", stream),
                "summary": f"{r.handler} handles {r.event_type}"
                           + (" (a batch per read)" if r.batch else ""),
                "messages": [_ref("channels", stream, "messages", r.event_type)],
            }

    for event_type, declared in routes.outputs().items():
        messages[event_type] = _event_message(event_type, incoming=False)
        for stream in sorted({reroute.get(event_type, s) for s in declared}):
            channel = channels.setdefault(stream, {
                "address": stream,
                "description": f"Published by secretmagic (XADD MAXLEN ~ "
                               f"{config.messenger.publisher.max_length}); downstream groups "
                               "read it with XREADGROUP",
                "messages": {},
                "bindings": {"redis": _binding(stream, "xadd")},
            })
            channel["messages"][event_type] = _ref("components", "messages", event_type)
            operations[f"publish.{event_type}.{stream}"] = {
                "action": "send",
                "channel": _ref("channels", stream),
                "summary": f"publish {event_type}"
                           + (" (publisher.streams)" if event_type in reroute else ""),
                "messages": [_ref("channels", stream, "messages", event_type)],
            }

    dlq = keys.dlq_stream(group)
    channels["dlq"] = {
        "address": dlq,
        "description": f"Dead letters of group `{group}`: entries that failed "
                       f"{config.messenger.subscriber.max_deliveries} times, failed for good "
                       "(FatalError) or are malformed. `secretmagic dlq list|show|replay|purge`.",
        "messages": {"dead_letter": _ref("components", "messages", "dead_letter")},
        "bindings": {"redis": _binding(dlq, "xadd")},
    }
    messages["dead_letter"] = _dlq_message()
    operations["dead_letter"] = {
        "action": "send",
        "channel": _ref("channels", "dlq"),
        "summary": "dead-letter an entry (then ack it on its stream)",
        "messages": [_ref("channels", "dlq", "messages", "dead_letter")],
    }

    return {
        "asyncapi": "3.0.0",
        "info": {"title": PACKAGE, "version": version(),
                 "description": _description(group, config)},
        "servers": _servers(messenger),
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages},
    }


def specification(routes: Routes, messenger: MessengerSettings | None, config: Config
                  ) -> ApplicationSchema:
    """The document as FastStream's AsyncAPI 3.0 model (what `faststream docs` serializes)."""
    return ApplicationSchema.model_validate(document(routes, messenger, config))


class Documentation(SpecificationFactory):
    """The FastStream app's `specification`: built when asked for, from the configuration then
    in force (FastStream's brokers and HTTP routes are not part of it)."""

    def __init__(self, routes: Routes, messenger: MessengerSettings | None,
                 live: LiveConfig | None = None) -> None:
        self.routes, self.messenger, self.live = routes, messenger, live
        self.title, self.description, self.version = PACKAGE, _summary(), version()
        self.contact = self.license = None

    def add_broker(self, broker: BrokerUsecase[Any, Any, Any], /) -> SpecificationFactory:
        return self

    def add_http_route(self, path: str, handler: HttpHandler) -> SpecificationFactory:
        return self

    def to_specification(self) -> ApplicationSchema:
        return specification(self.routes, self.messenger,
                             self.live.current if self.live else Config())
