"""`secretmagic recompute`: run the handlers' pipelines for one client now, without the messenger
(the store from STORE_DSN, the parameters from SECRETMAGIC_CONFIG)."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

import typer

from app.cli.errors import EXIT_CONFIG, EXIT_FAILED, CliError
from app.cli.output import JsonFlag, compact
from app.cli.session import Session
from core.errors import FatalError, RetryableError
from core.wire import position_now
from handlers.pipelines import PIPELINES
from settings import Config, ConfigError
from settings.config import load as load_config
from store import open_store

commands = typer.Typer()

WHAT = ["all", *PIPELINES]


def _what(value: str) -> str:
    if value not in WHAT:
        raise typer.BadParameter(f"{value!r} is not one of {', '.join(WHAT)}")
    return value


async def run(dsn: str, client_id: str, names: list[str], config: Config) -> dict[str, Any]:
    """{"client_id": ..., <pipeline>: what it did} for each pipeline in `names`, in order."""
    store = open_store(dsn)
    try:
        await store.create_tables()
        done: dict[str, Any] = {"client_id": client_id}
        for name in names:  # asked for now: newer than any event the store has results of
            result = await PIPELINES[name](store, client_id, config, position_now())
            done[name] = result.model_dump()
        return done
    finally:
        await store.close()


@commands.command()
def recompute(
    ctx: typer.Context,
    client: Annotated[str, typer.Option(metavar="ID", help="the client_id")],
    what: Annotated[str, typer.Option(
        callback=_what, metavar="[" + "|".join(WHAT) + "]",
        help=f"what to recompute (all: {', '.join(PIPELINES)})")] = "all",
    as_json: JsonFlag = False,
) -> None:
    """Recompute a client's results now, without the messenger (STORE_DSN, SECRETMAGIC_CONFIG)."""
    session = Session.of(ctx)
    settings = session.settings
    try:
        config = load_config(settings.secretmagic_config)
    except ConfigError as exc:
        raise CliError(str(exc), EXIT_CONFIG) from None
    names = list(PIPELINES) if what == "all" else [what]
    try:
        done = asyncio.run(run(session.dsn(settings.store_dsn), client, names, config))
    except (FatalError, RetryableError, ValueError) as exc:
        raise CliError(f"recompute for {client!r} failed: {exc}", EXIT_FAILED) from None
    if as_json:
        session.json(done)
    else:
        for key, value in done.items():
            session.print(f"{key:<18} {compact(value) if isinstance(value, dict) else value}")
