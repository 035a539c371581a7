"""The PostgreSQL log table: the seed's two SQL queries, as `secretmagic logs [--errors]`."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from datetime import UTC
from typing import Any
from urllib.parse import urlsplit

from app.ops.common import MonitorError, Result
from core.redact import Redactor, is_identifier, mask_dsn

# --- the PostgreSQL log table (the seed's two SQL queries) ---------------------------------------


class LogsUnreachable(MonitorError):
    """PostgreSQL cannot be reached (the message names host:port, never the password)."""


class LogsAuthFailed(MonitorError):
    """PostgreSQL refused the credentials of the DSN."""


class NoLogTable(MonitorError):
    """The schema or its `logs` table does not exist (nothing was logged there yet)."""


@dataclasses.dataclass(frozen=True)
class LogRow(Result):
    timestamp: str
    level: str
    category: str
    message: str
    error: str | None
    context: Any


def pg_endpoint(dsn: str) -> str:
    """host:port of a PostgreSQL DSN (safe to show: no user, no password)."""
    try:
        parts = urlsplit(dsn)
        return f"{parts.hostname or 'localhost'}:{parts.port or 5432}"
    except ValueError:
        return "PostgreSQL (unparsable DSN)"


def _redacted(message: str, dsn: str) -> str:
    return Redactor(dsn)(message).replace(mask_dsn(dsn), pg_endpoint(dsn))


async def fetch_logs(
    dsn: str,
    schema: str = "secretmagic",
    *,
    category: str | None = "messenger",
    errors_only: bool = False,
    since_s: float | None = 600.0,
    limit: int = 100,
    wait_s: float = 5.0,
) -> list[LogRow]:
    """Rows of `<schema>.logs`, newest first.

    The defaults are the seed's first query (category 'messenger', last 10 minutes); with
    errors_only=True, since_s=None, limit=20 it is the second (level 'error'). `wait_s` bounds
    the connection (the query gets six times as long).
    """
    import asyncpg

    if not is_identifier(schema):
        raise MonitorError(f"invalid log schema name {schema!r}")
    where: list[str] = []
    params: list[Any] = []
    if category is not None:
        params.append(category)
        where.append(f"category = ${len(params)}")
    if errors_only:
        where.append("level = 'error'")
    if since_s is not None:
        params.append(float(since_s))
        where.append(f"timestamp > NOW() - make_interval(secs => ${len(params)})")
    params.append(int(limit))
    sql = (
        f'SELECT timestamp, level, category, message, error, context::text AS context '
        f'FROM "{schema.lower()}".logs'
        + (f" WHERE {' AND '.join(where)}" if where else "")
        + f" ORDER BY timestamp DESC LIMIT ${len(params)}"
    )
    endpoint = pg_endpoint(dsn)
    try:
        conn = await asyncpg.connect(dsn, timeout=wait_s)
    except (asyncpg.InvalidPasswordError, asyncpg.InvalidAuthorizationSpecificationError) as exc:
        raise LogsAuthFailed(
            f"authentication failed for PostgreSQL at {endpoint}: {_redacted(str(exc), dsn)}"
        ) from None
    except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        reason = _redacted(str(exc), dsn) or type(exc).__name__
        raise LogsUnreachable(f"cannot reach PostgreSQL at {endpoint}: {reason}") from None
    try:
        rows = await conn.fetch(sql, *params, timeout=wait_s * 6)
    except (asyncpg.UndefinedTableError, asyncpg.InvalidSchemaNameError):
        raise NoLogTable(
            f"no log table {schema.lower()}.logs in PostgreSQL at {endpoint} (nothing logged yet?)"
        ) from None
    finally:
        await conn.close()
    return [
        LogRow(
            timestamp=row["timestamp"].astimezone(UTC).isoformat().replace("+00:00", "Z"),
            level=row["level"],
            category=row["category"],
            message=row["message"],
            error=row["error"],
            context=json.loads(row["context"]) if row["context"] is not None else None,
        )
        for row in rows
    ]


def logs(dsn: str, schema: str = "secretmagic", **options: Any) -> list[LogRow]:
    """fetch_logs() for synchronous callers (the CLI)."""
    return asyncio.run(fetch_logs(dsn, schema, **options))
