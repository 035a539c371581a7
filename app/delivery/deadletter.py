"""The dead-letter entry: one Redis stream per consumer group, `<group>:dlq` (core.keys).

A dead-lettered entry keeps the original fields unchanged (even undecodable bytes) and adds:

    dlq_error         the error text (why it failed)
    dlq_error_type    the exception class (MalformedEvent, BomCycleError, MaxDeliveriesExceeded…)
    dlq_stream        the stream it came from
    dlq_entry_id      its entry id there
    dlq_group         the consumer group
    dlq_deliveries    how many times it was delivered
    dlq_consumer      the consumer that gave up on it
    dlq_time          when (ISO 8601 UTC)

`secretmagic dlq replay` (app.ops) puts the original fields back on the original stream.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from core.wire import text

PREFIX = "dlq_"
DLQ_MAXLEN = 100_000  # a bound, so a flood of bad input cannot fill Redis' memory


def dead_letter_fields(
    original: Mapping[Any, Any],
    *,
    error: BaseException,
    stream: str,
    entry_id: str,
    group: str,
    deliveries: int,
    consumer: str,
) -> dict[Any, Any]:
    """The fields of a DLQ entry: the original ones plus the dlq_* metadata."""
    fields: dict[Any, Any] = {k: v for k, v in original.items() if not _is_meta(k)}
    fields.update(
        {
            "dlq_error": str(error),
            "dlq_error_type": type(error).__name__,
            "dlq_stream": stream,
            "dlq_entry_id": entry_id,
            "dlq_group": group,
            "dlq_deliveries": str(deliveries),
            "dlq_consumer": consumer,
            "dlq_time": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        }
    )
    return fields


def split(fields: Mapping[bytes | str, bytes | str]) -> tuple[dict[Any, Any], dict[str, str]]:
    """(original fields, dlq metadata) of a DLQ entry."""
    original = {k: v for k, v in fields.items() if not _is_meta(k)}
    meta = {text(k, "replace"): text(v, "replace") for k, v in fields.items() if _is_meta(k)}
    return original, meta


def _is_meta(key: bytes | str) -> bool:
    return text(key, "replace").startswith(PREFIX)
