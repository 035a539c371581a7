"""A real Prometheus (Debian's package) scraping a real worker (`faststream run app:app`) while
events flow: every query of the Grafana dashboard and every series the alert rules read return
data, and Prometheus evaluates every rule without an error. What the rules then decide is
promtool's unit tests' (test_alerts)."""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import threading
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import redis
import yaml

from tests import services
from tests.debian import binary
from tests.harness import AppProcess, app_processes, config, job, messenger_env, write_config

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "secretmagic.json"
RULES = ROOT / "deploy" / "prometheus" / "alerts.yml"
STREAMS = ["sales-updates", "stock-updates", "bom-updates", "products-updates"]
GROUP = "secretmagic-group"
SELECTOR = re.compile(r"\b(?:secretmagic_[a-z_]+|up)\b(?:\{[^}]*\})?")
# Grafana's own variables in the dashboard's queries, as Grafana would fill them in here.
GRAFANA_VARS = {"$__rate_interval": "15s", "$__interval": "1s", "$__range": "5m"}


def dashboard_queries() -> list[tuple[str, str]]:
    doc = json.loads(DASHBOARD.read_text())
    found = []
    for panel in doc["panels"]:
        for target in panel.get("targets", []):
            expr = target["expr"]
            for var, value in GRAFANA_VARS.items():
                expr = expr.replace(var, value)
            found.append((panel["title"], expr))
    return found


def rule_selectors() -> list[tuple[str, str]]:
    doc = yaml.safe_load(RULES.read_text())
    return [(rule["alert"], selector) for group in doc["groups"] for rule in group["rules"]
            for selector in SELECTOR.findall(rule["expr"])]


class Prometheus:
    def __init__(self, url: str) -> None:
        self.url = url

    def get(self, path: str, **params: str) -> Any:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        with urllib.request.urlopen(f"{self.url}{path}{query}", timeout=10) as reply:
            answer = json.load(reply)
        assert answer["status"] == "success", answer
        return answer["data"]

    def series(self, expr: str) -> list[Any]:
        return list(self.get("/api/v1/query", query=expr)["result"])


@contextlib.contextmanager
def prometheus(tmp: Path, target: str) -> Iterator[Prometheus]:
    exe = binary("prometheus", "prometheus")
    port = services.free_port()
    cfg = tmp / "prometheus.yml"
    cfg.write_text(yaml.safe_dump({
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(RULES)],
        "scrape_configs": [{"job_name": "secretmagic", "static_configs": [{"targets": [target]}]}],
    }))
    log = (tmp / "prometheus.log").open("wb")
    proc = subprocess.Popen(
        [exe, f"--config.file={cfg}", f"--storage.tsdb.path={tmp / 'tsdb'}",
         f"--web.listen-address=127.0.0.1:{port}"], stdout=log, stderr=subprocess.STDOUT)
    try:
        prom = Prometheus(f"http://127.0.0.1:{port}")
        services.wait_for(lambda: urllib.request.urlopen(f"{prom.url}/-/ready", timeout=2),
                          60, "Prometheus ready")
        yield prom
    finally:
        proc.terminate()
        proc.wait(30)
        log.close()


@contextlib.contextmanager
def flowing(r: redis.Redis) -> Iterator[dict[str, int]]:
    """Events written as an integrator does, a few a second, until the block ends; and now and
    then one that is malformed (dead-lettered)."""
    sent = {"events": 0, "malformed": 0}
    stop = threading.Event()

    def produce() -> None:
        n = 0
        while not stop.wait(0.1):
            n += 1
            stream = STREAMS[n % len(STREAMS)]
            event_type = stream.replace("-updates", "_updated")
            r.xadd(stream, job(f"client-{n % 5}", event_type, table_name=event_type))
            sent["events"] += 1
            if n % 10 == 0:
                r.xadd(stream, {"event_type": event_type, "client_id": "c", "data": "[1]"})
                sent["malformed"] += 1

    thread = threading.Thread(target=produce, daemon=True)
    thread.start()
    try:
        yield sent
    finally:
        stop.set()
        thread.join(10)


