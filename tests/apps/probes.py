"""What the fault tests (tests/system/test_faults_*.py) read back from a recorder worker
(tests.apps.recorder) and its Redis: its /health, what it handled, its outputs and dead letters,
and the one line of counts each test prints.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import redis
from prometheus_client.parser import text_string_to_metric_families

from scripts.processes import AppProcess, wait_for
from tests.harness import Entries, Fields, config, messenger_env, write_config

TARGET = "tests.apps.recorder:app"
GROUP = "secretmagic-group"  # the recorder's consumer group unless a test names another


def recorder_env(redis_url: str, tmp_path: Path, stream: str, prefix: str, *,
                 group: str = GROUP, **policy: Any) -> dict[str, str]:
    """A recorder worker's environment: its Redis, one stream, its configuration file."""
    path = write_config(tmp_path / "config.yaml", config([stream], group=group, **policy))
    return {**messenger_env(redis_url), "SECRETMAGIC_CONFIG": str(path),
            "RECORDER_STREAMS": stream, "RECORDER_PREFIX": prefix}


def status(port: int) -> dict[str, Any]:
    """/health's report, with its HTTP status as `http` (0 when it does not answer in a second)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as response:
            return {**json.loads(response.read()), "http": int(response.status)}
    except urllib.error.HTTPError as exc:
        return {**json.loads(exc.read()), "http": int(exc.code)}
    except OSError:
        return {"http": 0}


def health(port: int) -> int:
    """The HTTP status of /health (0 when it does not answer within a second)."""
    return int(status(port)["http"])


def metric(port: int, name: str, **labels: str) -> float:
    """One sample of the worker's /metrics (0 when the series is not there)."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return float(sample.value)
    return 0.0


def handled(books: redis.Redis, prefix: str) -> dict[str, int]:
    """event_id -> how many times the recorder handled it."""
    return {k.decode(): int(v)
            for k, v in cast(Fields, books.hgetall(f"{prefix}:handled")).items()}


def started(books: redis.Redis, prefix: str) -> set[str]:
    """The event ids the recorder has begun to handle (counted before its work)."""
    return {k.decode() for k in cast(Fields, books.hgetall(f"{prefix}:attempts"))}


def flowing(app: AppProcess, r: redis.Redis, stream: str, sent: list[dict[Any, Any]],
            books: redis.Redis, prefix: str, at_least: int) -> None:
    """Once `app` consumes `stream`, write every entry of `sent` to it and wait until the
    recorder has handled `at_least` of them (the fault is injected mid-flow after this)."""
    app.wait_output(f"consuming {stream}")
    for fields in sent:
        r.xadd(stream, fields)
    wait_for(lambda: len(handled(books, prefix)) >= at_least, 30, f"{at_least} handled")


def outputs(r: redis.Redis, stream: str) -> list[dict[str, Any]]:
    """The `data` of each output on `stream`-done, in stream order (the job, pid and seq)."""
    found = []
    for _, fields in cast(Entries, r.xrange(f"{stream}-done")):
        if b"data" in fields:
            found.append(json.loads(fields[b"data"]))
    return found


def dead_letters(r: redis.Redis, group: str, stream: str) -> list[Fields]:
    return [f for _, f in cast(Entries, r.xrange(f"{group}:dlq"))
            if f.get(b"dlq_stream") == stream.encode()]


def timed(condition: Callable[[], object], timeout: float, what: str) -> float:
    """Seconds until `condition` holds (fails naming `what` after `timeout`)."""
    started = time.monotonic()
    wait_for(condition, timeout, what)
    return time.monotonic() - started


@dataclass
class Counts:
    """The line every fault test prints, and the loss it asserts is zero."""

    what: str
    sent: set[str]  # event ids written to the input stream
    handled: dict[str, int]  # event id -> times handled
    dead_lettered: int
    outputs: Iterable[str] = ()  # the event ids whose output reached the output stream

    @property
    def lost(self) -> int:
        return len(self.sent - set(self.handled)) - self.dead_lettered

    @property
    def duplicated(self) -> int:
        return sum(n - 1 for n in self.handled.values())

    def report(self, **extra: object) -> Counts:
        outs = set(self.outputs)
        more = "".join(f" {k}={v}" for k, v in extra.items())
        print(f"{self.what}: sent={len(self.sent)} handled={len(set(self.handled) & self.sent)} "
              f"dead_lettered={self.dead_lettered} duplicated={self.duplicated} "
              f"lost={self.lost} outputs={len(outs & self.sent)}{more}")
        return self
