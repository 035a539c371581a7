"""What a command works with: its output streams, the settings, the messenger's Redis.

main() makes one Session per run and hands it to typer as the context object; a command gets it
with `Session.of(ctx)`. The settings and the Redis connection are made on first use, so a command
that never touches `session.redis` (logs, recompute) runs with the messenger unset.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from functools import cached_property
from typing import IO, Any, Protocol, TypeVar

import redis
import typer
from pydantic import SecretStr

from app import ops
from app.cli.errors import EXIT_CONFIG, CliError
from app.cli.output import compact, table
from core.redact import secrets_of
from settings import Settings, SettingsError, load_settings


class Listed(Protocol):
    def as_dict(self) -> dict[str, Any]: ...


Item = TypeVar("Item", bound=Listed)


class Session:
    def __init__(self, out: IO[str], err: IO[str], stdin: IO[str]) -> None:
        self.out, self.err, self.stdin = out, err, stdin
        self.endpoint = "the messenger's Redis"  # named in errors once known
        self.secrets: list[str] = []  # masked in any error line

    @staticmethod
    def of(ctx: typer.Context) -> Session:
        session = ctx.find_object(Session)
        assert session is not None, "commands run through app.cli.main(), which makes a Session"
        return session

    @cached_property
    def settings(self) -> Settings:
        try:
            return load_settings()
        except SettingsError as exc:
            raise CliError(str(exc), EXIT_CONFIG) from None

    @cached_property
    def redis(self) -> redis.Redis:
        """A bytes client for MESSENGER_*, failing fast (ops.connect)."""
        messenger = self.settings.messenger
        if messenger is None:
            raise CliError(
                "the messenger is not configured: MESSENGER_HOST is unset (set MESSENGER_HOST, "
                "and MESSENGER_PORT/MESSENGER_PASSWORD/MESSENGER_DB as needed)",
                EXIT_CONFIG,
            )
        self.endpoint = f"{messenger.host}:{messenger.port}"
        if messenger.password:
            self.secrets.append(messenger.password.get_secret_value())
        return ops.connect(messenger)

    def dsn(self, value: SecretStr) -> str:
        """A DSN setting's value; its passwords join the secrets masked in errors."""
        dsn = value.get_secret_value()
        self.secrets += secrets_of(dsn)
        return dsn

    def print(self, line: str = "") -> None:
        self.out.write(line + "\n")
        self.out.flush()  # tail --follow: each entry as it comes

    def json(self, value: Any, *, lines: bool = False) -> None:
        """Indented JSON, or (`lines`) one compact object per line for streaming output."""
        if lines:
            self.print(compact(value))
        else:
            self.print(json.dumps(value, ensure_ascii=False, indent=2))

    def listing(self, items: Sequence[Item], *, as_json: bool, empty: str,
                headers: Sequence[str], row: Callable[[Item], Sequence[object]]) -> None:
        """A list of ops results: a JSON array of their as_dict(), a line saying there are
        none, or a table of one row per item."""
        if as_json:
            self.json([item.as_dict() for item in items])
        elif not items:
            self.print(empty)
        else:
            self.print(table(headers, [row(item) for item in items]))

    def confirm(self, question: str, refusal: str) -> bool:
        """Ask `question [y/N]` on stderr and read the answer; without a terminal to ask on,
        fail with `refusal` (a script must say --yes)."""
        if not self.stdin.isatty():
            raise CliError(refusal, EXIT_CONFIG)
        self.err.write(f"{question} [y/N] ")
        self.err.flush()
        return self.stdin.readline().strip().lower() in ("y", "yes")