def test_prometheus_scrapes_every_series_the_dashboard_and_the_rules_read(tmp_path: Path) -> None:
    with services.private_redis() as server:
        r = redis.Redis(host=services.HOST, port=server.port)
        # Entries a consumer that has gone away was handed: the worker claims them.
        for stream in STREAMS:
            r.xgroup_create(stream, GROUP, id="0", mkstream=True)
            r.xadd(stream, job("ghost", stream.replace("-updates", "_updated")))
            r.xreadgroup(GROUP, "gone-consumer", {stream: ">"})
        cfg = tmp_path / "config.yaml"
        write_config(cfg, config(STREAMS, claim_idle_ms=100))
        metrics_port = services.free_port()
        env = {**messenger_env(server.url), "SECRETMAGIC_CONFIG": str(cfg),
               "METRICS_PORT": str(metrics_port)}
        worker = AppProcess("app:app", env, tmp_path, "worker-prom")
        with app_processes(worker):
            worker.wait_output("consuming sales-updates")
            with flowing(r) as sent:
                scrape_while_events_flow(r, tmp_path, metrics_port, cfg, worker)
            # Nothing lost: every entry is acked, and the malformed ones are dead letters.
            services.wait_for(lambda: all(r.xpending(s, GROUP)["pending"] == 0 and
                                          r.xinfo_groups(s)[0]["lag"] == 0 for s in STREAMS),
                              60, "every entry handled")
            dead = r.xlen(f"{GROUP}:dlq")
            published = r.xlen("features-updates") if r.exists("features-updates") else 0
        print(f"sent={sent} dead_lettered={dead} features_updated={published}")
        assert dead == sent["malformed"] > 0
        assert published > 0
        r.close()


def scrape_while_events_flow(r: redis.Redis, tmp_path: Path, metrics_port: int, cfg: Path,
                             worker: AppProcess) -> None:
    with prometheus(tmp_path, f"127.0.0.1:{metrics_port}") as prom:
        # A bad edit of the configuration file once Prometheus watches: rejected.
        reloads = 'secretmagic_config_reloads_total{result="rejected"}'
        services.wait_for(lambda: prom.series(reloads), 30, "the reload counter")
        cfg.write_text("messenger: {subscriber: {batch_size: many}}\n")
        worker.wait_output("batch_size")

        queries = dashboard_queries() + rule_selectors()
        empty: list[tuple[str, str]] = []

        def all_answer() -> bool:
            empty[:] = [(what, q) for what, q in queries if not prom.series(q)]
            return not empty

        try:
            services.wait_for(all_answer, 60, "every query to return series")
        except TimeoutError:
            raise AssertionError(f"no series for {empty}\nworker:\n"
                                 f"{worker.output[-3000:]}") from None

        alerts = [rule["alert"] for group in yaml.safe_load(RULES.read_text())["groups"]
                  for rule in group["rules"]]

        def evaluated() -> list[Any]:
            rules = [rule for group in prom.get("/api/v1/rules")["groups"]
                     for rule in group["rules"]]
            done = [rule for rule in rules if not rule["lastEvaluation"].startswith("0001")]
            return done if len(done) == len(alerts) else []

        services.wait_for(evaluated, 30, "Prometheus to evaluate every rule")
        rules = evaluated()
        assert sorted(rule["name"] for rule in rules) == sorted(alerts)
        assert [(rule["name"], rule["lastError"]) for rule in rules
                if rule["health"] != "ok"] == []
        # The rule for rejected reloads holds now: Prometheus sees the first rejection.
        services.wait_for(lambda: prom.series(f"increase({reloads}[15m]) > 0"), 30,
                          "Prometheus to see the rejected reload")
