"""`secretmagic`: monitoring commands that replace the seed's redis-cli sessions.

    secretmagic streams                        KEYS * + XLEN (SCAN TYPE stream, never KEYS)
    secretmagic groups STREAM                  XINFO GROUPS / XINFO CONSUMERS
    secretmagic lag                            the lag of every group (Redis 6.2 and 7.x)
    secretmagic pending STREAM [GROUP]         XPENDING, with each entry's event and last error
    secretmagic tail STREAM [-n N] [--follow]  XREVRANGE STREAM + - COUNT N, then XREAD BLOCK
    secretmagic dlq list|show|replay|purge     the dead-letter streams (<group>:dlq)
    secretmagic logs [--errors]                the seed's two SQL queries on the log table

Tables for people, `--json` for scripts (tail --json prints one JSON object per line). The Redis
is the app's own: MESSENGER_HOST/PORT/PASSWORD/DB, the password possibly a /run/secrets path;
`logs` reads LOGS_DSN/LOGS_SCHEMA and needs no messenger.
Errors are one line on stderr; exit code 1 for a failed request (no such stream, Redis
unreachable), 2 for a configuration or usage error (environment, authentication, arguments).
`python -m app ...` is the same program.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import sys
from collections.abc import Callable, Iterable, Sequence
from functools import cached_property
from typing import IO, Any, NoReturn
from urllib.parse import urlsplit

import redis

from app import ops
from core.keys import dlq_stream
from handlers.pipelines import PIPELINES

PROG = "secretmagic"
EXIT_FAILED = 1  # the request failed: no such stream/group/entry, Redis unreachable, ...
EXIT_CONFIG = 2  # bad usage, bad environment, messenger not configured, authentication failed


class CliError(Exception):
    """One line for stderr and the exit code."""

    def __init__(self, message: str, code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.code = code


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (plus a pointer to --help), exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_CONFIG, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


# --- the connection ------------------------------------------------------------------------------


class Context:
    """What a command handler gets: its output streams and, lazily, the messenger's Redis."""

    def __init__(self, out: IO[str], err: IO[str], stdin: IO[str]) -> None:
        self.out, self.err, self.stdin = out, err, stdin
        self.endpoint = "the messenger's Redis"
        self.secrets: list[str] = []  # never printed: removed from any error line

    @cached_property
    def settings(self) -> Any:
        """settings.Settings from the environment (a SettingsError is a one-line CliError)."""
        from settings import SettingsError, load_settings

        try:
            return load_settings()
        except SettingsError as exc:
            raise CliError(str(exc), EXIT_CONFIG) from None

    @cached_property
    def redis(self) -> redis.Redis:
        settings = self.settings
        if settings.messenger is None:
            raise CliError(
                "the messenger is not configured: MESSENGER_HOST is unset (set MESSENGER_HOST, "
                "and MESSENGER_PORT/MESSENGER_PASSWORD/MESSENGER_DB as needed)",
                EXIT_CONFIG,
            )
        messenger = settings.messenger
        self.endpoint = f"{messenger.host}:{messenger.port}"
        if messenger.password:
            self.secrets.append(messenger.password.get_secret_value())
        return ops.connect(messenger)

    def print(self, line: str = "") -> None:
        self.out.write(line + "\n")
        self.out.flush()

    def json(self, value: Any, *, lines: bool = False) -> None:
        if lines:
            self.print(json.dumps(value, ensure_ascii=False, separators=(",", ":")))
        else:
            self.print(json.dumps(value, ensure_ascii=False, indent=2))


Handler = Callable[[argparse.Namespace, Context], int]
Subparsers = Any  # argparse._SubParsersAction[_Parser]


# --- plain-text tables ---------------------------------------------------------------------------

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def clean(value: object, width: int | None = None) -> str:
    """A cell: control characters escaped (entries are untrusted input), cut to `width`."""
    if value is None:
        return "-"
    cell = _CONTROL.sub(lambda m: repr(m.group())[1:-1], str(value))
    if width is not None and len(cell) > width:
        cell = cell[: width - 1] + "…"
    return cell


