"""Real `faststream run` processes on a real Redis: instances sharing a group, SIGKILL mid-work,
SIGTERM with handlers running, the password file, a wrong password, messenger off.

The worker is tests/apps/recorder.py: the app's own lifecycle and policy with handlers that
record in Redis what they handle.
"""

from __future__ import annotations

import asyncio
import signal
import threading
import time
from pathlib import Path
from typing import cast

import pytest
import redis

from tests import services
from tests.apps.probes import TARGET, handled, recorder_env, started
from tests.harness import (
    AppProcess,
    Entries,
    Fields,
    StreamEntries,
    app_processes,
    config,
    fetch,
    job,
    unique,
    write_config,
)


def wait(condition: object, timeout: float, what: str) -> None:
    services.wait_for(condition, timeout, what)  # type: ignore[arg-type]


def test_two_instances_share_a_group_and_trainer_gets_every_output(
        redis_url: str, tmp_path: Path) -> None:
    r = redis.Redis.from_url(redis_url)
    stream, prefix = unique("orders"), unique("rec")
    r.xgroup_create(f"{stream}-done", "trainer-group", id="0", mkstream=True)
    env = recorder_env(redis_url, tmp_path, stream, prefix)
    a = AppProcess(TARGET, env, tmp_path, "instance-1")
    b = AppProcess(TARGET, env, tmp_path, "instance-2")
    with app_processes(a, b):
        a.wait_output(f"consuming {stream}")
        b.wait_output(f"consuming {stream}")
        sent = [job() for _ in range(400)]
        for fields in sent:
            r.xadd(stream, fields)
        wait(lambda: len(handled(r, prefix)) == 400, 60, "400 handled")
    counts = handled(r, prefix)
    by = {k.decode(): int(v) for k, v in cast(Fields, r.hgetall(f"{prefix}:by")).items()}
    print(f"sent=400 handled={len(counts)} by_instance={by}")
    assert set(counts) == {f["event_id"] for f in sent} and set(counts.values()) == {1}
    assert by.keys() == {"instance-1", "instance-2"}  # both took a share, none twice
    assert r.xpending(stream, "secretmagic-group")["pending"] == 0
    outputs = cast(StreamEntries, r.xreadgroup("trainer-group", "trainer-1",
                                               {f"{stream}-done": ">"}, count=1000))
    assert len(outputs[0][1]) == 400


def test_sigkill_five_times_while_events_flow_loses_nothing(
        redis_url: str, tmp_path: Path) -> None:
    r = redis.Redis.from_url(redis_url)
    stream, prefix, total, batch = unique("kill"), unique("rec"), 2000, 10
    env = {**recorder_env(redis_url, tmp_path, stream, prefix, batch_size=batch,
                          claim_idle_ms=2000), "RECORDER_WORK_MS": "5"}
    steady = AppProcess(TARGET, env, tmp_path, "steady")
    victim = AppProcess(TARGET, env, tmp_path, "victim")
    sent: list[str] = []
    kills_done = threading.Event()

    def produce() -> None:
        # At least `total`, and on until the last kill: restarts are slow on a loaded machine,
        # and every kill must land while events flow.
        while len(sent) < total or not kills_done.is_set():
            fields = job()
            r.xadd(stream, fields)
            sent.append(fields["event_id"])
            time.sleep(0.004)

    with app_processes(steady, victim):
        steady.wait_output(f"consuming {stream}")
        producer = threading.Thread(target=produce)
        producer.start()
        for kill in range(5):
            victim.wait_output(f"consuming {stream}")
            seen = len(handled(r, prefix))
            wait(lambda s=seen: len(handled(r, prefix)) > s + 50, 60, "progress before a kill")
            victim.kill()
            print(f"kill {kill + 1}: handled so far {len(handled(r, prefix))}")
            victim.log_path.write_text("")  # the restarted process logs afresh
            victim.start()
        kills_done.set()
        producer.join()
        wait(lambda: len(handled(r, prefix)) == len(sent), 90, f"all {len(sent)} handled")
        wait(lambda: r.xpending(stream, "secretmagic-group")["pending"] == 0, 30, "all acked")
    counts = handled(r, prefix)
    duplicated = sum(counts.values()) - len(counts)
    dlq = [f for _, f in cast(Entries, r.xrange("secretmagic-group:dlq"))
           if f.get(b"dlq_stream") == stream.encode()]
    lost = len(set(sent) - set(counts)) - len(dlq)
    print(f"sent={len(sent)} handled={len(counts)} duplicated={duplicated} "
          f"dead_lettered={len(dlq)} lost={lost}")
    assert lost == 0 and not dlq
    # A kill can only repeat what the victim held: at most one read batch per kill.
    assert duplicated <= 5 * batch


