"""A soak: two worker instances, 200,000 events over at least 20 minutes, one instance SIGKILLed
every minute (and restarted), the messenger's Redis stopped for 5 s in the middle; then the counts
and each instance's resident memory over time. Not part of `make test`.

    nice -n 10 .venv/bin/python bench/soak.py [--events 200000] [--minutes 22]
                                              [--kill-every 60] [--redis-down 5]
                                              [--workdir DIR]

Parts, all on loopback:
- the messenger: a private redis-server with `appendonly yes` (restarted with SIGTERM at half
  time: it writes its AOF and reloads it, so the streams, groups and pending lists survive);
- the bookkeeping (what each handler run records) on a second private redis-server that is never
  restarted, so the counts do not depend on the Redis under test;
- two recorder workers (`faststream run tests.apps.recorder:app`, the app's delivery policy and
  publishing, a trivial handler), each with its own outbox. `soak-a` lives through the whole
  soak: its RSS against the events it handled is the leak figure. `soak-b` is SIGKILLed every
  `--kill-every` seconds and restarted at once under the same name: its pending entries are
  taken over by soak-a (claim_idle_ms) or reclaimed by its next life;
- a producer here: XADDs at an even pace (an integrator's plain XADD, retried while Redis is
  down; a retry whose first try did land is a second entry with the same event_id).

Counts: sent = the distinct event_ids in the input stream; handled = the recorder's HINCRBY per
event_id (duplicated = handled more than once); dead-lettered = the group's DLQ entries; lost =
sent − handled − dead-lettered; outputs = the handled events whose job_done is on the output
stream. RSS is VmRSS from /proc, sampled every minute; growth per 100k events is the
least-squares slope of soak-a's RSS against its handled count, from minute 3 on (the first
minutes hold imports, the allocator's arenas and the caches filling).

Measured here (2026-12-02, 2 cores shared with other work, `nice -n 10`, default arguments):
sent 200,000, handled 200,000, dead-lettered 0, duplicated 0, lost 0, outputs 200,000; 22
SIGKILLs of soak-b (23 lives), Redis down 5.1 s at 11 min; drained 2 s after the last event.
soak-a (108,448 events): RSS 365.1 MiB at minute 1, 365.2 at 3, 365.5 at 11, 365.6 at 22:
+0.4 MiB per 100k events. soak-b (91,552 events over its lives): 364.9–367.0 MiB at each
minute, each life.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the repo's top-level modules

import redis  # noqa: E402

from scripts.processes import AppProcess, wait_for  # noqa: E402
from scripts.servers import PrivateRedis  # noqa: E402
from tests.harness import config, messenger_env, write_config  # noqa: E402

TARGET = "tests.apps.recorder:app"
GROUP = "secretmagic-group"
STREAM = "soak-jobs"
PREFIX = "soak"
WARMUP_S = 180.0


def rss_kib(pid: int) -> int:
    """The process's resident set size, KiB (0 if it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


@dataclass
class Sample:
    t: float  # seconds since the start
    rss: dict[str, int]  # instance -> KiB
    handled: dict[str, int]  # instance (consumer name) -> handled so far, all its lives
    life: dict[str, int]  # instance -> which life (restarts + 1)


