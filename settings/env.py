"""Immutable settings: the environment (and Docker secrets), read once at start.

The seed's variables name the Redis of the messenger (MESSENGER_HOST/PORT/PASSWORD/DB; a cluster,
a sentinel setup, an ACL user and TLS are settings.messenger's); with no MESSENGER_* variable set
the messenger is off and the service runs without Redis. Secrets are SecretStr: they never appear
in reprs, logs or errors. A bad value fails at start with the variable named.

The mutable part (configs/config.dev.yaml, hot-reloaded) is settings.config and settings.live.
"""

from __future__ import annotations

import os
import socket
import uuid
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from core.redact import IDENTIFIER
from settings.messenger import MessengerSettings

# The seed's four variables (standalone Redis); settings.messenger documents the others.
MESSENGER_VARS = ("MESSENGER_HOST", "MESSENGER_PORT", "MESSENGER_PASSWORD", "MESSENGER_DB")


class SettingsError(ValueError):
    """An invalid environment; the message names each bad variable (never a secret's value)."""


class Settings(BaseSettings):
    """Everything else that is fixed for the life of the process."""

    model_config = SettingsConfigDict(extra="ignore")

    store_dsn: SecretStr = Field(
        SecretStr("chdb://./data/chdb"),
        description="Analytical store: chdb://PATH (embedded), clickhouse://, mysql://, starrocks://",
    )
    logs_dsn: SecretStr | None = Field(None, description="PostgreSQL for the logs; unset = off")
    logs_schema: str = Field("secretmagic", pattern=IDENTIFIER)
    logs_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    logs_buffer: int = Field(10_000, ge=1, description="Log records kept while PostgreSQL is down")
    secretmagic_config: Path = Field(Path("configs/config.dev.yaml"), description="Mutable YAML")
    secretmagic_consumer: str = Field(
        default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}",
        description="This instance's consumer name in the group (unique per instance)",
    )
    metrics_port: int = Field(9108, ge=0, le=65535, description="/metrics and /health; 0 = off")
    shutdown_timeout: float = Field(30.0, gt=0, description="Seconds in-flight handlers get")
    outbox_path: Path = Field(Path("data/outbox.sqlite3"))
    outbox_max_entries: int = Field(100_000, ge=1)
    outbox_strict: bool = Field(False, description="Raise instead of queueing when Redis is down")

    messenger: MessengerSettings | None = Field(None, exclude=True)


def messenger_configured() -> bool:
    """Is any MESSENGER_* variable set? With none, the messenger is off (seed «Отключение»)."""
    return any(value for name, value in os.environ.items() if name.startswith("MESSENGER_"))


def load_settings() -> Settings:
    """Read and validate the environment; raise SettingsError naming every bad variable."""
    try:
        settings = Settings()
        if messenger_configured():
            settings.messenger = MessengerSettings()
    except ValidationError as exc:
        raise SettingsError(_describe(exc)) from None
    return settings


def _describe(exc: ValidationError) -> str:
    prefix = "MESSENGER_" if exc.title == MessengerSettings.__name__ else ""
    problems = []
    for error in exc.errors():
        if not error["loc"]:  # a rule across variables: its text names them
            problems.append(error["msg"].removeprefix("Value error, "))
            continue
        variable = f"{prefix}{error['loc'][0]}".upper()
        secret = "PASSWORD" in variable or "DSN" in variable
        shown = "" if secret or error["type"] == "missing" else f" (got {error['input']!r})"
        reason = error["msg"].removeprefix("Value error, ")
        if error["type"] == "missing" and prefix:
            reason += " when any MESSENGER_* variable is set (unset them all: messenger off)"
        problems.append(f"{variable}: {reason}{shown}")
    return "invalid environment: " + "; ".join(problems)
