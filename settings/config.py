"""The mutable configuration's models: configs/config.dev.yaml, the seed's keys plus the delivery
policy's knobs and the feature parameters (hot-reloaded by settings.live).

Every field has a default named here; an unknown key or a wrong type is an error naming its path.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from core.keys import DEFAULT_GROUP
from features import FeatureParams

STREAM_NAME = r"^[^\s*?\[\]]{1,200}$"

# How long the worker's Redis connections wait for a reply (app.main sets it; FastStream sets
# none and redis-py's default may change). It is what finds a half-open connection (a NAT or
# load balancer that dropped its state: no FIN, no RST, keepalive answered by a middlebox), so a
# blocking XREADGROUP must end well within it: hence block_ms's bound (2 s of margin for a
# loaded host). Measured: a half-open link is seen 5.0 s after the cut
# (tests/system/test_faults_halfopen.py).
REDIS_SOCKET_TIMEOUT_S = 5.0
MAX_BLOCK_MS = int(REDIS_SOCKET_TIMEOUT_S * 1000) - 2000
# Streams one file may name (each read stream is a loop, each unknown one a log line): far
# above any real deployment, far below what would swamp the worker.
MAX_STREAMS = 1000


class _Strict(BaseModel):
    """Unknown keys refused; no conversion between types (`true` is not 1, `1` not true, "5"
    not 5): a YAML value of the wrong type is a mistake to report, not to guess at."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


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
        None, max_length=MAX_STREAMS, strict=False,  # a YAML list (strict wants a tuple)
        description="the streams to read; unset = every stream a handler subscribes to")
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
        default_factory=dict, max_length=MAX_STREAMS,
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


# Bounds of a configuration file, so that no file can make a reload hang or eat memory: its
# size, its nodes once aliases are expanded (an alias bomb — a few lines of anchors that expand
# to billions of values — is refused before anything is built from it) and its depth (the
# real file is 4 deep).
MAX_BYTES = 256 * 1024
MAX_NODES = 20_000
MAX_DEPTH = 64
SHOWN = 60  # characters of a wrong value (or key) quoted in an error
SHOWN_PROBLEMS = 5


def parse(data: str | bytes, source: str = "config") -> Config:
    """The configuration in `data` (the file's bytes, or text), or ConfigError: one line that
    names the source, the key path and what is wrong."""
    if isinstance(data, bytes):
        if len(data) > MAX_BYTES:
            raise ConfigError(f"{source}: over {MAX_BYTES} bytes; not read")
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ConfigError(f"{source}: not UTF-8 text (byte 0x{data[exc.start]:02x} at "
                              f"offset {exc.start})") from None
    raw = _yaml(data, source)
    if raw is None:  # an empty file is far more often a save caught half-way than a choice
        raise ConfigError(f"{source}: empty (no settings); write {{}} for all the defaults")
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: the top level must be a mapping, got {type(raw).__name__}")
    try:
        return Config.model_validate(raw)
    except ValidationError as exc:
        problems = [_problem(e) for e in exc.errors()]
        more = len(problems) - SHOWN_PROBLEMS
        raise ConfigError(f"{source}: " + "; ".join(problems[:SHOWN_PROBLEMS])
                          + (f"; and {more} more" if more > 0 else "")) from None


def _problem(e: Any) -> str:
    where = ".".join(_key(p) for p in e["loc"]) or "(top)"
    if e["type"] == "missing" or isinstance(e["input"], dict | list | tuple):
        return f"{where}: {_one_line(e['msg'])}"
    shown = repr(e["input"])
    shown = shown if len(shown) <= SHOWN else shown[:SHOWN] + "…"
    return f"{where}: {_one_line(e['msg'])} (got {shown})"


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _key(part: object) -> str:
    """A key of an error's path as written, or quoted when it is not plain (spaces, newlines,
    control characters, a dot) and cut to SHOWN characters: the error stays one line."""
    text = str(part)
    if not text or not text.isprintable() or any(c.isspace() or c == "." for c in text):
        text = repr(text)
    return text if len(text) <= SHOWN else text[:SHOWN] + "…"


