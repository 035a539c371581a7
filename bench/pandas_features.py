"""The features of features.py written with pandas: the reference the benchmark compares with.

Same definitions (see features.py's docstring), idiomatic pandas: groupby + ewm/rolling/shift/
transform on a gap-free daily grid, merge_asof for stock, melt to long format. Dates are
datetime64 columns; the result has columns client_id, product_id, date, feature, value.
"""

import pandas as pd

from features import FeatureParams

KEYS = ["client_id", "product_id"]


def compute_features_pandas(
    sales: pd.DataFrame,
    stock: pd.DataFrame | None,
    products: pd.DataFrame | None,
    params: FeatureParams,
) -> pd.DataFrame:
    daily = _daily_series(sales, products)
    by_product = daily.groupby(KEYS, sort=False)["qty"]

    # groupby().ewm()/rolling() index their result by (keys..., row); drop the keys to align.
    def per_group(result: pd.Series) -> pd.Series:
        return result.droplevel(list(range(len(KEYS))))

    for s in params.ema_spans:
        daily[f"ema_{s}"] = per_group(by_product.ewm(span=s, adjust=False).mean())
    for w in params.ma_windows:
        daily[f"ma_{w}"] = per_group(by_product.rolling(w, min_periods=w).mean())
    for w in params.std_windows:
        daily[f"std_{w}"] = per_group(by_product.rolling(w, min_periods=w).std(ddof=1))
    for k in params.lags:
        daily[f"lag_{k}"] = by_product.shift(k)
    if params.seasonality:
        product_mean = by_product.transform("mean")
        for name, period in (
            ("dow_profile", daily["date"].dt.dayofweek),
            ("moy_profile", daily["date"].dt.month),
        ):
            period_mean = daily.groupby([*KEYS, period], sort=False)["qty"].transform("mean")
            daily[name] = (period_mean / product_mean).where(product_mean != 0)
    if stock is not None and not stock.empty:
        daily = _with_stock(daily, stock, params)

    names = sorted(c for c in daily.columns if c not in (*KEYS, "date", "qty"))
    long = daily.melt(
        id_vars=[*KEYS, "date"], value_vars=names, var_name="feature", value_name="value"
    )
    return long.dropna(subset=["value"]).reset_index(drop=True)


def _daily_series(sales: pd.DataFrame, products: pd.DataFrame | None) -> pd.DataFrame:
    sales = sales.dropna(subset=[*KEYS, "date"])
    if products is not None:
        inactive = products.loc[products["active"].eq(False), KEYS]
        index = pd.MultiIndex.from_frame(sales[KEYS])
        sales = sales[~index.isin(pd.MultiIndex.from_frame(inactive))]
    sums = sales.groupby([*KEYS, "date"], as_index=False)["qty"].sum()

    bounds = sums.groupby(KEYS, as_index=False)["date"].agg(start="min", end="max")
    days = (bounds["end"] - bounds["start"]).dt.days + 1
    grid = bounds.loc[bounds.index.repeat(days), [*KEYS, "start"]]
    offset = pd.to_timedelta(grid.groupby(level=0).cumcount(), unit="D")
    grid = grid.assign(date=grid["start"] + offset).drop(columns="start")

    daily = grid.merge(sums, on=[*KEYS, "date"], how="left")
    daily["qty"] = daily["qty"].fillna(0.0)
    return daily.sort_values([*KEYS, "date"], ignore_index=True)


def _with_stock(daily: pd.DataFrame, stock: pd.DataFrame, params: FeatureParams) -> pd.DataFrame:
    on_hand = (
        stock.dropna(subset=[*KEYS, "date", "on_hand"])
        .groupby([*KEYS, "date"], as_index=False)["on_hand"]
        .sum()
        .rename(columns={"on_hand": "stock_on_hand"})
        .astype({"date": daily["date"].dtype})  # merge_asof wants one datetime unit
        .sort_values("date")
    )
    # merge_asof needs both sides sorted by date overall; restore the key order afterwards.
    daily = pd.merge_asof(daily.sort_values("date"), on_hand, on="date", by=KEYS)
    daily = daily.sort_values([*KEYS, "date"], ignore_index=True)
    if params.ma_windows:
        ma = daily[f"ma_{params.ma_windows[0]}"]
        daily["days_of_cover"] = (daily["stock_on_hand"] / ma).where(ma > 0)
    return daily
