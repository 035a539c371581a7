"""Every Redis key name secretmagic uses, in one place (the worker writes them, the monitoring
commands read them).

Per consumer group `<group>` (default `secretmagic-group`):

    <group>:dlq             stream  dead letters: the original fields plus dlq_* fields
                                    (app.delivery.deadletter)
    <group>:errors          hash    per pending entry `<stream>/<id>`: its last error; and
                                    `<stream>/<id>#outages`: deliveries that failed in an outage
    <group>:seen:<event_id> string  the entry id an event was handled as (duplicate skipping),
                                    expires after `subscriber.dedup_window_s`

The input and output streams themselves are named by the handlers' routing table and the
mutable configuration (`subscriber.streams`, `publisher.streams`).
"""

from __future__ import annotations

DEFAULT_GROUP = "secretmagic-group"
DLQ_SUFFIX = ":dlq"


def dlq_stream(group: str) -> str:
    return f"{group}{DLQ_SUFFIX}"


def group_of_dlq(key: str) -> str:
    """The group a DLQ stream belongs to (`secretmagic-group:dlq` -> `secretmagic-group`)."""
    return key.removesuffix(DLQ_SUFFIX)


def errors_key(group: str) -> str:
    return f"{group}:errors"


def error_fields(stream: str, entry_id: str) -> tuple[str, str]:
    """An entry's fields in errors_key(group): its last error, its outage count."""
    return f"{stream}/{entry_id}", f"{stream}/{entry_id}#outages"


def seen_key(group: str, event_id: object) -> str:
    return f"{group}:seen:{event_id}"
