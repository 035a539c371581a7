"""Contract tests of the analytical store, run against every backend.

`store` is parametrised: "chdb" is the embedded engine (one in-memory chDB for the whole pytest
process: chDB allows one engine per process), "mysql" a MySQL-protocol server (the session's
`mysql_dsn` from conftest: MariaDB here) in a database of this module's own. Tests isolate
themselves with unique client ids, so they can share tables and run beside other test files.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import math
import os
import re
import subprocess
import sys
import textwrap
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import polars as pl
import pymysql
import pytest

from core.errors import FatalError, Unavailable
from store import TABLES, Store, conform, dialect, mask_dsn, open_store, parse_dsn, table_spec
from store.frames import writable_spec
from store.mysql.text import insert_statements
from store.schema import ALL_TABLES
from tests.services import free_port
from tests.storekit import (
    BACKENDS,
    admin_connection,
    assert_same_rows,
    backend,
    features_frame,
    new_client,
    private_database,
    sample,
)

ROOT = Path(__file__).resolve().parents[2]
SECRET = "s3cr3t-Pw"  # must never show up in an error

# --- fixtures ----------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def store_mysql_dsn(mysql_dsn: str) -> Iterator[str]:
    """A database of this module's own on the session's MySQL-protocol server."""
    with private_database(mysql_dsn, "sm_store") as dsn:
        yield dsn


@pytest.fixture(scope="session", params=BACKENDS)
async def store(request: pytest.FixtureRequest, mysql_dsn: str) -> AsyncIterator[Store]:
    async with backend(request.param, mysql_dsn, "sm_store") as b:
        yield b.store


@pytest.fixture
def client_id() -> str:
    # unicode on purpose; unique per test so tests share tables safely
    return new_client()


# --- contract ----------------------------------------------------------------------------------


async def test_create_tables_is_idempotent_and_reads_are_typed_when_empty(
    store: Store, client_id: str
) -> None:
    if store.name != "starrocks":  # its DDL is StarRocks' own: the simulation's SQL is MariaDB
        await store.create_tables()
        await store.create_tables()
    for table, spec in TABLES.items():
        frame = await store.read(table, client_id)
        assert frame.height == 0
        if spec.extensible:  # the keys, then whatever feature columns other tests brought
            assert frame.columns[:len(spec.columns)] == spec.columns, table
            assert set(frame.dtypes[len(spec.columns):]) <= {pl.Float64}, table
        else:
            assert frame.schema == spec.schema, table


@pytest.mark.parametrize("table", list(TABLES))
async def test_round_trip_every_table(store: Store, client_id: str, table: str) -> None:
    frame = sample(table, client_id)
    assert await store.replace(table, client_id, frame) == frame.height
    assert_same_rows(await store.read(table, client_id), frame, table)


async def test_replace_twice_second_wins_and_redelivery_changes_nothing(
    store: Store, client_id: str
) -> None:
    first = features_frame(client_id, 300)
    second = features_frame(client_id, 120, seed=1)  # fewer keys, other values
    await store.replace("daily_features", client_id, first)
    await store.replace("daily_features", client_id, second)
    assert_same_rows(await store.read("daily_features", client_id), second, "daily_features")
    # the same event delivered again: same rows, no duplicates
    await store.replace("daily_features", client_id, second)
    assert_same_rows(await store.read("daily_features", client_id), second, "daily_features")


async def test_replace_with_empty_frame_clears_the_client(store: Store, client_id: str) -> None:
    await store.replace("bom", client_id, sample("bom", client_id))
    empty = pl.DataFrame(schema=table_spec("bom").schema)
    assert await store.replace("bom", client_id, empty) == 0
    assert (await store.read("bom", client_id)).height == 0


async def test_clients_are_isolated(store: Store, client_id: str) -> None:
    other = client_id + "-other"
    mine, theirs = sample("products", client_id), sample("products", other)
    await store.replace("products", client_id, mine)
    await store.replace("products", other, theirs)
    await store.replace("products", client_id, mine.head(2))
    assert_same_rows(await store.read("products", other), theirs, "products")
    assert_same_rows(await store.read("products", client_id), mine.head(2), "products")


async def test_nasty_client_id(store: Store) -> None:
    client_id = f"x'); DELETE FROM daily_features; -- \\ \x00 😀 {uuid.uuid4().hex[:6]}"
    frame = sample("stock", client_id)
    await store.replace("stock", client_id, frame)
    assert_same_rows(await store.read("stock", client_id), frame, "stock")


async def test_50k_rows_round_trip(store: Store, client_id: str) -> None:
    frame = features_frame(client_id, 50_000)
    assert await store.replace("daily_features", client_id, frame) == 50_000
    assert_same_rows(await store.read("daily_features", client_id), frame, "daily_features")


async def test_frames_are_conformed(store: Store, client_id: str) -> None:
    # no client_id column, columns in another order, ints for floats
    bom = pl.DataFrame({"qty_per": [2, 3], "child_id": ["b", "c"], "parent_id": ["a", "a"]})
    await store.replace("bom", client_id, bom)
    want = pl.DataFrame(  # rows of dicts: the optional columns left out (base_qty, ...) null
        [{"client_id": client_id, "parent_id": "a", "child_id": c, "qty_per": q}
         for c, q in (("b", 2.0), ("c", 3.0))],
        schema=table_spec("bom").schema,
    )
    assert_same_rows(await store.read("bom", client_id), want, "bom")
    # NaN is stored as null (MySQL and StarRocks have no NaN)
    stock = pl.DataFrame(
        {"product_id": ["a", "b"], "date": [dt.date(2024, 1, 1)] * 2,
         "on_hand": [float("nan"), 1.5]}
    )
    await store.replace("stock", client_id, stock)
    got = await store.read("stock", client_id)
    assert got.sort("product_id").get_column("on_hand").to_list() == [None, 1.5]


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda c: sample("sales", c).with_columns(qty=pl.lit(math.inf)), "infinite"),
        (lambda c: pl.concat([sample("sales", c).head(2)] * 2), "share a key"),
        (lambda c: sample("sales", c).drop("qty"), "missing"),
        (lambda c: sample("sales", c).with_columns(extra=pl.lit(1)), "unexpected"),
        (lambda c: sample("sales", c).with_columns(date=pl.lit("not a date")), "cast"),
        (lambda c: sample("sales", c).with_columns(client_id=pl.lit("someone-else")), "another"),
        (lambda c: sample("sales", c).with_columns(product_id=pl.lit(None, pl.String)), "null"),
    ],
    ids=["inf", "duplicate-key", "missing-column", "extra-column", "bad-value", "foreign-rows",
         "null-key"],
)
async def test_bad_frames_are_fatal_and_change_nothing(
    store: Store, client_id: str, make, message: str
) -> None:
    before = sample("sales", client_id)
    await store.replace("sales", client_id, before)
    with pytest.raises(FatalError, match=message):
        await store.replace("sales", client_id, make(client_id))
    assert_same_rows(await store.read("sales", client_id), before, "sales")


async def test_unknown_table_and_bad_client_id_are_value_errors(store: Store) -> None:
    for table in ("nope", "features; DROP TABLE sales", "FEATURES", ""):
        with pytest.raises(ValueError, match="unknown store table"):
            await store.read(table, "c")
        with pytest.raises(ValueError, match="unknown store table"):
            await store.replace(table, "c", pl.DataFrame())
    with pytest.raises(ValueError, match="client_id"):
        await store.read("daily_features", "")


async def test_concurrent_calls(store: Store) -> None:
    clients = [f"conc-{uuid.uuid4().hex[:8]}-{i}" for i in range(10)]
    frames = [features_frame(c, 500 + 100 * i, seed=i) for i, c in enumerate(clients)]
    pairs = zip(clients, frames, strict=True)
    await asyncio.gather(*(store.replace("daily_features", c, f) for c, f in pairs))
    got = await asyncio.gather(*(store.read("daily_features", c) for c in clients))
    for frame, want in zip(got, frames, strict=True):
        assert_same_rows(frame, want, "daily_features")


async def test_io_does_not_block_the_event_loop(store: Store, client_id: str) -> None:
    ticks = 0
    done = asyncio.Event()

    async def ticker() -> None:
        nonlocal ticks
        while not done.is_set():
            ticks += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0)
    start = ticks
    await store.replace("daily_features", client_id, features_frame(client_id, 20_000))
    await store.read("daily_features", client_id)
    done.set()
    await task
    assert ticks - start > 2, "the loop did not run while the store worked"


async def test_ping(store: Store) -> None:
    await store.ping()


# --- backend specifics -------------------------------------------------------------------------


async def test_chdb_runs_on_one_dedicated_thread() -> None:
    from store.clickhouse import CHDB_EXECUTOR

    s = open_store("chdb://")
    assert s.name == "chdb"
    names: set[str] = set()

    def probe(_client: object) -> None:
        names.add(threading.current_thread().name)

    for _ in range(5):
        await s._run("probe", probe)  # type: ignore[attr-defined]
    await s.close()
    assert CHDB_EXECUTOR._max_workers == 1
    assert len(names) == 1 and next(iter(names)).startswith("chdb")
    assert threading.current_thread().name not in names


async def test_chdb_tombstones_survive_merges_and_plain_inserts_upsert(client_id: str) -> None:
    """replace = one insert of new rows + tombstones; FINAL must give the same answer before and
    after the parts are merged, and a writer's plain INSERT (no _version) is an upsert by key."""
    s = open_store("chdb://")
    await s.create_tables()
    first, second = sample("bom_exploded", client_id, 8), sample("bom_exploded", client_id, 3)
    await s.replace("bom_exploded", client_id, first)
    await s.replace("bom_exploded", client_id, second)  # 5 keys become tombstones
    await s.replace("bom_exploded", client_id, first.head(0))  # all gone
    await s.replace("bom_exploded", client_id, second)  # tombstoned keys come back
    assert_same_rows(await s.read("bom_exploded", client_id), second, "bom_exploded")
    await s._run("optimize", lambda c: c.command("OPTIMIZE TABLE bom_exploded FINAL"))  # type: ignore[attr-defined]
    assert_same_rows(await s.read("bom_exploded", client_id), second, "bom_exploded")

    def integrator_insert(client: object) -> None:
        client.command(  # type: ignore[attr-defined]
            "INSERT INTO bom_exploded (client_id, product_id, component_id, quantity, depth) "
            "VALUES ({c:String}, {p:String}, {k:String}, 42, 7)",
            parameters={"c": client_id, "p": second.item(0, "product_id"),
                        "k": second.item(0, "component_id")},
        )

    await s._run("insert", integrator_insert)  # type: ignore[attr-defined]
    got = await s.read("bom_exploded", client_id)
    want = second.with_columns(
        quantity=pl.when(pl.int_range(3) == 0).then(42.0).otherwise("quantity"),
        depth=pl.when(pl.int_range(3) == 0).then(pl.lit(7, pl.Int32)).otherwise("depth"),
    )
    assert_same_rows(got, want, "bom_exploded")
    await s.close()


