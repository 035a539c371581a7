"""StarRocks Stream Load: the HTTP protocol of its bulk loads, as its documentation describes it
(STREAM_LOAD.md). TESTED ONLY AGAINST A SIMULATION of that protocol (tests/starrocks_sim.py):
there is no StarRocks on the machines this was written on.

    PUT http://<fe>:<http_port>/api/<db>/<table>/_stream_load
        Authorization: Basic ..., Expect: 100-continue, label: ..., format: json, ...
    FE  -> 307 Temporary Redirect, Location: http://<be>:8040/api/<db>/<table>/_stream_load?...
    BE  -> 100 Continue, then (body sent) 200 {"Status": "Success", "NumberLoadedRows": ..., ...}

- The redirect is followed WITH the credentials (curl's --location-trusted; Python `requests`
  and `urllib` drop or refuse them when the host changes). Up to 3 redirects.
- `Expect: 100-continue`: the body goes only to the server that answers 100 Continue, not to the
  FE that redirects; a server that ignores Expect gets it after 2 s, as curl does.
- The answer's JSON is checked: Status Success (or Publish Timeout: committed, visible soon) with
  NumberFilteredRows 0 is a load done; "Label Already Exists" with ExistingJobStatus
  FINISHED/VISIBLE/COMMITTED is a retry of a load already done (counted as success, `duplicate`);
  one still RUNNING is retried later; Fail raises with its Message and ErrorURL (FatalError, or
  RetryableError when the message says it is transient: timeouts, "too many versions", memory).
- Connection refused, reset or timed out: Unavailable.
"""

from __future__ import annotations

import base64
import json
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from core.errors import FatalError, RetryableError, Unavailable
from store.mysql.pool import TRANSIENT_WORDS

_DONE = frozenset({"FINISHED", "VISIBLE", "COMMITTED"})
_CONTINUE_WAIT_S = 2.0
_MAX_REDIRECTS = 3


@dataclass(frozen=True)
class LoadResult:
    label: str
    rows: int  # NumberLoadedRows (of this attempt; 0 for a duplicate)
    duplicate: bool  # the label had been loaded before: this retry changed nothing


class _Reader:
    """Reads one HTTP/1.1 response head (and body) from a socket, byte-exact."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock, self.buffer = sock, b""

    def _fill(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionResetError("the server closed the connection mid-answer")
        self.buffer += chunk

    def head(self) -> tuple[int, dict[str, str]]:
        while b"\r\n\r\n" not in self.buffer:
            self._fill()
        raw, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        status_line, *lines = raw.decode("latin-1").split("\r\n")
        headers = {}
        for line in lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        return int(status_line.split()[1]), headers

    def body(self, headers: Mapping[str, str]) -> bytes:
        if headers.get("transfer-encoding", "").lower() == "chunked":
            out = b""
            while True:
                while b"\r\n" not in self.buffer:
                    self._fill()
                size_line, self.buffer = self.buffer.split(b"\r\n", 1)
                size = int(size_line.split(b";")[0], 16)
                while len(self.buffer) < size + 2:
                    self._fill()
                out, self.buffer = out + self.buffer[:size], self.buffer[size + 2:]
                if size == 0:
                    return out
        length = int(headers.get("content-length", "0"))
        while len(self.buffer) < length:
            self._fill()
        return self.buffer[:length]


def _put(url: str, headers: dict[str, str], body: bytes, timeout: float
         ) -> tuple[int, dict[str, str], bytes]:
    parts = urlsplit(url)
    host, port = parts.hostname or "", parts.port or 80
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    with socket.create_connection((host, port), timeout=timeout) as sock:
        head = [f"PUT {target} HTTP/1.1", f"Host: {host}:{port}", "Connection: close",
                f"Content-Length: {len(body)}", "Expect: 100-continue",
                *(f"{k}: {v}" for k, v in headers.items())]
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode("utf-8"))
        reader = _Reader(sock)
        sock.settimeout(_CONTINUE_WAIT_S)
        try:
            status, answer = reader.head()
        except TimeoutError:  # the server ignores Expect and waits for the body
            status, answer = 100, {}
        sock.settimeout(timeout)
        if status == 100:
            sock.sendall(body)
            status, answer = reader.head()
        return status, answer, reader.body(answer)


class StreamLoader:
    """Stream Load into one database of a StarRocks cluster through its FE."""

    def __init__(self, host: str, port: int, user: str, password: str, database: str,
                 timeout: float = 600) -> None:
        self.base = f"http://{host}:{port}/api/{database}"
        token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
        self._auth = f"Basic {token}"
        self.timeout = timeout
        self.where = f"starrocks stream load at {host}:{port}/{database}"

    def load(self, table: str, label: str, body: bytes, headers: Mapping[str, str]) -> LoadResult:
        """One load (blocking: run it on a worker thread). Raises the app's error kinds."""
        url = f"{self.base}/{table}/_stream_load"
        sent = {"Authorization": self._auth, "label": label, **headers}
        try:
            for _ in range(_MAX_REDIRECTS + 1):
                status, answer, content = _put(url, sent, body, self.timeout)
                if status not in (301, 302, 303, 307, 308):
                    break
                url = answer.get("location", "")  # credentials go along: location-trusted
                if not url.startswith("http"):
                    raise FatalError(f"{self.where}: redirect without a usable Location ({url!r})")
            else:
                raise FatalError(f"{self.where}: more than {_MAX_REDIRECTS} redirects for {table}")
        except (OSError, TimeoutError) as exc:
            raise Unavailable(f"{self.where} unavailable during load {table}: "
                              f"{type(exc).__name__}: {exc}") from None
        return self._result(table, label, status, content)

    def _result(self, table: str, label: str, status: int, content: bytes) -> LoadResult:
        what = f"{self.where}: load {table} (label {label})"
        if status in (401, 403):
            raise FatalError(f"{what} refused: HTTP {status} {content[:300]!r}")
        try:
            answer: dict[str, Any] = json.loads(content)
        except ValueError:
            raise RetryableError(f"{what}: HTTP {status}, not a JSON answer: "
                                 f"{content[:300]!r}") from None
        state, message = answer.get("Status"), answer.get("Message", "")
        filtered = int(answer.get("NumberFilteredRows") or 0)
        detail = f"{message} (filtered rows: {filtered}, ErrorURL: {answer.get('ErrorURL')})"
        if state in ("Success", "Publish Timeout") and filtered == 0:
            return LoadResult(label, int(answer.get("NumberLoadedRows") or 0), duplicate=False)
        if state == "Label Already Exists":
            if answer.get("ExistingJobStatus") in _DONE:
                return LoadResult(label, 0, duplicate=True)
            raise RetryableError(f"{what}: an earlier load with this label is still "
                                 f"{answer.get('ExistingJobStatus')}; try again later")
        if filtered == 0 and any(w in str(message).lower() for w in TRANSIENT_WORDS):
            raise RetryableError(f"{what} failed transiently: {detail}")
        raise FatalError(f"{what} failed ({state}): {detail}")