class _Refused(Exception):
    """What _checked (or _Loader) found: the reason, for ConfigError."""


class _Loader(yaml.SafeLoader):
    """SafeLoader that stops composing past MAX_DEPTH: the composer recurses once per level, so
    a file of nothing but `[` would otherwise run into Python's stack (slowly)."""

    depth = 0

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        self.depth += 1
        try:
            if self.depth > MAX_DEPTH:
                raise _Refused(f"nested deeper than {MAX_DEPTH} levels (line "
                               f"{self.peek_event().start_mark.line + 1})")
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


def _yaml(text: str, source: str) -> Any:
    """safe_load, but refusing what would expand past MAX_NODES, nest past MAX_DEPTH (or
    Python's stack), refer to itself, or repeat a key."""
    loader: _Loader | None = None
    try:
        loader = _Loader(text)  # checks the characters: it may refuse already
        node = loader.get_single_node()
        if node is None:
            return None
        _checked(node)
        return loader.construct_document(node)
    except _Refused as exc:
        raise ConfigError(f"{source}: {exc}; not loaded") from None
    except yaml.reader.ReaderError as exc:
        raise ConfigError(f"{source}: not valid YAML (character #x{exc.character:04x} at "
                          f"character {exc.position} is not allowed)") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        problem = _one_line(str(getattr(exc, "problem", None) or exc))
        raise ConfigError(f"{source}{where}: not valid YAML ({problem})") from None
    except RecursionError:
        raise ConfigError(f"{source}: nested deeper than {MAX_DEPTH} levels; not loaded") from None
    finally:
        if loader is not None:
            loader.dispose()


def _checked(root: yaml.Node) -> None:
    """Raise _Refused if `root` stands for more than MAX_NODES nodes with every alias expanded
    (counted without expanding: each node once, a shared one adding its size at each use),
    nests deeper than MAX_DEPTH, contains itself, or has a mapping with a key twice (PyYAML
    would keep the last one silently)."""
    sizes: dict[int, int] = {}
    open_: set[int] = set()  # being counted: met again below itself, it is a cycle (`&a [*a]`)
    shared = False
    stack: list[tuple[yaml.Node, int, bool]] = [(root, 1, False)]
    while stack:
        node, depth, ready = stack.pop()
        key = id(node)
        if ready:
            sizes[key] = min(1 + sum(sizes[id(c)] for c in _children(node)), MAX_NODES + 1)
            open_.discard(key)
            continue
        if key in open_:
            raise _Refused(f"an alias refers to a node that contains it (a cycle: the node "
                           f"anchored on line {node.start_mark.line + 1})")
        if key in sizes:
            shared = True
            continue
        if depth > MAX_DEPTH:
            raise _Refused(f"nested deeper than {MAX_DEPTH} levels (line "
                           f"{node.start_mark.line + 1})")
        children = _children(node)
        if not children:
            sizes[key] = 1
            continue
        if isinstance(node, yaml.MappingNode):
            _unique_keys(node)
        open_.add(key)
        stack.append((node, depth, True))
        stack.extend((c, depth + 1, False) for c in children)
    if sizes[id(root)] > MAX_NODES:
        raise _Refused(f"more than {MAX_NODES} values"
                       + (" once its aliases are expanded (an alias bomb?)" if shared else ""))


def _unique_keys(node: yaml.MappingNode) -> None:
    seen: set[tuple[str, str]] = set()
    for k, _ in node.value:
        if isinstance(k, yaml.ScalarNode):
            if (k.tag, k.value) in seen:
                raise _Refused(f"the key {_key(k.value)} appears twice in one mapping (line "
                               f"{k.start_mark.line + 1})")
            seen.add((k.tag, k.value))


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    return []


def load(path: Path) -> Config:
    """The configuration in the file at `path` (ConfigError if it cannot be read or is bad)."""
    return parse(read(path), str(path))


def read(path: Path) -> bytes:
    """The file's bytes, at most one more than MAX_BYTES (so a huge file is not read whole)."""
    try:
        with path.open("rb") as f:
            return f.read(MAX_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read ({exc.strerror or exc})") from None
