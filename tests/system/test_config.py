"""The mutable configuration: validation with the key path, and hot reload observed from outside a
running app process (real file, real watcher, real Redis).

Absence is never waited for: "not consumed while paused" is shown by when an event was handled
(after the resume), recorded by the handler itself.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, cast

import pytest
import redis
import yaml

from settings import Config, ConfigError, LiveConfig
from settings.config import parse
from tests import services
from tests.harness import (
    AppProcess,
    Entries,
    Fields,
    app_processes,
    config,
    job,
    messenger_env,
    unique,
    write_config,
)

TARGET = "tests.apps.recorder:app"
SEED_EXAMPLE = Path(__file__).resolve().parents[2] / "configs" / "config.dev.yaml"


def test_the_seeds_example_file_is_valid() -> None:
    cfg = parse(SEED_EXAMPLE.read_text())
    assert cfg.messenger.subscriber.consumer_group == "secretmagic-group"
    assert cfg.messenger.subscriber.streams == (
        "sales-updates", "stock-updates", "bom-updates", "products-updates")
    assert cfg.messenger.publisher.max_length == 10000
    assert cfg.messenger.publisher.streams == {"features_updated": "features-updates",
                                               "bom_exploded": "bom-exploded"}


@pytest.mark.parametrize(("text", "message"), [
    ("messenger: [unclosed", "not valid YAML"),
    ("messenger:\n  publisher:\n    max_length: lots\n",
     "messenger.publisher.max_length: Input should be a valid integer"),
    ("messenger:\n  subscriber:\n    enabeld: true\n",
     "messenger.subscriber.enabeld: Extra inputs are not permitted"),
    ("features:\n  std_windows: [1]\n", "features.std_windows.0"),
    ("messenger:\n  subscriber:\n    streams: [a, a]\n", "a stream is listed twice"),
    ("- just\n- a list\n", "the top level must be a mapping"),
])
def test_invalid_files_name_the_key_and_reason(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as excinfo:
        parse(text, "configs/config.dev.yaml")
    assert message in str(excinfo.value)
    assert str(excinfo.value).startswith("configs/config.dev.yaml")


async def test_reload_keeps_the_last_good_configuration(tmp_path: Path,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    path = write_config(tmp_path / "c.yaml", config(["a"]))
    live = LiveConfig(path)
    seen: list[tuple[int, int]] = []

    async def listener(old: Config, new: Config) -> None:
        seen.append((old.messenger.publisher.max_length, new.messenger.publisher.max_length))

    live.subscribe(listener)
    path.write_text(path.read_text().replace("max_length: 10000", "max_length: 77"))
    assert await live.reload() and live.current.messenger.publisher.max_length == 77
    path.write_text("messenger: {publisher: {max_length: -5}}")
    assert not await live.reload()
    assert live.current.messenger.publisher.max_length == 77
    rejected = [r for r in caplog.records if "configuration rejected" in r.getMessage()]
    assert len(rejected) == 1 and "max_length" in rejected[0].getMessage()
    assert not await live.reload()  # unchanged content: nothing to do
    assert seen == [(10000, 77)]


def recorder(redis_url: str, tmp_path: Path, streams: list[str], prefix: str,
             cfg: Config) -> tuple[AppProcess, Path]:
    path = write_config(tmp_path / "config.yaml", cfg)
    env = {**messenger_env(redis_url), "SECRETMAGIC_CONFIG": str(path),
           "RECORDER_STREAMS": ",".join(streams), "RECORDER_PREFIX": prefix}
    return AppProcess(TARGET, env, tmp_path, "live"), path


def edit(path: Path, change: Any) -> float:
    data = yaml.safe_load(path.read_text())
    change(data)
    write_config(path, data)
    return time.monotonic()


def handled_at(r: redis.Redis, prefix: str, event_id: str) -> list[float]:
    return [float(t) for t in r.lrange(f"{prefix}:times:{event_id}", 0, -1)]


def wait_handled(r: redis.Redis, prefix: str, event_id: str, timeout: float = 20) -> None:
    services.wait_for(lambda: r.hexists(f"{prefix}:handled", event_id), timeout,
                      f"event {event_id} handled")


def test_subscriber_enabled_pauses_and_resumes(redis_url: str, tmp_path: Path) -> None:
    r = redis.Redis.from_url(redis_url)
    stream, prefix = unique("pause"), unique("rec")
    app, path = recorder(redis_url, tmp_path, [stream], prefix, config([stream]))
    with app_processes(app):
        app.wait_output(f"consuming {stream}")
        written = edit(path, lambda d: d["messenger"]["subscriber"].update(enabled=False))
        app.wait_output("consumption pauses")
        print(f"pause applied {time.monotonic() - written:.2f}s after the write")
        held = job()
        r.xadd(stream, held)
        resumed_at = time.time()
        edit(path, lambda d: d["messenger"]["subscriber"].update(enabled=True))
        app.wait_output("consumption resumes")
        wait_handled(r, prefix, held["event_id"])
    (first_attempt,) = handled_at(r, prefix, held["event_id"])
    assert first_attempt >= resumed_at  # it waited in the stream while consumption was paused
    assert app.output.count("configuration reloaded") == 2


def test_streams_added_and_removed_while_running(redis_url: str, tmp_path: Path) -> None:
    r = redis.Redis.from_url(redis_url)
    a, b, prefix = unique("sa"), unique("sb"), unique("rec")
    app, path = recorder(redis_url, tmp_path, [a, b], prefix, config([a]))
    with app_processes(app):
        app.wait_output(f"consuming {a}")
        assert f"consuming {b}" not in app.output
        edit(path, lambda d: d["messenger"]["subscriber"].update(streams=[a, b]))
        app.wait_output(f"consuming {b}")
        assert r.xinfo_groups(b)[0]["name"] == b"secretmagic-group"  # group created
        first = job()
        r.xadd(b, first)
        wait_handled(r, prefix, first["event_id"])
        edit(path, lambda d: d["messenger"]["subscriber"].update(streams=[a]))
        app.wait_output(f"no longer consuming {b}")
        held = job()
        r.xadd(b, held)
        back_at = time.time()
        edit(path, lambda d: d["messenger"]["subscriber"].update(streams=[a, b]))
        wait_handled(r, prefix, held["event_id"])
    assert handled_at(r, prefix, held["event_id"])[0] >= back_at


def test_publisher_routing_max_length_and_enabled_apply_to_the_next_publish(
        redis_url: str, tmp_path: Path) -> None:
    r = redis.Redis.from_url(redis_url)
    stream, prefix, routed = unique("pub"), unique("rec"), unique("routed")
    app, path = recorder(redis_url, tmp_path, [stream], prefix, config([stream]))
    with app_processes(app):
        app.wait_output(f"consuming {stream}")
        first = job()
        r.xadd(stream, first)
        wait_handled(r, prefix, first["event_id"])
        # The handler records itself handled, then its output is published: wait for that too.
        services.wait_for(lambda: r.xlen(f"{stream}-done") == 1, 10,
                          "the output on the default stream")

        edit(path, lambda d: d["messenger"]["publisher"].update(
            streams={"job_done": routed}, max_length=20))
        app.wait_output("configuration reloaded")
        sent = [job() for _ in range(200)]
        for fields in sent:
            r.xadd(stream, fields)
        services.wait_for(lambda: r.hlen(f"{prefix}:handled") == 201, 30, "200 more handled")
        assert r.xlen(f"{stream}-done") == 1  # rerouted
        assert 20 <= r.xlen(routed) <= 120  # MAXLEN ~ 20: trimmed by whole macro-nodes

        edit(path, lambda d: d["messenger"]["publisher"].update(enabled=False))
        services.wait_for(lambda: app.output.count("configuration reloaded") == 2, 10,
                          "second reload")
        before = r.xlen(routed)
        quiet = job()
        r.xadd(stream, quiet)
        wait_handled(r, prefix, quiet["event_id"])
        app.wait_output("publish skipped (publisher.enabled is false)")
    assert r.xlen(routed) == before


@pytest.mark.parametrize(("kind", "content"), [
    ("bad YAML", "messenger: [oops"),
    ("wrong type", "messenger:\n  publisher:\n    max_length: many\n"),
    ("unknown key", "messenger:\n  publisher:\n    max_lenght: 5\n"),
])
def test_invalid_file_is_rejected_in_one_line_and_the_old_one_stays(
        redis_url: str, tmp_path: Path, kind: str, content: str) -> None:
    r = redis.Redis.from_url(redis_url)
    stream, prefix, routed = unique("inv"), unique("rec"), unique("routed")
    cfg = Config.model_validate({**config([stream]).model_dump(),
                                 "messenger": {**config([stream]).model_dump()["messenger"],
                                               "publisher": {"streams": {"job_done": routed}}}})
    app, path = recorder(redis_url, tmp_path, [stream], prefix, cfg)
    with app_processes(app):
        app.wait_output(f"consuming {stream}")
        path.write_text(content)
        app.wait_output("configuration rejected")
        after = job()
        r.xadd(stream, after)
        wait_handled(r, prefix, after["event_id"])
        services.wait_for(lambda: r.xlen(routed) == 1, 10, "output still routed by the old file")
    lines = [ln for ln in app.output.splitlines() if "configuration rejected" in ln]
    print(kind, "->", lines[0][:200])
    assert len(lines) == 1 and str(path) in lines[0]


def test_consumer_group_change_applies_on_restart_only(redis_url: str, tmp_path: Path) -> None:
    r = redis.Redis.from_url(redis_url)
    stream, prefix = unique("grp"), unique("rec")
    app, path = recorder(redis_url, tmp_path, [stream], prefix, config([stream]))
    with app_processes(app):
        app.wait_output(f"consuming {stream}")
        edit(path, lambda d: d["messenger"]["subscriber"].update(consumer_group="other-group"))
        app.wait_output("applies on restart only")
        fields = job()
        r.xadd(stream, fields)
        wait_handled(r, prefix, fields["event_id"])
    assert [g["name"] for g in r.xinfo_groups(stream)] == [b"secretmagic-group"]


def test_a_storm_of_rewrites_ends_on_the_last_valid_version(redis_url: str,
                                                             tmp_path: Path) -> None:
    """200 rapid rewrites (every 7th invalid) while events flow: the last valid version wins,
    and no event is lost or handled twice."""
    r = redis.Redis.from_url(redis_url)
    stream, prefix = unique("storm"), unique("rec")
    app, path = recorder(redis_url, tmp_path, [stream], prefix, config([stream]))
    base = config([stream]).model_dump(mode="json")
    sent: list[str] = []
    with app_processes(app):
        app.wait_output(f"consuming {stream}")
        last_valid = ""
        for i in range(200):
            fields = job()
            r.xadd(stream, fields)
            sent.append(fields["event_id"])
            if i % 7 == 3 and i < 199:  # the storm ends on a valid version
                path.write_text(f"messenger: {{publisher: {{max_length: 'v{i}'}}}}")
                continue
            last_valid = unique(f"final{i}")
            base["messenger"]["publisher"]["streams"] = {"job_done": last_valid}
            write_config(path, base)
        services.wait_for(lambda: r.hlen(f"{prefix}:handled") == 200, 30, "all 200 handled")
        probe = job()
        services.wait_for(lambda: _routed(r, stream, probe, last_valid), 10,
                          "the last valid version in effect")
    counts = {k.decode(): int(v)
              for k, v in cast(Fields, r.hgetall(f"{prefix}:handled")).items()}
    lost = set(sent) - set(counts)
    twice = [k for k, v in counts.items() if v > 1]
    print(f"rewrites=200 sent={len(sent)} handled={len(counts)} lost={len(lost)} "
          f"handled_twice={len(twice)} reloads={app.output.count('configuration reloaded')}")
    assert not lost and not twice


def _routed(r: redis.Redis, stream: str, probe: dict[Any, Any], target: str) -> bool:
    if not r.hexists(f"{stream}:probe-sent", probe["event_id"]):
        r.hset(f"{stream}:probe-sent", probe["event_id"], 1)
        r.xadd(stream, probe)
    done = cast(Entries, r.xrange(target))
    return any(json.loads(f[b"data"])["job"] == probe["event_id"] for _, f in done)
