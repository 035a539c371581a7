"""The PostgreSQL log table, `<schema>.logs (timestamp, level, category, message, error, context
jsonb)`: its DDL, a record as its row, and COPY. The seed's SQL queries it verbatim, so `level`
is lowercase ('error', 'info') and the schema name is folded as PostgreSQL folds unquoted names.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

import asyncpg

from app.observability import records
from core.redact import is_identifier

TABLE = "logs"
COLUMNS = ("timestamp", "level", "category", "message", "error", "context")

Row = tuple[datetime, str, str, str, str | None, str]

# SQLSTATE classes that mean "the connection or the server is gone", not "this data is bad".
_OUTAGE_CLASSES = ("08", "53", "57", "58")

# What PostgreSQL (or asyncpg encoding a row) says of a row it will not take as it is.
REFUSED = (asyncpg.DataError, UnicodeError, TypeError, ValueError)
# What it says when the table (or its schema) is not there any more.
MISSING = (asyncpg.UndefinedTableError, asyncpg.InvalidSchemaNameError)


def validate_schema(schema: str) -> str:
    """A safe schema identifier, lowercased as PostgreSQL folds unquoted names (so that the seed's
    unquoted `secretmagic.logs` and a quoted "secretmagic".logs are the same table)."""
    if not is_identifier(schema):
        raise ValueError(
            f"invalid log schema name {schema!r}: use 1-63 letters, digits or underscores, "
            "not starting with a digit"
        )
    return schema.lower()


def quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def qualified(schema: str) -> str:
    return f"{quote(schema)}.{quote(TABLE)}"


def row(record: logging.LogRecord) -> Row:
    return (
        datetime.fromtimestamp(record.created, UTC),
        record.levelname.lower(),
        records.category(record),
        records.message(record),
        records.error(record, full=True),
        records.to_json(records.context(record)),
    )


def sanitised(row: Row) -> Row:
    """The row with what PostgreSQL refuses in text replaced: NULs spelled `\\x00`, lone
    surrogates (not valid UTF-8) as '?'."""
    ts, level, category, message, error, context = row

    def clean(text: str) -> str:
        return text.replace("\x00", "\\x00").encode("utf-8", "replace").decode("utf-8")

    if "\\u0000" in context:
        context = json.dumps(records.no_nul(json.loads(context)), ensure_ascii=False)
    return (ts, clean(level), clean(category), clean(message),
            None if error is None else clean(error), clean(context))


def ddl(schema: str) -> str:
    """The schema, the table and its (category, timestamp) index, each created if missing."""
    table = qualified(schema)
    return (
        f"CREATE SCHEMA IF NOT EXISTS {quote(schema)};"
        f"CREATE TABLE IF NOT EXISTS {table} ("
        " timestamp timestamptz NOT NULL,"
        " level text NOT NULL,"
        " category text NOT NULL,"
        " message text NOT NULL,"
        " error text,"
        " context jsonb);"
        f"CREATE INDEX IF NOT EXISTS logs_category_timestamp_idx ON {table}"
        " (category, timestamp);"
    )


async def ensure(conn: asyncpg.Connection, schema: str, timeout: float) -> None:
    """Create the table (see `ddl`) unless it exists."""
    if await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", qualified(schema)):
        return
    for attempt in range(3):  # concurrent creators race on the catalog's unique indexes
        try:
            async with conn.transaction():
                await conn.execute(ddl(schema), timeout=timeout)
            return
        except (asyncpg.UniqueViolationError, asyncpg.DuplicateObjectError,
                asyncpg.DuplicateTableError, asyncpg.DuplicateSchemaError):
            if attempt == 2:
                raise


async def copy(conn: asyncpg.Connection, schema: str, rows: list[Row], timeout: float) -> None:
    await conn.copy_records_to_table(TABLE, schema_name=schema, records=rows, columns=COLUMNS,
                                     timeout=timeout)


def is_outage(conn: asyncpg.Connection | None, exc: BaseException) -> bool:
    """Whether `exc` means PostgreSQL (or the way to it) is gone rather than the data is bad."""
    if conn is None or conn.is_closed():
        return True
    if isinstance(exc, OSError | TimeoutError | asyncpg.InterfaceError):
        return True
    if isinstance(exc, asyncpg.PostgresError):
        return str(getattr(exc, "sqlstate", "") or "").startswith(_OUTAGE_CLASSES)
    return False
