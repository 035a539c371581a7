"""Every Redis key name secretmagic uses, in one place (the worker writes them, the monitoring
commands read them).

Per consumer group `<group>` (default `secretmagic-group`):

    <group>:dlq             stream  dead letters: the original fields plus dlq_* fields
                                    (app.delivery.deadletter)
    <group>:errors          hash    per pending entry `<stream>/<id>`: its last error; and
                                    `<stream>/<id>#uncounted`: deliveries not counted towards
                                    max_deliveries (an outage, or another copy in flight)
    {<group>}:seen:<event_id>
                            string  `<stream>/<entry id>`: the copy of the event that holds it
                                    (in flight while that entry is pending in the group, handled
                                    once it is acked); expires after `subscriber.dedup_window_s`

The seen keys of a group carry its name as a hash tag, so one script call covers a whole batch
of them on a Redis Cluster too.

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
    """An entry's fields in errors_key(group): its last error, its uncounted deliveries."""
    return f"{stream}/{entry_id}", f"{stream}/{entry_id}#uncounted"


def seen_key(group: str, event_id: object) -> str:
    return f"{{{group}}}:seen:{event_id}"


def seen_pattern(group: str) -> str:
    """SCAN MATCH pattern of a group's seen keys."""
    return f"{{{group}}}:seen:*"


def copy_of(stream: str, entry_id: str) -> str:
    """The seen-key value naming the copy of an event at `stream`/`entry_id`."""
    return f"{stream}/{entry_id}"


def copy_at(value: str) -> tuple[str, str]:
    """(stream, entry id) of a seen-key value (entry ids hold no '/', stream names may)."""
    stream, _, entry_id = value.rpartition("/")
    return stream, entry_id
