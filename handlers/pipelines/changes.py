"""Where a client's inputs changed since its last features recompute, found without moving rows.

The last recompute kept, in `input_digests`, the server's digest (store.digest: rows and a
checksum per month, all products together, over the one value of each the features read:
sales.qty, stock.on_hand) of the sales and the stock it read, and two
fingerprints of what else its result depends on: the feature parameters and the products made
inactive (dated FINGERPRINT_DAY). The next recompute digests the tables again (in SQL, only the
aggregates cross the network) and compares:

    nothing kept, or a fingerprint differs        -> Start(None): a full recompute
    every digest equal                            -> None: nothing to recompute
    else                                          -> Start(since): from the first changed month

`data.date_from` of the event (the integrator's word: "rows from this day on may have changed")
narrows `since` within that first changed month only: the digests are the authority, so a
date_from after the month (a wrong one) or before it changes nothing, and the days of the month
before date_from are still read and checked (features.incremental raises Replan if one of them
changed after all). An absent date_from costs at most the rest of the month's days, recomputed
and then found equal to the stored rows (they are not rewritten).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass

import polars as pl

from core.errors import MalformedEvent
from features import FeatureParams
from store.digest import changed_since, earliest

# the dated inputs, digested per month, and the one value of each the features read
SOURCES = {"sales": ("qty",), "stock": ("on_hand",)}
FINGERPRINT_DAY = dt.date(1900, 1, 1)  # the fingerprints' date: before any data (Date32's first)
KEPT_SCHEMA = pl.Schema({"source": pl.String(), "product_id": pl.String(), "date": pl.Date(),
                         "rows": pl.Int64(), "checksum": pl.Int64()})


@dataclass(frozen=True)
class Start:
    """Where a recompute starts. since None: in full; else from `since` on, reading from
    `read_from` at the latest (the first changed month, checked) and rewriting the kept
    digests from `digests_from` on."""

    since: dt.date | None
    reason: str
    read_from: dt.date | None = None

    @property
    def digests_from(self) -> dt.date | None:
        if self.since is None or self.read_from is None:
            return self.since
        return min(self.since, self.read_from)


def date_from(data: dict[str, object]) -> dt.date | None:
    """The event's optional `data.date_from` (ISO YYYY-MM-DD); MalformedEvent naming a bad one."""
    value = data.get("date_from")
    if value is None:
        return None
    if isinstance(value, str) and len(value) == 10:
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            pass
    raise MalformedEvent(f"data.date_from must be a date as YYYY-MM-DD, got {value!r:.60}")


def observed(digests: dict[str, pl.DataFrame], params: FeatureParams,
             meta: pl.DataFrame) -> pl.DataFrame:
    """The input_digests rows (KEPT_SCHEMA) describing these inputs: each source's digest
    (store.Store.digest, period month, by_product False) and the fingerprints."""
    frames = [d.select(source=pl.lit(name), product_id="product_id", date="period", rows="rows",
                       checksum="checksum")
              for name, d in digests.items()]
    inactive = sorted(meta.filter(pl.col("active").eq_missing(False))
                      .get_column("product_id").to_list())
    prints = {"params": (params.model_dump_json(), 0),
              "products": ("\x00".join(inactive), len(inactive))}
    frames.append(pl.DataFrame(
        [{"source": name, "product_id": "", "date": FINGERPRINT_DAY, "rows": rows,
          "checksum": _hash(text)} for name, (text, rows) in prints.items()],
        schema=KEPT_SCHEMA))
    return pl.concat([f.cast(dict(KEPT_SCHEMA)) for f in frames])  # type: ignore[arg-type]


def start(kept: pl.DataFrame, now: pl.DataFrame, hint: dt.date | None) -> Start | None:
    """Where to recompute from (see the module doc); None when nothing changed."""
    if kept.is_empty():
        return Start(None, "no digest kept: the first recompute")
    for name, why in (("params", "the feature parameters changed"),
                      ("products", "products were made inactive or active")):
        if not _rows(kept, name).equals(_rows(now, name)):
            return Start(None, why)
    firsts = [earliest(changed_since(_digest(kept, s), _digest(now, s))) for s in SOURCES]
    month = min((d for d in firsts if d is not None), default=None)
    if month is None:
        return None
    if hint is not None and month <= hint < _next_month(month):
        return Start(hint, f"data.date_from {hint}, in the first changed month", month)
    return Start(month, f"the digests changed from {month}", month)


def _rows(frame: pl.DataFrame, source: str) -> pl.DataFrame:
    return frame.filter(pl.col("source") == source).select("rows", "checksum")


def _digest(frame: pl.DataFrame, source: str) -> pl.DataFrame:
    return frame.filter(pl.col("source") == source).rename({"date": "period"})


def _next_month(day: dt.date) -> dt.date:
    return (day.replace(day=1) + dt.timedelta(days=32)).replace(day=1)


def _hash(text: str) -> int:
    """A stable 64-bit hash (the same in every process and version, unlike hash())."""
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little",
                          signed=True)
