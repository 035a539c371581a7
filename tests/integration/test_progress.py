"""Progress of long commands (dlq replay --all, dlq purge, recompute for many clients): count,
rate and ETA on a terminal's stderr, nothing with --json or without a terminal; stdout keeps
the results."""

from __future__ import annotations

import asyncio
import io
import json
from typing import Any, cast

import polars as pl
import pytest
import redis

from app import cli
from app.cli.progress import Progress, line
from app.ops.common import PAGE
from core.errors import FatalError
from store import open_store
from tests.harness import Keys, dead_letter
from tests.services import HOST


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def run(monkeypatch: pytest.MonkeyPatch, url: str, *argv: str, env: dict[str, str] | None = None
        ) -> tuple[int, str, str]:
    parsed = redis.connection.parse_url(url)
    monkeypatch.setenv("MESSENGER_HOST", str(parsed.get("host", HOST)))
    monkeypatch.setenv("MESSENGER_PORT", str(parsed.get("port", 6379)))
    for key, value in (env or {}).items():
        monkeypatch.setenv(key, value)
    out, err = io.StringIO(), Terminal()
    code = cli.main(list(argv), stdout=out, stderr=err, stdin=io.StringIO())
    return code, out.getvalue(), err.getvalue()


def test_the_line_shows_count_rate_and_eta() -> None:
    assert line("replayed", 250, 1000, 5.0) == "replayed 250/1000  50/s  ETA 15s"
    assert line("purged", 3, 12, 2.0) == "purged 3/12  1.5/s  ETA 6s"
    assert line("recomputed", 10, 10, 4.0) == "recomputed 10/10  2.5/s"  # done: no ETA
    assert line("replayed", 100, 100_100, 10.0) == "replayed 100/100100  10/s  ETA 2h46m"
    assert line("replayed", 0, 5, 1.0) == "replayed 0/5  0.0/s  ETA ?"


def test_progress_redraws_in_place_at_most_every_fifth_of_a_second() -> None:
    clock, err = Clock(), Terminal()
    progress = Progress(err, "replayed", 4, clock=clock)
    progress.advance()  # drawn: the first
    clock.now += 0.1
    progress.advance()  # too soon: not drawn
    clock.now += 0.2
    progress.advance()
    clock.now += 0.7
    progress.advance()
    progress.close()
    frames = err.getvalue().split("\r")[1:]
    assert [f.split()[1] for f in frames] == ["1/4", "3/4", "4/4", "4/4"]
    assert frames[-1] == "replayed 4/4  4.0/s\n"  # 4 in one second; ended with a newline


def test_progress_is_silent_without_a_terminal_or_in_json() -> None:
    for err, quiet in ((io.StringIO(), False), (Terminal(), True)):
        progress = Progress(err, "purged", 3, quiet=quiet)
        for _ in range(3):
            progress.advance()
        progress.close()
        assert err.getvalue() == ""


def test_dlq_replay_all_and_purge_show_progress_on_stderr_only(
        r: redis.Redis, keys: Keys, redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    group, stream = keys("prog-group"), keys("prog-stream")
    for i in range(3):
        dead_letter(r, group, stream, {"event_type": "x", "client_id": str(i)}, FatalError("f"),
                    entry_id=f"1-{i}")
    code, out, err = run(monkeypatch, redis_url, "dlq", "replay", "--all", "--group", group)
    assert code == 0
    assert out.count("replayed ") == 3 and "/s" not in out
    assert err.rstrip().split("\r")[-1].startswith("replayed 3/3")
    assert (r.xlen(stream), r.xlen(f"{group}:dlq")) == (3, 0)

    for i in range(3):
        dead_letter(r, group, stream, {"n": str(i)}, FatalError("f"), entry_id=f"2-{i}")
    code, out, err = run(monkeypatch, redis_url, "dlq", "replay", "--all", "--group", group,
                         "--json")
    assert code == 0 and err == ""
    assert len(json.loads(out)["replayed"]) == 3


def test_dlq_purge_goes_page_by_page_and_keeps_what_came_after(
        r: redis.Redis, keys: Keys, redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    group = keys("purge-group")
    dlq = f"{group}:dlq"
    total = PAGE * 2 + 500  # three pages
    with r.pipeline(transaction=False) as pipe:
        for i in range(total):
            pipe.xadd(dlq, {"dlq_error": "e", "n": str(i)})
        pipe.execute()
    code, out, err = run(monkeypatch, redis_url, "dlq", "purge", "--group", group, "--yes")
    assert code == 0, err
    assert out.strip() == f"purged {total} entries from {dlq}"
    frames = err.rstrip("\n").split("\r")[1:]
    assert frames[-1].startswith(f"purged {total}/{total}")
    assert r.xlen(dlq) == 0

    for i in range(5):
        r.xadd(dlq, {"dlq_error": "e", "n": str(i)})
    code, out, err = run(monkeypatch, redis_url, "dlq", "purge", "--group", group, "--yes",
                         "--json")
    assert (code, err) == (0, "")
    assert json.loads(out)["purged"] == 5


def test_recompute_for_many_clients_goes_on_past_a_failure(
        mysql_database: str, redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    async def seed() -> None:
        store = open_store(mysql_database)
        await store.create_tables()
        await store.replace("bom", "loop", pl.DataFrame({  # a cycle: FatalError
            "parent_id": ["A", "B"], "child_id": ["B", "A"], "qty_per": [1.0, 1.0]}))
        await store.replace("bom", "ok-2", pl.DataFrame({
            "parent_id": ["A"], "child_id": ["C"], "qty_per": [4.0]}))
        await store.close()

    asyncio.run(seed())
    env = {"STORE_DSN": mysql_database}
    argv = ["recompute", "--what", "bom", "--client", "ok-1", "--client", "loop",
            "--client", "ok-2"]
    code, out, err = run(monkeypatch, redis_url, *argv, env=env)
    assert code == 1
    lines = out.splitlines()
    assert lines[1].startswith("loop") and "FAILED" in lines[1] and "cycle" in lines[1].lower()
    assert lines[-1] == "2 of 3 clients recomputed"
    assert err.rstrip("\n").split("\r")[-1].startswith("recomputed 3/3")

    code, out, err = run(monkeypatch, redis_url, *argv, "--json", env=env)
    assert (code, err) == (1, "")
    done = cast(list[dict[str, Any]], json.loads(out))
    assert [d["client_id"] for d in done] == ["ok-1", "loop", "ok-2"]
    assert done[2]["bom"]["rows"] == 1 and done[0]["bom"]["rows"] == 0
    assert "error" in done[1] and "bom" not in done[1]
