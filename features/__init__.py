"""ML features from a client's sales (and stock) history: pure computation over polars frames, no
I/O (the pipeline that reads a client's data from the store and writes its features back is
handlers.pipelines).

    compute(sales, stock, products, params) -> Features      # full: all of a client's history
    plan_from(changed_from, params) -> Plan                  # incremental: what to read
    compute_since(plan, sales, stock, products, params, stored, stored_profiles) -> Features

`Features.wide` has one row per (client_id, product_id, date), one Float64 column per feature
(wide_schema(params): client_id, product_id, date, qty, then params.feature_columns()); the
seasonality profiles are a separate small frame, one row per (client_id, product_id, kind,
period) (PROFILE_SCHEMA, features.profiles). compute_since's contract (what to read, what to
write, when it asks for more) is in features.incremental. The handlers' pipeline writes both to the
store's daily_features and feature_profiles (docs/features.md).

Definitions, per (client_id, product_id); `qty` below is the *daily series*:

- daily series: sales qty summed per date (null qty counts as 0; same-day rows are added in
  ascending order, so any order of the same rows gives the same bits); one row for every date
  from the product's first sale to its client's last sales day (the latest date any of the
  client's products sold, inactive ones included), missing dates filled with qty 0. Sales rows
  with a null client_id, product_id or date are ignored; a non-finite qty is a FatalError.
- ``ema_{s}``: exponentially weighted mean with span s (alpha = 2 / (s + 1)), adjust=False:
  ema[0] = qty[0], ema[t] = alpha * qty[t] + (1 - alpha) * ema[t-1].
- ``ma_{w}``: mean of the last w days (this one included); null until w days exist.
- ``std_{w}``: sample standard deviation (ddof=1) of the last w days; null until w days exist.
- ``lag_{k}``: qty k days earlier; null for the first k days.
- ``stock_on_hand``: the on_hand of the latest stock row at or before the date (stock rows may
  fall outside the sales grid); null before the first stock row and without stock. Several stock
  rows for one date (e.g. several warehouses) are summed; null on_hand rows are ignored.
- ``days_of_cover`` (only when ma_windows is not empty): stock_on_hand / ma_{w} for the
  shortest window w, where that ma is > 0, else null (the same columns mean the same whatever
  the order of the parameters).
- profiles (params.seasonality), kind ``dow`` (ISO weekday 1..7) and ``moy`` (month 1..12):
  mean daily qty of the product in that period (all years together), divided by the product's
  mean daily qty over all days; null when that mean is 0. Both use the whole history: they
  describe the product's seasonal shape, not a point-in-time forecast.

Products: when `products` is given, those with active == False are excluded; products absent
from it (or with a null active) count as active.
"""

from features.incremental import Plan, Replan, compute_since, plan_from
from features.params import FeatureParams
from features.profiles import PROFILE_SCHEMA
from features.wide import Features, compute, families, wide_schema

__all__ = [
    "PROFILE_SCHEMA", "FeatureParams", "Features", "Plan", "Replan", "compute", "compute_since",
    "families", "plan_from", "wide_schema",
]
