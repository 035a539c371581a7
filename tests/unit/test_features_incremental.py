"""features.compute_since against features.compute: what an incremental recompute leaves in the
store equals a full recompute, value for value (exact equality), after random appends, edits in
the middle, deletions, new, deleted and inactive products, stock changes and parameter changes;
and each case it cannot do exactly asks for more (Replan) instead of writing wrong rows."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass

import polars as pl
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from features import FeatureParams, Features, Plan, Replan, compute, compute_since, plan_from

D0 = dt.date(2024, 1, 1)
PRODUCTS = ["p0", "p1", "p2", "p3"]
Sale = tuple[str, int, float]  # (product, day number from D0, qty)
Stock = tuple[str, int, float]

# whole quantities (the exact integer kernels), fractions (the fixed-order float ones), and the
# edges between them
QTY = st.one_of(
    st.integers(0, 30).map(float),
    st.floats(0, 50, allow_nan=False, allow_infinity=False),
    st.sampled_from([0.1, 1e-3, 2.0**20, 2.0**20 + 1, 1e6 + 0.5]),
)
SALES = st.lists(st.tuples(st.sampled_from(PRODUCTS), st.integers(0, 60), QTY), min_size=1,
                 max_size=100)
STOCK = st.lists(st.tuples(st.sampled_from(PRODUCTS), st.integers(-10, 70),
                           st.integers(0, 500).map(float)), max_size=12)
PARAMS = st.builds(
    FeatureParams,
    ema_spans=st.lists(st.integers(1, 9), unique=True, max_size=2).map(tuple),
    ma_windows=st.lists(st.integers(1, 9), unique=True, max_size=2).map(tuple),
    std_windows=st.lists(st.integers(2, 9), unique=True, max_size=2).map(tuple),
    lags=st.lists(st.integers(1, 9), unique=True, max_size=2).map(tuple),
    seasonality=st.booleans(),
)


def day(n: int) -> dt.date:
    return D0 + dt.timedelta(days=n)


def sales_frame(rows: list[Sale]) -> pl.DataFrame:
    return pl.DataFrame(
        {"client_id": ["c1"] * len(rows), "product_id": [p for p, _, _ in rows],
         "date": [day(n) for _, n, _ in rows], "qty": [q for _, _, q in rows]},
        schema={"client_id": pl.String, "product_id": pl.String, "date": pl.Date,
                "qty": pl.Float64})


def stock_frame(rows: list[Stock]) -> pl.DataFrame:
    return sales_frame(rows).rename({"qty": "on_hand"})


def meta_frame(inactive: set[str]) -> pl.DataFrame:
    return pl.DataFrame({"client_id": ["c1"] * len(PRODUCTS), "product_id": PRODUCTS,
                         "active": [p not in inactive for p in PRODUCTS]})


@dataclass(frozen=True)
class Data:
    sales: list[Sale]
    stock: list[Stock]
    inactive: set[str]
    params: FeatureParams

    def full(self) -> Features:
        return compute(sales_frame(self.sales), stock_frame(self.stock),
                       meta_frame(self.inactive), self.params)


@dataclass
class Store:
    """What the store holds for the client: its wide rows and profiles as the last run left them."""

    wide: pl.DataFrame
    profiles: pl.DataFrame

    def apply(self, result: Features) -> None:
        """replace(wide, since=result.since) and replace(profiles): rows before `since` stay."""
        kept = (self.wide.head(0) if result.since is None
                else self.wide.filter(pl.col("date") < result.since))
        self.wide = pl.concat([kept, result.wide], how="diagonal_relaxed")
        self.profiles = result.profiles


def changed_from(before: Data, after: Data) -> dt.date | None:
    """The first day whose data differ (what the store's digests tell the pipeline), also for a
    product whose active flag flipped (from its first sale on); None if nothing changed."""
    days = []
    for old, new in ((Counter(before.sales), Counter(after.sales)),
                     (Counter(before.stock), Counter(after.stock))):
        days += [n for _, n, _ in (old - new) + (new - old)]
    for product in before.inactive ^ after.inactive:
        days += [n for p, n, _ in before.sales + after.sales if p == product]
    return day(min(days)) if days else None


def run_pipeline(store: Store, after: Data, since: dt.date | None) -> list[str]:
    """The pipeline as features.incremental documents it: plan, read, compute_since, replan on
    Replan, full compute when that says so; returns the path it took."""
    path: list[str] = []
    for _ in range(5):
        if since is None:
            store.apply(after.full())
            return [*path, "full"]
        plan = plan_from(since, after.params)
        try:
            result = compute_since(
                plan, sales_frame(after.sales).filter(pl.col("date") >= plan.read_since),
                stock_frame(after.stock), meta_frame(after.inactive), after.params,
                store.wide.filter(pl.col("date") >= plan.read_since), store.profiles)
        except Replan as replan:
            path.append(f"replan {'full' if replan.since is None else 'earlier'}")
            since = replan.since
            continue
        store.apply(result)
        return [*path, "incremental"]
    raise AssertionError(f"no result after {path}")


def assert_store_equals_full(store: Store, after: Data) -> None:
    full = after.full()
    columns = full.wide.columns  # a dropped feature's old column is the store's business
    assert_frame_equal(store.wide.select(columns).sort("product_id", "date"), full.wide,
                       check_exact=True)
    assert_frame_equal(store.profiles, full.profiles, check_exact=True)


@st.composite
def changes(draw: st.DrawFn) -> tuple[Data, Data]:
    """A history and the same history after a few changes."""
    before = Data(draw(SALES), draw(STOCK), draw(st.sets(st.sampled_from(PRODUCTS), max_size=1)),
                  draw(PARAMS))
    sales, stock, inactive, params = list(before.sales), list(before.stock), set(
        before.inactive), before.params
    for kind in draw(st.lists(st.sampled_from(
            ["append", "append", "edit", "insert", "delete", "delete product", "new product",
             "stock", "flip", "params"]), min_size=1, max_size=3)):
        last = max((n for _, n, _ in sales), default=0)
        at = draw(st.integers(0, last + 1))
        if kind == "append":
            sales += draw(st.lists(st.tuples(st.sampled_from(PRODUCTS),
                                             st.integers(last + 1, last + 12), QTY), max_size=8))
        elif kind == "edit":
            sales = [(p, n, draw(QTY)) if n >= at and draw(st.booleans()) else (p, n, q)
                     for p, n, q in sales]
        elif kind == "insert":
            sales += draw(st.lists(st.tuples(st.sampled_from(PRODUCTS),
                                             st.integers(at, max(at, last)), QTY), max_size=5))
        elif kind == "delete":
            sales = [row for row in sales if row[1] < at or draw(st.booleans())]
        elif kind == "delete product":
            gone = draw(st.sampled_from(PRODUCTS))
            sales = [row for row in sales if row[0] != gone]
        elif kind == "new product":
            sales += [("p9", n, q) for n, q in draw(st.lists(
                st.tuples(st.integers(at, last + 5), QTY), min_size=1, max_size=6))]
        elif kind == "stock":
            stock = [row for row in stock if row[1] < at or draw(st.booleans())] + draw(
                st.lists(st.tuples(st.sampled_from(PRODUCTS), st.integers(at - 5, last + 5),
                                   st.integers(0, 500).map(float)), max_size=3))
        elif kind == "flip":
            inactive ^= {draw(st.sampled_from(PRODUCTS))}
        else:
            params = draw(PARAMS)
    if not sales:  # a client with no sales left has nothing to compute
        sales = [("p0", 0, 1.0)]
    return before, Data(sales, stock, inactive, params)


@settings(max_examples=250, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(changes())
def test_incremental_equals_full_after_random_changes(case: tuple[Data, Data]) -> None:
    before, after = case
    first = before.full()
    store = Store(first.wide, first.profiles)
    since = changed_from(before, after)
    if before.params != after.params:
        # The stored columns say which features were computed, not with which parameters: a new
        # shortest ma window changes what days_of_cover means under the same name. That one the
        # pipeline must recompute in full; every other change compute_since finds itself.
        if min(before.params.ma_windows, default=0) != min(after.params.ma_windows, default=0):
            since = None
        elif since is None:
            since = day(max(n for _, n, _ in after.sales) + 1)  # nothing new, columns changed
    if since is None and before.params == after.params:
        return  # nothing changed: nothing to do
    for step in run_pipeline(store, after, since):
        event(step)
    assert_store_equals_full(store, after)


# --- the common cases go incremental, the rest ask for more ---------------------------------


def history(days: int = 60) -> list[Sale]:
    return [(p, n, float((n * 7 + i) % 11) + (0.25 if n % 9 == 0 else 0.0))
            for i, p in enumerate(PRODUCTS[:3]) for n in range(i * 3, days) if (n + i) % 5]


PARAMS_DEFAULT = FeatureParams(ema_spans=(3, 10), ma_windows=(2, 7), std_windows=(3, 7),
                               lags=(1, 7))


def stored_after(rows: list[Sale], stock: list[Stock] | None = None,
                 params: FeatureParams = PARAMS_DEFAULT) -> Store:
    first = Data(rows, stock or [], set(), params).full()
    return Store(first.wide, first.profiles)


def test_plan_reads_the_warm_up_and_the_day_before() -> None:
    assert plan_from(day(40), PARAMS_DEFAULT) == Plan(day(40), day(40 - 7 - 1))
    no_windows = FeatureParams(ma_windows=(), std_windows=(), lags=())
    assert plan_from(day(40), no_windows) == Plan(day(40), day(39))


@pytest.mark.parametrize("new_days", [1, 3])
def test_an_appended_day_is_computed_from_the_warm_up_only(new_days: int) -> None:
    rows = history()
    stock = [("p0", 5, 40.0), ("p1", 58, 3.0), ("p2", 61, 9.0)]
    store = stored_after(rows, stock)
    after = Data(rows + [(p, 60 + k, 2.0 + k) for p in PRODUCTS[:2] for k in range(new_days)],
                 stock, set(), PARAMS_DEFAULT)

    plan = plan_from(day(60), PARAMS_DEFAULT)
    read = sales_frame(after.sales).filter(pl.col("date") >= plan.read_since)
    result = compute_since(plan, read, stock_frame(stock), None, PARAMS_DEFAULT,
                           store.wide.filter(pl.col("date") >= plan.read_since), store.profiles)

    assert result.since == day(60)
    assert result.wide.height == 3 * new_days  # every product gets the new days, p2 sold 0
    assert read.height < len(after.sales) / 3
    store.apply(result)
    assert_store_equals_full(store, after)


def test_a_deleted_tail_moves_since_back() -> None:
    rows = [r for r in history() if r[1] != 55]  # no sales at all on day 55
    store = stored_after(rows)
    after = Data([r for r in rows if r[1] < 56], [], set(), PARAMS_DEFAULT)  # 56.. deleted

    plan = plan_from(day(56), PARAMS_DEFAULT)
    result = compute_since(plan, sales_frame(after.sales), None, None, PARAMS_DEFAULT,
                           store.wide.filter(pl.col("date") >= plan.read_since), store.profiles)
    assert result.since == day(55) and result.wide.is_empty()  # day 55 is no grid day now
    store.apply(result)
    assert store.wide.get_column("date").max() == day(54)
    assert_store_equals_full(store, after)


def test_a_pause_in_the_clients_days_replans_from_the_day_after_the_last_stored() -> None:
    rows = history(40)
    store = stored_after(rows)
    after = Data([*rows, ("p0", 45, 3.0)], [], set(), PARAMS_DEFAULT)

    with pytest.raises(Replan) as info:
        plan = plan_from(day(45), PARAMS_DEFAULT)
        compute_since(plan, sales_frame(after.sales), None, None, PARAMS_DEFAULT,
                      store.wide.filter(pl.col("date") >= plan.read_since), store.profiles)
    assert info.value.since == day(40)
    assert run_pipeline(store, after, day(45)) == ["replan earlier", "incremental"]
    assert_store_equals_full(store, after)


def replan_reason(store: Store, after: Data, since: dt.date,
                  stored: pl.DataFrame | None = None) -> Replan:
    plan = plan_from(since, after.params)
    with pytest.raises(Replan) as info:
        compute_since(plan, sales_frame(after.sales), stock_frame(after.stock),
                      meta_frame(after.inactive), after.params,
                      store.wide.filter(pl.col("date") >= plan.read_since)
                      if stored is None else stored, store.profiles)
    return info.value


def test_what_compute_since_cannot_do_exactly_it_asks_a_full_recompute_for() -> None:
    rows = history()
    store = stored_after(rows)
    same = Data(rows, [], set(), PARAMS_DEFAULT)
    cases = {
        # data before `since` changed after all (a wrong date_from): the checked day differs
        "stored qty": Data([(p, n, q + 1 if n == 50 else q) for p, n, q in rows], [], set(),
                           PARAMS_DEFAULT),
        "made inactive": Data(rows, [], {"p1"}, PARAMS_DEFAULT),
        "no stored ema_5": Data(rows, [], set(), PARAMS_DEFAULT.model_copy(
            update={"ema_spans": (3, 5, 10)})),
        "stored features have no lag_2": Data(rows, [], set(), PARAMS_DEFAULT.model_copy(
            update={"lags": (1, 2, 7)})),
        "no stored profile": Data(rows, [], set(), PARAMS_DEFAULT),
    }
    for reason, after in cases.items():
        profiles = store.profiles
        if reason == "no stored profile":
            store.profiles = profiles.filter(pl.col("product_id") != "p2")
        replan = replan_reason(store, after, day(55))
        store.profiles = profiles
        assert replan.since is None, reason
        assert reason.split()[-1] in str(replan), (reason, str(replan))

    rounded = store.wide.with_columns(pl.col("std_7").round(6))  # a store that rounds floats
    assert "std_7" in str(replan_reason(store, same, day(55), rounded))
    assert "no features stored" in str(replan_reason(store, same, day(55), store.wide.head(0)))
    later = Data([*rows, ("p3", 50, 1.0)], [], set(), PARAMS_DEFAULT)  # sales, no stored rows
    assert "'p3'" in str(replan_reason(store, later, day(55)))


def test_one_client_at_a_time() -> None:
    rows = history(20)
    store = stored_after(rows)
    plan = plan_from(day(15), PARAMS_DEFAULT)
    other = sales_frame(rows).with_columns(client_id=pl.lit("c2"))
    with pytest.raises(ValueError, match="one client"):
        compute_since(plan, pl.concat([sales_frame(rows), other]), None, None, PARAMS_DEFAULT,
                      store.wide, store.profiles)
