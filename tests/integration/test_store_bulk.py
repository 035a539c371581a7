"""The stores' bulk paths behind the one interface: hostile client ids on every backend and read
path; LOAD DATA and its fallback on MariaDB; the Stream Load client against the StarRocks protocol
simulation (redirect with credentials, duplicate labels, lost answers, filtered rows, error JSON,
connection refused). The simulation is tests/starrocks_sim.py: the real StarRocks is untested."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import polars as pl
import pytest

from core.errors import FatalError, RetryableError, Unavailable
from store import Store, open_store, parse_dsn
from store.frames import InvalidClientId
from store.mysql.streamload import StreamLoader
from tests.services import free_port
from tests.storekit import BACKENDS, Backend, assert_same_rows, backend, new_client, sample


@pytest.fixture(scope="module", params=BACKENDS)
async def backend_(request: pytest.FixtureRequest, mysql_dsn: str) -> AsyncIterator[Backend]:
    async with backend(request.param, mysql_dsn, "sm_bulk") as b:
        yield b


@pytest.fixture(scope="module")
async def starrocks(mysql_dsn: str) -> AsyncIterator[Backend]:
    async with backend("starrocks-sim", mysql_dsn, "sm_sr") as b:
        yield b


HOSTILE = [
    "'; DROP TABLE sales; --",
    "x' OR '1'='1",
    "O'Reilly \"quoted\" `tick`",
    "back\\slash\\",
    "\\'; DELETE FROM sales; -- \\",
    "юникод 😀 商品",
    "nul\x00byte\ttab\nnewline",
    "%s %(x)s {client} UNHEX('00')",
    "x" * 191,  # the longest id every backend keeps
]


def _paths(b: Backend) -> list[str]:
    """The store's DSNs for every read path of this backend."""
    if b.name == "chdb" or b.name == "clickhouse":
        return [b.dsn]
    glue = "&" if "?" in b.dsn else "?"
    return [b.dsn, f"{b.dsn}{glue}read=pymysql"]


@pytest.mark.parametrize("client_id", HOSTILE, ids=range(len(HOSTILE)))
async def test_a_hostile_client_id_is_data_never_sql(backend_: Backend, client_id: str) -> None:
    """Written, read (every read path, with and without since), digested as itself; another
    client's rows and the tables are untouched."""
    canary = new_client()
    await backend_.store.replace("sales", canary, sample("sales", canary))
    mine = sample("sales", client_id)
    await backend_.store.replace("sales", client_id, mine)
    for dsn in _paths(backend_):
        s = open_store(dsn)
        assert_same_rows(await s.read("sales", client_id), mine, "sales")
        since = mine.get_column("date").sort()[2]
        assert_same_rows(await s.read("sales", client_id, since=since),
                         mine.filter(pl.col("date") >= since), "sales")
        assert (await s.digest("sales", client_id)).get_column("rows").sum() == mine.height
        assert_same_rows(await s.read("sales", canary), sample("sales", canary), "sales")
        await s.close()


@pytest.mark.parametrize("client_id", ["x" * 10_000, "x" * 192, "", "bad\udc80surrogate"],
                         ids=["10kB", "192", "empty", "surrogate"])
async def test_an_id_no_store_can_keep_is_refused_before_any_io(
    backend_: Backend, client_id: str
) -> None:
    for call in (backend_.store.read("sales", client_id),
                 backend_.store.replace("sales", client_id, sample("sales", "c").drop("client_id")),
                 backend_.store.digest("sales", client_id)):
        with pytest.raises(InvalidClientId, match="client_id") as info:
            await call
        assert isinstance(info.value, FatalError) and isinstance(info.value, ValueError)


# --- MariaDB: LOAD DATA and the paths kept beside it -------------------------------------------


async def test_mysql_every_path_round_trips_awkward_values(mysql_dsn: str) -> None:
    async with backend("mysql", mysql_dsn, "sm_paths") as b:
        for query in ("", "?write=values", "?read=pymysql", "?write=values&read=pymysql"):
            s = open_store(b.dsn + query)
            for table in ("products", "bom_exploded", "stock"):
                client = new_client()
                await s.replace(table, client, sample(table, client, n=11))
                assert_same_rows(await b.store.read(table, client), sample(table, client, n=11),
                                 table)
                assert_same_rows(await s.read(table, client), sample(table, client, n=11), table)
            await s.close()


async def test_mysql_falls_back_to_values_when_load_data_is_refused(mysql_dsn: str) -> None:
    """A server that does not allow LOCAL INFILE (here: a client that does not offer it, which
    MariaDB 10.11 answers with the same error, 4166) gets INSERT batches, once and for good."""
    async with backend("mysql", mysql_dsn, "sm_fallback") as b:
        s = open_store(b.dsn)
        s._pool._local_infile = False  # type: ignore[attr-defined]
        client = new_client()
        await s.replace("stock", client, sample("stock", client))
        assert s.write_path == "values"  # type: ignore[attr-defined]
        assert_same_rows(await s.read("stock", client), sample("stock", client), "stock")
        await s.close()


