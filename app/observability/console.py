"""The console side of the seed's «Dual logging», and how any handler is attached to the logger.

`setup_console(level)` writes one readable line per record on stderr:

    2026-11-26T18:00:00.123Z INFO  messenger  event handled  stream=sales-updates entry_id=1-0

`install(handler)` attaches a handler (the console's, app.observability.pgsink's) to the
"secretmagic" logger and, by default, forwards other libraries' WARNING+ records to it as well;
`uninstall(handler)` undoes that.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import threading
import time
from collections.abc import Mapping
from typing import IO, Any

from app.observability import records
from core.logs import LOGGER_NAME

logger = logging.getLogger(LOGGER_NAME)

_PLAIN_VALUE = re.compile(r'^[^\s"=]+$')


def _value(value: Any) -> str:
    if isinstance(value, str):
        text = value
    elif isinstance(value, Mapping | list | tuple):
        text = records.to_json(value)
    else:
        text = str(value)
    if _PLAIN_VALUE.match(text):
        return text
    return json.dumps(text, ensure_ascii=False)  # quoted, newlines escaped: one line per record


class ConsoleFormatter(logging.Formatter):
    """`<UTC time> <LEVEL> <category>  <message>  key=value ...  error=...`, one line."""

    def format(self, record: logging.LogRecord) -> str:
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        head = f"{ts}.{int(record.msecs):03d}Z {record.levelname:<5} {records.category(record)}"
        message = records.message(record).replace("\r", "\\r").replace("\n", "\\n")
        parts = [head, message]
        context = records.context(record)
        if context:
            parts.append(" ".join(f"{k}={_value(v)}" for k, v in context.items()))
        error = records.error(record, full=False)
        if error is not None and context.get("error") != error:
            parts.append(f"error={_value(error)}")
        return "  ".join(parts)


class _LibraryForwarder(logging.Handler):
    """On the root logger: hands other libraries' records (not "secretmagic.*") to `target`."""

    def __init__(self, target: logging.Handler, level: int) -> None:
        super().__init__(level)
        self.target = target

    def filter(self, record: logging.LogRecord) -> bool:
        if records.is_ours(record.name):
            return False  # already handled on the "secretmagic" logger
        return bool(super().filter(record))

    def emit(self, record: logging.LogRecord) -> None:
        self.target.handle(record)


_forwarders: dict[int, _LibraryForwarder] = {}
_console: logging.StreamHandler[IO[str]] | None = None
_install_lock = threading.Lock()


def _lower_logger_level(level: int) -> None:
    """Let the "secretmagic" logger pass what a handler of `level` wants (never below DEBUG)."""
    if logger.level == logging.NOTSET or logger.level > level:
        logger.setLevel(max(level, 1))


def install(handler: logging.Handler, *, libraries: int | str | None = logging.WARNING) -> None:
    """Attach `handler` to the "secretmagic" logger; also forward other libraries' records at
    `libraries` and above to it (None: only "secretmagic"). Idempotent."""
    with _install_lock:
        if handler not in logger.handlers:
            logger.addHandler(handler)
        _lower_logger_level(handler.level)
        root = logging.getLogger()
        old = _forwarders.pop(id(handler), None)
        if old is not None:
            root.removeHandler(old)
        if libraries is not None:
            forwarder = _LibraryForwarder(handler, records.level_number(libraries))
            _forwarders[id(handler)] = forwarder
            root.addHandler(forwarder)


def uninstall(handler: logging.Handler) -> None:
    """Detach `handler` from the "secretmagic" logger and the root logger."""
    with _install_lock:
        logger.removeHandler(handler)
        forwarder = _forwarders.pop(id(handler), None)
        if forwarder is not None:
            logging.getLogger().removeHandler(forwarder)


def setup_console(
    level: int | str = logging.INFO,
    *,
    stream: IO[str] | None = None,
    libraries: int | str | None = logging.WARNING,
) -> logging.Handler:
    """One readable line per record on `stream` (stderr). Calling it again updates the level and
    stream of the same handler rather than adding another."""
    global _console
    if _console is None:
        _console = logging.StreamHandler(stream or sys.stderr)
        _console.setFormatter(ConsoleFormatter())
    elif stream is not None:
        _console.setStream(stream)
    _console.setLevel(records.level_number(level))
    install(_console, libraries=libraries)
    return _console
