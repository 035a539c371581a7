"""Feature computation: `features` against Nixtla's mlforecast (MLForecast.preprocess, its
coreforecast C++ kernels) and a pandas implementation (pandas_features.py), one thread each,
interleaved in one process.

    .venv/bin/python bench/bench_features.py [--rows 100000 1000000] [--repeats 7]

Synthetic sales: rows/1000 products x 1000 days with weekly and yearly seasonality, ~5% of the
days missing (gaps on the grid) and a weekly stock snapshot per product.

- "same features": lags 1/7/28, rolling means and sample stds over 7/28 days, EWMs with spans
  7/28; features.compute(sales) (from the raw sales: daily sums and gap filling included) against
  MLForecast.preprocess(daily series) with the gaps already filled (its input built outside the
  timing), and against utilsforecast's fill_gaps + preprocess (what a user of mlforecast would run
  from the same sales). mlforecast's rolling and EWM features are of the lagged target (lag 1):
  the same kernels over the same windows, one day later; the values are compared that way.
- "all families": the same plus seasonality profiles and stock, against pandas.
- "one appended day": features.compute_since for the last day against a full compute.

Values are checked once before timing: against mlforecast (lags exact; means, stds, EWMs 1e-9
relative, except that coreforecast's std of an all-equal window is ~5e-7 where ours is 0: those
are counted), against pandas (every column and profile, 1e-9 relative) and the incremental
against the full compute (exact). Polars runs on one thread (POLARS_MAX_THREADS=1, set by
re-executing this script), mlforecast with num_threads=1. Medians of --repeats runs.
"""

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path

if os.environ.get("POLARS_MAX_THREADS") != "1":  # before polars starts its thread pool
    os.execve(sys.executable, [sys.executable, *sys.argv],
              {**os.environ, "POLARS_MAX_THREADS": "1"})

import numpy as np
import pandas as pd
import polars as pl
from mlforecast import MLForecast
from mlforecast.lag_transforms import ExponentiallyWeightedMean, RollingMean, RollingStd
from utilsforecast.preprocessing import fill_gaps

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repo's top-level modules

from pandas_features import compute_features_pandas

import features
from features import FeatureParams

DAYS = 1000
START = date(2022, 1, 1)
LAGS, WINDOWS, SPANS = (1, 7, 28), (7, 28), (7, 28)
SAME = FeatureParams(ema_spans=SPANS, ma_windows=WINDOWS, std_windows=WINDOWS, lags=LAGS,
                     seasonality=False)
ALL = SAME.model_copy(update={"seasonality": True})


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


def mlforecast_model() -> MLForecast:
    transforms = [*(RollingMean(w) for w in WINDOWS), *(RollingStd(w) for w in WINDOWS),
                  *(ExponentiallyWeightedMean(alpha=2 / (s + 1)) for s in SPANS)]
    return MLForecast(models=[], freq="1d", lags=list(LAGS),
                      lag_transforms={1: transforms},  # type: ignore[dict-item]  # its own classes
                      num_threads=1)


def mlforecast_input(sales: pl.DataFrame) -> pl.DataFrame:
    """unique_id, ds, y: daily sums, every day from a product's first sale to the last day."""
    daily = sales.group_by("product_id", "date").agg(pl.col("qty").sum()).select(
        unique_id="product_id", ds="date", y="qty")
    filled = fill_gaps(daily, freq="1d", start="per_serie", end="global")
    return filled.with_columns(pl.col("y").fill_null(0.0)).sort("unique_id", "ds")


def check_mlforecast(ours: pl.DataFrame, theirs: pl.DataFrame) -> tuple[int, int]:
    """Assert the same grid and values (see the module doc); (values compared, all-equal windows
    where coreforecast's std is not 0)."""
    # theirs at t holds the kernels over days up to t - 1: ours of the day before
    before = ours.with_columns(pl.exclude("client_id", "product_id", "date", "lag_1", "lag_7",
                                          "lag_28").shift(1).over("product_id"))
    theirs = theirs.with_columns(pl.selectors.float().fill_nan(None))  # mlforecast: NaN for none
    joined = before.join(theirs, left_on=["product_id", "date"], right_on=["unique_id", "ds"],
                         how="full")
    if joined.filter(pl.col("date").is_null() | pl.col("ds").is_null()).height:
        raise AssertionError("mlforecast's grid differs from ours")
    pairs = [(f"lag_{k}", f"lag{k}") for k in LAGS]
    pairs += [(f"ma_{w}", f"rolling_mean_lag1_window_size{w}") for w in WINDOWS]
    pairs += [(f"std_{w}", f"rolling_std_lag1_window_size{w}") for w in WINDOWS]
    pairs += [(f"ema_{s}", f"exponentially_weighted_mean_lag1_alpha{2 / (s + 1)}") for s in SPANS]
    compared = zero_stds = 0
    for mine, other in pairs:
        both = joined.select(a=pl.col(mine), b=pl.col(other)).drop_nulls()
        if joined.select(pl.col(mine).is_null().ne(pl.col(other).is_null()).sum()).item():
            raise AssertionError(f"{mine}: null on one side only")
        off = both.filter((pl.col("a") - pl.col("b")).abs()
                          > 1e-9 * pl.max_horizontal(pl.col("a").abs(), 1.0))
        if mine.startswith("std_"):  # coreforecast: ~5e-7 where the window is all equal
            zero_stds += off.filter(pl.col("a") == 0, pl.col("b") < 1e-6).height
            off = off.filter(~((pl.col("a") == 0) & (pl.col("b") < 1e-6)))
        if off.height:
            raise AssertionError(f"{mine} vs {other}: {off.height} values differ:\n{off.head()}")
        compared += both.height
    return compared, zero_stds


