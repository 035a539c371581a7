"""Each backend's DDL, generated from the table specs (store.schema): one definition of the tables.

    statements("mysql")      # CREATE TABLE IF NOT EXISTS ... for every table, as create_tables runs
    reference("starrocks")   # the same with its notes: the text of store/ddl/starrocks.sql

store/ddl/*.sql are generated reference files for people (a DBA creating the StarRocks tables by
hand, a reviewer); the code never reads them. Regenerate after changing a spec:

    .venv/bin/python -m store.dialect

and tests/integration/store/test_dsn_ddl.py fails while a file and the specs disagree.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Final

import polars as pl

from store.schema import ALL_TABLES, VERSION, TableSpec

__all__ = [
    "DIALECTS", "add_column", "column_type", "create_table", "reference", "statements",
    "system_columns", "upgrade",
]

DIALECTS: Final = ("clickhouse", "mysql", "starrocks")
REFERENCE_DIR: Final = Path(__file__).resolve().parent / "ddl"

# polars dtype -> SQL type, per dialect (strings: key columns, then other columns)
_TYPES: Final[dict[str, dict[pl.DataType, str]]] = {
    "clickhouse": {pl.Date(): "Date32", pl.Float64(): "Float64", pl.Boolean(): "Bool",
                   pl.Int32(): "Int32", pl.Int64(): "Int64"},
    "mysql": {pl.Date(): "DATE", pl.Float64(): "DOUBLE", pl.Boolean(): "BOOLEAN",
              pl.Int32(): "INT", pl.Int64(): "BIGINT"},
    "starrocks": {pl.Date(): "DATE", pl.Float64(): "DOUBLE", pl.Boolean(): "BOOLEAN",
                  pl.Int32(): "INT", pl.Int64(): "BIGINT"},
}
# VARCHAR(191) keeps MariaDB's widest key (4 x 191 x 4 bytes) under InnoDB's 3072-byte index limit;
# StarRocks counts VARCHAR lengths in bytes.
_STRINGS: Final = {"clickhouse": ("String", "String"), "mysql": ("VARCHAR(191)", "VARCHAR(1024)"),
                   "starrocks": ("VARCHAR(255)", "VARCHAR(1024)")}
_STAMPS: Final = {"clickhouse": "DateTime64(6, 'UTC') DEFAULT now64(6)",
                  "mysql": "DATETIME(6) NOT NULL", "starrocks": "DATETIME NOT NULL"}
# The columns the store keeps besides the spec's: the write's version everywhere (a row inserted
# without one gets the insert time on the same scale as core.wire.position: ms << 20), and on
# ClickHouse the tombstone flag of ReplacingMergeTree.
CLICKHOUSE_VERSION_DEFAULT: Final = "bitShiftLeft(toUInt64(toUnixTimestamp64Milli(now64(3))), 20)"
_SYSTEM: Final = {
    "clickhouse": ((VERSION, f"UInt64 DEFAULT {CLICKHOUSE_VERSION_DEFAULT}"),
                   ("_deleted", "UInt8 DEFAULT 0")),
    "mysql": ((VERSION, "BIGINT NOT NULL DEFAULT 0"),),
    "starrocks": ((VERSION, 'BIGINT NOT NULL DEFAULT "0"'),),
}


def _check(dialect: str) -> None:
    if dialect not in DIALECTS:
        raise ValueError(f"unknown DDL dialect {dialect!r}; expected one of {DIALECTS}")


def column_type(dialect: str, dtype: pl.DataType, key: bool) -> str:
    """The SQL type of a column (nullability included)."""
    _check(dialect)
    base = _STRINGS[dialect][0 if key else 1] if dtype == pl.String else _TYPES[dialect][dtype]
    if dialect == "clickhouse":
        return base if key else f"Nullable({base})"
    return f"{base} NOT NULL" if key else f"{base} NULL"


def _q(name: str) -> str:
    return f"`{name}`"


def system_columns(dialect: str, spec: TableSpec) -> list[tuple[str, str]]:
    """(name, SQL type) of the columns a table has besides its spec's: stamp, version, ..."""
    _check(dialect)
    stamp = [(spec.stamp, _STAMPS[dialect])] if spec.stamp else []
    return [*stamp, *_SYSTEM[dialect]]


def add_column(dialect: str, table: str, column: str, sql_type: str) -> str:
    """The statement adding a column to an existing table (create_tables brings old tables up to
    date with it; ClickHouse's IF NOT EXISTS makes racing instances harmless)."""
    _check(dialect)
    guard = "IF NOT EXISTS " if dialect == "clickhouse" else ""
    return f"ALTER TABLE {_q(table)} ADD COLUMN {guard}{_q(column)} {sql_type}"


def upgrade(dialect: str, spec: TableSpec, existing: set[str]) -> list[str]:
    """ADD COLUMN statements for what an existing table (with columns `existing`) lacks: how
    create_tables brings a table made by an older version of the store up to date."""
    wanted = [(c, column_type(dialect, spec.schema[c], c in spec.key)) for c in spec.values]
    wanted += system_columns(dialect, spec)
    return [add_column(dialect, spec.name, c, t) for c, t in wanted if c not in existing]


