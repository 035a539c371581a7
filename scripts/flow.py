"""The demo's streams, event types and groups, as secretmagic names them: the handlers' routing
table (handlers.routes), the workers' YAML (configs/config.dev.yaml: the streams read, where
outputs go, the consumer group) and core.keys (the dead-letter stream, the error hash).

    STREAM_OF[event_type]      the stream an incoming event type is published to
    IN_STREAMS                 the streams the workers read, in the YAML's order
    OUTPUT_OF[event_type]      the stream an outgoing event type goes to
    OUT_STREAMS                the output streams, in the YAML's order
    DOWNSTREAM[group]          the streams the seed's downstream consumer groups read
"""

from __future__ import annotations

from pathlib import Path

from core.keys import dlq_stream, errors_key
from handlers import routes
from settings.config import load

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "configs" / "config.dev.yaml"

_config = load(CONFIG).messenger
GROUP = _config.subscriber.consumer_group
DLQ = dlq_stream(GROUP)
ERRORS = errors_key(GROUP)  # where the policy keeps a pending entry's last error

STREAM_OF = {route.event_type: route.stream for route in routes.table()}
IN_STREAMS = tuple(_config.subscriber.streams or routes.streams())
_unread = sorted(set(STREAM_OF.values()) - set(IN_STREAMS))
if _unread:  # the demo publishes every event type: each must reach a worker
    raise RuntimeError(f"{CONFIG}: subscriber.streams leaves out {', '.join(_unread)}")

_declared = routes.outputs()
OUTPUT_OF = {event_type: _config.publisher.streams.get(event_type, streams[0])
             for event_type, streams in _declared.items()}
OUT_STREAMS = tuple(dict.fromkeys(
    OUTPUT_OF[t] for t in [*_config.publisher.streams, *_declared] if t in OUTPUT_OF))

# The seed's consumers of secretmagic's output: the trainer wants features, analytics all.
DOWNSTREAM = {"trainer-group": (OUTPUT_OF["features_updated"],),
              "analytics-group": OUT_STREAMS}


def short(stream: str) -> str:
    """A stream's name in the progress line (`sales-updates` -> `sales`)."""
    return stream.removesuffix("-updates")
