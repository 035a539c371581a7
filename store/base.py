"""What every backend shares: argument checks and frame conformance before any I/O, so that a
backend implements only the I/O itself (`_read`, `_replace`, `_digest`)."""

from __future__ import annotations

import datetime as dt
from abc import ABC, abstractmethod
from dataclasses import dataclass, replace

import polars as pl

from core import wire
from core.errors import FatalError, Superseded
from store.digest import PERIODS, Period, dated_spec, digestible_spec
from store.frames import check_client_id, check_since, check_version, conform, writable_spec
from store.schema import TableSpec, table_spec


@dataclass(frozen=True)
class Write:
    """One replace, checked: `rows` are the client's new rows of `spec`, conformed."""

    spec: TableSpec
    client_id: str
    rows: pl.DataFrame
    stamp: dt.datetime  # UTC, for the spec's stamp column
    version: int  # core.wire.position of the newest event the write serves
    since: dt.date | None = None  # only the client's rows from this date on are replaced

    @property
    def what(self) -> str:
        return f"replace {self.spec.name}"

    def admit(self, applied: int | None) -> None:
        """The version fence: raise Superseded if a newer write (`applied`) is already there. An
        equal version is the same event again: applied (idempotently)."""
        if applied is not None and applied > self.version:
            raise Superseded(
                f"{self.spec.name} of client {self.client_id!r}: version {self.version} is older "
                f"than version {applied} already written; nothing changed")


class BaseStore(ABC):
    """The `Store` methods that are the same on every backend."""

    name: str

    async def read(
        self, table: str, client_id: str, *, since: dt.date | None = None
    ) -> pl.DataFrame:
        spec = table_spec(table)
        check_client_id(client_id)
        if since is not None:
            since = check_since(dated_spec(spec), since)
        return await self._read(spec, client_id, since)

    async def replace(
        self, table: str, client_id: str, frame: pl.DataFrame, *,
        since: dt.date | None = None, version: int | None = None,
    ) -> int:
        spec = table_spec(table)
        check_client_id(client_id)
        if since is not None:
            since = check_since(dated_spec(spec), since)
        version = wire.position_now() if version is None else check_version(version)
        spec = writable_spec(spec, frame)
        rows = conform(spec, client_id, frame)
        if since is not None and (early := rows.filter(pl.col("date") < since)).height:
            raise FatalError(
                f"{spec.name}: {early.height} row(s) dated before since={since} in a replace "
                f"from that date (e.g. {early.item(0, 'date')}); only rows from it on are replaced")
        await self._replace(Write(spec, client_id, rows, dt.datetime.now(dt.UTC), version, since))
        return rows.height

    async def digest(
        self, table: str, client_id: str, *, period: Period = "month",
        since: dt.date | None = None, by_product: bool = True,
        columns: tuple[str, ...] | None = None,
    ) -> pl.DataFrame:
        spec = digestible_spec(table_spec(table))
        if columns is not None:  # hash only these values (with the key): less text to hash
            unknown = sorted(set(columns) - set(spec.values))
            if unknown:
                raise ValueError(f"table {spec.name} has no value columns {unknown}")
            spec = replace(spec, schema=pl.Schema(
                {c: t for c, t in spec.schema.items() if c in spec.key or c in columns}))
        check_client_id(client_id)
        if period not in PERIODS:
            raise ValueError(f"period must be one of {PERIODS}, got {period!r}")
        if since is not None:
            since = check_since(spec, since)
        return await self._digest(spec, client_id, period, since, by_product)

    async def clients(self, table: str) -> list[str]:
        return sorted(await self._clients(table_spec(table)))

    @abstractmethod
    async def _clients(self, spec: TableSpec) -> list[str]:
        """The distinct client ids with rows in `spec`'s table."""

    @abstractmethod
    async def _read(self, spec: TableSpec, client_id: str, since: dt.date | None) -> pl.DataFrame:
        """The client's rows of `spec` (from `since` on), in the spec's columns and dtypes."""

    @abstractmethod
    async def _digest(
        self, spec: TableSpec, client_id: str, period: Period, since: dt.date | None,
        by_product: bool,
    ) -> pl.DataFrame:
        """store.digest.DIGEST_SCHEMA rows computed by the server."""

    @abstractmethod
    async def _replace(self, write: Write) -> None:
        """Make the client's rows (from `write.since` on) exactly `write.rows`, unless
        `write.admit` refuses."""
