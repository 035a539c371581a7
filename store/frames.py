"""What goes in and out of the store, checked once for every backend: arguments, frames to write
(`conform`) and frames read (`cast_read`)."""

from __future__ import annotations

import datetime as dt

import polars as pl

from core.errors import FatalError
from store.schema import FEATURE_COLUMN, VERSION, TableSpec

__all__ = [
    "MAX_ID_CHARS", "InvalidClientId", "cast_read", "check_client_id", "check_since",
    "check_version", "conform", "empty_frame", "writable_spec",
]


MAX_ID_CHARS = 191  # the widest id every backend keeps (MariaDB's VARCHAR(191) keys)


class InvalidClientId(FatalError, ValueError):
    """A client_id no store can hold: a property of the event that carried it, never retried."""


def check_client_id(client_id: str) -> str:
    """A client_id as the store takes it: a non-empty string of at most MAX_ID_CHARS characters
    that is valid Unicode. Anything else is refused before any I/O; within these limits every
    character is allowed (quotes, backslashes, NUL...): the backends bind or escape it."""
    if not isinstance(client_id, str) or not client_id:
        raise InvalidClientId(f"client_id must be a non-empty string, got {client_id!r}")
    if len(client_id) > MAX_ID_CHARS:
        raise InvalidClientId(
            f"client_id has {len(client_id)} characters, at most {MAX_ID_CHARS} are allowed "
            f"(starts {client_id[:40]!r})")
    try:
        client_id.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidClientId(f"client_id is not valid Unicode ({exc.reason} at {exc.start}): "
                              f"{client_id[:40]!r}") from None
    return client_id


def check_version(version: int) -> int:
    """A write's version: an int in BIGINT range (core.wire.position values are ~2^61)."""
    if isinstance(version, bool) or not isinstance(version, int) or not 0 <= version < 1 << 63:
        raise ValueError(f"version must be an int in [0, 2**63), got {version!r}")
    return version


def check_since(spec: TableSpec, since: dt.date) -> dt.date:
    """A `since` argument: a date (not a datetime: a table's dates have no time of day)."""
    if isinstance(since, dt.datetime) or not isinstance(since, dt.date):
        raise ValueError(f"since must be a datetime.date, got {since!r} (table {spec.name})")
    return since


def empty_frame(spec: TableSpec) -> pl.DataFrame:
    return pl.DataFrame(schema=spec.schema)


def writable_spec(spec: TableSpec, frame: pl.DataFrame) -> TableSpec:
    """The spec a frame is written as: `spec` itself, or for a wide table `spec` extended by the
    frame's feature columns (FatalError naming a column that cannot be a feature column)."""
    if not spec.extensible or not isinstance(frame, pl.DataFrame):
        return spec
    features = [c for c in frame.columns if c not in spec.schema]
    reserved = {spec.stamp, VERSION, "_deleted"}
    bad = [c for c in features if c in reserved or not FEATURE_COLUMN.match(c)]
    if bad:
        raise FatalError(
            f"{spec.name}: {bad} cannot be feature columns (lower-case identifiers of at most 63 "
            f"characters, not {sorted(n for n in reserved if n)})")
    return spec.extended(features)


def conform(spec: TableSpec, client_id: str, frame: pl.DataFrame) -> pl.DataFrame:
    """Check and cast a frame to write as `client_id`'s rows of `spec`; FatalError if it cannot fit.

    - `client_id` may be left out of the frame (it is filled in); when present, every row must
      carry this client_id;
    - the other columns must be exactly the table's (any order); values are cast (strictly) to the
      table's dtypes: ints to floats, datetimes to dates, ...;
    - key columns must not be null and keys must be unique (the stores would reject or merge them);
    - NaN becomes null; ±inf is rejected.
    """
    if not isinstance(frame, pl.DataFrame):
        raise TypeError(f"replace expects a polars DataFrame, got {type(frame).__name__}")
    if "client_id" not in frame.columns:
        frame = frame.with_columns(pl.lit(client_id, dtype=pl.String).alias("client_id"))
    frame = frame.with_columns(  # optional columns left out are nulls
        pl.lit(None, spec.schema[c]).alias(c) for c in sorted(spec.optional - set(frame.columns)))
    missing = [c for c in spec.columns if c not in frame.columns]
    extra = [c for c in frame.columns if c not in spec.schema]
    if missing or extra:
        raise FatalError(
            f"{spec.name}: frame columns do not match the table"
            + (f"; missing {missing}" if missing else "")
            + (f"; unexpected {extra}" if extra else "")
            + f" (expected {spec.columns})"
        )
    try:
        out = frame.select(pl.col(c).cast(spec.schema[c], strict=True) for c in spec.columns)
    except (pl.exceptions.PolarsError, TypeError, ValueError) as exc:
        wrong = {c: str(frame.schema[c]) for c in spec.columns if frame.schema[c] != spec.schema[c]}
        raise FatalError(
            f"{spec.name}: cannot cast columns {wrong} to the table's types: {exc}"
        ) from None
    if out.height == 0:
        return out
    floats = [c for c, t in spec.schema.items() if t == pl.Float64]
    if floats:
        out = out.with_columns(pl.col(floats).fill_nan(None))
        infinite = [c for c in floats if out.get_column(c).is_infinite().any()]
        if infinite:
            raise FatalError(f"{spec.name}: infinite values in {infinite} cannot be stored")
    foreign = out.filter(pl.col("client_id") != client_id)
    if foreign.height:
        raise FatalError(
            f"{spec.name}: {foreign.height} row(s) belong to another client "
            f"(e.g. {foreign.item(0, 'client_id')!r}) in a replace for {client_id!r}"
        )
    null_keys = [c for c in spec.key if out.get_column(c).null_count()]
    if null_keys:
        raise FatalError(f"{spec.name}: null values in key column(s) {null_keys}")
    keys = out.select(spec.key)
    if keys.n_unique() != out.height:
        dup = keys.filter(keys.is_duplicated())
        raise FatalError(
            f"{spec.name}: {dup.height} rows share a key, e.g. {dup.row(0, named=True)}"
        )
    return out


def cast_read(spec: TableSpec, frame: pl.DataFrame) -> pl.DataFrame:
    """Columns in the spec's order with the spec's dtypes (a backend's read result)."""
    return frame.select(pl.col(c).cast(t) for c, t in spec.schema.items())


