"""features.compute_features against hand-worked series and a plain-Python reference."""

import math
import random
import statistics
from collections import defaultdict
from datetime import date, timedelta

import polars as pl
import pytest
from dirty_equals import IsApprox, IsList
from pydantic import BaseModel, ValidationError

from features import FEATURE_SCHEMA, FeatureParams, FeatureResult, compute_features

D0 = date(2024, 1, 1)  # a Monday
KEY = tuple[str, str, date, str]  # (client_id, product_id, date, feature)

NO_SEASONALITY = FeatureParams(
    ema_spans=(3,), ma_windows=(3,), std_windows=(3,), lags=(1, 2), seasonality=False
)


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
        schema={
            "client_id": pl.Utf8,
            "product_id": pl.Utf8,
            "date": pl.Date,
            "qty": pl.Float64,
            "amount": pl.Float64,
        },
    )


def stock_frame(rows: list[tuple[str, date, float | None]], client: str = "c1") -> pl.DataFrame:
    return pl.DataFrame(
        {
            "client_id": [client] * len(rows),
            "product_id": [p for p, _, _ in rows],
            "date": [d for _, d, _ in rows],
            "on_hand": [q for _, _, q in rows],
        },
        schema={
            "client_id": pl.Utf8,
            "product_id": pl.Utf8,
            "date": pl.Date,
            "on_hand": pl.Float64,
        },
    )


def series(result: FeatureResult, feature: str, product: str = "p1") -> dict[date, float]:
    """date -> value of one feature of one product (absent dates were null)."""
    rows = result.frame.filter(pl.col("product_id") == product, pl.col("feature") == feature)
    return dict(zip(rows["date"].to_list(), rows["value"].to_list(), strict=True))


def as_dict(frame: pl.DataFrame) -> dict[KEY, float]:
    keys = frame.select("client_id", "product_id", "date", "feature").rows()
    return dict(zip(keys, frame["value"].to_list(), strict=True))


# --- hand-worked series ----------------------------------------------------------------------


def test_one_to_ten_ma_std_ema_lags() -> None:
    result = compute_features(
        sales_frame([("p1", day(n), float(n)) for n in range(1, 11)]), None, None, NO_SEASONALITY
    )

    assert result.feature_names == ["ema_3", "lag_1", "lag_2", "ma_3", "std_3"]
    assert result.feature_types == ["ema", "ma", "std", "lags"]
    # ma_3 exists from day 3 on: mean of (n-2, n-1, n) = n - 1.
    assert series(result, "ma_3") == {day(n): n - 1.0 for n in range(3, 11)}
    # Three consecutive integers always have a sample std of exactly 1.
    assert series(result, "std_3") == {day(n): IsApprox(1.0) for n in range(3, 11)}
    assert series(result, "lag_1") == {day(n): n - 1.0 for n in range(2, 11)}
    assert series(result, "lag_2") == {day(n): n - 2.0 for n in range(3, 11)}
    # span 3 -> alpha = 2 / (3 + 1) = 0.5; worked by hand for the first days:
    ema = series(result, "ema_3")
    assert [ema[day(n)] for n in range(1, 5)] == [1.0, 1.5, 2.25, 3.125]
    # and by the recurrence ema[t] = a * qty[t] + (1 - a) * ema[t-1] for the rest.
    expected, previous = {}, 1.0
    for n in range(1, 11):
        previous = float(n) if n == 1 else 0.5 * n + 0.5 * previous
        expected[day(n)] = previous
    assert ema == pytest.approx(expected, rel=1e-12)


def test_missing_days_are_zero_and_same_day_sales_are_summed() -> None:
    sales = sales_frame(
        [("p1", day(1), 4.0), ("p1", day(2), 2.0), ("p1", day(4), 6.0), ("p1", day(4), 1.0)]
    )
    params = FeatureParams(
        ema_spans=(), ma_windows=(2,), std_windows=(), lags=(1,), seasonality=False
    )
    result = compute_features(sales, None, None, params)

    # daily series: 4, 2, 0 (filled), 7 (6 + 1)
    assert series(result, "lag_1") == {day(2): 4.0, day(3): 2.0, day(4): 0.0}
    assert series(result, "ma_2") == {day(2): 3.0, day(3): 1.0, day(4): 3.5}
    assert result.feature_types == ["ma", "lags"]