def table(
    headers: Sequence[str], rows: Iterable[Sequence[object]], *, width: int | None = 60
) -> str:
    """Aligned columns separated by two spaces; numbers right-aligned; no trailing blanks.

    Cells are cut to `width` characters, except in the last column (nothing to align after it).
    """
    raw_rows = [list(row) for row in rows]
    numeric = [
        bool(raw_rows) and all(isinstance(row[i], int | float) for row in raw_rows)
        for i in range(len(headers))
    ]
    last = len(headers) - 1
    cells = [[clean(v, None if i == last else width) for i, v in enumerate(row)]
             for row in raw_rows]
    widths = [max([len(h)] + [len(row[i]) for row in cells]) for i, h in enumerate(headers)]
    lines = []
    for row in [list(headers), *cells]:
        parts = [
            cell.rjust(widths[i]) if numeric[i] else cell.ljust(widths[i])
            for i, cell in enumerate(row)
        ]
        lines.append("  ".join(parts).rstrip())
    return "\n".join(lines)


def duration(ms: int | None) -> str:
    """850ms, 12.3s, 5m02s, 3h04m, 2d03h."""
    if ms is None:
        return "-"
    if ms < 1000:
        return f"{ms}ms"
    seconds = ms / 1000
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, sec = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{sec:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h{minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d{hours:02d}h"


def _entries(n: int) -> str:
    return f"{n} entry" if n == 1 else f"{n} entries"


def _lag_cell(lag: int, capped: bool) -> str | int:
    return f">={lag}" if capped else lag


# --- commands: streams, groups, lag, pending, tail -----------------------------------------------


def _json_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="machine-readable output")


def cmd_streams(args: argparse.Namespace, ctx: Context) -> int:
    found = ops.streams(ctx.redis)
    if args.json:
        ctx.json([s.as_dict() for s in found])
    elif not found:
        ctx.print("no streams")
    else:
        ctx.print(
            table(
                ["STREAM", "LENGTH", "GROUPS", "FIRST ID", "LAST ID"],
                [(s.name, s.length, s.groups, s.first_id, s.last_id) for s in found],
            )
        )
    return 0


def cmd_groups(args: argparse.Namespace, ctx: Context) -> int:
    found = ops.groups(ctx.redis, args.stream)
    members = {g.name: ops.consumers(ctx.redis, args.stream, g.name) for g in found}
    if args.json:
        ctx.json(
            {
                "stream": args.stream,
                "groups": [
                    {**g.as_dict(), "consumer_list": [c.as_dict() for c in members[g.name]]}
                    for g in found
                ],
            }
        )
        return 0
    if not found:
        ctx.print(f"stream {args.stream} has no consumer groups")
        return 0
    ctx.print(
        table(
            ["GROUP", "CONSUMERS", "PENDING", "LAG", "LAST DELIVERED", "ENTRIES READ"],
            [
                (g.name, g.consumers, g.pending, _lag_cell(g.lag, g.lag_capped),
                 g.last_delivered_id, g.entries_read)
                for g in found
            ],
        )
    )
    rows = [(g, c.name, c.pending, duration(c.idle_ms)) for g, cs in members.items() for c in cs]
    if rows:
        ctx.print()
        ctx.print(table(["GROUP", "CONSUMER", "PENDING", "IDLE"], rows))
    return 0


def cmd_lag(args: argparse.Namespace, ctx: Context) -> int:
    found = ops.lag(ctx.redis)
    if args.json:
        ctx.json([g.as_dict() for g in found])
    elif not found:
        ctx.print("no consumer groups")
    else:
        ctx.print(
            table(
                ["STREAM", "GROUP", "LAG", "PENDING", "CONSUMERS", "LAST DELIVERED", "LAG FROM",
                 "OLDEST PENDING"],
                [
                    (g.stream, g.group, _lag_cell(g.lag, g.lag_capped), g.pending, g.consumers,
                     g.last_delivered_id, g.lag_source,
                     duration(round(g.oldest_pending_s * 1000)) if g.pending else "-")
                    for g in found
                ],
            )
        )
    return 0


def cmd_pending(args: argparse.Namespace, ctx: Context) -> int:
    summary = ops.pending_summary(ctx.redis, args.stream, args.group)
    entries = ops.pending(ctx.redis, args.stream, args.group, args.count)
    if args.json:
        ctx.json({"summary": summary.as_dict(), "entries": [e.as_dict() for e in entries]})
        return 0
    head = f"{args.stream} / {args.group}: {summary.count} pending"
    if summary.count:
        head += f" ({summary.min_id} .. {summary.max_id})"
    ctx.print(head)
    if summary.consumers:
        ctx.print()
        ctx.print(table(["CONSUMER", "PENDING"], sorted(summary.consumers.items())))
    if entries:
        ctx.print()
        ctx.print(
            table(
                ["ENTRY ID", "CONSUMER", "IDLE", "DELIVERIES", "EVENT", "CLIENT", "LAST ERROR"],
                [
                    (e.entry_id, e.consumer, duration(e.idle_ms), e.deliveries,
                     e.event_type or "-", e.client_id or "-", e.last_error or "-")
                    for e in entries
                ],
            )
        )
        if len(entries) < summary.count:
            ctx.print(f"(oldest {len(entries)} of {summary.count}; --count N for more)")
    return 0


def _entry_line(entry: ops.Entry) -> str:
    if entry.event is not None:
        e = entry.event
        data = json.dumps(e["data"], ensure_ascii=False, separators=(",", ":"))
        body = (
            f"{e['event_type']}  client={e['client_id']}  {e['timestamp']}  "
            f"event_id={e['event_id']}  data={data}"
        )
    else:
        fields = "  ".join(f"{k}={v}" for k, v in entry.fields.items())
        body = f"[not an event: {entry.error}]  {fields}"
    return f"{entry.id}  {clean(body, None)}"


def cmd_tail(args: argparse.Namespace, ctx: Context) -> int:
    r = ctx.redis
    entries = ops.tail(r, args.stream, args.count) if args.count > 0 else []
    def show(entry: ops.Entry) -> None:
        if args.json:
            ctx.json(entry.as_dict(), lines=True)
        else:
            ctx.print(_entry_line(entry))

    for entry in entries:
        show(entry)
    if not args.follow:
        if not entries and not args.json:
            ctx.print(f"stream {args.stream} is empty")
        return 0
    after = entries[-1].id if entries else ops.last_id(r, args.stream)
    try:
        for batch in ops.follow(r, args.stream, after):
            for entry in batch:
                show(entry)
    except KeyboardInterrupt:
        pass  # Ctrl-C is how --follow ends
    return 0


# --- commands: dlq -------------------------------------------------------------------------------


def cmd_dlq_list(args: argparse.Namespace, ctx: Context) -> int:
    found = ops.dlq_list(ctx.redis, args.group, args.count)
    if args.json:
        ctx.json([e.as_dict() for e in found])
    elif not found:
        ctx.print(f"{dlq_stream(args.group) if args.group else 'every DLQ'} is empty")
    else:
        ctx.print(
            table(
                ["DLQ ID", "GROUP", "STREAM", "ENTRY ID", "ERROR TYPE", "DELIVERIES", "TIME",
                 "ERROR"],
                [
                    (e.dlq_id, e.group, e.stream, e.entry_id, e.error_type, e.deliveries, e.time,
                     e.error)
                    for e in found
                ],
            )
        )
        total = (ops.dlq_length(ctx.redis, args.group) if args.group
                 else sum(ops.dlq_summary(ctx.redis).values()))
        if len(found) < total:
            ctx.print(f"(newest {len(found)} of {total}; --count N for more)")
    return 0


def cmd_dlq_show(args: argparse.Namespace, ctx: Context) -> int:
    e = ops.dlq_show(ctx.redis, args.id, args.group)
    if args.json:
        ctx.json(e.as_dict())
        return 0
    rows = [
        ("dlq id", e.dlq_id), ("dlq stream", e.dlq_stream), ("group", e.group),
        ("stream", e.stream), ("entry id", e.entry_id), ("error type", e.error_type),
        ("error", e.error), ("deliveries", e.deliveries), ("consumer", e.consumer),
        ("time", e.time),
    ]
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        ctx.print(f"{key.ljust(width)}  {clean(value, None)}")
    ctx.print("original fields:")
    for key, value in e.fields.items():
        ctx.print(f"  {clean(key, None)} = {clean(value, None)}")
    return 0


def cmd_dlq_replay(args: argparse.Namespace, ctx: Context) -> int:
    if bool(args.ids) == bool(args.all):
        raise CliError("dlq replay: give entry ids or --all (not both)", EXIT_CONFIG)
    result = ops.dlq_replay(ctx.redis, args.group, ops.ALL if args.all else args.ids)
    if args.json:
        ctx.json(result.as_dict())
    else:
        for done in result.replayed:
            ctx.print(f"replayed {done.dlq_id} -> {done.stream} {done.new_id}")
        for failure in result.failed:
            ctx.print(f"NOT replayed {failure.dlq_id}: {clean(failure.reason, None)}")
        if not result.replayed and not result.failed:
            ctx.print(f"{dlq_stream(args.group)} is empty")
    if result.aborted:
        raise CliError(f"replay stopped, the rest is still in the DLQ: {result.aborted}")
    return EXIT_FAILED if result.failed else 0


def cmd_dlq_purge(args: argparse.Namespace, ctx: Context) -> int:
    r, key = ctx.redis, dlq_stream(args.group)
    newest = ops.dlq_list(r, args.group, count=1)
    if not newest:
        if args.json:
            ctx.json({"group": args.group, "dlq_stream": key, "purged": 0})
        else:
            ctx.print(f"{key} is empty")
        return 0
    count = ops.dlq_length(r, args.group)
    if not args.yes:
        if not ctx.stdin.isatty():
            raise CliError(
                f"refusing to purge {_entries(count)} of {key} without --yes "
                "(no terminal to ask on)",
                EXIT_CONFIG,
            )
        ctx.err.write(f"Delete {_entries(count)} of {key} (up to {newest[0].dlq_id})? [y/N] ")
        ctx.err.flush()
        if ctx.stdin.readline().strip().lower() not in ("y", "yes"):
            ctx.err.write("purge cancelled\n")
            return EXIT_FAILED
    purged = ops.dlq_purge(r, args.group, up_to=newest[0].dlq_id)
    if args.json:
        ctx.json({"group": args.group, "dlq_stream": key, "purged": purged})
    else:
        ctx.print(f"purged {_entries(purged)} from {key}")
    return 0


# --- command: logs (the seed's two SQL queries) --------------------------------------------------

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def seconds(value: str) -> float:
    """`10m`, `90s`, `2h`, `1d` or plain seconds (an argparse type)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", value)
    if not match:
        raise argparse.ArgumentTypeError(f"not a duration: {value!r} (e.g. 90s, 10m, 2h, 1d)")
    return float(match.group(1)) * _UNITS[match.group(2) or "s"]


def cmd_logs(args: argparse.Namespace, ctx: Context) -> int:
    settings = ctx.settings
    if settings.logs_dsn is None:
        raise CliError(
            "the log table is not configured: LOGS_DSN is unset (postgresql://...)", EXIT_CONFIG
        )
    dsn = settings.logs_dsn.get_secret_value()
    ctx.secrets += [s for s in (urlsplit(dsn).password,) if s]
    since = args.since if args.since is not None else (None if args.errors else 600.0)
    limit = args.limit or (20 if args.errors else 100)
    category = None if args.category == "all" else args.category
    rows = ops.logs(dsn, settings.logs_schema, category=category, errors_only=args.errors,
                        since_s=since, limit=limit)
    if args.json:
        ctx.json([row.as_dict() for row in rows])
    elif not rows:
        what = "errors" if args.errors else "log records"
        window = f" in the last {duration(int(since * 1000))}" if since is not None else ""
        ctx.print(f"no {what} (category {category or 'any'}){window}")
    else:
        ctx.print(
            table(
                ["TIME", "LEVEL", "CATEGORY", "MESSAGE", "ERROR", "CONTEXT"],
                [
                    (row.timestamp, row.level, row.category, row.message, row.error,
                     json.dumps(row.context, ensure_ascii=False, separators=(",", ":"))
                     if row.context else None)
                    for row in rows
                ],
            )
        )
    return 0


# --- registration --------------------------------------------------------------------------------


def register_streams(sub: Subparsers) -> None:
    p = sub.add_parser("streams", help="every stream: length, groups, first and last id")
    _json_flag(p)
    p.set_defaults(handler=cmd_streams)


def register_groups(sub: Subparsers) -> None:
    p = sub.add_parser("groups", help="consumer groups of a stream and their consumers")
    p.add_argument("stream")
    _json_flag(p)
    p.set_defaults(handler=cmd_groups)


def register_lag(sub: Subparsers) -> None:
    p = sub.add_parser("lag", help="entries not yet delivered, per group of every stream")
    _json_flag(p)
    p.set_defaults(handler=cmd_lag)


def register_pending(sub: Subparsers) -> None:
    p = sub.add_parser("pending", help="delivered but unacknowledged entries of a group")
    p.add_argument("stream")
    p.add_argument("group", nargs="?", default=ops.DEFAULT_GROUP,
                   help=f"consumer group (default {ops.DEFAULT_GROUP})")
    p.add_argument("--count", type=int, default=100, help="entries to list (oldest first)")
    _json_flag(p)
    p.set_defaults(handler=cmd_pending)


def register_tail(sub: Subparsers) -> None:
    p = sub.add_parser("tail", help="the newest entries of a stream, decoded")
    p.add_argument("stream")
    p.add_argument("-n", "--count", type=int, default=10, help="entries to show (default 10)")
    p.add_argument("-f", "--follow", action="store_true", help="keep printing new entries")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.set_defaults(handler=cmd_tail)


def register_dlq(sub: Subparsers) -> None:
    dlq = sub.add_parser("dlq", help="dead-letter streams: list, show, replay, purge")
    dsub = dlq.add_subparsers(dest="dlq_command", metavar="{list,show,replay,purge}")
    dsub.required = True

    p = dsub.add_parser("list", help="dead-lettered entries, newest first")
    p.add_argument("--group", help="one group's DLQ (default: every DLQ)")
    p.add_argument("--count", type=int, default=100)
    _json_flag(p)
    p.set_defaults(handler=cmd_dlq_list)

    p = dsub.add_parser("show", help="one dead-lettered entry in full")
    p.add_argument("id")
    p.add_argument("--group", help="the group's DLQ (default: search every DLQ)")
    _json_flag(p)
    p.set_defaults(handler=cmd_dlq_show)

    p = dsub.add_parser("replay", help="put entries back on their original streams")
    p.add_argument("ids", nargs="*", metavar="ID")
    p.add_argument("--all", action="store_true", help="every entry of the group's DLQ")
    p.add_argument("--group", default=ops.DEFAULT_GROUP,
                   help=f"(default {ops.DEFAULT_GROUP})")
    _json_flag(p)
    p.set_defaults(handler=cmd_dlq_replay)

    p = dsub.add_parser("purge", help="delete a group's DLQ entries")
    p.add_argument("--group", default=ops.DEFAULT_GROUP,
                   help=f"(default {ops.DEFAULT_GROUP})")
    p.add_argument("--yes", action="store_true", help="do not ask (required without a terminal)")
    _json_flag(p)
    p.set_defaults(handler=cmd_dlq_purge)


def register_logs(sub: Subparsers) -> None:
    p = sub.add_parser(
        "logs",
        help="the PostgreSQL log table: recent messenger records (--errors: the last errors)",
        description="The seed's two SQL queries on <LOGS_SCHEMA>.logs (LOGS_DSN): by default "
        "category 'messenger' in the last 10 minutes; --errors: level 'error', the last 20.",
    )
    p.add_argument("--errors", action="store_true", help="only level 'error' (default: last 20)")
    p.add_argument("--since", type=seconds, help="window: 90s, 10m, 2h, 1d (default 10m; "
                   "none with --errors)")
    p.add_argument("--category", default="messenger", help="category, or 'all' (default messenger)")
    p.add_argument("--limit", type=int, help="rows (default 100; 20 with --errors)")
    _json_flag(p)
    p.set_defaults(handler=cmd_logs)


def cmd_recompute(args: argparse.Namespace, ctx: Context) -> int:
    """Run the handlers' pipelines for one client directly (messenger off or not)."""
    import asyncio

    from core.errors import FatalError, RetryableError
    from settings import ConfigError, LiveConfig
    from store import open_store

    settings = ctx.settings
    try:
        config = LiveConfig(settings.secretmagic_config).current
    except ConfigError as exc:
        raise CliError(str(exc), EXIT_CONFIG) from None
    wanted = list(PIPELINES) if args.what == "all" else [args.what]

    async def run() -> dict[str, Any]:
        store = open_store(settings.store_dsn.get_secret_value())
        try:
            await store.create_tables()
            done: dict[str, Any] = {"client_id": args.client}
            for name in wanted:
                done[name] = (await PIPELINES[name](store, args.client, config)).model_dump()
            return done
        finally:
            await store.close()

    try:
        done = asyncio.run(run())
    except (FatalError, RetryableError, ValueError) as exc:
        raise CliError(f"recompute for {args.client!r} failed: {exc}", EXIT_FAILED) from None
    if args.json:
        ctx.json(done)
    else:
        for key, value in done.items():
            ctx.print(f"{key:<18} {json.dumps(value) if isinstance(value, dict) else value}")
    return 0


def register_recompute(sub: Subparsers) -> None:
    p = sub.add_parser("recompute", help="recompute a client's features / exploded BOM now, "
                       "without the messenger (STORE_DSN, SECRETMAGIC_CONFIG)")
    p.add_argument("--client", required=True, help="the client_id")
    p.add_argument("--what", choices=["all", *PIPELINES], default="all",
                   help=f"what to recompute (default all: {', '.join(PIPELINES)})")
    _json_flag(p)
    p.set_defaults(handler=cmd_recompute)


# The subcommands. Each function adds one subparser and sets `handler` (a Handler: it returns the
# exit code and raises CliError/ops.MonitorError for a one-line error). A handler that never
# touches `ctx.redis` needs no messenger, so a command that works with MESSENGER_* unset fits too.
COMMANDS: list[Callable[[Subparsers], None]] = [
    register_streams,
    register_groups,
    register_lag,
    register_pending,
    register_tail,
    register_dlq,
    register_logs,
    register_recompute,
]


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG,
        description="Inspect secretmagic's Redis streams, consumer groups and dead-letter queues. "
        "Connects with MESSENGER_HOST/PORT/PASSWORD/DB, as the worker does.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for register in COMMANDS:
        register(sub)
    return parser


# --- main ----------------------------------------------------------------------------------------

_CONNECT_PREFIX = re.compile(r"^Error \S+ (connecting to|while reading from) \S+?\.? ")


def _describe(exc: BaseException, ctx: Context) -> tuple[str, int]:
    if isinstance(exc, CliError):
        return str(exc), exc.code
    if isinstance(exc, ops.LogsAuthFailed):
        return str(exc), EXIT_CONFIG
    if isinstance(exc, ops.MonitorError):
        return str(exc), EXIT_FAILED
    if isinstance(exc, redis.AuthenticationError | redis.AuthenticationWrongNumberOfArgsError):
        reason = str(exc).strip() or "rejected"
        return (
            f"authentication failed for {ctx.endpoint}: {reason} (check MESSENGER_PASSWORD)",
            EXIT_CONFIG,
        )
    if isinstance(exc, redis.ConnectionError | redis.TimeoutError):
        reason = _CONNECT_PREFIX.sub("", str(exc)).strip() or type(exc).__name__
        return f"cannot reach Redis at {ctx.endpoint}: {reason}", EXIT_FAILED
    if isinstance(exc, redis.ResponseError):
        return f"Redis at {ctx.endpoint} answered: {exc}", EXIT_FAILED
    return f"unexpected error: {type(exc).__name__}: {exc}", EXIT_FAILED


def main(
    argv: Sequence[str] | None = None,
    *,
    stdout: IO[str] | None = None,
    stderr: IO[str] | None = None,
    stdin: IO[str] | None = None,
) -> int:
    """Run one command; returns the exit code (never raises, never prints a traceback)."""
    out, err = stdout or sys.stdout, stderr or sys.stderr
    parser = build_parser()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            args = parser.parse_args(argv)
    except SystemExit as exc:  # --help (0) or a usage error (2), already printed
        return exc.code if isinstance(exc.code, int) else EXIT_CONFIG
    if not getattr(args, "handler", None):
        parser.print_help(err)
        return EXIT_CONFIG
    ctx = Context(out, err, stdin or sys.stdin)
    try:
        handler: Handler = args.handler
        return handler(args, ctx)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return EXIT_FAILED  # `secretmagic tail x | head`: the reader went away
    except Exception as exc:
        message, code = _describe(exc, ctx)
        for secret in ctx.secrets:
            message = message.replace(secret, "***")
        err.write(f"{PROG}: {message}\n")
        err.flush()
        return code


if __name__ == "__main__":
    sys.exit(main())
