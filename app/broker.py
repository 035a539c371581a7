"""FastStream's RedisBroker, as the app uses it.

- Publishing goes through app.publishing.producer (flat fields, live routing, the outbox).
- Stream subscribers are started passively, as TestRedisBroker does: app.delivery reads the
  consumer group and feeds them, because FastStream's own loop has no reclaim-while-reading,
  backoff, DLQ or NOGROUP recovery (SPEC §3).
"""

from __future__ import annotations

from typing import Any, cast

from faststream.redis import RedisBroker, RedisClusterBroker, RedisSentinelBroker
from redis.asyncio import Redis

from app.publishing.producer import EventProducer, PublishState


class WorkerBroker(RedisBroker):
    """What the worker changes in FastStream's Redis brokers (standalone, cluster, sentinel):
    secretmagic's producer and passively started stream subscribers."""

    def _make_producer(self, connection_state: Any, kwargs: dict[str, Any]) -> Any:
        return EventProducer(
            connection=connection_state,
            parser=kwargs.get("parser"),
            decoder=kwargs.get("decoder"),
            message_format=self.message_format,
            serializer=kwargs.get("serializer"),
        )

    @property
    def client(self) -> Redis:  # a RedisCluster in a cluster: the same commands
        return cast(Redis, self.config.broker_config.connection.client)

    @property
    def publishing(self) -> PublishState:
        return cast(EventProducer, self.config.broker_config.producer).state

    async def start(self) -> None:
        # Connecting is lazy in redis-py: an unreachable Redis does not fail the start; the
        # consumer's loops report it and carry on when it comes.
        await self.connect()
        for sub in self.subscribers:
            # What TestRedisBroker does: handlers ready, no FastStream read loop.
            sub._build_fastdepends_model()
            sub._post_start()
        for pub in self.publishers:
            await pub.start()
        self.running = True


class Broker(WorkerBroker):
    """A standalone Redis."""


class ClusterBroker(WorkerBroker, RedisClusterBroker):
    """A Redis Cluster (FastStream's RedisClusterBroker)."""


class SentinelBroker(WorkerBroker, RedisSentinelBroker):
    """The master a Redis Sentinel setup names (FastStream's RedisSentinelBroker)."""
