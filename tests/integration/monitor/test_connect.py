"""Connecting with the messenger settings, failing fast on a closed port; the log table from
async code."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
import redis

from app import ops
from settings import MessengerSettings
from tests.services import private_redis


def test_connect_uses_the_messenger_settings(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from settings import load_settings

    secret = tmp_path / "redis_password"
    secret.write_text("s3cret\n")
    with private_redis("--requirepass", "s3cret") as server:
        for name, value in {"MESSENGER_HOST": "127.0.0.1", "MESSENGER_PORT": str(server.port),
                            "MESSENGER_PASSWORD": str(secret), "MESSENGER_DB": "2"}.items():
            monkeypatch.setenv(name, value)
        messenger = load_settings().messenger
        assert messenger is not None
        client = ops.connect(messenger, timeout=2)
        client.xadd("s", {"a": "1"})
        assert [s.name for s in ops.streams(client)] == ["s"]
        assert client.connection_pool.connection_kwargs["db"] == 2
        client.close()


def _fails_fast(call: Callable[[], object]) -> type[BaseException]:
    try:
        call()
    except BaseException as exc:
        return type(exc)
    raise AssertionError("did not fail")


def test_connect_to_a_closed_port_fails_without_retrying() -> None:
    from tests.services import free_port

    client = ops.connect(MessengerSettings(host="127.0.0.1", port=free_port()), timeout=1)
    assert issubclass(_fails_fast(lambda: ops.streams(client)), redis.ConnectionError)


async def test_fetch_logs_from_async_code(pg_dsn: str) -> None:
    assert ops.pg_endpoint("postgresql://u:pw@db.example:6543/x") == "db.example:6543"
    assert ops.pg_endpoint("postgresql:///x") == "localhost:5432"
    schema = f"sm_none_{uuid.uuid4().hex[:8]}"
    with pytest.raises(ops.NoLogTable, match=f"no log table {schema}.logs"):
        await ops.fetch_logs(pg_dsn, schema)
    with pytest.raises(ops.MonitorError, match="invalid log schema name"):
        await ops.fetch_logs(pg_dsn, "x; DROP TABLE y")
