"""Where the messenger's Redis is and how to reach it (seed «Immutable»: MESSENGER_*).

Three topologies, chosen by which variables are set:

    standalone  MESSENGER_HOST, MESSENGER_PORT (6379), MESSENGER_DB (0)       (the seed's)
    cluster     MESSENGER_CLUSTER_NODES=host:port,host:port   seed nodes; the rest is discovered
    sentinel    MESSENGER_SENTINELS=host:port,...  and  MESSENGER_SENTINEL_MASTER (the master's
                name); MESSENGER_SENTINEL_USERNAME / _PASSWORD authenticate to the sentinels,
                apart from the data nodes' credentials

and for all of them: MESSENGER_USERNAME (an ACL user; `default` when unset), MESSENGER_PASSWORD
(the password, or the path of a file holding it: /run/secrets/redis_password), and TLS:
MESSENGER_TLS=true, MESSENGER_TLS_CA_FILE (the CA to trust; the system's when unset),
MESSENGER_TLS_CERT_FILE + MESSENGER_TLS_KEY_FILE (a client certificate, both or neither),
MESSENGER_TLS_CHECK_HOSTNAME (true: the server's certificate must name the host connected to).
With none of the newer variables set nothing changes. Secrets are SecretStr: never in reprs,
logs or errors.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

Mode = Literal["standalone", "cluster", "sentinel"]
Nodes = Annotated[tuple[tuple[str, int], ...], NoDecode]


def _read_secret(value: Any) -> Any:
    """Docker secrets: a value that is a path names the file holding the secret."""
    if isinstance(value, str) and value.startswith("/"):
        path = Path(value)
        if not path.is_file():
            raise ValueError("is a path but no such readable file exists")
        return path.read_text().strip()
    return value or None


def _nodes(value: Any) -> Any:
    """`host:port,host:port` → ((host, port), ...); a bad item is named."""
    if not isinstance(value, str):
        return value
    nodes = []
    for item in (part.strip() for part in value.split(",")):
        host, sep, port = item.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"{item!r} is not host:port")
        nodes.append((host.strip("[]"), int(port)))
    if not nodes:
        raise ValueError("lists no host:port")
    return tuple(nodes)


class MessengerSettings(BaseSettings):
    """The Redis that carries the events."""

    model_config = SettingsConfigDict(env_prefix="MESSENGER_", extra="ignore")

    host: str | None = Field(None, min_length=1, description="standalone: the Redis host")
    port: int = Field(6379, ge=1, le=65535)
    db: int = Field(0, ge=0, description="standalone and sentinel only (a cluster has db 0)")
    username: str | None = Field(None, min_length=1, description="an ACL user; unset = default")
    password: SecretStr | None = None
    cluster_nodes: Nodes | None = Field(None, description="cluster: seed nodes host:port,...")
    sentinels: Nodes | None = Field(None, description="sentinel: the sentinels host:port,...")
    sentinel_master: str | None = Field(None, min_length=1, description="the master's name")
    sentinel_username: str | None = Field(None, min_length=1)
    sentinel_password: SecretStr | None = None
    tls: bool = False
    tls_ca_file: Path | None = None
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    tls_check_hostname: bool = True

    _read_passwords = field_validator("password", "sentinel_password", mode="before")(
        classmethod(lambda cls, value: _read_secret(value)))
    _read_nodes = field_validator("cluster_nodes", "sentinels", mode="before")(
        classmethod(lambda cls, value: _nodes(value)))

    @field_validator("tls_ca_file", "tls_cert_file", "tls_key_file")
    @classmethod
    def _readable(cls, path: Path | None) -> Path | None:
        if path is not None and not path.is_file():
            raise ValueError(f"no such readable file: {path}")
        return path

    @model_validator(mode="after")
    def _one_topology(self) -> MessengerSettings:
        if self.cluster_nodes and self.sentinels:
            raise ValueError("set MESSENGER_CLUSTER_NODES or MESSENGER_SENTINELS, not both")
        if self.sentinels and not self.sentinel_master:
            raise ValueError("MESSENGER_SENTINEL_MASTER is required with MESSENGER_SENTINELS")
        if self.cluster_nodes and self.db:
            raise ValueError("MESSENGER_DB must be 0 with MESSENGER_CLUSTER_NODES (a cluster has "
                             "only db 0)")
        if not (self.cluster_nodes or self.sentinels or self.host):
            raise ValueError("MESSENGER_HOST is required (or MESSENGER_CLUSTER_NODES, or "
                             "MESSENGER_SENTINELS)")
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("MESSENGER_TLS_CERT_FILE and MESSENGER_TLS_KEY_FILE go together")
        return self

    @property
    def mode(self) -> Mode:
        return "cluster" if self.cluster_nodes else "sentinel" if self.sentinels else "standalone"

    @property
    def label(self) -> str:
        """Where the messenger is, for messages (never a secret)."""
        tls = " (TLS)" if self.tls else ""
        if self.cluster_nodes:
            return "cluster " + ",".join(f"{h}:{p}" for h, p in self.cluster_nodes) + tls
        if self.sentinels:
            via = ",".join(f"{h}:{p}" for h, p in self.sentinels)
            return f"sentinel master {self.sentinel_master} via {via}{tls}"
        return f"{self.host}:{self.port}{tls}"

    @property
    def url(self) -> str:
        """A Redis URL without credentials (safe to log; the first node in a cluster)."""
        host, port = (self.cluster_nodes or self.sentinels or ((self.host or "", self.port),))[0]
        return f"{'rediss' if self.tls else 'redis'}://{host}:{port}/{self.db}"
