"""features.compute (the wide frame and the profiles) against hand-worked series; products,
empty input and the output's shape; the parameters."""

import math
import random
from datetime import date, timedelta

import polars as pl
import pytest
from dirty_equals import IsApprox
from polars.testing import assert_frame_equal
from pydantic import BaseModel, ValidationError

from core.errors import FatalError
from features import (
    PROFILE_SCHEMA,
    FeatureParams,
    compute,
    wide_schema,
)
from tests.unit.features_kit import (
    D0,
    NO_SEASONALITY,
    day,
    present,
    profile,
    sales_frame,
    series,
    stock_frame,
)


def test_one_to_ten_ma_std_ema_lags() -> None:
    result = compute(
        sales_frame([("p1", day(n), float(n)) for n in range(1, 11)]), None, None, NO_SEASONALITY
    )

    assert result.wide.columns == ["client_id", "product_id", "date", "qty", "ema_3", "ma_3",
                                   "std_3", "lag_1", "lag_2", "stock_on_hand", "days_of_cover"]
    assert result.families == ["ema", "ma", "std", "lags"]
    assert series(result, "qty") == {day(n): float(n) for n in range(1, 11)}
    # ma_3 exists from day 3 on: mean of (n-2, n-1, n) = n - 1.
    assert series(result, "ma_3") == {day(n): n - 1.0 if n >= 3 else None for n in range(1, 11)}
    # Three consecutive integers always have a sample std of exactly 1.
    assert present(result, "std_3") == {day(n): IsApprox(1.0) for n in range(3, 11)}
    assert present(result, "lag_1") == {day(n): n - 1.0 for n in range(2, 11)}
    assert present(result, "lag_2") == {day(n): n - 2.0 for n in range(3, 11)}
    # span 3 -> alpha = 2 / (3 + 1) = 0.5; worked by hand for the first days:
    ema = series(result, "ema_3")
    assert [ema[day(n)] for n in range(1, 5)] == [1.0, 1.5, 2.25, 3.125]
    # and by the recurrence ema[t] = a * qty[t] + (1 - a) * ema[t-1] for the rest.
    expected, previous = {}, 1.0
    for n in range(1, 11):
        previous = float(n) if n == 1 else 0.5 * n + 0.5 * previous
        expected[day(n)] = previous
    assert ema == pytest.approx(expected, rel=1e-12)
    assert set(series(result, "stock_on_hand").values()) == {None}  # no stock: null, not absent
    assert result.profiles.is_empty() and result.since is None


def test_missing_days_are_zero_and_same_day_sales_are_summed() -> None:
    sales = sales_frame(
        [("p1", day(1), 4.0), ("p1", day(2), 2.0), ("p1", day(4), 6.0), ("p1", day(4), 1.0)]
    )
    params = FeatureParams(
        ema_spans=(), ma_windows=(2,), std_windows=(), lags=(1,), seasonality=False
    )
    result = compute(sales, None, None, params)

    assert series(result, "qty") == {day(1): 4.0, day(2): 2.0, day(3): 0.0, day(4): 7.0}
    assert present(result, "lag_1") == {day(2): 4.0, day(3): 2.0, day(4): 0.0}
    assert present(result, "ma_2") == {day(2): 3.0, day(3): 1.0, day(4): 3.5}
    assert result.families == ["ma", "lags"]


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
    result = compute(sales, None, None, FeatureParams(seasonality=False))

    assert series(result, "qty") == {day(1): 3.0, day(2): 0.0, day(3): 1.0}


def test_every_product_runs_to_its_clients_last_day() -> None:
    sales = sales_frame([("p1", day(1), 1.0), ("p1", day(5), 1.0), ("p2", day(2), 3.0)])
    sales = pl.concat([sales, sales_frame([("p1", day(9), 1.0)], client="c2")])
    result = compute(sales, None, None, FeatureParams(seasonality=False))

    # p2 sold once, on day 2; its client c1 has sales until day 5: days 3..5 sold 0.
    assert series(result, "qty", "p2") == {day(2): 3.0, day(3): 0.0, day(4): 0.0, day(5): 0.0}
    assert len(series(result, "qty", "p1")) == 5 + 1  # c1's p1 days 1..5 and c2's p1 day 9


