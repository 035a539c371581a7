"""A simulation of StarRocks' Stream Load protocol, for the store's tests (there is no StarRocks on
these machines; the real one is untested). It answers as STREAM_LOAD.md and
Load_to_Primary_Key_tables.md describe, and keeps the rows in a MariaDB database, which also
serves the store's SQL side (reads, the fence row) over the MySQL protocol:

- FE (127.0.0.1): checks the credentials, answers a PUT with `307 Temporary Redirect` to the BE
  without reading the body (no `100 Continue`).
- BE (`localhost`: another host name, as a real BE has, so a client that drops credentials on a
  host change fails): checks the credentials (401 without them), answers `100 Continue`, reads
  the JSON body (`format: json`, `strip_outer_array`, `jsonpaths`, `columns` with `__op`), and
  applies it in ONE MariaDB transaction as a Primary Key table would: __op 0 upserts the whole
  row (columns the load does not name become NULL), only where `merge_condition`'s column is >=
  the stored one; __op 1 deletes, unconditionally.
- Labels: a label already loaded is refused, `Label Already Exists` / `ExistingJobStatus:
  FINISHED`, and nothing is applied.
- Bad rows (NULL key, a string longer than its column) are filtered: with `max_filter_ratio` 0 the
  load fails (`Status: Fail`, `too many filtered rows`, `NumberFilteredRows`, `ErrorURL`).
- Knobs: `fail_next` (a Fail with that message), `drop_answer_next` (commit, then close the
  connection without an answer: the client must retry and meet its label).
"""

from __future__ import annotations

import base64
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pymysql

from store import parse_dsn
from tests.services import free_port


