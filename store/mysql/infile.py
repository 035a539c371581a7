"""Writes on MariaDB/MySQL with `LOAD DATA LOCAL INFILE`: the server's own bulk path, in the
replace transaction like any statement (InnoDB).

polars writes the rows as a tab-separated file (on /dev/shm when there is one: memory, not disk)
with LOAD DATA's escapes done for whole columns (backslash, tab, newline, carriage return and NUL
escaped; NULL as \\N), and the server reads it through the client connection. Both ends of that
are guarded:
- With LOCAL the server turns data errors into warnings (it cannot stop the file mid-way): an
  over-long id would be silently truncated. So the load's warnings are read back, and any warning,
  or a row count that is not the frame's, fails the write (FatalError; the transaction is rolled
  back).
- pymysql sends the file the *server* names in its request. The store only connects to the
  configured store server; `local_infile` is enabled for mysql:// connections alone.
A server that refuses LOCAL INFILE (local_infile=OFF) is detected once; the store then writes
with INSERT ... VALUES batches (store.mysql.text), the path kept for exactly that case.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path

import polars as pl

from core.errors import FatalError
from store.mysql.pool import Cursor
from store.schema import TableSpec

# The answers to LOAD DATA LOCAL when the server (or the client) does not allow it: MySQL 5.x/
# MariaDB < 10.5 (1148), MariaDB 10.5+ (4166), MySQL 8 (3948).
REFUSED_ERRNOS = frozenset({1148, 3948, 4166})
_FROM = ["\\", "\t", "\n", "\r", "\x00"]
_TO = ["\\\\", "\\t", "\\n", "\\r", "\\0"]
_SHM = Path("/dev/shm")


def _field(name: str, dtype: pl.DataType) -> pl.Expr:
    col = pl.col(name)
    if dtype == pl.String:
        return col.str.replace_many(_FROM, _TO)
    if dtype == pl.Boolean:
        return col.cast(pl.Int8)
    return col  # dates as ISO text, numbers in polars' round-trip form


@contextlib.contextmanager
def data_file(spec: TableSpec, rows: pl.DataFrame) -> Iterator[str]:
    """The rows (already conformed to `spec`) as a LOAD DATA file; deleted afterwards."""
    where = _SHM if _SHM.is_dir() and os.access(_SHM, os.W_OK) else None
    fd, path = tempfile.mkstemp(prefix="secretmagic-load-", suffix=".tsv", dir=where)
    try:
        with os.fdopen(fd, "wb") as out:
            rows.select(_field(c, spec.schema[c]) for c in spec.columns).write_csv(
                out, separator="\t", include_header=False, quote_style="never",
                null_value="\\N", line_terminator="\n")
        yield path
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)


def load(cur: Cursor, spec: TableSpec, rows: pl.DataFrame, constants: Mapping[str, str]) -> None:
    """Load `rows` into the spec's table, with `constants` (column -> SQL literal) in every row."""
    if rows.height == 0:
        return
    columns = ", ".join(f"`{c}`" for c in spec.columns)
    settings = ", ".join(f"`{c}` = {literal}" for c, literal in constants.items())
    with data_file(spec, rows) as path:
        loaded = cur.execute(
            f"LOAD DATA LOCAL INFILE %s INTO TABLE `{spec.name}` CHARACTER SET utf8mb4 "
            "FIELDS TERMINATED BY '\\t' ESCAPED BY '\\\\' LINES TERMINATED BY '\\n' "
            f"({columns})" + (f" SET {settings}" if settings else ""), (path,))
    warnings = cur.connection.show_warnings() if cur.connection else ()
    if warnings or loaded != rows.height:
        shown = "; ".join(f"{w[1]}: {w[2]}" for w in warnings[:3])
        raise FatalError(
            f"LOAD DATA into {spec.name} took {loaded} of {rows.height} rows"
            + (f" with {len(warnings)} warning(s): {shown}" if warnings else ""))