# --- StarRocks Stream Load, against the protocol simulation ------------------------------------


async def test_stream_load_follows_the_redirect_with_credentials(starrocks: Backend) -> None:
    sim, s = starrocks.sim, starrocks.store
    assert sim is not None
    client = new_client()
    before = (sim.redirects, sim.unauthorized, len(sim.loads))
    await s.replace("bom", client, sample("bom", client))
    assert_same_rows(await s.read("bom", client), sample("bom", client), "bom")
    assert sim.redirects - before[0] == 2  # the rows' load and the fence's, each via the FE
    assert sim.unauthorized == before[1]
    assert [load["Status"] for load in sim.loads[before[2]:]] == ["Success", "Success"]
    # the BE refuses a load without the credentials: the store's success above carried them
    d = parse_dsn(starrocks.dsn)
    wrong = StreamLoader(d.host, sim.fe_port, d.user or "root", "not-the-password", d.database)
    with pytest.raises(FatalError, match="HTTP 401"):
        wrong.load("bom", "any-label", b"[]", {"format": "json"})


async def test_a_retried_load_is_refused_as_a_duplicate_and_counts_as_done(
    starrocks: Backend,
) -> None:
    """The answer of a committed load is lost (connection closed): the write raises Unavailable,
    the retry meets its label and is done. Sent 2, applied 1, duplicates 1, lost 0."""
    sim, s = starrocks.sim, starrocks.store
    assert sim is not None
    client = new_client()
    frame = sample("products", client)
    duplicates = s.duplicate_loads  # type: ignore[attr-defined]
    sim.drop_answer_next = True
    with pytest.raises(Unavailable, match="stream load"):
        await s.replace("products", client, frame, version=1000)
    assert_same_rows(await s.read("products", client), frame, "products")  # it did commit
    await s.replace("products", client, frame, version=1000)  # the delivery policy's retry
    assert s.duplicate_loads == duplicates + 1  # type: ignore[attr-defined]
    assert_same_rows(await s.read("products", client), frame, "products")
    mine = [load for load in sim.loads if load["table"] == "products"
            and load["Label"].split("_")[3] == "1000"]
    assert [load["Status"] for load in mine][-2:] == ["Success", "Label Already Exists"]


async def test_filtered_rows_fail_the_load_with_its_error_url(starrocks: Backend) -> None:
    s = starrocks.store
    client = new_client()
    good = sample("bom", client)
    await s.replace("bom", client, good)
    bad = good.with_columns(child_id=pl.when(pl.int_range(good.height) == 3)
                            .then(pl.lit("x" * 300)).otherwise("child_id"))
    with pytest.raises(FatalError, match=r"too many filtered rows \(filtered rows: 1, "
                                         r"ErrorURL: http://localhost:\d+/api/_load_error_log"):
        await s.replace("bom", client, bad)
    assert_same_rows(await s.read("bom", client), good, "bom")  # one load: nothing applied


@pytest.mark.parametrize(("message", "kind"), [
    ("Too many versions. tablet_id: 10086, version_count: 1001, limit: 1000", RetryableError),
    ("Unknown column 'qty' in 'bom'", FatalError),
])
async def test_a_failed_load_raises_its_message(
    starrocks: Backend, message: str, kind: type[Exception]
) -> None:
    sim, s = starrocks.sim, starrocks.store
    assert sim is not None
    client = new_client()
    sim.fail_next = message
    with pytest.raises(kind, match=message.split(".")[0]) as info:
        await s.replace("stock", client, sample("stock", client))
    assert type(info.value) is kind
    assert (await s.read("stock", client)).height == 0


async def test_a_label_still_running_is_retried_later(starrocks: Backend) -> None:
    sim = starrocks.sim
    assert sim is not None
    d = parse_dsn(starrocks.dsn)
    loader = StreamLoader(d.host, sim.fe_port, d.user or "root", d.password, d.database)
    sim.labels["sm_running"] = "RUNNING"
    body = json.dumps([{"client_id": "c", "parent_id": "a", "child_id": "b"}]).encode()
    headers = {"format": "json", "strip_outer_array": "true",
               "jsonpaths": '["$.client_id", "$.parent_id", "$.child_id"]',
               "columns": "client_id, parent_id, child_id"}
    with pytest.raises(RetryableError, match="still RUNNING"):
        loader.load("bom", "sm_running", body, headers)
    assert loader.load("bom", "sm_fresh", body, headers).rows == 1


async def test_stream_load_connection_refused_is_unavailable(starrocks: Backend) -> None:
    d = parse_dsn(starrocks.dsn)
    port = free_port()  # nothing listens there; the MySQL side is up
    s: Store = open_store(f"starrocks://{d.user}@{d.host}:{d.port}/{d.database}"
                          f"?http_port={port}")
    client = new_client()
    with pytest.raises(Unavailable, match=rf"stream load at {d.host}:{port}.*Connection"):
        await s.replace("bom", client, sample("bom", client))
    await s.close()
