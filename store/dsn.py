"""Store DSNs, parsed and validated without I/O: errors name the problem, the password masked."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final
from urllib.parse import parse_qsl, unquote, urlsplit

from core.redact import is_identifier, mask_dsn

__all__ = ["DEFAULT_PORTS", "OPTIONS", "SCHEMES", "StoreDSN", "parse_dsn"]

SCHEMES: Final = ("chdb", "clickhouse", "clickhouses", "mysql", "starrocks")
DEFAULT_PORTS: Final = {"clickhouse": 8123, "clickhouses": 8443, "mysql": 3306, "starrocks": 9030}
# Options a DSN may carry as query parameters, per scheme (anything else is a typo: ValueError).
OPTIONS: Final[Mapping[str, frozenset[str]]] = {
    "chdb": frozenset({"database"}),
    "clickhouse": frozenset({"connect_timeout", "send_receive_timeout"}),
    "clickhouses": frozenset({"connect_timeout", "send_receive_timeout", "verify"}),
    "mysql": frozenset(
        {"pool_size", "connect_timeout", "read_timeout", "write_timeout",
         "batch_rows", "batch_bytes", "read", "write"}
    ),
    "starrocks": frozenset(
        {"pool_size", "connect_timeout", "read_timeout", "write_timeout", "read", "http_port",
         "load_timeout"}
    ),
}


@dataclass(frozen=True)
class StoreDSN:
    """A parsed, validated store DSN. `password` stays out of repr."""

    scheme: str
    host: str = ""
    port: int = 0
    user: str = ""
    password: str = field(default="", repr=False)
    database: str = ""
    path: str = ""  # chdb only: "" = in memory, else a directory
    options: Mapping[str, str] = field(default_factory=dict)
    masked: str = ""

    @property
    def where(self) -> str:
        """Host and port (or the chDB location) for error messages."""
        if self.scheme == "chdb":
            return self.path or ":memory:"
        return f"{self.host}:{self.port}"

    def choice(self, name: str, allowed: tuple[str, ...]) -> str:
        """A word option: one of `allowed`, the first by default."""
        value = self.options.get(name, allowed[0])
        if value not in allowed:
            raise ValueError(f"store DSN option {name}={value!r} must be one of {allowed} "
                             f"in {self.masked}")
        return value

    def option(self, name: str, default: float) -> float:
        raw = self.options.get(name)
        if raw is None:
            return default
        try:
            value = float(raw)
        except ValueError:
            raise ValueError(
                f"store DSN option {name}={raw!r} is not a number in {self.masked}"
            ) from None
        if value <= 0:
            raise ValueError(f"store DSN option {name}={raw!r} must be positive in {self.masked}")
        return value


def parse_dsn(dsn: str) -> StoreDSN:
    """Validate a store DSN; ValueError naming the problem (password masked) if it is wrong."""
    if not isinstance(dsn, str):
        raise ValueError(f"store DSN must be a string, got {type(dsn).__name__}")
    masked = mask_dsn(dsn)
    scheme, sep, _ = dsn.partition("://")
    scheme = scheme.lower()
    if not sep or scheme not in SCHEMES:
        shown = scheme if sep and len(scheme) <= 30 else masked
        raise ValueError(
            f"unsupported store DSN scheme {shown!r}: expected one of "
            f"{', '.join(s + '://' for s in SCHEMES)} (DSN: {masked})"
        )
    try:
        parts = urlsplit(dsn)
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"invalid port in store DSN {masked} ({exc})") from None
    if parts.fragment:
        raise ValueError(f"store DSN must not have a #fragment: {masked}")
    try:
        query = parts.query
        options = dict(parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query)))
    except ValueError:
        raise ValueError(f"malformed query string in store DSN {masked}") from None
    allowed = OPTIONS[scheme]
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise ValueError(
            f"unknown option(s) {unknown} in {scheme} store DSN {masked}; "
            f"allowed: {sorted(allowed)}"
        )

    if scheme == "chdb":
        if parts.username is not None or parts.password is not None or port is not None:
            raise ValueError(f"a chdb:// DSN takes a path, not a user, password or port: {masked}")
        location = unquote(parts.netloc + parts.path)
        if location in ("memory", ":memory:"):
            location = ""
        database = options.pop("database", "secretmagic")
        if not is_identifier(database):
            raise ValueError(f"invalid database name {database!r} in store DSN {masked}")
        return StoreDSN(scheme, path=location, database=database, options=options, masked=masked)

    host = parts.hostname or ""
    if not host:
        raise ValueError(f"store DSN needs a host: {masked}")
    if port is None:
        port = DEFAULT_PORTS[scheme]
    if not 0 < port < 65536:
        raise ValueError(f"invalid port {port} in store DSN {masked}")
    database = unquote(parts.path.lstrip("/"))
    if scheme in ("mysql", "starrocks"):
        if not database:
            raise ValueError(f"store DSN needs a database (…/dbname): {masked}")
        if "/" in database or len(database) > 64:
            raise ValueError(f"invalid database name {database!r} in store DSN {masked}")
    else:
        database = database or "default"
        if not is_identifier(database):
            raise ValueError(f"invalid database name {database!r} in store DSN {masked}")
    return StoreDSN(
        scheme,
        host=host,
        port=port,
        user=unquote(parts.username or ""),
        password=unquote(parts.password or ""),
        database=database,
        options=options,
        masked=masked,
    )
