"""What one backend does its own way: chDB's dedicated thread, tombstones and one engine per
process; MariaDB's transactional replace, reconnects, NO_BACKSLASH_ESCAPES, INSERT batching."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import polars as pl
import pymysql
import pytest

from core.errors import FatalError
from store import Store, conform, open_store, parse_dsn, table_spec
from store.frames import writable_spec
from store.mysql.text import insert_statements
from tests.harness import ROOT
from tests.storekit import (
    admin_connection,
    assert_same_rows,
    features_frame,
    sample,
)


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