def create_table(dialect: str, spec: TableSpec) -> str:
    """The CREATE TABLE IF NOT EXISTS statement of one table (key columns first, in storage
    order: see TableSpec.storage_key)."""
    _check(dialect)
    columns = [*spec.storage_key, *spec.values]
    defs = [(c, column_type(dialect, spec.schema[c], c in spec.key)) for c in columns]
    defs.extend(system_columns(dialect, spec))
    width = max(len(c) for c, _ in defs) + 3
    body = ",\n".join(f"    {_q(c):<{width}}{t}" for c, t in defs)
    key = ", ".join(_q(c) for c in spec.storage_key)
    if dialect == "clickhouse":
        tail = f"ENGINE = ReplacingMergeTree(`_version`, `_deleted`)\nORDER BY ({key})"
    elif dialect == "mysql":
        body += f",\n    PRIMARY KEY ({key})"
        tail = "ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_nopad_bin"
    else:
        tail = f"PRIMARY KEY ({key})\nDISTRIBUTED BY HASH (`client_id`)"
    return f"CREATE TABLE IF NOT EXISTS {_q(spec.name)} (\n{body}\n) {tail}"


def statements(dialect: str) -> list[str]:
    """What create_tables runs: every table, inputs first, the version fence last."""
    return [create_table(dialect, spec) for spec in ALL_TABLES]


_NOTES: Final = {
    "clickhouse": """\
ClickHouse / chDB (verified on chDB 4.4 = ClickHouse 26.9, in-process). The tables go into the DSN's
database (chdb: `secretmagic` unless ?database=..., created if missing).

Every table is ReplacingMergeTree(_version, _deleted) ORDER BY its key, client_id first; reads use
FINAL, which keeps the row with the highest _version per key and hides keys whose latest row has
_deleted = 1. The store replaces a client's rows with ONE insert: the new rows plus a tombstone
(_deleted = 1) for each of the client's keys the new frame no longer has. No mutation
(ALTER/lightweight DELETE) is involved: those wait for the background merge executor (0.2-1 s
each, measured on chDB 26.9). _version is the version of the write (core.wire.position of the
event it serves); it defaults to the insert time on the same scale (ms << 20), so a plain INSERT by
another writer (an integrator) is an upsert by key; inserting a row with _deleted = 1 deletes its
key. store_versions is the version fence: per (client_id, table_name) the highest version written.
Dates are Date32 (1900..2299: no silent clamping of pre-1970 dates as Date would do); non-key
columns are Nullable (NaN is written as NULL).""",
    "mysql": """\
MySQL protocol, MariaDB/MySQL (verified on MariaDB 10.11): mysql:// DSNs (the tests' MariaDB).
The database itself is not created here. Ids compare byte-wise (utf8mb4_nopad_bin: 'A' <> 'a',
'x' <> 'x '); on MySQL 8 use utf8mb4_0900_bin instead. VARCHAR(191) keeps the widest key
(4 x 191 x 4 bytes) under InnoDB's 3072-byte index limit. Timestamps are UTC. Non-key columns are
nullable (NaN is written as NULL). _version records the version (core.wire.position of the event)
of the write that put the row there; store_versions is the version fence: per (client_id,
table_name) the version of the last write applied, read FOR UPDATE in each replace transaction.""",
    "starrocks": """\
StarRocks, the production target (over the MySQL protocol): starrocks:// DSNs; create the
database first. NOT VERIFIED HERE: no StarRocks server is available on the development machine;
written for StarRocks >= 3.0 from its documented syntax, with the same tables, columns and keys as
mysql.sql (verified on MariaDB 10.11) and clickhouse.sql (verified on chDB/ClickHouse 26.9).

PRIMARY KEY tables: a load of an existing key replaces the row (upsert); DELETE ... WHERE
client_id = ? is supported. Key columns come first, in key order, NOT NULL. DISTRIBUTED BY
HASH(client_id) keeps a client's rows in one bucket set, which makes the per-client delete and read
cheap (a very large client skews its buckets; hash by (client_id, product_id) instead if that
matters). VARCHAR lengths are in bytes, and the encoded primary key is limited to 128 bytes by
default (BE config primary_key_limit_size): keep ids short. replication_num defaults to 3; a
single-BE dev cluster needs PROPERTIES ("replication_num" = "1"). _version is the version of the
write (core.wire.position of the event): loads use it as their merge_condition, so an older row
never overwrites a newer one; store_versions is the version fence per (client_id, table_name).""",
}


def reference(dialect: str) -> str:
    """The text of store/ddl/<dialect>.sql: the notes, then every statement."""
    _check(dialect)
    lines = [f"-- secretmagic analytical store: the {dialect} DDL.",
             "-- GENERATED from store/schema.py by `python -m store.dialect`: do not edit",
             "-- (tests/integration/store/test_dsn_ddl.py fails while this file and the specs",
             "-- disagree).", "--"]
    lines += [f"-- {line}".rstrip() for line in _NOTES[dialect].splitlines()]
    owner = None
    for spec in ALL_TABLES:
        if spec.owner != owner:
            owner = spec.owner
            lines += ["", f"-- written by {owner}"]
        lines += ["", create_table(dialect, spec) + ";"]
    return "\n".join(lines) + "\n"


def main() -> None:
    for dialect in DIALECTS:
        path = REFERENCE_DIR / f"{dialect}.sql"
        path.write_text(reference(dialect), encoding="utf-8")
        print(f"wrote {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
