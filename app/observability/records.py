"""What a log record shows, whoever logged it: the fields of a console line and of a table row.

Records made by core.logs carry `category`, `context` and `error` attributes. Plain stdlib calls
and other libraries' records (FastStream, asyncpg, ...) are shown the same way: their category is
the logger name's first part ("app" for "secretmagic" itself and the root logger), their context
the non-standard attributes they carry, their error the exception they were logged with.
"""

from __future__ import annotations

import json
import logging
import traceback
from collections.abc import Mapping
from typing import Any

from core.logs import LOGGER_NAME, error_text

# Attributes every LogRecord has; anything else on a record came from `extra`.
_STANDARD_ATTRS = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}
_OWN_ATTRS = frozenset({"category", "context", "error"})


def is_ours(name: str) -> bool:
    """Whether a logger name is "secretmagic" or one of its children."""
    return name == LOGGER_NAME or name.startswith(LOGGER_NAME + ".")


def category(record: logging.LogRecord) -> str:
    given = getattr(record, "category", None)
    if isinstance(given, str) and given:
        return given
    name = record.name
    if name in (LOGGER_NAME, "root", ""):
        return "app"
    if name.startswith(LOGGER_NAME + "."):
        name = name[len(LOGGER_NAME) + 1 :]
    return name.split(".", 1)[0] or "app"


def context(record: logging.LogRecord) -> dict[str, Any]:
    given = getattr(record, "context", None)
    if isinstance(given, Mapping):
        return dict(given)
    if given is not None:
        return {"context": given}
    # A record without our context (FastStream, another library, a bare `extra`): keep its extras.
    extras = {k: v for k, v in record.__dict__.items()
              if k not in _STANDARD_ATTRS and k not in _OWN_ATTRS and not k.startswith("_")}
    if not is_ours(record.name):
        extras["logger"] = record.name
    return extras


def error(record: logging.LogRecord, *, full: bool) -> str | None:
    """The record's error text; with `full`, an exception's traceback rather than its last line."""
    given = getattr(record, "error", None)
    if given is not None:
        return given if isinstance(given, str) else error_text(given)
    exc_info = record.exc_info
    if exc_info and exc_info[1] is not None:
        if full:
            return "".join(traceback.format_exception(*exc_info)).rstrip()
        return error_text(exc_info[1])
    details = getattr(record, "context", None)
    if isinstance(details, Mapping) and isinstance(details.get("error"), str):
        return str(details["error"])
    return None


def message(record: logging.LogRecord) -> str:
    try:
        return record.getMessage()
    except Exception:  # bad %-arguments: keep what there is rather than lose the record
        return f"{record.msg} {record.args!r}"


def to_json(value: Any) -> str:
    """Compact JSON of any value (str() for what JSON lacks), never with a NUL character."""
    try:
        text = _dumps(value)
    except (TypeError, ValueError):  # keys that are not strings, circular references
        text = _dumps(_plain(value))
    if "\\u0000" in text:  # PostgreSQL's jsonb refuses NUL characters
        text = _dumps(no_nul(json.loads(text)))
    return text


def no_nul(value: Any) -> Any:
    """`value` with each NUL in its strings (keys included) spelled `\\x00`."""
    if isinstance(value, str):
        return value.replace("\x00", "\\x00")
    if isinstance(value, dict):
        return {no_nul(k): no_nul(v) for k, v in value.items()}
    if isinstance(value, list):
        return [no_nul(v) for v in value]
    return value


def _dumps(value: Any) -> str:
    return json.dumps(value, default=str, ensure_ascii=False, separators=(",", ":"))


def _plain(value: Any, depth: int = 0) -> Any:
    if depth > 20:
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): _plain(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_plain(v, depth + 1) for v in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def level_number(level: int | str) -> int:
    """logging.INFO for "info" or "INFO"; an unknown name is an error naming it."""
    if isinstance(level, int):
        return level
    value = logging.getLevelName(level.strip().upper())
    if not isinstance(value, int):
        raise ValueError(f"unknown log level {level!r}")
    return value
