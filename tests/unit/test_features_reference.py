"""features.compute against a plain-Python reference on random histories (every feature, every
profile), and the profiles' exact sums."""

import decimal
import random
import statistics
from collections import defaultdict
from datetime import date, timedelta

import polars as pl
import pytest

from features import (
    FeatureParams,
    compute,
)
from tests.unit.features_kit import (
    D0,
    PROFILE,
    ROW,
    K,
    day,
    sales_frame,
)


def reference(
    sales: list[tuple[str, str, date, float]],
    stock: list[tuple[str, str, date, float]],
    inactive: set[tuple[str, str]],
    params: FeatureParams,
) -> tuple[dict[ROW, dict[str, float | None]], dict[PROFILE, float | None]]:
    """The module docstring's definitions, one product and one day at a time: wide rows
    {(client, product, date): {column: value}} and profiles {(client, product, kind, period)}."""
    totals: dict[tuple[str, str], dict[date, float]] = defaultdict(lambda: defaultdict(float))
    last_day: dict[str, date] = {}
    for client, product, d, q in sales:
        last_day[client] = max(d, last_day.get(client, d))
        if (client, product) not in inactive:
            totals[(client, product)][d] += q
    stock_totals: dict[tuple[str, str], dict[date, float]] = defaultdict(lambda: defaultdict(float))
    for client, product, d, q in stock:
        stock_totals[(client, product)][d] += q

    rows: dict[ROW, dict[str, float | None]] = {}
    shapes: dict[PROFILE, float | None] = {}
    for (client, product), by_day in totals.items():
        first, last = min(by_day), last_day[client]
        dates = [first + timedelta(days=i) for i in range((last - first).days + 1)]
        qty = [by_day.get(d, 0.0) for d in dates]
        columns: dict[str, list[float | None]] = {"qty": list(qty)}
        for s in params.ema_spans:
            alpha, ema, emas = 2 / (s + 1), qty[0], []
            for q in qty:
                ema = alpha * q + (1 - alpha) * ema
                emas.append(ema)
            columns[f"ema_{s}"] = list(emas)
        for w in params.ma_windows:
            columns[f"ma_{w}"] = [
                statistics.fmean(qty[i - w + 1 : i + 1]) if i >= w - 1 else None
                for i in range(len(qty))
            ]
        for w in params.std_windows:
            columns[f"std_{w}"] = [
                statistics.stdev(qty[i - w + 1 : i + 1]) if i >= w - 1 else None
                for i in range(len(qty))
            ]
        for k in params.lags:
            columns[f"lag_{k}"] = [qty[i - k] if i >= k else None for i in range(len(qty))]
        known = sorted(stock_totals[(client, product)].items())
        on_hand = [next((v for sd, v in reversed(known) if sd <= d), None) for d in dates]
        columns["stock_on_hand"] = list(on_hand)
        if params.ma_windows:
            ma = columns[f"ma_{min(params.ma_windows)}"]
            columns["days_of_cover"] = [
                h / m if h is not None and m is not None and m > 0 else None
                for h, m in zip(on_hand, ma, strict=True)
            ]
        for i, d in enumerate(dates):
            rows[(client, product, d)] = {name: values[i] for name, values in columns.items()}
        if params.seasonality:
            mean = statistics.fmean(qty)
            for kind, period in (("dow", date.isoweekday), ("moy", lambda d: d.month)):
                groups: dict[int, list[float]] = defaultdict(list)
                for d, q in zip(dates, qty, strict=True):
                    groups[period(d)].append(q)
                for n, values in groups.items():
                    shapes[(client, product, kind, n)] = (
                        statistics.fmean(values) / mean if mean != 0 else None)
    return rows, shapes


def random_history(seed: int) -> tuple[list[tuple[str, str, date, float]],
                                       list[tuple[str, str, date, float]]]:
    rng = random.Random(seed)
    sales: list[tuple[str, str, date, float]] = []
    stock: list[tuple[str, str, date, float]] = []
    for client in ("c1", "c2"):
        for product in ("p1", "p2", "p3"):
            start = D0 + timedelta(days=rng.randrange(30))
            for n in range(rng.randrange(20, 90)):
                if rng.random() < 0.2:  # a gap
                    continue
                d = start + timedelta(days=n)
                sales.append((client, product, d, float(rng.randrange(0, 20))))
                if rng.random() < 0.1:  # a second sale that day
                    sales.append((client, product, d, rng.uniform(0, 5)))
                if rng.random() < 0.05:
                    stock.append((client, product, d - timedelta(days=3), rng.uniform(0, 100)))
    return sales, stock


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_matches_plain_python_reference_on_random_data(seed: int) -> None:
    sales, stock = random_history(seed)
    inactive = {("c2", "p2")}
    params = FeatureParams(
        ema_spans=(3, 10), ma_windows=(7, 4), std_windows=(2, 14), lags=(1, 5), seasonality=True
    )
    frame = pl.DataFrame(
        sales, schema=["client_id", "product_id", "date", "qty"], orient="row"
    ).with_columns(amount=pl.col("qty") * 3)
    stock_df = pl.DataFrame(
        stock, schema=["client_id", "product_id", "date", "on_hand"], orient="row"
    )
    products = pl.DataFrame(
        {"client_id": ["c2", "c1"], "product_id": ["p2", "p2"], "active": [False, True]}
    )

    result = compute(frame.sample(fraction=1.0, shuffle=True, seed=seed), stock_df, products,
                     params)
    rows, shapes = reference(sales, stock, inactive, params)

    names = result.wide.columns[3:]
    got = {(c, p, d): dict(zip(names, values, strict=True))
           for c, p, d, *values in result.wide.rows()}
    assert got.keys() == rows.keys()
    for key, values in got.items():
        assert nulls_where(values) == nulls_where(rows[key]), key
        assert numbers(values) == pytest.approx(numbers(rows[key]), rel=1e-9, abs=1e-9), key
    got_shapes = {(c, p, k, n): v for c, p, k, n, v, _, _ in result.profiles.rows()}
    assert nulls_where(got_shapes) == nulls_where(shapes)
    assert numbers(got_shapes) == pytest.approx(numbers(shapes), rel=1e-9, abs=1e-12)


def nulls_where(values: dict[K, float | None]) -> dict[K, None]:
    """The keys whose value is None (pytest.approx compares numbers only)."""
    return {key: None for key, value in values.items() if value is None}


def numbers(values: dict[K, float | None]) -> dict[K, float]:
    return {key: value for key, value in values.items() if value is not None}


def test_profile_sums_are_decimals_of_the_daily_qty() -> None:
    rng = random.Random(3)
    rows = [("p1", day(n), rng.uniform(0, 10) * 10 ** rng.randrange(-2, 4)) for n in range(1, 99)]
    result = compute(sales_frame(rows), None, None, FeatureParams())

    assert result.profiles.schema["qty_sum"] == pl.Decimal(38, 18)
    for kind, period, qty_sum, days in result.profiles.select(
            "kind", "period", "qty_sum", "days").rows():
        members = [q for _, d, q in rows
                   if (d.isoweekday() if kind == "dow" else d.month) == period]
        exact = sum(decimal.Decimal(q) for q in members)  # the doubles' exact values
        assert days == len(members)
        # each qty converted within its double's precision, then summed exactly
        assert abs(qty_sum - exact) <= decimal.Decimal(sum(members) * 2**-52)