@dataclass
class Soak:
    args: argparse.Namespace
    workdir: Path
    server: PrivateRedis
    books: redis.Redis
    apps: dict[str, AppProcess] = field(default_factory=dict)
    lives: dict[str, int] = field(default_factory=dict)
    samples: list[Sample] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)

    def env(self, name: str) -> dict[str, str]:
        return {**messenger_env(self.server.url), "SECRETMAGIC_CONFIG": str(self.config),
                "RECORDER_STREAMS": STREAM, "RECORDER_PREFIX": PREFIX,
                "RECORDER_REDIS_URL": f"redis://127.0.0.1:{self.books_port}/0",
                "LOGS_LEVEL": "WARNING", "METRICS_PORT": "0"}

    @property
    def books_port(self) -> int:
        return int(self.books.connection_pool.connection_kwargs["port"])

    @property
    def config(self) -> Path:
        return self.workdir / "config.yaml"

    def start(self, name: str) -> None:
        self.lives[name] = self.lives.get(name, 0) + 1
        self.apps[name] = AppProcess(TARGET, self.env(name), self.workdir, name)
        self.apps[name].start()

    def handled_by(self) -> dict[str, int]:
        return {k.decode(): int(v) for k, v in
                cast(dict[bytes, bytes], self.books.hgetall(f"{PREFIX}:by")).items()}

    def sample(self) -> Sample:
        s = Sample(time.monotonic() - self.started,
                   {n: rss_kib(a.proc.pid) if a.proc else 0 for n, a in self.apps.items()},
                   self.handled_by(), dict(self.lives))
        self.samples.append(s)
        print(f"{s.t / 60:5.1f} min  " + "  ".join(
            f"{n}: rss={s.rss[n] / 1024:6.1f} MiB handled={s.handled.get(n, 0):6d} "
            f"life={s.life[n]}" for n in sorted(self.apps)), flush=True)
        return s


def produce(r: redis.Redis, batch: list[dict[str, str]]) -> bool:
    """XADD a batch in one pipeline; False (to retry it) when Redis is not there."""
    try:
        with r.pipeline(transaction=False) as pipe:
            for fields in batch:
                pipe.xadd(STREAM, cast(Any, fields))
            pipe.execute()
        return True
    except (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError):
        return False


def event(n: int) -> dict[str, str]:
    """A job for a client of its own: one client's jobs waiting together would be coalesced
    into one run, which the recorder counts once."""
    return {"event_id": str(uuid.uuid4()), "event_type": "job",
            "client_id": f"client-{n}", "timestamp": "2025-11-22T14:00:00Z",
            "data": json.dumps({"n": n})}


def slope(points: Sequence[tuple[float, float]]) -> float:
    """Least-squares slope of y on x."""
    n = len(points)
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    return sum((x - mx) * (y - my) for x, y in points) / sxx if sxx else 0.0


def run(args: argparse.Namespace, workdir: Path) -> int:
    books_server = PrivateRedis().start()
    server = PrivateRedis("--appendonly", "yes", "--appendfsync", "everysec").start()
    r = redis.Redis.from_url(server.url, socket_timeout=5, socket_connect_timeout=2)
    soak = Soak(args, workdir, server, redis.Redis.from_url(books_server.url))
    cfg = config([STREAM]).model_dump(mode="json")
    cfg["messenger"]["publisher"]["max_length"] = 10 * args.events  # keep every output
    write_config(soak.config, cfg)
    duration = args.minutes * 60
    rate = args.events / duration
    print(f"soak: {args.events} events over {args.minutes} min ({rate:.0f}/s), soak-b killed "
          f"every {args.kill_every:.0f} s, Redis restarted at {duration / 2 / 60:.1f} min; "
          f"workdir {workdir}", flush=True)
    try:
        for name in ("soak-a", "soak-b"):
            soak.start(name)
        wait_for(lambda: r.exists(STREAM) and len(r.xinfo_groups(STREAM)) == 1, 60,
                 "the workers' consumer group")
        soak.started = time.monotonic()
        made, kills, redis_restarted = 0, 0, False
        next_kill, next_sample = args.kill_every, 60.0
        pending: list[dict[str, str]] = []
        while made < args.events or pending:
            now = time.monotonic() - soak.started
            due = min(args.events, int(rate * now)) - made
            pending += [event(made + i) for i in range(max(due, 0))]
            made += max(due, 0)
            if pending and produce(r, pending[:500]):
                del pending[:500]
            if now >= next_sample:
                next_sample += 60
                soak.sample()
            if now >= next_kill:
                next_kill += args.kill_every
                soak.apps["soak-b"].kill()
                kills += 1
                soak.start("soak-b")
            if not redis_restarted and now >= duration / 2:
                redis_restarted = True
                down = time.monotonic()
                server.stop()  # SIGTERM: the AOF is written, then reloaded by the next start
                time.sleep(args.redis_down)  # the outage itself, not a wait for anything
                server.start()
                print(f"Redis restarted (down {time.monotonic() - down:.1f} s)", flush=True)
            time.sleep(0.05)
        produced_at = time.monotonic()
        expected = len(event_ids(r, STREAM, "event_id"))

        def settled() -> bool:
            handled = soak.books.hlen(f"{PREFIX}:handled")
            return bool(handled + r.xlen(f"{GROUP}:dlq") >= expected
                        and r.xpending(STREAM, GROUP)["pending"] == 0)

        wait_for(settled, 900, "every event handled or dead-lettered, nothing pending")
        wait_for(lambda: r.xlen(f"{STREAM}-done") >= soak.books.hlen(f"{PREFIX}:handled"),
                 300, "every output in Redis (the outboxes drained)")
        soak.sample()
        print(f"drained {time.monotonic() - produced_at:.0f} s after the last event was sent",
              flush=True)
        return report(soak, r, kills)
    finally:
        for a in soak.apps.values():
            a.terminate()
        for a in soak.apps.values():
            a.stop()
        server.close()
        books_server.close()


