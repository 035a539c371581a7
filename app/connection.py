"""Reaching the messenger's Redis in each topology of settings.messenger, in one place:

    worker_broker(messenger, **options)   the FastStream broker of the worker (app.broker):
                                          RedisBroker, RedisClusterBroker or RedisSentinelBroker
    sync_client(messenger, timeout)       a synchronous client for the operators' views (app.ops)
                                          and the metrics collector: Redis, RedisCluster, or the
                                          master a Sentinel names

Both authenticate as MESSENGER_USERNAME (an ACL user) with MESSENGER_PASSWORD and speak TLS when
MESSENGER_TLS is set, verifying the server against MESSENGER_TLS_CA_FILE and, unless
MESSENGER_TLS_CHECK_HOSTNAME is false, its host name. The sentinels get their own credentials.
"""

from __future__ import annotations

import ssl
from typing import Any

import redis
from faststream.security import BaseSecurity, SASLPlaintext
from redis.backoff import NoBackoff
from redis.cluster import ClusterNode, RedisCluster
from redis.retry import Retry
from redis.sentinel import Sentinel

from app.broker import Broker, ClusterBroker, SentinelBroker, WorkerBroker
from settings import MessengerSettings

CLIENT_NAME = "secretmagic"


def _secret(value: Any) -> str | None:
    return value.get_secret_value() if value is not None else None


def ssl_context(m: MessengerSettings) -> ssl.SSLContext:
    """The TLS context of the data (and sentinel) connections."""
    context = ssl.create_default_context(cafile=str(m.tls_ca_file) if m.tls_ca_file else None)
    context.check_hostname = m.tls_check_hostname
    if m.tls_cert_file and m.tls_key_file:
        context.load_cert_chain(str(m.tls_cert_file), str(m.tls_key_file))
    return context


def _tls_options(m: MessengerSettings) -> dict[str, Any]:
    """TLS as redis-py's own connection options (what RedisCluster and Sentinel take)."""
    if not m.tls:
        return {}
    return {"ssl": True, "ssl_ca_certs": str(m.tls_ca_file) if m.tls_ca_file else None,
            "ssl_certfile": str(m.tls_cert_file) if m.tls_cert_file else None,
            "ssl_keyfile": str(m.tls_key_file) if m.tls_key_file else None,
            "ssl_check_hostname": m.tls_check_hostname, "ssl_cert_reqs": "required"}


def _auth(m: MessengerSettings) -> dict[str, Any]:
    return {"username": m.username, "password": _secret(m.password)}


def _sentinel_options(m: MessengerSettings) -> dict[str, Any]:
    return {"username": m.sentinel_username, "password": _secret(m.sentinel_password),
            **_tls_options(m)}


def _security(m: MessengerSettings) -> BaseSecurity | None:
    """FastStream's way of giving its broker credentials and TLS."""
    context = ssl_context(m) if m.tls else None
    if m.password or m.username:
        return SASLPlaintext(username=m.username or "default", password=_secret(m.password) or "",
                             ssl_context=context, use_ssl=m.tls)
    return BaseSecurity(ssl_context=context, use_ssl=True) if m.tls else None


def worker_broker(m: MessengerSettings | None, **options: Any) -> WorkerBroker:
    """The worker's broker for `m` (messenger off: a standalone one that is never connected)."""
    if m is None:
        return Broker("redis://localhost:6379", **options)
    options |= {"security": _security(m), "client_name": CLIENT_NAME}
    if m.mode == "cluster":
        assert m.cluster_nodes
        # RedisCluster takes no ssl_context: its TLS is tuned by redis-py's own options.
        tls = {k: v for k, v in _tls_options(m).items() if k != "ssl"}
        return ClusterBroker(startup_nodes=list(m.cluster_nodes), **tls, **options)
    if m.mode == "sentinel":
        assert m.sentinels and m.sentinel_master
        return SentinelBroker(sentinels=list(m.sentinels), sentinel_master_name=m.sentinel_master,
                              sentinel_kwargs=_sentinel_options(m), db=m.db, **options)
    return Broker(m.url, **options)


def sync_client(m: MessengerSettings, *, timeout: float = 5.0, retries: int = 0,
                name: str = f"{CLIENT_NAME}-monitor") -> Any:
    """A synchronous bytes client that fails fast (no retry storms): redis.Redis for a
    standalone server or a sentinel's master, redis.cluster.RedisCluster for a cluster."""
    common: dict[str, Any] = {"socket_connect_timeout": timeout, "socket_timeout": timeout,
                              "client_name": name, **_auth(m), **_tls_options(m)}
    if m.mode == "cluster":
        assert m.cluster_nodes
        return RedisCluster(startup_nodes=[ClusterNode(h, p) for h, p in m.cluster_nodes],
                            retry=Retry(NoBackoff(), retries), **common)
    if m.mode == "sentinel":
        assert m.sentinels and m.sentinel_master
        sentinel = Sentinel(list(m.sentinels), sentinel_kwargs={
            "socket_timeout": timeout, **_sentinel_options(m)}, **common)
        return sentinel.master_for(m.sentinel_master, db=m.db, retry=Retry(NoBackoff(), retries))
    assert m.host
    return redis.Redis(host=m.host, port=m.port, db=m.db, retry=Retry(NoBackoff(), retries),
                       **common)
