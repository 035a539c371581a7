"""What must hold at the end of a demo run, checked on its summary: each failure is one line."""

from __future__ import annotations

from typing import Any

from scripts import integrator as integ
from scripts.demo.summary import FINAL_OUTCOMES
from scripts.downstream import TABLE_OF
from scripts.flow import DOWNSTREAM, IN_STREAMS, OUTPUT_OF, STREAM_OF

# The integrator's two broken events and the error each must be dead-lettered with.
EXPECTED_DLQ = {("MalformedEvent", STREAM_OF["sales_updated"]),
                ("BomCycleError", STREAM_OF["bom_updated"])}
DEMO_CONSUMERS = ("secretmagic-instance-", "trainer-", "analytics-")


def check(s: dict[str, Any], *, retry_expected: bool) -> list[str]:
    return [*_streams(s), *_workers(s), *_dlq(s), *(_retry(s) if retry_expected else []),
            *_store(s), *_downstream(s), *_rest(s)]


def _streams(s: dict[str, Any]) -> list[str]:
    failures = []
    lengths = s["streams"]
    for stream in IN_STREAMS:
        if lengths[stream] != s["published"].get(stream, 0):
            failures.append(f"{stream}: {lengths[stream]} entries but the integrator "
                            f"published {s['published'].get(stream, 0)}")
    for g in s["groups"]:
        if g["lag"] or g["pending"] or g["consumed"] != g["length"]:
            failures.append(f"{g['group']} on {g['stream']}: lag {g['lag']}, pending "
                            f"{g['pending']}, consumed {g['consumed']} of {g['length']}")
        foreign = [c for c in g["consumers"] if not c.startswith(DEMO_CONSUMERS)]
        if foreign:
            failures.append(f"{g['group']} on {g['stream']} has consumers the demo did not "
                            f"start ({', '.join(foreign)}): stop them or use another Redis")
    return failures


def _workers(s: dict[str, Any]) -> list[str]:
    if not s["instances"]:
        return ["no worker metrics could be read"]
    failures = []
    for stream, row in s["accounting"].items():
        settled = sum(row[o] for o in FINAL_OUTCOMES)
        if settled != row["published"]:
            failures.append(f"{stream}: {row['published']} published but the workers "
                            f"settled {settled} ({row})")
    return failures


def _dlq(s: dict[str, Any]) -> list[str]:
    failures = []
    got = {(e["error_type"], e["stream"]) for e in s["dlq"]}
    if len(s["dlq"]) != len(EXPECTED_DLQ) or got != EXPECTED_DLQ:
        failures.append(f"DLQ: expected one MalformedEvent and one BomCycleError, got "
                        f"{[(e['error_type'], e['stream'], e['error']) for e in s['dlq']]}")
    cycle = [e for e in s["dlq"] if e["error_type"] == "BomCycleError"]
    if cycle and "->" not in (cycle[0]["error"] or ""):
        failures.append(f"DLQ: the cycle's reason does not name it: {cycle[0]['error']}")
    return failures


def _retry(s: dict[str, Any]) -> list[str]:
    failures = []
    retry = s["retry"] or {}
    if not (retry.get("deliveries") or 0) > 1:
        failures.append(f"retry: the late stock_updated was not seen handled after a failed "
                        f"delivery ({retry})")
    if not any(row["retried"] for row in s["accounting"].values()):
        failures.append("retry: no worker counted a retried event (metrics)")
    return failures


def _store(s: dict[str, Any]) -> list[str]:
    failures = []
    for client_id in integ.GOOD_CLIENTS:
        rows = s["store"].get(client_id, {})
        if not all(rows.get(t) for t in ("daily_features", "bom_exploded", "component_demand")):
            failures.append(f"store: {client_id} has {rows.get('daily_features')} feature rows, "
                            f"{rows.get('bom_exploded')} exploded-BOM rows and "
                            f"{rows.get('component_demand')} component-demand rows")
    cycle = s["store"].get(integ.CYCLE_CLIENT, {})
    if cycle.get("bom_exploded") or cycle.get("component_demand"):
        failures.append(f"store: {integ.CYCLE_CLIENT} has exploded-BOM or component-demand rows "
                        "despite its cycle")
    return failures


def _downstream(s: dict[str, Any]) -> list[str]:
    failures = []
    for group, streams in DOWNSTREAM.items():
        report = s["downstream"].get(group)
        if report is None:
            failures.append(f"downstream: no report from {group}")
            continue
        for stream in streams:
            got, length = report["streams"][stream], s["streams"][stream]
            if got["consumed"] != length or got["acked"] != got["consumed"]:
                failures.append(f"downstream {group} on {stream}: consumed {got['consumed']} "
                                f"of {length}, acked {got['acked']}")
        tables = [TABLE_OF[t] for t, stream in OUTPUT_OF.items() if stream in streams]
        for client_id in integ.GOOD_CLIENTS:
            found = report["clients"].get(client_id, {})
            failures += [f"downstream {group}: found no {table} for {client_id}"
                         for table in tables if not found.get(table, {}).get("rows")]
    return failures


def _rest(s: dict[str, Any]) -> list[str]:
    failures = []
    if s["logs"] is not None and not s["logs"]["rows"]:
        failures.append("PostgreSQL: no log rows for this run in secretmagic.logs")
    bad_exits = {n: c for n, c in s["exit_codes"].items() if c != 0}
    if bad_exits:
        failures.append(f"processes did not exit cleanly: {bad_exits}")
    return failures
