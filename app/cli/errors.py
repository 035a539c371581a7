"""Every way a command can fail, as one line for stderr and an exit code.

Exit code 1: the request failed (no such stream/group/entry, Redis or PostgreSQL unreachable).
Exit code 2: the command cannot work as invoked: bad arguments, bad environment, the messenger or
log table not configured, authentication refused.
"""

from __future__ import annotations

import re
from typing import Protocol, cast

import redis
import typer

from app import ops

EXIT_FAILED = 1
EXIT_CONFIG = 2


class CliError(Exception):
    """A command's own one-line error and its exit code."""

    def __init__(self, message: str, code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.code = code


# Typer re-exports BadParameter but not its base, the (vendored) Click UsageError that every
# parse error is: a missing argument, an unknown option or command, a bad value. Typer's copy of
# Click is private, so the base is reached through the public class.
UsageError = cast(type[Exception], typer.BadParameter.__mro__[1])


class _Usage(Protocol):
    """What a UsageError carries: its message and the (sub)command it is about."""

    ctx: typer.Context | None

    def format_message(self) -> str: ...


def usage_line(exc: Exception, prog: str) -> str:
    """`secretmagic groups: error: Missing argument 'STREAM'. (see secretmagic groups --help)`"""
    usage = cast(_Usage, exc)
    where = usage.ctx.command_path if usage.ctx is not None else prog
    return f"{where}: error: {usage.format_message()} (see {where} --help)"


_CONNECT_PREFIX = re.compile(r"^Error \S+ (connecting to|while reading from) \S+?\.? ")


def describe(exc: Exception, endpoint: str) -> tuple[str, int]:
    """The line (without the program name) and exit code for a failure; `endpoint` names the
    Redis the command talked to."""
    if isinstance(exc, CliError):
        return str(exc), exc.code
    if isinstance(exc, ops.LogsAuthFailed):
        return str(exc), EXIT_CONFIG
    if isinstance(exc, ops.MonitorError):
        return str(exc), EXIT_FAILED
    if isinstance(exc, redis.AuthenticationError | redis.AuthenticationWrongNumberOfArgsError):
        reason = str(exc).strip() or "rejected"
        return (
            f"authentication failed for {endpoint}: {reason} (check MESSENGER_PASSWORD)",
            EXIT_CONFIG,
        )
    if isinstance(exc, redis.ConnectionError | redis.TimeoutError):
        reason = _CONNECT_PREFIX.sub("", str(exc)).strip() or type(exc).__name__
        return f"cannot reach Redis at {endpoint}: {reason}", EXIT_FAILED
    if isinstance(exc, redis.ResponseError):
        return f"Redis at {endpoint} answered: {exc}", EXIT_FAILED
    return f"unexpected error: {type(exc).__name__}: {exc}", EXIT_FAILED
