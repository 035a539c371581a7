"""Reaching Redis: unreachable, a wrong or missing password, a password from a secret file, the
messenger not configured."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import redis

from tests.services import PrivateRedis, free_port
from tests.system.cli.kit import (
    MESSENGER,
    child_env,
    one_line_error,
    point_at,
    python_m_app,
    run,
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
