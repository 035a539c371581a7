"""`secretmagic dlq list|show|replay|purge`: the dead-letter streams (`<group>:dlq`)."""

from __future__ import annotations

from typing import Annotated

import typer

from app import ops
from app.cli.errors import EXIT_CONFIG, EXIT_FAILED, CliError
from app.cli.output import JsonFlag, clean, entries
from app.cli.progress import Progress
from app.cli.session import Session
from core.keys import dlq_stream

commands = typer.Typer(name="dlq", help="Dead-letter streams: list, show, replay, purge.")

AnyGroup = Annotated[str | None, typer.Option("--group", metavar="GROUP",
                                              help="one group's DLQ (default: every DLQ)")]
Group = Annotated[str, typer.Option("--group", metavar="GROUP",
                                    help="the consumer group whose DLQ")]


@commands.command("list")
def list_(
    ctx: typer.Context,
    group: AnyGroup = None,
    count: Annotated[int, typer.Option(metavar="N", help="entries to list (newest first)")] = 100,
    as_json: JsonFlag = False,
) -> None:
    """Dead-lettered entries, newest first."""
    session = Session.of(ctx)
    r = session.redis
    found = ops.dlq_list(r, group, count)
    session.listing(
        found, as_json=as_json, empty=f"{dlq_stream(group) if group else 'every DLQ'} is empty",
        headers=["DLQ ID", "GROUP", "STREAM", "ENTRY ID", "ERROR TYPE", "DELIVERIES", "TIME",
                 "ERROR"],
        row=lambda e: (e.dlq_id, e.group, e.stream, e.entry_id, e.error_type, e.deliveries,
                       e.time, e.error),
    )
    if as_json or not found:
        return
    total = ops.dlq_length(r, group) if group else sum(ops.dlq_summary(r).values())
    if len(found) < total:
        session.print(f"(newest {len(found)} of {total}; --count N for more)")


@commands.command()
def show(
    ctx: typer.Context,
    dlq_id: Annotated[str, typer.Argument(metavar="ID", help="the entry's id in the DLQ")],
    group: Annotated[str | None, typer.Option(
        "--group", metavar="GROUP", help="the group's DLQ (default: search every DLQ)")] = None,
    as_json: JsonFlag = False,
) -> None:
    """One dead-lettered entry in full: why, where from, and its original fields."""
    session = Session.of(ctx)
    e = ops.dlq_show(session.redis, dlq_id, group)
    if as_json:
        session.json(e.as_dict())
        return
    rows = [
        ("dlq id", e.dlq_id), ("dlq stream", e.dlq_stream), ("group", e.group),
        ("stream", e.stream), ("entry id", e.entry_id), ("error type", e.error_type),
        ("error", e.error), ("deliveries", e.deliveries), ("consumer", e.consumer),
        ("time", e.time),
    ]
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        session.print(f"{key.ljust(width)}  {clean(value)}")
    session.print("original fields:")
    for key, value in e.fields.items():
        session.print(f"  {clean(key)} = {clean(value)}")


@commands.command()
def replay(
    ctx: typer.Context,
    ids: Annotated[list[str] | None, typer.Argument(metavar="[ID]...",
                                                    help="DLQ entry ids")] = None,
    all_: Annotated[bool, typer.Option("--all", help="every entry of the group's DLQ")] = False,
    group: Group = ops.DEFAULT_GROUP,
    as_json: JsonFlag = False,
) -> None:
    """Put entries back on their original streams (then delete them from the DLQ)."""
    if bool(ids) == all_:
        raise CliError("dlq replay: give entry ids or --all (not both)", EXIT_CONFIG)
    session = Session.of(ctx)
    r = session.redis
    progress = Progress(session.err, "replayed", len(ids or []) or ops.dlq_length(r, group),
                        quiet=as_json)
    result = ops.dlq_replay(r, group, ops.ALL if all_ else ids or [], on_entry=progress.advance)
    progress.close()
    if as_json:
        session.json(result.as_dict())
    else:
        for done in result.replayed:
            session.print(f"replayed {done.dlq_id} -> {done.stream} {done.new_id}")
        for failure in result.failed:
            session.print(f"NOT replayed {failure.dlq_id}: {clean(failure.reason)}")
        if not result.replayed and not result.failed:
            session.print(f"{dlq_stream(group)} is empty")
    if result.aborted:
        raise CliError(f"replay stopped, the rest is still in the DLQ: {result.aborted}")
    if result.failed:
        raise typer.Exit(EXIT_FAILED)


@commands.command()
def purge(
    ctx: typer.Context,
    group: Group = ops.DEFAULT_GROUP,
    yes: Annotated[bool, typer.Option("--yes", help="do not ask (required without a terminal)")]
    = False,
    as_json: JsonFlag = False,
) -> None:
    """Delete a group's DLQ entries (asks first; scripts say --yes)."""
    session = Session.of(ctx)
    r, key = session.redis, dlq_stream(group)
    newest = ops.dlq_list(r, group, count=1)
    purged = 0
    if newest:
        # Up to the newest id seen now: an entry dead-lettered while we ask is not deleted.
        up_to = newest[0].dlq_id
        count = ops.dlq_length(r, group)
        if not yes and not session.confirm(
            f"Delete {entries(count)} of {key} (up to {up_to})?",
            refusal=f"refusing to purge {entries(count)} of {key} without --yes "
                    "(no terminal to ask on)",
        ):
            session.err.write("purge cancelled\n")
            raise typer.Exit(EXIT_FAILED)
        progress = Progress(session.err, "purged", count, quiet=as_json)
        purged = ops.dlq_purge(r, group, up_to=up_to, on_page=progress.advance)
        progress.close()
    if as_json:
        session.json({"group": group, "dlq_stream": key, "purged": purged})
    elif newest:
        session.print(f"purged {entries(purged)} from {key}")
    else:
        session.print(f"{key} is empty")
