"""The seed's redis-cli checks, one command each: streams, groups, lag, pending, tail."""

from __future__ import annotations

from typing import Annotated

import typer

from app import ops
from app.cli.output import JsonFlag, clean, compact, duration, lag_cell, table
from app.cli.session import Session

commands = typer.Typer()

Stream = Annotated[str, typer.Argument(metavar="STREAM",
                                       help="the stream's key, e.g. sales-updates")]


@commands.command()
def streams(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """Every stream: length, groups, first and last id."""
    session = Session.of(ctx)
    session.listing(
        ops.streams(session.redis), as_json=as_json, empty="no streams",
        headers=["STREAM", "LENGTH", "GROUPS", "FIRST ID", "LAST ID"],
        row=lambda s: (s.name, s.length, s.groups, s.first_id, s.last_id),
    )


@commands.command()
def groups(ctx: typer.Context, stream: Stream, as_json: JsonFlag = False) -> None:
    """Consumer groups of a stream and their consumers."""
    session = Session.of(ctx)
    r = session.redis
    found = ops.groups(r, stream)
    members = {g.name: ops.consumers(r, stream, g.name) for g in found}
    if as_json:
        session.json({"stream": stream, "groups": [
            {**g.as_dict(), "consumer_list": [c.as_dict() for c in members[g.name]]}
            for g in found
        ]})
        return
    if not found:
        session.print(f"stream {stream} has no consumer groups")
        return
    session.print(table(
        ["GROUP", "CONSUMERS", "PENDING", "LAG", "LAST DELIVERED", "ENTRIES READ"],
        [(g.name, g.consumers, g.pending, lag_cell(g.lag, g.lag_capped), g.last_delivered_id,
          g.entries_read) for g in found],
    ))
    rows = [(g, c.name, c.pending, duration(c.idle_ms)) for g, cs in members.items() for c in cs]
    if rows:
        session.print()
        session.print(table(["GROUP", "CONSUMER", "PENDING", "IDLE"], rows))


@commands.command()
def lag(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """Entries not yet delivered, per group of every stream (worst first)."""
    session = Session.of(ctx)
    session.listing(
        ops.lag(session.redis), as_json=as_json, empty="no consumer groups",
        headers=["STREAM", "GROUP", "LAG", "PENDING", "CONSUMERS", "LAST DELIVERED", "LAG FROM",
                 "OLDEST PENDING"],
        row=lambda g: (g.stream, g.group, lag_cell(g.lag, g.lag_capped), g.pending, g.consumers,
                       g.last_delivered_id, g.lag_source,
                       duration(round(g.oldest_pending_s * 1000)) if g.pending else "-"),
    )


@commands.command()
def pending(
    ctx: typer.Context,
    stream: Stream,
    group: Annotated[str, typer.Argument(metavar="GROUP", help="the consumer group")]
    = ops.DEFAULT_GROUP,
    count: Annotated[int, typer.Option(metavar="N", help="entries to list (oldest first)")] = 100,
    as_json: JsonFlag = False,
) -> None:
    """Delivered but unacknowledged entries of a group, with each one's event and last error."""
    session = Session.of(ctx)
    summary = ops.pending_summary(session.redis, stream, group)
    entries = ops.pending(session.redis, stream, group, count)
    if as_json:
        session.json({"summary": summary.as_dict(), "entries": [e.as_dict() for e in entries]})
        return
    head = f"{stream} / {group}: {summary.count} pending"
    if summary.count:
        head += f" ({summary.min_id} .. {summary.max_id})"
    session.print(head)
    if summary.consumers:
        session.print()
        session.print(table(["CONSUMER", "PENDING"], sorted(summary.consumers.items())))
    if entries:
        session.print()
        session.print(table(
            ["ENTRY ID", "CONSUMER", "IDLE", "DELIVERIES", "EVENT", "CLIENT", "LAST ERROR"],
            [(e.entry_id, e.consumer, duration(e.idle_ms), e.deliveries, e.event_type or "-",
              e.client_id or "-", e.last_error or "-") for e in entries],
        ))
        if len(entries) < summary.count:
            session.print(f"(oldest {len(entries)} of {summary.count}; --count N for more)")


def entry_line(entry: ops.Entry) -> str:
    """One stream entry for people: the decoded event, or the raw fields and why not."""
    if entry.event is not None:
        e = entry.event
        body = (f"{e['event_type']}  client={e['client_id']}  {e['timestamp']}  "
                f"event_id={e['event_id']}  data={compact(e['data'])}")
    else:
        fields = "  ".join(f"{k}={v}" for k, v in entry.fields.items())
        body = f"[not an event: {entry.error}]  {fields}"
    return f"{entry.id}  {clean(body)}"


@commands.command()
def tail(
    ctx: typer.Context,
    stream: Stream,
    count: Annotated[int, typer.Option("-n", "--count", metavar="N", help="entries to show")] = 10,
    follow: Annotated[bool, typer.Option("-f", "--follow",
                                         help="keep printing new entries (Ctrl-C stops)")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object per line")] = False,
) -> None:
    """The newest entries of a stream, decoded (XREVRANGE, then XREAD BLOCK with --follow)."""
    session = Session.of(ctx)
    r = session.redis
    entries = ops.tail(r, stream, count) if count > 0 else []

    def show(entry: ops.Entry) -> None:
        if as_json:
            session.json(entry.as_dict(), lines=True)
        else:
            session.print(entry_line(entry))

    for entry in entries:
        show(entry)
    if not follow:
        if not entries and not as_json:
            session.print(f"stream {stream} is empty")
        return
    after = entries[-1].id if entries else ops.last_id(r, stream)
    try:
        for batch in ops.follow(r, stream, after):
            for entry in batch:
                show(entry)
    except KeyboardInterrupt:
        pass  # Ctrl-C is how --follow ends: exit code 0
