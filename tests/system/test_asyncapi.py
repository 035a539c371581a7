"""The AsyncAPI document describes the real app: channels from the routing table, the consumer
group and its DLQ, the server from MESSENGER_* (no password), messages as the flat fields an
integrator writes; docs/asyncapi.yaml is what `make asyncapi` generates (drift fails here), and
`faststream docs gen|serve app:app` use it with no Redis reachable."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import yaml
from faststream.specification.asyncapi.v3_0_0.schema import ApplicationSchema

import handlers
from app import asyncapi
from app.delivery import deadletter
from core import wire
from core.events import Event
from handlers.routing import Routes
from settings import Config, MessengerSettings
from settings.config import load
from tests import services

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "asyncapi.yaml"
# The environment `make asyncapi` generates docs/asyncapi.yaml in (the compose deployment's).
GEN_ENV = {"MESSENGER_HOST": "redis", "MESSENGER_PORT": "6379"}


def clean_env(**extra: str) -> dict[str, str]:
    """This process' environment without the app's variables, plus `extra`."""
    prefixes = ("MESSENGER_", "STORE_", "LOGS_", "SECRETMAGIC_", "METRICS_", "OUTBOX_")
    return {**{k: v for k, v in os.environ.items() if not k.startswith(prefixes)}, **extra}


def faststream(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "faststream", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def production() -> dict[str, Any]:
    return asyncapi.document(handlers.routes, MessengerSettings(host="redis"),
                             load(ROOT / "configs" / "config.dev.yaml"))


def test_docs_asyncapi_yaml_is_what_faststream_docs_gen_writes(tmp_path: Path) -> None:
    out = tmp_path / "asyncapi.yaml"
    done = faststream("docs", "gen", "--yaml", "-o", str(out), "app:app", env=clean_env(**GEN_ENV))
    assert done.returncode == 0, done.stderr
    assert out.read_text() == DOC.read_text(), (
        "docs/asyncapi.yaml drifted from the code: run `make asyncapi` and commit it")
    # The generated file is the document built here, and FastStream's own parser (what
    # `faststream docs serve docs/asyncapi.yaml` uses) keeps all of it.
    on_disk = yaml.safe_load(DOC.read_text())
    assert on_disk == json.loads(json.dumps(production()))
    assert ApplicationSchema.model_validate(on_disk).to_jsonable() == on_disk


def test_the_document_names_the_app_its_server_and_no_password() -> None:
    m = MessengerSettings(host="redis.internal", port=6380, db=2, username="worker",
                          password="pa55-word-xyz")
    doc = asyncapi.document(handlers.routes, m, Config())
    assert doc["info"]["title"] == "secretmagic"
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert f'version = "{doc["info"]["version"]}"' in pyproject
    assert doc["servers"] == {"messenger": {
        "host": "redis.internal:6380", "pathname": "/2", "protocol": "redis",
        "description": doc["servers"]["messenger"]["description"]}}
    assert "`worker`" in doc["servers"]["messenger"]["description"]
    assert "pa55-word-xyz" not in json.dumps(doc)
    cluster = MessengerSettings(cluster_nodes="n1:7000,n2:7001", password="pa55-word-xyz")
    hosts = [s["host"] for s in asyncapi.document(handlers.routes, cluster, Config())[
        "servers"].values()]
    assert hosts == ["n1:7000", "n2:7001"]
    assert asyncapi.document(handlers.routes, None, Config())["servers"] == {}


def test_channels_come_from_the_routing_table_and_the_configuration() -> None:
    routes = Routes()
    out = routes.output("returns_counted", "returns-counted")

    @out
    @routes.on("returns-updates", "returns_updated")
    async def count_returns(event: Event) -> Event:
        return event

    cfg = Config.model_validate({"messenger": {
        "subscriber": {"consumer_group": "billing-group"},
        "publisher": {"streams": {"returns_counted": "returns-v2"}}}})
    doc = asyncapi.document(routes, None, cfg)
    assert set(doc["channels"]) == {"returns-updates", "returns-v2", "dlq"}
    inbound = doc["channels"]["returns-updates"]
    assert inbound["bindings"]["redis"] == {"channel": "returns-updates", "method": "xreadgroup",
                                            "groupName": "billing-group",
                                            "bindingVersion": "custom"}
    assert doc["channels"]["returns-v2"]["bindings"]["redis"]["method"] == "xadd"
    assert doc["channels"]["dlq"]["address"] == "billing-group:dlq"
    assert doc["operations"]["count_returns.returns_updated"]["action"] == "receive"
    assert doc["operations"]["publish.returns_counted.returns-v2"]["action"] == "send"
    # An event type with no declared `data` model is documented as a free JSON object.
    data = doc["components"]["messages"]["returns_updated"]["payload"]["properties"]["data"]
    assert data["contentSchema"] == {"type": "object"}


def test_every_route_and_output_of_the_app_is_documented() -> None:
    doc = production()
    for route in handlers.routes.table():
        binding = doc["channels"][route.stream]["bindings"]["redis"]
        assert (binding["method"], binding["groupName"]) == ("xreadgroup", "secretmagic-group")
        assert route.event_type in doc["channels"][route.stream]["messages"]
    for event_type, streams in handlers.routes.outputs().items():
        for stream in streams:
            assert event_type in doc["channels"][stream]["messages"]


def test_each_message_is_the_flat_fields_the_worker_reads_and_writes() -> None:
    messages = production()["components"]["messages"]
    inbound = {r.event_type for r in handlers.routes.table()}
    assert set(messages) == inbound | set(handlers.routes.outputs()) | {"dead_letter"}
    for event_type, message in messages.items():
        if event_type == "dead_letter":
            continue
        payload = message["payload"]
        example = message["examples"][0]["payload"]
        # What an integrator copies from the document is an event the worker decodes ...
        event = wire.decode({k.encode(): v.encode() for k, v in example.items()})
        assert event.event_type == event_type
        assert all(isinstance(v, str) for v in example.values())
        assert set(example) == set(payload["properties"]) == set(wire.FIELDS)
        # ... whose data fits the documented schema of `data`
        model = asyncapi.DATA[event_type]
        assert model.model_validate(event.data).model_dump(mode="json") == event.data
        data_schema = payload["properties"]["data"]["contentSchema"]
        assert set(data_schema["properties"]) == set(model.model_fields)
        # ... and what the worker writes has exactly the documented fields, all required.
        if event_type in handlers.routes.outputs():
            written = wire.encode(Event(event_type=event_type, client_id="c", data=event.data))
            assert set(written) == set(payload["required"])
        else:
            assert payload["required"] == ["event_type", "client_id"]


def test_the_dlq_message_lists_the_fields_a_dead_letter_carries() -> None:
    fields = deadletter.dead_letter_fields({b"event_type": b"x"}, error=ValueError("boom"),
                                           stream="s", entry_id="1-1", group="g", deliveries=5,
                                           consumer="c")
    added = {k for k in fields if isinstance(k, str)}
    dlq = production()["components"]["messages"]["dead_letter"]["payload"]
    assert set(dlq["properties"]) == set(dlq["required"]) == added


def test_docs_serve_answers_with_the_document_and_no_redis(tmp_path: Path) -> None:
    closed = services.free_port()  # nothing listens there: building the docs must not connect
    port = services.free_port()
    env = clean_env(MESSENGER_HOST="127.0.0.1", MESSENGER_PORT=str(closed))
    proc = subprocess.Popen(
        [sys.executable, "-m", "faststream", "docs", "serve", "--port", str(port), "app:app"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        services.wait_for(lambda: services.port_open(port), 60, "faststream docs serve")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as reply:
            page = reply.read().decode()
        assert reply.status == 200
        assert "<title>secretmagic AsyncAPI</title>" in page
        assert f"127.0.0.1:{closed}" in page
        for route in handlers.routes.table():
            assert route.stream in page and route.event_type in page
        assert "secretmagic-group:dlq" in page
    finally:
        proc.terminate()
        proc.wait(10)