class StarRocksSim:
    def __init__(self, mysql_dsn: str) -> None:
        d = parse_dsn(mysql_dsn)
        self.mysql = d
        self._auth = "Basic " + base64.b64encode(f"{d.user}:{d.password}".encode()).decode()
        self.labels: dict[str, str] = {}
        self.loads: list[dict[str, Any]] = []  # every answered BE request: label, status, rows
        self.unauthorized = 0  # requests refused for missing or wrong credentials
        self.redirects = 0
        self.fail_next: str | None = None
        self.drop_answer_next = False
        self._lock = threading.Lock()  # one load applied at a time, as one BE tablet would
        self._servers: list[ThreadingHTTPServer] = []

    @property
    def dsn(self) -> str:
        d = self.mysql
        auth = f"{d.user}:{d.password}@" if d.password else f"{d.user}@"
        return f"starrocks://{auth}{d.host}:{d.port}/{d.database}?http_port={self.fe_port}"

    def start(self) -> StarRocksSim:
        sim = self

        class FE(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def handle_expect_100(self) -> bool:
                return True  # no 100 Continue: the FE redirects before any body is sent

            def do_PUT(self) -> None:
                if self.headers.get("Authorization") != sim._auth:
                    sim.unauthorized += 1
                    return _answer(self, 401, {"Status": "Fail", "Message": "Access denied"})
                sim.redirects += 1
                self.send_response(307)
                self.send_header("Location", f"http://localhost:{sim.be_port}{self.path}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                self.close_connection = True

            def log_message(self, *args: object) -> None:
                pass

        class BE(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_PUT(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if self.headers.get("Authorization") != sim._auth:
                    sim.unauthorized += 1
                    return _answer(self, 401, {"Status": "Fail", "Message": "Access denied"})
                table = self.path.split("/")[3]
                answer, drop = sim._load(table, dict(self.headers.items()), body)
                if drop:
                    self.close_connection = True
                    return
                _answer(self, 200, answer)

            def log_message(self, *args: object) -> None:
                pass

        fe = ThreadingHTTPServer(("127.0.0.1", free_port()), FE)
        be = ThreadingHTTPServer(("localhost", free_port()), BE)
        self.fe_port, self.be_port = fe.server_address[1], be.server_address[1]
        for server in (fe, be):
            server.daemon_threads = True
            threading.Thread(target=server.serve_forever, daemon=True).start()
            self._servers.append(server)
        return self

    def close(self) -> None:
        for server in self._servers:
            server.shutdown()
            server.server_close()

    # --- the load ------------------------------------------------------------------------------

    def _load(self, table: str, headers: dict[str, str], body: bytes
              ) -> tuple[dict[str, Any], bool]:
        h = {k.lower(): v for k, v in headers.items()}
        label = h.get("label", "")
        with self._lock:
            base = {"Label": label, "TxnId": len(self.loads) + 1}
            if label in self.labels:
                answer = {**base, "Status": "Label Already Exists",
                          "ExistingJobStatus": self.labels[label],
                          "Message": f"Label [{label}] has already been used."}
            elif self.fail_next is not None:
                answer = {**base, "Status": "Fail", "Message": self.fail_next}
                self.fail_next = None
            else:
                answer = {**base, **self._apply(table, h, json.loads(body))}
                if answer["Status"] == "Success":
                    self.labels[label] = "FINISHED"
            drop, self.drop_answer_next = self.drop_answer_next, False
            self.loads.append({"table": table, "label": label, **answer})
        return answer, drop

    def _apply(self, table: str, h: dict[str, str], data: Any) -> dict[str, Any]:
        rows = data if h.get("strip_outer_array") == "true" else [data]
        paths = [p.removeprefix("$.") for p in json.loads(h["jsonpaths"])]
        names = [c.strip() for c in h["columns"].split(",")]
        assert len(paths) == len(names), "jsonpaths and columns must pair up"
        condition = h.get("merge_condition")
        d = self.mysql
        conn = pymysql.connect(host=d.host, port=d.port, user=d.user or None, password=d.password,
                               database=d.database, charset="utf8mb4")
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT COLUMN_NAME, CHARACTER_MAXIMUM_LENGTH, COLUMN_KEY "
                            "FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() "
                            "AND TABLE_NAME = %s ORDER BY ORDINAL_POSITION", (table,))
                meta = {name: (width, key == "PRI") for name, width, key in cur.fetchall()}
                unknown = [n for n in names if n != "__op" and n not in meta]
                if not meta or unknown:
                    return {"Status": "Fail", "Message": f"Unknown table or columns {unknown}"}
                keys = [n for n, (_, pk) in meta.items() if pk]
                values = [[row.get(p) for p in paths] for row in rows]
                filtered = [v for v in values if not _fits(dict(zip(names, v, strict=True)), meta)]
                if filtered:
                    return {"Status": "Fail", "Message": "too many filtered rows",
                            "NumberTotalRows": len(values), "NumberFilteredRows": len(filtered),
                            "ErrorURL": f"http://localhost:{self.be_port}/api/_load_error_log"
                                        f"?file=error_log_{len(self.loads)}"}
                cols = [n for n in names if n != "__op"]
                op_at = names.index("__op") if "__op" in names else None
                upserts = [[v for n, v in zip(names, row, strict=True) if n != "__op"]
                           for row in values if op_at is None or int(row[op_at] or 0) == 0]
                deletes = [[row[names.index(k)] for k in keys]
                           for row in values if op_at is not None and int(row[op_at] or 0) == 1]
                if upserts:
                    cur.executemany(_upsert_sql(table, cols, list(meta), keys, condition),
                                    upserts)
                if deletes:
                    where = " AND ".join(f"`{k}` = %s" for k in keys)
                    cur.executemany(f"DELETE FROM `{table}` WHERE {where}", deletes)
            conn.commit()
        finally:
            conn.close()
        return {"Status": "Success", "Message": "OK", "NumberTotalRows": len(values),
                "NumberLoadedRows": len(values), "NumberFilteredRows": 0,
                "NumberUnselectedRows": 0}


def _fits(row: dict[str, Any], meta: dict[str, tuple[int | None, bool]]) -> bool:
    for name, value in row.items():
        if name == "__op":
            continue
        width, key = meta[name]
        if value is None and key:
            return False
        if isinstance(value, str) and width is not None and len(value) > width:
            return False
    return True


def _upsert_sql(table: str, cols: list[str], all_cols: list[str], keys: list[str],
                condition: str | None) -> str:
    """A whole-row upsert; with a merge condition, applied only where the new value is >= the
    stored one (the condition's column assigned last, so the others compare with the old)."""
    newer = f"VALUES(`{condition}`) >= `{condition}`" if condition else "TRUE"
    order = [c for c in all_cols if c != condition and c not in keys]
    order += [condition] if condition else []
    sets = ", ".join(
        f"`{c}` = IF({newer}, {f'VALUES(`{c}`)' if c in cols else 'DEFAULT(`' + c + '`)'}, `{c}`)"
        for c in order)
    placeholders = ", ".join(["%s"] * len(cols))
    return (f"INSERT INTO `{table}` ({', '.join(f'`{c}`' for c in cols)}) VALUES ({placeholders})"
            f" ON DUPLICATE KEY UPDATE {sets}")


def _answer(handler: BaseHTTPRequestHandler, status: int, answer: dict[str, Any]) -> None:
    content = json.dumps(answer).encode()
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(content)))
    handler.end_headers()
    handler.wfile.write(content)