def test_sigterm_lets_handlers_finish_and_ack(redis_url: str, tmp_path: Path) -> None:
    r = redis.Redis.from_url(redis_url)
    stream, prefix = unique("term"), unique("rec")
    env = {**recorder_env(redis_url, tmp_path, stream, prefix),
           "RECORDER_WORK_MS": "1500", "SHUTDOWN_TIMEOUT": "20"}
    with app_processes(AppProcess(TARGET, env, tmp_path, "worker")) as (w,):
        w.wait_output(f"consuming {stream}")
        for _ in range(4):
            r.xadd(stream, job())
        wait(lambda: len(started(r, prefix)) == 4, 20, "4 handlers running")
        signalled = time.monotonic()
        w.signal(signal.SIGTERM)
        code = w.wait(30)
        took = time.monotonic() - signalled
    print(f"exit={code} after {took:.1f}s; handled={len(handled(r, prefix))}")
    assert code == 0 and took < 20
    assert len(handled(r, prefix)) == 4
    assert r.xpending(stream, "secretmagic-group")["pending"] == 0


def test_sigterm_timeout_leaves_work_for_another_instance(redis_url: str, tmp_path: Path) -> None:
    r = redis.Redis.from_url(redis_url)
    stream, prefix = unique("handover"), unique("rec")
    env = {**recorder_env(redis_url, tmp_path, stream, prefix, claim_idle_ms=1000),
           "SHUTDOWN_TIMEOUT": "1"}
    slow = AppProcess(TARGET, {**env, "RECORDER_WORK_MS": "60000"}, tmp_path, "slow")
    with app_processes(slow):
        slow.wait_output(f"consuming {stream}")
        sent = [job() for _ in range(3)]
        for fields in sent:
            r.xadd(stream, fields)
        wait(lambda: len(started(r, prefix)) == 3, 20, "3 handlers running")
        slow.signal(signal.SIGTERM)
        assert slow.wait(20) == 0
    assert r.xpending(stream, "secretmagic-group")["pending"] == 3  # unfinished: still pending
    other = AppProcess(TARGET, {**env, "RECORDER_WORK_MS": "0"}, tmp_path, "other")
    with app_processes(other):
        wait(lambda: len(handled(r, prefix)) == 3, 30, "the other instance handled them")
    assert r.xpending(stream, "secretmagic-group")["pending"] == 0


def test_password_file_works_and_never_shows(tmp_path: Path) -> None:
    password = "s3cret-" + unique("pw")
    secret = tmp_path / "redis_password"
    secret.write_text(password + "\n")
    with services.private_redis("--requirepass", password) as server:
        r = redis.Redis(host=services.HOST, port=server.port, password=password)
        stream, prefix = unique("auth"), unique("rec")
        env = {**recorder_env(server.url, tmp_path, stream, prefix),
               "MESSENGER_PASSWORD": str(secret)}
        with app_processes(AppProcess(TARGET, env, tmp_path, "authed")) as (w,):
            w.wait_output(f"consuming {stream}")
            r.xadd(stream, job())
            wait(lambda: len(handled(r, prefix)) == 1, 20, "handled with the password")
        assert password not in w.output

        wrong = AppProcess(TARGET, {**env, "MESSENGER_PASSWORD": "not-" + password}, tmp_path,
                           "wrong")
        with app_processes(wrong):
            code = wrong.wait(30)
        print(wrong.output[-500:])
        assert code != 0
        assert f"Redis at {services.HOST}:{server.port}" in wrong.output
        assert "password" in wrong.output and password not in wrong.output
        assert "Traceback" not in wrong.output


@pytest.mark.parametrize(("variable", "value", "message"), [
    ("MESSENGER_PORT", "not-a-port", "MESSENGER_PORT: Input should be a valid integer"),
    ("MESSENGER_DB", "-1", "MESSENGER_DB: Input should be greater than or equal to 0"),
    ("MESSENGER_PASSWORD", "/run/secrets/missing", "MESSENGER_PASSWORD: is a path but no such"),
    ("METRICS_PORT", "70000", "METRICS_PORT: Input should be less than or equal to 65535"),
    ("STORE_DSN", "mysql://root:hunter2@127.0.0.1:1/db", "the store (STORE_DSN) is not usable"),
    ("STORE_DSN", "postgres://x/y", "the store (STORE_DSN) is not usable"),
])
def test_bad_environment_is_a_clear_startup_error(redis_url: str, tmp_path: Path, variable: str,
                                                  value: str, message: str) -> None:
    env = {**recorder_env(redis_url, tmp_path, "x", "y"), variable: value}
    with app_processes(AppProcess(TARGET, env, tmp_path, "bad")) as (p,):
        code = p.wait(30)
    assert code != 0 and message in p.output and "Traceback" not in p.output
    assert "hunter2" not in p.output


def test_two_instances_on_one_outbox_file_is_a_clear_startup_error(
        redis_url: str, tmp_path: Path) -> None:
    stream, prefix = unique("box"), unique("rec")
    env = {**recorder_env(redis_url, tmp_path, stream, prefix),
           "OUTBOX_PATH": str(tmp_path / "shared.sqlite3")}
    first = AppProcess(TARGET, env, tmp_path, "first")
    with app_processes(first):
        first.wait_output(f"consuming {stream}")
        with app_processes(AppProcess(TARGET, env, tmp_path, "second")) as (second,):
            code = second.wait(30)
    assert code == 2 and "the outbox (OUTBOX_PATH) is not usable" in second.output
    assert "give each instance" in second.output and "Traceback" not in second.output