def test_null_qty_counts_as_zero_and_undated_rows_are_ignored() -> None:
    sales = pl.DataFrame(
        {
            "client_id": ["c1"] * 4,
            "product_id": ["p1"] * 4,
            "date": [day(1), day(2), None, day(3)],
            "qty": [3.0, None, 50.0, 1.0],
            "amount": [0.0] * 4,
        }
    )
    params = FeatureParams(
        ema_spans=(), ma_windows=(), std_windows=(), lags=(1,), seasonality=False
    )
    result = compute_features(sales, None, None, params)

    assert series(result, "lag_1") == {day(2): 3.0, day(3): 0.0}


def test_weekday_profile_on_two_weeks() -> None:
    week1 = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]
    week2 = [5.0, 2.0, 1.0, 0.0, 1.0, 2.0, 3.0]  # the 0 day is written, not a gap
    sales = sales_frame([("p1", day(n + 1), q) for n, q in enumerate(week1 + week2)])
    result = compute_features(sales, None, None, FeatureParams())

    # mean over the 14 days = 42 / 14 = 3; Monday (1 + 5) / 2 = 3, Tuesday (2 + 2) / 2 = 2, ...
    by_weekday = [3 / 3, 2 / 3, 2 / 3, 2 / 3, 3 / 3, 4 / 3, 5 / 3]
    expected = {day(n + 1): by_weekday[n % 7] for n in range(14)}
    assert series(result, "dow_profile") == pytest.approx(expected, rel=1e-12)
    assert series(result, "moy_profile") == {day(n): IsApprox(1.0) for n in range(1, 15)}
    assert result.feature_types == ["ema", "ma", "std", "lags", "seasonality"]


def test_month_profile_across_a_month_boundary() -> None:
    qty = {date(2024, 1, 30): 1.0, date(2024, 1, 31): 3.0, date(2024, 2, 1): 4.0}
    sales = sales_frame([("p1", d, q) for d, q in qty.items()] + [("p1", date(2024, 2, 2), 4.0)])
    result = compute_features(sales, None, None, FeatureParams())

    # mean = 12 / 4 = 3; January (1 + 3) / 2 = 2 -> 2/3; February 4 -> 4/3
    assert series(result, "moy_profile") == pytest.approx(
        {
            date(2024, 1, 30): 2 / 3,
            date(2024, 1, 31): 2 / 3,
            date(2024, 2, 1): 4 / 3,
            date(2024, 2, 2): 4 / 3,
        }
    )


def test_profiles_are_null_for_a_product_that_never_sold() -> None:
    sales = sales_frame([("p1", day(1), 0.0), ("p1", day(3), 0.0), ("p2", day(1), 2.0)])
    result = compute_features(sales, None, None, FeatureParams(ma_windows=(2,)))

    assert series(result, "dow_profile", "p1") == {}
    assert series(result, "moy_profile", "p1") == {}
    assert series(result, "ma_2", "p1") == {day(2): 0.0, day(3): 0.0}
    assert series(result, "dow_profile", "p2") == {day(1): 1.0}


def test_stock_is_forward_filled_and_gives_days_of_cover() -> None:
    sales = sales_frame([("p1", day(n), 2.0) for n in range(1, 7)])
    stock = stock_frame(
        [
            ("p1", D0 - timedelta(days=1), 10.0),  # before the first sale: still applies
            ("p1", day(3), 6.0),
            ("p1", day(4), None),  # ignored
            ("p1", day(5), 1.0),
            ("p1", day(5), 2.0),  # same day: summed
            ("p1", day(9), 99.0),  # after the last sale: no grid day
        ]
    )
    params = FeatureParams(ma_windows=(2, 3))
    result = compute_features(sales, stock, None, params)

    assert result.feature_types == IsList("ema", "ma", "std", "lags", "seasonality", "stock")
    assert {"stock_on_hand", "days_of_cover"} <= set(result.feature_names)
    on_hand = [10.0, 10.0, 6.0, 6.0, 3.0, 3.0]
    assert series(result, "stock_on_hand") == {day(n): on_hand[n - 1] for n in range(1, 7)}
    # cover uses ma_2 (the first ma window) = 2 from day 2 on; day 1 has no ma_2 yet.
    assert series(result, "days_of_cover") == {day(n): on_hand[n - 1] / 2 for n in range(2, 7)}


def test_stock_before_its_first_row_and_cover_without_sales() -> None:
    sales = sales_frame(
        [("p1", day(1), 0.0), ("p1", day(3), 0.0), ("p2", day(1), 1.0), ("p2", day(3), 1.0)]
    )
    stock = stock_frame([("p1", day(2), 5.0), ("p2", day(3), 4.0)])
    result = compute_features(sales, stock, None, FeatureParams(ma_windows=(1,)))

    assert series(result, "stock_on_hand", "p1") == {day(2): 5.0, day(3): 5.0}
    assert series(result, "days_of_cover", "p1") == {}  # ma_1 is 0 on every day
    assert series(result, "stock_on_hand", "p2") == {day(3): 4.0}
    assert series(result, "days_of_cover", "p2") == {day(3): 4.0}


