"""Where a features recompute starts (handlers.pipelines.changes), on digests made by hand."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest

from core.errors import MalformedEvent
from features import FeatureParams
from handlers.pipelines import changes

JAN, FEB, MAR = dt.date(2024, 1, 1), dt.date(2024, 2, 1), dt.date(2024, 3, 1)
DEFAULT = FeatureParams()
META = pl.DataFrame({"product_id": ["a", "b"], "active": [True, None]})


def digest(*months: tuple[dt.date, int, int]) -> pl.DataFrame:
    return pl.DataFrame([("", m, rows, checksum) for m, rows, checksum in months],
                        schema=["product_id", "period", "rows", "checksum"], orient="row")


def kept(sales: pl.DataFrame, params: FeatureParams = DEFAULT,
         meta: pl.DataFrame = META) -> pl.DataFrame:
    return changes.observed({"sales": sales, "stock": digest()}, params, meta)


BEFORE = digest((JAN, 31, 1), (FEB, 29, 2), (MAR, 10, 3))


def test_where_a_recompute_starts() -> None:
    old = kept(BEFORE)
    assert changes.start(old, kept(BEFORE), None) is None  # nothing changed
    edited = kept(digest((JAN, 31, 1), (FEB, 29, 9), (MAR, 10, 3)))
    start = changes.start(old, edited, None)
    assert start is not None and (start.since, start.read_from) == (FEB, FEB)
    hinted = changes.start(old, edited, dt.date(2024, 2, 20))  # within the changed month
    assert hinted is not None and (hinted.since, hinted.read_from) == (dt.date(2024, 2, 20), FEB)
    for wrong in (dt.date(2024, 3, 5), dt.date(2024, 1, 5)):  # after or before it: ignored
        ignored = changes.start(old, edited, wrong)
        assert ignored is not None and ignored.since == FEB
    appended = kept(digest((JAN, 31, 1), (FEB, 29, 2), (MAR, 11, 4)))
    start = changes.start(old, appended, None)
    assert start is not None and start.since == MAR
    full = changes.start(pl.DataFrame(schema=changes.KEPT_SCHEMA), appended, None)
    assert full is not None and full.since is None and "first" in full.reason
    params = changes.start(old, kept(BEFORE, FeatureParams(lags=(1,))), None)
    assert params is not None and params.since is None and "parameters" in params.reason
    inactive = META.with_columns(active=pl.Series([True, False]))
    products = changes.start(old, kept(BEFORE, meta=inactive), None)
    assert products is not None and products.since is None and "inactive" in products.reason
    category_only = META.with_columns(category=pl.lit("new"))  # not a feature input
    assert changes.start(old, kept(BEFORE, meta=category_only), None) is None


def test_date_from() -> None:
    assert changes.date_from({}) is None and changes.date_from({"date_from": None}) is None
    assert changes.date_from({"date_from": "2024-02-29"}) == dt.date(2024, 2, 29)
    for bad in ("2024-02-30", "2024-2-1", "yesterday", 20240201, ["2024-02-01"]):
        with pytest.raises(MalformedEvent, match=r"data\.date_from"):
            changes.date_from({"date_from": bad})
