"""`secretmagic features CLIENT`: one client's features from the store (STORE_DSN), as a trainer
reads them (docs/features.md): the newest daily_features rows and the products' profiles."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Annotated

import typer

from app.cli.errors import EXIT_FAILED, CliError
from app.cli.output import JsonFlag, table
from app.cli.session import Session
from app.ops.features import client_features
from core.errors import FatalError, RetryableError

commands = typer.Typer()


def _date(value: str | None) -> dt.date | None:
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"not a date: {value!r} (YYYY-MM-DD)") from None


@commands.command()
def features(
    ctx: typer.Context,
    client: Annotated[str, typer.Argument(metavar="CLIENT_ID")],
    product: Annotated[str | None, typer.Option(metavar="ID", help="one product only")] = None,
    since: Annotated[str | None, typer.Option(
        metavar="YYYY-MM-DD", help="rows dated from this day on")] = None,
    limit: Annotated[int, typer.Option(min=1, metavar="N", help="newest rows shown")] = 20,
    as_json: JsonFlag = False,
) -> None:
    """A client's features: its newest daily_features rows (one per product and day, one column
    per feature) and the seasonality profiles of the products shown (STORE_DSN)."""
    session = Session.of(ctx)
    start = _date(since)
    try:
        found = asyncio.run(client_features(session.dsn(session.settings.store_dsn), client,
                                            product=product, since=start, limit=limit))
    except (FatalError, RetryableError, ValueError) as exc:
        raise CliError(f"features of {client!r}: {exc}", EXIT_FAILED) from None
    if as_json:
        session.json(found.as_dict())
        return
    if found.total == 0:
        session.print(f"no features stored for client {client!r}"
                      + (f" product {product!r}" if product else "")
                      + (f" from {start}" if start else ""))
        return
    rows = found.rows.drop("client_id")
    # columns null in every row shown (other parameters', other clients') are left out
    rows = rows.select(c for c in rows.columns if rows.get_column(c).null_count() < rows.height)
    session.print(table([c.upper() for c in rows.columns],
                        [[_cell(v) for v in row] for row in rows.iter_rows()]))
    session.print(f"{rows.height} of {found.total} rows (newest first)")
    if found.profiles.height:
        wide = found.profiles.pivot("period", index=["product_id", "kind"], values="value",
                                    sort_columns=True)
        session.print("\nprofiles (mean qty in the period / mean qty):")
        session.print(table([c.upper() for c in wide.columns],
                            [[_cell(v) for v in row] for row in wide.iter_rows()]))


def _cell(value: object) -> object:
    return round(value, 4) if isinstance(value, float) else value