def test_messenger_off_starts_without_redis(tmp_path: Path) -> None:
    path = write_config(tmp_path / "config.yaml", config(["x"]))
    env = {"SECRETMAGIC_CONFIG": str(path), "RECORDER_STREAMS": "x"}
    with app_processes(AppProcess(TARGET, env, tmp_path, "offline")) as (p,):
        p.wait_output("messenger off")
        p.signal(signal.SIGTERM)
        assert p.wait(20) == 0
    assert p.output.count("messenger off") == 1


def test_second_signal_exits_at_once_leaving_work_pending(redis_url: str, tmp_path: Path) -> None:
    r = redis.Redis.from_url(redis_url)
    stream, prefix = unique("twice"), unique("rec")
    env = {**recorder_env(redis_url, tmp_path, stream, prefix), "RECORDER_WORK_MS": "60000",
           "SHUTDOWN_TIMEOUT": "60"}
    with app_processes(AppProcess(TARGET, env, tmp_path, "stubborn")) as (w,):
        w.wait_output(f"consuming {stream}")
        r.xadd(stream, job())
        wait(lambda: len(started(r, prefix)) == 1, 20, "a handler running")
        w.signal(signal.SIGTERM)
        w.wait_output("in-flight handlers get 60 s")
        signalled = time.monotonic()
        w.signal(signal.SIGINT)
        code = w.wait(20)
    print(f"second signal: exit={code} after {time.monotonic() - signalled:.2f}s")
    assert code == 130 and "exiting now" in w.output
    assert r.xpending(stream, "secretmagic-group")["pending"] == 1  # for another instance


def test_redis_unreachable_at_start_then_the_app_connects(tmp_path: Path) -> None:
    server = services.PrivateRedis()  # not started yet
    stream, prefix = unique("late"), unique("rec")
    env = recorder_env(server.url, tmp_path, stream, prefix)
    try:
        with app_processes(AppProcess(TARGET, env, tmp_path, "early")) as (w,):
            w.wait_output("is unreachable")
            w.wait_output("FastStream app started")
            server.start()
            r = redis.Redis(host=services.HOST, port=server.port)
            r.xadd(stream, job())
            wait(lambda: r.hlen(f"{prefix}:handled") == 1, 30, "handled once Redis came")
            assert w.proc and w.proc.poll() is None
        assert "is reachable again" in w.output
    finally:
        server.close()


def test_postgres_down_while_events_flow_loses_no_event_and_no_log_row(
        redis_url: str, tmp_path: Path) -> None:
    """The log database goes away for a third of the run: events are handled all along, and
    the 'event handled' rows kept meanwhile are written once it is back (within LOGS_BUFFER)."""
    r = redis.Redis.from_url(redis_url)
    stream, prefix, schema = unique("pgdown"), unique("rec"), unique("logs").replace("-", "_")
    pg = services.PrivatePostgres().start()
    env = {**recorder_env(redis_url, tmp_path, stream, prefix), "LOGS_DSN": pg.dsn,
           "LOGS_SCHEMA": schema}
    sent: list[str] = []

    def send(n: int) -> None:
        for _ in range(n):
            fields = job()
            r.xadd(stream, fields)
            sent.append(fields["event_id"])
        wait(lambda: len(handled(r, prefix)) == len(sent), 30, f"{len(sent)} handled")

    def logged() -> set[str]:
        rows = asyncio.run(fetch(pg.dsn, f"SELECT context->>'event_id' FROM {schema}.logs "
                                         "WHERE message = 'event handled'"))
        return {row[0] for row in rows}

    try:
        with app_processes(AppProcess(TARGET, env, tmp_path, "worker")) as (w,):
            w.wait_output(f"consuming {stream}")
            send(100)
            wait(lambda: logged() >= set(sent), 30, "the first 100 logged in PostgreSQL")
            pg.stop()
            send(100)  # handled while PostgreSQL is down
            pg.start()
            send(100)
            wait(lambda: logged() >= set(sent), 60, "all 300 logged once PostgreSQL is back")
            assert w.proc and w.proc.poll() is None
        counts = handled(r, prefix)
        dlq = [f for _, f in cast(Entries, r.xrange("secretmagic-group:dlq"))
               if f.get(b"dlq_stream") == stream.encode()]
        lost = len(set(sent) - set(counts)) - len(dlq)
        rows = logged()
        print(f"sent={len(sent)} handled={len(counts)} dead_lettered={len(dlq)} lost={lost} "
              f"log_rows={len(rows & set(sent))}")
        assert lost == 0 and not dlq and set(counts.values()) == {1}
        assert rows >= set(sent)
        # The outage and the recovery were reported on the console, each once.
        assert w.output.count("unavailable") == 1 and "reachable again" in w.output
    finally:
        pg.close()

