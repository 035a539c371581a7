"""`secretmagic recompute`: run the handlers' pipelines for clients now, without the messenger
(the store from STORE_DSN, the parameters from SECRETMAGIC_CONFIG). One client prints what was
done; several (`--client` repeated, `--clients-file` with one id a line, `-` for stdin, or `--all`:
every client with rows in an input table) run one after another with progress on a terminal,
and a client that fails does not stop the rest."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from app.cli.errors import EXIT_CONFIG, EXIT_FAILED, CliError
from app.cli.output import JsonFlag, compact
from app.cli.progress import Progress
from app.cli.session import Session
from core.errors import FatalError, RetryableError
from core.wire import position_now
from handlers.pipelines import PIPELINES
from settings import Config, ConfigError
from settings.config import load as load_config
from store import open_store

commands = typer.Typer()

WHAT = ["all", *PIPELINES]
INPUTS = ("sales", "stock", "bom", "products")  # whose clients `--all` recomputes


def _what(value: str) -> str:
    if value not in WHAT:
        raise typer.BadParameter(f"{value!r} is not one of {', '.join(WHAT)}")
    return value


async def every_client(dsn: str) -> list[str]:
    """The clients with rows in any input table, sorted."""
    store = open_store(dsn)
    try:
        await store.create_tables()
        return sorted({c for table in INPUTS for c in await store.clients(table)})
    finally:
        await store.close()


async def run(dsn: str, client_ids: list[str], names: list[str], config: Config,
              on_client: Callable[[], None] | None = None) -> list[dict[str, Any]]:
    """Per client: {"client_id": ..., <pipeline>: what it did} for each pipeline in `names`, in
    order; or {"client_id": ..., "error": why} for a client whose recompute failed."""
    store = open_store(dsn)
    try:
        await store.create_tables()
        results = []
        for client_id in client_ids:
            done: dict[str, Any] = {"client_id": client_id}
            try:
                for name in names:  # asked for now: newer than any event the store has results of
                    result = await PIPELINES[name](store, client_id, config, position_now())
                    done[name] = result.model_dump(mode="json")
            except (FatalError, RetryableError, ValueError) as exc:
                if len(client_ids) == 1:
                    raise
                done = {"client_id": client_id, "error": f"{type(exc).__name__}: {exc}"}
            results.append(done)
            if on_client is not None:
                on_client()
        return results
    finally:
        await store.close()


def _clients(session: Session, given: list[str], path: str | None, every: bool) -> list[str]:
    if every:
        if given or path is not None:
            raise CliError("recompute: --all recomputes every client; leave out --client and "
                           "--clients-file", EXIT_CONFIG)
        try:
            return asyncio.run(every_client(session.dsn(session.settings.store_dsn)))
        except (FatalError, RetryableError) as exc:
            raise CliError(f"recompute --all: listing the clients failed: {exc}",
                           EXIT_FAILED) from None
    listed = list(given)
    if path is not None:
        try:
            lines = (session.stdin.read() if path == "-" else Path(path).read_text()).splitlines()
        except OSError as exc:
            raise CliError(f"--clients-file {path}: {exc.strerror}", EXIT_CONFIG) from None
        listed += [line.strip() for line in lines if line.strip()]
    if not listed:
        raise CliError("recompute: give --client ID (repeatable), --clients-file PATH or --all",
                       EXIT_CONFIG)
    return list(dict.fromkeys(listed))  # each client once, in the order given


@commands.command()
def recompute(
    ctx: typer.Context,
    client: Annotated[list[str] | None, typer.Option(
        metavar="ID", help="a client_id (repeat for several)")] = None,
    clients_file: Annotated[str | None, typer.Option(
        "--clients-file", metavar="PATH", help="client_ids, one a line (- for stdin)")] = None,
    every: Annotated[bool, typer.Option(
        "--all", help=f"every client with rows in {', '.join(INPUTS)}")] = False,
    what: Annotated[str, typer.Option(
        callback=_what, metavar="[" + "|".join(WHAT) + "]",
        help=f"what to recompute (all: {', '.join(PIPELINES)})")] = "all",
    as_json: JsonFlag = False,
) -> None:
    """Recompute clients' results now, without the messenger (STORE_DSN, SECRETMAGIC_CONFIG)."""
    session = Session.of(ctx)
    client_ids = _clients(session, client or [], clients_file, every)
    if not client_ids:
        session.print("no clients in the store")
        return
    settings = session.settings
    try:
        config = load_config(settings.secretmagic_config)
    except ConfigError as exc:
        raise CliError(str(exc), EXIT_CONFIG) from None
    names = list(PIPELINES) if what == "all" else [what]
    progress = Progress(session.err, "recomputed", len(client_ids),
                        quiet=as_json or (len(client_ids) == 1 and not every))
    try:
        results = asyncio.run(run(session.dsn(settings.store_dsn), client_ids, names, config,
                                  on_client=progress.advance))
    except (FatalError, RetryableError, ValueError) as exc:
        raise CliError(f"recompute for {client_ids[0]!r} failed: {exc}", EXIT_FAILED) from None
    finally:
        progress.close()
    failed = [r for r in results if "error" in r]
    if as_json:
        session.json(results[0] if len(results) == 1 and not every else results)
    elif len(results) == 1 and not every:
        for key, value in results[0].items():
            session.print(f"{key:<18} {compact(value) if isinstance(value, dict) else value}")
    else:
        for done in results:
            outcome = done.get("error") or compact({k: v for k, v in done.items()
                                                    if k != "client_id"})
            session.print(f"{done['client_id']:<18} {'FAILED ' if 'error' in done else ''}"
                          f"{outcome}")
        session.print(f"{len(results) - len(failed)} of {len(results)} clients recomputed")
    if failed:
        raise typer.Exit(EXIT_FAILED)
