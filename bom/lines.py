"""BOM lines as read: the columns, their defaults and the checks of each line on its own.

`read(edges)` returns the lines typed as LINE_SCHEMA with the optional columns' defaults filled
in and `line` (the row's 1-based position in `edges`, the number errors name); a line breaking a
rule is a BomDataError naming it, its ids and every rule it breaks. Columns not listed are
ignored (client_id included: callers explode one client at a time).
"""

from collections.abc import Iterable
from datetime import date

import polars as pl

from bom.errors import BomDataError

ID_COLUMNS = ("parent_id", "child_id")

# Optional columns and the value a missing column or a null stands for.
DEFAULTS: dict[str, object] = {
    "base_qty": 1.0,
    "scrap_pct": 0.0,
    "phantom": False,
    "valid_from": None,
    "valid_to": None,
    "uom_factor": 1.0,
    "lead_days": 0,
}

LINE_SCHEMA = pl.Schema(
    {
        "line": pl.UInt32,
        "parent_id": pl.Utf8,
        "child_id": pl.Utf8,
        "qty_per": pl.Float64,
        "base_qty": pl.Float64,
        "scrap_pct": pl.Float64,
        "phantom": pl.Boolean,
        "valid_from": pl.Date,
        "valid_to": pl.Date,
        "uom_factor": pl.Float64,
        "lead_days": pl.Int32,
    }
)

# What each value column must be read as (lead_days as a number first: a cast to an integer
# would silently truncate 1.5), and the word an unreadable value is called out with.
_READ_AS: dict[str, tuple[pl.DataType, str]] = {
    "qty_per": (pl.Float64(), "a number"),
    "base_qty": (pl.Float64(), "a number"),
    "scrap_pct": (pl.Float64(), "a number"),
    "phantom": (pl.Boolean(), "true or false"),
    "valid_from": (pl.Date(), "a date"),
    "valid_to": (pl.Date(), "a date"),
    "uom_factor": (pl.Float64(), "a number"),
    "lead_days": (pl.Float64(), "a number"),
}


def _positive(name: str) -> pl.Expr:
    return pl.col(name).is_finite() & (pl.col(name) > 0)


# (column shown, rule that must hold on the typed line, what the rule asks)
_RULES: list[tuple[str, pl.Expr, str]] = [
    ("parent_id", pl.col("parent_id").is_not_null(), "is missing"),
    ("child_id", pl.col("child_id").is_not_null(), "is missing"),
    ("qty_per", _positive("qty_per"), "must be a positive finite number"),
    ("base_qty", _positive("base_qty"), "must be a positive finite number"),
    (
        "scrap_pct",
        pl.col("scrap_pct").is_finite() & pl.col("scrap_pct").is_between(0, 100, closed="left"),
        "must be a percentage from 0 up to (not including) 100",
    ),
    ("uom_factor", _positive("uom_factor"), "must be a positive finite number"),
    (
        "lead_days",
        pl.col("lead_days").is_finite()
        & (pl.col("lead_days") >= 0)
        & (pl.col("lead_days") == pl.col("lead_days").floor()),
        "must be a whole number of days, 0 or more",
    ),
    (
        "valid_from",
        pl.col("valid_from").is_null()
        | pl.col("valid_to").is_null()
        | (pl.col("valid_from") <= pl.col("valid_to")),
        "is after valid_to={valid_to}",
    ),
]


def read(edges: pl.DataFrame) -> pl.DataFrame:
    """`edges` typed as LINE_SCHEMA, defaults filled in; BomDataError on a bad line."""
    missing = [c for c in (*ID_COLUMNS, "qty_per") if c not in edges.columns]
    if missing:
        raise BomDataError(f"BOM lines need the columns parent_id, child_id, qty_per; "
                           f"missing: {', '.join(missing)}")
    raw = edges.select(*ID_COLUMNS, *(c for c in _READ_AS if c in edges.columns))
    typed = raw.select(
        pl.int_range(1, pl.len() + 1, dtype=pl.UInt32).alias("line"),
        *(pl.col(c).cast(pl.Utf8) for c in ID_COLUMNS),
        *(_read_as(raw, c, dtype) for c, (dtype, _) in _READ_AS.items()),
    )
    unreadable = [
        (c, pl.lit(raw[c].is_null() | typed[c].is_not_null()), f"is not {word}")
        for c, (_, word) in _READ_AS.items() if c in raw.columns
    ]
    filled = typed.with_columns(
        pl.col(c).fill_null(value) for c, value in DEFAULTS.items() if value is not None
    )
    _check(raw, filled, [*unreadable, *_RULES])
    return filled.with_columns(pl.col("lead_days").cast(pl.Int32)).select(LINE_SCHEMA.names())


def _read_as(raw: pl.DataFrame, name: str, dtype: pl.DataType) -> pl.Expr:
    """`name` as `dtype` (null where a value cannot be read), all nulls if the column is absent."""
    if name not in raw.columns:
        return pl.lit(None, dtype).alias(name)
    column = pl.col(name)
    try:
        if dtype == pl.Date and raw.schema[name] == pl.Utf8:
            return column.str.to_date(strict=False)
        raw.head(0).select(column.cast(dtype, strict=False))  # an unsupported cast raises here
    except pl.exceptions.PolarsError:
        raise BomDataError(
            f"BOM column {name} has type {raw.schema[name]}, which cannot be read as {dtype}"
        ) from None
    return column.cast(dtype, strict=False)


def _check(raw: pl.DataFrame, typed: pl.DataFrame,
           rules: Iterable[tuple[str, pl.Expr, str]]) -> None:
    """Raise BomDataError naming the first line that breaks a rule, with all it breaks."""
    rules = list(rules)
    broken = typed.select(
        (~rule.fill_null(False)).alias(f"r{i}") for i, (_, rule, _) in enumerate(rules)
    )
    any_broken = broken.select(pl.any_horizontal(pl.all()).alias("bad"))["bad"]
    count = any_broken.sum()
    if not count:
        return
    index = int(any_broken.arg_true()[0])
    values = raw.row(index, named=True)
    flags = broken.row(index)
    problems = "; ".join(
        f"{name}{_shown(name, values)} {asks.format(**values)}"
        for (name, _, asks), flag in zip(rules, flags, strict=True) if flag
    )
    more = f" (and {count - 1} more bad line{'s' if count > 2 else ''})" if count > 1 else ""
    raise BomDataError(f"{line_name(typed.row(index, named=True))}: {problems}{more}")


def _shown(name: str, values: dict[str, object]) -> str:
    """'=<value as given>' for a value the line has, '' for an id that is missing."""
    if name in ID_COLUMNS and values[name] is None:
        return ""
    value = values.get(name)
    return f"={value}" if isinstance(value, date) else f"={value!r}"  # dates as ISO text


def line_name(line: dict[str, object]) -> str:
    """How messages name a line: 'BOM line 3 (parent_id='A', child_id='B')'."""
    return f"BOM line {line['line']} (parent_id={line['parent_id']!r}, " \
           f"child_id={line['child_id']!r})"
