"""`secretmagic logs`: the seed's two SQL queries on the PostgreSQL log table (LOGS_DSN)."""

from __future__ import annotations

import re
from typing import Annotated

import typer

from app import ops
from app.cli.errors import EXIT_CONFIG, CliError
from app.cli.output import JsonFlag, compact, duration
from app.cli.session import Session

commands = typer.Typer()

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def seconds(value: str) -> float:
    """`10m`, `90s`, `2h`, `1d` or plain seconds."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", value)
    if not match:
        raise typer.BadParameter(f"not a duration: {value!r} (e.g. 90s, 10m, 2h, 1d)")
    return float(match.group(1)) * _UNITS[match.group(2) or "s"]


@commands.command()
def logs(
    ctx: typer.Context,
    errors: Annotated[bool, typer.Option(
        "--errors", help="only level 'error', the last 20 of any age")] = False,
    since: Annotated[float | None, typer.Option(
        parser=seconds, metavar="DURATION",
        help="window: 90s, 10m, 2h, 1d (default 10m; none with --errors)")] = None,
    category: Annotated[str, typer.Option(metavar="NAME", help="a category, or 'all'")]
    = "messenger",
    limit: Annotated[int | None, typer.Option(
        metavar="N", help="rows (default 100; 20 with --errors)")] = None,
    as_json: JsonFlag = False,
) -> None:
    """The log table: recent messenger records, or (--errors) the last errors.

    The seed's queries on <LOGS_SCHEMA>.logs: by default category 'messenger' in the last 10
    minutes, newest first; --errors: level 'error', the last 20. Needs no messenger.
    """
    session = Session.of(ctx)
    settings = session.settings
    if settings.logs_dsn is None:
        raise CliError(
            "the log table is not configured: LOGS_DSN is unset (postgresql://...)", EXIT_CONFIG
        )
    dsn = session.dsn(settings.logs_dsn)
    window = since if since is not None else (None if errors else 600.0)
    wanted = None if category == "all" else category
    rows = ops.logs(dsn, settings.logs_schema, category=wanted, errors_only=errors,
                    since_s=window, limit=limit or (20 if errors else 100))
    what = "errors" if errors else "log records"
    last = f" in the last {duration(int(window * 1000))}" if window is not None else ""
    session.listing(
        rows, as_json=as_json, empty=f"no {what} (category {wanted or 'any'}){last}",
        headers=["TIME", "LEVEL", "CATEGORY", "MESSAGE", "ERROR", "CONTEXT"],
        row=lambda r: (r.timestamp, r.level, r.category, r.message, r.error,
                       compact(r.context) if r.context else None),
    )
