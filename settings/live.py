"""Hot reload of the mutable configuration (seed «Mutable … hot-reload без перезапуска»).

`LiveConfig.current` is always the last valid configuration; readers take it per event, so a
change applies to the next event or publish. A file that fails validation (bad YAML, a wrong type,
an unknown key) is rejected with one log line naming the key path and the reason, and the last good
configuration stays. `consumer_group` is fixed for the life of the process (it names the group the
consumers belong to): a change is logged as applying on restart and otherwise ignored.

The file is read once per reload, bounded (settings.config.read: at most MAX_BYTES + 1 bytes,
so a huge file is never read whole), and those bytes are both compared with the last ones seen
(no reload when unchanged) and parsed, off the event loop (a 256 KiB file takes pure-Python
YAML a while). A reload happens only on a change of the bytes: at most one per write.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import Awaitable, Callable
from pathlib import Path

from core import logs
from settings.config import Config, ConfigError, parse, read

log = logs.get("config")

Listener = Callable[[Config, Config], Awaitable[None]]


class LiveConfig:
    """The current configuration, swapped atomically on a valid change of the file.

    `on_result("applied" | "rejected")` is told of every reload attempt that read a changed file
    (the app counts them in a metric).
    """

    def __init__(self, path: Path | None, initial: Config | None = None,
                 on_result: Callable[[str], None] | None = None) -> None:
        self.path = path
        data = read(path) if path and initial is None else self._read()
        self.current = initial or (parse(data, str(path)) if path and data is not None
                                   else Config())
        self.on_result = on_result
        self._digest = _digest(data)
        self._listeners: list[Listener] = []
        self._task: asyncio.Task[None] | None = None

    def subscribe(self, listener: Listener) -> None:
        """`listener(old, new)` runs after each applied change."""
        self._listeners.append(listener)

    def _read(self) -> bytes | None:
        """The file's bytes (bounded), or None when there is no file to read."""
        if self.path is None:
            return None
        with contextlib.suppress(ConfigError):
            return read(self.path)
        return None

    def _result(self, result: str) -> None:
        if self.on_result:
            self.on_result(result)

    async def reload(self) -> bool:
        """Re-read the file; apply it if it changed and is valid. True when applied."""
        data = self._read()
        if self.path is None or data is None or _digest(data) == self._digest:
            return False
        self._digest = _digest(data)
        try:
            new = await asyncio.to_thread(parse, data, str(self.path))
        except ConfigError as exc:
            self._result("rejected")
            log.error("configuration rejected, keeping the last good one: %s", exc,
                      path=str(self.path))
            return False
        old = self.current
        old_group = old.messenger.subscriber.consumer_group
        if new.messenger.subscriber.consumer_group != old_group:
            log.warning("consumer_group change to %r applies on restart only; still using %r",
                        new.messenger.subscriber.consumer_group, old_group, path=str(self.path))
            subscriber = new.messenger.subscriber.model_copy(update={"consumer_group": old_group})
            messenger = new.messenger.model_copy(update={"subscriber": subscriber})
            new = new.model_copy(update={"messenger": messenger})
        if new == old:
            return False
        self.current = new
        self._result("applied")
        log.info("configuration reloaded", path=str(self.path))
        for listener in self._listeners:
            await listener(old, new)
        return True

    def start(self) -> None:
        if self.path is not None and self._task is None:
            self._task = asyncio.create_task(self._watch(), name="config-watch")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _watch(self) -> None:
        """inotify (watchfiles) on the directory, so editors' rename-on-save is seen; where the
        filesystem gives no events, polling every 250 ms still applies a change within a second."""
        assert self.path is not None
        name = self.path.name
        try:
            from watchfiles import awatch

            async for _ in awatch(self.path.parent, debounce=50, step=25,
                                  watch_filter=lambda _, p: Path(p).name == name,
                                  rust_timeout=250, yield_on_timeout=True):
                await self._safe_reload()
        except Exception as exc:  # no inotify here (or it failed): poll instead
            log.warning("file watcher unavailable (%s); polling %s", exc, self.path)
            while True:
                await asyncio.sleep(0.25)
                await self._safe_reload()

    async def _safe_reload(self) -> None:
        try:
            await self.reload()
        except Exception:
            log.exception("applying the configuration failed", path=str(self.path))


def _digest(data: bytes | None) -> str | None:
    return hashlib.sha256(data).hexdigest() if data is not None else None