def test_same_rows_in_any_order_give_the_same_bits() -> None:
    rng = random.Random(7)
    rows = [("p1", day(1 + n // 5), rng.uniform(0, 1) * 10 ** rng.randrange(-3, 6))
            for n in range(200)]  # five sales a day: a float sum depends on their order
    frames = [sales_frame(rows), sales_frame(rows[::-1]), sales_frame(rng.sample(rows, len(rows)))]
    params = FeatureParams(ma_windows=(3, 7), std_windows=(3, 7))
    first, *others = (compute(frame, None, None, params) for frame in frames)

    for other in others:
        assert_frame_equal(other.wide, first.wide, check_exact=True)
        assert_frame_equal(other.profiles, first.profiles, check_exact=True)


def test_weekday_profile_on_two_weeks() -> None:
    week1 = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]
    week2 = [5.0, 2.0, 1.0, 0.0, 1.0, 2.0, 3.0]  # the 0 day is written, not a gap
    sales = sales_frame([("p1", day(n + 1), q) for n, q in enumerate(week1 + week2)])
    result = compute(sales, None, None, FeatureParams())

    # mean over the 14 days = 42 / 14 = 3; Monday (1 + 5) / 2 = 3, Tuesday (2 + 2) / 2 = 2, ...
    by_weekday = [3 / 3, 2 / 3, 2 / 3, 2 / 3, 3 / 3, 4 / 3, 5 / 3]
    assert profile(result, "dow") == pytest.approx(
        {n + 1: v for n, v in enumerate(by_weekday)}, rel=1e-12)
    assert profile(result, "moy") == {1: IsApprox(1.0)}
    monday = result.profiles.filter(pl.col("kind") == "dow", pl.col("period") == 1)
    assert monday.select("qty_sum", "days").row(0) == (6, 2)  # what an increment continues from
    assert result.families == ["ema", "ma", "std", "lags", "seasonality"]


def test_month_profile_across_a_month_boundary() -> None:
    qty = {date(2024, 1, 30): 1.0, date(2024, 1, 31): 3.0, date(2024, 2, 1): 4.0}
    sales = sales_frame([("p1", d, q) for d, q in qty.items()] + [("p1", date(2024, 2, 2), 4.0)])
    result = compute(sales, None, None, FeatureParams())

    # mean = 12 / 4 = 3; January (1 + 3) / 2 = 2 -> 2/3; February 4 -> 4/3
    assert profile(result, "moy") == pytest.approx({1: 2 / 3, 2: 4 / 3})


def test_profiles_are_null_for_a_product_that_never_sold() -> None:
    sales = sales_frame([("p1", day(1), 0.0), ("p1", day(3), 0.0), ("p2", day(3), 2.0)])
    result = compute(sales, None, None, FeatureParams(ma_windows=(2,)))

    assert profile(result, "dow", "p1") == {1: None, 2: None, 3: None}
    assert profile(result, "moy", "p1") == {1: None}
    assert present(result, "ma_2", "p1") == {day(2): 0.0, day(3): 0.0}
    assert profile(result, "dow", "p2") == {3: 1.0}


def test_stock_is_forward_filled_and_gives_days_of_cover() -> None:
    sales = sales_frame([("p1", day(n), 2.0) for n in range(1, 7)])
    stock = stock_frame(
        [
            ("p1", D0 - timedelta(days=1), 10.0),  # before the first sale: still applies
            ("p1", D0 - timedelta(days=3), 70.0),  # older than that: overridden
            ("p1", day(3), 6.0),
            ("p1", day(4), None),  # ignored
            ("p1", day(5), 1.0),
            ("p1", day(5), 2.0),  # same day: summed
            ("p1", day(9), 99.0),  # after the last sale: no grid day
        ]
    )
    result = compute(sales, stock, None, FeatureParams(ma_windows=(2, 3)))

    assert result.families == ["ema", "ma", "std", "lags", "seasonality", "stock"]
    on_hand = [10.0, 10.0, 6.0, 6.0, 3.0, 3.0]
    assert series(result, "stock_on_hand") == {day(n): on_hand[n - 1] for n in range(1, 7)}
    # cover uses ma_2 (the shortest window) = 2 from day 2 on; day 1 has no ma_2 yet.
    assert present(result, "days_of_cover") == {day(n): on_hand[n - 1] / 2 for n in range(2, 7)}
    # whatever the order the windows are listed in
    swapped = compute(sales, stock, None, FeatureParams(ma_windows=(3, 2)))
    assert_frame_equal(swapped.wide, result.wide, check_exact=True)


def test_stock_before_its_first_row_and_cover_without_sales() -> None:
    sales = sales_frame(
        [("p1", day(1), 0.0), ("p1", day(3), 0.0), ("p2", day(1), 1.0), ("p2", day(3), 1.0)]
    )
    stock = stock_frame([("p1", day(2), 5.0), ("p2", day(3), 4.0), ("p3", day(1), 8.0)])
    result = compute(sales, stock, None, FeatureParams(ma_windows=(1,)))

    assert present(result, "stock_on_hand", "p1") == {day(2): 5.0, day(3): 5.0}
    assert present(result, "days_of_cover", "p1") == {}  # ma_1 is 0 on every day
    assert present(result, "stock_on_hand", "p2") == {day(3): 4.0}
    assert present(result, "days_of_cover", "p2") == {day(3): 4.0}
    assert series(result, "qty", "p3") == {}  # stock alone makes no series


def test_without_ma_windows_there_is_no_days_of_cover_column() -> None:
    sales = sales_frame([("p1", day(1), 1.0)])
    result = compute(sales, stock_frame([("p1", day(1), 3.0)]), None,
                     FeatureParams(ma_windows=()))

    assert "days_of_cover" not in result.wide.columns
    assert series(result, "stock_on_hand") == {day(1): 3.0}
    assert result.families == ["ema", "std", "lags", "seasonality", "stock"]


@pytest.mark.parametrize(("table", "column"), [("sales", "qty"), ("stock", "on_hand")])
@pytest.mark.parametrize("bad", [math.inf, -math.inf, math.nan])
def test_a_non_finite_quantity_is_fatal_and_named(table: str, column: str, bad: float) -> None:
    sales = sales_frame([("p1", day(1), 1.0), ("p1", day(2), 1.0)])
    stock = stock_frame([("p1", day(1), 1.0)])
    if table == "sales":
        sales = sales.with_columns(qty=pl.when(pl.col("date") == day(2)).then(bad)
                                   .otherwise(pl.col("qty")))
    else:
        stock = stock.with_columns(on_hand=pl.lit(bad))
    with pytest.raises(FatalError, match=rf"{table}: {column} must be a finite number.*'p1'"):
        compute(sales, stock, None, FeatureParams())


def test_a_quantity_beyond_the_exact_sums_is_fatal() -> None:
    sales = sales_frame([("p1", day(1), 1e21)])
    with pytest.raises(FatalError, match="too large for the seasonality sums"):
        compute(sales, None, None, FeatureParams())
    assert compute(sales, None, None, FeatureParams(seasonality=False)).wide.height == 1


def test_inactive_products_are_excluded_but_their_days_count() -> None:
    sales = pl.concat(
        [
            sales_frame(
                [(p, day(n), 1.0) for p in ("on", "off", "unlisted", "null") for n in (1, 2)]
                + [("off", day(4), 1.0)]
            ),
            sales_frame([("off", day(1), 1.0)], client="c2"),
        ]
    )
    products = pl.DataFrame(
        {
            "client_id": ["c1", "c1", "c1", "c2"],
            "product_id": ["on", "off", "null", "other"],
            "category": ["x", "x", "x", "x"],
            "active": [True, False, None, False],
        }
    )
    result = compute(sales, None, products, FeatureParams())

    kept = set(result.wide.select("client_id", "product_id").unique().rows())
    # "off" is inactive for c1 only; absent or null-active products count as active.
    assert kept == {("c1", "on"), ("c1", "unlisted"), ("c1", "null"), ("c2", "off")}
    assert set(result.profiles.select("client_id", "product_id").unique().rows()) == kept
    # c1's days end on day 4, a day only the inactive product sold on
    assert series(result, "qty", "on") == {day(1): 1.0, day(2): 1.0, day(3): 0.0, day(4): 0.0}


@pytest.mark.parametrize("active", [[0], [False]])  # an integer flag, as MySQL returns BOOLEAN
def test_empty_sales_and_every_product_inactive(active: list[object]) -> None:
    products = pl.DataFrame({"client_id": ["c1"], "product_id": ["p1"], "active": active})
    params = FeatureParams()
    for sales, meta in ((sales_frame([]), None), (sales_frame([("p1", D0, 1.0)]), products)):
        result = compute(sales, stock_frame([("p1", D0, 1.0)]), meta, params)

        assert result.wide.is_empty() and result.wide.schema == wide_schema(params)
        assert result.profiles.is_empty() and result.profiles.schema == PROFILE_SCHEMA


def test_wide_rows_are_the_grid_sorted_and_the_columns_follow_the_parameters() -> None:
    sales = sales_frame([(p, day(n), float(n % 5)) for p in ("b", "a") for n in range(1, 40)])
    params = FeatureParams(ema_spans=(28, 3), ma_windows=(14, 2), lags=(7, 1))
    result = compute(sales.sample(fraction=1.0, shuffle=True, seed=1), None, None, params)

    assert result.wide.schema == wide_schema(params)
    assert params.feature_columns() == [
        "ema_3", "ema_28", "ma_2", "ma_14", "std_7", "std_28", "lag_1", "lag_7",
        "stock_on_hand", "days_of_cover"]
    keys = result.wide.select("client_id", "product_id", "date")
    assert keys.rows() == sorted(keys.rows()) and not keys.is_duplicated().any()
    assert result.wide.height == 2 * 39
    assert result.profiles.schema == PROFILE_SCHEMA
    assert result.profiles.height == 2 * (7 + 2)  # 39 days: every weekday, January and February


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


@pytest.mark.parametrize(("params", "days"), [
    (FeatureParams(), 28),  # lag_28 reaches 28 days back, ma_28 27
    (FeatureParams(lags=(1, 7)), 27),
    (FeatureParams(ma_windows=(), std_windows=(), lags=()), 0),
    (FeatureParams(std_windows=(90,), lags=(3,)), 89),
])
def test_warm_up_is_how_far_back_a_day_reads(params: FeatureParams, days: int) -> None:
    assert params.warm_up() == days
