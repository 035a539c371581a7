"""The MySQL text protocol both ways, through pymysql: reads parsed by polars column by column, and
multi-row `INSERT ... VALUES` batches whose literals polars builds for whole columns.

- Reads: one `SELECT ... WHERE client_id = %s [AND date >= %s]`, streamed with an unbuffered
  cursor and turned into polars per chunk. pymysql is given no decoders, so every value arrives
  as text and polars parses whole columns (much faster than pymysql's per-value converters).
- Writes: `INSERT ... VALUES (...),(...)` batches (`batch_rows`, 5000 by default, and at most
  `batch_bytes`, 4 MiB, per statement). The literals follow pymysql's escaping rules (its
  `escape_string` table, or doubled quotes when the server runs with NO_BACKSLASH_ESCAPES).
  pymysql's `executemany` escapes value by value in Python and is about 2x slower
  (bench/bench_store.py).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping

import polars as pl
import pymysql
import pymysql.cursors

from store.frames import cast_read
from store.schema import VERSION, TableSpec

# pymysql's escape table (converters._escape_table), applied by polars to whole columns.
_ESCAPE_FROM = ["\\", "\x00", "\n", "\r", "\x1a", '"', "'"]
_ESCAPE_TO = ["\\\\", "\\0", "\\n", "\\r", "\\Z", '\\"', "\\'"]

_READ_CHUNK = 100_000


def read_text(
    conn: pymysql.connections.Connection, spec: TableSpec, sql: str, client_id: str,
    params: tuple[object, ...],
) -> pl.DataFrame:
    """`sql` (a SELECT with `params`) read as the spec; client_id may be left out of the SELECT.
    A wide table's SELECT * gives its feature columns."""
    chunks: list[pl.DataFrame] = []
    with conn.cursor(pymysql.cursors.SSCursor) as cur:
        cur.execute(sql, params)
        names = [d[0] for d in cur.description or ()]
        if spec.extensible:
            spec = spec.as_read(names)
        text_schema = pl.Schema({c: pl.String() for c in names})
        while rows := cur.fetchmany(_READ_CHUNK):
            text = pl.DataFrame(rows, schema=text_schema, orient="row")
            chunks.append(_parse(spec, text.with_columns(client_id=pl.lit(client_id, pl.String))))
    if not chunks:
        return pl.DataFrame(schema=spec.schema)
    return pl.concat(chunks, rechunk=True) if len(chunks) > 1 else chunks[0]


_TRUE_FALSE = {"1": True, "0": False, "true": True, "false": False}


def _parse(spec: TableSpec, text: pl.DataFrame) -> pl.DataFrame:
    """Text columns as the server sent them → the spec's dtypes."""
    exprs: list[pl.Expr] = []
    for name, dtype in spec.schema.items():
        col = pl.col(name)
        if dtype == pl.Date:
            exprs.append(col.str.to_date("%Y-%m-%d", strict=True))
        elif dtype == pl.Boolean:
            lowered = col.str.to_lowercase()
            exprs.append(lowered.replace_strict(_TRUE_FALSE, return_dtype=pl.Boolean))
        elif dtype == pl.String:
            exprs.append(col)
        else:
            exprs.append(col.cast(dtype, strict=True))
    return cast_read(spec, text.select(exprs))





def _literal(name: str, dtype: pl.DataType, backslash: bool) -> pl.Expr:
    """A SQL literal for every value of a column (NULL for nulls)."""
    col = pl.col(name)
    if dtype == pl.String:
        if backslash:
            escaped = col.str.replace_many(_ESCAPE_FROM, _ESCAPE_TO)
        else:  # NO_BACKSLASH_ESCAPES: a backslash is an ordinary character, only quotes double
            escaped = col.str.replace_all("'", "''", literal=True)
        expr = pl.concat_str(pl.lit("'"), escaped, pl.lit("'"))
    elif dtype == pl.Date:
        expr = pl.concat_str(pl.lit("'"), col.cast(pl.String), pl.lit("'"))
    elif dtype == pl.Boolean:
        expr = col.cast(pl.Int8).cast(pl.String)
    else:  # Float64 (shortest round-trip repr, finite: conform() rejected ±inf), Int32
        expr = col.cast(pl.String)
    return expr.fill_null(pl.lit("NULL"))


def insert_statements(
    spec: TableSpec,
    rows: pl.DataFrame,
    constants: Mapping[str, str],
    backslash: bool = True,
    batch_rows: int = 5000,
    batch_bytes: int = 4 * 1024 * 1024,
) -> Iterator[str]:
    """Multi-row INSERT statements writing `rows` (already conformed to `spec`), plus `constants`
    (column -> SQL literal, the same in every row: the stamp, the version)."""
    if rows.height == 0:
        return
    columns = [*spec.columns, *constants]
    parts = [_literal(c, spec.schema[c], backslash) for c in spec.columns]
    parts += [pl.lit(literal) for literal in constants.values()]
    prefix = f"INSERT INTO `{spec.name}` ({', '.join(f'`{c}`' for c in columns)}) VALUES "
    values = rows.select(
        pl.concat_str(pl.lit("("), pl.concat_str(parts, separator=","), pl.lit(")")).alias("v")
    ).get_column("v")
    # Batch boundaries: at most batch_rows rows and (a single huge row aside) batch_bytes bytes.
    ends = (values.str.len_bytes().cast(pl.Int64) + 1).cum_sum()
    start, n = 0, values.len()
    while start < n:
        base = int(ends[start - 1]) if start else 0
        by_bytes = int(ends.search_sorted(base + batch_bytes - len(prefix), side="right"))
        stop = min(n, start + batch_rows, max(by_bytes, start + 1))
        yield prefix + values.slice(start, stop - start).str.join(",").item()
        start = stop


def constants(spec: TableSpec, stamp: dt.datetime, version: int) -> dict[str, str]:
    """The SQL literals of the columns a write sets the same in every row."""
    out = {spec.stamp: f"'{stamp.strftime('%Y-%m-%d %H:%M:%S.%f')}'"} if spec.stamp else {}
    return {**out, VERSION: str(int(version))}