def event_ids(r: redis.Redis, stream: str, key: str) -> set[str]:
    """The `key` field (or the `job` of the JSON `data`, for key == "job") of every entry."""
    found: set[str] = set()
    start = "-"
    while True:
        page = cast(list[tuple[bytes, dict[bytes, bytes]]],
                    r.xrange(stream, min=start, max="+", count=10_000))
        for _, fields in page:
            if key == "job":
                found.add(json.loads(fields[b"data"])["job"])
            else:
                found.add(fields[key.encode()].decode())
        if len(page) < 10_000:
            return found
        start = "(" + page[-1][0].decode()


def report(soak: Soak, r: redis.Redis, kills: int) -> int:
    sent = event_ids(r, STREAM, "event_id")
    handled = {k.decode(): int(v) for k, v in
               cast(dict[bytes, bytes], soak.books.hgetall(f"{PREFIX}:handled")).items()}
    dead = r.xlen(f"{GROUP}:dlq")
    outputs = event_ids(r, f"{STREAM}-done", "job")
    lost = len(sent - set(handled)) - dead
    duplicated = sum(n - 1 for n in handled.values())
    print(f"soak: sent={len(sent)} entries={r.xlen(STREAM)} handled={len(set(handled) & sent)} "
          f"dead_lettered={dead} duplicated={duplicated} lost={lost} "
          f"outputs={len(outputs & sent)} kills={kills} lives_b={soak.lives['soak-b']}")
    a = [(s.handled.get("soak-a", 0), s.rss["soak-a"] / 1024) for s in soak.samples
         if s.t >= WARMUP_S]
    print("soak-a RSS (MiB) by minute: " + ", ".join(
        f"{s.t / 60:.0f}:{s.rss['soak-a'] / 1024:.1f}" for s in soak.samples))
    print("soak-b RSS (MiB) by minute: " + ", ".join(
        f"{s.t / 60:.0f}:{s.rss['soak-b'] / 1024:.1f}" for s in soak.samples))
    if len(a) >= 2:
        print(f"soak-a: {a[-1][0] - a[0][0]} events handled after minute {WARMUP_S / 60:.0f}; "
              f"RSS {a[0][1]:.1f} -> {a[-1][1]:.1f} MiB; growth "
              f"{slope(a) * 100_000:+.1f} MiB per 100k events (least squares)")
    return 0 if lost == 0 else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--minutes", type=float, default=22.0)
    parser.add_argument("--kill-every", type=float, default=60.0)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--redis-down", type=float, default=5.0,
                        help="seconds the messenger's Redis stays stopped")
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="sm-soak-"))
    workdir.mkdir(parents=True, exist_ok=True)
    return run(args, workdir)


if __name__ == "__main__":
    sys.exit(main())
