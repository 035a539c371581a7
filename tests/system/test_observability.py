"""A running app seen from outside: /metrics and /health, the PostgreSQL log table queried with
the seed's two SQL queries, and the `recompute` command with the messenger off."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import asyncpg
import polars as pl
import pytest
import redis
from dirty_equals import IsInt, IsPartialDict
from prometheus_client.parser import text_string_to_metric_families

from store import open_store
from tests import services
from tests.harness import (
    ROOT,
    AppProcess,
    app_processes,
    config,
    job,
    messenger_env,
    unique,
    write_config,
)

SEED_QUERY_RECENT = """
SELECT timestamp, message, context
FROM secretmagic.logs
WHERE category = 'messenger'
  AND timestamp > NOW() - INTERVAL '10 minutes'
ORDER BY timestamp DESC;
"""
SEED_QUERY_ERRORS = """
SELECT timestamp, message, error, context
FROM secretmagic.logs
WHERE category = 'messenger'
  AND level = 'error'
ORDER BY timestamp DESC
LIMIT 20;
"""


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def health(port: int) -> tuple[int, dict[str, object]]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


async def test_metrics_health_and_seed_log_queries_after_a_run(
        redis_url: str, pg_dsn: str, tmp_path: Path) -> None:
    r = redis.Redis.from_url(redis_url)
    stream, prefix, group = unique("obs"), unique("rec"), unique("obs-group")
    schema = f"sm_obs_{uuid.uuid4().hex[:8]}"
    port = services.free_port()
    path = write_config(tmp_path / "config.yaml", config([stream], group=group))
    env = {**messenger_env(redis_url), "SECRETMAGIC_CONFIG": str(path),
           "RECORDER_STREAMS": stream, "RECORDER_PREFIX": prefix, "METRICS_PORT": str(port),
           "LOGS_DSN": pg_dsn, "LOGS_SCHEMA": schema}
    app = AppProcess("tests.apps.recorder:app", env, tmp_path, "observed")
    with app_processes(app):
        app.wait_output(f"consuming {stream}")
        sent = [job() for _ in range(30)]
        for fields in sent:
            r.xadd(stream, fields)
        r.xadd(stream, job(fail="fatal"))
        r.xadd(stream, {"event_type": "job", "client_id": "c", "data": "not json"})
        services.wait_for(lambda: r.hlen(f"{prefix}:handled") == 30, 30, "30 handled")
        services.wait_for(lambda: r.xlen(f"{group}:dlq") == 2, 30, "2 dead-lettered")
        services.wait_for(lambda: health(port)[0] == 200, 10, "healthy")
        status, report = health(port)
        assert status == 200
        samples = scrape(port)
    assert report["status"] == "ok" and report["redis_ok"] is True
    assert report["consumers_running"] is True

    def sample(name: str, **labels: str) -> float:
        return samples[(name, tuple(sorted(labels.items())))]

    assert sample("secretmagic_events_total", stream=stream, outcome="handled") == 30
    assert sample("secretmagic_events_total", stream=stream, outcome="dead_lettered") == 2
    assert sample("secretmagic_events_total", stream=stream, outcome="malformed") == 1
    assert sample("secretmagic_published_total", stream=f"{stream}-done", route="direct") == 30
    assert sample("secretmagic_group_pending", stream=stream, group=group) == 0
    assert sample("secretmagic_group_lag", stream=stream, group=group) == 0
    assert sample("secretmagic_dlq_length", group=group) == 2
    assert sample("secretmagic_redis_up") == 1

    # After a clean stop every record is in PostgreSQL: the seed's queries, verbatim.
    conn = await asyncpg.connect(pg_dsn)
    try:
        recent = await conn.fetch(SEED_QUERY_RECENT.replace("secretmagic.logs", f"{schema}.logs"))
        errors = await conn.fetch(SEED_QUERY_ERRORS.replace("secretmagic.logs", f"{schema}.logs"))
    finally:
        await conn.execute(f"DROP SCHEMA {schema} CASCADE")
        await conn.close()
    handled = [row for row in recent if row["message"] == "event handled"
               and json.loads(row["context"]).get("stream") == stream]
    assert len(handled) == 30
    contexts = [json.loads(row["context"]) for row in handled]
    # The seed's context fields, for the very events sent, one row each.
    assert sorted(c["event_id"] for c in contexts) == sorted(f["event_id"] for f in sent)
    assert {c["client_id"]: c["event_type"] for c in contexts} == {
        f["client_id"]: "job" for f in sent}
    for c in contexts:
        assert {"stream", "entry_id", "event_id", "event_type", "client_id",
                "duration_ms"} <= set(c), c
        assert isinstance(c["duration_ms"], float | int), c
    dead = [row for row in errors if row["message"] == "event dead-lettered"]
    assert len(dead) == 2
    assert {row["error"].split(":")[0] for row in dead} == {"FatalError", "MalformedEvent"}
    assert any("can never succeed" in row["error"] for row in dead)


def test_recompute_command_runs_the_pipeline_without_the_messenger(
        mysql_database: str) -> None:
    async def seed() -> None:
        store = open_store(mysql_database)
        await store.create_tables()
        await store.replace("bom", "c1", pl.DataFrame({
            "parent_id": ["A", "A", "B"], "child_id": ["B", "C", "C"],
            "qty_per": [2.0, 1.0, 3.0]}))
        await store.replace("sales", "c1", pl.DataFrame({
            "product_id": ["p"] * 10,
            "date": pl.date_range(pl.date(2025, 1, 1), pl.date(2025, 1, 10), eager=True),
            "qty": [float(i) for i in range(10)], "amount": [1.0] * 10}))
        await store.close()

    async def exploded() -> list[dict[str, object]]:
        store = open_store(mysql_database)
        try:
            return (await store.read("bom_exploded", "c1")).to_dicts()
        finally:
            await store.close()

    asyncio.run(seed())
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MESSENGER_", "STORE_"))}
    out = subprocess.run(
        [sys.executable, "-m", "app", "recompute", "--client", "c1", "--json"],
        cwd=ROOT, env={**env, "STORE_DSN": mysql_database}, capture_output=True, text=True,
        timeout=60)
    assert out.returncode == 0, out.stderr
    done = json.loads(out.stdout)
    # A needs 2 B + 1 C, and each B needs 3 C: 7 C in all (one leaf, one top product).
    assert done["bom"] == IsPartialDict(
        {"products_count": 1, "rows": 1, "processing_time_ms": IsInt(ge=0)})
    # 10 days of one product: 10 wide rows; its profiles: 7 weekdays and 1 month
    assert done["features"]["rows"] == 10 and done["features"]["profile_rows"] == 7 + 1
    assert done["features"]["incremental"] is False  # the client's first run
    assert asyncio.run(exploded()) == [{"client_id": "c1", "product_id": "A",
                                        "component_id": "C", "quantity": 7.0, "depth": 2}]


@pytest.mark.parametrize("argv", [["recompute"], ["recompute", "--client"]])
def test_recompute_usage_errors_are_one_line(argv: list[str]) -> None:
    out = subprocess.run([sys.executable, "-m", "app", *argv], cwd=ROOT, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 2 and "--client" in out.stderr and "Traceback" not in out.stderr
