"""How secretmagic logs: one logger, "secretmagic", and records that carry three fields besides
the message (the seed's «Dual logging»: the console and the PostgreSQL table both show them):

    category   what it is about: "messenger", "store", "config", ... (the seed's SQL filters on it)
    context    a dict of details: stream, entry_id, event_id, event_type, client_id, duration_ms
    error      the error text, when there is one

    log = core.logs.get("messenger")
    log.info("event handled", stream=stream, entry_id=entry_id, duration_ms=12.5)
    log.error("event dead-lettered", error=exc, stream=stream)

Formatting and the sinks (console, PostgreSQL) are app.observability's; this module only makes
the records, so every layer can log the same way.
"""

from __future__ import annotations

import logging
from typing import Any

LOGGER_NAME = "secretmagic"


def error_text(error: BaseException | str | None) -> str | None:
    """`ValueError: boom` for an exception, the string itself for a string."""
    if error is None or isinstance(error, str):
        return error
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


ExcInfo = bool | BaseException | None


class Log:
    """The "secretmagic" logger for one category; keyword arguments become the context."""

    def __init__(self, category: str, **context: Any) -> None:
        self.logger = logging.getLogger(LOGGER_NAME)
        self.category = category
        self.context = context

    def bind(self, **context: Any) -> Log:
        """The same category with more fixed context (e.g. the consumer group)."""
        return Log(self.category, **self.context, **context)

    def enabled(self, level: int) -> bool:
        """Would a record at `level` be handled? (Skip building a costly context when not.)"""
        return self.logger.isEnabledFor(level)

    def log(self, level: int, msg: str, *args: object, exc_info: ExcInfo = None,
            **context: Any) -> None:
        if not self.logger.isEnabledFor(level):
            return
        error = error_text(context.pop("error", None))
        self.logger.log(level, msg, *args, exc_info=exc_info, stacklevel=3, extra={
            "category": self.category, "context": {**self.context, **context}, "error": error})

    def debug(self, msg: str, *args: object, exc_info: ExcInfo = None, **context: Any) -> None:
        self.log(logging.DEBUG, msg, *args, exc_info=exc_info, **context)

    def info(self, msg: str, *args: object, exc_info: ExcInfo = None, **context: Any) -> None:
        self.log(logging.INFO, msg, *args, exc_info=exc_info, **context)

    def warning(self, msg: str, *args: object, exc_info: ExcInfo = None, **context: Any) -> None:
        self.log(logging.WARNING, msg, *args, exc_info=exc_info, **context)

    def error(self, msg: str, *args: object, exc_info: ExcInfo = None, **context: Any) -> None:
        self.log(logging.ERROR, msg, *args, exc_info=exc_info, **context)

    def critical(self, msg: str, *args: object, exc_info: ExcInfo = None, **context: Any) -> None:
        self.log(logging.CRITICAL, msg, *args, exc_info=exc_info, **context)

    def exception(self, msg: str, *args: object, **context: Any) -> None:
        self.log(logging.ERROR, msg, *args, exc_info=True, **context)


def get(category: str, **context: Any) -> Log:
    return Log(category, **context)
