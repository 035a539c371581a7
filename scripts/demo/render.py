"""The demo's summary as text: the tables the README shows, then what to look at further."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from app.cli.output import table
from scripts.demo.setup import Services
from scripts.demo.summary import FINAL_OUTCOMES, OUTCOMES
from scripts.downstream import line as describe_found
from scripts.flow import DLQ, GROUP, IN_STREAMS, OUT_STREAMS, OUTPUT_OF, STREAM_OF

LOOK_FURTHER = ("streams", "lag", f"groups {STREAM_OF['sales_updated']}",
                f"pending {STREAM_OF['bom_updated']}",
                f"dlq list --group {GROUP}", f"tail {OUTPUT_OF['features_updated']} -n 3",
                "logs --errors")


def shown(path: Path) -> str:
    """A path as short as it can be said (relative to the working directory when inside it)."""
    with contextlib.suppress(ValueError):
        return str(path.relative_to(Path.cwd()))
    return str(path)


def clip(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def render(s: dict[str, Any], found: Services | None) -> str:
    out = [f"\n== summary ({s['seconds']:.1f} s, {s['mode']}) =="]
    for part in (_streams, _workers, _dlq, _retry, _store, _downstream, _logs):
        out += ["", *part(s)]
    out += ["", *_look_further(s, found), ""]
    if s["ok"]:
        out.append("OK: every check passed")
    else:
        out += ["FAILED:", *(f"  - {f}" for f in s["failures"])]
    return "\n".join(out)


def _streams(s: dict[str, Any]) -> list[str]:
    writer = dict.fromkeys(IN_STREAMS, "integrator (plain XADD)")
    writer |= dict.fromkeys(OUT_STREAMS, "secretmagic")
    writer[DLQ] = "secretmagic (dead-letter queue)"
    return [
        "events per stream",
        table(["STREAM", "ENTRIES", "WRITTEN BY"],
              [(k, v, writer[k]) for k, v in s["streams"].items()]),
        "",
        "consumer groups (consumed = delivered to the group; acked = consumed - pending)",
        table(["STREAM", "GROUP", "CONSUMED", "ACKED", "PENDING", "LAG", "CONSUMERS"],
              [(g["stream"], g["group"], g["consumed"], g["acked"], g["pending"], g["lag"],
                ", ".join(g["consumers"])) for g in s["groups"]], width=80),
    ]


def _workers(s: dict[str, Any]) -> list[str]:
    if not s["instances"]:
        return ["secretmagic workers: no metrics could be read"]
    rows = []
    for name, by_stream in s["instances"].items():
        total = {o: sum(v.get(o, 0) for v in by_stream.values()) for o in OUTCOMES}
        rows.append((name, *(total[o] for o in OUTCOMES)))
    out = ["secretmagic workers (their /metrics: secretmagic_events_total by outcome)",
           table(["INSTANCE", *(o.upper().replace("_", "-") for o in OUTCOMES)], rows),
           "every event accounted for (published = "
           + " + ".join(o.replace("_", "-") for o in FINAL_OUTCOMES) + "):"]
    for stream, row in s["accounting"].items():
        settled = sum(row[o] for o in FINAL_OUTCOMES)
        mark = "ok" if settled == row["published"] else "MISMATCH"
        out.append(f"  {stream:<17} {row['published']:>3} = "
                   + " + ".join(str(row[o]) for o in FINAL_OUTCOMES) + f"   {mark}")
    return out


def _dlq(s: dict[str, Any]) -> list[str]:
    return [f"dead-letter queue {DLQ} ({len(s['dlq'])} entries)",
            table(["FROM", "ENTRY", "CLIENT", "ERROR TYPE", "REASON"],
                  [(e["stream"], e["entry_id"], e["client_id"], e["error_type"], e["error"])
                   for e in s["dlq"]], width=70)]


def _retry(s: dict[str, Any]) -> list[str]:
    retry = s["retry"]
    if not retry:
        return ["retry after a transient store failure",
                "  not shown: the embedded store cannot be cut from outside the worker"]
    return [
        "retry after a transient store failure",
        f"  {retry['stream']} {retry['entry_id']} ({retry['client_id']}): delivery 1 failed "
        f"while the store was cut ({retry['outage_s']} s, {retry['refused_connections']} "
        "connection(s) refused):",
        f"    {clip(retry['first_error'], 200)}",
        f"  then handled on delivery {retry.get('deliveries')} by {retry.get('consumer')}: "
        "secretmagic_events_total{outcome=\"retried\"} "
        f"{s['accounting'][retry['stream']]['retried']}, then \"handled\"",
    ]


def _store(s: dict[str, Any]) -> list[str]:
    total_f = sum(v["daily_features"] for v in s["store"].values())
    total_b = sum(v["bom_exploded"] for v in s["store"].values())
    total_d = sum(v["component_demand"] for v in s["store"].values())
    return ["the store (what secretmagic wrote, per client)",
            table(["CLIENT", "FEATURE ROWS", "EXPLODED-BOM ROWS", "PRODUCT_META ROWS",
                   "COMPONENT-DEMAND ROWS"],
                  [(c, v["daily_features"], v["bom_exploded"], v["product_meta"],
                    v["component_demand"]) for c, v in s["store"].items()]),
            f"  total: {total_f:,} feature rows, {total_b:,} exploded-BOM rows, "
            f"{total_d:,} component-demand rows"]


def _downstream(s: dict[str, Any]) -> list[str]:
    out = ["downstream (notifications read with XREADGROUP, data fetched from the store by "
           "client_id)"]
    for group, report in s["downstream"].items():
        streams = ", ".join(f"{st} {v['consumed']} consumed / {v['acked']} acked"
                            for st, v in report["streams"].items())
        out.append(f"  {group} ({report['consumer']}): {streams}; {report['fetches']} fetches")
        for client_id, found in report["clients"].items():
            out += [f"    {client_id:<16} {describe_found(table_name, f)}"
                    for table_name, f in found.items()]
    return out


def _logs(s: dict[str, Any]) -> list[str]:
    logs = s["logs"]
    if not logs:
        return ["PostgreSQL logs (secretmagic.logs)", "  none: no PostgreSQL (console logs only)"]
    return ["PostgreSQL logs (secretmagic.logs)",
            f"  {logs['rows']} rows for this run (the seed's first query, from {logs['since']}), "
            f"{logs['errors']} of them errors (the seed's second query), "
            f"{logs['retry_warnings']} retry warning(s)"]


def _look_further(s: dict[str, Any], found: Services | None) -> list[str]:
    out = ["look further"]
    env = []
    if found:
        r = found.redis
        if r.private:
            out.append("  (the demo's private Redis stopped with it: point MESSENGER_* at a "
                       "Redis you keep, or run a local one on :6379, to look afterwards)")
        env += [f"MESSENGER_HOST={r.host}", f"MESSENGER_PORT={r.port}", f"MESSENGER_DB={r.db}"]
        if r.password:
            env.append("MESSENGER_PASSWORD=<yours>")
        if found.logs and not found.logs.private:
            dsn = found.logs.dsn
            env.append(f"LOGS_DSN={'<yours>' if urlsplit(dsn).password else dsn}")
    out.append(f"  export {' '.join(env)}")
    out += [f"  {monitor_command()} {command}" for command in LOOK_FURTHER]
    out.append(f"  redis-cli XREVRANGE {OUTPUT_OF['features_updated']} + - COUNT 10")
    out.append(f"  worker logs: {', '.join(s['worker_logs'])}")
    return out


def monitor_command() -> str:
    """`.venv/bin/secretmagic` once the project is installed (make does), else `python -m app`."""
    script = Path(sys.prefix) / "bin" / "secretmagic"
    if script.exists():
        return shown(script)
    return f"{shown(Path(sys.prefix) / 'bin' / 'python')} -m app"
