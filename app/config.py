"""Mutable configuration: configs/config.dev.yaml (the seed's keys), hot-reloaded without restart.

`LiveConfig.current` is always the last valid configuration; readers take it per event, so a
change applies to the next event or publish. A file that fails validation (bad YAML, a wrong type,
an unknown key) is rejected with one log line naming the key path and the reason, and the last good
configuration stays. `consumer_group` is fixed for the life of the process (it names the group the
consumers belong to): a change is logged as applying on restart and otherwise ignored.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from features import FeatureParams

log = logging.getLogger("secretmagic")

STREAM_NAME = r"^[^\s*?\[\]]{1,200}$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Backoff(_Strict):
    """Delay before a failed entry is delivered again: base * factor^(deliveries-1), capped."""

    base_ms: int = Field(500, ge=0)
    factor: float = Field(2.0, ge=1.0)
    max_ms: int = Field(60_000, ge=0)
    jitter: float = Field(0.1, ge=0.0, le=1.0, description="± fraction of the delay, at random")


class Subscriber(_Strict):
    enabled: bool = True
    consumer_group: str = Field("secretmagic-group", pattern=STREAM_NAME)
    streams: tuple[str, ...] = (
        "sales-updates",
        "stock-updates",
        "bom-updates",
        "products-updates",
    )
    # Delivery policy (app.consumer). Defaults suit a handler that takes well under a minute.
    batch_size: int = Field(10, ge=1, le=10_000, description="entries per XREADGROUP (seed: 10)")
    block_ms: int = Field(1000, ge=10, le=60_000, description="XREADGROUP BLOCK; bounds stop time")
    concurrency: int = Field(4, ge=1, le=256, description="handlers running at once per stream")
    coalesce: bool = Field(True, description="one recompute per client per batch (sales/stock)")
    claim_idle_ms: int = Field(
        60_000, ge=100, description="another consumer's pending entry is taken after this idle time"
    )
    claim_interval_ms: int = Field(1000, ge=50, description="how often pending entries are checked")
    max_deliveries: int = Field(5, ge=1, description="then the entry goes to the DLQ")
    backoff: Backoff = Backoff()
    group_start_id: str = Field(
        "0", description="where a NEW group starts: 0 = entries already in the stream, $ = new only"
    )
    dedup_window_s: int = Field(86_400, ge=0, description="duplicate event_ids skipped; 0 = off")
    consumer_idle_timeout_s: int = Field(
        3600, ge=1, description="consumers idle this long with nothing pending are removed"
    )

    @model_validator(mode="after")
    def _distinct_streams(self) -> Subscriber:
        if len(set(self.streams)) != len(self.streams):
            raise ValueError("streams: a stream is listed twice")
        return self


class Publisher(_Strict):
    enabled: bool = True
    max_length: int = Field(10_000, ge=1, description="MAXLEN ~ on every publish (retention)")
    streams: dict[str, str] = Field(
        default_factory=lambda: {
            "features_updated": "features-updates",
            "bom_exploded": "bom-exploded",
        },
        description="event_type -> stream",
    )


class Messenger(_Strict):
    subscriber: Subscriber = Subscriber()
    publisher: Publisher = Publisher()


class Bom(_Strict):
    max_depth: int = Field(32, ge=1, le=1000)


class Config(_Strict):
    messenger: Messenger = Messenger()
    features: FeatureParams = FeatureParams()
    bom: Bom = Bom()


class ConfigError(ValueError):
    """An invalid configuration file; the message names the file, the key path and the reason."""


def parse(text: str, source: str = "config") -> Config:
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        problem = getattr(exc, "problem", exc)
        raise ConfigError(f"{source}{where}: not valid YAML ({problem})") from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: the top level must be a mapping, got {type(raw).__name__}")
    try:
        return Config.model_validate(raw)
    except ValidationError as exc:
        problems = [
            f"{'.'.join(str(p) for p in e['loc']) or '(top)'}: {e['msg']}"
            + (f" (got {e['input']!r})" if e["type"] != "missing" and not isinstance(
                e["input"], dict) else "")
            for e in exc.errors()
        ]
        raise ConfigError(f"{source}: " + "; ".join(problems)) from None


def load(path: Path) -> Config:
    try:
        return parse(path.read_text(), str(path))
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None


Listener = Callable[[Config, Config], Awaitable[None]]


class LiveConfig:
    """The current configuration, swapped atomically on a valid change of the file."""

    def __init__(self, path: Path | None, initial: Config | None = None) -> None:
        self.path = path
        self.current = initial or (load(path) if path else Config())
        self._digest = self._read_digest()
        self._listeners: list[Listener] = []
        self._task: asyncio.Task[None] | None = None
        self.reloads = 0

    def subscribe(self, listener: Listener) -> None:
        """`listener(old, new)` runs after each applied change."""
        self._listeners.append(listener)

    def _read_digest(self) -> str | None:
        if self.path is None:
            return None
        with contextlib.suppress(OSError):
            return hashlib.sha256(self.path.read_bytes()).hexdigest()
        return None

    async def reload(self) -> bool:
        """Re-read the file; apply it if it changed and is valid. True when applied."""
        digest = self._read_digest()
        if self.path is None or digest is None or digest == self._digest:
            return False
        self._digest = digest
        try:
            new = load(self.path)
        except ConfigError as exc:
            _count_reload("rejected")
            log.error("configuration rejected, keeping the last good one: %s", exc,
                      extra={"category": "messenger", "context": {"path": str(self.path)}})
            return False
        old = self.current
        old_group = old.messenger.subscriber.consumer_group
        if new.messenger.subscriber.consumer_group != old_group:
            log.warning(
                "consumer_group change to %r applies on restart only; still using %r",
                new.messenger.subscriber.consumer_group, old_group,
                extra={"category": "messenger", "context": {"path": str(self.path)}},
            )
            subscriber = new.messenger.subscriber.model_copy(update={"consumer_group": old_group})
            messenger = new.messenger.model_copy(update={"subscriber": subscriber})
            new = new.model_copy(update={"messenger": messenger})
        if new == old:
            return False
        self.current = new
        self.reloads += 1
        _count_reload("applied")
        log.info("configuration reloaded", extra={"category": "messenger",
                                                  "context": {"path": str(self.path)}})
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
            log.warning("file watcher unavailable (%s); polling %s", exc, self.path,
                        extra={"category": "messenger", "context": {}})
            while True:
                await asyncio.sleep(0.25)
                await self._safe_reload()

    async def _safe_reload(self) -> None:
        try:
            await self.reload()
        except Exception:
            log.exception("applying the configuration failed",
                          extra={"category": "messenger", "context": {"path": str(self.path)}})


def _count_reload(result: str) -> None:
    with contextlib.suppress(ImportError):
        from app.metrics import CONFIG_RELOADS

        CONFIG_RELOADS.labels(result).inc()


def as_yaml(config: Config) -> str:
    data: dict[str, Any] = config.model_dump(mode="json")
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
