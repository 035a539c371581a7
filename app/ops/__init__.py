"""What operators ask of a running system: read-only views of Redis and the log table, plus the
DLQ's replay and purge. The CLI (app.cli), the metrics collector and the demo read them here.

Every Redis function takes a *synchronous* `redis.Redis` (bytes or decoded responses both work;
use a bytes client, as `connect()` makes, when replaying DLQ entries that hold non-UTF-8 bytes)
and returns plain dataclasses; `as_dict()` gives their stable JSON form. What the seed's
operators typed by hand, and what replaces it:

    KEYS *                                  streams(r)            (SCAN TYPE stream, never KEYS)
    XLEN / XREVRANGE s + - COUNT 10         streams(r), tail(r, s, 10)
    XINFO GROUPS s                          groups(r, s), consumers(r, s, g)
    XPENDING s secretmagic-group            pending_summary(r, s, g), pending(r, s, g)
    "look at lag in XINFO GROUPS"           lag(r)  (Redis 7.x `lag`, counted on 6.2 / when nil)
    the seed's two SQL queries on the logs  logs(dsn, schema, ...)  (PostgreSQL, asyncpg)
"""

from app.connection import sync_client as connect  # the operators' fail-fast client
from app.ops.common import (
    ALL,
    DEFAULT_GROUP,
    InvalidId,
    MonitorError,
    NoSuchEntry,
    NoSuchGroup,
    NoSuchStream,
    NotAStream,
)
from app.ops.dlq import (
    DlqEntry,
    Replayed,
    ReplayFailure,
    ReplayResult,
    dlq_length,
    dlq_list,
    dlq_purge,
    dlq_replay,
    dlq_show,
    dlq_streams,
    dlq_summary,
)
from app.ops.entries import (
    Entry,
    PendingEntry,
    PendingSummary,
    entry,
    follow,
    last_id,
    oldest_pending_age,
    pending,
    pending_summary,
    tail,
)
from app.ops.logtable import (
    LogRow,
    LogsAuthFailed,
    LogsUnreachable,
    NoLogTable,
    fetch_logs,
    logs,
    pg_endpoint,
)
from app.ops.overview import (
    ConsumerInfo,
    GroupInfo,
    GroupLag,
    StreamInfo,
    consumers,
    count_after,
    groups,
    lag,
    streams,
)

__all__ = [
    "ALL",
    "DEFAULT_GROUP",
    "ConsumerInfo",
    "DlqEntry",
    "Entry",
    "GroupInfo",
    "GroupLag",
    "InvalidId",
    "LogRow",
    "LogsAuthFailed",
    "LogsUnreachable",
    "MonitorError",
    "NoLogTable",
    "NoSuchEntry",
    "NoSuchGroup",
    "NoSuchStream",
    "NotAStream",
    "PendingEntry",
    "PendingSummary",
    "ReplayFailure",
    "ReplayResult",
    "Replayed",
    "StreamInfo",
    "connect",
    "consumers",
    "count_after",
    "dlq_length",
    "dlq_list",
    "dlq_purge",
    "dlq_replay",
    "dlq_show",
    "dlq_streams",
    "dlq_summary",
    "entry",
    "fetch_logs",
    "follow",
    "groups",
    "lag",
    "last_id",
    "logs",
    "oldest_pending_age",
    "pending",
    "pending_summary",
    "pg_endpoint",
    "streams",
    "tail",
]
