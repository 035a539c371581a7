"""Validation and secrets: bad schema names and DSNs refused without their password, masking,
the console lines."""

from __future__ import annotations

import functools
import io
import json
import logging
import re

import pytest

from app.observability.console import ConsoleFormatter, install, setup_console, uninstall
from app.observability.pgsink import PostgresSink
from core import logs
from core.redact import Redactor, mask_dsn
from tests.harness import wait_until
from tests.integration.logs.kit import (
    PASSWORD,
    log,
    logger,
    new_schema,
)
from tests.services import free_port


@pytest.mark.parametrize("name", ["bad;drop", 'x"y', "1abc", "", "a" * 64, "secret magic",
                                  "public.logs", "ünïcode", "x'; DROP TABLE t; --"])
def test_bad_schema_name_is_refused_by_name(name: str) -> None:
    with pytest.raises(ValueError) as raised:
        PostgresSink(f"postgresql://root:{PASSWORD}@127.0.0.1:5432/test", name)
    assert repr(name) in str(raised.value)
    assert PASSWORD not in str(raised.value)


def test_schema_name_is_folded_like_an_unquoted_identifier() -> None:
    assert PostgresSink("postgresql://root@127.0.0.1/test", "SecretMagic").schema == "secretmagic"


def test_bad_dsn_is_refused_without_its_password() -> None:
    for dsn in (f"postgresql://root:{PASSWORD}@127.0.0.1:notaport/test",
                f"mysql://root:{PASSWORD}@127.0.0.1/test"):
        with pytest.raises(ValueError) as raised:
            PostgresSink(dsn)
        assert PASSWORD not in str(raised.value)


def test_mask_dsn() -> None:
    assert mask_dsn(f"postgresql://root:{PASSWORD}@db:5432/x") == "postgresql://root:***@db:5432/x"
    assert mask_dsn(f"postgresql://root@db/x?password={PASSWORD}&sslmode=require") == \
        "postgresql://root@db/x?password=***&sslmode=require"
    assert mask_dsn("postgresql://root@db/x") == "postgresql://root@db/x"
    # The userinfo ends where drivers end it, at the authority's last '@' ...
    assert mask_dsn(f"postgresql://root:{PASSWORD}@db/x?application_name=me@host") == \
        "postgresql://root:***@db/x?application_name=me@host"
    assert mask_dsn("postgresql://root@db/x?application_name=me@host") == \
        "postgresql://root@db/x?application_name=me@host"
    assert mask_dsn("postgresql://root:p@ss@db/x") == "postgresql://root:***@db/x"
    # ... or, for a password with an unencoded '/', '?' or '#', at the DSN's last '@'.
    assert mask_dsn("postgresql://root:pa/ss#1@db/x") == "postgresql://root:***@db/x"


def test_redactor_removes_the_password_in_every_form() -> None:
    encoded = PASSWORD.replace("-", "%2D")
    redact = Redactor(f"postgresql://root:{encoded}@db/x?application_name=me@host")
    said = (f"connect to postgresql://root:{encoded}@db/x?application_name=me@host failed: "
            f"password {PASSWORD!r} (as sent: {encoded}) refused")
    assert redact(said) == ("connect to postgresql://root:***@db/x?application_name=me@host "
                            "failed: password '***' (as sent: ***) refused")


async def test_password_never_appears_in_log_output(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    port = free_port()
    for dsn in (f"postgresql://root:{PASSWORD}@127.0.0.1:{port}/test",
                f"postgresql://root@127.0.0.1:{port}/test?password={PASSWORD}"):
        sink = PostgresSink(dsn, new_schema(), flush_interval=0.05, backoff=(0.02, 0.05))
        await sink.start()
        install(sink, libraries=logging.DEBUG)
        log.error("something failed", error=RuntimeError("x"))
        await wait_until(functools.partial(getattr, sink, "last_error"), 10,
                         "a failed connection attempt")
        await sink.stop(0.3)
        console = "\n".join(ConsoleFormatter().format(r) for r in caplog.records)
        shown = [console, repr(sink), str(sink.last_error), sink.target]
        assert "unavailable" in console and f"error={json.dumps(sink.last_error)}" in console
        assert "***" in sink.target
        for text in shown:
            assert PASSWORD not in text


def test_console_lines_and_idempotent_setup() -> None:
    out = io.StringIO()
    handler = setup_console("INFO", stream=out)
    try:
        assert setup_console(logging.INFO, stream=out) is handler
        assert logger.handlers.count(handler) == 1
        log.info("event handled", stream="sales-updates", entry_id="1-0", duration_ms=12)
        log.error("event failed", error=ValueError("boom"), entry_id="2-0")
        log.debug("not shown")
        logs.get("config").warning("two\nlines", path="/etc/a b.yaml")
        logging.getLogger("somelib.sub").warning("library says %s", "hi")
        logging.getLogger("somelib.sub").info("below the forwarding level")
    finally:
        uninstall(handler)
    lines = out.getvalue().splitlines()
    ts = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"
    assert re.fullmatch(ts + " INFO  messenger  event handled  "
                        "stream=sales-updates entry_id=1-0 duration_ms=12", lines[0]), lines[0]
    assert re.fullmatch(ts + ' ERROR messenger  event failed  entry_id=2-0  '
                        'error="ValueError: boom"', lines[1]), lines[1]
    assert re.fullmatch(ts + r' WARNING config  two\\nlines  path="/etc/a b.yaml"',
                        lines[2]), lines[2]
    assert re.fullmatch(ts + " WARNING somelib  library says hi  logger=somelib.sub",
                        lines[3]), lines[3]
    assert len(lines) == 4
