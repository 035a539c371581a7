"""The status page on the metrics port (`/`): what flows, what is stuck and what is dead, at a
glance — the operators' views of app.ops plus this instance's health, as one HTML page.

Read-only, one self-contained page (inline CSS, no script, no external asset: it works offline),
rendered on each request from Redis and the instance's Health, and reloading itself every few
seconds (`<meta http-equiv=refresh>`). Every number sits in an element with `data-*` attributes
naming what it is, so a script or a test can read the page as the CLI's `--json` reads Redis.
"""

from __future__ import annotations

import dataclasses
import html
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import redis

from app import ops
from core import logs

if TYPE_CHECKING:
    from app.observability.health import Health

log = logs.get("metrics")

REFRESH_S = 5
DLQ_SHOWN = 10
OutboxStats = Callable[[], tuple[int, float | None]]


@dataclasses.dataclass
class Snapshot:
    """What the page shows; Redis' part is empty (and `redis_error` says why) when unreadable."""

    health: dict[str, Any]
    streams: list[ops.StreamInfo] = dataclasses.field(default_factory=list)
    groups: list[ops.GroupLag] = dataclasses.field(default_factory=list)
    consumers: dict[tuple[str, str], list[ops.ConsumerInfo]] = dataclasses.field(
        default_factory=dict)
    dlq_lengths: dict[str, int] = dataclasses.field(default_factory=dict)
    dead: list[ops.DlqEntry] = dataclasses.field(default_factory=list)
    outbox: tuple[int, float | None] | None = None
    redis_error: str | None = None
    taken_at: datetime = dataclasses.field(default_factory=lambda: datetime.now(UTC))


class StatusPage:
    """Renders the page for `health`, reading Redis with `client` (a sync client that fails
    fast, as the metrics collector's) and the outbox with `outbox_stats`."""

    def __init__(self, health: Health, client: redis.Redis | None,
                 outbox_stats: OutboxStats | None = None, refresh_s: int = REFRESH_S) -> None:
        self.health, self.client = health, client
        self.outbox_stats, self.refresh_s = outbox_stats, refresh_s

    def snapshot(self) -> Snapshot:
        snap = Snapshot(health=self.health.report())
        if self.client is not None:
            r = self.client
            try:
                snap.streams = [s for s in ops.streams(r) if not s.name.endswith(":dlq")]
                snap.groups = sorted(ops.lag(r), key=lambda g: (g.stream, g.group))
                for g in snap.groups:
                    try:
                        snap.consumers[g.stream, g.group] = ops.consumers(r, g.stream, g.group)
                    except ops.MonitorError:
                        continue  # deleted since it was listed
                snap.dlq_lengths = ops.dlq_summary(r)
                snap.dead = ops.dlq_list(r, None, DLQ_SHOWN)
            except redis.RedisError as exc:
                snap.redis_error = f"{type(exc).__name__}: {exc}"
        if self.outbox_stats is not None:
            try:
                snap.outbox = self.outbox_stats()
            except Exception as exc:  # the outbox must not break the page
                log.debug("status page could not read the outbox: %s", exc)
        return snap

    def render(self) -> bytes:
        started = time.perf_counter()
        page = render(self.snapshot(), self.refresh_s)
        log.debug("status page rendered in %.1f ms", (time.perf_counter() - started) * 1000)
        return page.encode()


# --- HTML ----------------------------------------------------------------------------------------

CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#1d2430;background:#f6f7f9}
h1{font-size:20px;margin:0 0 .2em}h2{font-size:16px;margin:1.4em 0 .4em}
.meta{color:#5b6472}table{border-collapse:collapse;background:#fff;min-width:40em}
th,td{padding:.3em .8em;border-bottom:1px solid #e3e6eb;text-align:left;vertical-align:top;
white-space:nowrap}
th{background:#eef1f5;font-weight:600}td.n{text-align:right;font-variant-numeric:tabular-nums}
.ok{color:#1a7f37;font-weight:600}.bad{color:#c62828;font-weight:600}.warn{color:#9a6700}
.pill{display:inline-block;padding:.1em .6em;border-radius:1em;background:#eef1f5}
.err{font-family:ui-monospace,monospace;font-size:12px;max-width:50em;white-space:normal;
word-break:break-word}
"""


def _e(value: object) -> str:
    return "-" if value is None else html.escape(str(value), quote=True)


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, sec = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{sec:02d}s"


def _num(kind: str, value: float | int, shown: str | None = None) -> str:
    return f'<td class="n" data-{kind}="{value}">{_e(shown if shown is not None else value)}</td>'


def _table(headers: Sequence[str], rows: Iterable[str], empty: str) -> str:
    body = "".join(rows)
    if not body:
        return f'<p class="meta">{_e(empty)}</p>'
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _health(report: dict[str, Any]) -> str:
    ok = report["status"] == "ok"
    problems = ", ".join(report["problems"]) or "none"
    details = report.get("details", {})
    return (f'<p>This instance: <span id="health" data-status="{_e(report["status"])}" '
            f'class="{"ok" if ok else "bad"}">{_e(report["status"])}</span> '
            f'&middot; consumer <span class="pill">{_e(details.get("consumer"))}</span> '
            f'&middot; store {_e(details.get("store"))} &middot; problems: {_e(problems)}</p>')


def _groups(snap: Snapshot) -> str:
    rows = []
    for g in snap.groups:
        members = snap.consumers.get((g.stream, g.group), [])
        names = ", ".join(f"{c.name} ({c.pending} pending, idle {_age(c.idle_ms / 1000)})"
                          for c in members) or "none"
        lag = f">={g.lag}" if g.lag_capped else str(g.lag)
        stuck = "warn" if g.oldest_pending_s > 60 else ""
        rows.append(
            f'<tr data-stream="{_e(g.stream)}" data-group="{_e(g.group)}"><td>{_e(g.stream)}</td>'
            f"<td>{_e(g.group)}</td>{_num('consumers', g.consumers)}{_num('lag', g.lag, lag)}"
            f"{_num('pending', g.pending)}"
            f'<td class="n {stuck}" data-oldest="{g.oldest_pending_s:.3f}">'
            f"{_age(g.oldest_pending_s)}</td><td>{_e(names)}</td></tr>")
    return _table(["stream", "group", "consumers", "lag", "pending", "oldest pending",
                   "consumer names"], rows, "no consumer groups")


def _streams(snap: Snapshot) -> str:
    rows = (f'<tr data-stream="{_e(s.name)}"><td>{_e(s.name)}</td>{_num("length", s.length)}'
            f"{_num('groups', s.groups)}<td>{_e(s.last_id)}</td></tr>" for s in snap.streams)
    return _table(["stream", "length", "groups", "last id"], rows, "no streams")


def _paused(report: dict[str, Any]) -> str:
    waiting: dict[str, str] = report.get("details", {}).get("waiting") or {}
    rows = (f'<tr data-paused="{_e(stream)}"><td>{_e(stream)}</td>'
            f'<td class="err">{_e(reason)}</td></tr>' for stream, reason in sorted(waiting.items()))
    return _table(["stream", "waiting out"], rows, "no stream is paused")


def _dlq(snap: Snapshot) -> str:
    lengths = " ".join(
        f'<span class="pill" data-dlq-group="{_e(group)}" data-dlq-length="{n}">'
        f"{_e(group)}:dlq {n}</span>" for group, n in sorted(snap.dlq_lengths.items()))
    rows = (f'<tr data-dlq-id="{_e(d.dlq_id)}"><td>{_e(d.dlq_id)}</td><td>{_e(d.group)}</td>'
            f"<td>{_e(d.stream)}</td><td>{_e(d.error_type)}</td>"
            f"{_num('deliveries', d.deliveries or 0, str(d.deliveries or '-'))}"
            f"<td>{_e(d.time)}</td>"
            f'<td class="err">{_e(d.error)}</td></tr>' for d in snap.dead)
    return (f"<p>{lengths or 'no dead-letter stream'}</p>"
            + _table(["dlq id", "group", "stream", "error type", "deliveries", "time", "reason"],
                     rows, "no dead letters"))


def _outbox(snap: Snapshot) -> str:
    if snap.outbox is None:
        return '<p class="meta">no outbox (the messenger is off)</p>'
    depth, age = snap.outbox
    return (f'<p>Waiting for Redis: <b id="outbox" data-depth="{depth}">{depth}</b> '
            f"event{'s' if depth != 1 else ''}; oldest {_age(age)}</p>")


def render(snap: Snapshot, refresh_s: int = REFRESH_S) -> str:
    report = snap.health
    redis_line = (f'<p class="bad" id="redis-error">Redis unreadable: {_e(snap.redis_error)}</p>'
                  if snap.redis_error else "")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="refresh" content="{refresh_s}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>secretmagic status</title><style>{CSS}</style></head>
<body>
<h1>secretmagic</h1>
<p class="meta">as of <time datetime="{snap.taken_at.isoformat()}">{
    snap.taken_at.strftime("%Y-%m-%d %H:%M:%S UTC")}</time> &middot; reloads every {refresh_s}
s &middot; <a href="/metrics">/metrics</a> &middot; <a href="/health">/health</a></p>
{_health(report)}{redis_line}
<h2>Consumer groups</h2>{_groups(snap)}
<h2>Paused streams</h2>{_paused(report)}
<h2>Dead letters (newest {DLQ_SHOWN})</h2>{_dlq(snap)}
<h2>Outbox</h2>{_outbox(snap)}
<h2>Streams</h2>{_streams(snap)}
</body></html>
"""
