"""PostgreSQL going away: stopped mid-run, unreachable at start, stop with it down, the table
dropped, text it refuses; nothing blocks the emitters."""

from __future__ import annotations

import asyncio
import json
import logging
import time

import pytest

from app.observability import pgsink
from app.observability.console import install
from app.observability.pgsink import PostgresSink
from core import logs
from tests.harness import fetch, wait_until
from tests.integration.logs.kit import (
    drop_schema,
    log,
    log_drops_total,
    new_schema,
    running,
    seqs_in_insertion_order,
    sink_messages,
)
from tests.services import PrivatePostgres, free_port


async def test_postgres_stopped_mid_run(private_pg: PrivatePostgres,
                                        caplog: pytest.LogCaptureFixture) -> None:
    server = private_pg
    await asyncio.to_thread(server.start)
    caplog.set_level(logging.INFO, logger=logs.LOGGER_NAME)
    drops_metric = log_drops_total()
    chunks, chunk = 20, 1_000
    seq = 0

    def emit_chunk() -> float:
        nonlocal seq
        started = time.perf_counter()
        for _ in range(chunk):
            log.info("event handled", stream="sales-updates", seq=seq)
            seq += 1
        return time.perf_counter() - started

    async with running(server.dsn, new_schema(), buffer=5_000, batch=500,
                       flush_interval=0.05) as sink:
        # PostgreSQL up: the writer keeps up (it is given the loop between chunks).
        up = 0.0
        for _ in range(chunks):
            up += emit_chunk()
            await wait_until(lambda: sink.queued == 0, 30, "the writer to catch up")
        assert (sink.written, sink.dropped) == (20_000, 0)

        await asyncio.to_thread(server.stop)
        down = 0.0
        for _ in range(chunks):
            down += emit_chunk()
            await asyncio.sleep(0)  # the writer runs into the outage meanwhile
        print(f"\nemitting 20,000 records: PostgreSQL up {up:.3f} s, down {down:.3f} s "
              f"({down / up:.2f}x)")
        # emit() never waits for PostgreSQL: no slower with it down than up (a bound relative
        # to the same run, not in seconds: the machine may be loaded).
        assert down < 5 * max(up, 0.05)
        assert sink.dropped == 15_000  # buffer 5,000: exactly the overflow
        assert sink.queued == 5_000
        assert log_drops_total() == drops_metric + 15_000
        await wait_until(lambda: sink.last_error is not None, 30, "the outage to be noticed")
        assert not sink.connected

        await asyncio.to_thread(server.start)
        await wait_until(lambda: sink.written == 25_000, 60, "the kept records to be written")
        assert sink.connected and sink.queued == 0 and sink.dropped == 15_000

        rows = await fetch(server.dsn, f"SELECT context FROM {sink.schema}.logs ORDER BY ctid")
        assert len(rows) == sink.written == 25_000
        # The first 20,000 before the outage, then the 5,000 kept, in the order they were logged.
        assert seqs_in_insertion_order(rows) == list(range(25_000))

    messages = sink_messages(caplog)
    assert len([m for m in messages if "unavailable;" in m]) == 1
    assert len([m for m in messages if "dropped" in m]) == 1  # once per outage, with the count
    assert any("15000 record(s) dropped" in m for m in messages)


async def test_unreachable_at_start_then_written_when_it_comes(
        private_pg: PrivatePostgres) -> None:
    server = private_pg  # not started: nothing listens on its port
    sink = PostgresSink(server.dsn, new_schema(), flush_interval=0.05, backoff=(0.05, 0.5))
    started = time.perf_counter()
    await sink.start()  # does not raise
    try:
        install(sink, libraries=None)
        assert time.perf_counter() - started < 5
        assert not sink.connected and sink.last_error
        for i in range(100):
            log.info("event handled", seq=i)
        assert sink.queued == 100 and sink.written == 0
        await asyncio.to_thread(server.start)
        await wait_until(lambda: sink.written == 100, 60, "records written once PG is up")
    finally:
        await sink.stop(10)
    rows = await fetch(server.dsn, f"SELECT context FROM {sink.schema}.logs ORDER BY ctid")
    assert seqs_in_insertion_order(rows) == list(range(100))
    assert sink.dropped == 0


async def test_stop_flushes_what_is_queued(pg_dsn: str, schema: str) -> None:
    sink = PostgresSink(pg_dsn, schema, batch=500, flush_interval=30)
    await sink.start()
    install(sink, libraries=None)
    for i in range(3_210):  # not a multiple of the batch: the rest waits for the interval
        log.info("event handled", seq=i)
    await sink.stop(10)
    assert (sink.written, sink.dropped, sink.queued) == (3_210, 0, 0)
    rows = await fetch(pg_dsn, f"SELECT context FROM {schema}.logs ORDER BY ctid")
    assert seqs_in_insertion_order(rows) == list(range(3_210))
    log.info("after stop: not the sink's any more")
    assert sink.written == 3_210 and sink.queued == 0


async def test_stop_with_postgres_down_gives_up_within_the_timeout(
        caplog: pytest.LogCaptureFixture) -> None:
    sink = PostgresSink(f"postgresql://root@127.0.0.1:{free_port()}/test", new_schema())
    await sink.start()
    install(sink, libraries=None)
    for i in range(10):
        log.info("kept", seq=i)
    started = time.perf_counter()
    await sink.stop(0.5)
    assert time.perf_counter() - started < 2
    assert (sink.written, sink.dropped, sink.queued) == (0, 10, 0)
    said = [r for r in caplog.records if getattr(r, "category", None) == pgsink.CATEGORY]
    stopped = [r for r in said if "10 record(s) not written" in r.getMessage()]
    assert len(stopped) == 1
    assert stopped[0].error == sink.last_error  # type: ignore[attr-defined]
    assert stopped[0].context == {"unwritten": 10}  # type: ignore[attr-defined]
    assert not [r for r in said if "dropped" in r.getMessage()]  # reported once, not twice


async def test_table_dropped_while_running_is_recreated(pg_dsn: str, schema: str) -> None:
    async with running(pg_dsn, schema, flush_interval=0.05) as sink:
        log.info("first", seq=0)
        await wait_until(lambda: sink.written == 1, 10, "first row")
        await drop_schema(pg_dsn, schema)
        log.info("second", seq=1)
        await wait_until(lambda: sink.written == 2, 10, "second row")
    rows = await fetch(pg_dsn, f"SELECT context FROM {schema}.logs")
    assert seqs_in_insertion_order(rows) == [1]


async def test_text_postgres_refuses_is_sanitised_not_lost(pg_dsn: str, schema: str) -> None:
    async with running(pg_dsn, schema, flush_interval=0.05) as sink:
        log.info("fine before", seq=0)
        log.info("nul\x00in message", seq=1, value="nul\x00in context")
        log.info("lone surrogate \udcff", seq=2, error="bad \udcff")
        log.info("fine after", seq=3)
        await wait_until(lambda: sink.written == 4, 10, "4 rows written")
        assert sink.dropped == 0
    rows = await fetch(pg_dsn, f"SELECT message, context FROM {schema}.logs ORDER BY ctid")
    assert [r["message"] for r in rows] == [
        "fine before", "nul\\x00in message", "lone surrogate ?", "fine after"]
    assert json.loads(rows[1]["context"])["value"] == "nul\\x00in context"