def check_pandas(ours: features.Features, wide: pd.DataFrame, profiles: pd.DataFrame) -> int:
    theirs = pl.from_pandas(wide).with_columns(pl.col("date").cast(pl.Date))
    mine = ours.wide
    keys = ["client_id", "product_id", "date"]
    joined = mine.join(theirs, on=keys, how="full", suffix="_pd")
    count = 0
    for column in mine.columns[3:]:
        a, b = pl.col(column), pl.col(f"{column}_pd")
        if joined.select(a.is_null().ne(b.is_null()).sum()).item():
            raise AssertionError(f"{column}: null on one side only")
        off = joined.filter((a - b).abs() > 1e-9 * pl.max_horizontal(a.abs(), 1.0))
        if off.height:
            raise AssertionError(f"{column}: {off.height} values differ from pandas")
        count += joined.select(a.is_not_null().sum()).item()
    shapes = pl.from_pandas(profiles).with_columns(pl.col("period").cast(pl.Int32))
    both = ours.profiles.join(shapes, on=["client_id", "product_id", "kind", "period"],
                              how="full", suffix="_pd")
    off = both.filter((pl.col("value") - pl.col("value_pd")).abs() > 1e-9)
    if off.height or both.height != ours.profiles.height:
        raise AssertionError("profiles differ from pandas")
    return count + both.height


def appended_day(sales: pl.DataFrame, stock: pl.DataFrame) -> Callable[[], features.Features]:
    """A compute_since of the last day, with the store's part (the rows before it) prepared."""
    last = sales.get_column("date").max()
    assert isinstance(last, date)
    before = features.compute(sales.filter(pl.col("date") < last), stock, None, ALL)
    plan = features.plan_from(last, ALL)
    recent, stored = (frame.filter(pl.col("date") >= plan.read_since)
                      for frame in (sales, before.wide))
    full = features.compute(sales, stock, None, ALL)

    def run() -> features.Features:
        return features.compute_since(plan, recent, stock, None, ALL, stored, before.profiles)

    result = run()
    if not (result.wide.equals(full.wide.filter(pl.col("date") >= last))
            and result.profiles.equals(full.profiles)):
        raise AssertionError("the incremental compute differs from the full one")
    return run


def preprocess(model: MLForecast, series: pl.DataFrame) -> pl.DataFrame:
    out = model.preprocess(series, dropna=False)
    assert isinstance(out, pl.DataFrame)
    return out


def run(rows: int, repeats: int, model: MLForecast) -> None:
    """Check, then time the contenders on `rows` sales rows and print the figures."""
    sales, stock = synthetic(rows)
    sales_pd, stock_pd = sales.to_pandas(), stock.to_pandas()
    for frame in (sales_pd, stock_pd):
        frame["date"] = pd.to_datetime(frame["date"])
    series = mlforecast_input(sales)
    same = features.compute(sales, None, None, SAME)
    compared, zero_stds = check_mlforecast(same.wide, preprocess(model, series))
    checked = check_pandas(features.compute(sales, stock, None, ALL),
                           *compute_features_pandas(sales_pd, stock_pd, None, ALL))
    contenders: dict[str, Callable[[], object]] = {
        "features.compute, same features": lambda: features.compute(sales, None, None, SAME),
        "mlforecast preprocess (gaps filled)": lambda: preprocess(model, series),
        "mlforecast fill_gaps + preprocess": lambda: preprocess(model, mlforecast_input(sales)),
        "features.compute, all + stock": lambda: features.compute(sales, stock, None, ALL),
        "pandas, all + stock": lambda: compute_features_pandas(sales_pd, stock_pd, None, ALL),
        "features.compute_since, one day": appended_day(sales, stock),
    }
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(repeats):  # interleaved: CPU speed drift hits all alike
        for name, contender in contenders.items():
            start = time.perf_counter()
            contender()
            times[name].append(time.perf_counter() - start)
    median = {name: statistics.median(ts) * 1000 for name, ts in times.items()}
    print(f"\n{sales.height:,} sales rows, {same.wide.height:,} grid rows "
          f"({rows // DAYS} products x {DAYS} days); values checked: {compared:,} against "
          f"mlforecast ({zero_stds:,} all-equal std windows: theirs ~5e-7, ours 0), "
          f"{checked:,} against pandas, the one-day increment equal to a full compute")
    print(f"{'':38} {'median ms':>10} {'min ms':>8}")
    for name, ts in times.items():
        print(f"{name:38} {median[name]:>10.1f} {min(ts) * 1000:>8.1f}")
    ours, all_ = (median[f"features.compute, {what}"] for what in ("same features",
                                                                    "all + stock"))
    print(f"mlforecast preprocess / features.compute: "
          f"{median['mlforecast preprocess (gaps filled)'] / ours:.2f}x; with fill_gaps: "
          f"{median['mlforecast fill_gaps + preprocess'] / ours:.2f}x; pandas / features "
          f"(all): {median['pandas, all + stock'] / all_:.2f}x; full / one-day increment: "
          f"{all_ / median['features.compute_since, one day']:.1f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    model = mlforecast_model()
    print(f"polars {pl.__version__} (POLARS_MAX_THREADS={os.environ['POLARS_MAX_THREADS']}), "
          f"mlforecast {sys.modules['mlforecast'].__version__}, pandas {pd.__version__}; "
          f"median of {args.repeats} interleaved runs")
    for rows in args.rows:
        run(rows, args.repeats, model)


if __name__ == "__main__":
    main()
