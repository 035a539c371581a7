"""A full disk under the outbox: the outbox file on a small tmpfs of the test's own, filled up
while Redis is down and a real worker's outputs wait there.

An event whose output can be neither sent nor stored is not acked: its handler fails with
Unavailable naming the outbox's path and the space left (one error line), and it is retried,
never dead-lettered. When Redis returns the outbox sends what it holds; the full disk will not
let it delete those rows, so they are remembered as sent (not sent again) and deleted when space
returns.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sqlite3
import subprocess
from collections.abc import Iterable, Iterator
from pathlib import Path

import redis

from tests import services
from tests.apps.probes import (
    GROUP,
    TARGET,
    Counts,
    dead_letters,
    flowing,
    handled,
    outputs,
    recorder_env,
    started,
)
from tests.harness import AppProcess, app_processes, job, unique

DISK = "2m"


@contextlib.contextmanager
def tmpfs(path: Path, size: str) -> Iterator[Path]:
    """A filesystem of `size` at `path` (tmpfs; the tests run as root here)."""
    path.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                   check=True, capture_output=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False, capture_output=True)


def fill_disk(path: Path) -> int:
    """Write `path` until the filesystem refuses one more byte; the bytes written."""
    written = 0
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        for size in (1 << 16, 1 << 10, 1):
            while True:
                try:
                    written += os.write(fd, b"\0" * size)
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise
                    break
    finally:
        os.close(fd)
    return written


def release(gates: Path, ids: Iterable[str]) -> None:
    for event_id in ids:
        (gates / event_id).touch()


def rows(box: Path) -> int:
    with sqlite3.connect(f"file:{box}?mode=ro", uri=True) as db:
        return int(db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])


def test_full_disk_under_the_outbox_acks_nothing_unstored_and_recovers(
        redis_url: str, tmp_path: Path) -> None:
    books = redis.Redis.from_url(redis_url)
    stream, prefix = unique("disk"), unique("rec")
    with tmpfs(tmp_path / "disk", DISK) as disk, services.private_redis(
            "--appendonly", "yes", "--appendfsync", "always") as server:
        r = redis.Redis.from_url(server.url)
        box, filler, gates = disk / "outbox.sqlite3", disk / "filler", tmp_path / "gates"
        gates.mkdir()
        env = {**recorder_env(server.url, tmp_path, stream, prefix),
               "RECORDER_REDIS_URL": redis_url, "RECORDER_WORK_MS": "20",
               "OUTBOX_PATH": str(box)}
        # The held jobs finish only when the test creates their gate files: the first one's
        # output reaches the outbox before the disk fills, the others' after it.
        free = [job() for _ in range(40)]
        held = [job(hold=str(gates)) for _ in range(60)]
        sent = free + held
        ids = {f["event_id"] for f in sent}
        held_ids = {f["event_id"] for f in held}
        with app_processes(AppProcess(TARGET, env, tmp_path, "disk")) as (app,):
            flowing(app, r, stream, sent, books, prefix, at_least=len(free))
            services.wait_for(lambda: len(started(books, prefix) & held_ids) >= 2, 30,
                              "two held jobs in flight")
            in_flight = sorted(started(books, prefix) & held_ids)
            server.kill()  # the outputs of the handlers in flight go to the outbox
            release(gates, in_flight[:1])
            services.wait_for(lambda: rows(box) >= 1, 10, "an output in the outbox")
            filled = fill_disk(filler)  # and the next ones find no room
            release(gates, held_ids)
            app.wait_output("cannot store the event: the disk is full", timeout=30)
            queued = rows(box)
            server.start()  # Redis is back; the disk is still full
            app.wait_output("sent events cannot be deleted", timeout=30)
            services.wait_for(lambda: set(handled(books, prefix)) >= ids, 60, "all handled")
            undeleted = rows(box)
            filler.unlink()  # space returns: the sent rows go
            services.wait_for(lambda: rows(box) == 0, 30, "the outbox emptied")
            services.wait_for(lambda: {o["job"] for o in outputs(r, stream)} >= ids, 30,
                              "every output in Redis")
            services.wait_for(lambda: r.xpending(stream, GROUP)["pending"] == 0, 30,
                              "nothing pending")
        found = outputs(r, stream)
        counts = Counts("outbox disk full", ids, handled(books, prefix),
                        len(dead_letters(r, GROUP, stream)), [o["job"] for o in found]).report(
            filler_bytes=filled, queued_before_full=queued, sent_but_undeletable=undeleted,
            output_copies=len(found))
    line = next(ln for ln in app.output.splitlines() if "the disk is full" in ln)
    print(line[:400])
    assert counts.lost == 0 and counts.dead_lettered == 0
    assert str(box) in line and "free of" in line  # names the path and the space
    assert queued >= 1 and undeleted >= queued
    # Every output is in Redis; a copy more only where its handler ran twice (a Redis restart
    # between publish and ack), never one the outbox sent again.
    assert len(found) <= len(ids) + counts.duplicated
