"""What every backend shares: argument checks and frame conformance before any I/O, so that a
backend implements only the I/O itself (`_read`, `_replace`)."""

from __future__ import annotations

import datetime as dt
from abc import ABC, abstractmethod
from dataclasses import dataclass

import polars as pl

from core import wire
from core.errors import Superseded
from store.frames import check_client_id, check_version, conform
from store.schema import TableSpec, table_spec


@dataclass(frozen=True)
class Write:
    """One replace, checked: `rows` are the client's new rows of `spec`, conformed."""

    spec: TableSpec
    client_id: str
    rows: pl.DataFrame
    stamp: dt.datetime  # UTC, for the spec's stamp column
    version: int  # core.wire.position of the newest event the write serves

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

    async def read(self, table: str, client_id: str) -> pl.DataFrame:
        spec = table_spec(table)
        check_client_id(client_id)
        return await self._read(spec, client_id)

    async def replace(
        self, table: str, client_id: str, frame: pl.DataFrame, *, version: int | None = None
    ) -> int:
        spec = table_spec(table)
        check_client_id(client_id)
        version = wire.position_now() if version is None else check_version(version)
        rows = conform(spec, client_id, frame)
        await self._replace(Write(spec, client_id, rows, dt.datetime.now(dt.UTC), version))
        return rows.height

    @abstractmethod
    async def _read(self, spec: TableSpec, client_id: str) -> pl.DataFrame:
        """The client's rows of `spec`, in the spec's columns and dtypes."""

    @abstractmethod
    async def _replace(self, write: Write) -> None:
        """Make the client's rows exactly `write.rows`, unless `write.admit` refuses."""
