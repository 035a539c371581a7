"""logs: the seed's SQL log queries on a real PostgreSQL."""

from __future__ import annotations

import uuid
from urllib.parse import urlparse

import pytest

from tests.services import free_port
from tests.system.cli.kit import (
    MESSENGER,
    one_line_error,
    run,
)


def test_logs_is_the_seeds_first_query(log_table: str) -> None:
    recent = run("logs")  # category messenger, the last 10 minutes, newest first
    assert recent.code == 0, recent.err
    assert recent.out.splitlines()[0].split() == ["TIME", "LEVEL", "CATEGORY", "MESSAGE",
                                                  "ERROR", "CONTEXT"]
    body = recent.out.splitlines()[1:]
    assert [line.split()[1:3] for line in body] == [["info", "messenger"], ["error", "messenger"]]
    assert "event handled" in body[0] and '{"stream":"sales-updates"}' in body[0]

    rows = run("logs", "--since", "1h", "--json").json()
    assert [r["message"] for r in rows] == ["event handled", "event dead-lettered",
                                            "old event handled", "old failure"]
    assert set(rows[0]) == {"timestamp", "level", "category", "message", "error", "context"}
    assert rows[1]["context"] == {"stream": "bom-updates", "client_id": "acme"}
    assert rows[0]["timestamp"].endswith("Z")
    assert len(run("logs", "--category", "all", "--json").json()) == 3


def test_logs_errors_is_the_seeds_second_query(log_table: str) -> None:
    errors = run("logs", "--errors", "--json").json()  # messenger errors, any age, last 20
    assert [(r["message"], r["error"]) for r in errors] == [
        ("event dead-lettered", "BOM cycle: A -> B -> A"), ("old failure", "store down")
    ]
    table = run("logs", "--errors", "--limit", "1")
    assert len(table.out.splitlines()) == 2 and "BOM cycle: A -> B -> A" in table.out
    assert run("logs", "--errors", "--category", "nothing").out == (
        "no errors (category nothing)\n"
    )


def test_logs_errors(monkeypatch: pytest.MonkeyPatch, pg_dsn: str) -> None:
    for name in (*MESSENGER, "LOGS_DSN", "LOGS_SCHEMA"):
        monkeypatch.delenv(name, raising=False)
    unset = run("logs")
    assert "the log table is not configured: LOGS_DSN is unset" in one_line_error(unset)
    assert unset.code == 2

    port = free_port()
    monkeypatch.setenv("LOGS_DSN", f"postgresql://sm:Pg-Secret-9@127.0.0.1:{port}/x")
    down = run("logs")
    assert one_line_error(down).startswith(
        f"secretmagic: cannot reach PostgreSQL at 127.0.0.1:{port}"
    )
    assert down.code == 1 and "Pg-Secret-9" not in down.err

    parsed = urlparse(pg_dsn)
    monkeypatch.setenv("LOGS_DSN", parsed._replace(
        netloc=f"no_such_role_x:Pg-Secret-9@{parsed.hostname}:{parsed.port}").geturl())
    refused = run("logs")
    assert one_line_error(refused).startswith("secretmagic: authentication failed for PostgreSQL")
    assert refused.code == 2 and "Pg-Secret-9" not in refused.err

    monkeypatch.setenv("LOGS_DSN", pg_dsn)
    monkeypatch.setenv("LOGS_SCHEMA", f"sm_none_{uuid.uuid4().hex[:8]}")
    missing = run("logs")
    assert "no log table sm_none_" in one_line_error(missing) and missing.code == 1
    assert "not a duration" in one_line_error(run("logs", "--since", "soon"))
