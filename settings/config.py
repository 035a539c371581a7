"""The mutable configuration's models: configs/config.dev.yaml, the seed's keys plus the delivery
policy's knobs and the feature parameters (hot-reloaded by settings.live).

Every field has a default named here; an unknown key or a wrong type is an error naming its path.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from core.keys import DEFAULT_GROUP
from features import FeatureParams

STREAM_NAME = r"^[^\s*?\[\]]{1,200}$"

# How long the worker's Redis connections wait for a reply (app.main sets it; FastStream sets
# none and redis-py's default may change). It is what finds a half-open connection (a NAT or
# load balancer that dropped its state: no FIN, no RST, keepalive answered by a middlebox), so a
# blocking XREADGROUP must end well within it: hence block_ms's bound (2 s of margin for a
# loaded host). Measured: a half-open link is seen 5.0 s after the cut (tests/test_faults_halfopen).
REDIS_SOCKET_TIMEOUT_S = 5.0
MAX_BLOCK_MS = int(REDIS_SOCKET_TIMEOUT_S * 1000) - 2000


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Backoff(_Strict):
    """Delay before a failed entry is delivered again: base * factor^(deliveries-1), capped."""

    base_ms: int = Field(500, ge=0, description="the delay after the first failed delivery")
    factor: float = Field(2.0, ge=1.0, description="growth per further delivery")
    max_ms: int = Field(60_000, ge=0, description="the cap; also the retry pace in an outage")
    jitter: float = Field(0.1, ge=0.0, le=1.0, description="± fraction of the delay, at random")


class Subscriber(_Strict):
    enabled: bool = Field(True, description="false: stop reading (in-flight work finishes)")
    consumer_group: str = Field(DEFAULT_GROUP, pattern=STREAM_NAME,
                                description="applies on restart only")
    streams: tuple[str, ...] | None = Field(
        None, description="the streams to read; unset = every stream a handler subscribes to")
    # The delivery policy (app.delivery). Defaults suit a handler that takes well under a minute.
    batch_size: int = Field(10, ge=1, le=10_000, description="entries per XREADGROUP (seed: 10)")
    block_ms: int = Field(1000, ge=10, le=MAX_BLOCK_MS,
                          description="XREADGROUP BLOCK; bounds stop time; < the socket timeout")
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
        if self.streams is not None and len(set(self.streams)) != len(self.streams):
            raise ValueError("streams: a stream is listed twice")
        return self


class Publisher(_Strict):
    enabled: bool = Field(True, description="false: publishing is a logged no-op")
    max_length: int = Field(10_000, ge=1, description="MAXLEN ~ on every publish (retention)")
    streams: dict[str, str] = Field(
        default_factory=dict,
        description="event_type -> stream, over the streams the handlers' publishers declare",
    )


class Messenger(_Strict):
    subscriber: Subscriber = Subscriber()
    publisher: Publisher = Publisher()


class Bom(_Strict):
    max_depth: int = Field(32, ge=1, le=1000, description="a deeper BOM is a FatalError")


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
