"""The Prometheus counters and histograms the worker updates, on one registry, `REGISTRY`.

FastStream's RedisPrometheusMiddleware is given the same registry and measures what it measures
(messages received/processed and their duration per handler). Here is what it lacks, updated by
the delivery policy, the publisher and the log sink:

    secretmagic_events_total{stream,outcome}   handled, duplicate, retried, dead_lettered,
                                               coalesced, malformed
    secretmagic_claims_total{stream}           pending entries taken over from other consumers
    secretmagic_redis_reconnects_total         Redis reachable again after it was lost
    secretmagic_group_recreated_total{stream}  consumer groups recreated after NOGROUP
    secretmagic_config_reloads_total{result}   applied, rejected
    secretmagic_published_total{stream,route}  direct, outbox, disabled
    secretmagic_outbox_queued_total{reason}    why an event went to the outbox: unreachable,
                                               out_of_memory, read_only, loading, … or behind
                                               (others of its stream were waiting already)
    secretmagic_delivery_refused_total{stream,reason}
                                               entries whose claim, failure record or DLQ
                                               copy Redis refused for a while (out_of_memory,
                                               read_only, …): left pending, waited out
    secretmagic_handle_seconds{stream}         handler time per run
    secretmagic_log_records_dropped_total      the PostgreSQL log buffer was full

The gauges read from Redis at scrape time are app.observability.collector's; /metrics and /health
are served by app.observability.health.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

REGISTRY = CollectorRegistry()

EVENTS = Counter(
    "secretmagic_events_total",
    "Events by stream and outcome (handled, duplicate, retried, dead_lettered, coalesced, "
    "malformed)",
    ["stream", "outcome"],
    registry=REGISTRY,
)
CLAIMS = Counter(
    "secretmagic_claims_total",
    "Pending entries of idle consumers claimed by this instance (XAUTOCLAIM)",
    ["stream"],
    registry=REGISTRY,
)
RECONNECTS = Counter(
    "secretmagic_redis_reconnects_total",
    "Reconnections to the messenger's Redis after it was lost",
    registry=REGISTRY,
)
GROUP_RECREATED = Counter(
    "secretmagic_group_recreated_total",
    "Consumer groups recreated after NOGROUP (Redis restarted or flushed, stream deleted)",
    ["stream"],
    registry=REGISTRY,
)
CONFIG_RELOADS = Counter(
    "secretmagic_config_reloads_total",
    "Hot reloads of the mutable configuration by result (applied, rejected)",
    ["result"],
    registry=REGISTRY,
)
# Both results exported from the start, at 0: Prometheus' increase() sees the first rejection
# only if the series existed before it (alerts.yml SecretmagicConfigReloadRejected).
for _result in ("applied", "rejected"):
    CONFIG_RELOADS.labels(_result)
PUBLISHED = Counter(
    "secretmagic_published_total",
    "Events published by stream and route (direct, outbox, disabled)",
    ["stream", "route"],
    registry=REGISTRY,
)
OUTBOX_QUEUED = Counter(
    "secretmagic_outbox_queued_total",
    "Events queued in the outbox, by why Redis did not take them (app.publishing.outbox)",
    ["reason"],
    registry=REGISTRY,
)
DELIVERY_REFUSED = Counter(
    "secretmagic_delivery_refused_total",
    "Entries whose delivery bookkeeping Redis refused for a while (out of memory, read-only, "
    "…): left pending and retried, not counted towards max_deliveries",
    ["stream", "reason"],
    registry=REGISTRY,
)
HANDLE_SECONDS = Histogram(
    "secretmagic_handle_seconds",
    "Time the handler took per event (policy included)",
    ["stream"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
    registry=REGISTRY,
)
LOG_DROPS = Counter(
    "secretmagic_log_records_dropped_total",
    "Log records dropped because the PostgreSQL log buffer was full",
    registry=REGISTRY,
)
