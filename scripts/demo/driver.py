"""The demo's steps, in order (scripts.demo says what each shows): services, a clean slate, the
integrator's data, the workers, the downstream consumers, the events, the transient store
failure, the stop; then the summary."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from core.wire import text
from scripts import integrator as integ
from scripts.demo import checks, setup, summary
from scripts.demo.render import clip, shown
from scripts.demo.watch import DemoFailed, Watch
from scripts.flow import CONFIG, DOWNSTREAM, ERRORS, GROUP, IN_STREAMS, STREAM_OF, short
from scripts.processes import AppProcess, Process
from scripts.relay import StoreRelay
from scripts.servers import free_port

ROOT = Path(__file__).resolve().parent.parent.parent
RUN_DIR = ROOT / "data" / "demo"  # logs, reports, outboxes, the embedded store
LATE_STOCK_CLIENT = "client-globex"


class Demo:
    def __init__(self, out: IO[str], timeout: float, embedded: bool = False,
                 run_dir: Path = RUN_DIR) -> None:
        self.out, self.embedded, self.run_dir = out, embedded, run_dir
        self.t0 = time.monotonic()
        self.deadline = self.t0 + timeout
        self.found: setup.Services | None = None
        self.watch: Watch | None = None
        self.relay: StoreRelay | None = None
        self.apps: list[AppProcess] = []
        self.downstream: list[Process] = []
        self.children: list[Process] = []
        self.metrics_ports: dict[str, int] = {}
        self.published = integ.Published()
        self.log_since: datetime | None = None
        self.retry: dict[str, Any] | None = None
        self.instance_metrics: dict[str, dict[str, dict[str, int]]] = {}
        self.reports: dict[str, dict[str, Any]] = {}
        self.integrator_rows: dict[str, dict[str, int]] = {}
        self.exit_codes: dict[str, int | None] = {}

    def say(self, message: str = "") -> None:
        self.out.write(message + "\n")
        self.out.flush()

    @property
    def w(self) -> Watch:
        assert self.watch, "find_services() first"
        return self.watch

    # --- the run ---------------------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        self.say("secretmagic demo: integrator -> secretmagic -> trainer / analytics "
                 "(the seed's «Messenger» flow)")
        self.prepare_run_dir()
        found = self.find_services()
        two = found.store.server
        setup.clean_slate(self.w.r, private=found.redis.private, say=self.say)

        integrator = self.spawn(Process("integrator", [
            sys.executable, "-m", "scripts.integrator", "data", "--store", found.store.dsn],
            found.redis.env(), self.run_dir))
        if two:
            self.relay = StoreRelay(found.store.host, found.store.port).start()
            self.start_apps(2, self.relay.dsn(found.store.dsn))
        self.wait_integrator(integrator)
        if not two:
            self.start_apps(1, found.store.dsn)
        self.wait_apps_ready()
        if two:
            for group in DOWNSTREAM:
                self.start_downstream(group)

        self.say(f"{self.w.stamp()} integrator: products_updated for {len(integ.CLIENTS)} "
                 "clients (metadata first: features skip inactive products)")
        integ.publish_products(self.w.r, self.published)
        self.w.wait_drained({GROUP: (STREAM_OF["products_updated"],)},
                            "product metadata refreshed")

        before = len(self.published.entries)
        integ.publish_facts(self.w.r, self.published)
        wave = self.published.entries[before:]
        counts = {short(s): sum(1 for e in wave if e[0] == s) for s in IN_STREAMS}
        self.say(f"{self.w.stamp()} integrator: "
                 + ", ".join(f"{n} {name}" for name, n in counts.items() if n)
                 + " events (plain XADD, a MULTI/EXEC batch per client), one malformed; "
                 f"{integ.CYCLE_CLIENT}'s BOM has a cycle")
        self.w.wait_drained({GROUP: IN_STREAMS}, "every incoming event settled")

        if two:
            self.transient_failure()
            self.w.wait_drained(DOWNSTREAM, "downstream consumed everything")
        else:
            self.say(f"{self.w.stamp()} transient store failure: skipped — the embedded chDB "
                     "store lives inside the worker process; it needs a store server")
        self.scrape_metrics()
        self.stop_apps()
        if not two:
            for group in DOWNSTREAM:  # one at a time: each opens the embedded store
                child = self.start_downstream(group)
                self.w.wait_drained({group: DOWNSTREAM[group]}, f"{group} consumed everything")
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

    def find_services(self) -> setup.Services:
        self.say("services:" + (" embedded only (--embedded: as on a machine with none)"
                                if self.embedded else ""))
        try:
            self.found = found = setup.find(self.run_dir, embedded=self.embedded, say=self.say)
        except Exception as exc:
            raise DemoFailed(f"services: {exc}") from None
        self.watch = Watch(self.out, found.redis.client(), self.deadline, self.t0)
        if found.store.server:
            self.say("  plan:       two secretmagic instances share the store server; "
                     "downstream reads it while they run")
        else:
            self.say("  plan:       embedded store, one process at a time: integrator writes, "
                     "ONE secretmagic instance works, then downstream reads")
        if found.logs:
            try:
                self.log_since = asyncio.run(summary.pg_now(found.logs.dsn))
            except Exception as exc:
                raise DemoFailed(f"PostgreSQL ({found.logs_label}) is not usable: "
                                 f"{type(exc).__name__}: {exc}") from None
        return found

    def spawn(self, child: Process) -> Process:
        self.children.append(child.start())
        return child

    def wait_integrator(self, child: Process) -> None:
        try:
            code = child.wait(max(self.deadline - time.monotonic(), 1))
        except subprocess.TimeoutExpired:
            raise DemoFailed("the integrator did not finish writing the data set in time:\n"
                             + child.tail()) from None
        if code != 0:
            raise DemoFailed(f"the integrator failed (exit {code}):\n" + child.tail())
        for ln in reversed(child.output.splitlines()):
            if ln.startswith("{"):
                self.integrator_rows = json.loads(ln)["written"]
                break
        totals: dict[str, int] = {}
        for tables in self.integrator_rows.values():
            for name, n in tables.items():
                totals[name] = totals.get(name, 0) + n
        self.say(f"{self.w.stamp()} integrator: wrote {len(self.integrator_rows)} clients' data "
                 "into the store: " + ", ".join(f"{name} {n:,} rows"
                                                for name, n in totals.items()))

    def start_apps(self, count: int, store_dsn: str) -> None:
        assert self.found
        for i in range(1, count + 1):
            name = f"secretmagic-instance-{i}"
            port = free_port()
            env = {**self.found.redis.env(), "STORE_DSN": store_dsn,
                   "SECRETMAGIC_CONFIG": str(CONFIG), "METRICS_PORT": str(port)}
            if self.found.logs:
                env["LOGS_DSN"] = self.found.logs.dsn
            app = AppProcess("app:app", env, self.run_dir, name)
            self.apps.append(app)
            self.spawn(app)
            self.metrics_ports[name] = port
        self.w.apps = list(self.apps)
        via = " through the demo's store relay" if self.relay else ""
        self.say(f"{self.w.stamp()} secretmagic: starting {count} x `faststream run app:app` in "
                 f"{GROUP}{via} ({', '.join(a.name for a in self.apps)})")

    def wait_apps_ready(self) -> None:
        ready = "FastStream app started successfully"
        self.w.wait_for(lambda: all(ready in a.output for a in self.apps),
                        "secretmagic instances started", progress=False)
        self.say(f"{self.w.stamp()} secretmagic: {len(self.apps)} instance(s) consuming "
                 f"{', '.join(IN_STREAMS)}")

    def start_downstream(self, group: str) -> Process:
        assert self.found
        name = group.removesuffix("-group") + "-1"
        argv = [sys.executable, "-m", "scripts.downstream", "--group", group,
                "--consumer", name, "--store", self.found.store.dsn,
                "--report", str(self.run_dir / f"{name}.json")]
        for stream in DOWNSTREAM[group]:
            argv += ["--stream", stream]
        child = self.spawn(Process(name, argv, self.found.redis.env(), self.run_dir))
        self.downstream.append(child)
        self.w.downstream = list(self.downstream)
        self.say(f"{self.w.stamp()} downstream: {name} in {group} reading "
                 f"{', '.join(DOWNSTREAM[group])} (a FastStream subscriber per stream)")
        return child

    # --- the transient store failure -------------------------------------------------------------

    def transient_failure(self) -> None:
        assert self.relay
        w, relay = self.w, self.relay
        w.say(f"{w.stamp()} transient store failure: the demo cuts the workers' store "
              f"connections (relay :{relay.port}), then the integrator sends a late "
              f"stock_updated for {LATE_STOCK_CLIENT}")
        relay.cut()
        cut_at = time.monotonic()
        integ.publish_stock(w.r, LATE_STOCK_CLIENT, self.published)
        stream, entry_id, fields = self.published.entries[-1]
        key = f"{stream}/{entry_id}"
        try:
            w.wait_for(lambda: bool(w.r.hexists(ERRORS, key)), "the handler's first failure",
                       timeout=20)
            error = text(w.r.hget(ERRORS, key) or b"")
        finally:
            relay.restore()
        outage = time.monotonic() - cut_at
        w.say(f"{w.stamp()}   delivery 1 failed: {clip(error, 220)}")
        w.say(f"{w.stamp()}   store reachable again after {outage:.1f} s; the entry "
              "stays pending and is retried after the policy's backoff")
        w.wait_drained({GROUP: (stream,)}, "the late stock_updated handled")
        handled = self.find_handled(entry_id)
        self.retry = {"stream": stream, "entry_id": entry_id, "event_id": fields["event_id"],
                      "client_id": LATE_STOCK_CLIENT, "first_error": error,
                      "outage_s": round(outage, 2), "refused_connections": relay.refused,
                      **handled}
        if handled.get("deliveries"):
            w.say(f"{w.stamp()}   handled on delivery {handled['deliveries']} by "
                  f"{handled['consumer']} (its log: \"event handled ... "
                  f"deliveries={handled['deliveries']}\")")

    def find_handled(self, entry_id: str) -> dict[str, Any]:
        """The "event handled" log line of an entry in the instances' console logs (written
        just after the ack the wait saw: looked for until it appears, for 5 s at most)."""
        pattern = re.compile(r"event handled .*\bentry_id=" + re.escape(entry_id) + r"\b")
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            for app in self.apps:
                for ln in app.output.splitlines():
                    if pattern.search(ln):
                        deliveries = re.search(r"\bdeliveries=(\d+)", ln)
                        return {"consumer": app.name,
                                "deliveries": int(deliveries.group(1)) if deliveries else None,
                                "log_line": ln.strip()}
            time.sleep(0.1)
        return {"consumer": None, "deliveries": None, "log_line": None}

    # --- the end ---------------------------------------------------------------------------------

    def scrape_metrics(self) -> None:
        for name, port in self.metrics_ports.items():
            try:
                self.instance_metrics[name] = summary.scrape_metrics(port)
            except OSError as exc:
                self.say(f"  (metrics of {name} unreadable: {exc})")

    def stop_apps(self) -> None:
        self.say(f"{self.w.stamp()} secretmagic: SIGTERM to {len(self.apps)} instance(s) "
                 "(graceful stop: in-flight handlers finish, logs flush)")
        for app in self.apps:  # all at once, then wait for each
            app.terminate()
        for app in self.apps:
            self.exit_codes[app.name] = app.stop(40)
        self.say(f"{self.w.stamp()} secretmagic: stopped (exit codes "
                 f"{', '.join(str(c) for c in self.exit_codes.values())})")

    def stop_downstream(self, children: list[Process]) -> None:
        for child in children:
            self.exit_codes[child.name] = child.stop(15)
            self.w.echo_downstream()
            path = self.run_dir / f"{child.name}.json"
            if path.exists():
                report = json.loads(path.read_text())
                self.reports[report["group"]] = report

    def collect(self) -> dict[str, Any]:
        assert self.found
        found = self.found
        s: dict[str, Any] = {
            "seconds": 0.0,
            "mode": ("two instances on a shared store server" if found.store.server
                     else "one instance on the embedded chDB store"),
            "services": {"redis": found.redis.label, "store": found.store.label,
                         "postgres": found.logs_label},
            "integrator": self.integrator_rows,
            **summary.collect(self.w.r, published=self.published.entries,
                              instances=self.instance_metrics, store_dsn=found.store.dsn,
                              logs_dsn=found.logs.dsn if found.logs else None,
                              log_since=self.log_since),
            "retry": self.retry,
            "downstream": self.reports,
            "exit_codes": self.exit_codes,
            "worker_logs": [shown(a.log_path) for a in self.apps],
        }
        s["failures"] = checks.check(s, retry_expected=found.store.server)
        s["ok"] = not s["failures"]
        s["seconds"] = round(time.monotonic() - self.t0, 1)
        return s

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
        if self.watch:
            self.watch.r.close()
        if self.found:
            self.found.close()
