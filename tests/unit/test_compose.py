"""deploy/compose.yaml agrees with the code and the README. It is never run here (this machine
has no Docker engine): this reads it as Compose would and checks each part against what it must
match — the settings' variable names, the metrics port, the secret, the health checks, the
Prometheus and Grafana provisioning, the AsyncAPI server."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from settings import MessengerSettings, Settings, load_settings
from store import parse_dsn

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
WORKERS = ("worker-1", "worker-2")


def compose() -> dict[str, Any]:
    return dict(yaml.safe_load((DEPLOY / "compose.yaml").read_text()))


def services() -> dict[str, Any]:
    return dict(compose()["services"])


def published(service: dict[str, Any]) -> dict[int, int]:
    """{host port: container port}."""
    pairs = (p.split(":") for p in service.get("ports", []))
    return {int(host): int(container) for host, container in pairs}


def volumes(service: dict[str, Any]) -> dict[str, str]:
    """{host path: container path} of a service's bind mounts."""
    return dict(v.removesuffix(":ro").split(":") for v in service["volumes"])


def setting_names() -> set[str]:
    names = {name.upper() for name in Settings.model_fields if name != "messenger"}
    return names | {f"MESSENGER_{name.upper()}" for name in MessengerSettings.model_fields}


def test_the_stack_has_every_part_with_its_ports() -> None:
    found = services()
    assert set(found) == {"redis", "starrocks", "starrocks-init", "postgres", "prometheus",
                          "grafana", *WORKERS}
    assert found["starrocks"]["image"].startswith("starrocks/allin1-ubuntu:")
    assert published(found["starrocks"]) == {9030: 9030, 8030: 8030, 8040: 8040}
    assert published(found["redis"]) == {6379: 6379}
    assert published(found["prometheus"]) == {9090: 9090}
    assert published(found["grafana"]) == {3000: 3000}
    assert [published(found[w]) for w in WORKERS] == [{9108: 9108}, {9109: 9108}]
    for name, service in found.items():
        if name != "starrocks-init":  # a one-shot job
            assert "healthcheck" in service, f"{name} has no health check"


def test_the_workers_environment_is_valid_settings(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    found = services()
    for name in WORKERS:
        worker = found[name]
        env = {k: str(v) for k, v in worker["environment"].items()}
        assert set(env) <= setting_names(), set(env) - setting_names()
        assert env["SECRETMAGIC_CONSUMER"] == name  # one consumer name per instance
        assert env["MESSENGER_HOST"] in found and env["MESSENGER_PORT"] == "6379"
        store = parse_dsn(env["STORE_DSN"])
        assert (store.host, store.port) == ("starrocks", 9030)
        assert env["LOGS_DSN"].split("@")[1].startswith("postgres:5432/")

        # The password is the secret's file, never a value in the environment.
        secret = env["MESSENGER_PASSWORD"]
        assert secret == "/run/secrets/redis_password"
        assert worker["secrets"] == ["redis_password"] == found["redis"]["secrets"]
        assert compose()["secrets"]["redis_password"]["file"] == "./secrets/redis_password"
        assert "--requirepass" in " ".join(found["redis"]["command"])

        # Compose's values pass the worker's own validation (the secret file stands in here).
        stand_in = tmp_path / "redis_password"
        stand_in.write_text("s3cret-value\n")
        for key in list(os.environ):
            if key in setting_names():
                monkeypatch.delenv(key)
        for key, value in env.items():
            monkeypatch.setenv(key, str(stand_in) if key == "MESSENGER_PASSWORD" else value)
        settings = load_settings()
        assert settings.messenger is not None
        assert settings.messenger.password is not None
        assert settings.messenger.password.get_secret_value() == "s3cret-value"

        # The health check asks /health on the port the worker serves it on.
        check = " ".join(worker["healthcheck"]["test"])
        assert f"http://127.0.0.1:{settings.metrics_port}/health" in check
        assert published(worker)[9108 if name == "worker-1" else 9109] == settings.metrics_port
        assert worker["depends_on"]["redis"] == {"condition": "service_healthy"}


def test_prometheus_scrapes_the_workers_and_loads_the_rules() -> None:
    found = services()
    mounts = volumes(found["prometheus"])
    assert mounts["./prometheus/prometheus.yml"] == "/etc/prometheus/prometheus.yml"
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    (job,) = config["scrape_configs"]
    assert job["job_name"] == "secretmagic"  # what alerts.yml's up{job=...} names
    port = found["worker-1"]["environment"]["METRICS_PORT"]
    assert job["static_configs"][0]["targets"] == [f"{w}:{port}" for w in WORKERS]
    assert config["rule_files"] == [mounts["./prometheus/alerts.yml"]]
    assert 'up{job="secretmagic"}' in (DEPLOY / "prometheus" / "alerts.yml").read_text()


def test_grafana_is_provisioned_with_the_dashboard_and_its_datasource() -> None:
    found = services()
    mounts = volumes(found["grafana"])
    assert mounts["./grafana/provisioning"] == "/etc/grafana/provisioning"
    base = DEPLOY / "grafana" / "provisioning"
    (source,) = yaml.safe_load((base / "datasources" / "prometheus.yml").read_text())[
        "datasources"]
    assert source["url"] == f"http://prometheus:{published(found['prometheus'])[9090]}"
    (provider,) = yaml.safe_load((base / "dashboards" / "secretmagic.yml").read_text())[
        "providers"]
    assert mounts["./grafana/secretmagic.json"].startswith(provider["options"]["path"] + "/")
    dashboard = json.loads((DEPLOY / "grafana" / "secretmagic.json").read_text())
    uids = {t["datasource"]["uid"] for p in dashboard["panels"] for t in p.get("targets", [])}
    assert uids == {source["uid"]}


def test_the_asyncapi_server_and_the_readme_describe_this_stack() -> None:
    doc = yaml.safe_load((ROOT / "docs" / "asyncapi.yaml").read_text())
    env = services()["worker-1"]["environment"]
    assert doc["servers"]["messenger"]["host"] == f"{env['MESSENGER_HOST']}:{env['MESSENGER_PORT']}"
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Running it with Docker Compose"):]
    section = section[:section.index("\n## ", 3)]
    assert re.search(r"not (been )?run", section), "the README must say it was not run here"
    for name, service in services().items():
        for port in published(service):
            assert str(port) in section, f"README: {name}'s port {port}"
    assert "deploy/secrets/redis_password" in section
