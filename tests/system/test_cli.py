"""The `secretmagic` CLI: in-process through main(argv), and as real processes (`python -m app`
and the installed `secretmagic` entry point)."""

from __future__ import annotations

import io
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, cast
from urllib.parse import urlparse

import pytest
import redis

from app import cli
from core.events import Event
from core.wire import encode
from tests.harness import REDIS62, Entries, Keys, add_events, behind, dead_letter
from tests.services import PrivateRedis, free_port, private_redis

ROOT = Path(__file__).resolve().parents[2]
ENTRY_POINT = Path(sys.executable).with_name("secretmagic")  # pyproject's [project.scripts]
COMMANDS = ["streams", "groups", "lag", "pending", "tail", "dlq", "logs", "recompute"]
MESSENGER = ("MESSENGER_HOST", "MESSENGER_PORT", "MESSENGER_PASSWORD", "MESSENGER_DB")


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)

    def rows(self, first: str) -> list[list[str]]:
        """The table rows whose first column is `first`, split on blanks."""
        return [line.split() for line in self.out.splitlines() if line.startswith(first + " ")]

    def row(self, first: str) -> list[str]:
        rows = self.rows(first)
        assert len(rows) == 1, self.out
        return rows[0]


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def run(*argv: str, stdin: io.StringIO | None = None) -> Result:
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(list(argv), stdout=out, stderr=err, stdin=stdin or io.StringIO())
    return Result(code, out.getvalue(), err.getvalue())


def one_line_error(result: Result) -> str:
    assert result.code != 0
    assert result.err.count("\n") == 1 and result.err.startswith("secretmagic"), result.err
    assert "Traceback" not in result.err + result.out
    return result.err.strip()


def point_at(monkeypatch: pytest.MonkeyPatch, url: str, password: str | None = None) -> None:
    parsed = urlparse(url)
    for name in MESSENGER:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MESSENGER_HOST", parsed.hostname or "127.0.0.1")
    monkeypatch.setenv("MESSENGER_PORT", str(parsed.port or 6379))
    monkeypatch.setenv("MESSENGER_DB", (parsed.path or "/0").strip("/") or "0")
    if password is not None:
        monkeypatch.setenv("MESSENGER_PASSWORD", password)


def child_env(**messenger: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in MESSENGER}
    return env | messenger


def python_m_app(*argv: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "app", *argv], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)


