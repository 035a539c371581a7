"""TLS with certificates made by the test (a private CA) and the least-privilege ACL user of
docs/redis-acl.md, on redis-server processes of the tests' own (Redis 7: `%R~` key rules)."""

from __future__ import annotations

import asyncio
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from app import permissions
from app.connection import sync_client
from core.events import Event
from handlers.routing import Routes
from settings import MessengerSettings
from tests.harness import (
    ROOT,
    AppProcess,
    app_processes,
    config,
    daily,
    job,
    store_write,
    unique,
    wait_until,
    worker,
)
from tests.services import HOST, PrivateRedis, private_redis, wait_for
from tests.topologies import Certificates, make_certificates, tls_redis

PASSWORD = "s3cr3t-acl-Pw"  # never in the output


def _redis_major() -> int:
    out = subprocess.run([PrivateRedis().binary, "--version"], capture_output=True, text=True)
    found = re.search(r"v=(\d+)", out.stdout)
    return int(found.group(1)) if found else 0


needs_redis_7 = pytest.mark.skipif(_redis_major() < 7, reason="LOUD SKIP: these tests need a "
                                   "redis-server 7 built with TLS (Debian's redis-server)")


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(tmp_path_factory.mktemp("certs"))


@needs_redis_7
async def test_the_worker_speaks_tls_verifying_the_server(certs: Certificates) -> None:
    with tls_redis(certs) as server:
        messenger = MessengerSettings(host=HOST, port=server.port, tls=True,
                                      tls_ca_file=certs.ca)
        stream, got = unique("tls"), []
        routes = Routes()

        @routes.on(stream, "job")
        async def handle(event: Event) -> None:
            got.append(str(event.event_id))

        client = sync_client(messenger)
        fields = job()
        client.xadd(stream, fields)
        async with worker(routes, "", config([stream]), messenger=messenger):
            await wait_until(lambda: got == [fields["event_id"]], 15, "handled over TLS")
        with pytest.raises(redis.ConnectionError):  # plain TCP is off
            redis.Redis(host=HOST, port=server.port, socket_timeout=2).ping()


@needs_redis_7
@pytest.mark.parametrize("case", ["wrong CA", "wrong host name"])
def test_a_server_that_fails_verification_stops_the_start_with_one_line(
        certs: Certificates, tmp_path: Path, case: str) -> None:
    elsewhere = make_certificates(tmp_path, hostnames=("redis.example",))
    served_by, ca = (certs, certs.other_ca) if case == "wrong CA" else (elsewhere, elsewhere.ca)
    with tls_redis(served_by) as server:
        env = {"MESSENGER_HOST": HOST, "MESSENGER_PORT": str(server.port), "MESSENGER_TLS": "1",
               "MESSENGER_TLS_CA_FILE": str(ca), "RECORDER_STREAMS": unique("tls")}
        line = start_error(AppProcess("tests.apps.recorder:app", env, tmp_path,
                                      f"tls-{case[6:10]}"))
        assert "failed the TLS check (MESSENGER_TLS_*)" in line
        assert ("certificate verify failed" in line) if case == "wrong CA" else "match" in line
        if case == "wrong host name":  # … which an operator may switch off, knowingly
            relaxed = MessengerSettings(host=HOST, port=server.port, tls=True, tls_ca_file=ca,
                                        tls_check_hostname=False)
            assert sync_client(relaxed).ping()


def start_error(app: AppProcess) -> str:
    """The one line a process that refuses to start prints (it must exit with code 2)."""
    try:
        assert app.start().wait(60) == 2
    finally:
        app.stop()
    lines = [ln for ln in app.output.splitlines() if ln.startswith("secretmagic:")]
    assert len(lines) == 1, app.output[-2000:]
    return lines[0]


# --- ACL ---------------------------------------------------------------------------------------


def documented_rule() -> str:
    """The worker's rule as docs/redis-acl.md gives it for the default configuration."""
    text = (ROOT / "docs" / "redis-acl.md").read_text()
    (rule,) = re.findall(r"^ACL SETUSER (secretmagic .+)$", text, flags=re.M)
    return rule.replace(" >PASSWORD", "")


def default_rule() -> str:
    import handlers
    from settings import Config

    cfg = Config()
    outputs = [s for streams in handlers.routes.outputs().values() for s in streams]
    return permissions.acl_rule(
        "secretmagic", (c for cs in permissions.WORKER_COMMANDS.values() for c in cs),
        permissions.worker_keys(cfg.messenger.subscriber.consumer_group,
                                [*handlers.routes.streams(), *outputs]))


def test_the_documented_acl_is_the_one_the_code_needs() -> None:
    assert documented_rule() == default_rule()


@pytest.fixture
def acl_redis() -> Iterator[PrivateRedis]:
    with private_redis() as server:
        yield server


def _as_user(server: PrivateRedis, rule: str) -> None:
    admin: Any = redis.Redis(host=HOST, port=server.port)
    admin.execute_command("ACL", "SETUSER", *rule.split(), f">{PASSWORD}")
    admin.execute_command("ACL", "SETUSER", "default", "off")  # nobody else gets in


@needs_redis_7
def test_the_seed_flow_runs_under_the_documented_acl_user(
        acl_redis: PrivateRedis, mysql_database: str, tmp_path: Path) -> None:
    _as_user(acl_redis, documented_rule())
    client = f"client-{unique('acl')}"
    asyncio.run(store_write(mysql_database, "sales", client, daily(10, 1.0)))
    env = {"MESSENGER_HOST": HOST, "MESSENGER_PORT": str(acl_redis.port),
           "MESSENGER_USERNAME": "secretmagic", "MESSENGER_PASSWORD": PASSWORD,
           "STORE_DSN": mysql_database}
    r: Any = redis.Redis(host=HOST, port=acl_redis.port, username="secretmagic",
                         password=PASSWORD)
    r.xadd("sales-updates", job(client, event_type="sales_updated", table_name="sales"))
    r.xadd("bom-updates", {"event_type": "bom_updated"})  # malformed: to the DLQ
    with app_processes(AppProcess("app:app", env, tmp_path, "acl-1")) as (app,):
        wait_for(lambda: r.xlen("features-updates") == 1 and r.xlen("secretmagic-group:dlq") == 1,
                 60, "features_updated published, the bad entry dead-lettered")
    (_, out), = r.xrange("features-updates")
    assert out[b"client_id"] == client.encode() and out[b"event_type"] == b"features_updated"
    assert PASSWORD not in app.output


@needs_redis_7
def test_a_user_lacking_one_permission_fails_at_start_naming_it(
        acl_redis: PrivateRedis, tmp_path: Path) -> None:
    _as_user(acl_redis, documented_rule().replace(" +xack", ""))
    env = {"MESSENGER_HOST": HOST, "MESSENGER_PORT": str(acl_redis.port),
           "MESSENGER_USERNAME": "secretmagic", "MESSENGER_PASSWORD": PASSWORD}
    app = AppProcess("app:app", env, tmp_path, "acl-2")
    line = start_error(app)
    assert "the Redis user may not xack on 'sales-updates'" in line
    assert "docs/redis-acl.md" in line and PASSWORD not in app.output
