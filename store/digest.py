"""Where a client's data changed, found on the server without moving its rows.

    kept = await store.read("input_digests", client)       # from the last recompute
    now = await store.digest("sales", client)              # computed by the server, in SQL
    changes = changed_since(kept.filter(pl.col("source") == "sales"), now)
    since = earliest(changes)                              # None: nothing changed

`Store.digest(table, client_id, period=..., since=...)` returns one row per (product_id, period)
of the client's rows of a dated table (sales, stock, features, daily_features):

    product_id  Utf8
    period      Date    the first day of the period: the day itself, the Monday, the 1st of month
    rows        Int64   how many rows the period has
    checksum    Int64   an order-independent 64-bit hash of the period's rows (every column)

Only the aggregates cross the network: 100 products x 1000 days are 3,300 monthly rows (33 with
`by_product=False`: per period only, product_id '', the product hashed with the row; what the
features pipeline uses, as it needs only the first changed period). The checksum is per backend
(ClickHouse: XOR of cityHash64 of each row; MySQL protocol: two sums of CRC32s of each row's
text, the same SQL on MariaDB and StarRocks >= 3.3), so compare digests from the same backend
only; an edit goes unseen only if it keeps the row count and collides in 64 bits.
`changed_since` compares two digests of one table: a product whose periods differ anywhere (an
edit, an insert, a deleted row, a new or a deleted product) gets the first such period;
`earliest` is the first over all products. Keeping the digest of the data a recompute used is
the caller's part: the `input_digests` table (client_id, source table, then the columns above)
holds it, written with the results' version.
"""

from __future__ import annotations

import datetime as dt
from typing import Final, Literal, get_args

import polars as pl

from store.schema import TableSpec

__all__ = [
    "DIGEST_SCHEMA", "PERIODS", "Period", "changed_since", "clickhouse_sql", "dated_spec",
    "digestible_spec", "earliest", "from_halves", "mysql_sql",
]

Period = Literal["day", "week", "month"]
PERIODS: Final = get_args(Period)
DIGEST_SCHEMA: Final = pl.Schema(
    {"product_id": pl.String(), "period": pl.Date(), "rows": pl.Int64(), "checksum": pl.Int64()}
)


def dated_spec(spec: TableSpec) -> TableSpec:
    """`spec` if its rows have a `date` (`since` needs one); ValueError otherwise."""
    if spec.schema.get("date") != pl.Date:
        raise ValueError(f"table {spec.name} has no date column: `since` does not apply to it")
    return spec


def digestible_spec(spec: TableSpec) -> TableSpec:
    """`spec` if it can be digested: a product_id and a date, other values floats or key strings."""
    dated_spec(spec)
    if spec.extensible:
        raise ValueError(f"table {spec.name} is a wide table: digests are for the input tables")
    if "product_id" not in spec.key:
        raise ValueError(f"table {spec.name} has no product_id: it cannot be digested")
    odd = [c for c in _hashed(spec) if c != "date" and spec.schema[c] != pl.Float64
           and not (spec.schema[c] == pl.String and c in spec.key)]
    if odd:
        raise ValueError(f"table {spec.name}: columns {odd} cannot be digested")
    return spec


def _hashed(spec: TableSpec, by_product: bool = True) -> list[str]:
    """The columns a row's hash covers (product_id too when the rows are not grouped by it)."""
    skip = ("client_id", "product_id") if by_product else ("client_id",)
    return [c for c in spec.columns if c not in skip]


def clickhouse_sql(spec: TableSpec, period: Period, since: dt.date | None,
                   by_product: bool = True) -> str:
    """Parameters {client:String} and, with `since`, {since:Date32}."""
    start = {"day": "`date`", "week": "toMonday(`date`)", "month": "toStartOfMonth(`date`)"}
    # qualified: the output alias `product_id` ('' per period only) would shadow the column
    values = [f"ifNull(`{spec.name}`.`{c}`, nan)" if spec.schema[c] == pl.Float64
              else f"`{spec.name}`.`{c}`" for c in _hashed(spec, by_product) if c != "date"]
    row_hash = f"cityHash64(toString(`date`), {', '.join(values)})" if values else \
        "cityHash64(toString(`date`))"
    where = " AND `date` >= {since:Date32}" if since else ""
    product = "`product_id`" if by_product else "'' AS `product_id`"
    return (
        f"SELECT {product}, toDate32({start[period]}) AS `period`, toInt64(count()) AS `rows`, "
        f"reinterpretAsInt64(groupBitXor({row_hash})) AS `checksum` FROM `{spec.name}` FINAL "
        f"WHERE `client_id` = {{client:String}}{where} GROUP BY {_group(by_product)}"
    )


