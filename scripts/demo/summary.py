"""What happened in a demo run, collected at its end from where it is recorded: the streams and
groups on the Redis, the DLQ, the workers' /metrics, the store's rows, the PostgreSQL log table.
The summary is a plain dict (the demo's `--json`)."""

from __future__ import annotations

import asyncio
import contextlib
import urllib.request
from datetime import datetime
from typing import Any

import redis

from app import ops
from scripts import integrator as integ
from scripts.flow import DLQ, DOWNSTREAM, GROUP, IN_STREAMS, OUT_STREAMS

# How the workers settle an event (secretmagic_events_total's outcomes); "retried" is not final.
FINAL_OUTCOMES = ("handled", "coalesced", "duplicate", "superseded", "dead_lettered")
OUTCOMES = (*FINAL_OUTCOMES, "retried")


def stream_state(r: redis.Redis, stream: str, group: str) -> tuple[int, int, int]:
    """(length, lag, pending) of a group on a stream; a missing group has seen nothing."""
    try:
        length = int(r.xlen(stream))
        if not length:
            return 0, 0, 0
        for g in ops.groups(r, stream):
            if g.name == group:
                return length, g.lag, g.pending
    except ops.NoSuchStream:
        return 0, 0, 0
    return length, length, 0


def _consumers(r: redis.Redis, stream: str, group: str) -> list[str]:
    with contextlib.suppress(ops.MonitorError, redis.ResponseError):
        return [c.name for c in ops.consumers(r, stream, group)]
    return []


def groups(r: redis.Redis) -> list[dict[str, Any]]:
    """Every group of the flow on its streams: consumed = delivered, acked = consumed - pending."""
    rows = []
    for group, streams in {GROUP: IN_STREAMS, **DOWNSTREAM}.items():
        for stream in streams:
            length, lag, pending = stream_state(r, stream, group)
            rows.append({"stream": stream, "group": group, "length": length,
                         "consumed": length - lag, "acked": length - lag - pending,
                         "pending": pending, "lag": lag,
                         "consumers": _consumers(r, stream, group)})
    return rows


def dead_letters(r: redis.Redis) -> list[dict[str, Any]]:
    return [{"stream": e.stream, "entry_id": e.entry_id, "client_id": e.fields.get("client_id"),
             "error_type": e.error_type, "error": e.error, "deliveries": e.deliveries,
             "consumer": e.consumer}
            for e in reversed(ops.dlq_list(r, GROUP, count=1000))]


def scrape_metrics(port: int) -> dict[str, dict[str, int]]:
    """stream -> outcome -> count of a worker's secretmagic_events_total (its /metrics)."""
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    outcomes: dict[str, dict[str, int]] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == "secretmagic_events_total":
                outcomes.setdefault(s.labels["stream"], {})[s.labels["outcome"]] = int(s.value)
    return outcomes


def accounting(published: dict[str, int],
               instances: dict[str, dict[str, dict[str, int]]]) -> dict[str, dict[str, int]]:
    """Per incoming stream: what the integrator published and how the workers settled it."""
    rows = {}
    for stream in IN_STREAMS:
        row = {"published": published.get(stream, 0)}
        for outcome in OUTCOMES:
            row[outcome] = sum(m.get(stream, {}).get(outcome, 0) for m in instances.values())
        rows[stream] = row
    return rows


async def store_rows(dsn: str) -> dict[str, dict[str, int]]:
    """client_id -> table -> rows of what secretmagic wrote."""
    from store import open_store

    store = open_store(dsn)
    rows: dict[str, dict[str, int]] = {}
    try:
        for client_id in integ.ALL_CLIENTS:
            rows[client_id] = {t: (await store.read(t, client_id)).height
                               for t in integ.COUNTED_TABLES}
    finally:
        await store.close()
    return rows


async def pg_now(dsn: str) -> datetime:
    import asyncpg

    conn = await asyncpg.connect(dsn, timeout=5)
    try:
        return await conn.fetchval("SELECT now()")
    finally:
        await conn.close()


SEED_QUERY_1 = """SELECT count(*) FROM secretmagic.logs
WHERE category = 'messenger'
  AND timestamp > NOW() - INTERVAL '10 minutes'
  AND timestamp >= $1"""
SEED_QUERY_2 = """SELECT count(*) FROM secretmagic.logs
WHERE category = 'messenger'
  AND level = 'error'
  AND timestamp >= $1"""


async def log_counts(dsn: str, since: datetime) -> dict[str, Any]:
    """The seed's two log queries (and the retry warnings), for this run's rows."""
    import asyncpg

    conn = await asyncpg.connect(dsn, timeout=5)
    try:
        rows = await conn.fetchval(SEED_QUERY_1, since)
        errors = await conn.fetchval(SEED_QUERY_2, since)
        retried = await conn.fetchval(
            "SELECT count(*) FROM secretmagic.logs WHERE timestamp >= $1 "
            "AND message LIKE 'handler failed; will retry%'", since)
    except (asyncpg.UndefinedTableError, asyncpg.InvalidSchemaNameError):
        rows = errors = retried = 0
    finally:
        await conn.close()
    return {"rows": rows, "errors": errors, "retry_warnings": retried,
            "since": since.isoformat(timespec="seconds")}


def collect(r: redis.Redis, *, published: list[tuple[str, str, dict[str, str]]],
            instances: dict[str, dict[str, dict[str, int]]], store_dsn: str,
            logs_dsn: str | None, log_since: datetime | None) -> dict[str, Any]:
    """The run's numbers; the driver adds what only it knows (mode, services, retry, reports,
    exit codes, timing)."""
    counts: dict[str, int] = {}
    for stream, _, _ in published:
        counts[stream] = counts.get(stream, 0) + 1
    return {
        "published": counts,
        "streams": {s: int(r.xlen(s)) for s in (*IN_STREAMS, *OUT_STREAMS, DLQ)},
        "groups": groups(r),
        "instances": instances,
        "accounting": accounting(counts, instances),
        "dlq": dead_letters(r),
        "store": asyncio.run(store_rows(store_dsn)),
        "logs": asyncio.run(log_counts(logs_dsn, log_since)) if logs_dsn and log_since else None,
    }
