"""What the feature tests share: day numbers, sales and stock frames, and reading one series or
profile out of a result."""

from datetime import date, timedelta
from typing import TypeVar

import polars as pl

from features import (
    FeatureParams,
    Features,
)

K = TypeVar("K")


ROW = tuple[str, str, date]  # (client_id, product_id, date)


PROFILE = tuple[str, str, str, int]  # (client_id, product_id, kind, period)


NO_SEASONALITY = FeatureParams(
    ema_spans=(3,), ma_windows=(3,), std_windows=(3,), lags=(1, 2), seasonality=False
)


D0 = date(2024, 1, 1)  # a Monday


def day(n: int) -> date:
    """The n-th day of the series, day(1) == D0."""
    return D0 + timedelta(days=n - 1)


def sales_frame(rows: list[tuple[str, date, float]], client: str = "c1") -> pl.DataFrame:
    return pl.DataFrame(
        {
            "client_id": [client] * len(rows),
            "product_id": [p for p, _, _ in rows],
            "date": [d for _, d, _ in rows],
            "qty": [q for _, _, q in rows],
            "amount": [q * 10 for _, _, q in rows],
        },
        schema={"client_id": pl.Utf8, "product_id": pl.Utf8, "date": pl.Date,
                "qty": pl.Float64, "amount": pl.Float64},
    )


def stock_frame(rows: list[tuple[str, date, float | None]], client: str = "c1") -> pl.DataFrame:
    return pl.DataFrame(
        {
            "client_id": [client] * len(rows),
            "product_id": [p for p, _, _ in rows],
            "date": [d for _, d, _ in rows],
            "on_hand": [q for _, _, q in rows],
        },
        schema={"client_id": pl.Utf8, "product_id": pl.Utf8, "date": pl.Date,
                "on_hand": pl.Float64},
    )


def series(result: Features, column: str, product: str = "p1") -> dict[date, float | None]:
    """date -> value of one wide column of one product (None: null on that grid day)."""
    rows = result.wide.filter(pl.col("product_id") == product)
    return dict(zip(rows["date"].to_list(), rows[column].to_list(), strict=True))


def present(result: Features, column: str, product: str = "p1") -> dict[date, float]:
    return {d: v for d, v in series(result, column, product).items() if v is not None}


def profile(result: Features, kind: str, product: str = "p1") -> dict[int, float | None]:
    rows = result.profiles.filter(pl.col("product_id") == product, pl.col("kind") == kind)
    return dict(zip(rows["period"].to_list(), rows["value"].to_list(), strict=True))
