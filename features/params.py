"""The feature parameters (the `features:` section of the mutable config) and what they imply: the
wide frame's feature columns and the warm-up an incremental recompute reads before its first day."""

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator

PositiveInt = Annotated[int, Field(strict=True, gt=0)]
StdWindow = Annotated[int, Field(strict=True, ge=2)]  # a sample std needs two values


class FeatureParams(BaseModel):
    """Feature parameters. An empty tuple switches that family off; `seasonality: false` switches
    off the profiles."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    ema_spans: tuple[PositiveInt, ...] = (7, 28)
    ma_windows: tuple[PositiveInt, ...] = (7, 28)
    std_windows: tuple[StdWindow, ...] = (7, 28)
    lags: tuple[PositiveInt, ...] = (1, 7, 28)
    seasonality: bool = True

    @field_validator("ema_spans", "ma_windows", "std_windows", "lags")
    @classmethod
    def _distinct(cls, values: tuple[int, ...]) -> tuple[int, ...]:
        # Duplicates would produce two columns with one name.
        duplicates = sorted({v for v in values if values.count(v) > 1})
        if duplicates:
            raise ValueError(f"duplicate values {duplicates}")
        return values

    def feature_columns(self) -> list[str]:
        """The wide frame's feature columns, in this order: ema_{s}, ma_{w}, std_{w}, lag_{k} (each
        family by increasing parameter), stock_on_hand, and days_of_cover when ma_windows is not
        empty. The same parameters always give the same columns, whatever the data."""
        families = (("ema", self.ema_spans), ("ma", self.ma_windows), ("std", self.std_windows),
                    ("lag", self.lags))
        names = [f"{family}_{n}" for family, values in families for n in sorted(values)]
        return [*names, "stock_on_hand", *(["days_of_cover"] if self.ma_windows else [])]

    def families(self) -> list[str]:
        """The families these parameters switch on, in the seed's order (stock not included: it
        depends on whether the client has stock data)."""
        present = {"ema": self.ema_spans, "ma": self.ma_windows, "std": self.std_windows,
                   "lags": self.lags, "seasonality": self.seasonality}
        return [family for family, on in present.items() if on]

    def warm_up(self) -> int:
        """How many days before a day its values read: ma/std over the last w days reach back
        w - 1 days, lag k reaches back k days; EMA carries its state instead."""
        return max([w - 1 for w in (*self.ma_windows, *self.std_windows)] + [*self.lags, 0])
