"""The replace on StarRocks: Stream Load (store.mysql.streamload) into Primary Key tables, the
bulk path StarRocks documents for production (its docs call INSERT ... VALUES unfit for it: many
small loads fail with "Too many versions"). UNTESTED ON A REAL STARROCKS: tested against a
simulation of the protocol (tests/starrocks_sim.py) whose SQL side is MariaDB.

    1. the fence: SELECT _version FROM store_versions (MySQL protocol); older: Superseded
    2. the client's current keys (from `since` on), to delete those the frame has not
    3. ONE load: the frame's rows (__op = 0, upsert) and the gone keys (__op = 1, delete), each
       row carrying _version; `merge_condition: _version`, so a row never replaces one written
       at a higher version
    4. a load of the fence row, `merge_condition: _version` too: the fence never moves down

A load is one StarRocks transaction: readers see the client's rows before it or after it.
Labels are derived from the work, `sm_<table>_<sha1(client)[:16]>_<version>_<since>_<rows>_<part>`:
a retry of the same write (a redelivered event, a load whose answer was lost) is refused as
"Label Already Exists" and counted as done. What is NOT guaranteed: the fence check (1) is a read
before the loads, so two writers racing past it both load; per key the higher version then wins
(merge_condition), but StarRocks applies DELETEs unconditionally ("DELETE operations do not
support conditional updates"), so the older writer's deletes can remove keys the newer one wrote
until the client's next write. Labels are kept 3 days by default (label_keep_max_second): a
retry later than that loads again (the same rows: harmless).
"""

from __future__ import annotations

import hashlib
import json

import polars as pl

from store.base import Write
from store.mysql.pool import Connection
from store.mysql.streamload import LoadResult, StreamLoader
from store.mysql.text import read_text
from store.mysql.transaction import applied, where
from store.schema import FENCE, VERSION, TableSpec


def label(write: Write, part: str) -> str:
    """The load's label: the same for the same work, different for any other. The work is the
    client, table, version and `since`, and the rows (an order-independent hash of the frame, not
    of the load's body: a retry after a load that went through finds no keys to delete, yet is
    the same work). Two writes at one version with other rows (work no event asked for, stamped
    with the same millisecond) are two loads."""
    client = hashlib.sha1(write.client_id.encode("utf-8")).hexdigest()[:16]
    since = write.since.strftime("%Y%m%d") if write.since else "all"
    columns = hashlib.sha1(",".join(write.rows.columns).encode()).digest()
    rows = int(write.rows.hash_rows(seed=7).sum()) if write.rows.height else 0
    content = hashlib.sha1(columns + rows.to_bytes(8, "little")).hexdigest()[:12]
    return f"sm_{write.spec.name}_{client}_{write.version}_{since}_{content}_{part}"


def _body(spec: TableSpec, frame: pl.DataFrame) -> tuple[bytes, dict[str, str]]:
    """A JSON array of the rows and the headers that map it onto the table."""
    cast = [pl.col(c).cast(pl.Int8) if t == pl.Boolean else pl.col(c)
            for c, t in frame.schema.items()]
    columns = frame.columns
    headers = {
        "format": "json",
        "strip_outer_array": "true",
        "jsonpaths": json.dumps([f"$.{c}" for c in columns]),
        "columns": ", ".join(columns),
        "merge_condition": VERSION,
        "max_filter_ratio": "0",
        "Content-Type": "application/json; charset=utf-8",
    }
    return frame.select(cast).write_json().encode("utf-8"), headers


def _constants(spec: TableSpec, write: Write) -> list[pl.Expr]:
    out = [pl.lit(write.version, pl.Int64).alias(VERSION)]
    if spec.stamp:
        out.append(pl.lit(write.stamp.strftime("%Y-%m-%d %H:%M:%S")).alias(spec.stamp))
    return out


def replace(conn: Connection, loader: StreamLoader, write: Write) -> LoadResult:
    """Steps 1-4 above (blocking: on a worker thread, with a pooled connection)."""
    spec = write.spec
    with conn.cursor() as cur:
        write.admit(applied(cur, write))
    keys = TableSpec(spec.name, pl.Schema({c: spec.schema[c] for c in spec.key}), spec.key)
    condition, params = where(write.client_id, write.since)
    cols = ", ".join(f"`{c}`" for c in spec.key if c != "client_id")
    current = read_text(conn, keys, f"SELECT {cols} FROM `{spec.name}` WHERE {condition}",
                        write.client_id, params)
    gone = current.join(write.rows.select(spec.key), on=list(spec.key), how="anti")
    batch = pl.concat([write.rows.with_columns(__op=pl.lit(0, pl.Int8)),
                       gone.with_columns(__op=pl.lit(1, pl.Int8))], how="diagonal")
    result = LoadResult(label(write, "data"), 0, duplicate=False)
    if batch.height:
        body, headers = _body(spec, batch.with_columns(_constants(spec, write)))
        result = loader.load(spec.name, result.label, body, headers)
    fence = pl.DataFrame({"client_id": [write.client_id], "table_name": [spec.name]})
    body, headers = _body(FENCE, fence.with_columns(_constants(FENCE, write)))
    loader.load(FENCE.name, label(write, "fence"), body, headers)
    return result
