"""The log table: the seed's queries return what was logged, stdlib and library records,
emitting from other threads."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import uuid

import asyncpg
import pytest

from app.observability.console import install
from core import logs
from tests.harness import fetch, wait_until
from tests.integration.logs.kit import (
    SEED_ERRORS,
    SEED_RECENT,
    drop_schema,
    log,
    new_schema,
    running,
)


@pytest.mark.parametrize("exact", [True, False], ids=["schema-secretmagic", "own-schema"])
async def test_seed_queries_return_the_logged_records(pg_dsn: str, exact: bool) -> None:
    schema = "secretmagic" if exact else new_schema()
    marker = uuid.uuid4().hex
    event_id = str(uuid.uuid4())
    try:
        async with running(pg_dsn, schema, flush_interval=0.05) as sink:
            log.info("event handled", stream="sales-updates", entry_id="1-0",
                     event_id=event_id, event_type="sales_updated", client_id="client-1",
                     duration_ms=12.5, marker=marker)
            try:
                raise ValueError("no sales rows for client-1")
            except ValueError as exc:
                log.error("event dead-lettered", error=exc, stream="sales-updates",
                          entry_id="2-0", event_id=event_id, deliveries=5,
                          group="secretmagic-group", marker=marker)
            log.warning("handler failed; will retry", error="TimeoutError: store",
                        stream="stock-updates", entry_id="3-0", marker=marker)
            logs.get("config").info("configuration reloaded", marker=marker)
            log.debug("below the sink's level", marker=marker)
            await wait_until(lambda: sink.written == 4, 10, "4 rows written")

        recent_query = SEED_RECENT.replace("secretmagic.logs", f"{schema}.logs")
        errors_query = SEED_ERRORS.replace("secretmagic.logs", f"{schema}.logs")
        assert (recent_query == SEED_RECENT) is exact
        recent = [r for r in await fetch(pg_dsn, recent_query)
                  if json.loads(r["context"]).get("marker") == marker]
        errors = [r for r in await fetch(pg_dsn, errors_query)
                  if json.loads(r["context"]).get("marker") == marker]

        assert [r["message"] for r in recent] == [
            "handler failed; will retry", "event dead-lettered", "event handled"]
        handled = json.loads(recent[2]["context"])
        assert handled == {"stream": "sales-updates", "entry_id": "1-0", "event_id": event_id,
                           "event_type": "sales_updated", "client_id": "client-1",
                           "duration_ms": 12.5, "marker": marker}
        assert recent[0]["timestamp"] > recent[1]["timestamp"] > recent[2]["timestamp"]

        assert len(errors) == 1
        assert errors[0]["message"] == "event dead-lettered"
        assert errors[0]["error"] == "ValueError: no sales rows for client-1"
        assert json.loads(errors[0]["context"]) == {
            "stream": "sales-updates", "entry_id": "2-0", "event_id": event_id, "deliveries": 5,
            "group": "secretmagic-group", "marker": marker}

        rows = await fetch(pg_dsn, f"SELECT level, category, message, error FROM {schema}.logs "
                                   "WHERE context->>'marker' = $1 ORDER BY timestamp", marker)
        assert [tuple(r) for r in rows] == [
            ("info", "messenger", "event handled", None),
            ("error", "messenger", "event dead-lettered", "ValueError: no sales rows for client-1"),
            ("warning", "messenger", "handler failed; will retry", "TimeoutError: store"),
            ("info", "config", "configuration reloaded", None),
        ]
        index = await fetch(pg_dsn, "SELECT indexdef FROM pg_indexes WHERE schemaname = $1 "
                                    "AND tablename = 'logs'", schema)
        assert any("(category, \"timestamp\")" in r["indexdef"] for r in index)
    finally:
        if exact:  # shared schema: remove only what this test added
            conn = await asyncpg.connect(pg_dsn)
            with contextlib.suppress(asyncpg.UndefinedTableError):
                await conn.execute("DELETE FROM secretmagic.logs WHERE context->>'marker' = $1",
                                   marker)
            await conn.close()
        else:
            await drop_schema(pg_dsn, schema)


async def test_plain_stdlib_records_and_library_records(pg_dsn: str, schema: str) -> None:
    async with running(pg_dsn, schema, flush_interval=0.05) as sink:
        install(sink, libraries=logging.WARNING)  # now other libraries' WARNING+ as well
        logging.getLogger("secretmagic").info(
            "event published", extra={"category": "messenger", "context": {"stream": "s"}})
        logging.getLogger("secretmagic").warning("plain %s", "warning")
        logging.getLogger("somelib.sub").warning("library warning", extra={"channel": "c1"})
        logging.getLogger("somelib.sub").info("library info: below the forwarding level")
        known: dict[str, int] = {}
        try:
            known["missing"]
        except KeyError:
            logging.getLogger("somelib").exception("library failure")
        await wait_until(lambda: sink.written == 4, 10, "4 rows written")
    rows = await fetch(pg_dsn, f"SELECT level, category, message, error, context FROM "
                               f"{schema}.logs ORDER BY timestamp")
    got = [(r["level"], r["category"], r["message"], json.loads(r["context"])) for r in rows]
    assert got == [
        ("info", "messenger", "event published", {"stream": "s"}),
        ("warning", "app", "plain warning", {}),
        ("warning", "somelib", "library warning", {"channel": "c1", "logger": "somelib.sub"}),
        ("error", "somelib", "library failure", {"logger": "somelib"}),
    ]
    assert rows[3]["error"].startswith("Traceback (most recent call last):")
    assert rows[3]["error"].endswith("KeyError: 'missing'")


async def test_emit_from_other_threads(pg_dsn: str, schema: str) -> None:
    per_thread = 1_000

    def worker(name: str) -> None:
        for i in range(per_thread):
            log.info("from a thread", thread=name, seq=i)

    async with running(pg_dsn, schema, batch=100, flush_interval=0.05) as sink:
        threads = [threading.Thread(target=worker, args=(f"t{n}",)) for n in range(4)]
        for t in threads:
            t.start()
        for i in range(per_thread):  # the loop's own thread logs at the same time
            log.info("from the loop", thread="loop", seq=i)
            if i % 50 == 0:
                await asyncio.sleep(0)
        await wait_until(lambda: not any(t.is_alive() for t in threads), 30, "threads done")
        await wait_until(lambda: sink.written == 5 * per_thread, 30, "all rows written")
        assert sink.dropped == 0
    rows = await fetch(pg_dsn, f"SELECT context FROM {schema}.logs ORDER BY ctid")
    assert len(rows) == 5 * per_thread
    by_thread: dict[str, list[int]] = {}
    for r in rows:
        context = json.loads(r["context"])
        by_thread.setdefault(context["thread"], []).append(context["seq"])
    assert by_thread == {name: list(range(per_thread)) for name in ["t0", "t1", "t2", "t3", "loop"]}
