"""The per-day kernels on a grid's flat columns: window means and sample stds, lags, EMAs.

Every value is a fixed function of the days it covers, so it comes out bit for bit the same
wherever the series starts: that is what lets an incremental recompute equal a full one. A
sliding float sum that adds the entering day and subtracts the leaving one (polars', pandas' and
coreforecast's rolling kernels) carries rounding from every earlier day instead; restarted later,
it differs in the last bits. Two ways to be exact here, chosen per day by the window's values:

- whole quantities (every day of the window an integer of magnitude <= 2^20, the usual case):
  integer prefix sums of qty and qty², so a window's sum S and sum of squares Q are exact
  differences (int64 wraps around, but the differences of windows that fit are exact); the mean
  is S / w and the sample variance (w·Q - S²) / (w·(w - 1)), each rounded once.
- otherwise: the window summed afresh in a fixed order (w in-place numpy additions over the
  column), and the squared deviations from that mean likewise (two-pass: no cancellation, an
  all-equal window gives exactly 0).

numpy, not polars expressions, because these are many cheap passes over one column: in place
they are several times faster than as expressions that each allocate a column.
"""

from __future__ import annotations

import numpy as np
import polars as pl

WHOLE = 2**20  # |qty| up to this, windows up to MAX_EXACT days: w·Q and S² fit in an int64
MAX_EXACT = 2**10


def _prefix(x: np.ndarray) -> np.ndarray:
    """0, x[0], x[0] + x[1], ...: window sums are differences of two of these."""
    out = np.empty(x.size + 1, x.dtype)
    out[0] = 0
    np.cumsum(x, out=out[1:])
    return out


def _window(prefix: np.ndarray, w: int) -> np.ndarray:
    """sum of the w values ending at each t (garbage for t < w - 1: the caller masks those)."""
    out = prefix[1:].copy()
    out[w:] -= prefix[1:-w]
    return out


def window_sums(x: np.ndarray, w: int) -> np.ndarray:
    """s[t] = x[t] + x[t-1] + ... + x[t-w+1], added in that order for every t."""
    s = x.copy()
    for i in range(1, w):
        s[i:] += x[:-i]
    return s


def squared_deviations(x: np.ndarray, mean: np.ndarray, w: int) -> np.ndarray:
    """d[t] = (x[t] - mean[t])² + ... + (x[t-w+1] - mean[t])², in that order."""
    d = np.square(x - mean)
    term = np.empty_like(x)
    for i in range(1, w):
        np.subtract(x[:-i], mean[i:], out=term[i:])
        np.square(term[i:], out=term[i:])
        d[i:] += term[i:]
    return d


class Windows:
    """Means and sample stds of the last w days of a grid's qty column."""

    def __init__(self, qty: np.ndarray) -> None:
        self.qty = qty
        whole = (qty == np.rint(qty)) & (np.abs(qty) <= WHOLE)
        self.fractional = _prefix((~whole).astype(np.int64))  # counts days that are not whole
        as_int = np.where(whole, qty, 0).astype(np.int64)
        self.sums, self.squares = _prefix(as_int), _prefix(as_int * as_int)

    def stats(self, w: int, std: bool) -> tuple[np.ndarray, np.ndarray | None]:
        """(mean, sample std or None) of the w days ending at each row."""
        s = _window(self.sums, w)
        mean = s / w
        sd = None
        if std:
            q = _window(self.squares, w)
            sd = np.sqrt((w * q - s * s) / (w * (w - 1)))
        if self.fractional[-1] == 0 and w <= MAX_EXACT:  # every day whole: all exact
            return mean, sd
        exact = (_window(self.fractional, w) == 0) & (w <= MAX_EXACT)
        if not exact.all():  # some windows hold a fraction: those the fixed-order way
            float_sums = window_sums(self.qty, w)
            float_mean = float_sums / w
            mean = np.where(exact, mean, float_mean)
            if sd is not None:
                deviations = squared_deviations(self.qty, float_mean, w)
                sd = np.where(exact, sd, np.sqrt(deviations / (w - 1)))
        return mean, sd


def masked(values: np.ndarray, fpos: np.ndarray, reach: int, name: str) -> pl.Series:
    """`values` as a Float64 column, null where the day reaches back before its series' first
    row (fpos < reach)."""
    return pl.Series(name, values).set(pl.Series(fpos < reach), None)


def windows(qty: np.ndarray, fpos: np.ndarray, ma: tuple[int, ...],
            std: tuple[int, ...]) -> list[pl.Series]:
    """ma_{w}: mean of the last w days (this one included), std_{w}: their sample std (ddof 1);
    null until w days exist."""
    kernel, out = Windows(qty), []
    for w in sorted({*ma, *std}):
        mean, sd = kernel.stats(w, w in std)
        if w in ma:
            out.append(masked(mean, fpos, w - 1, f"ma_{w}"))
        if sd is not None:
            out.append(masked(sd, fpos, w - 1, f"std_{w}"))
    return out


def lags(lags: tuple[int, ...]) -> list[pl.Expr]:
    """lag_{k}: the qty k days earlier, null for a series' first k days (rows sorted by series
    and date: a shift of the flat column, cut at the series' start)."""
    return [pl.when(pl.col("fpos") >= k).then(pl.col("qty").shift(k)).alias(f"lag_{k}")
            for k in sorted(lags)]


def emas(spans: tuple[int, ...], seeds: dict[int, pl.Expr] | None = None) -> list[pl.Expr]:
    """ema_{s}: alpha = 2 / (s + 1), adjust=False: ema[0] = qty[0],
    ema[t] = ema[t-1] + (qty[t] - ema[t-1]) * alpha (polars' ewm_mean; each step depends only on
    the previous value and the day's qty). `seeds[s]` replaces a series' first qty by a stored
    EMA value: the run continues from it exactly as the full run went on from that value."""
    out = []
    for s in sorted(spans):
        start = pl.col("qty") if seeds is None else seeds[s]
        out.append(start.ewm_mean(alpha=2 / (s + 1), adjust=False).over("sid").alias(f"ema_{s}"))
    return out