def test_stock_without_ma_windows_gives_only_stock_on_hand() -> None:
    sales = sales_frame([("p1", day(1), 1.0)])
    stock = stock_frame([("p1", day(1), 3.0)])
    result = compute_features(sales, stock, None, FeatureParams(ma_windows=()))

    assert "days_of_cover" not in result.feature_names
    assert series(result, "stock_on_hand") == {day(1): 3.0}
    assert result.feature_types == ["ema", "std", "lags", "seasonality", "stock"]


def test_empty_stock_adds_no_stock_features() -> None:
    sales = sales_frame([("p1", day(1), 1.0)])
    result = compute_features(sales, stock_frame([]), None, FeatureParams())

    assert "stock" not in result.feature_types
    assert not {"stock_on_hand", "days_of_cover"} & set(result.feature_names)


# --- products, empty input, output shape -------------------------------------------------------


def test_inactive_products_are_excluded() -> None:
    sales = pl.concat(
        [
            sales_frame(
                [(p, day(n), 1.0) for p in ("on", "off", "unlisted", "null") for n in (1, 2)]
            ),
            sales_frame([("off", day(1), 1.0)], client="c2"),
        ]
    )
    products = pl.DataFrame(
        {
            "client_id": ["c1", "c1", "c1", "c2"],
            "product_id": ["on", "off", "null", "other"],
            "name": ["a", "b", "c", "d"],
            "category": ["x", "x", "x", "x"],
            "active": [True, False, None, False],
        }
    )
    result = compute_features(sales, None, products, FeatureParams())

    kept = set(result.frame.select("client_id", "product_id").unique().rows())
    # "off" is inactive for c1 only; absent or null-active products count as active.
    assert kept == {("c1", "on"), ("c1", "unlisted"), ("c1", "null"), ("c2", "off")}


def test_empty_sales() -> None:
    result = compute_features(
        sales_frame([]), stock_frame([("p1", D0, 1.0)]), None, FeatureParams()
    )

    assert result.frame.is_empty()
    assert result.frame.schema == FEATURE_SCHEMA
    assert result.feature_names == []
    assert result.feature_types == []


def test_every_product_inactive_is_like_empty_sales() -> None:
    sales = sales_frame([("p1", D0, 1.0)])
    products = pl.DataFrame(
        {"client_id": ["c1"], "product_id": ["p1"], "name": ["n"], "category": ["k"], "active": [0]}
    )  # an integer flag, as MySQL returns BOOLEAN
    result = compute_features(sales, None, products, FeatureParams())

    assert result.frame.is_empty()
    assert result.feature_names == []


def test_long_frame_schema_keys_and_no_missing_values() -> None:
    sales = sales_frame([(p, day(n), float(n % 5)) for p in ("b", "a") for n in range(1, 40)])
    result = compute_features(sales, None, None, FeatureParams())
    frame = result.frame

    assert frame.schema == FEATURE_SCHEMA
    assert frame["value"].null_count() == 0
    assert not frame["value"].is_nan().any()
    assert sorted(frame["feature"].unique()) == result.feature_names
    # one row per key: the store upserts by it
    assert frame.select("client_id", "product_id", "date", "feature").is_duplicated().sum() == 0


# --- parameters -------------------------------------------------------------------------------


class Config(BaseModel):
    features: FeatureParams


@pytest.mark.parametrize(
    ("section", "loc"),
    [
        ({"ema_spans": [7, 0]}, ("features", "ema_spans", 1)),
        ({"ma_windows": [-3]}, ("features", "ma_windows", 0)),
        ({"std_windows": [1]}, ("features", "std_windows", 0)),
        ({"lags": [1, 1]}, ("features", "lags")),
        ({"lags": [1.5]}, ("features", "lags", 0)),
        ({"lags": ["7"]}, ("features", "lags", 0)),
        ({"seasonalty": False}, ("features", "seasonalty")),
    ],
)
def test_bad_parameters_name_the_key(section: dict[str, object], loc: tuple[object, ...]) -> None:
    with pytest.raises(ValidationError) as info:
        Config.model_validate({"features": section})

    assert [error["loc"] for error in info.value.errors()] == [loc]
    assert ".".join(map(str, loc)) in str(info.value)


