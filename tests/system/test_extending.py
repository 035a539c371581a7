"""Extending the worker as the README says: one decorated function and one line of YAML add a
handler for a new stream, and the real app (`faststream run`) gives it the consumer group, the
policy, the DLQ and a publisher, next to the production handlers."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any, cast

import redis

from core.keys import dlq_stream
from tests.harness import ROOT, AppProcess, Entries, app_processes, job, messenger_env
from tests.services import private_redis, wait_for

HANDLER = '''
import os

from pydantic import BaseModel

from app.main import build
from core.events import Event
from handlers import routes
from handlers.routing import StoreDep

IN, OUT = os.environ["RETURNS_IN"], os.environ["RETURNS_OUT"]


class ReturnsProcessed(BaseModel):
    rows: int


@routes.output("returns_processed", OUT)
@routes.on(IN, "returns_updated")
async def returns_updated(event: Event, store: StoreDep) -> Event:
    returns = await store.read("sales", event.client_id)
    return event.reply("returns_processed", ReturnsProcessed(rows=returns.height))


app = build(routes)
'''


def test_one_decorated_function_and_one_yaml_line_add_a_handled_stream(tmp_path: Path) -> None:
    # A private Redis: the app reads the production streams too, and must not touch a shared one.
    with private_redis() as server:
        _extend(server.url, tmp_path)


def _extend(redis_url: str, tmp_path: Path) -> None:
    stream_in, stream_out = "returns-updates", "returns-processed"
    group = "secretmagic-group"
    (tmp_path / "returns_app.py").write_text(textwrap.dedent(HANDLER))
    seed = (ROOT / "configs" / "config.dev.yaml").read_text()
    config = seed.replace('      - "products-updates"\n',
                          f'      - "products-updates"\n      - "{stream_in}"\n')
    assert set(config.splitlines()) - set(seed.splitlines()) == {f'      - "{stream_in}"'}
    (tmp_path / "config.yaml").write_text(config)

    r = redis.Redis.from_url(redis_url)
    good = job(event_type="returns_updated")
    bad: dict[Any, Any] = {"event_type": "returns_updated"}
    r.xadd(stream_in, good)
    r.xadd(stream_in, bad)  # no client_id: the new stream dead-letters it like any other
    env = {**messenger_env(redis_url), "PYTHONPATH": f"{ROOT}:{tmp_path}",
           "RETURNS_IN": stream_in, "RETURNS_OUT": stream_out,
           "SECRETMAGIC_CONFIG": str(tmp_path / "config.yaml"), "STORE_DSN": "chdb://"}
    with app_processes(AppProcess("returns_app:app", env, tmp_path, "ext-1")) as (proc,):
        proc.wait_output(f"consuming {stream_in}: returns_updated -> returns_updated")
        proc.wait_output("consuming sales-updates: sales_updated -> recompute_features")
        wait_for(lambda: r.xlen(stream_out) == 1 and r.xlen(dlq_stream(group)) == 1, 30,
                 "the output published and the bad entry dead-lettered")
        wait_for(lambda: r.xpending(stream_in, group)["pending"] == 0, 10, "all acked")
    (_, out), = cast(Entries, r.xrange(stream_out))
    assert out[b"event_type"] == b"returns_processed"
    assert out[b"client_id"] == good["client_id"].encode()
    assert json.loads(out[b"data"]) == {"rows": 0}
    (_, dead), = cast(Entries, r.xrange(dlq_stream(group)))
    assert dead[b"dlq_error"] == b"missing field(s): client_id"
    assert dead[b"dlq_stream"] == stream_in.encode()
