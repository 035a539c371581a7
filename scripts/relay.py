"""A TCP relay in front of the store server, to make the store fail for real for a moment.

The demo's workers (and tests/system/test_e2e.py's) reach the MySQL-protocol store through it;
`cut()` drops every relayed connection and refuses new ones until `restore()`.
"""

from __future__ import annotations

import contextlib
import socket
import threading

from scripts.servers import HOST


class StoreRelay:
    """A TCP relay 127.0.0.1:<port> -> the store server; `cut()` makes the store unreachable.

    While cut, every relayed connection is closed and new ones are accepted and closed at once:
    pymysql sees a lost connection (errno 2013), which the store reports as Unavailable.
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
