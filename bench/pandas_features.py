"""The features of the `features` package written with pandas: the baseline the benchmark compares
with and checks values against.

Same definitions (see features/__init__.py), idiomatic pandas: groupby + ewm/rolling/shift on a
gap-free daily grid (each product from its first sale to its client's last sales day), merge_asof
for stock, groupby means for the profiles. Dates are datetime64 columns. Returns the wide frame
(client_id, product_id, date, qty, the feature columns) and the profiles (client_id, product_id,
kind, period, value).
"""

import pandas as pd

from features import FeatureParams

KEYS = ["client_id", "product_id"]


def compute_features_pandas(
    sales: pd.DataFrame,
    stock: pd.DataFrame | None,
    products: pd.DataFrame | None,
    params: FeatureParams,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    daily = _daily_series(sales, products)
    by_product = daily.groupby(KEYS, sort=False)["qty"]

    # groupby().ewm()/rolling() index their result by (keys..., row); drop the keys to align.
    def per_group(result: pd.Series) -> pd.Series:
        return result.droplevel(list(range(len(KEYS))))

    for s in sorted(params.ema_spans):
        daily[f"ema_{s}"] = per_group(by_product.ewm(span=s, adjust=False).mean())
    for w in sorted(params.ma_windows):
        daily[f"ma_{w}"] = per_group(by_product.rolling(w, min_periods=w).mean())
    for w in sorted(params.std_windows):
        daily[f"std_{w}"] = per_group(by_product.rolling(w, min_periods=w).std(ddof=1))
    for k in sorted(params.lags):
        daily[f"lag_{k}"] = by_product.shift(k)
    daily = _with_stock(daily, stock, params)

    if not params.seasonality:
        return daily, pd.DataFrame(columns=[*KEYS, "kind", "period", "value"])
    profiles = []
    overall = by_product.mean().rename("overall")
    for kind, period in (("dow", daily["date"].dt.dayofweek + 1), ("moy", daily["date"].dt.month)):
        means = daily.groupby([*KEYS, period.rename("period")])["qty"].mean().rename("mean")
        means = means.reset_index().join(overall, on=KEYS)
        means["value"] = (means["mean"] / means["overall"]).where(means["overall"] != 0)
        profiles.append(means.assign(kind=kind)[[*KEYS, "kind", "period", "value"]])
    return daily, pd.concat(profiles, ignore_index=True)


def _daily_series(sales: pd.DataFrame, products: pd.DataFrame | None) -> pd.DataFrame:
    sales = sales.dropna(subset=[*KEYS, "date"])
    ends = sales.groupby("client_id")["date"].max().rename("end")  # inactive products count
    if products is not None:
        inactive = products.loc[products["active"].eq(False), KEYS]
        index = pd.MultiIndex.from_frame(sales[KEYS])
        sales = sales[~index.isin(pd.MultiIndex.from_frame(inactive))]
    sums = sales.groupby([*KEYS, "date"], as_index=False)["qty"].sum()

    bounds = sums.groupby(KEYS, as_index=False)["date"].min().rename(columns={"date": "start"})
    bounds = bounds.join(ends, on="client_id")
    days = (bounds["end"] - bounds["start"]).dt.days + 1
    grid = bounds.loc[bounds.index.repeat(days), [*KEYS, "start"]]
    offset = pd.to_timedelta(grid.groupby(level=0).cumcount(), unit="D")
    grid = grid.assign(date=grid["start"] + offset).drop(columns="start")

    daily = grid.merge(sums, on=[*KEYS, "date"], how="left")
    daily["qty"] = daily["qty"].fillna(0.0)
    return daily.sort_values([*KEYS, "date"], ignore_index=True)


def _with_stock(daily: pd.DataFrame, stock: pd.DataFrame | None,
                params: FeatureParams) -> pd.DataFrame:
    if stock is None or stock.empty:
        daily["stock_on_hand"] = float("nan")
    else:
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
        ma = daily[f"ma_{min(params.ma_windows)}"]
        daily["days_of_cover"] = (daily["stock_on_hand"] / ma).where(ma > 0)
    return daily