def mysql_sql(spec: TableSpec, period: Period, since: dt.date | None,
              by_product: bool = True) -> str:
    """Parameters: client_id (and since) as %s. Returns product_id, period, rows, h1, h2.
    Functions both MariaDB/MySQL and StarRocks (from 3.3: CRC32) have."""
    start = {"day": "`date`",
             "week": "DATE_SUB(`date`, INTERVAL MOD(DAYOFWEEK(`date`) + 5, 7) DAY)",  # Monday
             "month": "DATE_SUB(`date`, INTERVAL DAYOFMONTH(`date`) - 1 DAY)"}
    # COALESCE: CONCAT_WS skips NULLs, which would make (1, NULL) and (NULL, 1) the same text
    texts = [f"COALESCE(CAST(`{c}` AS CHAR), 'N')" for c in _hashed(spec, by_product)]
    # Two CRC32s of the row's text (its columns forwards and backwards), summed: a sum, unlike a
    # XOR (CRC32 is affine), does not cancel edits of two rows alike; sums of 32-bit values stay
    # exact below 2^53 (`+ 0`: a DOUBLE). ~8x cheaper than MD5 on MariaDB (bench/bench_store.py).
    halves = [f"SUM(CRC32(CONCAT_WS('|', {', '.join(order)})) + 0) AS `h{n}`"
              for n, order in ((1, texts), (2, texts[::-1]))]
    where = " AND `date` >= %s" if since else ""
    product = "`product_id`" if by_product else "'' AS `product_id`"
    return (
        f"SELECT {product}, {start[period]} AS `period`, COUNT(*) AS `rows`, "
        f"{', '.join(halves)} FROM `{spec.name}` WHERE `client_id` = %s{where} "
        f"GROUP BY {_group(by_product)}"
    )


def _group(by_product: bool) -> str:
    return "`product_id`, `period`" if by_product else "`period`"


def from_halves(text: pl.DataFrame) -> pl.DataFrame:
    """mysql_sql's answer as text (product_id, period, rows, h1, h2) as DIGEST_SCHEMA."""
    def exact(name: str) -> pl.Expr:  # "123", "1.23e15": integers carried by a DOUBLE
        return pl.col(name).cast(pl.Float64, strict=True).cast(pl.UInt64, strict=True)

    mixed = exact("h1") * (2**32 + 15) + exact("h2")  # wraps modulo 2^64: a hash, not a number
    return text.select(
        pl.col("product_id").cast(pl.String),
        pl.col("period").str.slice(0, 10).str.to_date("%Y-%m-%d", strict=True),  # DATETIME too
        pl.col("rows").cast(pl.Int64, strict=True),
        mixed.reinterpret(signed=True).alias("checksum"),
    )


def changed_since(before: pl.DataFrame, after: pl.DataFrame) -> pl.DataFrame:
    """Per product whose digests differ, the first period that differs: (product_id, since)."""
    keys = ["product_id", "period"]
    both = before.select(*keys, "rows", "checksum").join(
        after.select(*keys, "rows", "checksum"), on=keys, how="full", coalesce=True,
        suffix="_after", nulls_equal=True)
    differs = both.filter(pl.col("rows").ne_missing(pl.col("rows_after"))
                          | pl.col("checksum").ne_missing(pl.col("checksum_after")))
    return (differs.group_by("product_id").agg(since=pl.col("period").min())
            .sort("product_id"))


def earliest(changes: pl.DataFrame) -> dt.date | None:
    """The first changed period over all products of `changed_since`'s answer (None: none)."""
    return changes.get_column("since").min() if changes.height else None  # type: ignore[return-value]
