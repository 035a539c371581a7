"""Helpers of the store's tests (tests/integration/test_store*.py): the backends to run a test
on, sample frames with awkward values, exact comparison, private MySQL databases, and the
module fixtures of a store per backend (`backend_, store = store_fixtures("sm_x")`)."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import polars as pl
import pymysql
import pytest
from polars.testing import assert_frame_equal

from store import Store, open_store, parse_dsn, table_spec
from tests.starrocks_sim import StarRocksSim

# Where the store's contract runs: embedded chDB, MariaDB, and StarRocks' protocol simulated
# (Stream Load over HTTP, the SQL side on MariaDB); a ClickHouse server only when one is named.
BACKENDS = ["chdb", "mysql", "starrocks-sim"]
if os.environ.get("TEST_CLICKHOUSE_DSN"):
    BACKENDS.append("clickhouse")


@dataclass
class Backend:
    name: str
    dsn: str  # another instance of the same store: open_store(dsn)
    store: Store
    sim: StarRocksSim | None = None


@contextlib.asynccontextmanager
async def backend(name: str, mysql_dsn: str, prefix: str) -> AsyncIterator[Backend]:
    """A store of backend `name` with its tables created (MySQL ones in a private database)."""
    if name in ("chdb", "clickhouse"):
        dsn = "chdb://" if name == "chdb" else os.environ["TEST_CLICKHOUSE_DSN"]
        s = open_store(dsn)
        await s.create_tables()
        yield Backend(name, dsn, s)
        await s.close()
        return
    with private_database(mysql_dsn, prefix) as dsn:
        maria = open_store(dsn)
        await maria.create_tables()  # the simulation keeps its rows in MariaDB's tables
        if name == "mysql":
            yield Backend(name, dsn, maria)
        else:
            sim = StarRocksSim(dsn).start()
            s = open_store(sim.dsn)
            yield Backend(name, sim.dsn, s, sim)
            await s.close()
            sim.close()
        await maria.close()


def store_fixtures(prefix: str) -> tuple[Any, Any]:
    """Module fixtures `backend_` (one Backend per name in BACKENDS, MySQL ones in a private
    database named from `prefix`) and `store` (its Store); a test module assigns both names."""

    @pytest.fixture(scope="module", params=BACKENDS)
    async def backend_(request: pytest.FixtureRequest, mysql_dsn: str
                       ) -> AsyncIterator[Backend]:
        async with backend(request.param, mysql_dsn, prefix) as b:
            yield b

    @pytest.fixture(scope="module")
    def store(backend_: Backend) -> Store:
        return backend_.store

    return backend_, store


def admin_connection(dsn: str) -> pymysql.connections.Connection:
    """A plain autocommit connection to the DSN's server (no database selected)."""
    d = parse_dsn(dsn)
    return pymysql.connect(
        host=d.host, port=d.port, user=d.user or None, password=d.password, autocommit=True,
        charset="utf8mb4",
    )


@contextlib.contextmanager
def private_database(server_dsn: str, prefix: str) -> Iterator[str]:
    """The DSN of a new database on the server of `server_dsn`, dropped afterwards."""
    database = f"{prefix}_{uuid.uuid4().hex[:10]}"
    conn = admin_connection(server_dsn)
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{database}`")
    try:
        yield urlunsplit(urlsplit(server_dsn)._replace(path=f"/{database}", query=""))
    finally:
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{database}`")
        conn.close()


def new_client() -> str:
    """A unique client id (unicode on purpose), so tests can share tables."""
    return f"клиент-{uuid.uuid4().hex[:10]}"


DATES = [
    dt.date(1900, 1, 1),
    dt.date(1969, 12, 31),
    dt.date(1970, 1, 1),
    dt.date(2024, 2, 29),
    dt.date(2299, 12, 31),
]
FLOATS = [
    0.1,
    1 / 3,
    -2.5e-300,
    1.7976931348623157e308,
    123456789.123456789,
    float(2**53 + 2),
    -7.0,
    None,
]
IDS = [
    "p1",
    "продукт-ё",
    "商品😀",
    "O'Reilly \"quoted\"",
    "back\\slash\\",
    "nul\x00byte ctrl\x1a\n\r\ttab",
    "'); DROP TABLE daily_features; --",
    "100% %s %(x)s {client}",
    " padded ",
    "Case",
    "case",
]


def sample(table: str, client_id: str, n: int = 8) -> pl.DataFrame:
    """A frame for `table` with awkward but valid values, already in the table's dtypes."""
    spec = table_spec(table)
    cols: dict[str, list[object]] = {}
    for i, (name, dtype) in enumerate(spec.schema.items()):
        if name == "client_id":
            cols[name] = [client_id] * n
        elif dtype == pl.String:
            # distinct per row for key columns; shifted per column so rows stay unique
            cols[name] = [
                IDS[(r + i) % len(IDS)] + ("" if r < len(IDS) else str(r)) for r in range(n)
            ]
        elif dtype == pl.Date:
            cols[name] = [DATES[r % len(DATES)] for r in range(n)]
        elif dtype == pl.Float64:
            cols[name] = [FLOATS[(r + i) % len(FLOATS)] for r in range(n)]
        elif dtype == pl.Boolean:
            cols[name] = [(True, False, None)[r % 3] for r in range(n)]
        elif dtype.is_integer() and name in spec.key:
            cols[name] = [r + 1 for r in range(n)]
        elif dtype == pl.Int32:
            cols[name] = [(1, 2, 2147483647, -2147483648, None)[r % 5] for r in range(n)]
        elif dtype == pl.Int64:
            cols[name] = [(0, -(2**63), 2**63 - 1, 7, None)[(r + i) % 5] for r in range(n)]
    frame = pl.DataFrame(cols, schema=spec.schema)
    assert frame.select(spec.key).n_unique() == n, "sample keys must be unique"
    return frame


def features_frame(client_id: str, n: int, seed: int = 0) -> pl.DataFrame:
    """n daily_features rows: 997 products x n/997 days of one feature column, ema_7."""
    idx = pl.int_range(n, eager=True)
    return pl.DataFrame({"i": idx}).select(
        pl.lit(client_id, pl.String).alias("client_id"),
        (pl.col("i") % 997).cast(pl.String).str.pad_start(6, "0").alias("product_id"),
        (pl.lit(dt.date(2020, 1, 1)) + pl.duration(days=pl.col("i") // 997))
        .cast(pl.Date)
        .alias("date"),
        ((pl.col("i").cast(pl.Float64) + seed) / 7).alias("ema_7"),
    )


def assert_same_rows(got: pl.DataFrame, want: pl.DataFrame, table: str) -> None:
    spec = table_spec(table)
    if spec.extensible:  # feature columns the frame has not (other tests') are null here
        assert got.columns[:len(spec.columns)] == spec.columns
        rest = [c for c in got.columns if c not in want.columns]
        assert all(got.get_column(c).null_count() == got.height for c in rest), rest
        got = got.select(want.columns)
        spec = spec.as_read(want.columns)
    assert got.schema == spec.schema
    assert_frame_equal(got.sort(spec.key), want.sort(spec.key), check_exact=True)