def entry_point(*argv: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    assert ENTRY_POINT.exists(), f"{ENTRY_POINT} missing: pip install -e . (make install)"
    return subprocess.run([str(ENTRY_POINT), *argv], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=60)


@pytest.fixture
def r(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[redis.Redis]:
    point_at(monkeypatch, redis_url)
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


# --- read commands -------------------------------------------------------------------------------


def test_streams(r: redis.Redis, keys: Keys) -> None:
    stream = keys("cli-streams")
    ids = behind(r, stream, "g", total=3, read=1)

    table = run("streams")
    assert table.code == 0 and table.err == ""
    assert table.out.splitlines()[0].split() == ["STREAM", "LENGTH", "GROUPS", "FIRST", "ID",
                                                 "LAST", "ID"]
    assert table.row(stream) == [stream, "3", "1", ids[0], ids[2]]

    as_json = run("streams", "--json")
    (mine,) = [s for s in as_json.json() if s["name"] == stream]
    assert mine == {"name": stream, "length": 3, "first_id": ids[0], "last_id": ids[2],
                    "groups": 1}


def test_groups(r: redis.Redis, keys: Keys) -> None:
    stream = keys("cli-groups")
    ids = behind(r, stream, "secretmagic-group", total=5, read=2)

    table = run("groups", stream)
    assert table.code == 0
    group_row, consumer_row = table.rows("secretmagic-group")  # the groups, then the consumers
    assert group_row == ["secretmagic-group", "1", "2", "3", ids[1], "2"]
    assert consumer_row[:3] == ["secretmagic-group", "c1", "2"]

    (group,) = run("groups", stream, "--json").json()["groups"]
    assert set(group) == {"name", "consumers", "pending", "last_delivered_id", "entries_read",
                          "lag", "lag_source", "lag_capped", "consumer_list"}
    assert (group["lag"], group["pending"], group["consumer_list"][0]["name"]) == (3, 2, "c1")
    assert set(group["consumer_list"][0]) == {"name", "pending", "idle_ms", "inactive_ms"}


def test_lag(r: redis.Redis, keys: Keys) -> None:
    stream = keys("cli-lag")
    started = time.monotonic()
    behind(r, stream, "g", total=6, read=2)

    table = run("lag")
    assert table.code == 0 and table.out.splitlines()[0].startswith("STREAM")
    assert table.row(stream)[:5] == [stream, "g", "4", "2", "1"]

    (mine,) = [g for g in run("lag", "--json").json() if g["stream"] == stream]
    passed = time.monotonic() - started
    assert set(mine) == {"stream", "group", "lag", "lag_source", "lag_capped", "pending",
                         "consumers", "last_delivered_id", "oldest_pending_s"}
    # The oldest pending entry was added after `started` (Redis' clock: +1 ms for rounding).
    assert 0 <= mine["oldest_pending_s"] <= passed + 0.001
    assert (mine["lag"], mine["lag_source"], mine["lag_capped"]) == (4, "xinfo", False)


def test_lag_on_redis_6_2(monkeypatch: pytest.MonkeyPatch) -> None:
    with private_redis(binary=REDIS62) as server:
        client = redis.Redis.from_url(server.url)
        behind(client, "sales-updates", "secretmagic-group", total=6, read=2)
        point_at(monkeypatch, server.url)
        (g,) = run("lag", "--json").json()
        assert (g["lag"], g["lag_source"], g["pending"]) == (4, "counted", 2)
        assert run("lag").row("sales-updates")[:4] == ["sales-updates", "secretmagic-group", "4",
                                                       "2"]
        client.close()


def test_pending(r: redis.Redis, keys: Keys) -> None:
    stream = keys("cli-pending")
    ids = behind(r, stream, "secretmagic-group", total=4, read=3)

    table = run("pending", stream)  # the default group
    assert table.code == 0
    assert table.out.splitlines()[0] == (
        f"{stream} / secretmagic-group: 3 pending ({ids[0]} .. {ids[2]})"
    )
    assert table.row(ids[0])[1::2] == ["c1", "1", "acme"]
    assert table.row(ids[0])[4:] == ["sales_updated", "acme", "-"]  # no failed delivery yet

    result = run("pending", stream, "secretmagic-group", "--count", "2", "--json").json()
    assert set(result) == {"summary", "entries"}
    assert set(result["summary"]) == {"stream", "group", "count", "min_id", "max_id",
                                      "consumers"}
    assert result["summary"]["consumers"] == {"c1": 3}
    assert [e["entry_id"] for e in result["entries"]] == ids[:2]
    assert set(result["entries"][0]) == {"entry_id", "consumer", "idle_ms", "deliveries",
                                         "event_type", "client_id", "last_error"}


def test_tail(r: redis.Redis, keys: Keys) -> None:
    stream = keys("cli-tail")
    add_events(r, stream, 3)
    last = cast(bytes, r.xadd(stream, {b"event_type": b"\xff\x1b[31m", b"x": b"1"})).decode()

    table = run("tail", stream, "--count", "2")
    assert table.code == 0
    first, second = table.out.splitlines()
    assert "sales_updated  client=acme" in first and '"n":2' in first
    assert second.startswith(f"{last}  [not an event: ")
    assert "\x1b" not in table.out  # control characters from the stream are escaped

    lines = [json.loads(line) for line in run("tail", stream, "--json").out.splitlines()]
    assert len(lines) == 4 and all(set(e) == {"id", "fields", "event", "error"} for e in lines)
    assert lines[0]["event"]["client_id"] == "acme" and lines[-1]["event"] is None


def test_tail_follow_prints_new_entries_and_stops_on_ctrl_c(
    r: redis.Redis, keys: Keys, redis_url: str
) -> None:
    stream = keys("cli-follow")
    (first,) = add_events(r, stream, 1)
    parsed = urlparse(redis_url)
    env = child_env(MESSENGER_HOST=parsed.hostname or "", MESSENGER_PORT=str(parsed.port))
    proc = subprocess.Popen([sys.executable, "-m", "app", "tail", stream, "--follow"], cwd=ROOT,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: queue.Queue[str] = queue.Queue()
    stdout = cast(IO[str], proc.stdout)  # stdout=PIPE

    def pump() -> None:
        for x in stdout:
            lines.put(x)

    threading.Thread(target=pump, daemon=True).start()

    def next_line() -> str:
        return lines.get(timeout=30)

    try:
        assert next_line().startswith(first)
        fields: dict[Any, Any] = encode(Event(event_type="stock_updated", client_id="zeta"))
        new = cast(bytes, r.xadd(stream, fields))
        line = next_line()
        assert line.startswith(new.decode()) and "stock_updated  client=zeta" in line
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 0
        assert "Traceback" not in (proc.stderr.read() if proc.stderr else "")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


# --- DLQ -----------------------------------------------------------------------------------------


@pytest.fixture
def dlq_group(r: redis.Redis, keys: Keys) -> tuple[str, str, list[str]]:
    group, orig = keys("cli-group"), keys("cli-orig")
    ids = [dead_letter(r, group, orig, encode(Event(event_type="bom_updated", client_id=f"c{i}")),
                       ValueError(f"bom cycle {i}"), entry_id=f"{i}-0", deliveries=i + 1)
           for i in range(2)]
    return group, orig, ids


def test_dlq_list_and_show(dlq_group: tuple[str, str, list[str]]) -> None:
    group, orig, ids = dlq_group

    table = run("dlq", "list", "--group", group)
    assert table.code == 0
    assert table.out.splitlines()[0].split()[:2] == ["DLQ", "ID"]
    assert table.row(ids[1])[:6] == [ids[1], group, orig, "1-0", "ValueError", "2"]
    assert [line.split()[0] for line in table.out.splitlines()[1:]] == ids[::-1]
    newest = run("dlq", "list", "--group", group, "--count", "1").out.splitlines()
    assert newest[1].startswith(ids[1]) and newest[2] == "(newest 1 of 2; --count N for more)"
    listed = run("dlq", "list", "--json").json()
    assert {(e["group"], e["dlq_id"]) for e in listed} >= {(group, i) for i in ids}
    assert set(listed[0]) == {"dlq_id", "group", "dlq_stream", "stream", "entry_id",
                              "error_type", "error", "deliveries", "consumer", "time", "fields"}

    shown = run("dlq", "show", ids[0], "--group", group)
    assert shown.code == 0
    assert "error       bom cycle 0" in shown.out and "  client_id = c0" in shown.out
    assert run("dlq", "show", ids[0], "--group", group, "--json").json()["stream"] == orig
    missing = run("dlq", "show", "1-0", "--group", group)
    assert one_line_error(missing) == f"secretmagic: no such entry: 1-0 in {group}:dlq"
    assert "invalid entry id" in one_line_error(run("dlq", "show", "abc", "--group", group))


def test_dlq_replay(r: redis.Redis, dlq_group: tuple[str, str, list[str]]) -> None:
    group, orig, ids = dlq_group
    dead = cast(Entries, r.xrange(f"{group}:dlq", ids[0], ids[0]))
    fields = {k: v for k, v in dead[0][1].items()
              if not k.startswith(b"dlq_")}

    one = run("dlq", "replay", ids[0], "--group", group)
    assert one.code == 0
    ((new_id, replayed),) = cast(Entries, r.xrange(orig))
    assert one.out == f"replayed {ids[0]} -> {orig} {new_id.decode()}\n"
    assert replayed == fields
    assert r.xlen(f"{group}:dlq") == 1

    rest = run("dlq", "replay", "--all", "--group", group, "--json").json()
    assert set(rest) == {"group", "replayed", "failed", "aborted"}
    assert [d["dlq_id"] for d in rest["replayed"]] == ids[1:]
    assert r.xlen(orig) == 2 and r.xlen(f"{group}:dlq") == 0

    gone = run("dlq", "replay", ids[0], "--group", group)
    assert gone.code == 1 and gone.out.startswith(f"NOT replayed {ids[0]}: no such entry")
    assert "ids or --all" in one_line_error(run("dlq", "replay", "--group", group))


def test_dlq_purge_asks_refuses_or_goes_with_yes(
    r: redis.Redis, dlq_group: tuple[str, str, list[str]]
) -> None:
    group, _orig, _ids = dlq_group

    refused = run("dlq", "purge", "--group", group)  # no terminal, no --yes
    assert one_line_error(refused) == (
        f"secretmagic: refusing to purge 2 entries of {group}:dlq without --yes "
        "(no terminal to ask on)"
    )
    assert refused.code == 2 and r.xlen(f"{group}:dlq") == 2

    declined = run("dlq", "purge", "--group", group, stdin=Tty("n\n"))
    assert declined.code == 1 and "[y/N]" in declined.err and "cancelled" in declined.err
    assert r.xlen(f"{group}:dlq") == 2

    confirmed = run("dlq", "purge", "--group", group, stdin=Tty("y\n"))
    assert (confirmed.code, confirmed.out) == (0, f"purged 2 entries from {group}:dlq\n")
    assert r.xlen(f"{group}:dlq") == 0

    dead_letter(r, group, "s", {"a": "b"}, ValueError("x"))
    assert run("dlq", "purge", "--group", group, "--yes", "--json").json() == {
        "group": group, "dlq_stream": f"{group}:dlq", "purged": 1
    }
    assert run("dlq", "purge", "--group", group).out == f"{group}:dlq is empty\n"


# --- errors: one line, exit code, never a traceback ----------------------------------------------


def test_unknown_stream_and_group(r: redis.Redis, keys: Keys) -> None:
    missing, stream = keys("nope"), keys("cli-err")
    add_events(r, stream, 1)
    for argv in (["groups", missing], ["pending", missing], ["tail", missing]):
        result = run(*argv)
        assert one_line_error(result) == f"secretmagic: no such stream: {missing}"
        assert result.code == 1 and result.out == ""
    assert one_line_error(run("pending", stream, "nogroup")) == (
        f"secretmagic: no such group: nogroup on stream {stream}"
    )


def test_unreachable_redis_names_host_and_port(monkeypatch: pytest.MonkeyPatch) -> None:
    port = free_port()  # nothing listens there
    point_at(monkeypatch, f"redis://127.0.0.1:{port}/0")
    started = time.monotonic()
    result = run("lag")
    assert one_line_error(result).startswith(f"secretmagic: cannot reach Redis at 127.0.0.1:{port}")
    assert result.code == 1 and time.monotonic() - started < 10  # no retry storm

    child = python_m_app("streams", env=child_env(MESSENGER_HOST="127.0.0.1",
                                                  MESSENGER_PORT=str(port)))
    assert child.returncode == 1 and child.stdout == ""
    assert child.stderr.startswith(f"secretmagic: cannot reach Redis at 127.0.0.1:{port}")
    assert child.stderr.count("\n") == 1 and "Traceback" not in child.stderr


@pytest.fixture(scope="module")
def protected() -> Iterator[PrivateRedis]:
    with private_redis("--requirepass", "s3cret") as server:
        yield server


def test_wrong_or_missing_password_is_an_authentication_error(
    protected: PrivateRedis, monkeypatch: pytest.MonkeyPatch
) -> None:
    endpoint = f"127.0.0.1:{protected.port}"
    point_at(monkeypatch, protected.url, password="wrong-Pa55word")
    wrong = run("streams")
    assert one_line_error(wrong).startswith(f"secretmagic: authentication failed for {endpoint}")
    assert wrong.code == 2 and "wrong-Pa55word" not in wrong.out + wrong.err

    point_at(monkeypatch, protected.url)  # no password at all: NOAUTH
    noauth = one_line_error(run("lag"))
    assert noauth.startswith(f"secretmagic: authentication failed for {endpoint}")

    child = python_m_app("streams", env=child_env(MESSENGER_HOST="127.0.0.1",
                                                  MESSENGER_PORT=str(protected.port),
                                                  MESSENGER_PASSWORD="wrong-Pa55word"))
    assert child.returncode == 2 and child.stderr.count("\n") == 1
    assert "authentication failed" in child.stderr
    assert "wrong-Pa55word" not in child.stdout + child.stderr


def test_password_from_a_secret_file(
    protected: PrivateRedis, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    secret = tmp_path / "redis_password"
    secret.write_text("s3cret\n")
    redis.Redis.from_url(protected.url, password="s3cret").xadd("sales-updates", {"a": "1"})
    point_at(monkeypatch, protected.url, password=str(secret))

    result = run("streams")
    assert result.code == 0, result.err
    assert result.row("sales-updates")[:3] == ["sales-updates", "1", "0"]

    child = python_m_app("streams", "--json", env=child_env(
        MESSENGER_HOST="127.0.0.1", MESSENGER_PORT=str(protected.port),
        MESSENGER_PASSWORD=str(secret)))
    assert child.returncode == 0, child.stderr
    assert [s["name"] for s in json.loads(child.stdout)] == ["sales-updates"]


def test_messenger_not_configured_and_bad_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in MESSENGER:
        monkeypatch.delenv(name, raising=False)
    unset = run("streams")
    assert "the messenger is not configured: MESSENGER_HOST is unset" in one_line_error(unset)
    assert unset.code == 2

    monkeypatch.setenv("MESSENGER_HOST", "127.0.0.1")
    monkeypatch.setenv("MESSENGER_PORT", "not-a-port")
    bad = run("lag")
    assert one_line_error(bad).startswith("secretmagic: invalid environment: MESSENGER_PORT")
    assert bad.code == 2

    monkeypatch.setenv("MESSENGER_PORT", "6379")
    monkeypatch.setenv("MESSENGER_PASSWORD", "/run/secrets/does-not-exist")
    assert "MESSENGER_PASSWORD: is a path but no such readable file" in one_line_error(run("lag"))


@pytest.mark.parametrize(("argv", "where", "names"), [
    (["groups"], "secretmagic groups", ["Missing argument", "'STREAM'"]),
    (["frobnicate"], "secretmagic", ["No such command", "'frobnicate'"]),
    ([], "secretmagic", ["Missing command"]),
    (["dlq"], "secretmagic dlq", ["Missing command"]),
    (["lag", "--bogus"], "secretmagic lag", ["No such option", "--bogus"]),
    (["tail", "s", "-n", "many"], "secretmagic tail", ["--count", "'many'", "not a valid int"]),
    (["recompute", "--client", "c", "--what", "nope"], "secretmagic recompute",
     ["'--what'", "'nope' is not one of all, products, features, bom"]),
])
def test_a_usage_error_is_one_line_naming_the_problem(
    argv: list[str], where: str, names: list[str]
) -> None:
    """`<command>: error: <what is wrong> (see <command> --help)`, exit code 2, nothing else."""
    result = run(*argv)
    line = one_line_error(result)
    assert line.startswith(f"{where}: error: ") and line.endswith(f" (see {where} --help)")
    assert all(name in line for name in names), line
    assert (result.code, result.out) == (2, "")


def commands_in(help_text: str) -> list[str]:
    """The command names a --help lists under `Commands:`."""
    section = help_text.split("\nCommands:\n", 1)[1]
    return [line.split()[0] for line in section.splitlines() if line.startswith("  ")]


def test_help_lists_every_command_and_each_has_its_own() -> None:
    """What cli.app registers (one add_typer line per module) is what --help offers."""
    top = run("--help")
    assert (top.code, top.err) == (0, "") and top.out.startswith("Usage: secretmagic ")
    assert commands_in(top.out) == COMMANDS
    assert run("-h").out == top.out
    assert commands_in(run("dlq", "--help").out) == ["list", "show", "replay", "purge"]
    for argv in ([c] for c in COMMANDS if c != "dlq"):
        own = run(*argv, "--help")
        assert own.code == 0 and own.out.startswith(f"Usage: secretmagic {argv[0]} "), own.out
    assert "--what [all|products|features|bom]" in run("recompute", "--help").out
    assert "╭" not in top.out + run("groups").err  # plain text, no rich boxes


def test_python_m_app_and_the_entry_point_are_the_same_program() -> None:
    """Same help, same one-line usage error (a real command: test_password_from_a_secret_file)."""
    env = child_env()
    for launch in (python_m_app, entry_point):
        help_text = launch("--help", env=env)
        assert help_text.returncode == 0 and commands_in(help_text.stdout) == COMMANDS
        usage = launch("pending", env=env)
        assert usage.returncode == 2 and usage.stdout == ""
        assert usage.stderr == ("secretmagic pending: error: Missing argument 'STREAM'. "
                                "(see secretmagic pending --help)\n")


def test_an_unexpected_failure_is_one_line_with_secrets_masked(
    r: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MESSENGER_PASSWORD", "Hunter-2-pw")  # the shared Redis ignores it

    def broken(*_: object, **__: object) -> None:
        raise RuntimeError("the driver quoted Hunter-2-pw back")

    monkeypatch.setattr(cli.streams.ops, "streams", broken)
    result = run("streams")
    assert one_line_error(result) == (
        "secretmagic: unexpected error: RuntimeError: the driver quoted *** back"
    )
    assert result.code == 1


# --- logs: the seed's two SQL queries ------------------------------------------------------------


@pytest.fixture
def log_table(pg_dsn: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A private schema with the log table (app.observability.pgtable's DDL), five records; its
    name."""
    import asyncio

    import asyncpg

    from app.observability import pgtable

    schema = f"sm_cli_{uuid.uuid4().hex[:10]}"
    ddl = pgtable.ddl(schema)
    rows = [  # (minutes ago, level, category, message, error, context)
        (1, "info", "messenger", "event handled", None, '{"stream": "sales-updates"}'),
        (2, "error", "messenger", "event dead-lettered", "BOM cycle: A -> B -> A",
         '{"stream": "bom-updates", "client_id": "acme"}'),
        (3, "error", "config", "config rejected", "bad yaml", None),
        (30, "info", "messenger", "old event handled", None, "{}"),
        (40, "error", "messenger", "old failure", "store down", "{}"),
    ]

    async def run_sql(*statements: str) -> None:
        conn = await asyncpg.connect(pg_dsn)
        try:
            for statement in statements:
                await conn.execute(statement)
            if statements[0].startswith("CREATE"):
                await conn.executemany(
                    f"INSERT INTO {schema}.logs VALUES (NOW() - make_interval(mins => $1), $2, $3,"
                    " $4, $5, $6::jsonb)", rows)
        finally:
            await conn.close()

    asyncio.run(run_sql(ddl))
    for name in MESSENGER:
        monkeypatch.delenv(name, raising=False)  # logs needs no messenger
    monkeypatch.setenv("LOGS_DSN", pg_dsn)
    monkeypatch.setenv("LOGS_SCHEMA", schema)
    yield schema
    asyncio.run(run_sql(f"DROP SCHEMA {schema} CASCADE"))


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
