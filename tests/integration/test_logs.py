"""Dual logging: console lines and the PostgreSQL log table (the seed's «Логи в PostgreSQL»).

Real PostgreSQL: the session's `pg_dsn` for the table and the seed's queries, a private server
(tests/services.PrivatePostgres) where PostgreSQL has to go away and come back.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import io
import json
import logging
import re
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import asyncpg
import pytest

from app.observability import pgsink
from app.observability.console import ConsoleFormatter, install, setup_console, uninstall
from app.observability.metrics import LOG_DROPS
from app.observability.pgsink import PostgresSink
from core import logs
from core.redact import Redactor, mask_dsn
from tests.harness import fetch, wait_until
from tests.services import PrivatePostgres, free_port

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


@pytest.fixture(autouse=True)
def _restore_logger_level() -> Iterator[None]:
    level = logger.level
    yield
    logger.setLevel(level)


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


@pytest.fixture
async def schema(pg_dsn: str) -> AsyncIterator[str]:
    name = new_schema()
    yield name
    await drop_schema(pg_dsn, name)


@pytest.fixture
def private_pg() -> Iterator[PrivatePostgres]:
    server = PrivatePostgres()
    yield server
    server.close()


def seqs_in_insertion_order(rows: list[asyncpg.Record]) -> list[int]:
    return [json.loads(r["context"])["seq"] for r in rows]


# --- the seed's queries ---------------------------------------------------------------------------


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


# --- PostgreSQL going away ------------------------------------------------------------------------


async def test_postgres_stopped_mid_run(private_pg: PrivatePostgres,
                                        caplog: pytest.LogCaptureFixture) -> None:
    server = private_pg
    await asyncio.to_thread(server.start)
    caplog.set_level(logging.INFO, logger=logs.LOGGER_NAME)
    drops_metric = _log_drops_total()
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
        assert _log_drops_total() == drops_metric + 15_000
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


def sink_messages(caplog: pytest.LogCaptureFixture) -> list[str]:
    """What the sink itself said (category "logs"; console only, never in its table)."""
    return [r.getMessage() for r in caplog.records
            if getattr(r, "category", None) == pgsink.CATEGORY]


def _log_drops_total() -> float:
    """secretmagic_log_records_dropped_total, as /metrics would show it."""
    return sum(s.value for m in LOG_DROPS.collect() for s in m.samples if s.name.endswith("_total"))


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


# --- validation and secrets -----------------------------------------------------------------------


@pytest.mark.parametrize("name", ["bad;drop", 'x"y', "1abc", "", "a" * 64, "secret magic",
                                  "public.logs", "ünïcode", "x'; DROP TABLE t; --"])
def test_bad_schema_name_is_refused_by_name(name: str) -> None:
    with pytest.raises(ValueError) as raised:
        PostgresSink(f"postgresql://root:{PASSWORD}@127.0.0.1:5432/test", name)
    assert repr(name) in str(raised.value)
    assert PASSWORD not in str(raised.value)


def test_schema_name_is_folded_like_an_unquoted_identifier() -> None:
    assert PostgresSink("postgresql://root@127.0.0.1/test", "SecretMagic").schema == "secretmagic"


def test_bad_dsn_is_refused_without_its_password() -> None:
    for dsn in (f"postgresql://root:{PASSWORD}@127.0.0.1:notaport/test",
                f"mysql://root:{PASSWORD}@127.0.0.1/test"):
        with pytest.raises(ValueError) as raised:
            PostgresSink(dsn)
        assert PASSWORD not in str(raised.value)


def test_mask_dsn() -> None:
    assert mask_dsn(f"postgresql://root:{PASSWORD}@db:5432/x") == "postgresql://root:***@db:5432/x"
    assert mask_dsn(f"postgresql://root@db/x?password={PASSWORD}&sslmode=require") == \
        "postgresql://root@db/x?password=***&sslmode=require"
    assert mask_dsn("postgresql://root@db/x") == "postgresql://root@db/x"
    # The userinfo ends where drivers end it, at the authority's last '@' ...
    assert mask_dsn(f"postgresql://root:{PASSWORD}@db/x?application_name=me@host") == \
        "postgresql://root:***@db/x?application_name=me@host"
    assert mask_dsn("postgresql://root@db/x?application_name=me@host") == \
        "postgresql://root@db/x?application_name=me@host"
    assert mask_dsn("postgresql://root:p@ss@db/x") == "postgresql://root:***@db/x"
    # ... or, for a password with an unencoded '/', '?' or '#', at the DSN's last '@'.
    assert mask_dsn("postgresql://root:pa/ss#1@db/x") == "postgresql://root:***@db/x"


def test_redactor_removes_the_password_in_every_form() -> None:
    encoded = PASSWORD.replace("-", "%2D")
    redact = Redactor(f"postgresql://root:{encoded}@db/x?application_name=me@host")
    said = (f"connect to postgresql://root:{encoded}@db/x?application_name=me@host failed: "
            f"password {PASSWORD!r} (as sent: {encoded}) refused")
    assert redact(said) == ("connect to postgresql://root:***@db/x?application_name=me@host "
                            "failed: password '***' (as sent: ***) refused")


async def test_password_never_appears_in_log_output(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    port = free_port()
    for dsn in (f"postgresql://root:{PASSWORD}@127.0.0.1:{port}/test",
                f"postgresql://root@127.0.0.1:{port}/test?password={PASSWORD}"):
        sink = PostgresSink(dsn, new_schema(), flush_interval=0.05, backoff=(0.02, 0.05))
        await sink.start()
        install(sink, libraries=logging.DEBUG)
        log.error("something failed", error=RuntimeError("x"))
        await wait_until(functools.partial(getattr, sink, "last_error"), 10,
                         "a failed connection attempt")
        await sink.stop(0.3)
        console = "\n".join(ConsoleFormatter().format(r) for r in caplog.records)
        shown = [console, repr(sink), str(sink.last_error), sink.target]
        assert "unavailable" in console and f"error={json.dumps(sink.last_error)}" in console
        assert "***" in sink.target
        for text in shown:
            assert PASSWORD not in text


# --- threads --------------------------------------------------------------------------------------


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


# --- console --------------------------------------------------------------------------------------


def test_console_lines_and_idempotent_setup() -> None:
    out = io.StringIO()
    handler = setup_console("INFO", stream=out)
    try:
        assert setup_console(logging.INFO, stream=out) is handler
        assert logger.handlers.count(handler) == 1
        log.info("event handled", stream="sales-updates", entry_id="1-0", duration_ms=12)
        log.error("event failed", error=ValueError("boom"), entry_id="2-0")
        log.debug("not shown")
        logs.get("config").warning("two\nlines", path="/etc/a b.yaml")
        logging.getLogger("somelib.sub").warning("library says %s", "hi")
        logging.getLogger("somelib.sub").info("below the forwarding level")
    finally:
        uninstall(handler)
    lines = out.getvalue().splitlines()
    ts = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"
    assert re.fullmatch(ts + " INFO  messenger  event handled  "
                        "stream=sales-updates entry_id=1-0 duration_ms=12", lines[0]), lines[0]
    assert re.fullmatch(ts + ' ERROR messenger  event failed  entry_id=2-0  '
                        'error="ValueError: boom"', lines[1]), lines[1]
    assert re.fullmatch(ts + r' WARNING config  two\\nlines  path="/etc/a b.yaml"',
                        lines[2]), lines[2]
    assert re.fullmatch(ts + " WARNING somelib  library says hi  logger=somelib.sub",
                        lines[3]), lines[3]
    assert len(lines) == 4
