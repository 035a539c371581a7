"""Feature computation: polars (features.compute_features) vs pandas (bench/pandas_features.py).

    .venv/bin/python bench/bench_features.py [--rows 100000 1000000] [--repeats 3]

Synthetic sales: N/1000 products x 1000 days with weekly and yearly seasonality, ~5% of the
days missing (gaps on the grid) and a weekly stock snapshot per product. Both implementations
are checked once to give the same values (1e-9 relative), then timed interleaved, best of
--repeats. The conversion to pandas is outside the timing (pandas gets its own input).
"""

import argparse
import sys
import time
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repo's top-level modules

from pandas_features import compute_features_pandas

from features import FeatureParams, compute_features

DAYS = 1000
START = date(2022, 1, 1)


def synthetic(rows: int, seed: int = 0) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(sales, stock) for max(1, rows // DAYS) products over DAYS days."""
    rng = np.random.default_rng(seed)
    n_products = max(1, rows // DAYS)
    product = np.repeat(np.arange(n_products), DAYS)
    day = np.tile(np.arange(DAYS), n_products)
    base = rng.uniform(1, 50, n_products)[product]
    weekly = 1 + 0.3 * np.sin(2 * np.pi * day / 7)
    yearly = 1 + 0.5 * np.sin(2 * np.pi * day / 365.25)
    qty = rng.poisson(base * weekly * yearly).astype(np.float64)
    keep = rng.random(product.size) > 0.05
    dates = pl.date_range(START, START + timedelta(days=DAYS - 1), eager=True)
    sales = pl.DataFrame(
        {
            "client_id": "c1",
            "product_id": pl.Series(product[keep]).cast(pl.Utf8).str.zfill(5),
            "date": dates.gather(day[keep]),
            "qty": qty[keep],
            "amount": qty[keep] * 9.99,
        }
    )
    weekly_rows = day % 7 == 0
    stock = pl.DataFrame(
        {
            "client_id": "c1",
            "product_id": pl.Series(product[weekly_rows]).cast(pl.Utf8).str.zfill(5),
            "date": dates.gather(day[weekly_rows]),
            "on_hand": rng.uniform(0, 500, int(weekly_rows.sum())).round(),
        }
    )
    return sales, stock


def check_same(polars_long: pl.DataFrame, pandas_long: pd.DataFrame) -> int:
    """Assert both long frames hold the same keys and values; return the row count."""
    keys = ["client_id", "product_id", "date", "feature"]
    theirs = pl.from_pandas(pandas_long).with_columns(pl.col("date").cast(pl.Date))
    joined = polars_long.join(theirs, on=keys, how="full", suffix="_pd")
    missing = joined.filter(pl.col("value").is_null() | pl.col("value_pd").is_null())
    if not missing.is_empty():
        raise AssertionError(f"{missing.height} keys only on one side:\n{missing.head()}")
    tolerance = 1e-9 * pl.max_horizontal(pl.col("value").abs(), pl.col("value_pd").abs(), 1.0)
    off = joined.filter((pl.col("value") - pl.col("value_pd")).abs() > tolerance)
    if not off.is_empty():
        raise AssertionError(f"{off.height} values differ:\n{off.head()}")
    return joined.height


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    params = FeatureParams()

    print(f"features {params.model_dump()}, stock included, best of {args.repeats}")
    print(
        f"{'sales rows':>10} {'out rows':>10} {'polars s':>9} {'pandas s':>9} "
        f"{'polars rows/s':>14} {'pandas rows/s':>14} {'ratio':>6}"
    )
    for rows in args.rows:
        sales, stock = synthetic(rows)
        sales_pd, stock_pd = sales.to_pandas(), stock.to_pandas()
        for frame in (sales_pd, stock_pd):
            frame["date"] = pd.to_datetime(frame["date"])

        out_rows = check_same(
            compute_features(sales, stock, None, params).frame,
            compute_features_pandas(sales_pd, stock_pd, None, params),
        )
        best_pl = best_pd = float("inf")
        for _ in range(args.repeats):  # interleaved: CPU speed drift hits both alike
            start = time.perf_counter()
            compute_features(sales, stock, None, params)
            best_pl = min(best_pl, time.perf_counter() - start)
            start = time.perf_counter()
            compute_features_pandas(sales_pd, stock_pd, None, params)
            best_pd = min(best_pd, time.perf_counter() - start)
        print(
            f"{sales.height:>10,} {out_rows:>10,} {best_pl:>9.3f} {best_pd:>9.3f} "
            f"{sales.height / best_pl:>14,.0f} {sales.height / best_pd:>14,.0f} "
            f"{best_pd / best_pl:>5.1f}x"
        )


if __name__ == "__main__":
    main()
