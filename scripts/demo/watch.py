"""Waiting in the demo: for a condition with the run's deadline, a progress line a second, the
downstream consumers' lines echoed, and a child that exits unexpectedly ending the wait."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from typing import IO

import redis

from scripts.demo.summary import stream_state
from scripts.flow import DLQ, DOWNSTREAM, GROUP, IN_STREAMS, OUT_STREAMS, short
from scripts.processes import Process


class DemoFailed(Exception):
    """The demo cannot go on; the message says why (one line or a few)."""


class Watch:
    def __init__(self, out: IO[str], r: redis.Redis, deadline: float, started: float) -> None:
        self.out, self.r, self.deadline, self.started = out, r, deadline, started
        self.apps: list[Process] = []  # must keep running until stopped
        self.downstream: list[Process] = []  # idem, and their lines are echoed
        self._last_tick = 0.0
        self._last_status = ""

    def say(self, message: str = "") -> None:
        self.out.write(message + "\n")
        self.out.flush()

    def stamp(self) -> str:
        return f"[{time.monotonic() - self.started:5.1f}s]"

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
        """Until every group has no lag and nothing pending on its streams."""
        def drained() -> bool:
            return not any(sum(stream_state(self.r, stream, group)[1:])
                           for group, streams in groups.items() for stream in streams)

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
        """The progress line, at most once a second (and once more when it changed)."""
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
        r = self.r
        try:
            parts, pending = [], 0
            for stream in IN_STREAMS:
                length, lag, pend = stream_state(r, stream, GROUP)
                parts.append(f"{short(stream)} {length - lag - pend}/{length}")
                pending += pend
            line = (f"{GROUP}: {' '.join(parts)} acked, {pending} pending, "
                    f"dlq {int(r.xlen(DLQ))} | out: "
                    + " ".join(f"{short(s)} {int(r.xlen(s))}" for s in OUT_STREAMS))
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
