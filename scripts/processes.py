"""Child processes of the demo and the tests, started one way, and waiting with a deadline.

    Process(name, argv, env, workdir)        a child, its output in <workdir>/<name>.log
    AppProcess(target, env, workdir, name)   `faststream run <target>`: a secretmagic worker
    app_processes(*apps)                     start them; stop them at the end, whatever happens
    wait_for(condition, timeout, what)       poll until truthy (never a fixed sleep)

Every child (the servers of scripts.servers too) starts in a session of its own, so that a
terminal's Ctrl-C reaches the parent alone, which stops its children in order (workers before the
servers they use); on Linux it also gets SIGTERM if the parent dies, even by SIGKILL.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

ROOT = Path(__file__).resolve().parent.parent
# What configures a worker: a child gets only what its starter gives it of these.
SERVICE_VARS = ("MESSENGER_", "STORE_", "LOGS_", "SECRETMAGIC_", "METRICS_", "OUTBOX_")


def wait_for(condition: Callable[[], object], timeout: float, what: str) -> None:
    """Poll `condition` until it is truthy; after `timeout` seconds fail naming `what`: with the
    exception the condition raised last, if its last call raised (a typo is not a timeout), else
    with TimeoutError."""
    deadline = time.monotonic() + timeout
    while True:
        failure: Exception | None = None
        try:
            if condition():
                return
        except Exception as exc:
            failure = exc
        if time.monotonic() >= deadline:
            break
        time.sleep(0.05)
    message = f"timed out after {timeout:.0f}s waiting for {what}"
    if failure is not None:
        failure.add_note(message)
        raise failure
    raise TimeoutError(message)


# --- children in sessions of their own, that die with their parent ------------------------------


def _load_prctl() -> Any:
    try:  # resolved here, in the parent: the child between fork and exec only calls it
        return ctypes.CDLL("libc.so.6", use_errno=True).prctl
    except (OSError, AttributeError):  # not Linux: children are stopped by their parent only
        return None


_PRCTL = _load_prctl()
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the child, before exec: SIGTERM when the parent dies."""
    if _PRCTL is not None:
        _PRCTL(_PR_SET_PDEATHSIG, signal.SIGTERM)


def child_options() -> dict[str, Any]:
    """Popen options for every child. The parent-death signal follows the *thread* that started
    the child, so only children of the main thread get it (a worker thread may end early)."""
    options: dict[str, Any] = {"start_new_session": True}
    if threading.current_thread() is threading.main_thread():
        options["preexec_fn"] = _die_with_parent
    return options


def child_env(extra: Mapping[str, str]) -> dict[str, str]:
    """This process's environment without the service variables, plus `extra`."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(SERVICE_VARS)}
    return {**base, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1", **extra}


# --- a child process -----------------------------------------------------------------------------


class Process:
    """A child process, its output (stdout and stderr) appended to <workdir>/<name>.log."""

    def __init__(self, name: str, argv: list[str], env: Mapping[str, str], workdir: Path) -> None:
        self.name, self.argv = name, argv
        self.env = child_env(env)
        self.log_path = workdir / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.returncode: int | None = None  # once stopped
        self._read = 0  # how much of the output new_lines() has handed out
        self._terminated = False

    def start(self) -> Process:
        self._terminated, self.returncode = False, None
        with self.log_path.open("ab") as log:  # the child holds its own descriptor
            self.proc = subprocess.Popen(self.argv, cwd=ROOT, env=self.env, stdout=log,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         **child_options())
        return self

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def new_lines(self) -> list[str]:
        """The complete lines written since the last call."""
        text = self.output
        complete = text[: text.rfind("\n") + 1]
        fresh, self._read = complete[self._read:], max(self._read, len(complete))
        return fresh.splitlines()

    def tail(self, n: int = 12) -> str:
        return "\n".join("    " + ln for ln in self.output.splitlines()[-n:])

    def wait_output(self, text: str, timeout: float = 30.0) -> None:
        """Wait for `text` in the output; give up at once if the process exits without it."""
        with contextlib.suppress(TimeoutError):
            wait_for(lambda: text in self.output or not self.running, timeout, repr(text))
        if text not in self.output:
            raise AssertionError(f"{self.name}: {text!r} not in its output:\n"
                                 f"{self.output[-3000:]}")

    def signal(self, sig: int) -> None:
        assert self.proc
        if sig == signal.SIGTERM:
            self._terminated = True
        self.proc.send_signal(sig)

    def terminate(self) -> None:
        """SIGTERM, once: a second one means "exit now" to secretmagic (app.main)."""
        if self.running and not self._terminated:
            with contextlib.suppress(ProcessLookupError):
                self.signal(signal.SIGTERM)

    def kill(self) -> None:
        self.signal(signal.SIGKILL)
        self.wait(10)

    def wait(self, timeout: float) -> int:
        assert self.proc
        return self.proc.wait(timeout)

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM (the graceful stop), SIGKILL after `timeout`; the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.returncode = self.proc.returncode
        return self.returncode


class AppProcess(Process):
    """`faststream run <target>` with a worker's defaults: consumer name = `name`, metrics on a
    free port, an outbox file of its own, the store in memory; `env` overrides them."""

    def __init__(self, target: str, env: Mapping[str, str], workdir: Path, name: str) -> None:
        defaults = {"METRICS_PORT": "0", "SECRETMAGIC_CONSUMER": name, "STORE_DSN": "chdb://",
                    "OUTBOX_PATH": str(workdir / f"{name}-outbox.sqlite3")}
        super().__init__(name, [sys.executable, "-m", "faststream", "run", target],
                         {**defaults, **env}, workdir)
        self.target = target


P = TypeVar("P", bound=Process)


@contextlib.contextmanager
def app_processes(*apps: P) -> Iterator[tuple[P, ...]]:
    """Start `apps`; at the end SIGTERM them all at once, then wait for each."""
    try:
        for a in apps:
            a.start()
        yield apps
    finally:
        for a in apps:
            a.terminate()
        for a in apps:
            a.stop()