async def test_chdb_refuses_tables_from_an_older_ddl() -> None:
    s = open_store("chdb://?database=sm_stale_ddl")

    def old_table(client: object) -> None:
        client.command(  # type: ignore[attr-defined]
            "CREATE TABLE IF NOT EXISTS stock (client_id String, product_id String, `date` Date32, "
            "on_hand Nullable(Float64), _version UInt64) "
            "ENGINE = ReplacingMergeTree(_version) ORDER BY (client_id, product_id, `date`)"
        )

    await s._run("setup", old_table)  # type: ignore[attr-defined]
    with pytest.raises(FatalError, match=r"\['stock'\] predate"):
        await s.create_tables()
    await s.close()


def test_chdb_persistent_directory_and_one_engine_per_process(tmp_path: Path) -> None:
    """chdb://./relative and chdb:///absolute persist across processes; a second location in one
    process is a FatalError. (Subprocesses: this process already hosts the in-memory engine.)"""
    script = textwrap.dedent(
        """
        import asyncio, sys
        import polars as pl
        from core.errors import FatalError
        from store import open_store

        async def main(mode, dsn):
            if mode == "write":
                mem = open_store("chdb://")
                await mem.ping()
                try:
                    await open_store(dsn).ping()
                    print("second location opened")
                except FatalError as exc:
                    print("fatal:", "one engine location per process" in str(exc))
                await mem.close()
                s = open_store(dsn)
                await s.create_tables()
                await s.replace("bom", "c", pl.DataFrame(
                    {"parent_id": ["a"], "child_id": ["b"], "qty_per": [2.5]}))
            else:
                s = open_store(dsn)
                print("rows:", (await s.read("bom", "c")).select(
                    "client_id", "parent_id", "child_id", "qty_per").rows())
            await s.close()

        asyncio.run(main(sys.argv[1], sys.argv[2]))
        """
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    relative = os.path.relpath(tmp_path / "rel", Path.cwd())
    for dsn in (f"chdb://./{relative}", f"chdb://{tmp_path / 'abs'}"):
        out = []
        for mode in ("write", "read"):
            proc = subprocess.run(
                [sys.executable, "-c", script, mode, dsn],
                capture_output=True, text=True, timeout=120, env=env, cwd=Path.cwd(),
            )
            assert proc.returncode == 0, proc.stderr[-2000:]
            out.append(proc.stdout)
        assert "fatal: True" in out[0], out[0]
        assert "rows: [('c', 'a', 'b', 2.5)]" in out[1], out[1]


@pytest.fixture
async def mysql_store(store_mysql_dsn: str) -> AsyncIterator[Store]:
    s = open_store(store_mysql_dsn + "?batch_rows=3&pool_size=2")
    await s.create_tables()
    yield s
    await s.close()


@pytest.mark.parametrize(("path", "refusal"), [
    ("load_data", "Data truncated for column 'product_id'"),  # a LOAD DATA warning, made an error
    ("values", "Data too long for column 'product_id'"),  # the 3rd INSERT batch (of 3 rows)
])
async def test_mysql_replace_is_one_transaction(
    store_mysql_dsn: str, client_id: str, path: str, refusal: str
) -> None:
    s = open_store(f"{store_mysql_dsn}?batch_rows=3&write={path}")
    await s.create_tables()
    before = features_frame(client_id, 5, seed=3)
    await s.replace("daily_features", client_id, before)
    # valid for polars, too long for the server's VARCHAR(191), in the last row
    after = features_frame(client_id, 9).with_columns(
        product_id=pl.when(pl.int_range(9) == 8).then(pl.lit("x" * 300)).otherwise("product_id")
    )
    with pytest.raises(FatalError, match=rf"mysql store at .*replace daily_features.*{refusal}"):
        await s.replace("daily_features", client_id, after)
    assert_same_rows(await s.read("daily_features", client_id), before, "daily_features")
    await s.close()


async def test_mysql_reconnects_when_pooled_connections_die(
    mysql_store: Store, store_mysql_dsn: str, client_id: str
) -> None:
    frame = sample("products", client_id)
    await asyncio.gather(  # two connections in the pool
        mysql_store.replace("products", client_id, frame),
        mysql_store.replace("products", client_id + "-2", sample("products", client_id + "-2")),
    )
    idle = list(mysql_store._pool.idle)  # type: ignore[attr-defined]
    assert idle
    admin = admin_connection(store_mysql_dsn)
    with admin.cursor() as cur:
        for conn in idle:
            cur.execute(f"KILL {conn.thread_id()}")
    admin.close()
    assert_same_rows(await mysql_store.read("products", client_id), frame, "products")


async def test_mysql_no_backslash_escapes_mode(store_mysql_dsn: str, client_id: str) -> None:
    """The other escaping rule: with NO_BACKSLASH_ESCAPES only quotes are doubled."""
    s = open_store(store_mysql_dsn)
    await s.create_tables()
    frame = sample("bom", client_id, n=11)
    conn = pymysql.connect(**_connect_args(store_mysql_dsn))
    with conn.cursor() as cur:
        cur.execute(
            "SET SESSION sql_mode = CONCAT_WS(',', NULLIF(@@sql_mode, ''), 'NO_BACKSLASH_ESCAPES')"
        )
        cur.execute("SELECT @@SESSION.sql_mode")
        row = cur.fetchone()
        assert row and "NO_BACKSLASH_ESCAPES" in row[0]
        for sql in insert_statements(table_spec("bom"), frame, {}, backslash=False):
            cur.execute(sql)
    conn.close()
    assert_same_rows(await s.read("bom", client_id), frame, "bom")
    await s.close()


def _connect_args(dsn: str) -> dict[str, Any]:
    d = parse_dsn(dsn)
    return {"host": d.host, "port": d.port, "user": d.user or None, "password": d.password,
            "database": d.database, "charset": "utf8mb4", "autocommit": True}


def test_insert_statements_batches_by_rows_and_bytes() -> None:
    frame = features_frame("c", 100)
    spec = writable_spec(table_spec("daily_features"), frame)
    rows = conform(spec, "c", frame)
    by_rows = list(insert_statements(spec, rows, {}, batch_rows=7))
    assert len(by_rows) == 15
    assert all(s.startswith("INSERT INTO `daily_features` (") for s in by_rows)
    assert sum(s.count("),(") + 1 for s in by_rows) == 100
    by_bytes = list(insert_statements(spec, rows, {}, batch_rows=10_000, batch_bytes=600))
    assert len(by_bytes) > 5
    assert all(len(s.encode()) <= 600 for s in by_bytes)
    assert sum(s.count("),(") + 1 for s in by_bytes) == 100
    assert list(insert_statements(spec, rows.head(0), {})) == []


# --- failures: store down, bad DSNs ------------------------------------------------------------


@pytest.mark.parametrize("scheme", ["mysql", "starrocks", "clickhouse"])
async def test_store_down_is_unavailable_and_names_backend_and_host(scheme: str) -> None:
    port = free_port()  # nothing listens there
    s = open_store(f"{scheme}://user:{SECRET}@127.0.0.1:{port}/db?connect_timeout=2")
    calls = [
        s.ping(),
        s.create_tables(),
        s.read("daily_features", "c"),
        s.replace("daily_features", "c", features_frame("c", 3)),
    ]
    for call in calls:
        with pytest.raises(Unavailable) as info:  # waited out by the policy, never DLQ'd
            await call
        message = str(info.value)
        assert scheme in message and f"127.0.0.1:{port}" in message, message
        assert SECRET not in message and SECRET not in repr(info.value)
        assert info.value.__cause__ is None  # driver exceptions are not chained
    assert SECRET not in repr(s)
    await s.close()


@pytest.mark.parametrize(
    ("dsn", "fragment"),
    [
        (f"postgres://user:{SECRET}@host/db", "scheme 'postgres'"),
        (f"redis://:{SECRET}@host:6379/0", "scheme 'redis'"),
        (f"user:{SECRET}@host", "scheme"),
        (f"mysql://user:{SECRET}@host:99999/db", "port"),
        (f"mysql://user:{SECRET}@host:abc/db", "port"),
        (f"mysql://user:{SECRET}@host:0/db", "port"),
        (f"mysql://user:{SECRET}@host:3306", "database"),
        (f"mysql://user:{SECRET}@:3306/db", "host"),
        (f"mysql://user:{SECRET}@host/db?pool=3", "unknown option"),
        (f"mysql://user:{SECRET}@host/db?pool_size=many", "not a number"),
        (f"starrocks://user:{SECRET}@host/db?pool_size=0", "positive"),
        (f"clickhouse://user:{SECRET}@host:8123/bad-db", "database"),
        (f"chdb://user:{SECRET}@somewhere", "chdb"),
        ("", "scheme"),
    ],
)
def test_bad_dsn_is_value_error_without_password(dsn: str, fragment: str) -> None:
    with pytest.raises(ValueError) as info:
        open_store(dsn)
    message = str(info.value)
    assert fragment in message, message
    assert SECRET not in message
    if "://" in dsn and "@" in dsn:
        assert "***" in message, message


def test_dsn_parsing() -> None:
    assert parse_dsn("chdb://").path == ""
    assert parse_dsn("chdb://").database == "secretmagic"
    assert parse_dsn("chdb:///var/lib/sm").path == "/var/lib/sm"
    assert parse_dsn("chdb://./data/chdb").path == "./data/chdb"
    assert parse_dsn("chdb://./data?database=other").database == "other"
    my = parse_dsn("mysql://u:p%40ss%2Fw@db.local/analytics")
    assert (my.host, my.port, my.user, my.password, my.database) == (
        "db.local", 3306, "u", "p@ss/w", "analytics")
    assert SECRET not in repr(parse_dsn(f"mysql://u:{SECRET}@h/db"))
    assert parse_dsn("starrocks://u@fe:9030/sm").port == 9030
    assert parse_dsn("starrocks://u@fe/sm").port == 9030
    assert parse_dsn("clickhouse://h").database == "default"
    assert parse_dsn("clickhouses://h").port == 8443
    assert mask_dsn(f"mysql://u:{SECRET}@h/db") == "mysql://u:***@h/db"
    assert mask_dsn(f"mysql://u:{SECRET}@x@h/db") == "mysql://u:***@h/db"
    assert mask_dsn("chdb://./x") == "chdb://./x"


def test_open_store_dispatches_by_scheme() -> None:
    names = {
        "chdb://": "chdb",
        "clickhouse://u:p@h:8123/db": "clickhouse",
        "mysql://u:p@h/db": "mysql",
        "starrocks://u:p@h/db": "starrocks",
    }
    for dsn, name in names.items():
        s = open_store(dsn)  # no I/O until the first call
        assert isinstance(s, Store)
        assert s.name == name


# --- DDL ---------------------------------------------------------------------------------------


def _key_of(statement: str, clause: str) -> tuple[str, ...]:
    match = re.search(clause + r"\s*\(([^)]*)\)", statement)
    assert match, statement
    return tuple(c.strip().strip("`") for c in match.group(1).split(","))


@pytest.mark.parametrize(
    ("name", "clause"),
    [("mysql", r"PRIMARY KEY"), ("starrocks", r"PRIMARY KEY"), ("clickhouse", r"ORDER BY")],
)
def test_generated_ddl_has_every_table_column_and_key(name: str, clause: str) -> None:
    statements = dialect.statements(name)
    specs = {spec.name: spec for spec in ALL_TABLES}
    assert len(statements) == len(specs) == len(TABLES) + 1  # + the version fence
    for statement in statements:
        table = re.search(r"CREATE TABLE IF NOT EXISTS `(\w+)`", statement)
        assert table, statement
        spec = specs[table.group(1)]
        assert _key_of(statement, clause) == spec.storage_key
        assert sorted(spec.storage_key) == sorted(spec.key) and spec.storage_key[0] == "client_id"
        for column in [*spec.columns, *([spec.stamp] if spec.stamp else []), "_version"]:
            assert f"`{column}`" in statement, (name, spec.name, column)
        if name == "starrocks":
            assert "DISTRIBUTED BY HASH (`client_id`)" in statement
            assert "ENGINE" not in statement


@pytest.mark.parametrize("name", dialect.DIALECTS)
def test_reference_ddl_files_are_what_the_specs_generate(name: str) -> None:
    path = ROOT / "store" / "ddl" / f"{name}.sql"
    assert path.read_text(encoding="utf-8") == dialect.reference(name), (
        f"{path} is stale: run .venv/bin/python -m store.dialect")