def test_parameters_from_yaml_lists_are_frozen_tuples() -> None:
    params = Config.model_validate({"features": {"ema_spans": [3, 14], "lags": []}}).features

    assert params.ema_spans == (3, 14)
    assert params.lags == ()
    with pytest.raises(ValidationError):
        params.ema_spans = (1,)  # type: ignore[misc]  # deliberately: a frozen field


# --- against a plain-Python reference ----------------------------------------------------------


def reference(
    sales: list[tuple[str, str, date, float]],
    stock: list[tuple[str, str, date, float]],
    inactive: set[tuple[str, str]],
    params: FeatureParams,
) -> dict[KEY, float]:
    """The module docstring's definitions, one product and one day at a time."""
    totals: dict[tuple[str, str], dict[date, float]] = defaultdict(lambda: defaultdict(float))
    for client, product, d, q in sales:
        if (client, product) not in inactive:
            totals[(client, product)][d] += q
    stock_totals: dict[tuple[str, str], dict[date, float]] = defaultdict(lambda: defaultdict(float))
    for client, product, d, q in stock:
        stock_totals[(client, product)][d] += q

    out: dict[KEY, float] = {}
    for (client, product), by_day in totals.items():
        first, last = min(by_day), max(by_day)
        dates = [first + timedelta(days=i) for i in range((last - first).days + 1)]
        qty = [by_day.get(d, 0.0) for d in dates]
        columns: dict[str, list[float | None]] = {}
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
        if params.seasonality:
            mean = statistics.fmean(qty)
            for name, period in (("dow_profile", date.weekday), ("moy_profile", lambda d: d.month)):
                groups: dict[int, list[float]] = defaultdict(list)
                for d, q in zip(dates, qty, strict=True):
                    groups[period(d)].append(q)
                columns[name] = [
                    statistics.fmean(groups[period(d)]) / mean if mean != 0 else None for d in dates
                ]
        if stock:
            known = sorted(stock_totals[(client, product)].items())
            on_hand = [next((v for sd, v in reversed(known) if sd <= d), None) for d in dates]
            columns["stock_on_hand"] = list(on_hand)
            if params.ma_windows:
                ma = columns[f"ma_{params.ma_windows[0]}"]
                columns["days_of_cover"] = [
                    h / m if h is not None and m is not None and m > 0 else None
                    for h, m in zip(on_hand, ma, strict=True)
                ]
        for feature, values in columns.items():
            for d, v in zip(dates, values, strict=True):
                if v is not None and not math.isnan(v):
                    out[(client, product, d, feature)] = v
    return out


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_matches_plain_python_reference_on_random_data(seed: int) -> None:
    rng = random.Random(seed)
    sales: list[tuple[str, str, date, float]] = []
    stock: list[tuple[str, str, date, float]] = []
    for client in ("c1", "c2"):
        for product in ("p1", "p2", "p3"):
            start = D0 + timedelta(days=rng.randrange(30))
            for n in range(90):
                if rng.random() < 0.2:  # a gap
                    continue
                d = start + timedelta(days=n)
                sales.append((client, product, d, float(rng.randrange(0, 20))))
                if rng.random() < 0.1:  # a second sale that day
                    sales.append((client, product, d, rng.uniform(0, 5)))
                if rng.random() < 0.05:
                    stock.append((client, product, d - timedelta(days=3), rng.uniform(0, 100)))
    inactive = {("c2", "p2")}
    params = FeatureParams(
        ema_spans=(3, 10), ma_windows=(7, 4), std_windows=(2, 14), lags=(1, 5), seasonality=True
    )
    frame = pl.DataFrame(
        sales,
        schema=["client_id", "product_id", "date", "qty"],
        orient="row",
    ).with_columns(amount=pl.col("qty") * 3)
    stock_df = pl.DataFrame(
        stock, schema=["client_id", "product_id", "date", "on_hand"], orient="row"
    )
    products = pl.DataFrame(
        {
            "client_id": ["c2", "c1"],
            "product_id": ["p2", "p2"],
            "name": ["x", "y"],
            "category": ["k", "k"],
            "active": [False, True],
        }
    )

    result = compute_features(
        frame.sample(fraction=1.0, shuffle=True, seed=seed), stock_df, products, params
    )
    expected = reference(sales, stock, inactive, params)

    got = as_dict(result.frame)
    assert got.keys() == expected.keys()
    assert got == pytest.approx(expected, rel=1e-9, abs=1e-9)
    assert result.feature_names == sorted({feature for *_, feature in expected})
