"""What the log tests share: the seed's two queries verbatim, a running sink, schema helpers."""

from __future__ import annotations

import contextlib
import json
import logging
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from app.observability import pgsink
from app.observability.console import install
from app.observability.metrics import LOG_DROPS
from app.observability.pgsink import PostgresSink
from core import logs

# The seed's two queries, verbatim (docs «Мониторинг / Логи в PostgreSQL»).
SEED_RECENT = """\
-- События, обработанные за последние 10 минут
SELECT timestamp, message, context
FROM secretmagic.logs
WHERE category = 'messenger'
  AND timestamp > NOW() - INTERVAL '10 minutes'
ORDER BY timestamp DESC;"""


SEED_ERRORS = """\
-- Ошибки обработки событий
SELECT timestamp, message, error, context
FROM secretmagic.logs
WHERE category = 'messenger'
  AND level = 'error'
ORDER BY timestamp DESC
LIMIT 20;"""


PASSWORD = "Pa55-w0rd-never-shown"


logger = logging.getLogger(logs.LOGGER_NAME)


log = logs.get("messenger")  # as production code logs


def new_schema() -> str:
    return f"sm_logs_{uuid.uuid4().hex[:12]}"


@contextlib.asynccontextmanager
async def running(dsn: str, schema: str, **kwargs: Any) -> AsyncIterator[PostgresSink]:
    sink = PostgresSink(dsn, schema, **kwargs)
    await sink.start()
    install(sink, libraries=None)
    try:
        yield sink
    finally:
        await sink.stop(10)


async def drop_schema(dsn: str, schema: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


def seqs_in_insertion_order(rows: list[asyncpg.Record]) -> list[int]:
    return [json.loads(r["context"])["seq"] for r in rows]


def sink_messages(caplog: pytest.LogCaptureFixture) -> list[str]:
    """What the sink itself said (category "logs"; console only, never in its table)."""
    return [r.getMessage() for r in caplog.records
            if getattr(r, "category", None) == pgsink.CATEGORY]


def log_drops_total() -> float:
    """secretmagic_log_records_dropped_total, as /metrics would show it."""
    return sum(s.value for m in LOG_DROPS.collect() for s in m.samples if s.name.endswith("_total"))
