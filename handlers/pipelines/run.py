"""The shape every pipeline shares: read a client's inputs, compute off the event loop, replace
the client's output rows at the run's version."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import polars as pl

from store import Store


async def recompute(store: Store, client_id: str, inputs: tuple[str, ...], output: str,
                     compute: Callable[..., tuple[pl.DataFrame, Any]], version: int
                     ) -> tuple[int, Any, int]:
    """Read `inputs`, run `compute(*frames) -> (rows for output, details)` on a worker thread
    (polars releases the GIL, so the event loop stays responsive), replace the client's `output`
    rows at `version` (Superseded if the store holds a newer one); (rows written, details,
    milliseconds taken)."""
    started = time.perf_counter()
    frames = await asyncio.gather(*(store.read(table, client_id) for table in inputs))
    rows, details = await asyncio.to_thread(compute, *frames)
    written = await store.replace(output, client_id, rows, version=version)
    return written, details, round((time.perf_counter() - started) * 1000)
